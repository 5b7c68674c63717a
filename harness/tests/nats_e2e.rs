//! End to end through `splitbrain test`: NATS JetStream KV (3 `nats-server` members on the
//! netns network, a kill and two partitions with seed 12, about 15 s) finishes with a checked verdict (valid or
//! invalid, never unknown nor an error), a real history with faults, and each member's
//! JetStream store in its data dir. Whether NATS is linearizable is what the run reports, not
//! what this test assumes. Skipped (with a message) only outside CI when root or
//! `nats-server` is missing.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const NATS: &str = "/usr/sbin/nats-server";

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run_dir(results: &Path, name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results.join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.remove(0)
}

#[test]
fn nats_with_partitions_and_kills_on_netns_gets_a_checked_verdict_and_a_complete_store() {
    if !root() || !Path::new(NATS).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the nats end-to-end test: needs root and {NATS} (apt-get install -y nats-server)"
        );
        eprintln!("skipped: needs root and {NATS} (apt-get install -y nats-server)");
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["test", "--target", "nats", "--net", "netns"])
        .args([
            "--nemesis",
            "partition,kill",
            "--nemesis-interval",
            "2",
            "--nemesis-overlap",
        ])
        .args(["--nodes", "3", "--time-limit", "15", "--recovery-time", "3"])
        .args(["--seed", "12", "--name", "e2e"])
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dir = run_dir(results.path(), "e2e");
    let h: Vec<Value> = std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let oks = h
        .iter()
        .filter(|e| e["type"] == "ok" && e["process"] != "nemesis")
        .count();
    // NATS needs seconds to elect a new stream leader (12 s median after a kill on a shared
    // machine), so how many operations succeed depends on the machine's load; 50 is enough to
    // show a checked verdict over real answers (a cluster that never served would give 0).
    assert!(oks >= 50, "only {oks} ok operations\n{stdout}\n{stderr}");
    let faults: Vec<&str> = h
        .iter()
        .filter(|e| e["process"] == "nemesis")
        .filter_map(|e| e["f"].as_str())
        .filter(|f| f.starts_with("start-"))
        .collect();
    assert!(
        faults.contains(&"start-kill") && faults.contains(&"start-partition"),
        "both kinds must strike: {faults:?}"
    );
    let results_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let valid = &results_json["valid"];
    assert!(
        valid.is_boolean(),
        "verdict must be checked (valid or invalid), got {valid}\n{stdout}\n{stderr}"
    );
    assert_eq!(results_json["checker"]["partitions"]["unknown"], 0);
    let code = out.status.code();
    assert_eq!(
        code,
        Some(if valid == true { 0 } else { 1 }),
        "exit code must follow the verdict\n{stdout}\n{stderr}"
    );
    for id in ["n1", "n2", "n3"] {
        let js = dir.join("data").join(id).join("jetstream");
        for part in [
            "$G/streams/KV_sb/msgs",
            "$G/streams/KV_sb/meta.inf",
            "$SYS/_js_/_meta_",
        ] {
            assert!(
                js.join(part).exists(),
                "{id}: {part} missing under {}",
                js.display()
            );
        }
        assert!(dir.join("nodes").join(format!("{id}.conf")).exists());
    }
}
