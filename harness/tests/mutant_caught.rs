//! A hand-written Raft mutant (`scripts/mutants/`) is caught by a README configuration.
//!
//! The test copies the workspace sources to `<target>/mutant-ci/src`, applies one patch with
//! `git apply`, builds only that copy's `splitbrain-node` (target directory
//! `<target>/mutant-ci/target`, seeded on first use with hard links to this build's
//! `release/` artifacts, so only the node crate is compiled), and runs
//! `splitbrain test` with `SPLITBRAIN_EXE` pointing at a wrapper that runs the mutant for
//! `splitbrain node …`. The verdict must be invalid (exit 1).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The mutant, the configuration (a README one) and a seed that catches it.
const MUTANT: &str = "follower-local-reads";
const SEED: &str = "1";
const ARGS: &[&str] = &["--time-limit", "30"];

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

#[test]
fn the_follower_local_reads_mutant_is_caught_by_the_default_run() {
    let ws = workspace();
    let patch = ws.join("scripts/mutants").join(format!("{MUTANT}.patch"));
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
    assert!(st.success(), "building the {MUTANT} mutant failed");

    let node = tgt.join("release/splitbrain-node");
    let wrapper = base.join("splitbrain-mutant");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ \"$1\" = node ] && shift\nexec '{}' \"$@\"\n",
            node.display()
        ),
    )
    .unwrap();
    let mut perm = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&wrapper, perm).unwrap();

    let results = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .arg("test")
        .args(ARGS)
        .args(["--seed", SEED, "--results"])
        .arg(results.path())
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the {MUTANT} mutant was not caught (seed {SEED}, {ARGS:?}):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("INVALID"),
        "no INVALID verdict in:\n{stdout}"
    );
}
