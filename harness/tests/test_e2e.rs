//! End-to-end runs of `splitbrain test` against the real node (child processes of the built
//! `splitbrain` binary). Each takes about 25 s.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn splitbrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_splitbrain"))
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `splitbrain test` with `args` into a fresh results dir; returns (exit code, stdout,
/// results dir).
fn run_test(args: &[&str]) -> (i32, String, tempfile::TempDir) {
    let results = tempfile::tempdir().unwrap();
    let out = splitbrain()
        .arg("test")
        .args(args)
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout, results)
}

#[test]
fn three_nodes_under_partitions_and_kills_end_valid_with_a_complete_store() {
    let (code, stdout, results) = run_test(&[
        "--nodes",
        "3",
        "--time-limit",
        "15",
        "--nemesis",
        "partition,kill",
        "--nemesis-interval",
        "3",
        "--recovery-time",
        "3",
        "--seed",
        "11",
        "--name",
        "e2e",
    ]);
    assert_eq!(code, 0, "verdict not valid:\n{stdout}");
    assert!(stdout.contains("seed 11"), "seed not printed");
    let run = std::fs::canonicalize(results.path().join("latest")).unwrap();
    assert!(run.starts_with(std::fs::canonicalize(results.path().join("e2e")).unwrap()));
    for f in [
        "test.json",
        "history.jsonl",
        "results.json",
        "nodes/n1.log",
        "nodes/n2.log",
        "nodes/n3.log",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let test = read_json(&run.join("test.json"));
    assert_eq!(test["seed"], 11);
    assert_eq!(test["options"]["nodes"], 3);
    let res = read_json(&run.join("results.json"));
    assert_eq!(res["valid"], Value::Bool(true));

    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let events: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ok = events.iter().filter(|e| e["type"] == "ok").count();
    assert!(ok >= 300, "only {ok} ok ops");
    let starts = events
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["f"].as_str().unwrap().starts_with("start-"))
        .count();
    let stops = events
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["f"].as_str().unwrap().starts_with("stop-"))
        .count();
    assert!(
        starts >= 2 && starts == stops,
        "{starts} starts, {stops} stops"
    );

    // The stored history re-checks with `splitbrain check`.
    let st = splitbrain()
        .arg("check")
        .arg(results.path().join("latest/history.jsonl"))
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0), "splitbrain check disagrees");
}

#[test]
fn stale_read_bug_is_caught() {
    let (code, stdout, results) = run_test(&[
        "--nodes",
        "3",
        "--time-limit",
        "15",
        "--nemesis",
        "isolate-one,isolate-leader",
        "--nemesis-interval",
        "3",
        "--recovery-time",
        "2",
        "--seed",
        "5",
        "--name",
        "stale",
        "--node-arg=--bug",
        "--node-arg=stale-read",
    ]);
    assert_eq!(code, 1, "stale reads not caught:\n{stdout}");
    let res = read_json(&results.path().join("latest/results.json"));
    assert_eq!(res["valid"], Value::Bool(false));
    assert!(
        !res["checker"]["counterexample"].is_null(),
        "no counterexample"
    );
}
