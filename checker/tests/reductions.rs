//! Adversarial histories for the search reductions, checked against the brute-force oracle
//! (`common::oracle`, which applies none of them).
//!
//! The reductions under test (see `search` and `model`):
//! 1. `info` ops with identical inputs are linearized in invocation order;
//! 2. `info` writes (and `info` cas) whose value nothing observes are dropped;
//! 3. `append-kv` version-order hints when written values form a prefix code.
//!
//! The generators aim at them: many `info` ops, `info` ops repeating the previous op's input
//! exactly, tiny value domains with `null`, cas chains from values already written, observed
//! failed compares (Porcupine's etcd reading), reads that mostly return plausible values, and
//! for `append-kv` every value regime (unique prefix code, duplicates, non-prefix codes, empty
//! values). Every invalid verdict's counterexample prefix must be a real linearization.

mod common;

use common::oracle::{assert_prefix_is_a_linearization, oracle_valid};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use splitbrain_checker::history::{Event, EventType, History, Process};
use splitbrain_checker::{check, CheckOptions, ModelKind, Verdict};

/// How one generated history is shaped (drawn per history, so every regime is covered).
struct Shape {
    nops: usize,
    nproc: usize,
    info: f64,
    fail: f64,
    /// Probability that an op repeats the previous op's `f` and value exactly.
    dup: f64,
    /// Probability that an ok cas records a failed compare (output `false`).
    failed_compare: f64,
    /// Probability that a read returns an arbitrary small value instead of a plausible one.
    wild: f64,
}

fn shape(rng: &mut StdRng, max_ops: usize) -> Shape {
    Shape {
        nops: rng.gen_range(2..=max_ops),
        nproc: rng.gen_range(1..=5),
        info: [0.2, 0.4, 0.6][rng.gen_range(0..3)],
        fail: 0.05,
        dup: [0.0, 0.3, 0.6][rng.gen_range(0..3)],
        failed_compare: if rng.gen_bool(0.5) { 0.0 } else { 0.3 },
        wild: [0.1, 0.4][rng.gen_range(0..2)],
    }
}

/// A small register value: `null`, 0 or 1 (a tiny domain, so values repeat).
fn small(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..5) {
        0 => Value::Null,
        1 | 2 => json!(0),
        _ => json!(1),
    }
}

fn pick(rng: &mut StdRng, seen: &[Value]) -> Value {
    seen.choose(rng).cloned().unwrap_or(Value::Null)
}

/// Append-kv value regimes.
#[derive(Clone, Copy)]
enum Strings {
    /// Unique, a prefix code: the hints apply.
    Unique,
    /// A tiny alphabet: values repeat (several producers per value).
    Repeated,
    /// `a` is a prefix of `ab`: not a prefix code.
    NotPrefixCode,
    /// Unique but one value may be empty.
    WithEmpty,
}

fn adversarial_history(model: ModelKind, seed: u64, max_ops: usize) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sh = shape(&mut rng, max_ops);
    let strings = [
        Strings::Unique,
        Strings::Unique,
        Strings::Repeated,
        Strings::NotPrefixCode,
        Strings::WithEmpty,
    ][rng.gen_range(0..5)];
    let mut pids: Vec<u64> = (0..sh.nproc as u64).collect();
    let mut next_pid = sh.nproc as u64;
    let mut busy: Vec<Option<(String, Option<Value>, Value)>> = vec![None; sh.nproc];
    let mut events: Vec<Event> = Vec::new();
    let mut invoked = 0;
    let mut uniq = 0;
    // Values written so far (plausible read results), per key; `null`/"" always plausible.
    let mut seen: Vec<Value> = vec![if model == ModelKind::AppendKv {
        json!("")
    } else {
        Value::Null
    }];
    let mut appended: Vec<String> = Vec::new();
    let mut puts: Vec<String> = Vec::new();
    let mut last: Option<(String, Value)> = None;
    let keyed = model == ModelKind::Kv;
    while invoked < sh.nops || busy.iter().any(Option::is_some) {
        let s = rng.gen_range(0..sh.nproc);
        let idx = events.len() as u64;
        let ev = |p: u64, kind: EventType, f: &str, key: Option<Value>, value: Value| Event {
            index: idx,
            time: idx,
            process: Process::Client(p),
            kind,
            f: f.into(),
            key,
            value,
        };
        match busy[s].take() {
            None if invoked < sh.nops => {
                invoked += 1;
                let key = keyed.then(|| json!(rng.gen_range(0..2)));
                let (f, value) = match &last {
                    Some((f, v)) if rng.gen_bool(sh.dup) => (f.clone(), v.clone()),
                    _ => match model {
                        ModelKind::AppendKv => {
                            uniq += 1;
                            let v = match strings {
                                Strings::Unique => format!("{uniq};"),
                                Strings::Repeated => ["x", "y"][rng.gen_range(0..2)].to_string(),
                                Strings::NotPrefixCode => {
                                    ["a", "ab", "b"][rng.gen_range(0..3)].to_string()
                                }
                                Strings::WithEmpty if rng.gen_bool(0.2) => String::new(),
                                Strings::WithEmpty => format!("{uniq};"),
                            };
                            match rng.gen_range(0..5) {
                                0 | 1 => ("get".to_string(), Value::Null),
                                2 => {
                                    puts.push(v.clone());
                                    ("put".to_string(), json!(v))
                                }
                                _ => {
                                    appended.push(v.clone());
                                    ("append".to_string(), json!(v))
                                }
                            }
                        }
                        _ => {
                            let kinds = if model == ModelKind::Register { 2 } else { 3 };
                            match rng.gen_range(0..kinds) {
                                0 => ("read".to_string(), Value::Null),
                                1 => {
                                    let v = small(&mut rng);
                                    seen.push(v.clone());
                                    ("write".to_string(), v)
                                }
                                _ => {
                                    // Cas chains: mostly from a value already written.
                                    let from = if rng.gen_bool(0.7) {
                                        pick(&mut rng, &seen)
                                    } else {
                                        small(&mut rng)
                                    };
                                    let to = small(&mut rng);
                                    seen.push(to.clone());
                                    ("cas".to_string(), json!([from, to]))
                                }
                            }
                        }
                    },
                };
                last = Some((f.clone(), value.clone()));
                events.push(ev(
                    pids[s],
                    EventType::Invoke,
                    &f,
                    key.clone(),
                    value.clone(),
                ));
                busy[s] = Some((f, key, value));
            }
            None => {}
            Some((f, key, value)) => {
                let roll: f64 = rng.gen();
                if roll < sh.info {
                    events.push(ev(pids[s], EventType::Info, &f, key, value));
                    pids[s] = next_pid;
                    next_pid += 1;
                } else if roll < sh.info + sh.fail {
                    events.push(ev(pids[s], EventType::Fail, &f, key, value));
                } else {
                    let out = match f.as_str() {
                        "read" if rng.gen_bool(sh.wild) => small(&mut rng),
                        "read" => pick(&mut rng, &seen),
                        "get" => {
                            // A put value (or "") then appended values, in any order.
                            let mut out = if rng.gen_bool(0.3) {
                                puts.choose(&mut rng).cloned().unwrap_or_default()
                            } else {
                                String::new()
                            };
                            let mut pool = appended.clone();
                            pool.shuffle(&mut rng);
                            let n = rng.gen_range(0..=pool.len().min(3));
                            for a in &pool[..n] {
                                out.push_str(a);
                            }
                            if rng.gen_bool(sh.wild / 4.0) {
                                if let Some(a) = appended.choose(&mut rng) {
                                    out.push_str(a); // maybe twice
                                }
                            }
                            json!(out)
                        }
                        "cas" if rng.gen_bool(sh.failed_compare) => Value::Bool(false),
                        _ => value,
                    };
                    events.push(ev(pids[s], EventType::Ok, &f, key, out));
                }
            }
        }
    }
    events
}

fn opts() -> CheckOptions {
    CheckOptions {
        all_partitions: true,
        timeout: Some(std::time::Duration::from_secs(30)),
        threads: Some(1),
        ..Default::default()
    }
}

/// Checks adversarial histories of `model` (seeds `seeds`, up to `max_ops` ops) against the
/// oracle; returns (valid, invalid).
fn agree_with_oracle(
    model: ModelKind,
    seeds: std::ops::Range<u64>,
    max_ops: usize,
) -> (usize, usize) {
    let (mut valid, mut invalid) = (0, 0);
    for seed in seeds {
        let h = History::from_events(adversarial_history(model, seed, max_ops)).unwrap();
        let want = oracle_valid(model, &h);
        let r = check(&h, model, &opts());
        assert_eq!(
            r.valid,
            if want {
                Verdict::Valid
            } else {
                Verdict::Invalid
            },
            "{model} seed {seed}: search {}, oracle valid={want}\n{:#?}",
            r.valid,
            h.ops
        );
        if want {
            valid += 1;
        } else {
            invalid += 1;
            let cx = r
                .counterexample
                .expect("invalid comes with a counterexample");
            assert_prefix_is_a_linearization(model, &h, &cx.prefix, &cx.state);
        }
    }
    (valid, invalid)
}

fn assert_mix(model: ModelKind, (valid, invalid): (usize, usize)) {
    eprintln!("{model}: {valid} valid / {invalid} invalid");
    assert!(
        valid * 5 > valid + invalid && invalid * 5 > valid + invalid,
        "{model}: {valid} valid / {invalid} invalid: the oracle comparison needs both"
    );
}

#[test]
fn register_reductions_agree_with_oracle_on_adversarial_histories() {
    assert_mix(
        ModelKind::Register,
        agree_with_oracle(ModelKind::Register, 0..10_000, 8),
    );
}

#[test]
fn cas_register_reductions_agree_with_oracle_on_adversarial_histories() {
    assert_mix(
        ModelKind::CasRegister,
        agree_with_oracle(ModelKind::CasRegister, 0..10_000, 8),
    );
}

#[test]
fn kv_reductions_agree_with_oracle_on_adversarial_histories() {
    assert_mix(ModelKind::Kv, agree_with_oracle(ModelKind::Kv, 0..8000, 8));
}

#[test]
fn append_kv_hints_agree_with_oracle_on_adversarial_histories() {
    assert_mix(
        ModelKind::AppendKv,
        agree_with_oracle(ModelKind::AppendKv, 0..10_000, 8),
    );
}

/// The same comparison on many more and longer histories (minutes): `cargo test --release
/// -p splitbrain-checker --test reductions -- --ignored`.
#[test]
#[ignore]
fn reductions_agree_with_oracle_on_many_longer_histories() {
    for model in [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::Kv,
        ModelKind::AppendKv,
    ] {
        assert_mix(model, agree_with_oracle(model, 1_000_000..1_100_000, 10));
    }
}

// ---------------------------------------------------------------------------------------------
// Minimal histories at the edge of each reduction (each one is valid only through the case the
// reduction must leave alone, so an over-eager reduction turns it invalid).
// ---------------------------------------------------------------------------------------------

/// Events from `(process, type, f, value)`, in order.
fn hist(evs: &[(u64, &str, &str, Value)]) -> History {
    let events = evs
        .iter()
        .enumerate()
        .map(|(i, (p, t, f, v))| Event {
            index: i as u64,
            time: i as u64,
            process: Process::Client(*p),
            kind: serde_json::from_value(json!(t)).unwrap(),
            f: f.to_string(),
            key: None,
            value: v.clone(),
        })
        .collect();
    History::from_events(events).unwrap()
}

fn verdict(h: &History, model: ModelKind) -> Verdict {
    let want = oracle_valid(model, h);
    let got = check(h, model, &opts()).valid;
    assert_eq!(
        got == Verdict::Valid,
        want,
        "search {got}, oracle valid={want}"
    );
    got
}

#[test]
fn info_write_seen_only_by_a_failed_compare_is_not_dropped() {
    // write 1; info write 2; cas [1 3] observes a failed compare: only the info write explains it.
    let h = hist(&[
        (0, "invoke", "write", json!(1)),
        (0, "ok", "write", json!(1)),
        (1, "invoke", "write", json!(2)),
        (1, "info", "write", json!(2)),
        (2, "invoke", "cas", json!([1, 3])),
        (2, "ok", "cas", json!(false)),
    ]);
    assert_eq!(verdict(&h, ModelKind::CasRegister), Verdict::Valid);
}

#[test]
fn info_write_seen_only_by_an_info_cas_from_it_is_not_dropped() {
    // info write 2; info cas [2 3]; read 3: both info ops must have taken effect.
    let h = hist(&[
        (0, "invoke", "write", json!(2)),
        (0, "info", "write", json!(2)),
        (1, "invoke", "cas", json!([2, 3])),
        (1, "info", "cas", json!([2, 3])),
        (2, "invoke", "read", Value::Null),
        (2, "ok", "read", json!(3)),
    ]);
    assert_eq!(verdict(&h, ModelKind::CasRegister), Verdict::Valid);
}

#[test]
fn info_writes_of_different_values_take_effect_in_any_order() {
    // info write 1, info write 2 (invoked in that order); then reads see 2, then 1.
    let h = hist(&[
        (0, "invoke", "write", json!(1)),
        (0, "info", "write", json!(1)),
        (1, "invoke", "write", json!(2)),
        (1, "info", "write", json!(2)),
        (2, "invoke", "read", Value::Null),
        (2, "ok", "read", json!(2)),
        (2, "invoke", "read", Value::Null),
        (2, "ok", "read", json!(1)),
    ]);
    assert_eq!(verdict(&h, ModelKind::Register), Verdict::Valid);
}

#[test]
fn repeated_append_values_give_no_version_hints() {
    // Two info appends of the same value; the get sees both.
    let h = hist(&[
        (0, "invoke", "append", json!("x;")),
        (0, "info", "append", json!("x;")),
        (1, "invoke", "append", json!("x;")),
        (1, "info", "append", json!("x;")),
        (2, "invoke", "get", Value::Null),
        (2, "ok", "get", json!("x;x;")),
    ]);
    assert_eq!(verdict(&h, ModelKind::AppendKv), Verdict::Valid);
}

#[test]
fn append_values_that_are_not_a_prefix_code_give_no_version_hints() {
    // "ab" = "a" + "b" = "ab": the get does not reveal which appends produced it.
    let h = hist(&[
        (0, "invoke", "append", json!("a")),
        (0, "info", "append", json!("a")),
        (1, "invoke", "append", json!("b")),
        (1, "info", "append", json!("b")),
        (2, "invoke", "append", json!("ab")),
        (2, "ok", "append", json!("ab")),
        (2, "invoke", "get", Value::Null),
        (2, "ok", "get", json!("ab")),
    ]);
    assert_eq!(verdict(&h, ModelKind::AppendKv), Verdict::Valid);
}

#[test]
fn gets_that_disagree_on_an_appends_version_are_invalid() {
    let h = hist(&[
        (0, "invoke", "append", json!("a;")),
        (1, "invoke", "append", json!("b;")),
        (0, "ok", "append", json!("a;")),
        (1, "ok", "append", json!("b;")),
        (2, "invoke", "get", Value::Null),
        (2, "ok", "get", json!("a;b;")),
        (2, "invoke", "get", Value::Null),
        (2, "ok", "get", json!("b;a;")),
    ]);
    assert_eq!(verdict(&h, ModelKind::AppendKv), Verdict::Invalid);
}
