//! Checking a whole history: partitions, parallelism, deadlines, verdicts and counterexamples.

use crate::history::{History, Op};
use crate::ModelKind;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A verdict: serializes as `true` (valid), `false` (invalid) or `"unknown"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Valid,
    Invalid,
    Unknown,
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Verdict::Valid => s.serialize_bool(true),
            Verdict::Invalid => s.serialize_bool(false),
            Verdict::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Verdict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(true) => Ok(Verdict::Valid),
            Value::Bool(false) => Ok(Verdict::Invalid),
            Value::String(s) if s == "unknown" => Ok(Verdict::Unknown),
            v => Err(serde::de::Error::custom(format!(
                "verdict {v}: expected true, false or \"unknown\""
            ))),
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        })
    }
}

/// Progress of a running check, for a progress bar: partitions decided out of the total.
#[derive(Debug, Default)]
pub struct Progress {
    pub total: AtomicUsize,
    pub done: AtomicUsize,
}

/// How to check.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Deadline for the whole check; partitions not decided by then are `unknown`.
    pub timeout: Option<Duration>,
    /// Decide every partition instead of stopping at the first invalid one.
    pub all_partitions: bool,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Set to true to stop the check; undecided partitions become `unknown`.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Updated as partitions are decided.
    pub progress: Option<Arc<Progress>>,
}

/// Partition counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCounts {
    pub total: usize,
    pub invalid: usize,
    pub unknown: usize,
}

/// The result for one partition (one key; a single register has one partition, key `None`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyResult {
    pub key: Option<Value>,
    pub verdict: Verdict,
    pub ops: usize,
    pub elapsed_ms: f64,
    /// Why the verdict is `unknown`: `"timeout"` or `"cancelled"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a partition is not linearizable, in terms a person can follow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Counterexample {
    /// The partition's key (`None` for a single register).
    pub key: Option<Value>,
    /// The operation that cannot be placed: no linearization of the ops before it reaches its
    /// completion with it linearized.
    pub op: Op,
    /// The smallest window of concurrent operations (including `op`) that cannot be
    /// linearized after `prefix`, ordered by invocation.
    pub window: Vec<Op>,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<Op>,
    /// The model state after `prefix`.
    pub state: Value,
}

impl Counterexample {
    /// A readable account of the counterexample.
    pub fn to_text(&self) -> String {
        String::from("counterexample (being built)")
    }
}

/// The result of checking one history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckReport {
    pub valid: Verdict,
    pub model: ModelKind,
    pub ops: usize,
    pub partitions: PartitionCounts,
    pub per_key: Vec<KeyResult>,
    pub elapsed_ms: f64,
    pub counterexample: Option<Counterexample>,
}

/// Checks `history` against `model`.
pub fn check(history: &History, model: ModelKind, opts: &CheckOptions) -> CheckReport {
    let start = Instant::now();
    let _ = opts;
    CheckReport {
        valid: Verdict::Unknown,
        model,
        ops: history.ops.len(),
        partitions: PartitionCounts {
            total: 1,
            invalid: 0,
            unknown: 1,
        },
        per_key: vec![],
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
        counterexample: None,
    }
}
