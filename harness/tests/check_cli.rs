//! `splitbrain check`: exit codes (0 valid, 1 invalid, 2 unknown, 254 bad input), output
//! lines and the `--json` object.

use std::path::PathBuf;
use std::process::{Command, Output};

fn corpus(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/porcupine/test_data")
        .join(rel);
    assert!(p.is_file(), "corpus file missing: {}", p.display());
    p
}

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .arg("check")
        .args(args)
        .output()
        .expect("run splitbrain")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

#[test]
fn valid_history_exits_0_with_one_line() {
    let f = corpus("jepsen/etcd_002.log");
    let o = check(&["--model", "cas-register", f.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("valid") && out.contains("77 ops"), "{out}");
}

#[test]
fn invalid_history_exits_1_with_counterexample() {
    let f = corpus("jepsen/etcd_000.log");
    let o = check(&["--model", "cas-register", f.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("invalid"), "{out}");
    assert!(out.contains("cannot be placed"), "{out}");
}

#[test]
fn append_kv_c50_bad_exits_1() {
    let f = corpus("kv/c50-bad.txt");
    let o = check(&["--model", "append-kv", f.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
}

#[test]
fn timeout_makes_unknown_and_exits_2() {
    let f = corpus("kv/c50-ok.txt");
    let o = check(&["--timeout", "0.000000001", "--json", f.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stdout));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], "unknown");
}

#[test]
fn json_prints_one_object_per_file_with_the_documented_fields() {
    let a = corpus("jepsen/etcd_000.log");
    let b = corpus("kv/c01-ok.txt");
    let o = check(&["--json", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    let out = String::from_utf8(o.stdout).unwrap();
    let objs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 2);
    for v in &objs {
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "counterexample",
                "elapsed_ms",
                "file",
                "model",
                "ops",
                "partitions",
                "valid"
            ]
        );
        for k in ["total", "invalid", "unknown"] {
            assert!(v["partitions"][k].is_u64(), "{v}");
        }
    }
    assert_eq!(objs[0]["valid"], false);
    assert_eq!(objs[0]["model"], "cas-register");
    assert!(objs[0]["counterexample"]["window"].is_array());
    assert_eq!(objs[1]["valid"], true);
    assert_eq!(objs[1]["model"], "append-kv");
    assert!(objs[1]["counterexample"].is_null());
}

#[test]
fn garbled_file_exits_254_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.jsonl");
    std::fs::write(
        &p,
        "{\"index\":0,\"time\":1,\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n{\"index\":1,\"ti",
    )
    .unwrap();
    let o = check(&[p.to_str().unwrap()]);
    assert_eq!(code(&o), 254);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains(&format!("{}:2:", p.display())), "{err}");
}

#[test]
fn bad_flags_and_missing_files_exit_254() {
    let f = corpus("jepsen/etcd_002.log");
    assert_eq!(
        code(&check(&["--model", "queue", f.to_str().unwrap()])),
        254
    );
    assert_eq!(code(&check(&["--format", "xml", f.to_str().unwrap()])), 254);
    assert_eq!(code(&check(&["--timeout", "-1", f.to_str().unwrap()])), 254);
    assert_eq!(code(&check(&[])), 254);
    assert_eq!(code(&check(&["/nonexistent/history.jsonl"])), 254);
}

#[test]
fn op_the_model_does_not_know_exits_254() {
    let f = corpus("kv/c01-ok.txt");
    let o = check(&["--model", "cas-register", f.to_str().unwrap()]);
    assert_eq!(code(&o), 254);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("line"), "{err}");
}

/// The non-empty etcd logs of the corpus, in name order.
fn etcd_logs() -> Vec<PathBuf> {
    let dir = corpus("jepsen/etcd_000.log").parent().unwrap().to_owned();
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "log")
                && std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false)
        })
        .collect();
    v.sort();
    v
}

fn verdicts(stdout: &[u8]) -> Vec<(String, serde_json::Value)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object a line");
            (v["file"].as_str().unwrap().to_string(), v["valid"].clone())
        })
        .collect()
}

#[test]
fn many_files_in_parallel_give_the_verdicts_of_one_by_one_in_the_order_given() {
    let mut files = etcd_logs();
    assert_eq!(files.len(), 102, "the corpus has 102 non-empty etcd logs");
    // Not name order: the output must follow the order given, not the order finished.
    files.reverse();
    files.swap(3, 70);
    let args: Vec<&str> = std::iter::once("--json")
        .chain(files.iter().map(|f| f.to_str().unwrap()))
        .collect();
    let o = check(&args);
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let together = verdicts(&o.stdout);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let got: Vec<&String> = together.iter().map(|(f, _)| f).collect();
    assert_eq!(got, names.iter().collect::<Vec<_>>(), "output order");
    let mut kinds = std::collections::HashSet::new();
    for (f, v) in &together {
        let alone = check(&["--json", f]);
        let one = verdicts(&alone.stdout);
        assert_eq!(one.len(), 1, "{f}");
        assert_eq!(&one[0].1, v, "{f}: alone vs together");
        kinds.insert(v.to_string());
    }
    assert!(kinds.len() >= 2, "both verdicts occur: {kinds:?}");
}

#[test]
fn a_closed_stdout_ends_the_check_quietly() {
    use std::process::Stdio;
    let files = etcd_logs();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_splitbrain"));
    cmd.arg("check");
    // Enough output to fill the pipe many times over.
    for _ in 0..20 {
        cmd.args(&files);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once, like `| head -0`
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.trim().is_empty(), "nothing on stderr: {err}");
    assert!(o.status.code().is_some(), "exits, not killed by a signal");
}

#[test]
fn an_extra_jsonl_field_survives_into_the_counterexample_ops() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.jsonl");
    std::fs::write(
        &p,
        [
            r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"write","value":1,"node":"n1"}"#,
            r#"{"index":1,"time":2,"process":0,"type":"ok","f":"write","value":1,"node":"n1"}"#,
            r#"{"index":2,"time":3,"process":0,"type":"invoke","f":"write","value":2}"#,
            r#"{"index":3,"time":4,"process":0,"type":"ok","f":"write","value":2}"#,
            r#"{"index":4,"time":5,"process":"w-1","type":"invoke","f":"read","value":null}"#,
            r#"{"index":5,"time":6,"process":"w-1","type":"ok","f":"read","value":1,"error":{"why":"stale"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let o = check(&["--json", p.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cx = &v["counterexample"];
    assert_eq!(cx["op"]["extra"]["error"]["why"], "stale", "{cx}");
    assert_eq!(cx["op"]["extra"]["process"], "w-1", "{cx}");
    assert_eq!(cx["prefix"][0]["extra"]["node"], "n1", "{cx}");
}

#[test]
fn memory_limit_makes_a_hard_history_unknown_and_bad_sizes_exit_254() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wide.jsonl");
    // 16 concurrent writes, then reads that no order of them explains: refuting it needs
    // ~2^16 memo entries, far more than 64 KiB.
    let n = 16;
    let mut lines = Vec::new();
    for (i, kind) in ["invoke", "ok"].iter().enumerate() {
        for q in 0..n {
            lines.push(format!(
                r#"{{"index":{},"time":0,"process":{q},"type":"{kind}","f":"write","value":{q}}}"#,
                i * n + q
            ));
        }
    }
    // Reads of 0 and then 1 with nothing written between them (no cheap proof applies).
    for (j, v) in [0, 1].iter().enumerate() {
        lines.push(format!(
            r#"{{"index":{},"time":0,"process":{n},"type":"invoke","f":"read","value":null}}"#,
            2 * n + 2 * j
        ));
        lines.push(format!(
            r#"{{"index":{},"time":0,"process":{n},"type":"ok","f":"read","value":{v}}}"#,
            2 * n + 2 * j + 1
        ));
    }
    std::fs::write(&p, lines.join("\n")).unwrap();
    let o = check(&["--json", "--memory-limit", "64K", p.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], "unknown");
    let o = check(&["--memory-limit", "2G", p.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "refuted with room enough");
    for bad in ["lots", "0", "12X", "-1G"] {
        let flag = format!("--memory-limit={bad}");
        let o = check(&[&flag, p.to_str().unwrap()]);
        assert_eq!(code(&o), 254, "--memory-limit {bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--memory-limit"), "{err}");
    }
}
