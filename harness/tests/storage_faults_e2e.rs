//! End-to-end runs of the storage faults (`power-loss`, `corrupt`) against the real node, on
//! fault filesystems (FUSE: needs /dev/fuse and root, as in CI). Each run takes about 20 s.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn splitbrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_splitbrain"))
}

/// Runs `splitbrain test` with `args` into `results`; returns (exit code, stdout).
fn run_in(results: &Path, args: &[&str]) -> (i32, String) {
    let out = splitbrain()
        .arg("test")
        .args(args)
        .arg("--results")
        .arg(results)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

/// Fault-filesystem mounts at or below `dir` (from /proc/self/mountinfo).
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter(|l| l.contains("splitbrain-faultfs"))
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|mp| Path::new(mp).starts_with(&dir))
        .collect()
}

fn history(results: &Path) -> Vec<Value> {
    let run = std::fs::canonicalize(results.join("latest")).unwrap();
    std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn nemesis_values(events: &[Value], f: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["f"] == f)
        .map(|e| e["value"].clone())
        .collect()
}

/// The catch-table configuration for `--bug no-fsync` (docs/catching-bugs.md).
const CATCH: &[&str] = &[
    "--nodes",
    "3",
    "--time-limit",
    "20",
    "--nemesis",
    "power-loss",
    "--nemesis-interval",
    "3",
    "--recovery-time",
    "3",
];

#[test]
fn the_correct_node_under_power_loss_is_valid_and_the_history_says_what_was_lost() {
    let results = tempfile::tempdir().unwrap();
    let mut args = CATCH.to_vec();
    args.extend(["--seed", "1"]);
    let (code, stdout) = run_in(results.path(), &args);
    assert_eq!(code, 0, "verdict not valid:\n{stdout}");
    let events = history(results.path());
    let starts = nemesis_values(&events, "start-power-loss");
    assert!(!starts.is_empty(), "no power loss happened:\n{stdout}");
    for v in &starts {
        let nodes = v["nodes"].as_array().unwrap();
        let lost = v["lost"].as_object().expect("lost per member");
        assert_eq!(lost.len(), nodes.len(), "{v}");
        assert!(v["bytes_lost"].is_u64() && v["files_lost"].is_u64(), "{v}");
        assert!(v.get("error").is_none(), "{v}");
    }
    assert_eq!(
        nemesis_values(&events, "stop-power-loss").len(),
        starts.len()
    );
    assert!(stdout.contains("power-loss n"), "{stdout}");
    assert!(
        mounts_under(results.path()).is_empty(),
        "left mounted: {:?}",
        mounts_under(results.path())
    );
    // What survived is in disks/<id> (the faultfs backing store).
    let run = std::fs::canonicalize(results.path().join("latest")).unwrap();
    assert!(run.join("disks/n1/namespace.json").is_file());
}

#[test]
fn a_node_that_acknowledges_before_fsync_is_caught_by_power_loss() {
    let results = tempfile::tempdir().unwrap();
    let mut args = CATCH.to_vec();
    args.extend(["--seed", "1", "--node-arg=--bug", "--node-arg=no-fsync"]);
    let (code, stdout) = run_in(results.path(), &args);
    assert_eq!(code, 1, "--bug no-fsync not caught:\n{stdout}");
    let lost: u64 = nemesis_values(&history(results.path()), "start-power-loss")
        .iter()
        .map(|v| v["bytes_lost"].as_u64().unwrap())
        .sum();
    assert!(lost > 0, "a no-fsync node lost nothing:\n{stdout}");
    assert!(mounts_under(results.path()).is_empty());
}

/// Waits (≤ 20 s) until the harness has mounted its members' data dirs.
fn wait_for_mounts(results: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while mounts_under(results).len() < n {
        assert!(Instant::now() < deadline, "the harness never mounted {n}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn_long_run(results: &Path) -> std::process::Child {
    splitbrain()
        .args([
            "test",
            "--nodes",
            "3",
            "--time-limit",
            "60",
            "--nemesis",
            "none",
            "--fault-fs",
            "--recovery-time",
            "0",
            "--seed",
            "2",
            "--results",
        ])
        .arg(results)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the harness did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn nothing_stays_mounted_after_ctrl_c() {
    let results = tempfile::tempdir().unwrap();
    let mut child = spawn_long_run(results.path());
    wait_for_mounts(results.path(), 3);
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    wait_exit(&mut child, 30);
    assert!(
        mounts_under(results.path()).is_empty(),
        "left mounted after Ctrl-C: {:?}",
        mounts_under(results.path())
    );
}

#[test]
fn the_next_start_unmounts_what_a_sigkilled_harness_left() {
    let results = tempfile::tempdir().unwrap();
    let mut child = spawn_long_run(results.path());
    wait_for_mounts(results.path(), 3);
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(
        mounts_under(results.path()).len(),
        3,
        "a SIGKILLed harness cannot unmount; expected its 3 dead mounts"
    );
    let (code, stdout) = run_in(
        results.path(),
        &[
            "--nodes",
            "3",
            "--time-limit",
            "3",
            "--nemesis",
            "none",
            "--fault-fs",
            "--recovery-time",
            "0",
            "--seed",
            "3",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        mounts_under(results.path()).is_empty(),
        "leftovers: {:?}",
        mounts_under(results.path())
    );
}

#[test]
fn the_correct_node_refuses_a_flipped_bit_and_the_summary_names_file_and_offset() {
    // Seed 2: the second corrupt flips one bit mid-log in n1 and n2 (recorded in the history).
    let results = tempfile::tempdir().unwrap();
    let (code, stdout) = run_in(
        results.path(),
        &[
            "--nodes",
            "3",
            "--time-limit",
            "20",
            "--nemesis",
            "corrupt",
            "--nemesis-interval",
            "3",
            "--recovery-time",
            "3",
            "--seed",
            "2",
        ],
    );
    assert_eq!(code, 0, "a refusing node must not lose data:\n{stdout}");
    let starts = nemesis_values(&history(results.path()), "start-corrupt");
    let flips: Vec<&Value> = starts.iter().filter(|v| v["mode"] == "bit-flip").collect();
    assert!(!flips.is_empty(), "no bit flip in this schedule:\n{stdout}");
    for v in &flips {
        for (_, d) in v["damage"].as_object().unwrap() {
            assert!(d["file"].is_string() && d["offset"].is_u64() && d["bit"].is_u64());
        }
    }
    let refused: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("refused its data: "))
        .collect();
    assert!(!refused.is_empty(), "no refusal reported:\n{stdout}");
    // The damaged file is the WAL or (with the harness's snapshot interval) the snapshot;
    // either way the line names the file and the offset.
    assert!(
        refused.iter().all(|l| {
            ["wal.log@", "snapshot.bin@"].iter().any(|f| {
                l.split(f)
                    .nth(1)
                    .is_some_and(|off| off.trim().parse::<u64>().is_ok())
            })
        }),
        "{refused:?}"
    );
}

/// `corrupt-length` against the node's old framing rules (`--bug torn-tail-any-damage`, issue
/// 12) and the correct node, on the same seeded schedule: the old rules take a damaged length
/// field for a torn tail and silently drop acknowledged writes (invalid); the correct node
/// refuses the damaged log (valid, the refusals named).
#[test]
fn corrupt_length_catches_the_torn_tail_any_damage_bug_and_the_correct_node_refuses() {
    let args = [
        "--nodes",
        "3",
        "--time-limit",
        "12",
        "--workload",
        "kv",
        "--nemesis",
        "corrupt-length",
        "--nemesis-interval",
        "2",
        "--recovery-time",
        "2",
        "--seed",
        "1",
    ];
    let buggy = tempfile::tempdir().unwrap();
    let mut with_bug = args.to_vec();
    with_bug.extend(["--node-arg=--bug", "--node-arg=torn-tail-any-damage"]);
    let (code, stdout) = run_in(buggy.path(), &with_bug);
    assert_eq!(
        code, 1,
        "the old rules must lose acknowledged writes:\n{stdout}"
    );
    let starts = nemesis_values(&history(buggy.path()), "start-corrupt");
    assert!(
        starts.iter().all(|v| v["mode"] == "length-flip"
            && v["damage"]
                .as_object()
                .unwrap()
                .values()
                .all(|d| d["length_field_of"].is_u64())),
        "{starts:?}"
    );
    let correct = tempfile::tempdir().unwrap();
    let (code, stdout) = run_in(correct.path(), &args);
    assert_eq!(code, 0, "the correct node refuses, never loses:\n{stdout}");
    assert!(stdout.contains("refused its data: "), "{stdout}");
}
