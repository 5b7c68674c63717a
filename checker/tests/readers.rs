//! Readers reject truncated, garbled and mistyped input with an error naming the file, the
//! line and what was expected; malformed histories are errors with the line.

use splitbrain_checker::history::{Event, EventType, History, Process};
use splitbrain_checker::read::{read_file, Format, ReadError};
use std::path::PathBuf;

fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

/// Reads `text` as `format` and asserts an error at `line` that names the file and says
/// what was expected.
fn assert_rejects(format: Format, text: &str, line: usize, expected: &str) {
    let (_d, p) = write("history.txt", text);
    let err = read_file(&p, format).expect_err("input must be rejected");
    let msg = err.to_string();
    assert!(matches!(err, ReadError::Parse { .. }), "{msg}");
    assert_eq!(err.line(), Some(line), "wrong line in: {msg}");
    assert!(msg.contains(&p.display().to_string()), "no file in: {msg}");
    assert!(msg.contains(&format!(":{line}:")), "no line in: {msg}");
    assert!(msg.contains(expected), "{msg:?} does not say {expected:?}");
}

const JSONL_OK: &str = r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"write","value":1}
{"index":1,"time":2,"process":0,"type":"ok","f":"write","value":1}
"#;

#[test]
fn jsonl_reader_rejects_truncated_garbled_and_mistyped_lines() {
    let truncated = format!("{JSONL_OK}{{\"index\":2,\"time\":3,\"proc");
    assert_rejects(Format::Jsonl, &truncated, 3, "expected");
    let garbled = format!("{JSONL_OK}%%%garbage\n");
    assert_rejects(Format::Jsonl, &garbled, 3, "expected");
    let mistyped = format!(
        "{JSONL_OK}{}\n",
        r#"{"index":2,"time":"soon","process":0,"type":"invoke","f":"read","value":null}"#
    );
    assert_rejects(Format::Jsonl, &mistyped, 3, "expected u64");
    let bad_type = format!(
        "{JSONL_OK}{}\n",
        r#"{"index":2,"time":3,"process":0,"type":"done","f":"read","value":null}"#
    );
    assert_rejects(Format::Jsonl, &bad_type, 3, "expected one of");
}

#[test]
fn etcd_reader_rejects_truncated_garbled_and_mistyped_lines() {
    let ok = "INFO  jepsen.util - 1\t:invoke\t:read\tnil\nINFO  jepsen.util - 1\t:ok\t:read\tnil\n";
    assert_rejects(
        Format::PorcupineEtcd,
        &format!("{ok}INFO  jepsen.util - 2\t:invoke"),
        3,
        "expected 4 fields",
    );
    assert_rejects(
        Format::PorcupineEtcd,
        &format!("{ok}hello world\n"),
        3,
        "expected a line",
    );
    assert_rejects(
        Format::PorcupineEtcd,
        &format!("{ok}INFO  jepsen.util - 2\t:invoke\t:write\tabc\n"),
        3,
        "expected a written integer",
    );
    assert_rejects(
        Format::PorcupineEtcd,
        &format!("{ok}INFO  jepsen.util - 2\t:invoke\t:cas\t[1\n"),
        3,
        "expected a cas value",
    );
}

#[test]
fn porcupine_kv_reader_rejects_truncated_garbled_and_mistyped_lines() {
    let ok = "{:process 0, :type :invoke, :f :get, :key \"1\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"1\", :value \"\"}\n";
    assert_rejects(
        Format::PorcupineKv,
        &format!("{ok}{{:process 1, :type :inv"),
        3,
        "expected an EDN map",
    );
    assert_rejects(
        Format::PorcupineKv,
        &format!("{ok}{{:process x, :type :invoke, :f :get, :key \"1\", :value nil}}\n"),
        3,
        "expected a process number",
    );
    assert_rejects(
        Format::PorcupineKv,
        &format!("{ok}{{:process 1, :type :invoke, :f :frob, :key \"1\", :value nil}}\n"),
        3,
        "expected :f :get",
    );
}

#[test]
fn edn_reader_rejects_truncated_garbled_and_mistyped_input() {
    let ok = "[{:process 0, :type :invoke, :f :write, :value 1}\n {:process 0, :type :ok, :f :write, :value 1}\n";
    assert_rejects(
        Format::Edn,
        &format!("{ok} {{:process 1, :type :invoke,\n"),
        4,
        "opened on line 3 is not closed",
    );
    assert_rejects(
        Format::Edn,
        &format!("{ok} {{:process 1, :type :invoke, :f :read}}\n"),
        4,
        "expected `]`",
    );
    assert_rejects(Format::Edn, &format!("{ok} 42]\n"), 3, "expected an op map");
    assert_rejects(
        Format::Edn,
        &format!("{ok} {{:process \"one\", :type :invoke, :f :read}}]\n"),
        3,
        "expected a non-negative integer or :nemesis",
    );
    assert_rejects(
        Format::Edn,
        &format!("{ok} {{:process 1, :type :begun, :f :read}}]\n"),
        3,
        "expected :type :invoke",
    );
}

#[test]
fn auto_detection_rejects_unknown_content_with_line() {
    assert_rejects(
        Format::Auto,
        "\n\nthis is not a history\n",
        3,
        "cannot detect",
    );
}

#[test]
fn edn_reader_reads_knossos_histories_with_nemesis_and_independent_keys() {
    let text = "[{:process 0, :type :invoke, :f :cas, :value [7 [nil 1]]}\n\
                {:process :nemesis, :type :info, :f :start, :value nil}\n\
                {:process 0, :type :ok, :f :cas, :value [7 [nil 1]]}\n\
                {:process 1, :type :invoke, :f :read, :value [7 nil]}\n\
                {:process 1, :type :ok, :f :read, :value [7 1]}\n\
                {:process 2, :type :invoke, :f :read, :value [8 nil]}\n\
                {:process 2, :type :ok, :f :read, :value [8 nil]}]\n";
    let (_d, p) = write("history.edn", text);
    let h = read_file(&p, Format::Auto).unwrap();
    assert_eq!(h.nemesis.len(), 1);
    // The nil read on key 8 matches any state in Knossos and is dropped.
    assert_eq!(h.ops.len(), 2);
    assert_eq!(h.ops[0].key, Some(serde_json::json!(7)));
    assert_eq!(h.ops[0].value, serde_json::json!([null, 1]));
    assert_eq!(h.ops[1].output, serde_json::json!(1));
}

fn ev(index: u64, process: u64, kind: EventType, f: &str) -> Event {
    Event {
        index,
        time: index,
        process: Process::Client(process),
        kind,
        f: f.into(),
        key: None,
        value: serde_json::Value::Null,
    }
}

#[test]
fn rejects_second_invoke_on_busy_process() {
    let e = History::from_events(vec![
        ev(0, 1, EventType::Invoke, "read"),
        ev(1, 1, EventType::Invoke, "write"),
    ])
    .unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("still in flight"), "{e}");
}

#[test]
fn rejects_completion_without_invoke() {
    let e = History::from_events(vec![ev(0, 1, EventType::Ok, "read")]).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("without an invocation"), "{e}");
}

#[test]
fn rejects_completion_with_mismatched_f() {
    let e = History::from_events(vec![
        ev(0, 1, EventType::Invoke, "read"),
        ev(1, 1, EventType::Ok, "write"),
    ])
    .unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("expected the same f"), "{e}");
}

#[test]
fn rejects_invoke_after_info_on_same_process() {
    let e = History::from_events(vec![
        ev(0, 1, EventType::Invoke, "write"),
        ev(1, 1, EventType::Info, "write"),
        ev(2, 1, EventType::Invoke, "read"),
    ])
    .unwrap_err();
    assert_eq!(e.line, 3);
}

#[test]
fn fail_ops_are_removed_and_info_and_unfinished_ops_stay_open() {
    let h = History::from_events(vec![
        ev(0, 1, EventType::Invoke, "write"),
        ev(1, 2, EventType::Invoke, "write"),
        ev(2, 3, EventType::Invoke, "write"),
        ev(3, 1, EventType::Fail, "write"),
        ev(4, 2, EventType::Info, "write"),
    ])
    .unwrap();
    assert_eq!(h.failed, 1);
    assert_eq!(h.ops.len(), 2);
    assert!(h.ops.iter().all(|o| o.ret == u64::MAX));
}

#[test]
fn event_json_matches_design_line() {
    let line = r#"{"index":0,"time":1042311,"process":3,"type":"invoke","f":"cas","key":"k7","value":[1,4]}"#;
    let e: Event = serde_json::from_str(line).unwrap();
    assert_eq!(e.process, Process::Client(3));
    assert_eq!(serde_json::to_string(&e).unwrap(), line);
    let n = r#"{"index":2,"time":2001311,"process":"nemesis","type":"info","f":"start-partition","value":{"groups":[["n1"]]}}"#;
    let e: Event = serde_json::from_str(n).unwrap();
    assert_eq!(e.process, Process::Nemesis);
    assert_eq!(serde_json::to_string(&e).unwrap(), n);
}
