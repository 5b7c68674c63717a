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

fn shape(rng: &mut StdRng) -> Shape {
    Shape {
        nops: rng.gen_range(2..=8),
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

fn register_history(model: ModelKind, seed: u64) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sh = shape(&mut rng);
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

/// Checks `n` adversarial histories of `model` against the oracle; returns (valid, invalid).
fn agree_with_oracle(model: ModelKind, n: u64) -> (usize, usize) {
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..n {
        let h = History::from_events(register_history(model, seed)).unwrap();
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
        agree_with_oracle(ModelKind::Register, 4000),
    );
}

#[test]
fn cas_register_reductions_agree_with_oracle_on_adversarial_histories() {
    assert_mix(
        ModelKind::CasRegister,
        agree_with_oracle(ModelKind::CasRegister, 4000),
    );
}

#[test]
fn kv_reductions_agree_with_oracle_on_adversarial_histories() {
    assert_mix(ModelKind::Kv, agree_with_oracle(ModelKind::Kv, 3000));
}

#[test]
fn append_kv_hints_agree_with_oracle_on_adversarial_histories() {
    assert_mix(
        ModelKind::AppendKv,
        agree_with_oracle(ModelKind::AppendKv, 4000),
    );
}
