//! Jepsen/Knossos `history.edn` reader.
//!
//! # Accepted shapes
//!
//! A vector or list of op maps (`[{…} {…}]`), or op maps one after another (Jepsen writes one
//! per line). Each map has `:process` (an integer, or `:nemesis`), `:type` (`:invoke`, `:ok`,
//! `:fail`, `:info`), `:f`, and optionally `:value`, `:key`, `:index`, `:time` (a
//! non-negative number; fractions rounded down). `:process` may also be any other keyword or
//! a string (a named process: it gets an id of its own from 2^48 up, and its name is kept as
//! `extra["process"]`). Every other entry (`:error`, `:node`, namespaced keys, …) is kept,
//! as JSON, in the op's [`extra`](crate::history::Op::extra). Keywords become strings with
//! their namespace (`:jepsen/x` → `"jepsen/x"`). `:nemesis` entries are kept apart.
//!
//! # Knossos semantics (where they differ from ours)
//!
//! * Knossos's `register`/`cas-register` accept a `:read` whose value is `nil` in any state (a
//!   read of unknown value). Such reads are dropped here, so verdicts match Knossos's.
//! * `:fail` ops did not happen (dropped); `:info` ops stay open (as ours).
//! * Jepsen's `independent` histories carry `[key value]` tuples as values (e.g. `[3 nil]`,
//!   `[3 [1 2]]` for a cas), or `#jepsen.independent.Tuple{:key k :value v}`: when every
//!   client op's value has that shape, the key is taken from the tuple.
//!
//! Lines in errors are the line where the offending map starts (plus the parser's row inside
//! it for syntax errors).

use super::text::{truncate, LineError};
use crate::history::{Builder, Event, EventType, History, Process};
use edn_format::Value as Edn;
use serde_json::Value;

/// One top-level element: its text and first line.
struct Element<'a> {
    text: &'a str,
    line: usize,
}

/// Splits the document into the op elements, tracking lines; unwraps one outer `[`/`(`.
fn elements(text: &str) -> Result<Vec<Element<'_>>, LineError> {
    let bytes = text.as_bytes();
    let mut line = 1;
    let mut i = 0;
    // Skip whitespace/commas/comments to find the first form.
    let skip = |i: &mut usize, line: &mut usize| {
        while *i < bytes.len() {
            match bytes[*i] {
                b'\n' => {
                    *line += 1;
                    *i += 1
                }
                b' ' | b'\t' | b'\r' | b',' => *i += 1,
                b';' => {
                    while *i < bytes.len() && bytes[*i] != b'\n' {
                        *i += 1
                    }
                }
                _ => break,
            }
        }
    };
    skip(&mut i, &mut line);
    let wrapped = i < bytes.len() && (bytes[i] == b'[' || bytes[i] == b'(');
    let (close, open_line) = if wrapped {
        let c = if bytes[i] == b'[' { b']' } else { b')' };
        i += 1;
        (Some(c), line)
    } else {
        (None, line)
    };
    let mut out = Vec::new();
    loop {
        skip(&mut i, &mut line);
        if i >= bytes.len() {
            if let Some(c) = close {
                return Err((
                    line,
                    format!(
                        "unexpected end of input: expected `{}` closing the history opened on \
                         line {open_line}",
                        c as char
                    ),
                ));
            }
            break;
        }
        if Some(bytes[i]) == close {
            i += 1;
            skip(&mut i, &mut line);
            if i < bytes.len() {
                return Err((
                    line,
                    "unexpected text after the end of the history (expected end of file)".into(),
                ));
            }
            break;
        }
        // One form: scan to its end.
        let start = i;
        let start_line = line;
        let mut depth: Vec<(u8, usize)> = Vec::new();
        loop {
            if i >= bytes.len() {
                let (c, l) = depth.last().copied().unwrap_or((b' ', start_line));
                return Err((
                    line,
                    format!(
                        "unexpected end of input: `{}` opened on line {l} is not closed",
                        c as char
                    ),
                ));
            }
            let b = bytes[i];
            match b {
                b'"' => {
                    let sl = line;
                    i += 1;
                    loop {
                        if i >= bytes.len() {
                            return Err((
                                line,
                                format!("unexpected end of input: string opened on line {sl} is not closed"),
                            ));
                        }
                        match bytes[i] {
                            b'\\' => {
                                if bytes.get(i + 1) == Some(&b'\n') {
                                    line += 1;
                                }
                                i = after_escape(text, i)
                            }
                            b'"' => {
                                i += 1;
                                break;
                            }
                            b'\n' => {
                                line += 1;
                                i += 1
                            }
                            _ => i += 1,
                        }
                    }
                }
                // A character literal (`\a`, or `\` before a newline).
                b'\\' => {
                    if bytes.get(i + 1) == Some(&b'\n') {
                        line += 1;
                    }
                    i = after_escape(text, i)
                }
                b';' => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1
                    }
                }
                b'\n' => {
                    line += 1;
                    i += 1
                }
                b'{' | b'[' | b'(' => {
                    depth.push((b, line));
                    i += 1
                }
                b'}' | b']' | b')' => {
                    let want = match depth.pop() {
                        Some((b'{', _)) => b'}',
                        Some((b'[', _)) => b']',
                        Some((_, _)) => b')',
                        None => {
                            return Err((line, format!("unexpected `{}`", b as char)));
                        }
                    };
                    if b != want {
                        return Err((
                            line,
                            format!("expected `{}`, found `{}`", want as char, b as char),
                        ));
                    }
                    i += 1
                }
                b' ' | b'\t' | b'\r' | b',' if depth.is_empty() => break,
                _ => i += 1,
            }
            if depth.is_empty() && i > start {
                // A collection just closed, or an atom continues until a delimiter.
                let last = bytes[i - 1];
                if matches!(last, b'}' | b']' | b')' | b'"') {
                    break;
                }
                if i < bytes.len() && matches!(bytes[i], b'{' | b'[' | b'(' | b'}' | b']' | b')') {
                    break;
                }
            }
        }
        // Tagged elements (`#jepsen.history.Op{…}`): the tag and the map are one element.
        let text_el = &text[start..i];
        if text_el.starts_with('#') && !text_el.ends_with('}') {
            // Tag followed by whitespace then the map: merge with the next form.
            let tag_line = start_line;
            skip(&mut i, &mut line);
            let sub_start = i;
            let mut sub = elements_one(text, &mut i, &mut line)?;
            sub.text = &text[start..sub_start + sub.text.len()];
            sub.line = tag_line;
            out.push(sub);
            continue;
        }
        out.push(Element {
            text: text_el,
            line: start_line,
        });
    }
    Ok(out)
}

/// The position after the backslash at `i` and the character it escapes (never past the end,
/// never inside a multi-byte character).
fn after_escape(text: &str, i: usize) -> usize {
    let next = text[i + 1..].chars().next().map_or(0, char::len_utf8);
    (i + 1 + next).min(text.len())
}

/// Reads one balanced map starting at `*i` (used after a tag).
fn elements_one<'a>(
    text: &'a str,
    i: &mut usize,
    line: &mut usize,
) -> Result<Element<'a>, LineError> {
    let bytes = text.as_bytes();
    if *i >= bytes.len() || bytes[*i] != b'{' {
        return Err((*line, "expected a map `{…}` after the tag".into()));
    }
    let start = *i;
    let start_line = *line;
    let mut depth = 0usize;
    let mut in_str = false;
    while *i < bytes.len() {
        let b = bytes[*i];
        if b == b'\n' {
            *line += 1;
        }
        if in_str {
            if b == b'\\' {
                *i += 1;
                if bytes.get(*i) == Some(&b'\n') {
                    *line += 1;
                }
            } else if b == b'"' {
                in_str = false;
            }
        } else {
            match b {
                b'"' => in_str = true,
                b'{' | b'[' | b'(' => depth += 1,
                b'}' | b']' | b')' => {
                    depth -= 1;
                    if depth == 0 {
                        *i += 1;
                        return Ok(Element {
                            text: &text[start..*i],
                            line: start_line,
                        });
                    }
                }
                _ => {}
            }
        }
        *i += 1;
    }
    Err((
        *line,
        format!("unexpected end of input: map opened on line {start_line} is not closed"),
    ))
}

fn kw(v: &Edn) -> Option<&str> {
    match v {
        Edn::Keyword(k) => Some(k.name()),
        _ => None,
    }
}

/// EDN → JSON: nil → null, keywords and symbols → their names as strings, collections →
/// arrays/objects.
fn to_json(v: &Edn) -> Value {
    match v {
        Edn::Nil => Value::Null,
        Edn::Boolean(b) => Value::Bool(*b),
        Edn::Integer(i) => Value::from(*i),
        Edn::Float(f) => serde_json::Number::from_f64(f.into_inner())
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Edn::String(s) => Value::String(s.clone()),
        Edn::Character(c) => Value::String(c.to_string()),
        Edn::Keyword(k) => Value::String(kw_full(k)),
        Edn::Symbol(s) => Value::String(s.name().to_string()),
        Edn::List(xs) | Edn::Vector(xs) => Value::Array(xs.iter().map(to_json).collect()),
        Edn::Set(xs) => Value::Array(xs.iter().map(to_json).collect()),
        Edn::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let k = match to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, to_json(v))
                })
                .collect(),
        ),
        Edn::TaggedElement(_, inner) => to_json(inner),
        other => Value::String(edn_format::emit_str(other)),
    }
}

/// A process as written.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Proc {
    Client(u64),
    Nemesis,
    /// A keyword or string other than `nemesis`.
    Named(String),
}

/// Where named processes start (above any numbered process a real history has).
const NAMED_BASE: u64 = 1 << 48;

/// A parsed op map, before tuple handling.
struct RawOp {
    line: usize,
    process: Proc,
    kind: EventType,
    f: String,
    key: Option<Value>,
    value: Edn,
    index: Option<u64>,
    time: Option<u64>,
    /// Entries the checker does not interpret (`:error`, `:node`, …), as JSON.
    extra: serde_json::Map<String, Value>,
}

/// The fields [`raw_op`] interprets; every other entry is kept in `extra`.
const KNOWN: &[&str] = &["process", "type", "f", "key", "value", "index", "time"];

/// A keyword's full name: `ns/name`, or `name` without a namespace.
fn kw_full(k: &edn_format::Keyword) -> String {
    match k.namespace() {
        Some(ns) => format!("{ns}/{}", k.name()),
        None => k.name().to_string(),
    }
}

fn field<'a>(m: &'a std::collections::BTreeMap<Edn, Edn>, name: &str) -> Option<&'a Edn> {
    m.get(&Edn::Keyword(edn_format::Keyword::from_name(name)))
}

fn raw_op(el: &Element<'_>) -> Result<RawOp, LineError> {
    let v = edn_format::parse_str(el.text).map_err(|e| {
        (
            // edn-format counts lines in `col` (and columns in `row`).
            el.line + e.col.saturating_sub(1),
            format!("EDN syntax error: {} (expected an op map)", e.error),
        )
    })?;
    let v = match v {
        Edn::TaggedElement(_, inner) => *inner,
        v => v,
    };
    let Edn::Map(m) = v else {
        return Err((
            el.line,
            format!(
                "expected an op map {{:process …, :type …, :f …, :value …}}, found {:?}",
                truncate(el.text, 50)
            ),
        ));
    };
    let line = el.line;
    let mut extra = serde_json::Map::new();
    for (k, v) in &m {
        let name = match k {
            Edn::Keyword(k) if k.namespace().is_none() && KNOWN.contains(&k.name()) => continue,
            Edn::Keyword(k) => kw_full(k),
            Edn::String(s) => s.clone(),
            other => edn_format::emit_str(other),
        };
        extra.insert(name, to_json(v));
    }
    let process = match field(&m, "process") {
        Some(Edn::Integer(p)) if *p >= 0 => Proc::Client(*p as u64),
        Some(Edn::Keyword(k)) if k.name() == "nemesis" && k.namespace().is_none() => Proc::Nemesis,
        Some(Edn::String(s)) if s == "nemesis" => Proc::Nemesis,
        Some(Edn::Keyword(k)) => Proc::Named(kw_full(k)),
        Some(Edn::String(s)) => Proc::Named(s.clone()),
        Some(other) => {
            return Err((
                line,
                format!(
                    ":process {}: expected a non-negative integer, a keyword or a string",
                    edn_format::emit_str(other)
                ),
            ))
        }
        None => return Err((line, "expected a :process entry".into())),
    };
    let kind = match field(&m, "type").and_then(kw) {
        Some("invoke") => EventType::Invoke,
        Some("ok") => EventType::Ok,
        Some("fail") => EventType::Fail,
        Some("info") => EventType::Info,
        _ => {
            return Err((
                line,
                "expected :type :invoke, :ok, :fail or :info".to_string(),
            ))
        }
    };
    let f = match field(&m, "f") {
        Some(Edn::Keyword(k)) => kw_full(k),
        Some(Edn::String(s)) => s.clone(),
        Some(Edn::Symbol(s)) => s.name().to_string(),
        Some(other) => {
            return Err((
                line,
                format!(":f {}: expected a keyword", edn_format::emit_str(other)),
            ))
        }
        None if process == Proc::Nemesis => String::new(),
        None => return Err((line, "expected an :f entry".into())),
    };
    let num = |name: &str| -> Result<Option<u64>, LineError> {
        match field(&m, name) {
            None => Ok(None),
            Some(Edn::Integer(i)) if *i >= 0 => Ok(Some(*i as u64)),
            // Times in other units may be fractional: rounded down.
            Some(Edn::Float(f)) if name == "time" && f.into_inner() >= 0.0 => {
                Ok(Some(f.into_inner() as u64))
            }
            Some(other) => Err((
                line,
                format!(
                    ":{name} {}: expected a non-negative {}",
                    edn_format::emit_str(other),
                    if name == "time" { "number" } else { "integer" }
                ),
            )),
        }
    };
    Ok(RawOp {
        line,
        process,
        kind,
        f,
        key: field(&m, "key").map(to_json),
        value: field(&m, "value").cloned().unwrap_or(Edn::Nil),
        index: num("index")?,
        time: num("time")?,
        extra,
    })
}

/// `[k v]` or `#jepsen.independent.Tuple{:key k :value v}` → (k, v).
fn tuple(v: &Edn) -> Option<(Edn, Edn)> {
    match v {
        Edn::Vector(xs) if xs.len() == 2 => Some((xs[0].clone(), xs[1].clone())),
        Edn::TaggedElement(tag, inner) if tag.name().ends_with("Tuple") => match inner.as_ref() {
            Edn::Map(m) => Some((
                field(m, "key")?.clone(),
                field(m, "value").cloned().unwrap_or(Edn::Nil),
            )),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn read_edn(text: &str) -> Result<History, LineError> {
    let els = elements(text)?;
    let ops: Vec<RawOp> = els.iter().map(raw_op).collect::<Result<_, _>>()?;
    let clients: Vec<&RawOp> = ops
        .iter()
        .filter(|o| o.process != Proc::Nemesis && o.key.is_none())
        .collect();
    // Jepsen independent histories: every client op's value is a tuple, and cas values are
    // [k [from to]]; at least one read or write shows the tuple shape unambiguously.
    let independent = !clients.is_empty()
        && clients.iter().all(|o| match tuple(&o.value) {
            Some((_, inner)) => {
                o.f != "cas"
                    || matches!(inner, Edn::Vector(ref v) if v.len() == 2)
                    || o.kind != EventType::Invoke && inner == Edn::Nil
            }
            None => false,
        })
        && clients.iter().any(|o| o.f == "read" || o.f == "write");
    let mut b = Builder::new();
    let mut names: std::collections::HashMap<String, u64> = Default::default();
    for (pos, o) in ops.into_iter().enumerate() {
        let mut extra = o.extra;
        let process = match o.process {
            Proc::Client(p) => Process::Client(p),
            Proc::Nemesis => Process::Nemesis,
            Proc::Named(n) => {
                let next = NAMED_BASE + names.len() as u64;
                let id = *names.entry(n.clone()).or_insert(next);
                extra.insert("process".into(), Value::String(n));
                Process::Client(id)
            }
        };
        let (key, value) = if independent && process != Process::Nemesis && o.key.is_none() {
            let (k, v) = tuple(&o.value).expect("checked above: every client value is a tuple");
            (Some(to_json(&k)), v)
        } else {
            (o.key, o.value)
        };
        let mut kind = o.kind;
        // Knossos: a read of nil matches any state (unknown read): drop it.
        if kind == EventType::Ok && o.f == "read" && value == Edn::Nil {
            kind = EventType::Fail;
        }
        let ev = Event {
            index: o.index.unwrap_or(pos as u64),
            time: o.time.unwrap_or(0),
            process,
            kind,
            f: o.f,
            key,
            value: to_json(&value),
        };
        b.push_extra(ev, extra, o.line)
            .map_err(|e| (o.line, e.message))?;
    }
    Ok(b.finish())
}
