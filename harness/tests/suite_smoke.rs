//! The smoke suite (`workloads/suites/smoke.toml`) end to end: it runs, writes its summaries,
//! and its `junit.xml` has the JUnit schema's required elements and attributes, with counts and
//! an exit code that agree with the verdicts.

use splitbrain::testkit::junit_schema::check_junit;
use std::path::Path;
use std::process::Command;

fn can_run_etcd_on_netns() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() == 0 };
    root && Path::new("/usr/bin/etcd").exists()
}

#[test]
fn smoke_suite_writes_a_valid_junit_xml_and_a_summary_linking_every_report() {
    if !can_run_etcd_on_netns() {
        eprintln!("skipped: the smoke suite runs etcd on netns (root and etcd-server needed)");
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/suites/smoke.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .arg("suite")
        .arg(&suite)
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let code = out.status.code().expect("exited");
    let dirs: Vec<_> = std::fs::read_dir(results.path().join("suites"))
        .unwrap()
        .collect();
    assert_eq!(dirs.len(), 1, "{stdout}");
    let dir = dirs.into_iter().next().unwrap().unwrap().path();
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let cases = check_junit(&junit).unwrap_or_else(|e| panic!("junit.xml: {e}\n{junit}"));
    assert_eq!(cases.len(), 4, "2 targets × 1 workload × 2 nemeses");
    // No run may have crashed (an error of type crashed is a harness or target failure).
    assert!(!junit.contains("type=\"crashed\""), "{junit}");
    let failures = cases
        .iter()
        .filter(|(_, o)| o.as_deref().is_some_and(|o| o.starts_with("failure:")))
        .count();
    let errors = cases
        .iter()
        .filter(|(_, o)| o.as_deref().is_some_and(|o| o.starts_with("error:")))
        .count();
    let expected = if errors > 0 {
        2
    } else if failures > 0 {
        1
    } else {
        0
    };
    assert_eq!(code, expected, "exit code vs junit: {stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["runs"].as_array().unwrap().len(), 4);
    let cmp = summary["comparison"].as_array().unwrap();
    assert_eq!(cmp.len(), 2);
    for row in cmp {
        let targets: Vec<&str> = row["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["target"].as_str().unwrap())
            .collect();
        assert_eq!(targets, ["splitbrain", "etcd"]);
        for c in row["targets"].as_array().unwrap() {
            assert!(c["throughput"].as_f64().unwrap() > 1.0, "{c}");
        }
    }
    let html = std::fs::read_to_string(dir.join("summary.html")).unwrap();
    for r in summary["runs"].as_array().unwrap() {
        let run_dir = r["result"]["run_dir"].as_str().unwrap();
        let tail = Path::new(run_dir)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        assert!(
            html.contains(&format!("{tail}/report.html")),
            "summary.html links {run_dir}"
        );
    }
}

#[test]
fn suite_rejects_a_bad_file_with_exit_254_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "name = \"x\"\ntargets = [\"splitbrain\"]\nworkloads = [\"kv\"]\nnemeses = [\"explode\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .arg("suite")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("explode"), "{err}");
}
