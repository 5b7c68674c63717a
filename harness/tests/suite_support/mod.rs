//! Helpers shared by the `suite_*` integration tests.
pub mod junit_schema;
