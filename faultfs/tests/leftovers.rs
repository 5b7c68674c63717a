//! Nothing stays mounted: after a drop, after a panic, after SIGKILL of the mounting process
//! (then `cleanup_leftovers` removes the dead mount).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use splitbrain_faultfs::{cleanup_leftovers, mount};

fn mounted(mp: &Path) -> bool {
    let mp = mp.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(mp))
}

#[test]
fn nothing_is_left_mounted_after_the_handle_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let m = mount(dir.path().join("b"), dir.path().join("m")).unwrap();
    let mp = m.mount_point().to_path_buf();
    assert!(mounted(&mp));
    std::fs::write(mp.join("f"), b"x").unwrap();
    drop(m);
    assert!(!mounted(&mp));
}

#[test]
fn unmount_with_a_file_still_open_detaches_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let m = mount(dir.path().join("b"), dir.path().join("m")).unwrap();
    let mp = m.mount_point().to_path_buf();
    let open = std::fs::File::create(mp.join("f")).unwrap();
    m.unmount().unwrap();
    assert!(!mounted(&mp));
    drop(open);
}

#[test]
fn nothing_is_left_mounted_after_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (b, mp) = (dir.path().join("b"), dir.path().join("m"));
    let mp2 = mp.clone();
    let r = std::thread::spawn(move || {
        let _m = mount(&b, &mp2).unwrap();
        assert!(mounted(&mp2.canonicalize().unwrap()));
        panic!("a harness bug");
    })
    .join();
    assert!(r.is_err(), "the thread panicked");
    assert!(!mounted(&mp.canonicalize().unwrap()));
}

#[test]
fn cleanup_leftovers_unmounts_the_mount_of_a_sigkilled_process() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let mp = root.join("runs/n1");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultfs-mount"))
        .arg(root.join("backing"))
        .arg(&mp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("mounted"), "child said {line:?}");
    assert!(mounted(&mp));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(mounted(&mp), "a SIGKILLed process leaves its mount behind");
    assert!(
        std::fs::read_dir(&mp).is_err(),
        "the dead mount is not usable"
    );

    let removed = cleanup_leftovers(root.join("runs")).unwrap();
    assert_eq!(removed, vec![mp.clone()]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while mounted(&mp) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!mounted(&mp));
    // and the directory is usable again (a new mount on it works)
    let m = mount(root.join("backing"), &mp).unwrap();
    assert!(
        cleanup_leftovers(root.join("runs")).unwrap().is_empty(),
        "live mounts are kept"
    );
    assert!(mounted(&mp));
    drop(m);
}

#[test]
fn the_mount_binary_answers_power_loss_on_stdin_and_unmounts_at_eof() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let mp = root.join("m");
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultfs-mount"))
        .arg(root.join("b"))
        .arg(&mp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("mounted"), "{line:?}");
    std::fs::write(mp.join("f"), b"unsynced").unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "power-loss 5").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("\"paths_lost\":[\"/f\"]"), "{line}");
    drop(stdin); // EOF: unmount and exit
    assert!(child.wait().unwrap().success());
    assert!(!mounted(&mp));
}
