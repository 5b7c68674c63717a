//! The page: a static HTML skeleton (header, statistics, plots, counterexample) rendered here,
//! and the interactive parts drawn by `report.js` from the data embedded in
//! `<script type="application/json" id="report-data">`.
//!
//! # Data packing
//! Per op, the timeline needs start, end, lane, function and outcome: these are packed as
//! little-endian typed arrays in base64 (`start`/`end`: Float64 ns, `end` = -1 when open;
//! `lane`, `pid` (index into `procs`): Uint32; `f`: Uint16; `outcome`: Uint8), about 33 bytes per op before base64. Hover
//! details (index, key, values) are parallel JSON string arrays. Nothing is sampled: the arrays
//! have one entry per op, and the page writes `data-total-ops` and, after each draw,
//! `data-drawn-ops` (ops inside the view, all of which are painted).

use super::page_data::{CxStep, Outcome, PageData};

/// Steps of the linearizable prefix shown before the op that cannot be placed; earlier ones
/// are folded.
const CX_STEPS_SHOWN: usize = 12;
use super::{Page, Verdict};
use serde_json::{json, Value};
use std::fmt::Write;

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// Escapes text for HTML element content and quoted attribute values (`& < > " '`), by the
/// `html-escape` crate; the one escaper of the harness's HTML and XML.
pub fn esc(s: &str) -> String {
    html_escape::encode_quoted_attribute(s).into_owned()
}

/// Standard base64 (RFC 4648, with padding), by the `base64` crate.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The JSON the page's script reads (see the module docs for the packing).
pub fn page_json(page: &Page) -> Value {
    let d = &page.data;
    let mut start = Vec::with_capacity(d.ops.len() * 8);
    let mut end = Vec::with_capacity(d.ops.len() * 8);
    let mut lane = Vec::with_capacity(d.ops.len() * 4);
    let mut pid = Vec::with_capacity(d.ops.len() * 4);
    let mut f = Vec::with_capacity(d.ops.len() * 2);
    let mut outcome = Vec::with_capacity(d.ops.len());
    for op in &d.ops {
        start.extend_from_slice(&(op.start as f64).to_le_bytes());
        end.extend_from_slice(&op.end.map(|e| e as f64).unwrap_or(-1.0).to_le_bytes());
        lane.extend_from_slice(&op.lane.to_le_bytes());
        pid.extend_from_slice(&op.pid.to_le_bytes());
        let fi = d.fs.iter().position(|x| *x == op.f).unwrap_or(0) as u16;
        f.extend_from_slice(&fi.to_le_bytes());
        outcome.push(op.outcome.code());
    }
    json!({
        "n": d.ops.len(),
        "end_time": d.end_time,
        "lanes": d.lanes,
        "procs": d.procs,
        "pid": base64(&pid),
        "fs": d.fs,
        "start": base64(&start),
        "end": base64(&end),
        "lane": base64(&lane),
        "f": base64(&f),
        "outcome": base64(&outcome),
        "index": d.ops.iter().map(|o| o.index).collect::<Vec<_>>(),
        "key": d.ops.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
        "inv": d.ops.iter().map(|o| o.invoke_value.as_str()).collect::<Vec<_>>(),
        "res": d.ops.iter().map(|o| o.result_value.as_deref()).collect::<Vec<_>>(),
        "faults": d.faults,
        "cx": page.cx,
    })
}

fn unknown(v: &Option<String>) -> String {
    match v {
        Some(s) => esc(s),
        None => "<span class=\"unknown\">unknown</span>".into(),
    }
}

fn ms(ns: u64) -> String {
    let v = ns as f64 / 1e6;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn pct(x: Option<f64>) -> String {
    x.map(|a| format!("{:.1}%", a * 100.0))
        .unwrap_or_else(|| "–".into())
}

/// Text shown inline is capped at 256 KiB; the files have the rest.
fn cap(s: &str) -> String {
    const MAX: usize = 256 * 1024;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n… ({} more bytes: see the file)",
        &s[..end],
        s.len() - end
    )
}

/// Strips the XML prolog so an SVG can be inlined.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

fn stats_table(d: &PageData, out: &mut String) {
    out.push_str(
        "<table class=\"stats\"><thead><tr><th rowspan=2>op</th><th colspan=4>outside faults</th><th colspan=4>during faults</th>\
         <th colspan=5>latency of ok ops (ms)</th></tr><tr><th>ok</th><th>fail</th><th>info</th><th>avail.</th>\
         <th>ok</th><th>fail</th><th>info</th><th>avail.</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr></thead><tbody>",
    );
    for s in &d.stats {
        let q = &s.latency_ok;
        let class = if s.f == "all" { " class=\"total\"" } else { "" };
        let _ = write!(
            out,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.f),
            s.out_of_fault.ok,
            s.out_of_fault.fail,
            s.out_of_fault.info,
            pct(s.out_of_fault.availability()),
            s.in_fault.ok,
            s.in_fault.fail,
            s.in_fault.info,
            pct(s.in_fault.availability()),
            ms(q.p50),
            ms(q.p90),
            ms(q.p99),
            ms(q.p999),
            ms(q.max)
        );
    }
    out.push_str("</tbody></table>");
}

fn faults_list(d: &PageData, out: &mut String) {
    if d.faults.is_empty() {
        out.push_str("<p class=\"muted\">No faults were recorded in this history.</p>");
        return;
    }
    out.push_str("<details><summary>");
    let _ = write!(out, "{} fault periods / nemesis events", d.faults.len());
    out.push_str(
        "</summary><table class=\"faults\"><tr><th>from (s)</th><th>to (s)</th><th>fault</th></tr>",
    );
    for f in &d.faults {
        let _ = write!(
            out,
            "<tr><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
            f.start as f64 / 1e9,
            f.end as f64 / 1e9,
            esc(&f.description)
        );
    }
    out.push_str("</table></details>");
}

/// Renders the whole page. `latency_svg`/`rate_svg` are inlined.
pub fn render(page: &Page, latency_svg: &str, rate_svg: &str) -> String {
    let info = &page.info;
    let d = &page.data;
    let verdict = info.verdict.unwrap_or(Verdict::Unknown);
    let mut out = String::with_capacity(d.ops.len() * 80 + 200_000);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} — {} — Splitbrain</title><style>{CSS}</style></head>\n<body data-verdict=\"{}\">",
        esc(&info.name),
        verdict.as_str(),
        verdict.as_str()
    );
    let _ = write!(
        out,
        "<header><h1>{} <span class=\"badge {v}\" id=\"verdict\">{v}</span></h1><dl class=\"meta\">\
         <dt>target</dt><dd>{}</dd><dt>workload</dt><dd>{}</dd><dt>nemesis</dt><dd>{}</dd>\
         <dt>seed</dt><dd>{}</dd><dt>started</dt><dd>{}</dd><dt>duration</dt><dd>{}</dd><dt>ops</dt><dd>{}</dd>",
        esc(&info.name),
        unknown(&info.target),
        unknown(&info.workload),
        unknown(&info.nemesis),
        unknown(&info.seed),
        unknown(&info.start),
        unknown(&info.duration_s.map(|s| format!("{s:.2} s"))),
        d.ops.len(),
        v = verdict.as_str(),
    );
    for (k, v) in &info.check_summary {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
    }
    out.push_str("</dl></header>\n");
    if info.verdict.is_none() {
        out.push_str("<p class=\"warn\">This run has no check result (results.json is missing or damaged): the verdict is unknown.</p>");
    }
    for p in &info.problems {
        let _ = write!(out, "<p class=\"warn\">{}</p>", esc(p));
    }
    if !d.warnings.is_empty() {
        out.push_str("<details class=\"warn\"><summary>");
        let _ = write!(out, "{} problems reading the history", d.warnings.len());
        out.push_str("</summary><ul>");
        for w in &d.warnings {
            let _ = write!(out, "<li>{}</li>", esc(w));
        }
        out.push_str("</ul></details>");
    }

    if let Some(cx) = &page.cx {
        out.push_str("<section id=\"counterexample\"><h2>Why it is not linearizable</h2>");
        let _ = write!(
            out,
            "<p>{}No order of these operations is legal for the model. The ops of the <b>linearizable prefix</b> \
             can be placed one after another (green, numbered in that order, with the model state before and after \
             each), but then the op in <b class=\"bad\">red</b> cannot be placed: every order the ops still open \
             allow leaves the model in a state where its result is impossible. The bars show the window of \
             concurrent ops (invoke → completion); the same ops are outlined in black on the timeline.</p>",
            cx.key.as_ref().map(|k| format!("Key <code>{}</code>: ", esc(k))).unwrap_or_default()
        );
        if let Some(m) = &cx.message {
            let _ = write!(out, "<p class=\"cxmsg\">{}</p>", esc(m));
        }
        out.push_str("<div id=\"cx-window\"></div>");
        const HEAD: &str = "<thead><tr><th>#</th><th>process</th><th>op</th><th>state before</th><th>state after</th></tr></thead>";
        let step_row = |s: &CxStep| {
            format!(
                "<tr class=\"ok\"><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                s.number,
                esc(s.process.as_deref().unwrap_or("")),
                esc(&s.op),
                esc(s.before.as_deref().unwrap_or("?")),
                esc(s.after.as_deref().unwrap_or("?"))
            )
        };
        // The steps nearest the failure are shown; earlier ones fold away.
        let shown_from = cx.prefix.len().saturating_sub(CX_STEPS_SHOWN);
        let earlier = cx.prefix_total - (cx.prefix.len() - shown_from);
        if earlier > 0 {
            let _ = write!(out, "<details><summary>{earlier} earlier steps of the linearizable prefix</summary><table class=\"cx-steps\">{HEAD}<tbody>");
            if cx.prefix_total > cx.prefix.len() {
                let _ = write!(
                    out,
                    "<tr><td colspan=5 class=\"muted\">… {} steps before these are in the JSON below</td></tr>",
                    cx.prefix_total - cx.prefix.len()
                );
            }
            for s in &cx.prefix[..shown_from] {
                out.push_str(&step_row(s));
            }
            out.push_str("</tbody></table></details>");
        }
        let _ = write!(
            out,
            "<table class=\"cx-steps\" id=\"cx-steps\">{HEAD}<tbody>"
        );
        for s in &cx.prefix[shown_from..] {
            out.push_str(&step_row(s));
        }
        let replayed = cx.prefix.last().and_then(|s| s.after.clone());
        if let Some(f) = &cx.failing {
            let before = cx
                .state
                .clone()
                .or_else(|| replayed.clone())
                .unwrap_or_else(|| "?".into());
            let _ = write!(
                out,
                "<tr class=\"bad\" id=\"cx-failing\"><td>✗</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>cannot be placed: no legal step</td></tr>",
                esc(cx.failing_process.as_deref().unwrap_or("")),
                esc(f),
                esc(&before)
            );
        }
        out.push_str("</tbody></table>");
        if let Some(state) = &cx.state {
            let _ = write!(
                out,
                "<p>Model state after the prefix (from the checker): <code>{}</code>",
                esc(state)
            );
            if replayed.as_ref().is_some_and(|r| r != state) && cx.prefix_total == cx.prefix.len() {
                let _ = write!(
                    out,
                    " <span class=\"warn\">(replaying the prefix here gives <code>{}</code>)</span>",
                    esc(replayed.as_deref().unwrap_or(""))
                );
            }
            out.push_str("</p>");
        }
        if let Some(text) = &cx.text {
            let _ = write!(
                out,
                "<details open><summary>the checker's account</summary><pre>{}</pre></details>",
                esc(&cap(text))
            );
        }
        let _ = writeln!(
            out,
            "<details><summary>counterexample as JSON</summary><pre>{}</pre></details></section>",
            esc(&cap(&cx.raw))
        );
    } else if verdict == Verdict::Invalid {
        out.push_str("<section id=\"counterexample\"><h2>Why it is not linearizable</h2><p class=\"warn\">The check found this history invalid but recorded no counterexample.</p></section>");
    }

    out.push_str("<section><h2>Statistics</h2>");
    stats_table(d, &mut out);
    out.push_str("<p class=\"muted\">avail. = share of invocations that completed ok (a definite <i>fail</i>, such as a cas whose compare did not match, counts against it). “during faults” = invoked while a fault period was active.</p>");
    faults_list(d, &mut out);
    out.push_str("</section>\n");

    let _ = writeln!(
        out,
        "<section><h2>Timeline</h2><div class=\"controls\"><button id=\"zoom-in\">zoom in</button><button id=\"zoom-out\">zoom out</button>\
         <button id=\"reset\">whole run</button><span id=\"view-info\"></span></div>\
         <p class=\"muted\">One lane per client worker (a process keeps its lane; after an <i>info</i> the worker's next process continues in it), and one lane for all the final reads; each op is a bar from invoke to completion: \
         <span class=\"key ok\"></span>ok <span class=\"key fail\"></span>fail <span class=\"key info\"></span>info (unknown; a bar to the end = never completed). \
         <span class=\"key fault\"></span>fault. Wheel: zoom at cursor; drag: pan; hover: details.</p>\
         <div id=\"timeline-wrap\"><canvas id=\"timeline\" data-total-ops=\"{}\" data-drawn-ops=\"0\"></canvas><div id=\"tooltip\" hidden></div></div></section>",
        d.ops.len()
    );
    let _ = writeln!(
        out,
        "<section><h2>Latency</h2><div class=\"plot\" id=\"latency-plot\">{}</div><h2>Throughput</h2><div class=\"plot\" id=\"rate-plot\">{}</div></section>",
        inline_svg(latency_svg),
        inline_svg(rate_svg)
    );
    if let Some(r) = &page.results_json {
        let _ = write!(
            out,
            "<section><details><summary>results.json</summary><pre>{}</pre></details></section>",
            esc(r)
        );
    }
    // `</` must not appear inside a script element: JSON allows `\/`.
    let data = page_json(page).to_string().replace("</", "<\\/");
    let _ = writeln!(
        out,
        "<footer class=\"muted\">Splitbrain report · {} ops · outcome codes: ok={}, fail={}, info={}</footer>\
         <script type=\"application/json\" id=\"report-data\">{data}</script><script>{JS}</script></body></html>",
        d.ops.len(),
        Outcome::Ok.code(),
        Outcome::Fail.code(),
        Outcome::Info.code()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn esc_escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
        );
    }
}
