//! `append-kv`'s cheap proofs about two reads, and the reduction that drops `info` ops no
//! read observes (`model.rs`: `refute_pairs`, `drop_unobserved_info`).
//!
//! Each invalid history below holds a contradiction between two reads only (no single read
//! is refuted on its own: the appends involved never completed), next to many concurrent
//! appends that make a search wide; each must be refuted by a proof, with an empty prefix.
//! Each valid history is the closest case a proof must leave alone (without the wide appends:
//! unread completed appends are what makes a search explode, in any order of theirs).

use serde_json::{json, Value};
use splitbrain_checker::history::{Event, EventType, History, Process};
use splitbrain_checker::{check, CheckOptions, ModelKind, Verdict};
use std::time::Duration;

/// A history from `(process, type, f, value)` in order, one time unit apart, with `wide`
/// appends (`w0;` …) invoked first by processes 100… and completed last, which no read shows
/// and which therefore do not change any verdict.
fn hist(wide: u64, evs: &[(u64, &str, &str, Value)]) -> History {
    let mut all: Vec<(u64, String, String, Value)> = Vec::new();
    for w in 0..wide {
        all.push((
            100 + w,
            "invoke".into(),
            "append".into(),
            json!(format!("w{w};")),
        ));
    }
    for (p, t, f, v) in evs {
        all.push((*p, t.to_string(), f.to_string(), v.clone()));
    }
    for w in 0..wide {
        all.push((
            100 + w,
            "ok".into(),
            "append".into(),
            json!(format!("w{w};")),
        ));
    }
    let events = all
        .into_iter()
        .enumerate()
        .map(|(i, (p, t, f, v))| Event {
            index: i as u64,
            time: i as u64,
            process: Process::Client(p),
            kind: match t.as_str() {
                "invoke" => EventType::Invoke,
                "ok" => EventType::Ok,
                "fail" => EventType::Fail,
                _ => EventType::Info,
            },
            f,
            key: None,
            value: v,
        })
        .collect();
    History::from_events(events).unwrap()
}

fn opts() -> CheckOptions {
    CheckOptions {
        timeout: Some(Duration::from_secs(60)),
        ..CheckOptions::default()
    }
}

/// Asserts the history is invalid by a proof (no search prefix) whose words contain `says`.
fn refuted_by_proof(h: &History, says: &str) {
    let r = check(h, ModelKind::AppendKv, &opts());
    assert_eq!(r.valid, Verdict::Invalid);
    let cx = r.counterexample.expect("a counterexample");
    let proof = cx.proof.as_deref().expect("a cheap proof, not a search");
    assert!(proof.contains(says), "{proof}");
    assert!(cx.prefix.is_empty());
}

fn valid(h: &History) {
    assert_eq!(check(h, ModelKind::AppendKv, &opts()).valid, Verdict::Valid);
}

#[test]
fn a_read_that_shows_less_than_an_earlier_read_of_the_same_stretch_is_refuted() {
    // a; is applied (the first read shows it), then a later read shows the empty list.
    refuted_by_proof(
        &hist(
            24,
            &[
                (0, "invoke", "append", json!("a;")),
                (1, "invoke", "get", Value::Null),
                (1, "ok", "get", json!("a;")),
                (1, "invoke", "get", Value::Null),
                (1, "ok", "get", json!("")),
            ],
        ),
        "shows less than a read",
    );
}

#[test]
fn concurrent_reads_may_show_less_and_more_in_either_order() {
    valid(&hist(
        0,
        &[
            (0, "invoke", "append", json!("a;")),
            (1, "invoke", "get", Value::Null),
            (2, "invoke", "get", Value::Null),
            (1, "ok", "get", json!("a;")),
            (2, "ok", "get", json!("")),
        ],
    ));
}

#[test]
fn reads_of_one_stretch_neither_of_which_extends_the_other_are_refuted() {
    refuted_by_proof(
        &hist(
            24,
            &[
                (0, "invoke", "append", json!("a;")),
                (3, "invoke", "append", json!("b;")),
                (1, "invoke", "get", Value::Null),
                (2, "invoke", "get", Value::Null),
                (1, "ok", "get", json!("a;")),
                (2, "ok", "get", json!("b;")),
            ],
        ),
        "neither result extends the other",
    );
}

#[test]
fn reads_of_different_puts_stretches_need_not_extend_each_other() {
    valid(&hist(
        0,
        &[
            (0, "invoke", "put", json!("p;")),
            (3, "invoke", "put", json!("q;")),
            (1, "invoke", "get", Value::Null),
            (1, "ok", "get", json!("p;")),
            (2, "invoke", "get", Value::Null),
            (2, "ok", "get", json!("q;")),
        ],
    ));
}

#[test]
fn an_append_shown_after_two_different_puts_is_refuted() {
    refuted_by_proof(
        &hist(
            24,
            &[
                (0, "invoke", "put", json!("p;")),
                (3, "invoke", "put", json!("q;")),
                (4, "invoke", "append", json!("a;")),
                (1, "invoke", "get", Value::Null),
                (2, "invoke", "get", Value::Null),
                (1, "ok", "get", json!("p;a;")),
                (2, "ok", "get", json!("q;a;")),
            ],
        ),
        "same append after different puts",
    );
}

#[test]
fn a_read_of_the_first_stretch_after_a_read_of_a_put_is_refuted() {
    refuted_by_proof(
        &hist(
            24,
            &[
                (0, "invoke", "put", json!("p;")),
                (1, "invoke", "get", Value::Null),
                (1, "ok", "get", json!("p;")),
                (1, "invoke", "get", Value::Null),
                (1, "ok", "get", json!("")),
            ],
        ),
        "shows no put, but a read showing a put",
    );
}

#[test]
fn stretches_read_in_both_orders_are_refuted() {
    // p's stretch is read, then q's, then p's again: p would have to come before and after q.
    refuted_by_proof(
        &hist(
            24,
            &[
                (0, "invoke", "put", json!("p;")),
                (3, "invoke", "put", json!("q;")),
                (1, "invoke", "get", Value::Null),
                (1, "ok", "get", json!("p;")),
                (1, "invoke", "get", Value::Null),
                (1, "ok", "get", json!("q;")),
                (1, "invoke", "get", Value::Null),
                (1, "ok", "get", json!("p;")),
            ],
        ),
        "each completed before the other",
    );
}

#[test]
fn stretches_read_by_overlapping_reads_may_interleave() {
    // p; [read 1], q; [read 2] overlapping read 3 of p;: p, read 1, read 3, q, read 2.
    valid(&hist(
        0,
        &[
            (0, "invoke", "put", json!("p;")),
            (3, "invoke", "put", json!("q;")),
            (1, "invoke", "get", Value::Null),
            (1, "ok", "get", json!("p;")),
            (2, "invoke", "get", Value::Null),
            (4, "invoke", "get", Value::Null),
            (4, "ok", "get", json!("p;")),
            (2, "ok", "get", json!("q;")),
        ],
    ));
}

/// Many `info` appends no read shows, each invoked between reads: without the reduction each
/// one may take effect after any of the reads that follow it (or never).
#[test]
fn many_unobserved_info_appends_leave_a_valid_history_valid_and_decided() {
    let mut evs: Vec<(u64, &str, &str, Value)> = Vec::new();
    let mut list = String::new();
    for i in 0..60u64 {
        evs.push((200 + i, "invoke", "append", json!(format!("lost{i};"))));
        let v = format!("x{i};");
        evs.push((1, "invoke", "append", json!(v.clone())));
        evs.push((1, "ok", "append", json!(v.clone())));
        list.push_str(&v);
        evs.push((2, "invoke", "get", Value::Null));
        evs.push((2, "ok", "get", json!(list.clone())));
    }
    for i in 0..60u64 {
        evs.push((200 + i, "info", "append", json!(format!("lost{i};"))));
    }
    let h = hist(0, &evs);
    let r = check(
        &h,
        ModelKind::AppendKv,
        &CheckOptions {
            timeout: Some(Duration::from_secs(20)),
            ..CheckOptions::default()
        },
    );
    assert_eq!(r.valid, Verdict::Valid);
}

#[test]
fn an_info_append_a_read_shows_is_kept() {
    // The read can only be explained by the info append having taken effect.
    let h = hist(
        4,
        &[
            (0, "invoke", "append", json!("a;")),
            (0, "info", "append", json!("a;")),
            (1, "invoke", "get", Value::Null),
            (1, "ok", "get", json!("a;")),
        ],
    );
    valid(&h);
}
