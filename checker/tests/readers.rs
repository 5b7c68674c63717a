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
    assert_rejects(
        Format::Jsonl,
        &mistyped,
        3,
        "expected a non-negative number (time)",
    );
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
        &format!("{ok} {{:process 1.5, :type :invoke, :f :read}}]\n"),
        3,
        "expected a non-negative integer, a keyword or a string",
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

#[test]
fn edn_reader_reads_tagged_jepsen_ops_and_lists_with_time_and_index() {
    let text =
        "#jepsen.history.Op{:index 0, :time 5, :type :invoke, :process 0, :f :write, :value 3}\n\
                #jepsen.history.Op{:index 1, :time 9, :type :ok, :process 0, :f :write, :value 3}\n\
                {:index 2, :time 10, :type :invoke, :process 1, :f :read, :value nil}\n\
                {:index 3, :time 12, :type :ok, :process 1, :f :read, :value 3}\n";
    let (_d, p) = write("history.edn", text);
    let h = read_file(&p, Format::Auto).unwrap();
    assert_eq!(h.ops.len(), 2);
    assert_eq!(h.ops[1].invoke_time, 10);
    assert_eq!(h.ops[1].complete_index, Some(3));
    assert_eq!(h.ops[1].line, 3);
    let (_d2, p2) = write(
        "list.edn",
        "(\n{:type :invoke, :f :read, :value nil, :process 0}\n{:type :ok, :f :read, :value 1, :process 0}\n)",
    );
    let h2 = read_file(&p2, Format::Edn).unwrap();
    assert_eq!(h2.ops.len(), 1);
    assert_eq!(h2.ops[0].line, 2);
}

#[test]
fn jsonl_reader_keeps_unknown_fields_and_rejects_missing_required_ones() {
    let text = concat!(
        r#"{"index":0,"time":1.5,"process":0,"type":"invoke","f":"write","value":1,"node":"n2"}"#,
        "\n",
        r#"{"index":1,"time":2,"process":0,"type":"ok","f":"write","value":1,"error":null,"took-ms":3}"#,
        "\n",
    );
    let (_d, p) = write("h.jsonl", text);
    let h = read_file(&p, Format::Auto).unwrap();
    assert_eq!(h.ops.len(), 1);
    let x = &h.ops[0].extra;
    assert_eq!(x["node"], serde_json::json!("n2"));
    assert_eq!(x["took-ms"], serde_json::json!(3));
    assert!(x.contains_key("error"));
    assert_eq!(h.ops[0].invoke_time, 1, "fractional times are rounded down");
    assert_rejects(
        Format::Jsonl,
        r#"{"index":0,"time":1,"type":"invoke","f":"write","value":1}"#,
        1,
        "missing field `process`",
    );
    assert_rejects(
        Format::Jsonl,
        r#"{"process":0,"type":"invoke","f":7}"#,
        1,
        "expected a string",
    );
}

#[test]
fn jsonl_processes_may_be_names_and_index_and_time_may_be_missing() {
    let text = concat!(
        r#"{"process":"alice","type":"invoke","f":"write","value":1}"#,
        "\n",
        r#"{"process":"bob","type":"invoke","f":"read"}"#,
        "\n",
        r#"{"process":"alice","type":"ok","f":"write","value":1}"#,
        "\n",
        r#"{"process":"bob","type":"ok","f":"read","value":1}"#,
        "\n",
    );
    let (_d, p) = write("h.jsonl", text);
    let h = read_file(&p, Format::Jsonl).unwrap();
    assert_eq!(h.ops.len(), 2);
    assert_ne!(h.ops[0].process, h.ops[1].process);
    assert_eq!(h.ops[0].extra["process"], serde_json::json!("alice"));
    assert_eq!(
        h.ops[1].invoke_index, 1,
        "index defaults to the event's position"
    );
}

#[test]
fn streamed_jsonl_over_many_blocks_reads_like_the_whole_text() {
    // Big enough to span several 8 MiB blocks, with a bad line at the very end.
    let mut text = String::new();
    let n = 120_000u64;
    for i in 0..n {
        let p = i % 7;
        text.push_str(&format!(
            "{{\"index\":{},\"time\":{},\"process\":{p},\"type\":\"invoke\",\"f\":\"write\",\"key\":\"k{}\",\"value\":{i},\"pad\":\"{}\"}}\n",
            2 * i,
            2 * i,
            i % 13,
            "x".repeat(100)
        ));
        text.push_str(&format!(
            "{{\"index\":{},\"time\":{},\"process\":{p},\"type\":\"ok\",\"f\":\"write\",\"key\":\"k{}\",\"value\":{i}}}\n",
            2 * i + 1,
            2 * i + 1,
            i % 13
        ));
    }
    assert!(text.len() > 20 << 20, "spans blocks: {}", text.len());
    let (_d, p) = write("big.jsonl", &text);
    let streamed = read_file(&p, Format::Auto).unwrap();
    let whole = splitbrain_checker::read::read_str(&text, Format::Jsonl).unwrap();
    assert_eq!(streamed.ops.len(), n as usize);
    assert_eq!(streamed, whole);
    let bad = format!("{text}{{\"process\":1,\"type\":\"nope\",\"f\":\"read\"}}\n");
    let (_d2, p2) = write("bad.jsonl", &bad);
    let e = read_file(&p2, Format::Auto).unwrap_err();
    assert_eq!(e.line(), Some(2 * n as usize + 1), "{e}");
}

#[test]
fn edn_reader_keeps_error_node_and_namespaced_entries_and_takes_named_processes() {
    let text = "{:index 0, :time 1.5e3, :type :invoke, :process :worker-a, :f :write, :value 3, :node \"n1\"}\n\
                {:index 1, :time 2000, :type :invoke, :process \"b\", :f :read, :value nil}\n\
                {:index 2, :time 2500, :type :ok, :process :worker-a, :f :write, :value 3, :jepsen.op/took 7}\n\
                {:index 3, :time 3000, :type :ok, :process \"b\", :f :read, :value 3, :error [:etcd/timeout \"slow\"]}\n";
    let (_d, p) = write("history.edn", text);
    let h = read_file(&p, Format::Auto).unwrap();
    assert_eq!(h.ops.len(), 2);
    let (w, r) = (&h.ops[0], &h.ops[1]);
    assert_ne!(w.process, r.process);
    assert_eq!(w.invoke_time, 1500);
    assert_eq!(w.extra["process"], serde_json::json!("worker-a"));
    assert_eq!(w.extra["node"], serde_json::json!("n1"));
    assert_eq!(w.extra["jepsen.op/took"], serde_json::json!(7));
    assert_eq!(
        r.extra["error"],
        serde_json::json!(["etcd/timeout", "slow"])
    );
    assert_eq!(r.output, serde_json::json!(3));
    assert_rejects(
        Format::Edn,
        "{:index 0, :time -4, :type :invoke, :process 0, :f :read}\n",
        1,
        "expected a non-negative number",
    );
}
