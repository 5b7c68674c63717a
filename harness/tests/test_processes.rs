//! Nothing the harness starts outlives it, and the same seed gives the same schedule.

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn splitbrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_splitbrain"))
}

/// Pids of the direct children of `pid` (all its threads).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// True if `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn no_member_process_survives_sigkill_of_the_harness() {
    let results = tempfile::tempdir().unwrap();
    let mut harness = splitbrain()
        .args([
            "test",
            "--nodes",
            "3",
            "--time-limit",
            "60",
            "--nemesis",
            "kill",
            "--nemesis-interval",
            "1",
            "--seed",
            "3",
            "--results",
        ])
        .arg(results.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut kids = Vec::new();
    // Wait until the members run and at least one kill/restart has happened.
    while Instant::now() < deadline {
        kids = children(harness.id());
        if kids.len() == 3 && results.path().join("latest/history.jsonl").exists() {
            let h = std::fs::read_to_string(results.path().join("latest/history.jsonl"))
                .unwrap_or_default();
            if h.contains("stop-kill") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    kids = if kids.is_empty() {
        children(harness.id())
    } else {
        kids
    };
    assert_eq!(kids.len(), 3, "expected 3 member processes, saw {kids:?}");
    let kids = children(harness.id()); // after restarts: the current members
    harness.kill().unwrap(); // SIGKILL
    harness.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while kids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = kids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "members outlived the harness: {left:?}");
}

fn dry_run(seed: &str) -> Value {
    let out = splitbrain()
        .args([
            "test",
            "--dry-run",
            "--nemesis",
            "all",
            "--time-limit",
            "60",
            "--seed",
            seed,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn same_seed_gives_the_same_faults_and_operations() {
    let a = dry_run("77");
    let b = dry_run("77");
    let c = dry_run("78");
    assert_eq!(a, b);
    assert!(a["schedule"].as_array().unwrap().len() >= 4, "{a}");
    assert_ne!(a["schedule"], c["schedule"]);
    assert_ne!(a["worker_ops"], c["worker_ops"]);
}

#[test]
fn bad_flags_exit_254_naming_the_flag() {
    for (flag, value) in [
        ("--nemesis", "flood"),
        ("--workload", "queue"),
        ("--concurrency", "x"),
        ("--target", "zk"),
    ] {
        let out = splitbrain()
            .args(["test", "--dry-run", flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(254), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag}: {err}");
    }
}
