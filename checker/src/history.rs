//! Histories: the events a test records and the operations the checker reads from them.
//!
//! # Contract (DESIGN.md §1)
//!
//! An [`Event`] is one line of the native `history.jsonl`. A logical process invokes one
//! operation at a time and completes it once:
//!
//! * `ok`: it happened; the op's interval closes at the completion.
//! * `fail`: it definitely did not happen; the op is removed.
//! * `info`: unknown; the op stays open to +∞ with an unknown result (it may take effect at
//!   any later time, or never). After an `info` the process never invokes again (Jepsen's
//!   rule: the worker continues under a new process id).
//!
//! An invocation still open at the end of the history is treated as `info` (the run crashed or
//! was cut short), as Jepsen and Knossos do. Events of process `"nemesis"` are kept apart in
//! [`History::nemesis`] for reports and ignored by the checker.
//!
//! Malformed histories are errors naming the event's position (the line number for one event
//! per line): a second invoke on a process with an op in flight, a completion without an
//! invoke, a completion whose `f` or `key` differs from its invocation, an invoke by a process
//! after its `info`.
//!
//! Real-time order: op A precedes op B iff A's completion event comes before B's invocation
//! event in the history's order (file order). Times are kept for reports; the order of events
//! is what the checker uses, so formats without timestamps work the same way.
//!
//! One extension for Porcupine's etcd logs: an `ok` `cas` whose completion value is `false`
//! records an observed *failed compare* (the cas happened and saw a value other than `from`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

/// The kind of an event (`"type"` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        })
    }
}

/// Who caused an event: a client process (a number) or the nemesis (the string `"nemesis"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative process number or \"nemesis\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("process {v} is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Process, E> {
                if v == "nemesis" {
                    Ok(Process::Nemesis)
                } else {
                    Err(E::custom(format!(
                        "process {v:?}: expected a number or \"nemesis\""
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One line of the native JSONL history (DESIGN.md §1), e.g.
/// `{"index":0,"time":1042311,"process":3,"type":"invoke","f":"cas","key":"k7","value":[1,4]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Position of the event in the history, from 0.
    pub index: u64,
    /// Nanoseconds since the test started (monotonic clock).
    pub time: u64,
    /// The client process, or the nemesis.
    pub process: Process,
    /// `invoke`, `ok`, `fail` or `info` (JSON field `"type"`).
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The operation's function: `read`, `write`, `cas`, `get`, `put`, `append`, … or a
    /// nemesis action.
    pub f: String,
    /// The key, for multi-key workloads; absent for a single register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// `read` → value read or `null`; `write` → the value; `cas` → `[from, to]`;
    /// `append` → the appended element.
    #[serde(default)]
    pub value: Value,
}

/// What became of an operation the checker keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpStatus {
    /// Completed with a known result.
    Ok,
    /// Indeterminate: open to +∞, result unknown.
    Info,
}

/// An operation of the checked history (after removing `fail` ops and nemesis events).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in [`History::ops`] (ops are ordered by invocation).
    pub id: usize,
    pub process: u64,
    pub f: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The invocation's value (a write's value, a cas's `[from, to]`, an append's element).
    pub value: Value,
    /// The completion's value (a read's result); `null` for `info` ops.
    pub output: Value,
    pub status: OpStatus,
    /// Position of the invocation among all events of the history (0-based, file order).
    pub call: u64,
    /// Position of the completion among all events; `u64::MAX` for `info` ops (open to +∞).
    pub ret: u64,
    /// `index` of the invocation event.
    pub invoke_index: u64,
    /// `index` of the completion event (`None` for an invocation never completed).
    pub complete_index: Option<u64>,
    pub invoke_time: u64,
    pub complete_time: Option<u64>,
    /// 1-based line (or event position) of the invocation in its source.
    pub line: usize,
    /// Fields of the op's events the checker does not interpret (Jepsen's `:error`, `:node`,
    /// a user's annotations; a named process's name as `"process"`), kept for reports: the
    /// invocation's, overridden by the completion's where both have one.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, Value>,
}

impl Op {
    /// Whether this op's interval precedes `other`'s in real time.
    pub fn precedes(&self, other: &Op) -> bool {
        self.ret < other.call
    }
}

/// A parsed, validated history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Client operations, ordered by invocation. `fail` ops are removed.
    pub ops: Vec<Op>,
    /// Nemesis events, kept for reports.
    pub nemesis: Vec<Event>,
    /// Number of `fail` ops removed.
    pub failed: usize,
    /// Hint from the reader: the model its format implies (e.g. Porcupine's etcd log →
    /// `cas-register`), used when the caller names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hint: Option<crate::ModelKind>,
}

/// A malformed history.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct HistoryError {
    /// 1-based position of the offending event in its input (the line number for JSONL).
    pub line: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

struct Pending {
    event: Event,
    extra: serde_json::Map<String, Value>,
    line: usize,
    pos: u64,
}

/// Builds a [`History`] from events, with their source lines.
pub(crate) struct Builder {
    ops: Vec<Op>,
    nemesis: Vec<Event>,
    pending: HashMap<u64, Pending>,
    /// Processes retired by an `info` completion, with the line of that completion.
    retired: HashMap<u64, usize>,
    pos: u64,
    failed: usize,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            ops: Vec::new(),
            nemesis: Vec::new(),
            pending: HashMap::new(),
            retired: HashMap::new(),
            pos: 0,
            failed: 0,
        }
    }

    fn err(line: usize, message: String) -> HistoryError {
        HistoryError { line, message }
    }

    /// Adds the next event, read from 1-based `line`.
    pub(crate) fn push(&mut self, ev: Event, line: usize) -> Result<(), HistoryError> {
        self.push_extra(ev, serde_json::Map::new(), line)
    }

    /// Adds the next event with the fields the reader did not interpret.
    pub(crate) fn push_extra(
        &mut self,
        ev: Event,
        extra: serde_json::Map<String, Value>,
        line: usize,
    ) -> Result<(), HistoryError> {
        let pos = self.pos;
        self.pos += 1;
        let p = match ev.process {
            Process::Nemesis => {
                self.nemesis.push(ev);
                return Ok(());
            }
            Process::Client(p) => p,
        };
        match ev.kind {
            EventType::Invoke => {
                if let Some(prev) = self.pending.get(&p) {
                    return Err(Self::err(
                        line,
                        format!(
                            "process {p} invokes {} while its {} invoked on line {} is still in \
                             flight (expected a completion ok/fail/info for it first)",
                            ev.f, prev.event.f, prev.line
                        ),
                    ));
                }
                if let Some(l) = self.retired.get(&p) {
                    return Err(Self::err(
                        line,
                        format!(
                            "process {p} invokes {} after its info completion on line {l} \
                             (expected a crashed process to continue under a new process id)",
                            ev.f
                        ),
                    ));
                }
                self.pending.insert(
                    p,
                    Pending {
                        event: ev,
                        extra,
                        line,
                        pos,
                    },
                );
            }
            kind => {
                let Some(mut inv) = self.pending.remove(&p) else {
                    return Err(Self::err(
                        line,
                        format!(
                            "{kind} {} by process {p} without an invocation in flight \
                             (expected an invoke by process {p} before it)",
                            ev.f
                        ),
                    ));
                };
                if inv.event.f != ev.f {
                    return Err(Self::err(
                        line,
                        format!(
                            "completion of process {p} has f {:?} but its invocation on line {} \
                             has f {:?} (expected the same f)",
                            ev.f, inv.line, inv.event.f
                        ),
                    ));
                }
                if ev.key.is_some() && inv.event.key.is_some() && ev.key != inv.event.key {
                    return Err(Self::err(
                        line,
                        format!(
                            "completion of process {p} has key {} but its invocation on line {} \
                             has key {} (expected the same key)",
                            ev.key.as_ref().map(|k| k.to_string()).unwrap_or_default(),
                            inv.line,
                            inv.event
                                .key
                                .as_ref()
                                .map(|k| k.to_string())
                                .unwrap_or_default(),
                        ),
                    ));
                }
                if !extra.is_empty() {
                    inv.extra.extend(extra);
                }
                match kind {
                    EventType::Fail => self.failed += 1,
                    EventType::Info => {
                        self.retired.insert(p, line);
                        self.open(inv);
                    }
                    _ => self.ops.push(Op {
                        id: 0,
                        process: p,
                        f: inv.event.f,
                        key: inv.event.key.or(ev.key),
                        value: inv.event.value,
                        output: ev.value,
                        status: OpStatus::Ok,
                        call: inv.pos,
                        ret: pos,
                        invoke_index: inv.event.index,
                        complete_index: Some(ev.index),
                        invoke_time: inv.event.time,
                        complete_time: Some(ev.time),
                        line: inv.line,
                        extra: inv.extra,
                    }),
                }
            }
        }
        Ok(())
    }

    fn open(&mut self, inv: Pending) {
        self.ops.push(Op {
            id: 0,
            process: match inv.event.process {
                Process::Client(p) => p,
                Process::Nemesis => unreachable!("nemesis events never reach open()"),
            },
            f: inv.event.f,
            key: inv.event.key,
            value: inv.event.value,
            output: Value::Null,
            status: OpStatus::Info,
            call: inv.pos,
            ret: u64::MAX,
            invoke_index: inv.event.index,
            complete_index: None,
            invoke_time: inv.event.time,
            complete_time: None,
            line: inv.line,
            extra: inv.extra,
        });
    }

    /// Closes the history: invocations still in flight become `info`.
    pub(crate) fn finish(mut self) -> History {
        let mut open: Vec<Pending> = self.pending.drain().map(|(_, v)| v).collect();
        open.sort_by_key(|p| p.pos);
        for inv in open {
            self.open(inv);
        }
        // Unstable: no buffer of half the ops (calls are distinct, so the order is the same).
        self.ops.sort_unstable_by_key(|o| o.call);
        for (i, op) in self.ops.iter_mut().enumerate() {
            op.id = i;
        }
        History {
            ops: self.ops,
            nemesis: self.nemesis,
            failed: self.failed,
            model_hint: None,
        }
    }
}

impl History {
    /// Validates events (in history order) and builds the history. Errors name the event's
    /// 1-based position in `events`.
    pub fn from_events(events: Vec<Event>) -> Result<History, HistoryError> {
        let mut b = Builder::new();
        for (i, ev) in events.into_iter().enumerate() {
            b.push(ev, i + 1)?;
        }
        Ok(b.finish())
    }

    /// Number of `info` (indeterminate) ops.
    pub fn info_count(&self) -> usize {
        self.ops
            .iter()
            .filter(|o| o.status == OpStatus::Info)
            .count()
    }
}
