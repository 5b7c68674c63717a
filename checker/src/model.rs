//! Sequential models. (Being built.)

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The model a history is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// One register: `read` / `write`; initial value absent (`null`).
    Register,
    /// One register with `cas [from to]`; initial value absent (`null`).
    CasRegister,
    /// Independent keys, each a cas-register (partitioned by key).
    Kv,
    /// Porcupine's kv model: `get` / `put` / `append` of strings per key, initial `""`.
    AppendKv,
}

impl ModelKind {
    pub const NAMES: &'static [&'static str] = &["register", "cas-register", "kv", "append-kv"];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::AppendKv => "append-kv",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "register" => Ok(ModelKind::Register),
            "cas-register" => Ok(ModelKind::CasRegister),
            "kv" => Ok(ModelKind::Kv),
            "append-kv" => Ok(ModelKind::AppendKv),
            _ => Err(format!(
                "unknown model {s:?} (expected one of: {})",
                ModelKind::NAMES.join(", ")
            )),
        }
    }
}
