//! Porcupine's logs: the Jepsen 2014 etcd log (`test_data/jepsen/etcd_NNN.log`) and the kv
//! log (`test_data/kv/*.txt`, one EDN map per line).

use super::text::{truncate, LineError};
use crate::history::{Builder, Event, EventType, History, Process};
use crate::ModelKind;
use serde_json::Value;

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

pub(crate) fn read_etcd(text: &str) -> Result<History, LineError> {
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

pub(crate) fn read_porcupine_kv(text: &str) -> Result<History, LineError> {
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
