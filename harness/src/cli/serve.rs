//! `splitbrain serve [--results DIR] [--bind 127.0.0.1:8080]`: a browser for the run store.
//!
//! # Routes
//! - `GET /` — index of runs (`DIR/<test-name>/<timestamp>/`), newest first, with name, start
//!   time, target, workload, nemesis, ops and verdict colour; `?verdict=valid|invalid|unknown|damaged`
//!   and `?target=T` filter it. A run whose files are missing or damaged is still listed, marked
//!   with what is wrong; it never hides the others.
//! - `GET /runs/<path>` — a file or directory listing under `DIR`. `…/report.html` of a run
//!   that has none yet (crashed, or still running) is rendered on the fly.
//! - `GET /compare?run=A&run=B` — two runs' reports side by side.
//!
//! # Contract
//! Only files under `DIR` are served: the request path is percent-decoded by this module, any
//! empty, `.` or `..` segment (however encoded) or backslash is refused, and the resolved path
//! (symlinks followed) must still be under the canonical `DIR`; everything else is 404.
//! Request bodies are limited to 16 KiB (all routes are GET) and each request has a deadline.
//! Ctrl-C or SIGTERM shuts the server down gracefully.

use crate::report::{self, html::esc, RunInfo};
use anyhow::Context;
use axum::{
    extract::{DefaultBodyLimit, Query, State},
    http::{header, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `splitbrain serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The results directory (the run store).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
}

/// Largest request body accepted (no route takes one).
const BODY_LIMIT: usize = 16 * 1024;
/// Deadline of one request (rendering a big report on the fly included).
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// Content security policy of every page: nothing may be fetched from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'";

struct AppState {
    /// Canonical results directory.
    root: PathBuf,
    /// Reports rendered on the fly, so a reload does not render a big run again.
    cache: RenderCache,
}

/// The last few reports rendered on the fly, keyed by run directory and stamped with the
/// modification times of the files they were made from (a run still being written re-renders).
#[derive(Default)]
struct RenderCache {
    entries: std::sync::Mutex<Vec<CachedReport>>,
}

/// Run directory, modification times of its files, rendered page.
type CachedReport = (PathBuf, Vec<Option<std::time::SystemTime>>, Arc<String>);

/// Reports kept in [`RenderCache`].
const CACHED_REPORTS: usize = 4;

impl RenderCache {
    fn stamp(dir: &Path) -> Vec<Option<std::time::SystemTime>> {
        ["history.jsonl", "results.json", "test.json"]
            .iter()
            .map(|f| {
                std::fs::metadata(dir.join(f))
                    .and_then(|m| m.modified())
                    .ok()
            })
            .collect()
    }

    fn get_or_render(&self, dir: &Path) -> Arc<String> {
        let stamp = Self::stamp(dir);
        // A poisoned lock only means another request panicked mid-update: start afresh.
        let entries = self.entries.lock().unwrap_or_else(|p| {
            let mut g = p.into_inner();
            g.clear();
            g
        });
        if let Some((_, _, page)) = entries.iter().find(|(d, s, _)| d == dir && *s == stamp) {
            return page.clone();
        }
        drop(entries);
        let page = Arc::new(report::render_run_dir(dir));
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|(d, _, _)| d != dir);
        entries.push((dir.to_path_buf(), stamp, page.clone()));
        if entries.len() > CACHED_REPORTS {
            entries.remove(0);
        }
        page
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .map_err(|e| crate::cli::exit::BadInput(format!("--bind {}: {e}", args.bind)))?;
        let addr = listener.local_addr()?;
        std::fs::create_dir_all(&args.results)
            .with_context(|| format!("creating results directory {}", args.results.display()))?;
        println!("serving {} at http://{addr}/", args.results.display());
        serve(listener, &args.results, shutdown_signal()).await?;
        Ok(0)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Serves `results` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    results: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let root = results
        .canonicalize()
        .with_context(|| format!("results directory {}", results.display()))?;
    let state = Arc::new(AppState {
        root,
        cache: RenderCache::default(),
    });
    let app = Router::new()
        .route("/", get(index))
        .route("/compare", get(compare))
        .route("/runs", get(index))
        .route("/runs/", get(index))
        .route("/runs/{*rest}", get(run_file))
        .fallback(|| async { not_found() })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving")?;
    Ok(())
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 not found\n",
    )
        .into_response()
}

fn html_page(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Percent-encodes one path segment.
fn enc(seg: &str) -> String {
    let mut out = String::new();
    for b in seg.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn enc_path(rel: &str) -> String {
    rel.split('/').map(enc).collect::<Vec<_>>().join("/")
}

/// Percent-decodes; `None` on a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Resolves a decoded relative path under `root`; `None` if it is not a safe path to an
/// existing file or directory under `root`.
fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel = rel.strip_suffix('/').unwrap_or(rel);
    let mut path = root.to_path_buf();
    for seg in rel.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\\') || seg.contains('\0') {
            return None;
        }
        path.push(seg);
    }
    let real = path.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "jsonl" | "log" | "edn" | "txt" | "md" | "toml" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn run_file(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let Some(raw) = uri.path().strip_prefix("/runs/") else {
        return not_found();
    };
    let Some(rel) = percent_decode(raw) else {
        return not_found();
    };
    let work = tokio::task::spawn_blocking(move || serve_path(&st, &rel));
    match tokio::time::timeout(REQUEST_DEADLINE, work).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request took too long\n").into_response(),
    }
}

fn serve_path(st: &AppState, rel: &str) -> Response {
    let root = st.root.as_path();
    // A run's report that was never written (crashed or running run): render it now.
    if let Some(dir_rel) = rel.strip_suffix("/report.html") {
        if let Some(dir) = resolve(root, dir_rel) {
            if dir.is_dir()
                && !dir.join("report.html").exists()
                && dir.join("history.jsonl").is_file()
            {
                return html_page(st.cache.get_or_render(&dir).as_str().to_owned());
            }
        }
    }
    let Some(path) = resolve(root, rel) else {
        return not_found();
    };
    if path.is_dir() {
        return html_page(dir_listing(root, &path));
    }
    match std::fs::read(&path) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, content_type(&path)),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => not_found(),
    }
}

fn rel_of(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

const STYLE: &str = "<style>body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1300px;padding:12px 20px;color:#222}\
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #e3e3e3;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;text-transform:uppercase}\
.valid{background:#2e7d32}.invalid{background:#c62828}.unknown{background:#757575}.damaged{background:#8a4b00}\
tr.damaged td{background:#fff4e0}.problem{color:#8a4b00;font-size:12px}.filters a{margin-right:8px}.filters a.on{font-weight:700}\
.muted{color:#888}iframe{width:100%;height:88vh;border:1px solid #ccc}.side{display:grid;grid-template-columns:1fr 1fr;gap:8px}</style>";

fn dir_listing(root: &Path, dir: &Path) -> String {
    let rel = rel_of(root, dir);
    let mut out = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{0}</title>{STYLE}</head><body><p><a href=\"/\">← all runs</a></p><h1>{0}</h1><ul>",
        esc(&rel)
    );
    let mut entries: Vec<(String, bool)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.path().is_dir(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if dir.join("history.jsonl").is_file() && !entries.iter().any(|(n, _)| n == "report.html") {
        entries.push(("report.html".into(), false));
    }
    entries.sort();
    for (name, is_dir) in entries {
        let href = format!(
            "/runs/{}/{}{}",
            enc_path(&rel),
            enc(&name),
            if is_dir { "/" } else { "" }
        );
        let _ = write!(
            out,
            "<li><a href=\"{}\">{}{}</a></li>",
            esc(&href),
            esc(&name),
            if is_dir { "/" } else { "" }
        );
    }
    out.push_str("</ul></body></html>");
    out
}

/// One run in the index.
struct Row {
    rel: String,
    dir_name: String,
    info: RunInfo,
}

impl Row {
    fn verdict_class(&self) -> &'static str {
        match self.info.verdict {
            Some(v) => v.as_str(),
            None if !self.info.problems.is_empty() => "damaged",
            None => "unknown",
        }
    }
    fn damaged(&self) -> bool {
        !self.info.problems.is_empty()
    }
}

/// Every run directory `root/<name>/<timestamp>/`, newest first. Unreadable entries are
/// skipped (they cannot be shown), damaged runs are kept and marked.
fn list_runs(root: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    let Ok(tests) = std::fs::read_dir(root) else {
        return rows;
    };
    for t in tests.filter_map(Result::ok) {
        let name = t.file_name().to_string_lossy().into_owned();
        // `latest` is a symlink to a run listed under its own name.
        let is_link = t.file_type().map(|ft| ft.is_symlink()).unwrap_or(true);
        if is_link || !t.path().is_dir() {
            continue;
        }
        let Ok(runs) = std::fs::read_dir(t.path()) else {
            continue;
        };
        for r in runs.filter_map(Result::ok) {
            let p = r.path();
            if r.file_type().map(|ft| ft.is_symlink()).unwrap_or(true) || !p.is_dir() {
                continue;
            }
            let dir_name = r.file_name().to_string_lossy().into_owned();
            rows.push(Row {
                rel: format!("{name}/{dir_name}"),
                info: RunInfo::read_dir(&p, &name),
                dir_name,
            });
        }
    }
    rows.sort_by(|a, b| b.dir_name.cmp(&a.dir_name).then_with(|| a.rel.cmp(&b.rel)));
    rows
}

/// Whether `row` passes the verdict filter `v` (`damaged` = any run with problems).
fn matches_verdict(row: &Row, v: Option<&str>) -> bool {
    match v {
        None => true,
        Some("damaged") => row.damaged(),
        Some(v) => row.verdict_class() == v,
    }
}

#[derive(serde::Deserialize, Default)]
struct Filter {
    verdict: Option<String>,
    target: Option<String>,
}

async fn index(State(st): State<Arc<AppState>>, Query(filter): Query<Filter>) -> Response {
    let root = st.root.clone();
    match tokio::time::timeout(
        REQUEST_DEADLINE,
        tokio::task::spawn_blocking(move || render_index(&root, &filter)),
    )
    .await
    {
        Ok(Ok(body)) => html_page(body),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "could not list runs\n").into_response(),
    }
}

fn unknown(v: &Option<String>) -> String {
    v.as_deref()
        .map(esc)
        .unwrap_or_else(|| "<span class=\"muted\">unknown</span>".into())
}

fn render_index(root: &Path, filter: &Filter) -> String {
    let rows = list_runs(root);
    let mut targets: Vec<String> = rows.iter().filter_map(|r| r.info.target.clone()).collect();
    targets.sort();
    targets.dedup();
    let fv = filter.verdict.as_deref().filter(|v| !v.is_empty());
    let ft = filter.target.as_deref().filter(|v| !v.is_empty());
    let link = |verdict: Option<&str>, target: Option<&str>| {
        let mut q = Vec::new();
        if let Some(v) = verdict {
            q.push(format!("verdict={}", enc(v)));
        }
        if let Some(t) = target {
            q.push(format!("target={}", enc(t)));
        }
        if q.is_empty() {
            "/".to_string()
        } else {
            format!("/?{}", q.join("&amp;"))
        }
    };
    let mut out = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Splitbrain runs</title>{STYLE}</head><body>\
         <h1>Splitbrain runs</h1><p class=\"muted\">{} runs in {}</p><div class=\"filters\">verdict: ",
        rows.len(),
        esc(&root.display().to_string())
    );
    for v in [
        None,
        Some("valid"),
        Some("invalid"),
        Some("unknown"),
        Some("damaged"),
    ] {
        let count = rows.iter().filter(|r| matches_verdict(r, v)).count();
        let _ = write!(
            out,
            "<a class=\"{}\" href=\"{}\">{} ({count})</a>",
            if v == fv { "on" } else { "" },
            link(v, ft),
            v.unwrap_or("all")
        );
    }
    out.push_str(" · target: ");
    for t in std::iter::once(None).chain(targets.iter().map(|t| Some(t.as_str()))) {
        let _ = write!(
            out,
            "<a class=\"{}\" href=\"{}\">{}</a>",
            if t == ft { "on" } else { "" },
            link(fv, t),
            esc(t.unwrap_or("all"))
        );
    }
    out.push_str(
        "</div><form action=\"/compare\" method=\"get\"><p><button type=\"submit\">compare two checked runs side by side</button></p>\
         <table id=\"runs\"><thead><tr><th></th><th>verdict</th><th>test</th><th>started</th><th>target</th><th>workload</th>\
         <th>nemesis</th><th>ops</th><th>files</th></tr></thead><tbody>",
    );
    let mut shown = 0;
    for row in &rows {
        let class = row.verdict_class();
        let keep =
            matches_verdict(row, fv) && ft.is_none_or(|t| row.info.target.as_deref() == Some(t));
        if !keep {
            continue;
        }
        shown += 1;
        let base = format!("/runs/{}", enc_path(&row.rel));
        let mut files =
            format!("<a href=\"{base}/report.html\">report</a> · <a href=\"{base}/\">files</a>");
        for f in ["history.jsonl", "results.json", "test.json"] {
            if root.join(&row.rel).join(f).is_file() {
                let _ = write!(files, " · <a href=\"{base}/{f}\">{f}</a>");
            }
        }
        if root.join(&row.rel).join("nodes").is_dir() {
            let _ = write!(files, " · <a href=\"{base}/nodes/\">node logs</a>");
        }
        let problems: String = row
            .info
            .problems
            .iter()
            .map(|p| format!("<div class=\"problem\">⚠ {}</div>", esc(p)))
            .collect();
        let _ = write!(
            out,
            "<tr class=\"run {dmg}\" data-run=\"{rel}\" data-verdict=\"{class}\" data-damaged=\"{d}\"><td><input type=\"checkbox\" name=\"run\" value=\"{rel}\"></td>\
             <td><span class=\"badge {class}\">{class}</span></td><td><a href=\"{base}/report.html\">{name}</a>{problems}</td><td>{start}</td>\
             <td>{target}</td><td>{workload}</td><td>{nemesis}</td><td>{ops}</td><td>{files}</td></tr>",
            dmg = if row.damaged() { "damaged" } else { "" },
            d = row.damaged(),
            rel = esc(&row.rel),
            name = esc(&row.info.name),
            start = row.info.start.as_deref().map(esc).unwrap_or_else(|| esc(&row.dir_name)),
            target = unknown(&row.info.target),
            workload = unknown(&row.info.workload),
            nemesis = unknown(&row.info.nemesis),
            ops = row.info.ops.map(|n| n.to_string()).unwrap_or_else(|| "<span class=\"muted\">?</span>".into()),
        );
    }
    if shown == 0 {
        out.push_str("<tr><td colspan=9 class=\"muted\">no runs match</td></tr>");
    }
    out.push_str("</tbody></table></form></body></html>");
    out
}

async fn compare(
    State(st): State<Arc<AppState>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let runs: Vec<String> = q
        .into_iter()
        .filter(|(k, _)| k == "run")
        .map(|(_, v)| v)
        .take(2)
        .collect();
    if runs.len() != 2 {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "check exactly two runs to compare\n",
        )
            .into_response();
    }
    for r in &runs {
        if resolve(&st.root, r).is_none_or(|p| !p.is_dir()) {
            return not_found();
        }
    }
    let mut out = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>compare</title>{STYLE}</head><body><p><a href=\"/\">← all runs</a></p><div class=\"side\">"
    );
    for r in &runs {
        let _ = write!(
            out,
            "<div><h3>{}</h3><iframe src=\"/runs/{}/report.html\"></iframe></div>",
            esc(r),
            esc(&enc_path(r))
        );
    }
    out.push_str("</div></body></html>");
    html_page(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_refuses_dot_segments_empty_segments_and_symlinks_out() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("results");
        std::fs::create_dir_all(root.join("t/1")).unwrap();
        std::fs::write(root.join("t/1/history.jsonl"), "").unwrap();
        std::fs::write(tmp.path().join("secret"), "x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(tmp.path().join("secret"), root.join("t/1/out")).unwrap();
        let root = root.canonicalize().unwrap();
        assert!(resolve(&root, "t/1/history.jsonl").is_some());
        for bad in [
            "../secret",
            "t/../../secret",
            "/etc/passwd",
            "t//1",
            "t/./1",
            "t/1/out",
            "t\\..\\..\\secret",
            "nope",
        ] {
            assert!(resolve(&root, bad).is_none(), "{bad} must not resolve");
        }
    }

    #[test]
    fn percent_decode_decodes_and_rejects_bad_escapes() {
        assert_eq!(percent_decode("%2e%2E/a%20b").as_deref(), Some("../a b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("%2"), None);
    }
}
