//! Test support shared by the unit tests and the integration tests (`harness/tests/*.rs`),
//! through the library rather than `#[path]` includes: fixture run directories, a running
//! `splitbrain serve`, and a strict `junit.xml` check.
//!
//! This is test code compiled into the library so that every test uses one copy: its
//! functions panic (with a message) on I/O errors instead of returning them, as tests do.

pub mod junit_schema;
pub mod runs;
pub mod serve;
