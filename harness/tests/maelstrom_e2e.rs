//! End-to-end runs of `splitbrain test --target maelstrom` against the Python fixtures in
//! `tests/fixtures/maelstrom/`: a correct single-leader lin-kv node, a broken one (local maps),
//! one that crashes on startup, one that writes bad input. Each run takes about 10 s.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/maelstrom")
        .join(name);
    format!("python3 {}", p.display())
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    dir: Option<PathBuf>,
    _results: tempfile::TempDir,
}

impl Run {
    fn results(&self) -> Value {
        read_json(
            &self
                .dir
                .as_ref()
                .expect("a run directory")
                .join("results.json"),
        )
    }
    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.as_ref().unwrap().join("history.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn run(node: &str, time_limit: &str, args: &[&str]) -> Run {
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args([
            "test",
            "--target",
            "maelstrom",
            "--node-cmd",
            &fixture(node),
        ])
        .args([
            "--time-limit",
            time_limit,
            "--recovery-time",
            "1",
            "--seed",
            "7",
        ])
        .args(args)
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("{stdout}\n{stderr}");
    let dir = std::fs::canonicalize(results.path().join("latest")).ok();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr,
        dir,
        _results: results,
    }
}

fn no_fixture_left_running(name: &str) {
    let out = Command::new("pgrep").args(["-f", name]).output().unwrap();
    assert!(
        out.stdout.is_empty(),
        "{name} still running: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_correct_leader_node_under_partitions_pauses_and_reordering_is_valid_and_bad_input_is_counted()
{
    let r = run(
        "noisy_kv.py",
        "8",
        &[
            "--nemesis",
            "partition,pause,msg-reorder",
            "--nemesis-interval",
            "1.5",
            "--latency",
            "2",
            "--latency-dist",
            "uniform",
        ],
    );
    assert_eq!(r.code, 0, "not valid: {}", r.stdout);
    let res = r.results();
    assert_eq!(res["valid"], true);
    // Defaults like Maelstrom's lin-kv: 3 nodes n0..n2, 6 workers.
    let test = read_json(&r.dir.as_ref().unwrap().join("test.json"));
    assert_eq!(test["nodes"], serde_json::json!(["n0", "n1", "n2"]));
    assert_eq!(test["options"]["concurrency"], 6);
    let m = &res["maelstrom"];
    // The fault engine cut node links during the partitions.
    assert!(m["faults"]["cut"].as_u64().unwrap() > 0, "{m}");
    // Every node wrote one bad line, one message to n99, one answer to an unknown msg_id.
    for k in ["bad_lines", "unknown_dest", "unknown_replies"] {
        assert_eq!(m["router"][k], 3, "{k}: {m}");
    }
    let log = std::fs::read_to_string(r.dir.as_ref().unwrap().join("nodes/n1.log")).unwrap();
    assert!(
        log.contains("splitbrain: n1: bad-line") && log.contains("this is not json"),
        "{log}"
    );
    let events = r.events();
    let starts: Vec<&str> = events
        .iter()
        .filter(|e| e["process"] == "nemesis")
        .filter_map(|e| e["f"].as_str())
        .filter(|f| f.starts_with("start-"))
        .collect();
    assert!(starts.len() >= 2, "too few faults struck: {starts:?}");
    // Workers bound to followers (worker w talks to n(w mod 3)) got answers: n0 answered the
    // requests they forwarded under the client's id.
    let follower_ok = events
        .iter()
        .filter(|e| e["type"] == "ok")
        .filter(|e| e["process"].as_u64().is_some_and(|p| (p % 6) % 3 != 0))
        .count();
    assert!(follower_ok > 20, "{follower_ok} ok ops through followers");
    no_fixture_left_running("noisy_kv.py");
}

#[test]
fn a_node_that_answers_from_its_local_map_is_invalid() {
    let r = run("local_kv.py", "5", &["--nemesis", "none"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.results()["valid"], false);
    assert!(r.stdout.contains("INVALID"));
}

#[test]
fn a_node_that_crashes_on_startup_stops_the_run_with_255_and_its_stderr() {
    let r = run("crash_on_start.py", "5", &[]);
    assert_eq!(r.code, 255, "{}", r.stderr);
    assert!(r.stderr.contains("exited"), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot open the frobnicator"),
        "no stderr tail: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn killed_nodes_restart_with_a_fresh_init_and_answer_again() {
    let r = run(
        "leader_kv.py",
        "6",
        &["--nemesis", "kill", "--nemesis-interval", "1.5"],
    );
    // Killing n0 loses its map (Maelstrom nodes keep no state): invalid is a fair verdict.
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let res = r.results();
    let events = r.events();
    assert!(
        events.iter().any(|e| e["f"] == "start-kill"),
        "no kill struck"
    );
    // Every node answered its (re-)init after recovery: the cluster check asked each of them.
    assert_eq!(
        res["cluster_check"]["findings"],
        serde_json::json!([]),
        "{res}"
    );
    assert_eq!(
        res["cluster_check"]["statuses"]
            .as_object()
            .map(|o| o.len()),
        Some(3)
    );
    // The final reads (processes from concurrency × 1e6, after the heal restarted everyone)
    // were answered.
    let final_ok = events
        .iter()
        .filter(|e| e["type"] == "ok" && e["process"].as_u64().is_some_and(|p| p >= 6_000_000))
        .count();
    assert!(final_ok > 0, "no final read answered after the restarts");
    no_fixture_left_running("leader_kv.py");
}

#[test]
fn a_node_that_never_answers_init_stops_the_run_with_255_within_the_deadline() {
    let t0 = std::time::Instant::now();
    let r = run("silent.py", "5", &[]);
    assert_eq!(r.code, 255, "{}", r.stderr);
    assert!(
        r.stderr.contains("has not answered init with init_ok"),
        "{}",
        r.stderr
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(25),
        "{:?}",
        t0.elapsed()
    );
    no_fixture_left_running("silent.py");
}

#[test]
fn a_node_that_exits_mid_run_is_counted_and_fails_the_cluster_check_while_the_run_goes_on() {
    let r = run("exits_later.py", "5", &["--nemesis", "none"]);
    // The history stays valid (n2's clients time out); the cluster check fails: exit 3.
    assert_eq!(r.code, 3, "{}", r.stdout);
    let res = r.results();
    assert_eq!(res["maelstrom"]["router"]["stdout_closed"], 1, "{res}");
    let findings = res["cluster_check"]["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["member"] == "n2" && f["kind"] == "exited"),
        "{findings:?}"
    );
    // Workers bound to n0 and n1 kept working after n2 left.
    let ok = r.events().iter().filter(|e| e["type"] == "ok").count();
    assert!(ok > 100, "{ok} ok ops");
    no_fixture_left_running("exits_later.py");
}

#[test]
fn a_proxy_node_backed_by_the_lin_kv_service_is_valid_under_partitions() {
    let r = run(
        "proxy_kv.py",
        "6",
        &["--nemesis-interval", "1.5", "--latency", "1"],
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    let res = r.results();
    let served = res["maelstrom"]["router"]["service_requests"]
        .as_u64()
        .unwrap();
    let ok = r.events().iter().filter(|e| e["type"] == "ok").count() as u64;
    // Every ok op (reads, writes, cas) went through the service.
    assert!(
        ok > 100 && served >= ok,
        "{served} service requests for {ok} ok ops"
    );
    no_fixture_left_running("proxy_kv.py");
}

#[test]
fn no_node_process_survives_sigkill_of_the_harness() {
    let results = tempfile::tempdir().unwrap();
    let mut harness = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args(["test", "--target", "maelstrom", "--node-cmd"])
        .arg(fixture("sigkill_kv.py"))
        .args(["--time-limit", "60", "--results"])
        .arg(results.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let count = || {
        // Node processes only (the harness's own command line names the script too).
        let out = Command::new("pgrep")
            .args(["-f", "^[^ ]*python3 [^ ]*sigkill_kv[.]py"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    while count() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the nodes never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    harness.kill().unwrap(); // SIGKILL
    harness.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "node processes outlived the harness"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
