//! The suite's summaries: `summary.json` (every run and the comparison), `summary.html` (a table
//! of runs linking each run's `report.html`, then the comparison), and `junit.xml`.
//!
//! The comparison puts targets side by side per workload × nemesis: verdict counts,
//! availability during faults, throughput (ok ops/s), latency p50/p99 and time to recover after
//! a fault; each figure is the median over the repeats that produced it.

use super::history::median;
use super::{junit, RunResult, RunSpec, RunStatus, SuiteFile, SuiteOutcome};
use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One target's figures for one workload × nemesis.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cell {
    pub target: String,
    pub runs: usize,
    pub valid: usize,
    pub invalid: usize,
    pub unknown: usize,
    pub crashed: usize,
    pub availability_during_faults: Option<f64>,
    pub throughput: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub recovery_s: Option<f64>,
}

/// Targets side by side for one workload × nemesis.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub workload: String,
    pub nemesis: String,
    pub targets: Vec<Cell>,
}

/// The comparison table, in matrix order.
pub fn compare(runs: &[(RunSpec, RunResult)]) -> Vec<Row> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (s, _) in runs {
        let k = (s.workload.clone(), s.nemesis.clone());
        if !order.contains(&k) {
            order.push(k.clone());
        }
        let ts = groups.entry(k).or_default();
        if !ts.contains(&s.target) {
            ts.push(s.target.clone());
        }
    }
    order
        .into_iter()
        .map(|(w, n)| {
            let targets = groups[&(w.clone(), n.clone())]
                .iter()
                .map(|t| {
                    let rs: Vec<&RunResult> = runs
                        .iter()
                        .filter(|(s, _)| s.workload == w && s.nemesis == n && &s.target == t)
                        .map(|(_, r)| r)
                        .collect();
                    let count = |st: RunStatus| rs.iter().filter(|r| r.status == st).count();
                    let med = |f: &dyn Fn(&RunResult) -> Option<f64>| {
                        let mut v: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
                        median(&mut v)
                    };
                    Cell {
                        target: t.clone(),
                        runs: rs.len(),
                        valid: count(RunStatus::Valid),
                        invalid: count(RunStatus::Invalid),
                        unknown: count(RunStatus::Unknown),
                        crashed: count(RunStatus::Crashed),
                        availability_during_faults: med(&|r| r.availability_during_faults),
                        throughput: med(&|r| r.throughput),
                        latency_p50_ms: med(&|r| r.latency_p50_ms),
                        latency_p99_ms: med(&|r| r.latency_p99_ms),
                        recovery_s: med(&|r| r.recovery_s),
                    }
                })
                .collect();
            Row {
                workload: w,
                nemesis: n,
                targets,
            }
        })
        .collect()
}

use crate::report::html::esc;

fn opt(v: Option<f64>, digits: usize, unit: &str) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}{unit}"))
}

/// `summary.html`; links are relative to `dir` (the suite directory) when possible.
pub fn render_html(suite: &SuiteFile, o: &SuiteOutcome) -> String {
    let mut h = String::new();
    h += "<!doctype html><html><head><meta charset=\"utf-8\"><title>";
    h += &esc(&format!("suite {}", suite.name));
    h += "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}\
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td.l,th.l{text-align:left}\
.valid{background:#dfd}.invalid{background:#fcc}.unknown,.crashed{background:#fe9}</style></head><body>";
    h += &format!(
        "<h1>Suite {}</h1><p>{} runs in {:.0} s — exit code {}</p>",
        esc(&suite.name),
        o.runs.len(),
        o.elapsed_s,
        o.exit_code()
    );
    h += "<h2>Comparison</h2><table><tr><th class=l>workload</th><th class=l>nemesis</th><th class=l>target</th>\
<th>valid</th><th>invalid</th><th>unknown</th><th>crashed</th><th>availability during faults</th>\
<th>throughput (ok/s)</th><th>p50 ms</th><th>p99 ms</th><th>recovery s</th></tr>";
    for row in compare(&o.runs) {
        for c in &row.targets {
            h += &format!(
                "<tr><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&row.workload),
                esc(&row.nemesis),
                esc(&c.target),
                c.valid,
                c.invalid,
                c.unknown,
                c.crashed,
                opt(c.availability_during_faults.map(|a| a * 100.0), 1, "%"),
                opt(c.throughput, 1, ""),
                opt(c.latency_p50_ms, 1, ""),
                opt(c.latency_p99_ms, 1, ""),
                opt(c.recovery_s, 2, ""),
            );
        }
    }
    h += "</table><h2>Runs</h2><table><tr><th class=l>run</th><th class=l>verdict</th><th>time s</th><th class=l>report</th><th class=l>message</th></tr>";
    for (s, r) in &o.runs {
        let status = format!("{:?}", r.status).to_lowercase();
        let link = match &r.run_dir {
            Some(d) => {
                let report = d.join("report.html");
                let href = relative(&o.dir, &report);
                format!("<a href=\"{}\">report</a>", esc(&href))
            }
            None => "–".into(),
        };
        let first_line = r.message.lines().next().unwrap_or("");
        h += &format!(
            "<tr><td class=l>{}</td><td class=\"l {status}\">{status}</td><td>{:.1}</td><td class=l>{link}</td><td class=l>{}</td></tr>",
            esc(&s.name),
            r.elapsed_s,
            esc(first_line)
        );
    }
    h += "</table></body></html>\n";
    h
}

/// `to` relative to directory `from` when both are under a common prefix, else absolute.
pub fn relative(from: &Path, to: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, to) = (abs(from), abs(to));
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    if common <= 1 {
        return to.display().to_string();
    }
    let mut parts: Vec<String> = vec!["..".into(); f.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// Writes `summary.json`, `summary.html` and `junit.xml` into the suite's directory.
pub fn write_all(suite: &SuiteFile, o: &SuiteOutcome) -> anyhow::Result<()> {
    let stamp = o
        .dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let json = serde_json::json!({
        "suite": suite,
        "exit_code": o.exit_code(),
        "elapsed_s": o.elapsed_s,
        "runs": o.runs.iter().map(|(s, r)| serde_json::json!({"spec": s, "result": r})).collect::<Vec<_>>(),
        "comparison": compare(&o.runs),
    });
    let write = |name: &str, text: &str| {
        let p = o.dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    write(
        "summary.json",
        &serde_json::to_string_pretty(&json).context("serializing the summary")?,
    )?;
    write("summary.html", &render_html(suite, o))?;
    write("junit.xml", &junit::render(&suite.name, &stamp, &o.runs))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::tests::suite_text;

    fn result(status: RunStatus, thr: f64, p99: f64) -> RunResult {
        RunResult {
            status,
            run_dir: Some("/r/x/20261122T000000".into()),
            message: String::new(),
            elapsed_s: 5.0,
            throughput: Some(thr),
            availability_during_faults: Some(0.5),
            latency_p50_ms: Some(1.0),
            latency_p99_ms: Some(p99),
            recovery_s: Some(1.5),
            ops_ok: 100,
        }
    }

    #[test]
    fn compares_targets_side_by_side_with_medians_over_repeats() {
        let s = SuiteFile::parse(suite_text(), Path::new("t.toml")).unwrap();
        let runs: Vec<(RunSpec, RunResult)> = s
            .matrix()
            .into_iter()
            .map(|spec| {
                let r = if spec.target == "etcd" {
                    result(RunStatus::Valid, 100.0 * f64::from(spec.repeat), 9.0)
                } else {
                    result(
                        if spec.repeat == 1 {
                            RunStatus::Invalid
                        } else {
                            RunStatus::Valid
                        },
                        10.0,
                        3.0,
                    )
                };
                (spec, r)
            })
            .collect();
        let rows = compare(&runs);
        assert_eq!(rows.len(), 4);
        assert_eq!(
            (rows[0].workload.as_str(), rows[0].nemesis.as_str()),
            ("kv", "partition")
        );
        let names: Vec<&str> = rows[0].targets.iter().map(|c| c.target.as_str()).collect();
        assert_eq!(names, ["splitbrain", "etcd"]);
        let sb = &rows[0].targets[0];
        assert_eq!((sb.runs, sb.valid, sb.invalid), (2, 1, 1));
        assert_eq!(rows[0].targets[1].throughput, Some(150.0));
        assert_eq!(rows[0].targets[1].latency_p99_ms, Some(9.0));
        let o = SuiteOutcome {
            dir: "/r/suites/20261122T000000".into(),
            runs,
            elapsed_s: 9.0,
        };
        let html = render_html(&s, &o);
        assert!(
            html.contains("href=\"../../x/20261122T000000/report.html\""),
            "{html}"
        );
        assert!(html.contains("exit code 1"));
    }
}
