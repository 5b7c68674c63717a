//! Readers: turn a history file into a [`History`].
//!
//! # Formats
//!
//! * [`Format::Jsonl`]: the native history, one [`Event`](crate::history::Event) per line
//!   (DESIGN.md §1). Blank lines are skipped.
//! * [`Format::Edn`]: a Jepsen/Knossos `history.edn`: a vector or list of maps, or one map per
//!   line. `:nemesis` entries are kept apart; cas values are `[old new]`. See [`crate::edn`].
//! * [`Format::PorcupineEtcd`]: Porcupine's `test_data/jepsen/etcd_NNN.log` (Jepsen 2014 log
//!   lines). Read with Porcupine's `etcdModel` semantics: `:fail :cas` is an observed failed
//!   compare (an ok cas with output `false`); `:fail :read :timed-out` is a read with unknown
//!   result, which constrains nothing and is dropped; `:info` ops stay open.
//! * [`Format::PorcupineKv`]: Porcupine's `test_data/kv/*.txt` (one EDN map per line, get/put/
//!   append of strings per key).
//! * [`Format::Auto`]: detect from the content (see [`detect`]).
//!
//! Every error names the file, the line, and what was expected.

use crate::history::{Builder, Event, EventType, History, Process};
use crate::ModelKind;
use serde_json::Value;
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

/// Reads and validates the history in `path`.
pub fn read_file(path: &Path, format: Format) -> Result<History, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        ReadError::Parse {
            path: path.to_owned(),
            line,
            message: "invalid UTF-8 (expected a text file)".into(),
        }
    })?;
    read_str(&text, format).map_err(|(line, message)| ReadError::Parse {
        path: path.to_owned(),
        line,
        message,
    })
}

/// An error at a 1-based line.
pub(crate) type LineError = (usize, String);

/// Reads a history from text; errors are `(line, message)`.
pub fn read_str(text: &str, format: Format) -> Result<History, (usize, String)> {
    let format = match format {
        Format::Auto => detect(text)?,
        f => f,
    };
    let mut h = match format {
        Format::Jsonl => read_jsonl(text)?,
        Format::Edn => crate::edn::read_edn(text)?,
        Format::PorcupineEtcd => read_etcd(text)?,
        Format::PorcupineKv => read_porcupine_kv(text)?,
        Format::Auto => unreachable!("Auto was resolved above"),
    };
    if h.model_hint.is_none() {
        h.model_hint = Some(infer_model(&h));
    }
    Ok(h)
}

/// Picks a model from the ops when none is named: `append` or `get`/`put` → `append-kv`;
/// otherwise keys present → `kv`; `cas` present → `cas-register`; else `register`.
pub fn infer_model(h: &History) -> ModelKind {
    let has = |f: &str| h.ops.iter().any(|o| o.f == f);
    if has("append") || has("get") || has("put") {
        ModelKind::AppendKv
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
pub fn detect(text: &str) -> Result<Format, LineError> {
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
    } else if t.starts_with('[') || t.starts_with('(') || t.starts_with("{:") {
        Ok(Format::Edn)
    } else {
        Err((
            i + 1,
            format!(
                "cannot detect the history format from {:?} (expected a JSON object line, a \
                 Jepsen EDN vector/map, or a Porcupine log line); name it with --format",
                truncate(t, 60)
            ),
        ))
    }
}

pub(crate) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

fn read_jsonl(text: &str) -> Result<History, LineError> {
    use rayon::prelude::*;
    let lines: Vec<&str> = text.lines().collect();
    // Parse lines in parallel (the bulk of the work for big histories), validate in order.
    let parsed: Vec<Result<Option<Event>, LineError>> = lines
        .par_iter()
        .enumerate()
        .map(|(i, line)| {
            if line.trim().is_empty() {
                return Ok(None);
            }
            serde_json::from_str::<Event>(line).map(Some).map_err(|e| {
                (
                    i + 1,
                    format!(
                        "{e} (expected one JSON event per line: {{\"index\",\"time\",\"process\",\
                         \"type\",\"f\",\"key\"?,\"value\"}})"
                    ),
                )
            })
        })
        .collect();
    let mut b = Builder::new();
    // The first bad line in file order is reported.
    for (i, ev) in parsed.into_iter().enumerate() {
        if let Some(ev) = ev? {
            b.push(ev, i + 1).map_err(|e| (i + 1, e.message))?;
        }
    }
    Ok(b.finish())
}

fn mk_event(
    line: usize,
    process: u64,
    kind: EventType,
    f: &str,
    key: Option<Value>,
    value: Value,
) -> Event {
    Event {
        index: line as u64 - 1,
        time: 0,
        process: Process::Client(process),
        kind,
        f: f.to_string(),
        key,
        value,
    }
}

fn parse_int(tok: &str, line: usize, what: &str) -> Result<i64, LineError> {
    tok.parse::<i64>().map_err(|_| {
        (
            line,
            format!("expected {what}, found {:?}", truncate(tok, 40)),
        )
    })
}

fn read_etcd(text: &str) -> Result<History, LineError> {
    let mut b = Builder::new();
    for (i, line) in text.lines().enumerate() {
        let ln = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let rest = line
            .strip_prefix("INFO")
            .and_then(|r| r.trim_start().strip_prefix("jepsen.util"))
            .and_then(|r| r.trim_start().strip_prefix('-'))
            .ok_or_else(|| {
                (
                    ln,
                    format!(
                        "expected a line `INFO  jepsen.util - <process> <type> <f> <value>`, \
                         found {:?}",
                        truncate(line, 60)
                    ),
                )
            })?;
        let toks: Vec<&str> = rest.split_whitespace().collect();
        if toks.len() < 4 {
            return Err((
                ln,
                format!(
                    "expected 4 fields `<process> <type> <f> <value>` after `jepsen.util -`, \
                     found {}",
                    toks.len()
                ),
            ));
        }
        let p = toks[0].parse::<u64>().map_err(|_| {
            (
                ln,
                format!("expected a process number, found {:?}", toks[0]),
            )
        })?;
        let kind = match toks[1] {
            ":invoke" => EventType::Invoke,
            ":ok" => EventType::Ok,
            ":fail" => EventType::Fail,
            ":info" => EventType::Info,
            t => {
                return Err((
                    ln,
                    format!("expected type :invoke, :ok, :fail or :info, found {t:?}"),
                ))
            }
        };
        let f = match toks[2] {
            ":read" => "read",
            ":write" => "write",
            ":cas" => "cas",
            t => return Err((ln, format!("expected f :read, :write or :cas, found {t:?}"))),
        };
        let vtoks = &toks[3..];
        let joined = vtoks.join(" ");
        let value = match (f, kind) {
            (_, EventType::Info) => Value::Null,
            ("read", EventType::Fail) => Value::Null,
            ("read", _) if joined == "nil" => Value::Null,
            ("read", EventType::Ok) => {
                Value::from(parse_int(&joined, ln, "a read value (integer or nil)")?)
            }
            ("write", _) => Value::from(parse_int(&joined, ln, "a written integer")?),
            ("cas", _) => {
                let inner = joined
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .ok_or_else(|| {
                        (
                            ln,
                            format!("expected a cas value `[from to]`, found {joined:?}"),
                        )
                    })?;
                let parts: Vec<&str> = inner.split_whitespace().collect();
                if parts.len() != 2 {
                    return Err((
                        ln,
                        format!("expected a cas value `[from to]`, found {joined:?}"),
                    ));
                }
                Value::from(vec![
                    Value::from(parse_int(parts[0], ln, "an integer cas `from`")?),
                    Value::from(parse_int(parts[1], ln, "an integer cas `to`")?),
                ])
            }
            _ => {
                return Err((
                    ln,
                    format!("unexpected value {joined:?} for {} {f}", toks[1]),
                ))
            }
        };
        // Porcupine's etcd semantics: a failed cas is an observed failed compare; a failed
        // (timed-out) read has an unknown result and constrains nothing, so it is dropped
        // (recorded as a fail, which removes it).
        let (kind, value) = match (f, kind) {
            ("cas", EventType::Fail) => (EventType::Ok, Value::Bool(false)),
            _ => (kind, value),
        };
        b.push(mk_event(ln, p, kind, f, None, value), ln)
            .map_err(|e| (ln, e.message))?;
    }
    let mut h = b.finish();
    h.model_hint = Some(ModelKind::CasRegister);
    Ok(h)
}

/// Reads the value of `:field ` in a Porcupine kv line: a string in quotes (no escapes) or nil.
fn kv_field<'a>(line: &'a str, field: &str, ln: usize) -> Result<&'a str, LineError> {
    let pat = format!(":{field} ");
    let start = line
        .find(&pat)
        .ok_or_else(|| (ln, format!("expected a `:{field}` entry")))?
        + pat.len();
    let rest = &line[start..];
    if let Some(r) = rest.strip_prefix('"') {
        let end = r
            .find('"')
            .ok_or_else(|| (ln, format!("expected a closing quote for :{field}")))?;
        Ok(&r[..end])
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Ok(rest[..end].trim())
    }
}

fn read_porcupine_kv(text: &str) -> Result<History, LineError> {
    let mut b = Builder::new();
    for (i, line) in text.lines().enumerate() {
        let ln = i + 1;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if !(t.starts_with('{') && t.ends_with('}')) {
            return Err((
                ln,
                format!(
                    "expected an EDN map `{{:process N, :type T, :f F, :key \"K\", :value V}}`, \
                     found {:?}",
                    truncate(t, 60)
                ),
            ));
        }
        let p = kv_field(t, "process", ln)?;
        let p = p
            .parse::<u64>()
            .map_err(|_| (ln, format!("expected a process number, found {p:?}")))?;
        let kind = match kv_field(t, "type", ln)? {
            ":invoke" => EventType::Invoke,
            ":ok" => EventType::Ok,
            ":fail" => EventType::Fail,
            ":info" => EventType::Info,
            x => {
                return Err((
                    ln,
                    format!("expected :type :invoke/:ok/:fail/:info, found {x:?}"),
                ))
            }
        };
        let f = match kv_field(t, "f", ln)? {
            ":get" => "get",
            ":put" => "put",
            ":append" => "append",
            x => {
                return Err((
                    ln,
                    format!("expected :f :get, :put or :append, found {x:?}"),
                ))
            }
        };
        let key = kv_field(t, "key", ln)?.to_string();
        let raw = kv_field(t, "value", ln)?;
        let quoted = t.contains(":value \"");
        let value = if quoted {
            Value::String(raw.to_string())
        } else if raw == "nil" {
            Value::Null
        } else {
            return Err((
                ln,
                format!("expected :value to be a string or nil, found {raw:?}"),
            ));
        };
        // A get returns the whole string; Porcupine's reader turns nil into "" (absent = "").
        let value = match (f, kind, value) {
            ("get", EventType::Ok, Value::Null) => Value::String(String::new()),
            (_, _, v) => v,
        };
        b.push(
            mk_event(ln, p, kind, f, Some(Value::String(key)), value),
            ln,
        )
        .map_err(|e| (ln, e.message))?;
    }
    let mut h = b.finish();
    h.model_hint = Some(ModelKind::AppendKv);
    Ok(h)
}
