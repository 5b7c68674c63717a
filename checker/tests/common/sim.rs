//! A simulated linearizable store that records histories: every op takes effect atomically at
//! a random moment between its invocation and completion; crashed ops (`info`) take effect
//! later or never. Shared by the tests and the `gen_history` example.

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use splitbrain_checker::history::{Event, EventType, Process};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimModel {
    Register,
    CasRegister,
    AppendKv,
}

#[derive(Clone, Debug)]
pub struct Sim {
    pub model: SimModel,
    /// Concurrent client slots (a crashed process continues as a new process id).
    pub processes: usize,
    pub ops: usize,
    /// 0: a single register (no key); else keys 0..keys.
    pub keys: usize,
    /// Probability that an op ends as `info`.
    pub info_rate: f64,
    /// Written values drawn from 0..values (0: every written value unique).
    pub values: u64,
}

struct Pending {
    f: &'static str,
    key: Option<u64>,
    value: Value,
    /// Some(output) once applied.
    applied: Option<Value>,
}

fn apply(model: SimModel, state: &mut Value, f: &str, value: &Value) -> Value {
    match (model, f) {
        (_, "read") | (_, "get") => state.clone(),
        (_, "write") | (_, "put") => {
            *state = value.clone();
            value.clone()
        }
        (_, "cas") => {
            if state == &value[0] {
                *state = value[1].clone();
                value.clone()
            } else {
                Value::Bool(false) // failed compare: recorded as fail
            }
        }
        (_, "append") => {
            let mut s = state.as_str().unwrap_or("").to_string();
            s.push_str(value.as_str().unwrap_or(""));
            *state = Value::String(s);
            value.clone()
        }
        _ => unreachable!("sim ops are fixed"),
    }
}

pub fn simulate(cfg: &Sim, seed: u64) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let init = if cfg.model == SimModel::AppendKv {
        Value::String(String::new())
    } else {
        Value::Null
    };
    let mut state: HashMap<Option<u64>, Value> = HashMap::new();
    let mut slots: Vec<(u64, Option<Pending>)> =
        (0..cfg.processes).map(|p| (p as u64, None)).collect();
    let mut next_pid = cfg.processes as u64;
    let mut ghosts: Vec<Pending> = Vec::new();
    let mut events = Vec::new();
    let mut invoked = 0;
    let mut unique = 0u64;
    let emit = |events: &mut Vec<Event>,
                p: u64,
                kind: EventType,
                f: &str,
                key: Option<u64>,
                value: Value| {
        let i = events.len() as u64;
        events.push(Event {
            index: i,
            time: i * 1000,
            process: Process::Client(p),
            kind,
            f: f.to_string(),
            key: key.map(|k| json!(k)),
            value,
        });
    };
    loop {
        let busy = slots.iter().any(|s| s.1.is_some());
        if invoked >= cfg.ops && !busy {
            break;
        }
        // Crashed ops take effect late (or never).
        if !ghosts.is_empty() && rng.gen_bool(0.05) {
            let g = ghosts.swap_remove(rng.gen_range(0..ghosts.len()));
            if rng.gen_bool(0.5) {
                let st = state.entry(g.key).or_insert_with(|| init.clone());
                apply(cfg.model, st, g.f, &g.value);
            }
        }
        let si = rng.gen_range(0..slots.len());
        let (pid, pending) = &mut slots[si];
        match pending {
            None => {
                if invoked >= cfg.ops {
                    continue;
                }
                invoked += 1;
                let key = (cfg.keys > 0).then(|| rng.gen_range(0..cfg.keys as u64));
                let mut val = |rng: &mut StdRng| -> u64 {
                    if cfg.values == 0 {
                        unique += 1;
                        unique
                    } else {
                        rng.gen_range(0..cfg.values)
                    }
                };
                let (f, value) = match cfg.model {
                    SimModel::Register => {
                        if rng.gen_bool(0.5) {
                            ("read", Value::Null)
                        } else {
                            ("write", json!(val(&mut rng)))
                        }
                    }
                    SimModel::CasRegister => match rng.gen_range(0..3) {
                        0 => ("read", Value::Null),
                        1 => ("write", json!(val(&mut rng))),
                        _ => {
                            let cur = state.get(&key).cloned().unwrap_or(Value::Null);
                            let from = if rng.gen_bool(0.6) && !cur.is_null() {
                                cur
                            } else {
                                json!(val(&mut rng))
                            };
                            ("cas", json!([from, val(&mut rng)]))
                        }
                    },
                    SimModel::AppendKv => match rng.gen_range(0..10) {
                        0..=3 => ("get", Value::Null),
                        4 => {
                            unique += 1;
                            ("put", json!(format!("p{unique};")))
                        }
                        _ => {
                            unique += 1;
                            ("append", json!(format!("a{unique};")))
                        }
                    },
                };
                emit(&mut events, *pid, EventType::Invoke, f, key, value.clone());
                *pending = Some(Pending {
                    f,
                    key,
                    value,
                    applied: None,
                });
            }
            Some(p) if p.applied.is_none() => {
                if rng.gen_bool(cfg.info_rate / 2.0) {
                    // Crash before taking effect: it may still take effect later.
                    let p = pending.take().expect("matched Some");
                    emit(
                        &mut events,
                        *pid,
                        EventType::Info,
                        p.f,
                        p.key,
                        p.value.clone(),
                    );
                    if p.f != "read" && p.f != "get" {
                        ghosts.push(p);
                    }
                    *pid = next_pid;
                    next_pid += 1;
                } else {
                    let st = state.entry(p.key).or_insert_with(|| init.clone());
                    p.applied = Some(apply(cfg.model, st, p.f, &p.value));
                }
            }
            Some(_) => {
                let p = pending.take().expect("matched Some");
                let out = p.applied.expect("matched applied");
                if rng.gen_bool(cfg.info_rate / 2.0) {
                    emit(&mut events, *pid, EventType::Info, p.f, p.key, p.value);
                    *pid = next_pid;
                    next_pid += 1;
                } else if out == Value::Bool(false) {
                    emit(&mut events, *pid, EventType::Fail, p.f, p.key, p.value);
                } else {
                    emit(&mut events, *pid, EventType::Ok, p.f, p.key, out);
                }
            }
        }
    }
    events
}

/// Changes the result of one `ok` read/get (chosen by `seed`) to a value it did not return.
/// Returns false if the history has no ok read.
pub fn corrupt_one_read(events: &mut [Event], seed: u64) -> bool {
    let mut rng = StdRng::seed_from_u64(seed);
    let reads: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EventType::Ok && (e.f == "read" || e.f == "get"))
        .map(|(i, _)| i)
        .collect();
    if reads.is_empty() {
        return false;
    }
    let i = reads[rng.gen_range(0..reads.len())];
    let e = &mut events[i];
    e.value = match &e.value {
        Value::String(s) => {
            let mut s = s.clone();
            if s.is_empty() || rng.gen_bool(0.5) {
                s.push_str("zz;");
            } else {
                s.pop();
            }
            Value::String(s)
        }
        Value::Number(n) if rng.gen_bool(0.5) => json!(n.as_u64().unwrap_or(0) + 1),
        Value::Number(_) => json!(rng.gen_range(1000..2000)),
        _ => json!(rng.gen_range(1000..2000)),
    };
    true
}
