//! End-to-end runs of `splitbrain test --net message` against the real node: the relay on
//! every peer link, message faults from the schedule. Each takes about 25 s.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `splitbrain test` with `args` into a fresh results dir; returns (exit code, stdout,
/// the run's directory, its history events).
fn run_test(
    args: &[&str],
) -> (
    i32,
    String,
    std::path::PathBuf,
    Vec<Value>,
    tempfile::TempDir,
) {
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .arg("test")
        .args(args)
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let run = std::fs::canonicalize(results.path().join("latest")).unwrap();
    let events = std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        stdout,
        run,
        events,
        results,
    )
}

fn nemesis_events<'a>(events: &'a [Value], f: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["f"] == f)
        .collect()
}

#[test]
fn correct_node_under_message_loss_reorder_and_kills_is_valid() {
    let (code, stdout, run, events, _dir) = run_test(&[
        "--net",
        "message",
        "--nodes",
        "3",
        "--time-limit",
        "15",
        "--nemesis",
        "msg-loss,msg-reorder,kill",
        "--nemesis-overlap",
        "--nemesis-interval",
        "3",
        "--recovery-time",
        "3",
        "--seed",
        "3",
        "--name",
        "msg-e2e",
    ]);
    assert_eq!(code, 0, "verdict not valid:\n{stdout}");
    let res = read_json(&run.join("results.json"));
    assert_eq!(res["valid"], Value::Bool(true));
    let m = &res["messages"];
    assert!(m["seen"].as_u64().unwrap() > 1000, "{m}");
    assert!(m["lost"].as_u64().unwrap() > 0, "{m}");
    assert!(m["reordered"].as_u64().unwrap() > 0, "{m}");
    assert_eq!(m["unparsed"], 0, "{m}");
    assert!(
        stdout.contains("messages "),
        "no message counters in the summary"
    );
    for f in ["msg-loss", "msg-reorder", "kill"] {
        let starts = nemesis_events(&events, &format!("start-{f}"));
        let stops = nemesis_events(&events, &format!("stop-{f}"));
        assert!(!starts.is_empty(), "no start-{f}");
        assert_eq!(starts.len(), stops.len(), "{f}: starts and stops differ");
    }
    // Each message fault's stop says what it did while active.
    let stop = nemesis_events(&events, "stop-msg-loss")[0];
    assert!(
        stop["value"]["counts"]["lost"].as_u64().unwrap() > 0,
        "{stop}"
    );
    assert!(stop["value"]["p"].as_f64().unwrap() > 0.0, "{stop}");
}

#[test]
fn message_faults_are_refused_on_the_proxy_network() {
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args([
            "test",
            "--net",
            "proxy",
            "--nemesis",
            "msg-dup",
            "--dry-run",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("msg-dup") && err.contains("--net message"),
        "{err}"
    );
}

#[test]
fn commit_old_term_is_caught_by_the_aimed_figure8_nemesis() {
    let (code, stdout, run, events, _dir) = run_test(&[
        "--net",
        "message",
        "--nodes",
        "3",
        "--time-limit",
        "20",
        "--op-timeout",
        "10",
        "--recovery-time",
        "3",
        "--workload",
        "append",
        "--nemesis",
        "msg-figure8",
        "--nemesis-interval",
        "6",
        "--seed",
        "5",
        "--name",
        "msg-figure8",
        "--node-arg=--bug",
        "--node-arg=commit-old-term",
    ]);
    assert_eq!(code, 1, "not caught (exit {code}):\n{stdout}");
    let res = read_json(&run.join("results.json"));
    assert_eq!(res["valid"], Value::Bool(false));
    // The nemesis went through its phases and held commits back.
    let stop = nemesis_events(&events, "stop-msg-figure8")[0];
    let phases: Vec<&str> = stop["value"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    assert!(phases.contains(&"overwriting-leader"), "{stop}");
    assert!(
        stop["value"]["counts"]["held_commits"].as_u64().unwrap() > 0,
        "{stop}"
    );
}

#[test]
fn vote_any_log_alone_is_caught_by_the_aimed_stale_vote_nemesis() {
    // The catch table's configuration (README, docs/catching-bugs.md), seed 1.
    let (code, stdout, _run, events, _dir) = run_test(&[
        "--net",
        "message",
        "--nodes",
        "3",
        "--time-limit",
        "30",
        "--op-timeout",
        "10",
        "--workload",
        "append",
        "--nemesis",
        "msg-stale-vote",
        "--nemesis-interval",
        "8",
        "--seed",
        "1",
        "--name",
        "msg-stale-vote",
        "--node-arg=--bug",
        "--node-arg=vote-any-log",
    ]);
    assert_eq!(code, 1, "not caught (exit {code}):\n{stdout}");
    // The lagging follower was elected while the others' commit index was capped.
    let stops = nemesis_events(&events, "stop-msg-stale-vote");
    let elected = stops.iter().any(|stop| {
        stop["value"]["steps"]
            .as_array()
            .is_some_and(|steps| steps.iter().any(|s| s["phase"] == "stale-leader"))
            && stop["value"]["counts"]["held_commits"]
                .as_u64()
                .unwrap_or(0)
                > 0
    });
    assert!(elected, "{stops:?}");
}

/// `msg-first-commit` on the correct node: while the blind leader leads (between its
/// `aim-blind-leader` and the round's `aim-heal`) nothing commits and no read is served —
/// its no-op never reaches anyone, the deposed leader is cut off — and the run is valid.
#[test]
fn the_blind_leader_of_msg_first_commit_answers_nothing_until_the_heal() {
    let (code, stdout, _run, events, _dir) = run_test(&[
        "--net",
        "message",
        "--time-limit",
        "14",
        "--unique-writes",
        "--nemesis",
        "msg-first-commit",
        "--nemesis-interval",
        "5",
        "--seed",
        "1",
        "--name",
        "msg-first-commit",
    ]);
    assert_eq!(code, 0, "the correct node failed (exit {code}):\n{stdout}");
    let time = |e: &Value| e["time"].as_u64().unwrap();
    let blind: Vec<u64> = nemesis_events(&events, "aim-blind-leader")
        .into_iter()
        .map(time)
        .collect();
    let heals: Vec<u64> = nemesis_events(&events, "aim-heal")
        .into_iter()
        .map(time)
        .collect();
    assert!(
        !blind.is_empty(),
        "no round reached a blind leader:\n{stdout}"
    );
    let mut windows = 0;
    for b in &blind {
        let Some(h) = heals.iter().copied().find(|h| h > b) else {
            continue;
        };
        windows += 1;
        let answered: Vec<&Value> = events
            .iter()
            .filter(|e| e["process"] != "nemesis" && e["type"] == "ok")
            .filter(|e| (*b..h).contains(&time(e)))
            .collect();
        assert!(
            answered.is_empty(),
            "answered while the leader could not commit ({b}..{h} ns): {answered:?}"
        );
    }
    assert!(windows > 0, "no blind window ended in a heal");
    // The clients were there: ops completed after the heal.
    assert!(stdout.contains("msg-first-commit"), "{stdout}");
}
