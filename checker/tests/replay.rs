//! The step-by-step replay: on every invalid history of the Porcupine corpus, replaying the
//! counterexample's prefix is legal at every step and ends in the counterexample's state, and
//! the op that cannot be placed is illegal in that state (for counterexamples found by the
//! search; one refuted by a cheap proof has no prefix and the initial state).

use serde_json::json;
use splitbrain_checker::history::{Event, EventType, History, Process};
use splitbrain_checker::read::{read_file, Format};
use splitbrain_checker::{check, replay, CheckOptions, ModelKind, Verdict};
use std::path::PathBuf;

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/porcupine");
    assert!(
        dir.join("MANIFEST.tsv").is_file(),
        "corpus missing: expected {}/MANIFEST.tsv",
        dir.display()
    );
    dir
}

#[test]
fn every_corpus_counterexample_replays_legal_then_fails_at_its_op() {
    let dir = corpus();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let mut replayed = 0;
    let mut proofs = 0;
    let mut problems = Vec::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (path, model, expected) = (cols[0], cols[2], cols[3]);
        if expected != "illegal" {
            continue;
        }
        let model = match model {
            "etcd-cas-register" => ModelKind::CasRegister,
            _ => ModelKind::AppendKv,
        };
        let h = read_file(&dir.join(path), Format::Auto).unwrap();
        let r = check(&h, model, &CheckOptions::default());
        assert_eq!(r.valid, Verdict::Invalid, "{path}");
        let cx = r
            .counterexample
            .expect("invalid comes with a counterexample");
        if let Some(proof) = &cx.proof {
            // Refuted without a search: no prefix, the initial state, the fact's ops.
            assert!(cx.prefix.is_empty(), "{path}: {proof}");
            assert!(cx.window.iter().any(|o| o.id == cx.op.id), "{path}");
            let init = replay(model, std::slice::from_ref(&cx.op)).unwrap();
            assert_eq!(init[0].before, cx.state, "{path}: the initial state");
            proofs += 1;
            replayed += 1;
            continue;
        }
        let mut order = cx.prefix.clone();
        order.push(cx.op.clone());
        let steps = replay(model, &order).unwrap();
        assert_eq!(steps.len(), order.len());
        let (last, prefix) = steps.split_last().unwrap();
        if let Some(bad) = prefix.iter().position(|s| !s.legal) {
            problems.push(format!("{path}: prefix step {bad} is illegal"));
            continue;
        }
        for w in prefix.windows(2) {
            assert_eq!(
                w[0].after.as_ref(),
                Some(&w[1].before),
                "{path}: states chain"
            );
        }
        if last.before != cx.state {
            problems.push(format!(
                "{path}: replayed state {} but the counterexample says {}",
                last.before, cx.state
            ));
        }
        if last.legal {
            problems.push(format!(
                "{path}: the failing op {:?} is legal in {}",
                cx.op.f, last.before
            ));
        }
        replayed += 1;
    }
    assert!(replayed >= 40, "only {replayed} invalid corpus histories");
    eprintln!("{replayed} counterexamples, {proofs} of them cheap proofs");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn ev(
    i: u64,
    p: u64,
    kind: EventType,
    f: &str,
    key: Option<&str>,
    value: serde_json::Value,
) -> Event {
    Event {
        index: i,
        time: i,
        process: Process::Client(p),
        kind,
        f: f.into(),
        key: key.map(|k| json!(k)),
        value,
    }
}

#[test]
fn kv_replay_keeps_one_state_per_key_and_goes_on_after_an_illegal_step() {
    use EventType::*;
    let h = History::from_events(vec![
        ev(0, 0, Invoke, "write", Some("a"), json!(1)),
        ev(1, 0, Ok, "write", Some("a"), json!(1)),
        ev(2, 0, Invoke, "read", Some("b"), json!(null)),
        ev(3, 0, Ok, "read", Some("b"), json!(1)),
        ev(4, 0, Invoke, "cas", Some("a"), json!([1, 2])),
        ev(5, 0, Ok, "cas", Some("a"), json!([1, 2])),
        ev(6, 0, Invoke, "read", Some("a"), json!(null)),
        ev(7, 0, Ok, "read", Some("a"), json!(2)),
    ])
    .unwrap();
    let steps = replay(ModelKind::Kv, &h.ops).unwrap();
    let legal: Vec<bool> = steps.iter().map(|s| s.legal).collect();
    assert_eq!(legal, [true, false, true, true]);
    assert_eq!(steps[1].before, json!(null), "key b starts absent");
    assert_eq!(steps[1].after, None);
    assert_eq!(steps[2].before, json!(1));
    assert_eq!(steps[2].after, Some(json!(2)));
    assert_eq!(steps[3].before, json!(2));
}

#[test]
fn replay_rejects_an_op_the_model_does_not_know_naming_its_line() {
    use EventType::*;
    let h = History::from_events(vec![
        ev(0, 0, Invoke, "append", None, json!("x")),
        ev(1, 0, Ok, "append", None, json!("x")),
    ])
    .unwrap();
    let e = replay(ModelKind::Register, &h.ops).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
}
