//! Splitbrain's checker: histories, sequential models and a fast linearizability checker.
//!
//! # Layout
//!
//! * [`history`]: events ([`history::Event`], one line of `history.jsonl`) and the validated
//!   [`history::History`] of operations the checker reads.
//! * [`read`]: readers for the native JSONL, Jepsen/Knossos EDN ([`read::edn`]) and
//!   Porcupine's logs, with format detection (one file per format under `read/`).
//! * [`model`]: the sequential models (`register`, `cas-register`, `kv`, `append-kv`, and
//!   Knossos's `mutex`, `multi-register`, `set`, `fifo-queue`, `unordered-queue` in
//!   `model/knossos.rs`), each with its cheap proofs (`refute`: facts that refute a partition
//!   without a search).
//! * [`replay()`]: step-by-step replay of ops in a given order (a counterexample's prefix and
//!   its failing op) with the models' states before and after each step.
//! * [`search`]: Wing & Gong's search with Lowe's memoisation, per partition; the memo keys
//!   sets by their frontier (bounded by concurrency) and is paid for from a [`MemoryBudget`].
//! * [`check()`]: partitions a history (P-compositionality), checks partitions in parallel and
//!   builds the [`CheckReport`] with a [`Counterexample`] for an invalid partition.
//!
//! # Semantics
//!
//! * `fail` ops are removed; `info` ops (and invocations never completed) may take effect at
//!   any time after their invocation, or never; reads with unknown results are dropped.
//! * Real-time order is the order of events in the history (file order), so formats without
//!   timestamps work; op A precedes B iff A's completion comes before B's invocation.
//! * `register` / `cas-register` start absent (`null`); `kv` is a cas-register per key;
//!   `append-kv` is Porcupine's kv model (strings, initial `""`).
//! * A verdict is `Valid`, `Invalid` or `Unknown` (deadline, cancellation or memory limit):
//!   never a guess.
//!
//! # Speed
//!
//! Before searching a partition, cheap proofs look for a fact that refutes it outright (a read
//! of a value only written after it returned, …); the fact is then the counterexample.
//! Keys are checked independently (P-compositionality) and in parallel; the first invalid key
//! stops the others unless `all_partitions`. Values are interned to small integers; the memo
//! stores linearized sets in an arena with incremental hashes. Three exact reductions shrink
//! the search (each argued where it is implemented): `info` ops with identical inputs are
//! linearized in invocation order (`search`); `info` writes whose value nothing observes are
//! dropped (`model`); for `append-kv` with uniquely decodable values, each `get` reveals the
//! exact state each observed append was applied to (`model`).

pub mod history;
pub mod model;
pub mod read;
pub mod replay;
pub mod report;
pub mod search;

pub use model::ModelKind;
pub use replay::{replay, ReplayStep};
pub use report::{
    check, try_check, CheckError, CheckOptions, CheckReport, Counterexample, KeyResult,
    PartitionCounts, Progress, Verdict,
};
pub use search::MemoryBudget;
