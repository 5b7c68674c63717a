//! The pages in a real browser: `splitbrain serve` on a fixture store, loaded by headless
//! Chromium (Debian's `chromium`; `CHROMIUM=/path` overrides). Assertions are read from the
//! DOM after the scripts ran (`--dump-dom` with a virtual time budget). Screenshots are kept
//! in `target/browser-screenshots/`.
//!
//! Without Chromium the test fails when `CI` is set, and is skipped with a message otherwise.

use splitbrain::testkit::{runs, serve as server};

use server::Serve;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIG: usize = 100_000;

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    let dir = target.join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Browser {
    exe: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    fn new(exe: PathBuf) -> Browser {
        Browser {
            exe,
            profile: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs Chromium headless with `extra` flags on `url`; returns stdout. Deadline: 120 s.
    fn run(&self, extra: &[String], url: &str, window: &str) -> String {
        let mut cmd = Command::new(&self.exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--window-size={window}"))
        .arg(format!("--user-data-dir={}", self.profile.path().display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        server::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("starting chromium");
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish {url} within 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        reader.join().unwrap()
    }

    fn dom(&self, url: &str) -> String {
        let dom = self.run(&["--dump-dom".into()], url, "1280,1000");
        assert!(
            dom.contains("</html>"),
            "chromium gave no DOM for {url}: {dom:.300}"
        );
        dom
    }

    fn screenshot(&self, url: &str, name: &str, window: &str) -> PathBuf {
        let path = screenshot_dir().join(name);
        let _ = std::fs::remove_file(&path);
        self.run(&[format!("--screenshot={}", path.display())], url, window);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 10_000,
            "screenshot {} missing or empty ({len} bytes)",
            path.display()
        );
        path
    }
}

/// The value of `attr="…"` on the element whose opening tag contains `marker`.
fn attr_of(dom: &str, marker: &str, attr: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let tag_start = dom[..at].rfind('<')?;
    let tag_end = at + dom[at..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    Some(tag[v..v + tag[v..].find('"')?].to_string())
}

#[test]
fn index_and_reports_render_in_headless_chromium() {
    let Some(exe) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed, and CI is set: `apt-get install -y chromium`");
        }
        eprintln!("SKIPPED: chromium not found (install Debian's `chromium` or set CHROMIUM)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("results");
    runs::write_valid_run(&root, "register-big", "20261122T100000", BIG, "splitbrain");
    runs::write_invalid_run(&root, "register-bad", "20261122T110000", "etcd");
    runs::write_damaged_run(&root, "crashed", "20261122T120000");
    let serve = Serve::start(Path::new(env!("CARGO_BIN_EXE_splitbrain")), &root);
    let browser = Browser::new(exe);

    let index = browser.dom(&serve.url("/"));
    for (run, verdict) in [
        ("register-big/20261122T100000", "valid"),
        ("register-bad/20261122T110000", "invalid"),
        ("crashed/20261122T120000", "damaged"),
    ] {
        let marker = format!("data-run=\"{run}\"");
        assert_eq!(
            attr_of(&index, &marker, "data-verdict").as_deref(),
            Some(verdict),
            "{run} in the index"
        );
    }
    browser.screenshot(&serve.url("/"), "index.png", "1280,700");

    let big_url = serve.url("/runs/register-big/20261122T100000/report.html");
    let big = browser.dom(&big_url);
    assert_eq!(
        attr_of(&big, "id=\"timeline\"", "data-total-ops").as_deref(),
        Some("100000")
    );
    assert_eq!(
        attr_of(&big, "id=\"timeline\"", "data-drawn-ops").as_deref(),
        Some("100000"),
        "the timeline drew every op of the whole run"
    );
    assert_eq!(
        attr_of(&big, "<body", "data-ready").as_deref(),
        Some("1"),
        "the script ran to the end"
    );
    assert_eq!(
        attr_of(&big, "id=\"verdict\"", "class").as_deref(),
        Some("badge valid")
    );
    browser.screenshot(&big_url, "report-valid-100k.png", "1280,2200");
    let zoomed = format!("{big_url}#view=2.9,3.05");
    let dom = browser.dom(&zoomed);
    let in_view: u64 = attr_of(&dom, "id=\"timeline\"", "data-drawn-ops")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        in_view > 0 && in_view < 2_000,
        "a 150 ms window holds a few hundred ops: {in_view}"
    );
    browser.screenshot(&zoomed, "report-valid-zoomed.png", "1280,1100");
    // The page's own benchmark: 40 zoom/pan redraws of 100,000 ops.
    let bench = browser.dom(&format!("{big_url}#bench"));
    let median = attr_of(&bench, "<body", "data-bench-draw-ms").expect("the bench ran");
    let max = attr_of(&bench, "<body", "data-bench-draw-max-ms").unwrap_or_default();
    eprintln!(
        "timeline redraw of {BIG} ops in headless chromium: median {median} ms, max {max} ms"
    );
    assert_eq!(
        attr_of(&bench, "id=\"timeline\"", "data-drawn-ops").as_deref(),
        Some("100000")
    );
    // The page moves a synthetic mouse over the middle of one op's bar: the tooltip names it.
    let expected = attr_of(&bench, "<body", "data-hover-expected").expect("hover check ran");
    let shown = attr_of(&bench, "<body", "data-hover-text").unwrap_or_default();
    assert!(
        shown.starts_with("process ") && shown.ends_with(&expected),
        "hover shows {shown:?}, expected {expected}"
    );

    let bad_url = serve.url("/runs/register-bad/20261122T110000/report.html");
    let bad = browser.dom(&bad_url);
    assert_eq!(
        attr_of(&bad, "id=\"verdict\"", "class").as_deref(),
        Some("badge invalid")
    );
    assert!(
        bad.contains("id=\"counterexample\""),
        "counterexample section shown"
    );
    assert_eq!(
        attr_of(&bad, "<body", "data-cx-drawn").as_deref(),
        Some("1"),
        "the window (one op: the read that cannot be placed) is drawn"
    );
    assert_eq!(
        bad.matches("class=\"cx-op\"").count(),
        3,
        "the prefix before the window is drawn for context"
    );
    assert!(
        bad.contains("class=\"cx-failing\""),
        "the op that cannot be placed is drawn"
    );
    assert_eq!(
        attr_of(&bad, "id=\"timeline\"", "data-drawn-ops").as_deref(),
        Some("4")
    );
    browser.screenshot(&bad_url, "report-invalid.png", "1280,2000");

    let crashed = browser.dom(&serve.url("/runs/crashed/20261122T120000/report.html"));
    assert_eq!(
        attr_of(&crashed, "id=\"timeline\"", "data-drawn-ops").as_deref(),
        Some("20")
    );
}
