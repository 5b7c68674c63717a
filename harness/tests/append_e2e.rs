//! The `append` workload end to end through `splitbrain test`: valid against the correct node,
//! invalid against a node with `--bug stale-read`, and valid against etcd (append as a
//! read-modify-write txn guarded by the key's mod revision) on the netns network.
//!
//! The node tests need the node's `POST /kv/{key}/append` (DESIGN §3). Against a node that
//! does not have it (every append answered `404`), they say so and stop, unless `CI` is set,
//! where they fail.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `splitbrain test --workload append` with `args` into a fresh results dir; returns
/// the exit code, the run directory and the output.
fn run(args: &[&str]) -> (i32, PathBuf, String, tempfile::TempDir) {
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["test", "--workload", "append", "--name", "append"])
        .args(args)
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let dir = std::fs::canonicalize(results.path().join("latest")).unwrap();
    (out.status.code().unwrap_or(-1), dir, text, results)
}

fn history(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn count(h: &[Value], f: &str, kind: &str) -> usize {
    h.iter()
        .filter(|e| e["f"] == f && e["type"] == kind)
        .count()
}

/// True (and a message) if the node under test has no append endpoint: no append was ok and
/// the node answered `not-found` (its answer to an unknown route).
fn node_lacks_append(h: &[Value], dir: &Path) -> bool {
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let reasons = &results["stats"]["reasons"];
    let lacks = count(h, "append", "ok") == 0
        && (reasons.get("not-found").is_some() || reasons.get("http-404").is_some());
    if lacks {
        assert!(
            std::env::var_os("CI").is_none(),
            "the node has no POST /kv/{{key}}/append (appends answered not-found)"
        );
        eprintln!("skipped: the node has no POST /kv/{{key}}/append yet (appends not-found)");
    }
    lacks
}

/// Appends are ok, reads return whole lists as the `append-kv` model's strings.
fn assert_real_append_history(h: &[Value]) {
    assert!(
        count(h, "append", "ok") >= 50,
        "ok appends: {}",
        count(h, "append", "ok")
    );
    let list_read = h.iter().any(|e| {
        e["f"] == "read"
            && e["type"] == "ok"
            && e["value"]
                .as_str()
                .is_some_and(|s| s.matches(',').count() >= 2)
    });
    assert!(
        list_read,
        "some read returned a list of two or more elements"
    );
    assert!(
        h.iter()
            .filter(|e| e["f"] == "append" && e["type"] == "invoke")
            .all(|e| e["key"].is_string() && e["value"].as_str().is_some_and(|s| s.ends_with(','))),
        "appends carry a key and an element token"
    );
}

/// Node-dependent (needs the node's append endpoint).
#[test]
fn append_against_the_correct_node_under_partitions_and_kills_is_valid() {
    let (code, dir, text, _keep) = run(&[
        "--nodes",
        "3",
        "--time-limit",
        "12",
        "--nemesis",
        "partition,kill",
        "--nemesis-interval",
        "3",
        "--recovery-time",
        "3",
        "--seed",
        "5",
    ]);
    let h = history(&dir);
    if node_lacks_append(&h, &dir) {
        return;
    }
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    // Valid; or, on a loaded machine, unknown for a key whose many indefinite appends ran the
    // checker past its deadline (seen once in CI: 17 info appends, 134 s) — never invalid.
    let invalid_keys = text
        .lines()
        .find(|l| l.starts_with("verdict"))
        .and_then(|l| l.split(" invalid").next())
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        code == 0 || (code == 2 && invalid_keys == Some(0)),
        "valid run expected (or unknown with no invalid key):\n{text}"
    );
    assert_real_append_history(&h);
    assert_eq!(results["checker"]["model"], "append-kv", "{results}");
}

/// Node-dependent (needs the node's append endpoint).
#[test]
fn append_against_a_node_with_stale_reads_is_invalid() {
    let (code, dir, text, _keep) = run(&[
        "--nodes",
        "3",
        "--time-limit",
        "15",
        "--nemesis",
        "isolate-leader",
        "--nemesis-interval",
        "3",
        "--recovery-time",
        "3",
        "--seed",
        "1",
        "--node-arg=--bug",
        "--node-arg=stale-read",
    ]);
    let h = history(&dir);
    if node_lacks_append(&h, &dir) {
        return;
    }
    assert_eq!(code, 1, "invalid run expected:\n{text}");
}

#[test]
fn append_against_etcd_on_netns_is_valid() {
    if !root() || !Path::new("/usr/bin/etcd").exists() {
        eprintln!("skipped: needs root and etcd-server");
        return;
    }
    let (code, dir, text, _keep) = run(&[
        "--target",
        "etcd",
        "--net",
        "netns",
        "--nemesis",
        "partition,kill",
        "--nodes",
        "3",
        "--time-limit",
        "15",
        "--nemesis-interval",
        "3",
        "--recovery-time",
        "3",
        "--seed",
        "8",
    ]);
    assert_eq!(code, 0, "valid run expected:\n{text}");
    assert_real_append_history(&history(&dir));
}
