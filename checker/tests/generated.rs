//! Generated histories: simulated linearizable executions check valid; corrupting one read
//! mostly makes them invalid; and the search agrees with a brute-force oracle on thousands of
//! small random histories.

mod common;

use common::oracle::{assert_prefix_is_a_linearization, oracle_valid};
use common::sim::{corrupt_one_read, simulate, Sim, SimModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use splitbrain_checker::history::{Event, EventType, History, Process};
use splitbrain_checker::{check, CheckOptions, ModelKind, Verdict};

fn configs() -> Vec<(Sim, ModelKind)> {
    let base = Sim {
        model: SimModel::Register,
        processes: 4,
        ops: 60,
        keys: 0,
        info_rate: 0.1,
        values: 0,
    };
    vec![
        (base.clone(), ModelKind::Register),
        (
            Sim {
                model: SimModel::CasRegister,
                values: 5,
                ..base.clone()
            },
            ModelKind::CasRegister,
        ),
        (
            Sim {
                model: SimModel::CasRegister,
                keys: 5,
                processes: 6,
                ops: 200,
                values: 0,
                ..base.clone()
            },
            ModelKind::Kv,
        ),
        (
            Sim {
                model: SimModel::AppendKv,
                keys: 3,
                processes: 5,
                ops: 120,
                ..base.clone()
            },
            ModelKind::AppendKv,
        ),
    ]
}

fn opts() -> CheckOptions {
    CheckOptions {
        all_partitions: true,
        timeout: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    }
}

#[test]
fn simulated_linearizable_histories_check_valid() {
    for (cfg, model) in configs() {
        let mut infos = 0;
        for seed in 0..150 {
            let events = simulate(&cfg, seed);
            let h = History::from_events(events).unwrap();
            infos += h.info_count();
            let r = check(&h, model, &opts());
            assert_eq!(
                r.valid,
                Verdict::Valid,
                "{model} seed {seed}: {:?}",
                r.counterexample.map(|c| c.to_text())
            );
        }
        assert!(infos > 100, "{model}: the generator must produce info ops");
    }
}

#[test]
fn corrupting_one_read_mostly_makes_histories_invalid() {
    for (cfg, model) in configs() {
        let (mut invalid, mut total) = (0, 0);
        for seed in 0..150 {
            let mut events = simulate(&cfg, seed);
            if !corrupt_one_read(&mut events, seed) {
                continue;
            }
            let h = History::from_events(events).unwrap();
            let r = check(&h, model, &opts());
            assert_ne!(r.valid, Verdict::Unknown, "{model} seed {seed}: undecided");
            total += 1;
            if r.valid == Verdict::Invalid {
                invalid += 1;
                let cx = r
                    .counterexample
                    .expect("invalid comes with a counterexample");
                assert_prefix_is_a_linearization(model, &h, &cx.prefix, &cx.state);
            }
        }
        assert!(total > 100, "{model}: too few histories with reads");
        assert!(
            invalid * 10 >= total * 7,
            "{model}: only {invalid} of {total} corrupted histories are invalid"
        );
    }
}

/// A random small history: random interleaving, random results (often not linearizable).
fn random_history(model: ModelKind, seed: u64) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let nops = rng.gen_range(1..=8);
    let nproc = rng.gen_range(1..=4);
    let mut pids: Vec<u64> = (0..nproc).collect();
    let mut next_pid = nproc;
    let mut busy: Vec<Option<(String, Option<Value>, Value)>> = vec![None; nproc as usize];
    let mut events = Vec::new();
    let mut invoked = 0;
    let mut uniq = 0;
    let v = |rng: &mut StdRng| -> Value {
        if rng.gen_bool(0.2) {
            Value::Null
        } else {
            json!(rng.gen_range(0..3))
        }
    };
    let keyed = model == ModelKind::Kv;
    while invoked < nops || busy.iter().any(Option::is_some) {
        let s = rng.gen_range(0..nproc as usize);
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
            None if invoked < nops => {
                invoked += 1;
                let key = keyed.then(|| json!(rng.gen_range(0..2)));
                let (f, value) = match model {
                    ModelKind::AppendKv => match rng.gen_range(0..4) {
                        0 | 1 => ("get", Value::Null),
                        2 => {
                            uniq += 1;
                            ("put", json!(format!("p{uniq};")))
                        }
                        _ => {
                            uniq += 1;
                            ("append", json!(format!("a{uniq};")))
                        }
                    },
                    _ => match rng.gen_range(0..if model == ModelKind::Register { 2 } else { 3 }) {
                        0 => ("read", Value::Null),
                        1 => ("write", v(&mut rng)),
                        _ => ("cas", json!([v(&mut rng), v(&mut rng)])),
                    },
                };
                events.push(ev(
                    pids[s],
                    EventType::Invoke,
                    f,
                    key.clone(),
                    value.clone(),
                ));
                busy[s] = Some((f.to_string(), key, value));
            }
            None => {}
            Some((f, key, value)) => {
                let roll = rng.gen_range(0..10);
                if roll == 0 {
                    events.push(ev(pids[s], EventType::Info, &f, key, value));
                    pids[s] = next_pid;
                    next_pid += 1;
                } else if roll == 1 {
                    events.push(ev(pids[s], EventType::Fail, &f, key, value));
                } else {
                    let out = match f.as_str() {
                        "read" => v(&mut rng),
                        "get" => {
                            // A random concatenation of appended values so far.
                            let mut s = String::new();
                            for _ in 0..rng.gen_range(0..3) {
                                s.push_str(&format!("a{};", rng.gen_range(1..=uniq.max(1))));
                            }
                            json!(s)
                        }
                        _ => value,
                    };
                    events.push(ev(pids[s], EventType::Ok, &f, key, out));
                }
            }
        }
    }
    events
}

#[test]
fn search_agrees_with_brute_force_oracle_on_small_histories() {
    for model in [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::Kv,
        ModelKind::AppendKv,
    ] {
        let (mut valid, mut invalid) = (0, 0);
        for seed in 0..2000 {
            let h = History::from_events(random_history(model, seed)).unwrap();
            let want = oracle_valid(model, &h);
            let got = check(&h, model, &opts()).valid;
            assert_eq!(
                got,
                if want {
                    Verdict::Valid
                } else {
                    Verdict::Invalid
                },
                "{model} seed {seed}: search {got}, oracle valid={want}\n{:#?}",
                h.ops
            );
            if want {
                valid += 1
            } else {
                invalid += 1
            }
        }
        assert!(
            valid > 200 && invalid > 200,
            "{model}: {valid} valid / {invalid} invalid: the oracle test needs both"
        );
    }
}

#[test]
fn search_agrees_with_oracle_on_small_simulated_append_histories() {
    // Simulated (mostly valid) and corrupted (mostly invalid) append histories exercise the
    // version-order hints, which only apply to values the reads actually reveal.
    let cfg = Sim {
        model: SimModel::AppendKv,
        processes: 3,
        ops: 8,
        keys: 0,
        info_rate: 0.2,
        values: 0,
    };
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..1500 {
        let mut events = simulate(&cfg, seed);
        if seed % 2 == 1 {
            corrupt_one_read(&mut events, seed);
        }
        let h = History::from_events(events).unwrap();
        let want = oracle_valid(ModelKind::AppendKv, &h);
        let got = check(&h, ModelKind::AppendKv, &opts()).valid;
        assert_eq!(
            got,
            if want {
                Verdict::Valid
            } else {
                Verdict::Invalid
            },
            "seed {seed}: search {got}, oracle valid={want}\n{:#?}",
            h.ops
        );
        if want {
            valid += 1
        } else {
            invalid += 1
        }
    }
    assert!(
        valid > 300 && invalid > 300,
        "{valid} valid / {invalid} invalid"
    );
}
