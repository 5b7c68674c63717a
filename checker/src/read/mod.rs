//! Readers: turn a history file into a [`History`].
//!
//! # Formats
//!
//! * [`Format::Jsonl`]: the native history, one [`Event`](crate::history::Event) per line
//!   (DESIGN.md §1). Blank lines are skipped.
//! * [`Format::Edn`]: a Jepsen/Knossos `history.edn`: a vector or list of maps, or one map per
//!   line. `:nemesis` entries are kept apart; cas values are `[old new]`. See [`edn`].
//! * [`Format::PorcupineEtcd`]: Porcupine's `test_data/jepsen/etcd_NNN.log` (Jepsen 2014 log
//!   lines). Read with Porcupine's `etcdModel` semantics: `:fail :cas` is an observed failed
//!   compare (an ok cas with output `false`); `:fail :read :timed-out` is a read with unknown
//!   result, which constrains nothing and is dropped; `:info` ops stay open.
//! * [`Format::PorcupineKv`]: Porcupine's `test_data/kv/*.txt` (one EDN map per line, get/put/
//!   append of strings per key).
//! * [`Format::Auto`]: detect from the content (see [`detect`]).
//!
//! Every error names the file, the line, and what was expected.
//!
//! # Layout
//!
//! * `mod.rs` (this file): [`Format`], [`detect`], [`read_file`] / [`read_str`] and
//!   [`infer_model`]; it dispatches to the readers and is the only module that imports them.
//! * `jsonl.rs`, [`edn`], `porcupine.rs`: one reader per format, each `&str → History`.
//! * `text.rs`: the line-error type and quoting helper the readers share (a leaf: imports
//!   nothing from its siblings), so there is no import cycle.

pub mod edn;
mod jsonl;
mod porcupine;
mod text;

use crate::history::History;
use crate::ModelKind;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A history file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Detect from the content.
    #[default]
    Auto,
    /// Native JSON Lines.
    Jsonl,
    /// Jepsen/Knossos EDN.
    Edn,
    /// Porcupine's Jepsen etcd log.
    PorcupineEtcd,
    /// Porcupine's kv (get/put/append) EDN log.
    PorcupineKv,
}

impl Format {
    pub const NAMES: &'static [&'static str] =
        &["auto", "jsonl", "edn", "porcupine-etcd", "porcupine-kv"];

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Jsonl => "jsonl",
            Format::Edn => "edn",
            Format::PorcupineEtcd => "porcupine-etcd",
            Format::PorcupineKv => "porcupine-kv",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Format::Auto),
            "jsonl" | "json" => Ok(Format::Jsonl),
            "edn" => Ok(Format::Edn),
            "porcupine-etcd" | "etcd" => Ok(Format::PorcupineEtcd),
            "porcupine-kv" => Ok(Format::PorcupineKv),
            _ => Err(format!(
                "unknown format {s:?} (expected one of: {})",
                Format::NAMES.join(", ")
            )),
        }
    }
}

/// A file that could not be read as a history.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl ReadError {
    /// The 1-based line of a parse error.
    pub fn line(&self) -> Option<usize> {
        match self {
            ReadError::Io { .. } => None,
            ReadError::Parse { line, .. } => Some(*line),
        }
    }
}

/// Reads and validates the history in `path`. JSONL is streamed (one block of lines in
/// memory at a time); the other formats are read whole.
pub fn read_file(path: &Path, format: Format) -> Result<History, ReadError> {
    let file = std::fs::File::open(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_from(file, path, format)
}

/// Reads and validates a history from `r`; `path` names it in errors.
pub fn read_from(
    mut file: impl std::io::Read,
    path: &Path,
    format: Format,
) -> Result<History, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let parse = |(line, message)| ReadError::Parse {
        path: path.to_owned(),
        line,
        message,
    };
    // Enough of the start to see the first non-blank line (detection looks at it).
    let mut head = Vec::with_capacity(1 << 16);
    let mut eof = false;
    loop {
        let mut chunk = [0u8; 1 << 16];
        let n = loop {
            match file.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r.map_err(io)?,
            }
        };
        head.extend_from_slice(&chunk[..n]);
        if n == 0 {
            eof = true;
            break;
        }
        if first_line(&head).is_some_and(|(_, complete)| complete) || head.len() >= 1 << 20 {
            break;
        }
    }
    let jsonl = match format {
        Format::Jsonl => true,
        Format::Auto => match first_line(&head) {
            None => true, // empty: an empty JSONL history
            Some((l, _)) => {
                let t = l.trim_ascii_start();
                t.starts_with(b"{\"") || t.starts_with(b"{ \"")
            }
        },
        _ => false,
    };
    let mut h = if jsonl {
        jsonl::read_jsonl_stream(head, file).map_err(|e| match e {
            Ok(e) => io(e),
            Err(le) => parse(le),
        })?
    } else {
        let mut bytes = head;
        if !eof {
            file.read_to_end(&mut bytes).map_err(io)?;
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            parse((line, "invalid UTF-8 (expected a text file)".into()))
        })?;
        return read_str(&text, format).map_err(parse);
    };
    if h.model_hint.is_none() {
        h.model_hint = Some(infer_model(&h));
    }
    Ok(h)
}

/// The first non-blank line of `head`, and whether it is complete (a newline follows it).
fn first_line(head: &[u8]) -> Option<(&[u8], bool)> {
    let blank = |l: &[u8]| l.iter().all(u8::is_ascii_whitespace);
    let mut rest = head;
    loop {
        match rest.iter().position(|&b| b == b'\n') {
            Some(p) if blank(&rest[..p]) => rest = &rest[p + 1..],
            Some(p) => return Some((&rest[..p], true)),
            None if blank(rest) => return None,
            None => return Some((rest, false)),
        }
    }
}

/// Reads a history from text; errors are `(line, message)`.
pub fn read_str(text: &str, format: Format) -> Result<History, (usize, String)> {
    let format = match format {
        Format::Auto => detect(text)?,
        f => f,
    };
    let mut h = match format {
        Format::Jsonl => jsonl::read_jsonl(text)?,
        Format::Edn => edn::read_edn(text)?,
        Format::PorcupineEtcd => porcupine::read_etcd(text)?,
        Format::PorcupineKv => porcupine::read_porcupine_kv(text)?,
        Format::Auto => unreachable!("Auto was resolved above"),
    };
    if h.model_hint.is_none() {
        h.model_hint = Some(infer_model(&h));
    }
    Ok(h)
}

/// Picks a model from the ops when none is named, where the ops make it unambiguous:
/// `append` or `get`/`put` → `append-kv`; `txn` → `multi-register`; `acquire`/`release` →
/// `mutex`; `add` → `set`; otherwise keys present → `kv`; `cas` present → `cas-register`;
/// else `register`. Queues (`enqueue`/`dequeue`) may be FIFO or unordered: name the model
/// (the register models' error says so).
pub fn infer_model(h: &History) -> ModelKind {
    let has = |f: &str| h.ops.iter().any(|o| o.f == f);
    if has("append") || has("get") || has("put") {
        ModelKind::AppendKv
    } else if has("txn") {
        ModelKind::MultiRegister
    } else if has("acquire") || has("release") {
        ModelKind::Mutex
    } else if has("add") {
        ModelKind::Set
    } else if h.ops.iter().any(|o| o.key.is_some()) {
        ModelKind::Kv
    } else if has("cas") {
        ModelKind::CasRegister
    } else {
        ModelKind::Register
    }
}

/// Detects the format of `text` from its first non-blank line: `{"` → JSONL; `INFO` and
/// `jepsen.util` → Porcupine etcd; `{:process` with `:f :get`/`:put`/`:append` and a string
/// key → Porcupine kv; `[`, `(` or `{:` → EDN. An empty file is an (empty) JSONL history.
pub fn detect(text: &str) -> Result<Format, (usize, String)> {
    let Some((i, line)) = text.lines().enumerate().find(|(_, l)| !l.trim().is_empty()) else {
        return Ok(Format::Jsonl);
    };
    let t = line.trim_start();
    if t.starts_with("{\"") || t.starts_with("{ \"") {
        Ok(Format::Jsonl)
    } else if t.starts_with("INFO") && t.contains("jepsen.util") {
        Ok(Format::PorcupineEtcd)
    } else if t.starts_with("{:process")
        && (t.contains(":f :get") || t.contains(":f :put") || t.contains(":f :append"))
        && t.contains(":key \"")
        && !text.contains(":type :info")
        && !text.contains(":type :fail")
    {
        Ok(Format::PorcupineKv)
    } else if t.starts_with('[') || t.starts_with('(') || t.starts_with("{:") || t.starts_with('#')
    {
        Ok(Format::Edn)
    } else {
        Err((
            i + 1,
            format!(
                "cannot detect the history format from {:?} (expected a JSON object line, a \
                 Jepsen EDN vector/map, or a Porcupine log line); name it with --format",
                text::truncate(t, 60)
            ),
        ))
    }
}
