//! Exit codes, as Jepsen's: 0 valid, 1 invalid, 2 unknown, 254 bad arguments or unreadable
//! input, 255 internal error; and 3: the history is valid (or unknown) but an end-of-run
//! cluster check failed (`crate::endcheck`: a member exited, diverged, or never caught up).

pub const VALID: u8 = 0;
pub const INVALID: u8 = 1;
pub const UNKNOWN: u8 = 2;
pub const CLUSTER_CHECK: u8 = 3;
pub const BAD_INPUT: u8 = 254;
pub const INTERNAL: u8 = 255;

/// An error that is the user's input's fault (bad flag, unreadable or malformed file):
/// wrap it with `BadInput` so that `main` exits 254 rather than 255.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// 254 if any error in the chain is `BadInput` (or an I/O error reading input), else 255.
pub fn code_for_error(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<BadInput>()) {
        BAD_INPUT
    } else {
        INTERNAL
    }
}
