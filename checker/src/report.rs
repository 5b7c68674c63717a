//! Checking a whole history: partitions, parallelism, deadlines, verdicts and counterexamples.

use crate::history::{History, Op};
use crate::model::{compile, Compiled, ModelError};
use crate::search::{search, Limits, MemoryBudget, Outcome, SearchModel};
use crate::ModelKind;
use rayon::prelude::*;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
/// Checks add to both counters, so one `Progress` can follow several checks at once.
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
    /// Worker threads in a pool of the check's own (default: the caller's rayon pool, which
    /// is the global one with a thread per core unless the caller installed another).
    pub threads: Option<usize>,
    /// Set to true to stop the check; undecided partitions become `unknown`.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Updated as partitions are decided.
    pub progress: Option<Arc<Progress>>,
    /// Bytes the searches' memos may hold in all (every partition of this check, and of any
    /// other check given the same budget); a partition whose memo would grow past it is
    /// `unknown` (reason `"memory-limit"`), like a timeout. `None`: unbounded (a search that
    /// outgrows the machine's memory still ends as `unknown` when an allocation fails, rather
    /// than aborting the process).
    pub memory: Option<Arc<MemoryBudget>>,
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
    /// Why the verdict is `unknown`: `"timeout"`, `"cancelled"` or `"memory-limit"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why this partition is invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Counterexample>,
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
    /// Set when the history was refuted without a search, by a fact about real time and the
    /// values (e.g. "every op that writes 3 was invoked after this op completed"): then
    /// `prefix` is empty, `state` is the initial state, `window` holds `op` and the ops the
    /// fact is about, and `op` may be legal in `state` (the fact, not the state, refutes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

impl Counterexample {
    /// A readable account of the counterexample.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let key = match &self.key {
            Some(k) => format!(" on key {k}"),
            None => String::new(),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "not linearizable{key}: {} cannot be placed",
            describe_op(&self.op)
        );
        if let Some(proof) = &self.proof {
            let _ = writeln!(out, "because {proof}:");
            for op in &self.window {
                let _ = writeln!(out, "  {}", describe_op(op));
            }
            return out;
        }
        let _ = writeln!(
            out,
            "longest linearizable prefix: {} ops, ending in state {}",
            self.prefix.len(),
            self.state
        );
        let tail = self.prefix.len().saturating_sub(5);
        if tail > 0 {
            let _ = writeln!(out, "  … {tail} earlier ops");
        }
        for op in &self.prefix[tail..] {
            let _ = writeln!(out, "  {}", describe_op(op));
        }
        let _ = writeln!(
            out,
            "window of {} concurrent ops that cannot be linearized after it:",
            self.window.len()
        );
        for op in &self.window {
            let mark = if op.id == self.op.id {
                "  ← cannot be placed"
            } else {
                ""
            };
            let _ = writeln!(out, "  {}{mark}", describe_op(op));
        }
        out
    }
}

/// One op as a line of text: `process 3 cas [1,4] → ok (line 12, events 40–57)`.
pub fn describe_op(op: &Op) -> String {
    let outcome = match op.status {
        crate::history::OpStatus::Info => "info (unknown, open)".to_string(),
        crate::history::OpStatus::Ok => match op.f.as_str() {
            "read" | "get" => format!("ok {}", op.output),
            "cas" if op.output == Value::Bool(false) => "ok (compare failed)".to_string(),
            _ => "ok".to_string(),
        },
    };
    let value = match op.f.as_str() {
        "read" | "get" => String::new(),
        _ => format!(" {}", op.value),
    };
    let ret = if op.ret == u64::MAX {
        "∞".to_string()
    } else {
        op.ret.to_string()
    };
    // A named process shows its name (its number is one the reader made up).
    let process = match op.extra.get("process").and_then(Value::as_str) {
        Some(name) => name.to_string(),
        None => op.process.to_string(),
    };
    format!(
        "process {process} {}{value} → {outcome} (line {}, events {}–{ret})",
        op.f, op.line, op.call
    )
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
    /// Why the history could not be checked (then `valid` is `unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A history the model cannot interpret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error("cannot start worker threads: {0}")]
    Threads(String),
}

/// Checks `history` against `model`. A history the model cannot interpret (an op the model
/// does not know, a malformed value) gives an `unknown` report whose `error` says why; use
/// [`try_check`] to get that as an error instead.
pub fn check(history: &History, model: ModelKind, opts: &CheckOptions) -> CheckReport {
    try_check(history, model, opts).unwrap_or_else(|e| CheckReport {
        valid: Verdict::Unknown,
        model,
        ops: history.ops.len(),
        partitions: PartitionCounts::default(),
        per_key: Vec::new(),
        elapsed_ms: 0.0,
        counterexample: None,
        error: Some(e.to_string()),
    })
}

struct Partition {
    key: Option<Value>,
    /// Indices into `history.ops`.
    ops: Vec<usize>,
}

fn partitions(history: &History, model: ModelKind) -> Vec<Partition> {
    match model.partitions_by_key() {
        false => vec![Partition {
            key: None,
            ops: (0..history.ops.len()).collect(),
        }],
        true => {
            let mut by_key: HashMap<String, usize> = HashMap::new();
            let mut parts: Vec<Partition> = Vec::new();
            for (i, op) in history.ops.iter().enumerate() {
                let k = op.key.as_ref().map(|k| k.to_string()).unwrap_or_default();
                let p = *by_key.entry(k).or_insert_with(|| {
                    parts.push(Partition {
                        key: op.key.clone(),
                        ops: Vec::new(),
                    });
                    parts.len() - 1
                });
                parts[p].ops.push(i);
            }
            parts
        }
    }
}

/// Checks `history` against `model`; errors when the model cannot interpret an op.
pub fn try_check(
    history: &History,
    model: ModelKind,
    opts: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    let start = Instant::now();
    let deadline = opts.timeout.map(|t| start + t);
    let parts = partitions(history, model);
    // Compile everything first, so that a bad op is an error before any search starts.
    // Each compiled model is used by one worker thread (its caches are not shared).
    // Without a thread count, the caller's rayon pool is used (no threads started per check:
    // a CLI checking many files in parallel runs every check in the one global pool).
    let pool = match opts.threads {
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| CheckError::Threads(e.to_string()))?,
        ),
        None => None,
    };
    fn in_pool<R: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
        match pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }
    // Each partition is compiled just before its search and dropped after it, so memory holds
    // the compiled models of the partitions being searched, not of all of them. Every
    // partition is compiled even when the check stops early, so a bad op is always an error
    // (the first in partition order), never hidden behind a verdict.
    let sizes: Vec<usize> = parts.iter().map(|p| p.ops.len()).collect();
    if let Some(pr) = &opts.progress {
        pr.total.fetch_add(parts.len(), Ordering::Relaxed);
    }
    let stop = AtomicBool::new(false);
    let never = AtomicBool::new(false);
    let user_cancel: &AtomicBool = opts.cancel.as_deref().unwrap_or(&never);
    // Largest partitions first: they bound the wall time.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));

    let run_one = |i: usize| -> Result<(KeyResult, Option<Counterexample>), ModelError> {
        let t0 = Instant::now();
        let (kept, model_c) = match compile(model, &history.ops, &parts[i].ops) {
            Ok(c) => c,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        };
        let kept = &kept;
        let cancel = [user_cancel, &stop];
        let limits = Limits {
            deadline,
            cancel: if opts.all_partitions {
                &cancel[..1]
            } else {
                &cancel[..]
            },
            memory: opts.memory.as_deref(),
        };
        let (outcome, cx) = match &model_c {
            Compiled::Register(m) => run_partition(m, history, kept, &parts[i], &limits),
            Compiled::AppendKv(m) => run_partition(m, history, kept, &parts[i], &limits),
            Compiled::Knossos(m) => run_partition(m, history, kept, &parts[i], &limits),
        };
        if outcome == Outcome::Invalid && !opts.all_partitions {
            stop.store(true, Ordering::Relaxed);
        }
        if let Some(pr) = &opts.progress {
            pr.done.fetch_add(1, Ordering::Relaxed);
        }
        let (verdict, reason) = match outcome {
            Outcome::Valid => (Verdict::Valid, None),
            Outcome::Invalid => (Verdict::Invalid, None),
            Outcome::Timeout => (Verdict::Unknown, Some("timeout".to_string())),
            Outcome::Cancelled => (Verdict::Unknown, Some("cancelled".to_string())),
            Outcome::MemoryLimit => (Verdict::Unknown, Some("memory-limit".to_string())),
        };
        Ok((
            KeyResult {
                key: parts[i].key.clone(),
                verdict,
                ops: parts[i].ops.len(),
                elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
                reason,
                counterexample: cx.clone(),
            },
            cx,
        ))
    };

    type One = Result<(KeyResult, Option<Counterexample>), ModelError>;
    let mut results: Vec<(usize, One)> = if parts.len() == 1 {
        vec![(0, run_one(0))]
    } else {
        in_pool(pool.as_ref(), || {
            order.par_iter().map(|&i| (i, run_one(i))).collect()
        })
    };
    results.sort_by_key(|(i, _)| *i);
    // The first bad op in partition order is reported.
    let results: Vec<(usize, (KeyResult, Option<Counterexample>))> = results
        .into_iter()
        .map(|(i, r)| r.map(|r| (i, r)))
        .collect::<Result<_, _>>()?;

    let mut counts = PartitionCounts {
        total: parts.len(),
        ..Default::default()
    };
    let mut counterexample = None;
    let mut per_key = Vec::with_capacity(results.len());
    for (_, (kr, cx)) in results {
        match kr.verdict {
            Verdict::Invalid => {
                counts.invalid += 1;
                if counterexample.is_none() {
                    counterexample = cx;
                }
            }
            Verdict::Unknown => counts.unknown += 1,
            Verdict::Valid => {}
        }
        per_key.push(kr);
    }
    let valid = if counts.invalid > 0 {
        Verdict::Invalid
    } else if counts.unknown > 0 {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    Ok(CheckReport {
        valid,
        model,
        ops: history.ops.len(),
        partitions: counts,
        per_key,
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
        counterexample,
        error: None,
    })
}

/// Searches one partition, tracing the deepest partial linearization for the counterexample.
fn run_partition<M: SearchModel>(
    m: &M,
    history: &History,
    kept: &[usize],
    part: &Partition,
    limits: &Limits<'_>,
) -> (Outcome, Option<Counterexample>) {
    let calls: Vec<u64> = kept.iter().map(|&i| history.ops[i].call).collect();
    let rets: Vec<u64> = kept.iter().map(|&i| history.ops[i].ret).collect();
    // Cheap proofs first: facts that refute the partition without a search (unless the
    // check is already stopped: then it is `unknown`, as always).
    if let Some(rf) = limits
        .stop()
        .is_none()
        .then(|| m.refute(&calls, &rets))
        .flatten()
    {
        let op = &history.ops[kept[rf.op]];
        let mut window: Vec<Op> = std::iter::once(rf.op)
            .chain(rf.with.iter().copied())
            .map(|j| history.ops[kept[j]].clone())
            .collect();
        window.sort_by_key(|o| o.call);
        window.dedup_by_key(|o| o.id);
        return (
            Outcome::Invalid,
            Some(Counterexample {
                key: part.key.clone(),
                op: op.clone(),
                window,
                prefix: Vec::new(),
                state: m.describe(&m.init()),
                proof: Some(rf.fact),
            }),
        );
    }
    let (outcome, trace) = search(m, &calls, &rets, limits, true);
    if outcome != Outcome::Invalid {
        return (outcome, None);
    }
    let again = outcome;
    let cx = match (again, trace) {
        (Outcome::Invalid, Some(t)) => {
            let op = &history.ops[kept[t.blocked]];
            let in_prefix: HashSet<usize> = t.prefix.iter().copied().collect();
            let window: Vec<Op> = (0..kept.len())
                .filter(|j| !in_prefix.contains(j) && calls[*j] < op.ret)
                .map(|j| history.ops[kept[j]].clone())
                .collect();
            Some(Counterexample {
                key: part.key.clone(),
                op: op.clone(),
                window,
                prefix: t
                    .prefix
                    .iter()
                    .map(|&j| history.ops[kept[j]].clone())
                    .collect(),
                state: m.describe(&t.state),
                proof: None,
            })
        }
        _ => None,
    };
    (Outcome::Invalid, cx)
}
