//! `splitbrain check --report OUT FILE` draws the page for an offline history.

use splitbrain::testkit::runs;

use std::process::Command;

fn write_history(
    dir: &std::path::Path,
    name: &str,
    events: &[serde_json::Value],
) -> std::path::PathBuf {
    let path = dir.join(name);
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_report_draws_the_counterexample_of_an_invalid_history() {
    let tmp = tempfile::tempdir().unwrap();
    let mut events = runs::invalid_history();
    // A failed write: the checker drops it, the page still draws it (JSONL is drawn as recorded).
    events.push(serde_json::json!({"index": 10, "time": 9_000_000, "process": 4, "type": "invoke", "f": "write", "value": 9}));
    events.push(serde_json::json!({"index": 11, "time": 9_500_000, "process": 4, "type": "fail", "f": "write", "value": 9}));
    let file = write_history(tmp.path(), "bad.jsonl", &events);
    let out = tmp.path().join("bad.html");
    let st = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["check", "--model", "register", "--report"])
        .arg(&out)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(1),
        "invalid → exit 1; stderr: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let html = std::fs::read_to_string(&out).expect("report written");
    assert!(html.contains("class=\"badge invalid\""));
    assert!(html.contains("id=\"cx-failing\""));
    assert!(
        html.contains("read → 1"),
        "names the read that cannot be placed"
    );
    assert!(html.contains("bad.jsonl"), "titled with the file");
    assert!(
        html.contains("data-total-ops=\"5\""),
        "the failed write is drawn too"
    );
    assert!(
        html.contains("partition n1 | n2,n3"),
        "the partition is drawn"
    );
}

#[test]
fn check_report_of_a_valid_history_has_no_counterexample() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_history(tmp.path(), "ok.jsonl", &runs::register_history(200, 3, 5));
    let out = tmp.path().join("ok.html");
    let st = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["check", "--model", "register", "--report"])
        .arg(&out)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(0),
        "the generated history is linearizable; stderr: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let html = std::fs::read_to_string(&out).expect("report written");
    assert!(html.contains("data-total-ops=\"200\""));
    assert!(!html.contains("id=\"cx-failing\""));
    assert!(html.contains("class=\"badge valid\""));
}

#[test]
fn check_report_refuses_more_than_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let a = write_history(tmp.path(), "a.jsonl", &runs::invalid_history());
    let st = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["check", "--report"])
        .arg(tmp.path().join("x.html"))
        .arg(&a)
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&st.stderr).contains("--report"));
    assert!(!tmp.path().join("x.html").exists());
}
