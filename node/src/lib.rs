//! `splitbrain-node`: a durable Raft key-value store over HTTP, the system Splitbrain tests.
//!
//! # Layout
//! - [`raft`]: the pure Raft core (no I/O, no clock, no randomness of its own).
//! - [`wal`]: the write-ahead log and snapshot file (checksummed frames, torn-tail recovery).
//! - [`sm`]: the replicated key-value state machine with client sessions for dedup.
//! - [`server`]: the event loop that owns core, WAL and state machine and carries out `Ready`s.
//! - [`peer`]: outgoing peer messages (one sender task per peer).
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
