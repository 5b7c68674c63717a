//! Step-by-step replay of ops in a given linearization order, with the checker's own models.
//!
//! The search decides whether *some* order works; [`replay`] answers the question a person
//! asks of one order (a counterexample's prefix followed by the op that cannot be placed):
//! which state was each op applied to, what state did it leave, and was it legal there.
//! (A counterexample with a `proof` was refuted without a search: its prefix is empty, and
//! the proof, not a state, says why its op cannot be placed.)
//!
//! # Semantics
//!
//! * The models are exactly those of the search ([`crate::model`]), without the search's
//!   reductions (no op is dropped, no version-order hint is applied): a step is legal iff
//!   the model's sequential specification allows it.
//! * Partitioned models (all but `register` and `cas-register`) keep one state per key; `before` and `after` are
//!   the state of the step's key.
//! * An illegal step leaves the state unchanged (`after` is `None`) and the replay goes on
//!   from the state before it, so every later step is still shown.
//! * Ops whose result is unknown (an `info` read) constrain nothing: legal, state unchanged.
//! * `info` writes and cas are replayed as taking effect at their position in the order.
//!
//! # Example
//!
//! ```
//! use serde_json::json;
//! use splitbrain_checker::history::{Event, EventType, History, Process};
//! use splitbrain_checker::{check, replay, CheckOptions, ModelKind, Verdict};
//!
//! let ev = |i: u64, p: u64, kind: EventType, f: &str, value: serde_json::Value| Event {
//!     index: i, time: i, process: Process::Client(p), kind, f: f.into(), key: None, value,
//! };
//! use EventType::*;
//! // write 1, then write 2, then a read of 1.
//! let h = History::from_events(vec![
//!     ev(0, 0, Invoke, "write", json!(1)),
//!     ev(1, 0, Ok, "write", json!(1)),
//!     ev(2, 0, Invoke, "write", json!(2)),
//!     ev(3, 0, Ok, "write", json!(2)),
//!     ev(4, 1, Invoke, "read", json!(null)),
//!     ev(5, 1, Ok, "read", json!(1)),
//! ])
//! .unwrap();
//! let report = check(&h, ModelKind::Register, &CheckOptions::default());
//! assert_eq!(report.valid, Verdict::Invalid);
//! let cx = report.counterexample.unwrap();
//! let mut order = cx.prefix.clone();
//! order.push(cx.op.clone());
//! let steps = replay(ModelKind::Register, &order).unwrap();
//! // [{"before": null, "after": 1, "legal": true, …}, {"before": 1, "after": 2, "legal": true, …},
//! //  {"before": 2, "after": null, "legal": false, …}]
//! assert_eq!(steps.len(), 3);
//! assert_eq!(steps[0].before, json!(null));
//! assert_eq!(steps[0].after, Some(json!(1)));
//! assert!(steps[0].legal && steps[1].legal);
//! assert!(!steps[2].legal);
//! assert_eq!(steps[2].before, json!(2));
//! assert_eq!(steps[2].after, None);
//! let shown = serde_json::to_value(&steps).unwrap(); // what a report renders
//! assert_eq!(shown[2]["legal"], json!(false));
//! ```

use crate::history::Op;
use crate::model::{compile_plain, Compiled, ModelError};
use crate::search::SearchModel;
use crate::ModelKind;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// One replayed step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayStep {
    /// The op applied at this step.
    pub op: Op,
    /// The state of the op's key (the whole state for a single register) before the step.
    pub before: Value,
    /// The state after the step; `None` when the step is illegal.
    pub after: Option<Value>,
    /// Whether the model allows the op in the state `before`.
    pub legal: bool,
}

/// Replays `ops` in the order given against `model`, from its initial state. Errors when an
/// op is not an operation of the model (the same errors as [`crate::try_check`]).
pub fn replay(model: ModelKind, ops: &[Op]) -> Result<Vec<ReplayStep>, ModelError> {
    let idx: Vec<usize> = (0..ops.len()).collect();
    let (kept, compiled) = compile_plain(model, ops, &idx)?;
    Ok(match &compiled {
        Compiled::Register(m) => run(m, model, ops, &kept),
        Compiled::AppendKv(m) => run(m, model, ops, &kept),
        Compiled::Knossos(m) => run(m, model, ops, &kept),
    })
}

fn run<M: SearchModel>(m: &M, model: ModelKind, ops: &[Op], kept: &[usize]) -> Vec<ReplayStep> {
    // Local index (into the compiled inputs) of each op kept by the compiler.
    let local: HashMap<usize, usize> = kept.iter().enumerate().map(|(l, &i)| (i, l)).collect();
    let keyed = model.partitions_by_key();
    let mut states: HashMap<String, M::State> = HashMap::new();
    let mut steps = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let key = match (&op.key, keyed) {
            (Some(k), true) => k.to_string(),
            _ => String::new(),
        };
        let state = states.entry(key).or_insert_with(|| m.init());
        let before = m.describe(state);
        let (legal, after) = match local.get(&i) {
            // Not compiled: an op with an unknown result, which constrains nothing.
            None => (true, Some(before.clone())),
            Some(&l) => match m.step(state, l) {
                Some(next) => {
                    let after = m.describe(&next);
                    *state = next;
                    (true, Some(after))
                }
                None => (false, None),
            },
        };
        steps.push(ReplayStep {
            op: op.clone(),
            before,
            after,
            legal,
        });
    }
    steps
}
