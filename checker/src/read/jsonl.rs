//! The native history: one event per line (DESIGN.md §1). Blank lines are skipped.
//!
//! # What a line must have
//!
//! Required: `process` (a non-negative integer, `"nemesis"`, or any other string: a named
//! process), `type` (`invoke`, `ok`, `fail`, `info`) and `f` (a string). Optional: `index`
//! (default: the event's position), `time` (a non-negative number; default 0; fractions are
//! rounded down), `key`, `value` (default `null`). Any other field is kept, unread, in the
//! op's [`extra`](crate::history::Op::extra) (Jepsen and users annotate ops with `error`,
//! `node`, …). Only a missing or mistyped required field, or a mistyped optional one, is an
//! error.
//!
//! Named processes get ids of their own (from 2^48 up, in order of first appearance, so they
//! never collide with numbered ones); the name is kept as `extra["process"]`.
//!
//! # Streaming
//!
//! [`read_jsonl_stream`] reads blocks of whole lines, parses each block's lines in parallel
//! and feeds the events in order to the history builder, so memory holds one block of text at
//! a time, never the whole file.

use super::text::LineError;
use crate::history::{Builder, Event, EventType, History, Process};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;

/// Where named processes start.
const NAMED_BASE: u64 = 1 << 48;

/// A process as written: a number or a name.
enum ProcessField {
    Num(u64),
    Name(String),
}

/// One parsed line before process names are resolved.
struct RawEvent {
    index: Option<u64>,
    time: u64,
    process: ProcessField,
    kind: EventType,
    f: String,
    key: Option<Value>,
    value: Value,
    extra: Map<String, Value>,
}

struct ProcessVisitor;

impl Visitor<'_> for ProcessVisitor {
    type Value = ProcessField;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative process number, \"nemesis\" or a process name")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ProcessField, E> {
        Ok(ProcessField::Num(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ProcessField, E> {
        u64::try_from(v)
            .map(ProcessField::Num)
            .map_err(|_| E::custom(format!("process {v} is negative")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ProcessField, E> {
        Ok(ProcessField::Name(v.to_string()))
    }
}

struct Process_(ProcessField);
impl<'de> de::Deserialize<'de> for Process_ {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ProcessVisitor).map(Process_)
    }
}

/// `time`: a non-negative integer or number (rounded down).
struct Time(u64);
impl<'de> de::Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Time;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number (time)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Time, E> {
                Ok(Time(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Time, E> {
                u64::try_from(v)
                    .map(Time)
                    .map_err(|_| E::custom(format!("time {v} is negative")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Time, E> {
                if v.is_finite() && v >= 0.0 {
                    Ok(Time(v as u64))
                } else {
                    Err(E::custom(format!(
                        "time {v}: expected a non-negative number"
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> de::Deserialize<'de> for RawEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEvent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawEvent, A::Error> {
                let mut index = None;
                let mut time = None;
                let mut process = None;
                let mut kind = None;
                let mut f = None;
                let mut key = None;
                let mut value = None;
                let mut extra = Map::new();
                while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    let dup = |name: &str| de::Error::custom(format!("duplicate field `{name}`"));
                    match k.as_ref() {
                        "index" if index.is_none() => index = Some(m.next_value::<u64>()?),
                        "time" if time.is_none() => time = Some(m.next_value::<Time>()?.0),
                        "process" if process.is_none() => {
                            process = Some(m.next_value::<Process_>()?.0)
                        }
                        "type" if kind.is_none() => kind = Some(m.next_value::<EventType>()?),
                        "f" if f.is_none() => f = Some(m.next_value::<String>()?),
                        "key" if key.is_none() => key = Some(m.next_value::<Value>()?),
                        "value" if value.is_none() => value = Some(m.next_value::<Value>()?),
                        n @ ("index" | "time" | "process" | "type" | "f" | "key" | "value") => {
                            return Err(dup(n))
                        }
                        _ => {
                            let v = m.next_value::<Value>()?;
                            extra.insert(k.into_owned(), v);
                        }
                    }
                }
                let missing = |n: &'static str| de::Error::missing_field(n);
                Ok(RawEvent {
                    index,
                    time: time.unwrap_or(0),
                    process: process.ok_or_else(|| missing("process"))?,
                    kind: kind.ok_or_else(|| missing("type"))?,
                    f: f.ok_or_else(|| missing("f"))?,
                    key: key.filter(|k: &Value| !k.is_null()),
                    value: value.unwrap_or(Value::Null),
                    extra,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// Turns parsed lines into events for the builder, resolving process names.
struct Feed {
    b: Builder,
    names: HashMap<String, u64>,
    /// Events fed so far (the default `index`).
    pos: u64,
}

impl Feed {
    fn new() -> Self {
        Feed {
            b: Builder::new(),
            names: HashMap::new(),
            pos: 0,
        }
    }

    fn push(&mut self, raw: RawEvent, line: usize) -> Result<(), LineError> {
        let mut extra = raw.extra;
        let process = match raw.process {
            ProcessField::Num(p) => Process::Client(p),
            ProcessField::Name(n) if n == "nemesis" => Process::Nemesis,
            ProcessField::Name(n) => {
                let next = NAMED_BASE + self.names.len() as u64;
                let id = *self.names.entry(n.clone()).or_insert(next);
                extra.insert("process".into(), Value::String(n));
                Process::Client(id)
            }
        };
        let ev = Event {
            index: raw.index.unwrap_or(self.pos),
            time: raw.time,
            process,
            kind: raw.kind,
            f: raw.f,
            key: raw.key,
            value: raw.value,
        };
        self.pos += 1;
        self.b
            .push_extra(ev, extra, line)
            .map_err(|e| (line, e.message))
    }

    /// Parses the lines of `text` (whose first line is `first_line`) and feeds them in order.
    fn block(&mut self, text: &str, first_line: usize) -> Result<(), LineError> {
        use rayon::prelude::*;
        let lines: Vec<&str> = text.lines().collect();
        let parse = |(i, line): (usize, &&str)| -> Result<Option<RawEvent>, LineError> {
            if line.trim().is_empty() {
                return Ok(None);
            }
            serde_json::from_str::<RawEvent>(line)
                .map(Some)
                .map_err(|e| {
                    (
                        first_line + i,
                        format!(
                            "{e} (expected one JSON event per line: {{\"process\",\"type\",\"f\", \
                         \"index\"?,\"time\"?,\"key\"?,\"value\"?}})"
                        ),
                    )
                })
        };
        // Parallel parsing pays off only for big blocks.
        let parsed: Vec<Result<Option<RawEvent>, LineError>> = if lines.len() >= 4096 {
            lines.par_iter().enumerate().map(parse).collect()
        } else {
            lines.iter().enumerate().map(parse).collect()
        };
        // The first bad line in file order is reported.
        for (i, ev) in parsed.into_iter().enumerate() {
            if let Some(ev) = ev? {
                self.push(ev, first_line + i)?;
            }
        }
        Ok(())
    }
}

pub(crate) fn read_jsonl(text: &str) -> Result<History, LineError> {
    let mut feed = Feed::new();
    feed.block(text, 1)?;
    Ok(feed.b.finish())
}

/// Block size for streaming: big enough for parallel parsing, small next to the history.
const BLOCK: usize = 8 << 20;

/// Reads a JSONL history from `r` block by block. `prefix` is text already read from the
/// start of the stream (for format detection). I/O errors are `Err(Ok(e))`; parse errors
/// `Err(Err((line, message)))`.
pub(crate) fn read_jsonl_stream(
    prefix: Vec<u8>,
    mut r: impl Read,
) -> Result<History, Result<std::io::Error, LineError>> {
    let mut feed = Feed::new();
    let mut buf = prefix;
    let mut line = 1;
    let mut eof = false;
    // Read more when the buffer holds less than a block, or no whole line.
    let mut need_more = true;
    while !eof || !buf.is_empty() {
        if !eof && (need_more || buf.len() < BLOCK) {
            let start = buf.len();
            buf.resize(BLOCK.max(start * 2), 0);
            let mut filled = start;
            while filled < buf.len() {
                match r.read(&mut buf[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Ok(e)),
                }
            }
            buf.truncate(filled);
        }
        // Whole lines only (unless at the end of the input).
        let end = if eof {
            buf.len()
        } else {
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(p) => p + 1,
                None => {
                    need_more = true; // one line longer than the buffer
                    continue;
                }
            }
        };
        need_more = false;
        let text = std::str::from_utf8(&buf[..end]).map_err(|e| {
            let valid = &buf[..e.valid_up_to()];
            let l = line + valid.iter().filter(|&&b| b == b'\n').count();
            Err((l, "invalid UTF-8 (expected a text file)".to_string()))
        })?;
        feed.block(text, line).map_err(Err)?;
        line += text.bytes().filter(|&b| b == b'\n').count();
        buf.drain(..end);
    }
    Ok(feed.b.finish())
}
