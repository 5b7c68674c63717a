//! Sequential models: Porcupine's and Splitbrain's registers and kv stores here, Knossos's
//! table (mutex, multi-register, set, queues) in [`knossos`]. Each is compiled per partition
//! into small inputs over interned values, so that the search's `step` compares integers.

mod knossos;

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
    /// Knossos's mutex: `acquire` / `release`.
    Mutex,
    /// Knossos's multi-register: `txn` of `[f k v]` reads and writes over several registers.
    MultiRegister,
    /// Knossos's set: `add v`, `read` → the whole set.
    Set,
    /// Knossos's FIFO queue: `enqueue v`, `dequeue` → v.
    FifoQueue,
    /// Knossos's unordered queue: `enqueue v`, `dequeue` → any queued v.
    UnorderedQueue,
}

impl ModelKind {
    /// Whether the model's ops are checked per key (P-compositionality); `register` and
    /// `cas-register` are one object and reject keys.
    pub fn partitions_by_key(self) -> bool {
        !matches!(self, ModelKind::Register | ModelKind::CasRegister)
    }

    pub const NAMES: &'static [&'static str] = &[
        "register",
        "cas-register",
        "kv",
        "append-kv",
        "mutex",
        "multi-register",
        "set",
        "fifo-queue",
        "unordered-queue",
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::AppendKv => "append-kv",
            ModelKind::Mutex => "mutex",
            ModelKind::MultiRegister => "multi-register",
            ModelKind::Set => "set",
            ModelKind::FifoQueue => "fifo-queue",
            ModelKind::UnorderedQueue => "unordered-queue",
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
            "mutex" => Ok(ModelKind::Mutex),
            "multi-register" => Ok(ModelKind::MultiRegister),
            "set" => Ok(ModelKind::Set),
            "fifo-queue" => Ok(ModelKind::FifoQueue),
            "unordered-queue" => Ok(ModelKind::UnorderedQueue),
            _ => Err(format!(
                "unknown model {s:?} (expected one of: {})",
                ModelKind::NAMES.join(", ")
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled models. A partition's ops are compiled once into small inputs over interned values,
// so that `step` compares integers.
// ---------------------------------------------------------------------------------------------

use crate::history::{Op, OpStatus};
use crate::search::{FxBuild, Refutation, SearchModel};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

/// An op the model cannot interpret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("line {line}: op f {f:?} is not an operation of model {model} (expected {expected})")]
    Unsupported {
        line: usize,
        f: String,
        model: ModelKind,
        expected: &'static str,
    },
    #[error("line {line}: {f} value {found}: expected {expected}")]
    BadValue {
        line: usize,
        f: String,
        found: String,
        expected: &'static str,
    },
    #[error(
        "line {line}: op has key {key} but model {model} is a single register (expected --model kv)"
    )]
    Keyed {
        line: usize,
        key: String,
        model: ModelKind,
    },
}

/// Interns JSON values as small ids; id 0 is `null` (absent).
#[derive(Default)]
struct ValueIds {
    ids: HashMap<String, u32>,
    values: Vec<Value>,
}

impl ValueIds {
    fn new() -> Self {
        let mut v = ValueIds::default();
        v.id(&Value::Null);
        v
    }
    fn id(&mut self, v: &Value) -> u32 {
        let k = v.to_string();
        if let Some(&i) = self.ids.get(&k) {
            return i;
        }
        let i = self.values.len() as u32;
        self.values.push(v.clone());
        self.ids.insert(k, i);
        i
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum RegInput {
    Read(u32),
    Write(u32),
    /// `ok`: Some(true) = the compare succeeded, Some(false) = observed failed compare
    /// (Porcupine's etcd reading), None = unknown (`info`).
    Cas {
        from: u32,
        to: u32,
        ok: Option<bool>,
    },
}

/// `register` and `cas-register` (also each key of `kv`): state = id of the current value.
pub(crate) struct RegisterModel {
    pub inputs: Vec<RegInput>,
    values: Vec<Value>,
}

impl SearchModel for RegisterModel {
    type State = u32;
    fn init(&self) -> u32 {
        0
    }
    #[inline]
    fn step(&self, s: &u32, op: usize) -> Option<u32> {
        match self.inputs[op] {
            RegInput::Read(v) => (v == *s).then_some(*s),
            RegInput::Write(v) => Some(v),
            RegInput::Cas { from, to, ok } => match ok {
                Some(true) => (from == *s).then_some(to),
                Some(false) => (from != *s).then_some(*s),
                None => Some(if from == *s { to } else { *s }),
            },
        }
    }
    fn describe(&self, s: &u32) -> Value {
        self.values[*s as usize].clone()
    }
    /// Two facts that need no search (both sound for any linearization):
    ///
    /// 1. An op that needs value `v ≠ null` in place (an ok read of `v`, a cas from `v` that
    ///    succeeded) cannot take effect if every op that can set `v` (a write of `v`, a cas to
    ///    `v` that did not fail its compare) was invoked after it completed.
    /// 2. An op that needs the initial `null` cannot take effect after an op that set another
    ///    value completed, when no op can set `null` again.
    fn refute(&self, calls: &[u64], rets: &[u64]) -> Option<Refutation> {
        let n = self.inputs.len();
        let nv = self.values.len();
        // Per value: the earliest invocation of an op that can set it, and that op.
        let mut first_set: Vec<Option<(u64, usize)>> = vec![None; nv];
        let mut earliest_done: Option<(u64, usize)> = None; // a completed op setting non-null
        for i in 0..n {
            let set = match self.inputs[i] {
                RegInput::Write(v) => Some((v, true)),
                RegInput::Cas {
                    to, ok: Some(true), ..
                } => Some((to, true)),
                RegInput::Cas { to, ok: None, .. } => Some((to, false)),
                _ => None,
            };
            if let Some((v, certain)) = set {
                let e = &mut first_set[v as usize];
                if e.is_none_or(|(c, _)| calls[i] < c) {
                    *e = Some((calls[i], i));
                }
                if certain
                    && v != 0
                    && rets[i] != u64::MAX
                    && earliest_done.is_none_or(|(r, _)| rets[i] < r)
                {
                    earliest_done = Some((rets[i], i));
                }
            }
        }
        let needs = |i: usize| match self.inputs[i] {
            RegInput::Read(v) => Some(v),
            RegInput::Cas {
                from,
                ok: Some(true),
                ..
            } => Some(from),
            _ => None,
        };
        for r in 0..n {
            let Some(v) = needs(r) else { continue };
            if rets[r] == u64::MAX {
                continue;
            }
            if v != 0 {
                match first_set[v as usize] {
                    None => {
                        return Some(Refutation {
                            op: r,
                            with: vec![],
                            fact: format!("no op writes {}", self.values[v as usize]),
                        })
                    }
                    Some((c, w)) if c > rets[r] => {
                        return Some(Refutation {
                            op: r,
                            with: vec![w],
                            fact: format!(
                                "every op that writes {} was invoked after this op completed",
                                self.values[v as usize]
                            ),
                        })
                    }
                    _ => {}
                }
            } else if first_set[0].is_none() {
                if let Some((done, w)) = earliest_done {
                    if done < calls[r] {
                        return Some(Refutation {
                            op: r,
                            with: vec![w],
                            fact: "it needs the initial null, but a write of another value \
                                   completed before it began and no op writes null"
                                .into(),
                        });
                    }
                }
            }
        }
        None
    }
    fn input_class(&self, op: usize) -> Option<u64> {
        Some(match self.inputs[op] {
            RegInput::Read(v) => v as u64,
            // Tags: reads < 2^32, cas in [2^61, 2^63), writes ≥ 2^63: classes never collide.
            RegInput::Write(v) => 1 << 63 | v as u64,
            // Two 30-bit ids pack into one class; larger ids get no class (no symmetry).
            RegInput::Cas { from, to, .. } if from >= 1 << 30 || to >= 1 << 30 => return None,
            RegInput::Cas { from, to, ok } => {
                let ok = match ok {
                    None => 0,
                    Some(false) => 1,
                    Some(true) => 2,
                };
                (2 + ok) << 60 | (from as u64) << 30 | to as u64
            }
        })
    }
}

/// A compiled partition: the ops kept (indices into the history) and the model.
pub(crate) enum Compiled {
    Register(RegisterModel),
    AppendKv(AppendKvModel),
    Knossos(knossos::KnossosModel),
}

fn bad(op: &Op, expected: &'static str, v: &Value) -> ModelError {
    ModelError::BadValue {
        line: op.line,
        f: op.f.clone(),
        found: v.to_string(),
        expected,
    }
}

/// Compiles the ops `idx` of one partition. Returns the kept ops (reads with unknown results
/// constrain nothing and are dropped) and the model.
pub(crate) fn compile(
    kind: ModelKind,
    ops: &[Op],
    idx: &[usize],
) -> Result<(Vec<usize>, Compiled), ModelError> {
    compile_with(kind, ops, idx, true)
}

/// As [`compile`], without the search's reductions (no `info` write is dropped, no
/// version-order hint is set): the model's plain sequential semantics, for [`crate::replay`].
pub(crate) fn compile_plain(
    kind: ModelKind,
    ops: &[Op],
    idx: &[usize],
) -> Result<(Vec<usize>, Compiled), ModelError> {
    compile_with(kind, ops, idx, false)
}

fn compile_with(
    kind: ModelKind,
    ops: &[Op],
    idx: &[usize],
    reduce: bool,
) -> Result<(Vec<usize>, Compiled), ModelError> {
    match kind {
        ModelKind::Mutex
        | ModelKind::MultiRegister
        | ModelKind::Set
        | ModelKind::FifoQueue
        | ModelKind::UnorderedQueue => {
            let (kept, m) = knossos::compile(kind, ops, idx, reduce)?;
            Ok((kept, Compiled::Knossos(m)))
        }
        ModelKind::Register | ModelKind::CasRegister | ModelKind::Kv => {
            let allow_cas = kind != ModelKind::Register;
            let expected = if allow_cas {
                "read, write or cas"
            } else {
                "read or write"
            };
            let queue_hint = "read or write (a queue: name --model fifo-queue or unordered-queue)";
            let mut ids = ValueIds::new();
            let mut kept = Vec::with_capacity(idx.len());
            let mut inputs = Vec::with_capacity(idx.len());
            for &i in idx {
                let op = &ops[i];
                if kind != ModelKind::Kv {
                    if let Some(k) = &op.key {
                        return Err(ModelError::Keyed {
                            line: op.line,
                            key: k.to_string(),
                            model: kind,
                        });
                    }
                }
                let info = op.status == OpStatus::Info;
                let input = match op.f.as_str() {
                    "read" => {
                        if info {
                            continue;
                        }
                        RegInput::Read(ids.id(&op.output))
                    }
                    "write" => RegInput::Write(ids.id(&op.value)),
                    "cas" if allow_cas => {
                        let Some([from, to]) = op
                            .value
                            .as_array()
                            .and_then(|a| <&[Value; 2]>::try_from(a.as_slice()).ok())
                        else {
                            return Err(bad(op, "a list [from, to]", &op.value));
                        };
                        let ok = if info {
                            None
                        } else {
                            Some(op.output != Value::Bool(false))
                        };
                        RegInput::Cas {
                            from: ids.id(from),
                            to: ids.id(to),
                            ok,
                        }
                    }
                    f => {
                        return Err(ModelError::Unsupported {
                            line: op.line,
                            f: op.f.clone(),
                            model: kind,
                            expected: if matches!(f, "enqueue" | "dequeue") {
                                queue_hint
                            } else {
                                expected
                            },
                        })
                    }
                };
                kept.push(i);
                inputs.push(input);
            }
            let (kept, inputs) = if reduce {
                drop_unobserved_info(kept, inputs, ops)
            } else {
                (kept, inputs)
            };
            Ok((
                kept,
                Compiled::Register(RegisterModel {
                    inputs,
                    values: ids.values,
                }),
            ))
        }
        ModelKind::AppendKv => {
            let mut m = AppendKvModel::default();
            m.intern(String::new());
            let mut kept = Vec::with_capacity(idx.len());
            for &i in idx {
                let op = &ops[i];
                let info = op.status == OpStatus::Info;
                let s = |v: &Value| -> Result<String, ModelError> {
                    match v {
                        Value::String(s) => Ok(s.clone()),
                        Value::Null => Ok(String::new()),
                        v => Err(bad(op, "a string", v)),
                    }
                };
                let input = match op.f.as_str() {
                    "get" | "read" => {
                        if info {
                            continue;
                        }
                        let v = s(&op.output)?;
                        AppInput::Get(m.intern(v))
                    }
                    "put" | "write" => {
                        let v = s(&op.value)?;
                        AppInput::Put(m.intern(v))
                    }
                    "append" => AppInput::Append {
                        elem: s(&op.value)?,
                        after: None,
                    },
                    _ => {
                        return Err(ModelError::Unsupported {
                            line: op.line,
                            f: op.f.clone(),
                            model: kind,
                            expected: "get, put or append",
                        })
                    }
                };
                kept.push(i);
                m.inputs.push(input);
            }
            if reduce {
                let info: Vec<bool> = kept
                    .iter()
                    .map(|&i| ops[i].status == OpStatus::Info)
                    .collect();
                m.drop_unobserved_info(&mut kept, &info);
                m.add_order_hints();
            }
            Ok((kept, Compiled::AppendKv(m)))
        }
    }
}

/// Drops indeterminate writes (and cas) whose written value nothing observes.
///
/// Claim: if no ok read returns `v` and no cas compares against `v`, an `info` write of `v`
/// (or an `info` cas to `v`) can be removed without changing the verdict, provided the
/// partition has no observed failed compares. Removing it cannot make a valid history
/// invalid… conversely, given a linearization with it, drop it: until the next op that sets
/// the state, the ops after it saw state `v`, so they are reads of `v` (none), cas from `v`
/// (none) or `info` cas from another value, which had no effect there and can be moved to
/// the end (an `info` op may take effect at any later time); the state after the stretch is
/// the same. Without this, every such op doubles the search space (linearized or not),
/// which at 1% `info` over long per-key histories is the dominant cost.
fn drop_unobserved_info(
    kept: Vec<usize>,
    inputs: Vec<RegInput>,
    ops: &[Op],
) -> (Vec<usize>, Vec<RegInput>) {
    if inputs.iter().any(|i| {
        matches!(
            i,
            RegInput::Cas {
                ok: Some(false),
                ..
            }
        )
    }) {
        return (kept, inputs);
    }
    let mut observed = std::collections::HashSet::new();
    for i in &inputs {
        match *i {
            RegInput::Read(v) => {
                observed.insert(v);
            }
            RegInput::Cas { from, .. } => {
                observed.insert(from);
            }
            RegInput::Write(_) => {}
        }
    }
    kept.into_iter()
        .zip(inputs)
        .filter(|(k, inp)| {
            let info = ops[*k].status == OpStatus::Info;
            match *inp {
                RegInput::Write(v) if info => observed.contains(&v),
                RegInput::Cas { to, ok: None, .. } => observed.contains(&to),
                _ => true,
            }
        })
        .unzip()
}

#[derive(Clone, Debug)]
pub(crate) enum AppInput {
    Get(u32),
    Put(u32),
    /// Append `elem`; `after`: the state it must be appended to, when the reads reveal it.
    Append {
        elem: String,
        after: Option<u32>,
    },
}

/// Porcupine's kv model for one key: state = id of the interned string, initial `""`.
#[derive(Default)]
pub(crate) struct AppendKvModel {
    pub inputs: Vec<AppInput>,
    strings: RefCell<Vec<String>>,
    ids: RefCell<HashMap<String, u32>>,
    /// (state, op) → state after the append.
    appended: RefCell<HashMap<(u32, usize), u32, FxBuild>>,
    /// What each get's result reveals, when values are uniquely decodable (see
    /// [`AppendKvModel::add_order_hints`]); empty otherwise.
    parses: Vec<GetParse>,
    /// Append inputs that are the only writer of their value, ascending.
    sole: Vec<usize>,
}

/// The unique parse of one get's result.
#[derive(Clone, Debug)]
struct GetParse {
    /// The get (input index).
    get: usize,
    /// False: no sequence of puts and appends produces the result.
    parsed: bool,
    /// The put the result starts with: `Some(None)` none (initial `""`), `Some(Some(p))` put
    /// `p`, `None` not known (its value is written by several ops).
    shows: Option<Option<usize>>,
    /// The appends (input indices, each the only writer of its value) the result contains.
    appends: Vec<usize>,
}

impl AppendKvModel {
    /// Whether append input `i` is the only op writing its value (so the parses can tell
    /// whether a result contains it).
    fn sole_writer(&self, i: usize) -> bool {
        self.sole.binary_search(&i).is_ok()
    }
}

/// The unique parse of `text` into words of `dict` (a prefix code; `lens` its distinct word
/// lengths, ascending), or `None` if it has none.
fn parse_words<'a>(
    text: &'a str,
    dict: &std::collections::HashSet<&str>,
    lens: &[usize],
) -> Option<Vec<&'a str>> {
    let mut words = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let w = lens
            .iter()
            .find_map(|&l| text.get(pos..pos + l).filter(|w| dict.contains(w)))?;
        words.push(w);
        pos += w.len();
    }
    Some(words)
}

impl AppendKvModel {
    /// Drops `info` puts and appends whose value no get's result contains.
    ///
    /// Claim (when every written value is non-empty and the distinct values form a prefix
    /// code, so each get's result has one parse into written values, and every get parses):
    /// removing such an op does not change the verdict. Without it a linearization is one
    /// with it never taking effect (allowed for `info`). Conversely, take a linearization in
    /// which it takes effect: from there until the next put, every state contains its value
    /// as a word of the state's parse (a put's value starts the state, an append's stays in
    /// it), so no get is linearized in that stretch; deleting the op changes only states no
    /// get reads, and the state after the next put not at all. Each such op otherwise
    /// doubles the search (applied or not): 17 of them on one key ran a check past its
    /// deadline in CI. `info` flags the inputs' ops, in order; `kept` shrinks with them.
    fn drop_unobserved_info(&mut self, kept: &mut Vec<usize>, info: &[bool]) {
        if !info.iter().any(|&b| b) {
            return;
        }
        let keep: Vec<bool> = {
            let strings = self.strings.borrow();
            let value = |inp: &AppInput| -> Option<String> {
                match inp {
                    AppInput::Put(v) => Some(strings[*v as usize].clone()),
                    AppInput::Append { elem, .. } => Some(elem.clone()),
                    AppInput::Get(_) => None,
                }
            };
            let values: Vec<Option<String>> = self.inputs.iter().map(value).collect();
            let mut words: Vec<&str> = values.iter().flatten().map(String::as_str).collect();
            if words.iter().any(|w| w.is_empty()) {
                return;
            }
            words.sort_unstable();
            words.dedup();
            if words.windows(2).any(|p| p[1].starts_with(p[0])) {
                return;
            }
            let dict: std::collections::HashSet<&str> = words.iter().copied().collect();
            let mut lens: Vec<usize> = words.iter().map(|w| w.len()).collect();
            lens.sort_unstable();
            lens.dedup();
            let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
            for inp in &self.inputs {
                if let AppInput::Get(g) = inp {
                    let Some(ws) = parse_words(&strings[*g as usize], &dict, &lens) else {
                        return; // a get no writes explain: leave everything to the proofs
                    };
                    seen.extend(ws);
                }
            }
            values
                .iter()
                .zip(info)
                .map(|(v, &inf)| !inf || v.as_deref().is_none_or(|w| seen.contains(w)))
                .collect()
        };
        if keep.iter().all(|&k| k) {
            return;
        }
        let mut it = keep.iter();
        kept.retain(|_| *it.next().unwrap());
        let mut it = keep.iter();
        self.inputs.retain(|_| *it.next().unwrap());
    }

    fn intern(&self, s: String) -> u32 {
        let mut ids = self.ids.borrow_mut();
        if let Some(&i) = ids.get(&s) {
            return i;
        }
        let mut strings = self.strings.borrow_mut();
        let i = strings.len() as u32;
        strings.push(s.clone());
        ids.insert(s, i);
        i
    }

    /// Version-order hints from unique values.
    ///
    /// If every put and append value of this key is non-empty, distinct, and no value is a
    /// prefix of another (a prefix code), then a string has at most one parse into those
    /// values. In any valid linearization the state read by an ok `get` is some put value (or
    /// `""`) followed by appended values in the order they were applied, so that unique parse
    /// *is* the history of the state: an append whose value occurs in the parse at byte
    /// offset `o` must have been applied to exactly the first `o` bytes of the get's result.
    /// The search then only tries each observed append in that one state, which turns the
    /// exponential interleavings of many concurrent appends into a single chain. (Where two
    /// gets disagree, no valid linearization exists and the append is never placeable, which
    /// is also what the search concludes without hints.) Gets that do not parse are
    /// unsatisfiable by any linearization and give no hints.
    fn add_order_hints(&mut self) {
        let puts: Vec<String> = {
            let strings = self.strings.borrow();
            self.inputs
                .iter()
                .filter_map(|inp| match inp {
                    AppInput::Put(id) => Some(strings[*id as usize].clone()),
                    _ => None,
                })
                .collect()
        };
        let mut sorted: Vec<&str> = puts.iter().map(String::as_str).collect();
        for inp in &self.inputs {
            if let AppInput::Append { elem, .. } = inp {
                sorted.push(elem.as_str());
            }
        }
        if sorted.iter().any(|w| w.is_empty()) {
            return;
        }
        let mut producers: HashMap<&str, usize> = HashMap::new();
        for w in &sorted {
            *producers.entry(w).or_default() += 1;
        }
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.windows(2).any(|p| p[1].starts_with(p[0])) {
            return; // the distinct values are not a prefix code
        }
        // Appends whose value no other op writes: their position in a parse is theirs alone.
        let is_append: HashMap<&str, usize> = self
            .inputs
            .iter()
            .enumerate()
            .filter_map(|(i, inp)| match inp {
                AppInput::Append { elem, .. } if producers[elem.as_str()] == 1 => {
                    Some((elem.as_str(), i))
                }
                _ => None,
            })
            .collect();
        let put_values: std::collections::HashSet<&str> = puts.iter().map(String::as_str).collect();
        let appended: std::collections::HashSet<&str> = self
            .inputs
            .iter()
            .filter_map(|inp| match inp {
                AppInput::Append { elem, .. } => Some(elem.as_str()),
                _ => None,
            })
            .collect();
        let dict: std::collections::HashSet<&str> = sorted.iter().copied().collect();
        let mut lens: Vec<usize> = sorted.iter().map(|w| w.len()).collect();
        lens.sort_unstable();
        lens.dedup();
        let gets: Vec<(usize, u32)> = self
            .inputs
            .iter()
            .enumerate()
            .filter_map(|(i, inp)| match inp {
                AppInput::Get(g) => Some((i, *g)),
                _ => None,
            })
            .collect();
        // The put that wrote each put value (by value id), when only one op writes it.
        let put_of: HashMap<u32, usize> = {
            let strings = self.strings.borrow();
            self.inputs
                .iter()
                .enumerate()
                .filter_map(|(i, inp)| match inp {
                    AppInput::Put(v)
                        if producers.get(strings[*v as usize].as_str()) == Some(&1) =>
                    {
                        Some((*v, i))
                    }
                    _ => None,
                })
                .collect()
        };
        let mut parses = Vec::new();
        let mut after: HashMap<usize, Option<String>> = HashMap::new();
        for (gi, g) in gets {
            let text = self.strings.borrow()[g as usize].clone();
            let mut pos = 0;
            let mut found: Vec<(usize, usize)> = Vec::new(); // (offset, append input)
            let mut parsed = true;
            // What the state shows at its start: no put (None), a known put, or unknown.
            let mut shows: Option<Option<usize>> = Some(None);
            while pos < text.len() {
                let w = lens
                    .iter()
                    .find_map(|&l| text.get(pos..pos + l).filter(|w| dict.contains(w)));
                let Some(w) = w else {
                    parsed = false;
                    break;
                };
                if pos == 0 && !is_append.contains_key(w) {
                    let id = self.ids.borrow().get(w).copied();
                    shows = id.and_then(|id| put_of.get(&id)).map(|&p| Some(p));
                }
                match is_append.get(w) {
                    Some(&i) => found.push((pos, i)),
                    // A put value can only start the string (then it may be the put's).
                    None if pos > 0 && put_values.contains(w) && !appended.contains(w) => {
                        parsed = false; // unsatisfiable by any linearization
                        break;
                    }
                    None => {} // written by several ops: no hint from it
                }
                pos += w.len();
            }
            if !parsed {
                parses.push(GetParse {
                    get: gi,
                    parsed: false,
                    shows: None,
                    appends: Vec::new(),
                });
                continue;
            }
            parses.push(GetParse {
                get: gi,
                parsed: true,
                shows,
                appends: found.iter().map(|&(_, i)| i).collect(),
            });
            for (off, i) in found {
                let want = text[..off].to_string();
                match after.get(&i) {
                    None => {
                        after.insert(i, Some(want));
                    }
                    Some(Some(w)) if *w != want => {
                        after.insert(i, None); // contradiction: never placeable
                    }
                    _ => {}
                }
            }
        }
        self.parses = parses;
        let mut sole: Vec<usize> = is_append.values().copied().collect();
        sole.sort_unstable();
        self.sole = sole;
        for (i, want) in after {
            let id = match want {
                Some(w) => self.intern(w),
                None => u32::MAX,
            };
            if let AppInput::Append { after, .. } = &mut self.inputs[i] {
                *after = Some(id);
            }
        }
    }
}

impl SearchModel for AppendKvModel {
    type State = u32;
    fn init(&self) -> u32 {
        0
    }
    fn step(&self, s: &u32, op: usize) -> Option<u32> {
        match &self.inputs[op] {
            AppInput::Get(v) => (v == s).then_some(*s),
            AppInput::Put(v) => Some(*v),
            AppInput::Append { elem, after } => {
                if after.is_some_and(|a| a != *s) {
                    return None;
                }
                if let Some(&n) = self.appended.borrow().get(&(*s, op)) {
                    return Some(n);
                }
                let mut t = self.strings.borrow()[*s as usize].clone();
                t.push_str(elem);
                let n = self.intern(t);
                self.appended.borrow_mut().insert((*s, op), n);
                Some(n)
            }
        }
    }
    fn describe(&self, s: &u32) -> Value {
        Value::String(self.strings.borrow()[*s as usize].clone())
    }
    /// With uniquely decodable values (the order hints' condition), a get's result names the
    /// put it starts with and the appends it contains. Then, soundly for any linearization:
    ///
    /// 1. A result no sequence of puts and appends produces cannot be read.
    /// 2. It cannot show an append or put invoked after the get completed.
    /// 3. It must show every append that completed before the get began and was invoked
    ///    after the put it starts with completed (that put is the last one before the get, so
    ///    the append lies between them); with no put shown, every append and put that
    ///    completed before the get began.
    fn refute(&self, calls: &[u64], rets: &[u64]) -> Option<Refutation> {
        let appends: Vec<usize> = (0..self.inputs.len())
            .filter(|&i| matches!(self.inputs[i], AppInput::Append { .. }))
            .collect();
        let puts: Vec<usize> = (0..self.inputs.len())
            .filter(|&i| matches!(self.inputs[i], AppInput::Put(_)))
            .collect();
        // Fact 3 costs gets × appends: skip it for huge partitions.
        let full = self.parses.len().saturating_mul(appends.len() + puts.len()) <= 20_000_000;
        let elem = |i: usize| match &self.inputs[i] {
            AppInput::Append { elem, .. } => elem.clone(),
            _ => String::new(),
        };
        for gp in &self.parses {
            let g = gp.get;
            if rets[g] == u64::MAX {
                continue;
            }
            if !gp.parsed {
                return Some(Refutation {
                    op: g,
                    with: vec![],
                    fact: "no sequence of puts and appends produces this result".into(),
                });
            }
            let shown_put = gp.shows.flatten();
            if let Some(&a) = gp
                .appends
                .iter()
                .chain(shown_put.iter())
                .find(|&&a| calls[a] > rets[g])
            {
                return Some(Refutation {
                    op: g,
                    with: vec![a],
                    fact: "it shows an op that was invoked after it completed".into(),
                });
            }
            if !full {
                continue;
            }
            let Some(shows) = gp.shows else { continue };
            if shows.is_some_and(|p| rets[p] == u64::MAX) {
                continue;
            }
            let after_put = |a: usize| shows.is_none_or(|p| calls[a] > rets[p]);
            let shown: std::collections::HashSet<usize> = gp.appends.iter().copied().collect();
            for &a in &appends {
                if rets[a] < calls[g] && after_put(a) && !shown.contains(&a) && self.sole_writer(a)
                {
                    let mut with: Vec<usize> = shows.into_iter().collect();
                    with.push(a);
                    return Some(Refutation {
                        op: g,
                        with,
                        fact: format!(
                            "it misses the append of {:?}, which completed before it began{}",
                            elem(a),
                            if shows.is_some() {
                                " and was invoked after the put it shows completed"
                            } else {
                                ", and it shows no put"
                            }
                        ),
                    });
                }
            }
            if shows.is_none() {
                if let Some(&p) = puts.iter().find(|&&p| rets[p] < calls[g]) {
                    return Some(Refutation {
                        op: g,
                        with: vec![p],
                        fact: "it shows no put, but a put completed before it began".into(),
                    });
                }
            }
        }
        self.refute_pairs(calls, rets)
    }
}

impl AppendKvModel {
    /// Facts about two gets (see [`SearchModel::refute`]; same conditions). A get that shows
    /// put `p` (the only op writing its value) reads a state of the *stretch* of `p`: after
    /// `p`, before the next put. A get that shows no put reads the first stretch, before any
    /// put. In a stretch the state only grows (appends), and the stretches follow one another.
    /// So, soundly for any linearization:
    ///
    /// 4. Two gets of one stretch read results of which one extends the other.
    /// 5. A get of a stretch that completed before another get of the same stretch began
    ///    shows no more than it.
    /// 6. An append (the only writer of its value) is shown only by gets of one stretch.
    /// 7. The first stretch's gets never begin after a get of another stretch completed; and
    ///    two stretches are not each read (completed) before the other is read (begun).
    fn refute_pairs(&self, calls: &[u64], rets: &[u64]) -> Option<Refutation> {
        let strings = self.strings.borrow();
        let text = |g: usize| match &self.inputs[g] {
            AppInput::Get(v) => strings[*v as usize].as_str(),
            _ => "",
        };
        // Gets by stretch (`None`: the first), for the gets whose stretch is known.
        let mut stretches: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
        let mut stretch_of_append: HashMap<usize, (Option<usize>, usize)> = HashMap::new();
        for gp in &self.parses {
            let (true, Some(st)) = (gp.parsed, gp.shows) else {
                continue;
            };
            if rets[gp.get] == u64::MAX {
                continue;
            }
            stretches.entry(st).or_default().push(gp.get);
            for &a in &gp.appends {
                match stretch_of_append.get(&a) {
                    None => {
                        stretch_of_append.insert(a, (st, gp.get));
                    }
                    Some(&(other, g)) if other != st => {
                        return Some(Refutation {
                            op: gp.get,
                            with: vec![g, a],
                            fact: "it and another read show the same append after different \
                                   puts, but an append takes effect once"
                                .into(),
                        });
                    }
                    _ => {}
                }
            }
        }
        let mut keys: Vec<Option<usize>> = stretches.keys().copied().collect();
        keys.sort_unstable();
        for st in &keys {
            let gets = &stretches[st];
            let mut by_len = gets.clone();
            by_len.sort_by_key(|&g| (text(g).len(), g));
            for w in by_len.windows(2) {
                if !text(w[1]).starts_with(text(w[0])) {
                    return Some(Refutation {
                        op: w[1],
                        with: vec![w[0]],
                        fact: "it and another read show the same put (or none) but neither \
                               result extends the other, and between two puts the value only \
                               grows"
                            .into(),
                    });
                }
            }
            // Fact 5: a sweep in invocation order over the gets completed before each one.
            let mut by_call = gets.clone();
            by_call.sort_by_key(|&g| (calls[g], g));
            let mut by_ret = gets.clone();
            by_ret.sort_by_key(|&g| (rets[g], g));
            let mut done = 0;
            let mut longest: Option<usize> = None;
            for &g in &by_call {
                while done < by_ret.len() && rets[by_ret[done]] < calls[g] {
                    let d = by_ret[done];
                    if longest.is_none_or(|l| text(d).len() > text(l).len()) {
                        longest = Some(d);
                    }
                    done += 1;
                }
                if let Some(l) = longest.filter(|&l| text(l).len() > text(g).len()) {
                    return Some(Refutation {
                        op: g,
                        with: vec![l],
                        fact: "it shows less than a read of the same put (or none) that \
                               completed before it began, and between two puts the value only \
                               grows"
                            .into(),
                    });
                }
            }
        }
        // Fact 7, over the stretches' earliest completion and latest invocation.
        if keys.len() < 2 || keys.len() > 3000 {
            return None;
        }
        let first_done = |st: &Option<usize>| {
            let g = *stretches[st].iter().min_by_key(|&&g| (rets[g], g)).unwrap();
            (rets[g], g)
        };
        let last_begun = |st: &Option<usize>| {
            let g = *stretches[st]
                .iter()
                .max_by_key(|&&g| (calls[g], g))
                .unwrap();
            (calls[g], g)
        };
        let ends: Vec<((u64, usize), (u64, usize))> = keys
            .iter()
            .map(|k| (first_done(k), last_begun(k)))
            .collect();
        for (i, x) in keys.iter().enumerate() {
            for (j, y) in keys.iter().enumerate().skip(i + 1) {
                let ((xr, xg), (xc, xl)) = ends[i];
                let ((yr, yg), (yc, yl)) = ends[j];
                let first = |s: &Option<usize>| s.is_none();
                if (first(y) && xr < yc) || (first(x) && yr < xc) {
                    let (late, other) = if first(y) { (yl, xg) } else { (xl, yg) };
                    return Some(Refutation {
                        op: late,
                        with: vec![other],
                        fact: "it shows no put, but a read showing a put completed before it \
                               began"
                            .into(),
                    });
                }
                if xr < yc && yr < xc {
                    return Some(Refutation {
                        op: yl,
                        with: vec![xg, yg, xl],
                        fact: "reads of two puts' stretches are each completed before the other \
                               stretch is read, but the stretches follow one another"
                            .into(),
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_classes_are_equal_only_for_identical_inputs() {
        let ids = [0, 1, 2, (1 << 30) - 1];
        let mut inputs = Vec::new();
        for &a in &ids {
            inputs.push(RegInput::Read(a));
            inputs.push(RegInput::Write(a));
            for &b in &ids {
                for ok in [None, Some(false), Some(true)] {
                    inputs.push(RegInput::Cas { from: a, to: b, ok });
                }
            }
        }
        let m = RegisterModel {
            inputs: inputs.clone(),
            values: Vec::new(),
        };
        for i in 0..inputs.len() {
            for j in 0..inputs.len() {
                let same = format!("{:?}", inputs[i]) == format!("{:?}", inputs[j]);
                assert_eq!(
                    m.input_class(i) == m.input_class(j),
                    same,
                    "{:?} vs {:?}",
                    inputs[i],
                    inputs[j]
                );
            }
        }
    }
}
