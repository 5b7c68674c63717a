//! A brute-force linearizability oracle: tries every order of the ops consistent with real
//! time; `info` ops may be left out (= take effect after everything). Exponential, for small
//! histories only; it applies none of the checker's reductions, so agreement with it tests
//! them.

#![allow(dead_code)]

use serde_json::{json, Value};
use splitbrain_checker::history::{History, Op, OpStatus};
use splitbrain_checker::ModelKind;

/// The model's initial state.
pub fn oracle_init(model: ModelKind) -> Value {
    if model == ModelKind::AppendKv {
        json!("")
    } else {
        Value::Null
    }
}

/// One step of the sequential model, straight from the semantics (DESIGN.md): `None` if the
/// op cannot take effect in `state`.
pub fn oracle_step(model: ModelKind, state: &Value, op: &Op) -> Option<Value> {
    let info = op.status == OpStatus::Info;
    match op.f.as_str() {
        "read" | "get" => (info || op.output == *state).then(|| state.clone()),
        "write" | "put" => Some(op.value.clone()),
        "cas" => {
            let (from, to) = (&op.value[0], &op.value[1]);
            if info {
                Some(if state == from {
                    to.clone()
                } else {
                    state.clone()
                })
            } else if op.output == Value::Bool(false) {
                // Porcupine's etcd reading: an observed failed compare.
                (state != from).then(|| state.clone())
            } else {
                (state == from).then(|| to.clone())
            }
        }
        "append" => {
            assert_eq!(model, ModelKind::AppendKv);
            Some(json!(format!(
                "{}{}",
                state.as_str().unwrap_or(""),
                op.value.as_str().unwrap()
            )))
        }
        f => panic!("oracle: unexpected f {f}"),
    }
}

fn search(model: ModelKind, ops: &[Op], placed: &mut Vec<bool>, state: &Value) -> bool {
    let remaining: Vec<usize> = (0..ops.len()).filter(|&i| !placed[i]).collect();
    if remaining.iter().all(|&i| ops[i].status == OpStatus::Info) {
        return true;
    }
    for &i in &remaining {
        // i can go next only if no unplaced op completed before i was invoked.
        if remaining.iter().any(|&j| ops[j].ret < ops[i].call) {
            continue;
        }
        if let Some(s) = oracle_step(model, state, &ops[i]) {
            placed[i] = true;
            let ok = search(model, ops, placed, &s);
            placed[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

/// Whether `h` is linearizable under `model`, per key as the model's partitions.
pub fn oracle_valid(model: ModelKind, h: &History) -> bool {
    let mut keys: Vec<Option<String>> = h
        .ops
        .iter()
        .map(|o| o.key.as_ref().map(|k| k.to_string()))
        .collect();
    keys.sort();
    keys.dedup();
    let init = oracle_init(model);
    keys.iter().all(|k| {
        let ops: Vec<Op> = h
            .ops
            .iter()
            .filter(|o| o.key.as_ref().map(|k| k.to_string()) == *k)
            .cloned()
            .collect();
        search(model, &ops, &mut vec![false; ops.len()], &init)
    })
}

/// The counterexample's prefix is legal in the model, ends in the reported state, and
/// respects real time: every op that precedes a prefix op is earlier in the prefix.
pub fn assert_prefix_is_a_linearization(model: ModelKind, h: &History, prefix: &[Op], end: &Value) {
    let mut state = oracle_init(model);
    let key = prefix.first().and_then(|o| o.key.clone());
    for (i, op) in prefix.iter().enumerate() {
        assert_eq!(op.key, key, "prefix mixes keys");
        state = oracle_step(model, &state, op)
            .unwrap_or_else(|| panic!("prefix op {i} ({op:?}) is illegal in state {state}"));
        for other in h.ops.iter().filter(|o| o.key == key && o.precedes(op)) {
            let info_read =
                other.status == OpStatus::Info && (other.f == "read" || other.f == "get");
            assert!(
                info_read || prefix[..i].iter().any(|p| p.id == other.id),
                "prefix op {} placed before op {} that precedes it",
                op.id,
                other.id
            );
        }
    }
    assert_eq!(&state, end, "prefix does not end in the reported state");
}
