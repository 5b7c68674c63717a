//! A hand-written Raft mutant (`scripts/mutants/`) is caught by a README configuration.
//!
//! The test copies the workspace sources to `<target>/mutant-ci/src`, applies one patch with
//! `git apply`, builds only that copy's `splitbrain-node` (target directory
//! `<target>/mutant-ci/target`, seeded on first use with hard links to this build's
//! `release/` artifacts, so only the node crate is compiled), and runs
//! `splitbrain test` with `SPLITBRAIN_EXE` pointing at a wrapper that runs the mutant for
//! `splitbrain node …`. `follower-local-reads` must give an invalid verdict (exit 1);
//! `sessions-lost-in-snapshot` must fail the run-time monitor (`harness/src/monitor.rs`):
//! exit 3 with a `diverged` finding made *during the run*.
//!
//! `read-index-before-term-commit` must give an invalid verdict under the README's
//! message-network configuration (`--net message --unique-writes`).
//!
//! The tests share one source copy and run one at a time (a lock): only 2 cores.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The default configuration (`splitbrain test --time-limit 30`, a README one).
const ARGS: &[&str] = &["--time-limit", "30"];
/// The README's message-network configuration: `thorough` plus `msg-first-commit`.
const MESSAGE_ARGS: &[&str] = &["--net", "message", "--unique-writes", "--time-limit", "30"];
/// One mutant build and run at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    // Absolute, so that it can bound git's repository search.
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| workspace().join(d))
        .unwrap_or_else(|| workspace().join("target"))
}

/// Waits for `child` until `deadline`; kills it (and fails) past it.
fn wait_until(mut child: Child, deadline: Instant, what: &str) -> std::process::ExitStatus {
    loop {
        if let Some(st) = child.try_wait().expect("waiting for a child") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish before its deadline");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Copies the workspace (without `target/`, `results/` and `.git`) to `dst`, file by file,
/// leaving files whose contents are unchanged alone (their mtimes keep cargo incremental).
fn sync_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("creating the mutant source directory");
    for e in std::fs::read_dir(src).expect("reading the workspace") {
        let e = e.expect("a directory entry");
        let name = e.file_name();
        if src == workspace() && ["target", "results", ".git"].iter().any(|n| name == *n) {
            continue;
        }
        let (from, to) = (e.path(), dst.join(&name));
        let ft = e.file_type().expect("file type");
        if ft.is_dir() {
            sync_tree(&from, &to);
        } else if ft.is_file() {
            let new = std::fs::read(&from).expect("reading a source file");
            if std::fs::read(&to).ok().as_deref() != Some(&new[..]) {
                std::fs::write(&to, &new).expect("writing a source file");
            }
        }
    }
}

/// Builds the node with `scripts/mutants/<mutant>.patch` applied; returns a `splitbrain`
/// wrapper that runs it for `splitbrain node …`.
fn build_mutant(mutant: &str) -> PathBuf {
    let ws = workspace();
    let patch = ws.join("scripts/mutants").join(format!("{mutant}.patch"));
    assert!(patch.is_file(), "missing {}", patch.display());
    let base = target_dir().join("mutant-ci");
    let src = base.join("src");
    let tgt = base.join("target");

    // Sources: pristine copy, then the patch.
    sync_tree(&ws, &src);
    let st = Command::new("git")
        .arg("apply")
        .arg(&patch)
        .current_dir(&src)
        // The copy lies inside this checkout: stop git from finding the checkout's
        // repository (it would then skip paths "outside" the copy).
        .env("GIT_CEILING_DIRECTORIES", &base)
        .status()
        .expect("running git apply");
    assert!(st.success(), "{} does not apply", patch.display());

    // Seed the target directory with this build's artifacts (hard links, no copying): the
    // mutant's own units get new file names (its package path differs), so nothing shared
    // is rewritten.
    let seeded = tgt.join("release/deps");
    let warm = target_dir().join("release");
    if !seeded.exists() && warm.join("deps").is_dir() {
        std::fs::create_dir_all(tgt.join("release")).unwrap();
        for d in ["deps", "build", ".fingerprint"] {
            let _ = Command::new("cp")
                .arg("-al")
                .arg(warm.join(d))
                .arg(tgt.join("release"))
                .status();
        }
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "splitbrain-node"])
        .env("CARGO_TARGET_DIR", &tgt)
        .current_dir(&src)
        .spawn()
        .expect("running cargo build");
    let st = wait_until(
        build,
        Instant::now() + Duration::from_secs(900),
        "building the mutant",
    );
    // Undo the patch so the next run starts from the pristine sources again.
    let _ = Command::new("git")
        .args(["apply", "-R"])
        .arg(&patch)
        .current_dir(&src)
        // The copy lies inside this checkout: stop git from finding the checkout's
        // repository (it would then skip paths "outside" the copy).
        .env("GIT_CEILING_DIRECTORIES", &base)
        .status();
    assert!(st.success(), "building the {mutant} mutant failed");

    // The binary is copied next to its wrapper: the next mutant's build overwrites
    // target/release/splitbrain-node.
    let node = tgt.join("release/splitbrain-node");
    let kept = base.join(format!("splitbrain-node-{mutant}"));
    std::fs::copy(&node, &kept).expect("keeping the mutant's binary");
    let wrapper = base.join(format!("splitbrain-{mutant}"));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ \"$1\" = node ] && shift\nexec '{}' \"$@\"\n",
            kept.display()
        ),
    )
    .unwrap();
    let mut perm = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&wrapper, perm).unwrap();
    wrapper
}

/// Runs `splitbrain test ARGS --seed SEED` against `wrapper`'s node; returns its output.
fn run_against(wrapper: &Path, seed: &str, results: &Path) -> Output {
    run_with(wrapper, ARGS, seed, results)
}

/// Runs `splitbrain test <args> --seed SEED` against `wrapper`'s node; returns its output.
fn run_with(wrapper: &Path, args: &[&str], seed: &str, results: &Path) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .arg("test")
        .args(args)
        .args(["--seed", seed, "--results"])
        .arg(results)
        .env("SPLITBRAIN_EXE", &wrapper)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running splitbrain test");
    let pid = child.id();
    let out = {
        let deadline = Instant::now() + Duration::from_secs(180);
        let handle = std::thread::spawn(move || child.wait_with_output());
        while !handle.is_finished() {
            if Instant::now() > deadline {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                panic!("splitbrain test did not finish within 180 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        handle.join().unwrap().expect("splitbrain test output")
    };
    out
}

#[test]
fn the_follower_local_reads_mutant_is_caught_by_the_default_run() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (mutant, seed) = ("follower-local-reads", "1");
    let wrapper = build_mutant(mutant);
    let results = tempfile::tempdir().unwrap();
    let out = run_against(&wrapper, seed, results.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the {mutant} mutant was not caught (seed {seed}, {ARGS:?}):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("INVALID"),
        "no INVALID verdict in:\n{stdout}"
    );
}

/// A fresh leader that serves ReadIndex before its term's first commit answers from a
/// commit index behind what the deposed leader acknowledged; `msg-first-commit` (part of
/// `thorough` on the message network) makes that window last, and the read bursts after
/// the leader change read the keys just written.
#[test]
fn the_read_index_before_term_commit_mutant_is_caught_by_the_message_network_run() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (mutant, seed) = ("read-index-before-term-commit", "1");
    let wrapper = build_mutant(mutant);
    let results = tempfile::tempdir().unwrap();
    let out = run_with(&wrapper, MESSAGE_ARGS, seed, results.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the {mutant} mutant was not caught (seed {seed}, {MESSAGE_ARGS:?}):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let struck = stdout
        .lines()
        .find(|l| l.starts_with("nemesis struck"))
        .unwrap_or("");
    assert!(
        struck.contains("msg-first-commit"),
        "msg-first-commit never struck: {struck:?}"
    );
}

/// The clients see nothing wrong (every session-less member still answers correctly until a
/// retry crosses a snapshot, and the default run sends none), and at the end every member
/// may have restarted from the same snapshot and agree again; but while one member runs
/// without the sessions the others keep, its state at an applied index differs from theirs.
#[test]
fn the_sessions_lost_in_snapshot_mutant_fails_the_run_time_monitor_of_the_default_run() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (mutant, seed) = ("sessions-lost-in-snapshot", "1");
    let wrapper = build_mutant(mutant);
    let results = tempfile::tempdir().unwrap();
    let out = run_against(&wrapper, seed, results.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the {mutant} mutant did not fail the cluster check (seed {seed}, {ARGS:?}):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res = find_results(results.path());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&res).unwrap()).unwrap();
    let findings = v["cluster_check"]["findings"].as_array().expect("findings");
    assert!(
        findings.iter().any(|f| f["kind"] == "diverged"
            && f["detail"]
                .as_str()
                .unwrap_or("")
                .starts_with("during the run")),
        "no divergence seen during the run: {findings:?}"
    );
    assert!(
        v["cluster_check"]["during_run"]["indexes_compared"].as_u64() > Some(0),
        "{}",
        v["cluster_check"]
    );
}

/// The `results.json` of the one run under `dir`.
fn find_results(dir: &Path) -> PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "results.json") {
                return p;
            }
        }
    }
    panic!("no results.json under {}", dir.display());
}
