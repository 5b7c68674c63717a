//! Counterexamples name the op that cannot be placed, the window of concurrent ops, the
//! longest linearizable prefix and the state there; cancellation and deadlines give
//! `unknown`, never a wrong verdict.

use serde_json::{json, Value};
use splitbrain_checker::history::{Event, EventType, History, Process};
use splitbrain_checker::{check, CheckOptions, ModelKind, Verdict};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn ev(i: u64, p: u64, kind: EventType, f: &str, key: Option<Value>, value: Value) -> Event {
    Event {
        index: i,
        time: i * 10,
        process: Process::Client(p),
        kind,
        f: f.into(),
        key,
        value,
    }
}

/// write 1; write 2 || read → 1; read → 1 after write 2 completed: the last read cannot be
/// placed (no cheap proof applies: the search decides it).
fn stale() -> History {
    use EventType::*;
    History::from_events(vec![
        ev(0, 0, Invoke, "write", None, json!(1)),
        ev(1, 0, Ok, "write", None, json!(1)),
        ev(2, 0, Invoke, "write", None, json!(2)),
        ev(3, 1, Invoke, "read", None, Value::Null),
        ev(4, 1, Ok, "read", None, json!(1)),
        ev(5, 0, Ok, "write", None, json!(2)),
        ev(6, 1, Invoke, "read", None, Value::Null),
        ev(7, 1, Ok, "read", None, json!(1)),
    ])
    .unwrap()
}

#[test]
fn counterexample_names_blocked_op_window_prefix_and_state() {
    let r = check(&stale(), ModelKind::Register, &CheckOptions::default());
    assert_eq!(r.valid, Verdict::Invalid);
    let cx = r
        .counterexample
        .expect("invalid comes with a counterexample");
    assert_eq!(cx.op.f, "read");
    assert_eq!(cx.op.output, json!(1));
    assert_eq!(cx.op.line, 7, "the second read");
    assert!(cx.proof.is_none(), "found by the search");
    // The write of 2 is concurrent with the read; both are in the window.
    let fs: Vec<&str> = cx.window.iter().map(|o| o.f.as_str()).collect();
    assert!(fs.contains(&"read"), "{fs:?}");
    assert!(cx.prefix.iter().any(|o| o.value == json!(1)));
    assert!(cx.state == json!(1) || cx.state == json!(2), "{}", cx.state);
    let text = cx.to_text();
    assert!(text.contains("cannot be placed"), "{text}");
    assert!(text.contains("longest linearizable prefix"), "{text}");
    let j = serde_json::to_value(&cx).unwrap();
    for k in ["op", "window", "prefix", "state"] {
        assert!(j.get(k).is_some(), "{j}");
    }
}

#[test]
fn valid_history_has_no_counterexample() {
    use EventType::*;
    let h = History::from_events(vec![
        ev(0, 0, Invoke, "write", None, json!(1)),
        ev(1, 1, Invoke, "read", None, Value::Null),
        ev(2, 1, Ok, "read", None, json!(1)),
        ev(3, 0, Ok, "write", None, json!(1)),
    ])
    .unwrap();
    let r = check(&h, ModelKind::Register, &CheckOptions::default());
    assert_eq!(r.valid, Verdict::Valid);
    assert!(r.counterexample.is_none());
}

#[test]
fn cancelled_check_is_unknown_never_a_verdict() {
    let opts = CheckOptions {
        cancel: Some(Arc::new(AtomicBool::new(true))),
        ..Default::default()
    };
    let r = check(&stale(), ModelKind::Register, &opts);
    assert_eq!(r.valid, Verdict::Unknown);
    assert_eq!(r.partitions.unknown, 1);
}

#[test]
fn kv_partitions_by_key_and_reports_each_key_with_all_partitions() {
    use EventType::*;
    let k = |s: &str| Some(json!(s));
    let h = History::from_events(vec![
        ev(0, 0, Invoke, "write", k("a"), json!(1)),
        ev(1, 0, Ok, "write", k("a"), json!(1)),
        ev(2, 0, Invoke, "read", k("b"), Value::Null),
        ev(3, 0, Ok, "read", k("b"), json!(1)), // b was never written
        ev(4, 1, Invoke, "read", k("a"), Value::Null),
        ev(5, 1, Ok, "read", k("a"), json!(1)),
    ])
    .unwrap();
    let opts = CheckOptions {
        all_partitions: true,
        ..Default::default()
    };
    let r = check(&h, ModelKind::Kv, &opts);
    assert_eq!(r.valid, Verdict::Invalid);
    assert_eq!(r.partitions.total, 2);
    assert_eq!(r.partitions.invalid, 1);
    let b = r.per_key.iter().find(|p| p.key == k("b")).unwrap();
    assert_eq!(b.verdict, Verdict::Invalid);
    let a = r.per_key.iter().find(|p| p.key == k("a")).unwrap();
    assert_eq!(a.verdict, Verdict::Valid);
    assert_eq!(r.counterexample.unwrap().key, k("b"));
}

#[test]
fn model_rejects_ops_it_does_not_know_with_line() {
    use EventType::*;
    let h = History::from_events(vec![
        ev(0, 0, Invoke, "cas", None, json!([1, 2])),
        ev(1, 0, Ok, "cas", None, json!([1, 2])),
    ])
    .unwrap();
    let e = splitbrain_checker::try_check(&h, ModelKind::Register, &CheckOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
    assert!(e.to_string().contains("expected read or write"), "{e}");
}

/// `n` concurrent writes of distinct values, then reads of 0 and then 1 with nothing written
/// between them: refuting it explores every subset of the writes (a memo of about 2^n
/// entries); no cheap proof applies.
fn wide(n: u64) -> History {
    use EventType::*;
    let mut evs = Vec::new();
    for p in 0..n {
        evs.push(ev(evs.len() as u64, p, Invoke, "write", None, json!(p)));
    }
    for p in 0..n {
        evs.push(ev(evs.len() as u64, p, Ok, "write", None, json!(p)));
    }
    for v in [0, 1] {
        evs.push(ev(evs.len() as u64, n, Invoke, "read", None, Value::Null));
        evs.push(ev(evs.len() as u64, n, Ok, "read", None, json!(v)));
    }
    History::from_events(evs).unwrap()
}

#[test]
fn a_memo_past_the_memory_limit_makes_the_partition_unknown_not_a_crash() {
    use splitbrain_checker::MemoryBudget;
    let h = wide(16);
    let budget = Arc::new(MemoryBudget::new(256 << 10));
    let opts = CheckOptions {
        memory: Some(budget.clone()),
        ..Default::default()
    };
    let r = check(&h, ModelKind::Register, &opts);
    assert_eq!(r.valid, Verdict::Unknown);
    assert_eq!(r.per_key[0].reason.as_deref(), Some("memory-limit"));
    assert_eq!(budget.used(), 0, "a finished search gives its memory back");
    // With room enough, the same history is refuted.
    let opts = CheckOptions {
        memory: Some(Arc::new(MemoryBudget::new(1 << 30))),
        ..Default::default()
    };
    assert_eq!(
        check(&h, ModelKind::Register, &opts).valid,
        Verdict::Invalid
    );
}

/// `n` ops each writing then reading its own key's value, then a read of a value whose only
/// write was invoked after that read returned (on a single register: the search alone would
/// have to refute every interleaving before it).
#[test]
fn a_read_of_a_value_written_only_later_is_refuted_by_a_proof_without_search() {
    use EventType::*;
    let mut evs = Vec::new();
    let n = 24u64;
    // n concurrent writes of distinct values, never completed in order, so a search would
    // explore subsets of them.
    for p in 0..n {
        evs.push(ev(evs.len() as u64, p, Invoke, "write", None, json!(p)));
    }
    evs.push(ev(evs.len() as u64, n, Invoke, "read", None, Value::Null));
    evs.push(ev(evs.len() as u64, n, Ok, "read", None, json!(1000)));
    evs.push(ev(
        evs.len() as u64,
        n + 1,
        Invoke,
        "write",
        None,
        json!(1000),
    ));
    evs.push(ev(evs.len() as u64, n + 1, Ok, "write", None, json!(1000)));
    for p in 0..n {
        evs.push(ev(evs.len() as u64, p, Ok, "write", None, json!(p)));
    }
    let h = History::from_events(evs).unwrap();
    let t = std::time::Instant::now();
    let r = check(&h, ModelKind::Register, &CheckOptions::default());
    assert_eq!(r.valid, Verdict::Invalid);
    assert!(
        t.elapsed() < std::time::Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    let cx = r.counterexample.unwrap();
    let proof = cx.proof.as_deref().expect("a cheap proof");
    assert!(proof.contains("invoked after"), "{proof}");
    assert_eq!(cx.op.output, json!(1000));
    assert!(cx
        .window
        .iter()
        .any(|o| o.f == "write" && o.value == json!(1000)));
    assert!(cx.prefix.is_empty());
    assert!(
        cx.to_text().contains("because every op that writes 1000"),
        "{}",
        cx.to_text()
    );
}
