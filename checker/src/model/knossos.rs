//! Knossos's model table beyond registers: `mutex`, `multi-register`, `set`, `fifo-queue`
//! and `unordered-queue`, with Knossos's op shapes (EDN keywords become strings).
//!
//! | model | ops (`f`: invocation value → completion value) | state, initially |
//! |---|---|---|
//! | `mutex` | `acquire`, `release` (values ignored) | unlocked |
//! | `multi-register` | `txn`: `[[f k v] …]` with `f` `read`/`r` or `write`/`w` | every key `nil` |
//! | `set` | `add v`; `read` → the whole set (a list) | empty |
//! | `fifo-queue` | `enqueue v`; `dequeue` → the value | empty |
//! | `unordered-queue` | `enqueue v`; `dequeue` → the value | empty (a multiset) |
//!
//! Semantics, as Knossos's `knossos.model` where it says, and argued here where it is silent:
//!
//! * `mutex`: `acquire` is legal only when unlocked, `release` only when locked.
//! * `multi-register`: a txn applies its micro-ops in order, atomically; a read of `nil` is
//!   legal in any state (Knossos: "nil reads are always legal"), a read of `v` only when the
//!   key holds `v`. An ok txn is taken from its completion (which carries the values read);
//!   an `info` txn from its invocation (its reads are `nil`, its writes may happen).
//! * `set`: a read is legal iff it returns exactly the set (as a list, order and repeats
//!   ignored). An `info` read constrains nothing and is dropped.
//! * `fifo-queue`: a dequeue of `v` is legal iff `v` is at the head. A dequeue that returned
//!   `nil` saw an empty queue: legal iff the queue is empty (Knossos has no empty dequeue; a
//!   Jepsen client records it as `nil`). An `info` dequeue, whose value is unknown, removes the
//!   head if there is one (taking effect "never" is the search's other choice).
//! * `unordered-queue`: as `fifo-queue`, but a dequeue of `v` is legal iff some `v` is queued.
//!   An `info` dequeue would remove an unknown element; removing an element can only make
//!   later dequeues of values illegal, so it never helps a linearization and is dropped —
//!   unless the partition has a dequeue that saw an empty queue, which removing could help:
//!   that combination is refused with an error (rather than risk a wrong verdict).

use super::{bad, ModelError, ValueIds};
use crate::history::{Op, OpStatus};
use crate::search::{FxBuild, SearchModel};
use crate::ModelKind;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

/// A compiled op.
#[derive(Clone, Debug)]
pub(crate) enum KInput {
    Acquire,
    Release,
    /// Micro-ops: (is a write, key id, value id); a read of value 0 (`nil`) is any.
    Txn(Vec<(bool, u32, u32)>),
    Add(u32),
    /// The set read: sorted, deduplicated value ids.
    ReadSet(Vec<u32>),
    Enqueue(u32),
    /// `Some(v)`: returned v (0 = `nil`: saw an empty queue); `None`: unknown (`info`).
    Dequeue(Option<u32>),
}

/// A model state. Sets and multisets are sorted vectors; registers sorted (key, value) pairs
/// without `nil` values, so equal states are equal values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum KState {
    Mutex(bool),
    Regs(Vec<(u32, u32)>),
    Set(Vec<u32>),
    Fifo(VecDeque<u32>),
    Bag(Vec<u32>),
}

/// One of Knossos's models compiled for a partition; states are interned to small ids.
pub(crate) struct KnossosModel {
    kind: ModelKind,
    pub inputs: Vec<KInput>,
    values: Vec<Value>,
    states: RefCell<Vec<KState>>,
    ids: RefCell<HashMap<KState, u32>>,
    /// (state, op) → next state (`u32::MAX`: illegal).
    steps: RefCell<HashMap<(u32, usize), u32, FxBuild>>,
}

impl KnossosModel {
    fn intern(&self, s: KState) -> u32 {
        if let Some(&i) = self.ids.borrow().get(&s) {
            return i;
        }
        let mut states = self.states.borrow_mut();
        let i = states.len() as u32;
        states.push(s.clone());
        self.ids.borrow_mut().insert(s, i);
        i
    }

    fn initial(kind: ModelKind) -> KState {
        match kind {
            ModelKind::Mutex => KState::Mutex(false),
            ModelKind::MultiRegister => KState::Regs(Vec::new()),
            ModelKind::Set => KState::Set(Vec::new()),
            ModelKind::FifoQueue => KState::Fifo(VecDeque::new()),
            _ => KState::Bag(Vec::new()),
        }
    }

    /// The sequential specification.
    fn apply(s: &KState, input: &KInput) -> Option<KState> {
        match (s, input) {
            (KState::Mutex(false), KInput::Acquire) => Some(KState::Mutex(true)),
            (KState::Mutex(true), KInput::Release) => Some(KState::Mutex(false)),
            (KState::Mutex(_), _) => None,
            (KState::Regs(regs), KInput::Txn(mops)) => {
                let mut regs = regs.clone();
                for &(write, k, v) in mops {
                    let at = regs.binary_search_by_key(&k, |e| e.0);
                    if write {
                        match (at, v) {
                            (Ok(i), 0) => {
                                regs.remove(i);
                            }
                            (Ok(i), v) => regs[i].1 = v,
                            (Err(_), 0) => {}
                            (Err(i), v) => regs.insert(i, (k, v)),
                        }
                    } else {
                        let cur = at.map(|i| regs[i].1).unwrap_or(0);
                        if v != 0 && v != cur {
                            return None;
                        }
                    }
                }
                Some(KState::Regs(regs))
            }
            (KState::Set(xs), KInput::Add(v)) => {
                let mut xs = xs.clone();
                if let Err(i) = xs.binary_search(v) {
                    xs.insert(i, *v);
                }
                Some(KState::Set(xs))
            }
            (KState::Set(xs), KInput::ReadSet(r)) => (xs == r).then(|| s.clone()),
            (KState::Fifo(q), KInput::Enqueue(v)) => {
                let mut q = q.clone();
                q.push_back(*v);
                Some(KState::Fifo(q))
            }
            (KState::Fifo(q), KInput::Dequeue(d)) => match (d, q.front()) {
                (Some(0), None) => Some(s.clone()),
                (Some(v), Some(h)) if v == h => {
                    let mut q = q.clone();
                    q.pop_front();
                    Some(KState::Fifo(q))
                }
                (Some(_), _) => None,
                (None, None) => Some(s.clone()),
                (None, Some(_)) => {
                    let mut q = q.clone();
                    q.pop_front();
                    Some(KState::Fifo(q))
                }
            },
            (KState::Bag(b), KInput::Enqueue(v)) => {
                let mut b = b.clone();
                let i = b.partition_point(|x| x <= v);
                b.insert(i, *v);
                Some(KState::Bag(b))
            }
            (KState::Bag(b), KInput::Dequeue(Some(0))) => b.is_empty().then(|| s.clone()),
            (KState::Bag(b), KInput::Dequeue(Some(v))) => {
                let i = b.binary_search(v).ok()?;
                let mut b = b.clone();
                b.remove(i);
                Some(KState::Bag(b))
            }
            // Dropped before a search; a replay shows it as not taking effect.
            (KState::Bag(_), KInput::Dequeue(None)) => Some(s.clone()),
            _ => None,
        }
    }

    fn describe_state(&self, s: &KState) -> Value {
        let v = |i: &u32| self.values[*i as usize].clone();
        match s {
            KState::Mutex(locked) => Value::from(if *locked { "locked" } else { "unlocked" }),
            KState::Regs(regs) => {
                let mut m = serde_json::Map::new();
                for (k, x) in regs {
                    let key = match v(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    m.insert(key, v(x));
                }
                Value::Object(m)
            }
            KState::Set(xs) | KState::Bag(xs) => Value::Array(xs.iter().map(v).collect()),
            KState::Fifo(q) => Value::Array(q.iter().map(v).collect()),
        }
    }
}

impl SearchModel for KnossosModel {
    type State = u32;
    fn init(&self) -> u32 {
        self.intern(Self::initial(self.kind))
    }
    fn step(&self, s: &u32, op: usize) -> Option<u32> {
        if let Some(&n) = self.steps.borrow().get(&(*s, op)) {
            return (n != u32::MAX).then_some(n);
        }
        let cur = self.states.borrow()[*s as usize].clone();
        let next = Self::apply(&cur, &self.inputs[op]).map(|n| self.intern(n));
        self.steps
            .borrow_mut()
            .insert((*s, op), next.unwrap_or(u32::MAX));
        next
    }
    fn describe(&self, s: &u32) -> Value {
        let st = self.states.borrow()[*s as usize].clone();
        self.describe_state(&st)
    }
    fn input_class(&self, op: usize) -> Option<u64> {
        // Identical mutex ops are interchangeable; others get no class (no symmetry).
        match self.inputs[op] {
            KInput::Acquire => Some(1),
            KInput::Release => Some(2),
            _ => None,
        }
    }
}

/// What each model accepts, for errors.
fn expected(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Mutex => "acquire or release",
        ModelKind::MultiRegister => "txn",
        ModelKind::Set => "add or read",
        _ => "enqueue or dequeue",
    }
}

/// Compiles one partition's ops for a Knossos model; `reduce` drops the ops that can never
/// help a linearization (unordered-queue `info` dequeues), as the search wants.
pub(crate) fn compile(
    kind: ModelKind,
    ops: &[Op],
    idx: &[usize],
    reduce: bool,
) -> Result<(Vec<usize>, KnossosModel), ModelError> {
    let mut ids = ValueIds::new();
    let mut kept = Vec::with_capacity(idx.len());
    let mut inputs = Vec::with_capacity(idx.len());
    let unsupported = |op: &Op| ModelError::Unsupported {
        line: op.line,
        f: op.f.clone(),
        model: kind,
        expected: expected(kind),
    };
    let mut empty_dequeue: Option<usize> = None;
    let mut info_dequeue: Option<usize> = None;
    for &i in idx {
        let op = &ops[i];
        let info = op.status == OpStatus::Info;
        let input = match (kind, op.f.as_str()) {
            (ModelKind::Mutex, "acquire") => KInput::Acquire,
            (ModelKind::Mutex, "release") => KInput::Release,
            (ModelKind::MultiRegister, "txn") => {
                let txn = if info { &op.value } else { &op.output };
                let Some(mops) = txn.as_array() else {
                    return Err(bad(op, "a list of [f k v] micro-ops", txn));
                };
                let mut out = Vec::with_capacity(mops.len());
                for m in mops {
                    let Some([f, k, v]) = m
                        .as_array()
                        .and_then(|a| <&[Value; 3]>::try_from(a.as_slice()).ok())
                    else {
                        return Err(bad(op, "micro-ops [f k v]", m));
                    };
                    let write = match f.as_str() {
                        Some("write" | "w") => true,
                        Some("read" | "r") => false,
                        _ => return Err(bad(op, "a micro-op f of read/r or write/w", f)),
                    };
                    // An info txn's reads are unknown.
                    let v = if !write && info { 0 } else { ids.id(v) };
                    out.push((write, ids.id(k), v));
                }
                KInput::Txn(out)
            }
            (ModelKind::Set, "add") => KInput::Add(ids.id(&op.value)),
            (ModelKind::Set, "read") => {
                if info {
                    continue;
                }
                let Some(xs) = op.output.as_array() else {
                    return Err(bad(op, "the whole set as a list", &op.output));
                };
                let mut r: Vec<u32> = xs.iter().map(|x| ids.id(x)).collect();
                r.sort_unstable();
                r.dedup();
                KInput::ReadSet(r)
            }
            (ModelKind::FifoQueue | ModelKind::UnorderedQueue, "enqueue") => {
                KInput::Enqueue(ids.id(&op.value))
            }
            (ModelKind::FifoQueue | ModelKind::UnorderedQueue, "dequeue") => {
                if info {
                    info_dequeue.get_or_insert(op.line);
                    if kind == ModelKind::UnorderedQueue && reduce {
                        continue;
                    }
                    KInput::Dequeue(None)
                } else {
                    let v = ids.id(&op.output);
                    if v == 0 {
                        empty_dequeue.get_or_insert(op.line);
                    }
                    KInput::Dequeue(Some(v))
                }
            }
            _ => return Err(unsupported(op)),
        };
        kept.push(i);
        inputs.push(input);
    }
    if kind == ModelKind::UnorderedQueue {
        if let (Some(line), Some(_)) = (empty_dequeue, info_dequeue) {
            return Err(ModelError::Unsupported {
                line,
                f: "dequeue".into(),
                model: kind,
                expected: "no dequeue that saw an empty queue together with indeterminate \
                           (info) dequeues of unknown values in one partition (their effect on \
                           emptiness cannot be checked exactly); use fifo-queue if the queue \
                           is FIFO",
            });
        }
    }
    Ok((
        kept,
        KnossosModel {
            kind,
            inputs,
            values: ids.values,
            states: RefCell::new(Vec::new()),
            ids: RefCell::new(HashMap::new()),
            steps: RefCell::new(HashMap::default()),
        },
    ))
}
