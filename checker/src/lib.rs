//! Splitbrain's checker: histories, sequential models and a fast linearizability checker.
//!
//! # Layout
//!
//! * [`history`]: events ([`history::Event`], one line of `history.jsonl`) and the validated
//!   [`history::History`] of operations the checker reads.
//! * [`read`]: readers for the native JSONL, Jepsen/Knossos EDN and Porcupine's logs, with
//!   format detection.
//! * [`model`]: the sequential models (`register`, `cas-register`, `kv`, `append-kv`).
//! * [`search`]: Wing & Gong's search with Lowe's memoisation, per partition.
//! * [`check()`]: partitions a history (P-compositionality), checks partitions in parallel and
//!   builds the [`CheckReport`] with a [`Counterexample`] for an invalid partition.

pub mod edn;
pub mod history;
pub mod model;
pub mod read;
pub mod report;
pub mod search;

pub use model::ModelKind;
pub use report::{
    check, try_check, CheckError, CheckOptions, CheckReport, Counterexample, KeyResult,
    PartitionCounts, Progress, Verdict,
};
