//! `splitbrain-node`: a durable Raft key-value store over HTTP, the system Splitbrain tests.
//!
//! # Layout
//! - [`raft`]: the pure Raft core (no I/O, no clock, no randomness of its own).
//! - [`wal`]: the write-ahead log and snapshot file (header- and payload-checksummed frames,
//!   torn-tail recovery, refusal of damage before the tail).
//! - [`sm`]: the replicated key-value state machine with client sessions for dedup.
//! - [`server`]: the event loop that owns core, WAL and state machine and carries out `Ready`s.
//! - [`peer`]: outgoing peer messages (a control lane and a data lane per peer).
//! - [`http`]: the client API and peer routes (axum).
//! - [`cli`]: the flags shared by `splitbrain-node` and `splitbrain node`, [`cli::run`] and
//!   [`cli::serve`].

pub mod cli;
pub mod http;
pub mod peer;
pub mod raft;
pub mod server;
pub mod sm;
pub mod wal;
