//! `splitbrain serve` over HTTP: the index lists every run (damaged ones marked), filters work,
//! raw files are served, and nothing outside the results directory is reachable.

use splitbrain::testkit::{runs, serve as server};

use server::Serve;
use std::path::{Path, PathBuf};

const SECRET: &str = "TOP-SECRET-OUTSIDE-RESULTS";

/// results/ with a valid run (target splitbrain), an invalid run (target etcd), a damaged run,
/// a `latest` symlink, and a symlink pointing outside; `secret` lies beside results/.
fn store(tmp: &Path) -> PathBuf {
    let root = tmp.join("results");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(tmp.join("secret"), SECRET).unwrap();
    runs::write_valid_run(
        &root,
        "register-partition",
        "20261122T100000",
        300,
        "splitbrain",
    );
    let bad = runs::write_invalid_run(&root, "register-etcd", "20261122T110000", "etcd");
    runs::write_damaged_run(&root, "crashed", "20261122T120000");
    std::os::unix::fs::symlink(&bad, root.join("latest")).unwrap();
    std::os::unix::fs::symlink(tmp.join("secret"), bad.join("escape")).unwrap();
    std::os::unix::fs::symlink(tmp, root.join("register-etcd").join("up")).unwrap();
    root
}

#[test]
fn path_traversal_attempts_get_404() {
    let tmp = tempfile::tempdir().unwrap();
    let root = store(tmp.path());
    let serve = Serve::start(Path::new(env!("CARGO_BIN_EXE_splitbrain")), &root);
    // A legitimate file is served, so a 404 below means refused, not broken.
    let (status, body) = serve.get("/runs/register-etcd/20261122T110000/history.jsonl");
    assert_eq!(status, 200);
    assert!(body.contains("\"f\":\"write\""), "{body}");
    let (status, _) = serve.get("/runs/latest/results.json");
    assert_eq!(
        status, 200,
        "a symlink that stays inside the results directory is fine"
    );
    for path in [
        "/runs/../secret",
        "/runs/../../secret",
        "/runs/%2e%2e/secret",
        "/runs/%2E%2E/secret",
        "/runs/..%2fsecret",
        "/runs/..%2Fsecret",
        "/runs/register-etcd/..%2F..%2Fsecret",
        "/runs/register-etcd/20261122T110000/%2e%2e/%2e%2e/%2e%2e/secret",
        "/runs/%252e%252e/secret",
        "/runs/..\\secret",
        "/runs/..%5csecret",
        "/runs//etc/passwd",
        "/runs/%2Fetc%2Fpasswd",
        "/runs/%2fetc/passwd",
        &format!("/runs/{}", tmp.path().join("secret").display()),
        "/runs/register-etcd/20261122T110000/escape",
        "/runs/register-etcd/up/secret",
        "/runs/register-etcd/up/",
        "/runs/%00",
        "/runs/%ff",
        "/runs/%zz",
        "/../secret",
        "/compare?run=../secret&run=register-etcd/20261122T110000",
        "/compare?run=register-etcd/up&run=register-etcd/20261122T110000",
    ] {
        let (status, body) = serve.get(path);
        assert_eq!(status, 404, "{path} must be 404, got {status}: {body}");
        assert!(!body.contains(SECRET), "{path} leaked the secret");
    }
}

#[test]
fn index_lists_every_run_newest_first_and_marks_the_damaged_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = store(tmp.path());
    let serve = Serve::start(Path::new(env!("CARGO_BIN_EXE_splitbrain")), &root);
    let (status, body) = serve.get("/");
    assert_eq!(status, 200);
    let crashed = body
        .find("data-run=\"crashed/20261122T120000\"")
        .expect("damaged run listed");
    let etcd = body
        .find("data-run=\"register-etcd/20261122T110000\"")
        .expect("invalid run listed");
    let valid = body
        .find("data-run=\"register-partition/20261122T100000\"")
        .expect("valid run listed");
    assert!(crashed < etcd && etcd < valid, "newest first");
    assert_eq!(
        body.matches("<tr class=\"run").count(),
        3,
        "`latest` is not listed twice"
    );
    assert!(body.contains("data-verdict=\"invalid\" data-damaged=\"false\""));
    assert!(body.contains("data-verdict=\"damaged\" data-damaged=\"true\""));
    assert!(body.contains("test.json is damaged"), "says what is wrong");

    assert!(
        body.contains(">all (3)</a>")
            && body.contains(">invalid (1)</a>")
            && body.contains(">damaged (1)</a>")
    );
    let (_, only_invalid) = serve.get("/?verdict=invalid");
    assert_eq!(only_invalid.matches("<tr class=\"run").count(), 1);
    assert!(only_invalid.contains("register-etcd/20261122T110000"));
    let (_, etcd_only) = serve.get("/?target=etcd");
    assert_eq!(etcd_only.matches("<tr class=\"run").count(), 1);
    let (_, damaged) = serve.get("/?verdict=damaged");
    assert!(
        damaged.contains("crashed/20261122T120000")
            && damaged.matches("<tr class=\"run").count() == 1
    );
}

#[test]
fn reports_are_rendered_for_runs_without_one_and_compare_shows_two() {
    let tmp = tempfile::tempdir().unwrap();
    let root = store(tmp.path());
    let serve = Serve::start(Path::new(env!("CARGO_BIN_EXE_splitbrain")), &root);
    let (status, body) = serve.get("/runs/register-etcd/20261122T110000/report.html");
    assert_eq!(status, 200);
    assert!(body.contains("id=\"counterexample\""));
    let (status, body) = serve.get("/runs/crashed/20261122T120000/report.html");
    assert_eq!(status, 200, "a crashed run still has a page");
    assert!(body.contains("problems reading the history"));
    let (status, body) = serve.get("/runs/register-partition/20261122T100000/nodes/");
    assert_eq!(status, 200);
    assert!(body.contains("n1.log"));
    let (status, body) = serve.get(
        "/compare?run=register-etcd%2F20261122T110000&run=register-partition%2F20261122T100000",
    );
    assert_eq!(status, 200);
    assert_eq!(body.matches("<iframe").count(), 2);
    let (status, _) = serve.get("/compare?run=register-etcd%2F20261122T110000");
    assert_eq!(status, 400);
}

#[test]
fn sigterm_shuts_the_server_down_gracefully() {
    let tmp = tempfile::tempdir().unwrap();
    let root = store(tmp.path());
    let mut serve = Serve::start(Path::new(env!("CARGO_BIN_EXE_splitbrain")), &root);
    assert_eq!(serve.get("/").0, 200);
    let status = serve
        .terminate(std::time::Duration::from_secs(10))
        .expect("serve exits within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn other_methods_and_unknown_paths_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = store(tmp.path());
    let serve = Serve::start(Path::new(env!("CARGO_BIN_EXE_splitbrain")), &root);
    assert_eq!(serve.get("/nope").0, 404);
    assert_eq!(
        serve
            .get("/runs/register-etcd/20261122T110000/missing.json")
            .0,
        404
    );
    let mut s = std::net::TcpStream::connect(serve.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let body = "x".repeat(64 * 1024);
    use std::io::{Read, Write};
    let _ = write!(
        s,
        "POST / HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status: u16 = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(
        status == 405 || status == 413,
        "POST with a 64 KiB body: {status}"
    );
}
