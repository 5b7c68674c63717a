//! `splitbrain-node`: a durable Raft key-value store over HTTP, the system Splitbrain tests.
//!
//! # Layout
//! - [`raft`]: the pure Raft core (no I/O, no clock, no randomness of its own).
//! - [`cli`]: the flags shared by `splitbrain-node` and `splitbrain node`, and `run`.

pub mod cli;
pub mod raft;
