//! Workloads: what Splitbrain's clients do, each bound to its checker model.
//!
//! A workload is one thing ([`Workload`]): it turns the run's seed into one deterministic
//! stream of typed operations ([`Op`]) per worker ([`Generator`]), knows the keys its workers
//! used (for the final reads), names the checker model its histories are checked against, and
//! maps each operation and what the client saw of it ([`Outcome`] of a [`Reply`]) to the
//! history's events (DESIGN §1). The same seed, workload and concurrency give every worker the
//! same sequence of operations, whatever the timing of the run. Which worker's operation lands
//! first still depends on timing; what each worker asks for does not.
//!
//! Targets (in the harness) implement one method, `Client::invoke(&Op, request_id) ->
//! Outcome<Reply>`; they know nothing about histories.
//!
//! # Layout
//! - [`registers`]: `register` (one register, reads and writes; model `register`),
//!   `cas-register` (reads, writes and compare-and-set; model `cas-register`) and `kv`
//!   (independent cas-registers; model `kv`).
//! - [`append`]: `append` (per key a list; unique appends and reads of the whole list; model
//!   `append-kv`).
//! - [`seeds`]: every random stream of a run, by name.
//! - [`values`]: padded values (`--value-size`): wire text that decodes back to the integer
//!   and is verified byte for byte.
//! - this file: [`Op`], [`Outcome`], [`Reply`], the [`Workload`] and [`Generator`] traits, and
//!   the registry ([`WorkloadKind`]).
//!
//! # Adding a workload
//! Its file here (a [`Workload`] with its [`Generator`]), a variant of [`WorkloadKind`] with
//! its line in [`WorkloadKind::workload`]; an operation kind the targets do not know yet needs
//! a variant of [`Op`] and one arm in each target's `invoke`.
//!
//! Keyed workloads split workers into groups of at most [`KV_GROUP_SIZE`]; each group works on
//! one key at a time, `ops_per_key` operations in all on that key, then moves to a fresh key
//! (group `g` of `G` uses keys `k{g}`, `k{g+G}`, `k{g+2G}`, …), as Jepsen's
//! `independent/concurrent-generator`.

pub mod append;
pub mod registers;
pub mod seeds;
pub mod values;

pub use registers::{worker_generators, WorkerGen, KV_GROUP_SIZE, UNIQUE_STRIDE, VALUE_RANGE};
pub use seeds::sub_seed;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use splitbrain_checker::history::EventType;
use splitbrain_checker::ModelKind;

/// The key the single-register workloads use on the wire (absent from their histories).
pub const REGISTER_KEY: &str = "register";

/// The function of an operation, as in the history's `f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum F {
    Read,
    Write,
    Cas,
    Append,
}

impl F {
    pub fn name(self) -> &'static str {
        match self {
            F::Read => "read",
            F::Write => "write",
            F::Cas => "cas",
            F::Append => "append",
        }
    }
}

/// One operation a worker asks for (the key is the wire key, always set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum Op {
    /// A linearizable read of the key's whole value.
    Read { key: String },
    /// Sets the key to `value`.
    Write { key: String, value: i64 },
    /// Sets the key to `to` if it holds `from`.
    Cas { key: String, from: i64, to: i64 },
    /// Appends `value` to the key's list (an absent key becomes `[value]`).
    Append { key: String, value: i64 },
}

impl Op {
    pub fn f(&self) -> F {
        match self {
            Op::Read { .. } => F::Read,
            Op::Write { .. } => F::Write,
            Op::Cas { .. } => F::Cas,
            Op::Append { .. } => F::Append,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Op::Read { key }
            | Op::Write { key, .. }
            | Op::Cas { key, .. }
            | Op::Append { key, .. } => key,
        }
    }

    /// True for operations that change nothing (a failed or timed-out read is `fail`).
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Read { .. })
    }
}

/// What a client saw of one operation (DESIGN §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// It happened, with this result.
    Ok(T),
    /// It certainly did not happen (a definite error, a cas whose `from` did not match, a read
    /// that failed).
    Fail(String),
    /// It may or may not have happened (timeout or connection lost after sending, 504, …).
    Info(String),
}

/// What a target answers to an operation that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A write, cas or append was applied.
    Done,
    /// A read of an integer register: `None` if the key is absent.
    Value(Option<i64>),
    /// A read of a list.
    List(Vec<i64>),
}

/// A completion event of the history: its type, value and (for `fail` and `info`) reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub kind: EventType,
    pub value: Value,
    pub reason: Option<String>,
}

impl Completion {
    pub fn new(kind: EventType, value: Value, reason: Option<String>) -> Self {
        Completion {
            kind,
            value,
            reason,
        }
    }
}

/// The deterministic operation stream of one worker.
pub trait Generator: Send {
    /// The next operation.
    fn next_op(&mut self) -> Op;
    /// Every key this worker has used so far (including the current one if it started it).
    fn keys_used(&self) -> Vec<String>;
}

/// A workload. See the module docs.
pub trait Workload: Send + Sync {
    /// Its `--workload` name.
    fn name(&self) -> &'static str;
    /// The checker model its histories are checked against.
    fn model(&self) -> ModelKind;
    /// True if histories carry a `key` per operation.
    fn keyed(&self) -> bool;
    /// One generator per worker (`0..concurrency`), seeded from the run's `seed` (stream
    /// [`seeds::Stream::Worker`]). `unique_writes`: every write writes a value of its own
    /// (`--unique-writes`; workloads whose values are always unique ignore it).
    fn generators(
        &self,
        concurrency: usize,
        ops_per_key: u64,
        seed: u64,
        unique_writes: bool,
    ) -> Vec<Box<dyn Generator>>;
    /// The operation that reads `key` in the final phase.
    fn final_read(&self, key: &str) -> Op {
        Op::Read {
            key: key.to_string(),
        }
    }
    /// The invocation's value in the history (`null` for reads).
    fn invocation_value(&self, op: &Op) -> Value;
    /// The completion event for `op` after `outcome`.
    fn completion(&self, op: &Op, outcome: Outcome<Reply>) -> Completion;
}

/// The integer registers' history mapping (DESIGN §1): reads → the value read or `null`;
/// writes → the value; cas → `[from, to]`. A read that did not answer is `fail` (reads change
/// nothing); a write or cas keeps its invocation value.
pub fn register_invocation_value(op: &Op) -> Value {
    match op {
        Op::Read { .. } => Value::Null,
        Op::Write { value, .. } | Op::Append { value, .. } => json!(value),
        Op::Cas { from, to, .. } => json!([from, to]),
    }
}

/// See [`register_invocation_value`].
pub fn register_completion(op: &Op, outcome: Outcome<Reply>) -> Completion {
    let v = register_invocation_value(op);
    match (op, outcome) {
        (Op::Read { .. }, Outcome::Ok(Reply::Value(x))) => {
            Completion::new(EventType::Ok, json!(x), None)
        }
        (Op::Read { .. }, Outcome::Ok(other)) => Completion::new(
            EventType::Fail,
            Value::Null,
            Some(format!("not an integer register: {other:?}")),
        ),
        (Op::Read { .. }, Outcome::Fail(r) | Outcome::Info(r)) => {
            Completion::new(EventType::Fail, Value::Null, Some(r))
        }
        (_, Outcome::Ok(_)) => Completion::new(EventType::Ok, v, None),
        (_, Outcome::Fail(r)) => Completion::new(EventType::Fail, v, Some(r)),
        (_, Outcome::Info(r)) => Completion::new(EventType::Info, v, Some(r)),
    }
}

/// A workload, by its `--workload` name: the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    Register,
    CasRegister,
    Kv,
    Append,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 4] = [
        WorkloadKind::Register,
        WorkloadKind::CasRegister,
        WorkloadKind::Kv,
        WorkloadKind::Append,
    ];

    /// The workload itself.
    pub fn workload(self) -> &'static dyn Workload {
        match self {
            WorkloadKind::Register => &registers::REGISTER,
            WorkloadKind::CasRegister => &registers::CAS_REGISTER,
            WorkloadKind::Kv => &registers::KV,
            WorkloadKind::Append => &append::Append,
        }
    }

    /// The `--workload` name.
    pub fn name(self) -> &'static str {
        self.workload().name()
    }

    /// Parses a `--workload` name.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|w| w.name()).collect();
                format!(
                    "unknown workload {s:?}; expected one of: {}",
                    names.join(", ")
                )
            })
    }

    /// The checker model its histories are checked against.
    pub fn model(self) -> ModelKind {
        self.workload().model()
    }

    /// True if histories carry a `key` per operation.
    pub fn keyed(self) -> bool {
        self.workload().keyed()
    }
}

impl std::str::FromStr for WorkloadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        WorkloadKind::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_workload_names_and_rejects_others() {
        assert_eq!(
            WorkloadKind::parse("cas-register"),
            Ok(WorkloadKind::CasRegister)
        );
        assert!(WorkloadKind::parse("queue")
            .unwrap_err()
            .contains("register, cas-register, kv"));
        assert_eq!(WorkloadKind::parse("append"), Ok(WorkloadKind::Append));
    }

    #[test]
    fn registry_names_round_trip_and_bind_each_workload_to_its_model() {
        for k in WorkloadKind::ALL {
            assert_eq!(WorkloadKind::parse(k.name()), Ok(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.name())
            );
        }
        assert_eq!(WorkloadKind::Kv.model(), ModelKind::Kv);
        assert_eq!(WorkloadKind::Append.model(), ModelKind::AppendKv);
        assert!(WorkloadKind::Append.keyed() && !WorkloadKind::Register.keyed());
    }

    #[test]
    fn a_read_that_did_not_answer_is_a_fail_and_a_write_that_timed_out_is_info() {
        let read = Op::Read { key: "k".into() };
        let write = Op::Write {
            key: "k".into(),
            value: 3,
        };
        let c = register_completion(&read, Outcome::Info("timeout".into()));
        assert_eq!(c.kind, EventType::Fail);
        let c = register_completion(&write, Outcome::Info("timeout".into()));
        assert_eq!((c.kind, c.value), (EventType::Info, json!(3)));
        let c = register_completion(&read, Outcome::Ok(Reply::Value(Some(4))));
        assert_eq!((c.kind, c.value), (EventType::Ok, json!(4)));
    }
}
