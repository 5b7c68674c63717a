//! End to end through `splitbrain test`: etcd (3 members on the netns network, partitions and
//! kills, about 20 s) must come out valid with a real history; the `cmd` target runs the
//! project's own node from a command template.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The single run directory under `results/<name>/`.
fn run_dir(results: &Path, name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results.join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.remove(0)
}

fn history(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn etcd_with_partitions_and_kills_on_netns_is_valid() {
    if !root() || !Path::new("/usr/bin/etcd").exists() {
        eprintln!("skipped: needs root and etcd-server");
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args([
            "test",
            "--target",
            "etcd",
            "--net",
            "netns",
            "--nemesis",
            "partition,kill",
        ])
        .args([
            "--nodes",
            "3",
            "--time-limit",
            "20",
            "--nemesis-interval",
            "3",
        ])
        .args(["--recovery-time", "3", "--seed", "42", "--name", "e2e"])
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dir = run_dir(results.path(), "e2e");
    let h = history(&dir);
    let oks = h
        .iter()
        .filter(|e| e["type"] == "ok" && e["process"] != "nemesis")
        .count();
    assert!(oks >= 300, "only {oks} ok operations\n{stdout}\n{stderr}");
    let faults: Vec<&str> = h
        .iter()
        .filter(|e| e["process"] == "nemesis")
        .filter_map(|e| e["f"].as_str())
        .filter(|f| f.starts_with("start-"))
        .collect();
    assert!(
        faults.contains(&"start-kill") || faults.contains(&"start-partition"),
        "{faults:?}"
    );
    assert!(faults.len() >= 3, "{faults:?}");
    for f in ["test.json", "results.json", "nodes/n1.log", "nodes/n3.log"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "etcd must be valid\n{stdout}\n{stderr}"
    );
}

#[test]
fn cmd_target_runs_the_node_from_a_template() {
    let results = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_splitbrain");
    let template =
        format!("{bin} node --id {{id}} --listen {{listen}} {{peers}} --data-dir {{data-dir}} --cluster-token {{token}}");
    let out = Command::new(bin)
        .args([
            "test",
            "--target",
            "cmd",
            "--node-cmd",
            &template,
            "--nemesis",
            "kill",
        ])
        .args([
            "--nodes",
            "3",
            "--time-limit",
            "8",
            "--nemesis-interval",
            "2",
        ])
        .args(["--recovery-time", "2", "--seed", "7", "--name", "cmd"])
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dir = run_dir(results.path(), "cmd");
    let test_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("test.json")).unwrap()).unwrap();
    assert_eq!(test_json["options"]["target"], "cmd");
    assert_eq!(test_json["options"]["node_cmd"], template.as_str());
    let oks = history(&dir).iter().filter(|e| e["type"] == "ok").count();
    assert!(oks >= 100, "only {oks} ok operations\n{stdout}\n{stderr}");
    let log = std::fs::read_to_string(dir.join("nodes/n2.log")).unwrap_or_default();
    assert!(!log.is_empty(), "the member wrote its log");
    assert_eq!(out.status.code(), Some(0), "valid\n{stdout}\n{stderr}");
}

#[test]
fn cmd_target_without_a_template_is_a_bad_argument() {
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["test", "--target", "cmd", "--time-limit", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--node-cmd"));
}

#[test]
fn bench_json_gives_every_figure_for_both_targets() {
    if !Path::new("/usr/bin/etcd").exists() {
        eprintln!("skipped: needs etcd-server");
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args([
            "bench",
            "--target",
            "splitbrain,etcd",
            "--duration",
            "0.5",
            "--failovers",
            "2",
        ])
        .arg("--json")
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let targets = v.as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for (t, name) in targets.iter().zip(["splitbrain", "etcd"]) {
        assert_eq!(t["target"], name);
        assert!(t["write_latency"]["ops"].as_u64().unwrap() > 10, "{t}");
        assert!(t["read_latency"]["ops"].as_u64().unwrap() > 10, "{t}");
        for n in ["1", "16", "64"] {
            assert!(
                t["throughput"][n].as_f64().unwrap() > 10.0,
                "{name} {n} clients: {t}"
            );
        }
        assert_eq!(t["failover_s"].as_array().unwrap().len(), 2);
        let med = t["failover_median_s"].as_f64().unwrap();
        assert!(
            med > 0.0 && med <= t["failover_max_s"].as_f64().unwrap(),
            "{t}"
        );
    }
}
