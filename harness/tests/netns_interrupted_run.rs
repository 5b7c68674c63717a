//! `--net netns` leaves nothing behind: a run killed with SIGKILL leaves its namespaces (it
//! cannot clean up) but no member process; the next run removes the stale namespaces, and a
//! run that ends normally removes its own.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Our namespaces owned by `pid` (names `sb-<pid hex>x<seq>-…`).
fn namespaces_of(pid: u32) -> Vec<String> {
    let prefix = format!("sb-{pid:x}x");
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Pids of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

#[test]
fn stale_namespaces_of_a_killed_run_are_removed_by_the_next_run() {
    if !root() || Command::new("nft").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and nftables");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_splitbrain");
    let results = tempfile::tempdir().unwrap();
    let res = results.path().to_str().unwrap().to_string();
    let mut first = Command::new(bin)
        .args([
            "test",
            "--net",
            "netns",
            "--nodes",
            "3",
            "--time-limit",
            "60",
            "--nemesis",
            "partition",
        ])
        .args(["--name", "killed", "--results", &res])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id();
    // Wait until its members run (their data dirs are under our results dir).
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_mentioning(&res).len() < 3 {
        assert!(Instant::now() < deadline, "members did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(namespaces_of(pid).len(), 5, "bridge, clients and 3 members");
    first.kill().unwrap(); // SIGKILL: no cleanup code runs.
    first.wait().unwrap();
    // Members die with the harness.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&res).is_empty() {
        assert!(
            Instant::now() < deadline,
            "members outlived the harness: {:?}",
            processes_mentioning(&res)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        namespaces_of(pid).len(),
        5,
        "a SIGKILLed run leaves its namespaces"
    );

    let second = Command::new(bin)
        .args([
            "test",
            "--net",
            "netns",
            "--nodes",
            "3",
            "--time-limit",
            "2",
            "--nemesis",
            "none",
        ])
        .args(["--recovery-time", "0", "--name", "next", "--results", &res])
        .output()
        .unwrap();
    assert!(
        Path::new(&res).join("next").exists(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        namespaces_of(pid).is_empty(),
        "stale namespaces removed: {:?}",
        namespaces_of(pid)
    );
    // The second run worked inside its namespaces: clients reached the members.
    let run = std::fs::read_dir(Path::new(&res).join("next"))
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let oks = history
        .lines()
        .filter(|l| l.contains("\"type\":\"ok\""))
        .count();
    assert!(oks >= 20, "only {oks} ok operations on netns");
    // The second run's own namespaces are gone too (its pid is dead now, so none can match
    // a live run; check by the results dir's members and the names themselves).
    let left: Vec<String> = std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    let pid2_prefix = "sb-";
    for n in &left {
        if let Some(rest) = n.strip_prefix(pid2_prefix) {
            let owner = rest
                .split('x')
                .next()
                .and_then(|h| u32::from_str_radix(h, 16).ok());
            // Any namespace left must belong to a live process (another test run).
            if let Some(owner) = owner {
                assert!(
                    Path::new(&format!("/proc/{owner}")).exists(),
                    "leftover {n}"
                );
            }
        }
    }
    assert!(processes_mentioning(&res).is_empty());
}
