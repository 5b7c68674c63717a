//! Wing & Gong's linearizability search with Lowe's memoisation, for one partition.
//!
//! # How it works
//!
//! The partition's invocations and completions form a doubly linked list in history order
//! (completions of `info` ops sit at the end, in invocation order: they may take effect at any
//! time after their invocation, and taking effect "at the end" is the same as never). The
//! search walks the list: at an invocation it tries to linearize that op next (the model's
//! `step` must accept it, and the pair (set of linearized ops, new state) must not have been
//! seen before — Lowe's memoisation); if so the op's two entries are lifted out of the list and
//! the walk restarts from the head. Reaching a completion whose op is not linearized means the
//! current partial linearization cannot be extended: pop the last linearized op, restore its
//! entries and state, and try the next candidate after it. An empty list means every op was
//! linearized; an empty stack at a completion means none can be.
//!
//! The linearized set is a bitset with an incremental (Zobrist) hash, so memo lookups hash one
//! word plus the state. The memo stores each set by its frontier (`Frontier`): the first op
//! not linearized, the bits of the ops concurrent with it, and the linearized `info` ops
//! below it — words in the history's concurrency, not its length. States are small values
//! (interned ids) supplied by the model.
//!
//! A deadline or a cancel flag stops the search (checked every few thousand steps); the
//! result is then `Timeout`/`Cancelled`, never a verdict. So does a memo that would grow past
//! the check's memory budget (`MemoryLimit`).

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// A sequential model compiled for one partition: ops are referred to by their local index.
pub(crate) trait SearchModel {
    type State: Clone + Eq + Hash;
    fn init(&self) -> Self::State;
    /// The state after linearizing local op `op` in state `s`, or `None` if illegal.
    fn step(&self, s: &Self::State, op: usize) -> Option<Self::State>;
    /// The state as a value people can read (counterexamples).
    fn describe(&self, s: &Self::State) -> serde_json::Value;
    /// Ops with equal classes have identical inputs (same effect in every state). `None`:
    /// no class (never treated as interchangeable).
    fn input_class(&self, _op: usize) -> Option<u64> {
        None
    }
    /// A cheap proof that the ops (local indices, with invocation and completion positions)
    /// have no linearization, found without searching; `None` when the model has none. Must
    /// be sound: `Some` only when the search would say invalid.
    fn refute(&self, _calls: &[u64], _rets: &[u64]) -> Option<Refutation> {
        None
    }
}

/// A cheap proof of non-linearizability: `op` cannot take effect, because of `with`.
#[derive(Clone, Debug)]
pub(crate) struct Refutation {
    /// The op that can be placed nowhere (local index).
    pub op: usize,
    /// The ops the argument is about (local indices).
    pub with: Vec<usize>,
    /// The argument, in words.
    pub fact: String,
}

/// Where the search stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Valid,
    Invalid,
    Timeout,
    Cancelled,
    /// The memo would have grown past the check's memory budget.
    MemoryLimit,
}

/// Bytes of memo that searches may hold in all: shared by a check's partitions, and by
/// several checks when they are given the same budget (a CLI checking files in parallel).
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }
    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
    /// The most bytes held at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
    /// Takes `bytes` from the budget; false (and nothing taken) if that would pass the limit.
    fn take(&self, bytes: usize) -> bool {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = cur.checked_add(bytes).filter(|&n| n <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(c) => cur = c,
            }
        }
    }
    fn give(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// When to give up.
pub(crate) struct Limits<'a> {
    pub deadline: Option<Instant>,
    pub cancel: &'a [&'a AtomicBool],
    /// The memo's share of memory; `None`: unbounded.
    pub memory: Option<&'a MemoryBudget>,
}

impl Limits<'_> {
    pub(crate) fn stop(&self) -> Option<Outcome> {
        if self.cancel.iter().any(|c| c.load(Ordering::Relaxed)) {
            return Some(Outcome::Cancelled);
        }
        match self.deadline {
            Some(d) if Instant::now() >= d => Some(Outcome::Timeout),
            _ => None,
        }
    }
}

/// The deepest point an invalid search reached.
#[derive(Clone, Debug)]
pub(crate) struct Trace<S> {
    /// Local op indices in linearization order: the longest linearizable prefix found.
    pub prefix: Vec<usize>,
    /// The op whose completion was reached without it being linearizable.
    pub blocked: usize,
    /// The model state after `prefix`.
    pub state: S,
}

/// FxHash-style hasher: the keys are already well mixed (Zobrist hash + small ids).
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64)
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
}

pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

/// A set of linearized ops with an incrementally maintained hash.
struct Bits {
    words: Box<[u64]>,
    hash: u64,
}

/// Lowe's memo: the (linearized set, state) pairs already explored. Sets are stored in one
/// arena (no allocation per entry); the table holds (hash, arena offset, state). Growth is
/// paid for from the check's [`MemoryBudget`] before it is allocated, and allocated with
/// `try_reserve`, so a search that outgrows memory ends as [`Outcome::MemoryLimit`] instead
/// of aborting the process.
struct Memo<'a, S> {
    /// (hash, arena offset, key length, state).
    table: hashbrown::HashTable<(u64, u32, u32, S)>,
    arena: Vec<u64>,
    budget: Option<&'a MemoryBudget>,
    /// Bytes taken from the budget (returned on drop).
    taken: usize,
}

/// What an insertion found.
#[derive(PartialEq, Eq)]
enum Insert {
    New,
    Seen,
    OutOfMemory,
}

impl<S> Drop for Memo<'_, S> {
    fn drop(&mut self) {
        if let Some(b) = self.budget {
            b.give(self.taken);
        }
    }
}

impl<'a, S: Eq + Hash + Clone> Memo<'a, S> {
    fn new(budget: Option<&'a MemoryBudget>) -> Self {
        Memo {
            table: hashbrown::HashTable::new(),
            arena: Vec::new(),
            budget,
            taken: 0,
        }
    }

    /// Pays for and reserves room for one more entry of `w` words.
    fn reserve(&mut self, w: usize) -> bool {
        let entry = std::mem::size_of::<(u64, u32, u32, S)>() + 1;
        let mut bytes = 0;
        let arena_grows = self.arena.capacity() - self.arena.len() < w;
        let new_arena = if arena_grows {
            (self.arena.capacity() * 2)
                .max(self.arena.len() + w)
                .max(1024)
        } else {
            self.arena.capacity()
        };
        if arena_grows {
            bytes += (new_arena - self.arena.capacity()) * 8;
        }
        // hashbrown doubles its buckets when full (7/8 load): count the growth (the old table
        // is freed once moved).
        let table_grows = self.table.len() == self.table.capacity();
        if table_grows {
            bytes += self.table.capacity().max(16) * 8 / 7 * entry;
        }
        if bytes == 0 {
            return true;
        }
        if let Some(b) = self.budget {
            if !b.take(bytes) {
                return false;
            }
            self.taken += bytes;
        }
        if arena_grows
            && self
                .arena
                .try_reserve_exact(new_arena - self.arena.len())
                .is_err()
        {
            return false;
        }
        if table_grows
            && self
                .table
                .try_reserve(self.table.len().max(16), |e| e.0)
                .is_err()
        {
            return false;
        }
        true
    }

    /// Inserts the pair (linearized set, state): `hash` is the set's Zobrist hash and `key`
    /// its encoding (see [`Frontier`]).
    fn insert(&mut self, hash: u64, key: &[u64], s: &S) -> Insert {
        let mut hs = FxHasher(hash);
        s.hash(&mut hs);
        let h = hs.finish();
        let arena = &self.arena;
        if self
            .table
            .find(h, |(hh, off, len, st)| {
                *hh == h
                    && *len as usize == key.len()
                    && st == s
                    && arena[*off as usize..*off as usize + key.len()] == key[..]
            })
            .is_some()
        {
            return Insert::Seen;
        }
        // Offsets are u32 words: past 32 GiB of keys the memo counts as full.
        if self.arena.len() + key.len() > u32::MAX as usize || !self.reserve(key.len()) {
            return Insert::OutOfMemory;
        }
        let off = self.arena.len() as u32;
        self.arena.extend_from_slice(key);
        self.table
            .insert_unique(h, (h, off, key.len() as u32, s.clone()), |e| e.0);
        Insert::New
    }
}

/// The memo's encoding of a linearized set, bounded by the concurrency of the history rather
/// than its length.
///
/// Ops are indexed in invocation order. Let `lo` be the first op not linearized that must take
/// effect (not `info`). Every op below `lo` that is not `info` is linearized, by definition.
/// No op invoked after `lo`'s completion is linearized: the search reaches an invocation only
/// by walking past every earlier entry, and it backtracks at the completion of an op not yet
/// linearized — `lo`'s completion is such an entry (and `lo` was unlinearized whenever any op
/// now linearized was chosen: ops are linearized and undone as a stack). So the set is
/// determined by `lo`, the bits of the ops from `lo` to `last[lo]` (the last op invoked before
/// `lo` completes), and which `info` ops below `lo` are linearized. The key is those three,
/// concatenated: 1 + (concurrency)/64 words, plus for the `info` ops below `lo` a bit each or
/// the ranks of those not linearized (whichever is shorter) — instead of ops/64 words.
/// (`info` ops that nothing observes are removed before the search, and the ones observed
/// end up linearized, so the sparse form is usually empty.)
struct Frontier {
    /// Whether each op is `info` (open to +∞).
    info: Vec<bool>,
    /// For each op: the last op invoked before its completion.
    last: Vec<u32>,
    /// Each `info` op's rank among the `info` ops, by index.
    rank: Vec<u32>,
    /// Indices of the `info` ops, ascending.
    info_ops: Vec<u32>,
    /// Which `info` ops are linearized, by rank.
    ibits: Vec<u64>,
    lo: usize,
}

impl Frontier {
    /// `None` when ops are not in invocation order (then the full set is the key).
    fn new(calls: &[u64], rets: &[u64]) -> Option<Self> {
        if calls.windows(2).any(|w| w[0] > w[1]) {
            return None;
        }
        let n = calls.len();
        let info: Vec<bool> = rets.iter().map(|&r| r == u64::MAX).collect();
        let last = (0..n)
            .map(|i| (calls.partition_point(|&c| c < rets[i]).max(i + 1) - 1) as u32)
            .collect();
        let mut rank = vec![u32::MAX; n];
        let mut info_ops = Vec::new();
        for i in 0..n {
            if info[i] {
                rank[i] = info_ops.len() as u32;
                info_ops.push(i as u32);
            }
        }
        let mut f = Frontier {
            ibits: vec![0; info_ops.len().div_ceil(64)],
            info,
            last,
            rank,
            info_ops,
            lo: 0,
        };
        f.lo = (0..n).find(|&i| !f.info[i]).unwrap_or(n);
        Some(f)
    }

    /// Op `op` was linearized (`bits` already has it).
    fn linearized(&mut self, op: usize, bits: &Bits) {
        if self.info[op] {
            let r = self.rank[op] as usize;
            self.ibits[r / 64] ^= 1 << (r % 64);
        } else if op == self.lo {
            let n = self.info.len();
            while self.lo < n && (self.info[self.lo] || bits.has(self.lo)) {
                self.lo += 1;
            }
        }
    }

    /// Op `op` was undone (`bits` no longer has it).
    fn undone(&mut self, op: usize) {
        if self.info[op] {
            let r = self.rank[op] as usize;
            self.ibits[r / 64] ^= 1 << (r % 64);
        } else if op < self.lo {
            self.lo = op;
        }
    }

    /// The key of the set `bits` into `key`.
    fn key(&self, bits: &Bits, key: &mut Vec<u64>) {
        key.clear();
        let n = self.info.len();
        key.push(self.lo as u64);
        if self.lo < n {
            let (lo, hi) = (self.lo, self.last[self.lo] as usize);
            let mut at = lo;
            while at <= hi {
                let len = (hi + 1 - at).min(64);
                key.push(bits.range(at, len));
                at += len;
            }
        }
        let below = self.info_ops.partition_point(|&i| (i as usize) < self.lo);
        let full = below / 64;
        let tail = below % 64;
        let mask = (1u64 << tail).wrapping_sub(1);
        let linearized: usize = self.ibits[..full]
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum::<usize>()
            + if tail != 0 {
                (self.ibits[full] & mask).count_ones() as usize
            } else {
                0
            };
        let missing = below - linearized;
        // Dense (a bit per info op below lo) or sparse (the ranks of those not linearized,
        // two per word), whichever is shorter; the choice is a function of the set, marked in
        // the top bit of the first word.
        if missing.div_ceil(2) < below.div_ceil(64) {
            key[0] |= 1 << 63;
            let mut pending: Option<u64> = None;
            for (wi, &w) in self.ibits[..below.div_ceil(64)].iter().enumerate() {
                let mut zeros = !w;
                if wi == full {
                    zeros &= mask;
                }
                while zeros != 0 {
                    let r = (wi * 64 + zeros.trailing_zeros() as usize) as u64;
                    zeros &= zeros - 1;
                    match pending.take() {
                        None => pending = Some(r),
                        Some(a) => key.push(a | r << 32),
                    }
                }
            }
            if let Some(a) = pending {
                key.push(a | u64::MAX << 32);
            }
        } else {
            key.extend_from_slice(&self.ibits[..full]);
            if tail != 0 {
                key.push(self.ibits[full] & mask);
            }
        }
    }
}

fn zobrist(i: usize) -> u64 {
    // splitmix64 of the index: a fixed pseudo-random word per op.
    let mut z = (i as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Bits {
    fn new(n: usize) -> Self {
        Bits {
            words: vec![0; n.div_ceil(64)].into_boxed_slice(),
            hash: 0,
        }
    }
    /// `len` (1..=64) bits from bit `start`, in the low bits.
    fn range(&self, start: usize, len: usize) -> u64 {
        let (w, off) = (start / 64, start % 64);
        let mut v = self.words[w] >> off;
        if off != 0 && w + 1 < self.words.len() {
            v |= self.words[w + 1] << (64 - off);
        }
        if len < 64 {
            v &= (1u64 << len) - 1;
        }
        v
    }
    fn has(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }
    fn flip(&mut self, i: usize, z: u64) {
        self.words[i / 64] ^= 1 << (i % 64);
        self.hash ^= z;
    }
}

/// Searches for a linearization of ops with invocation positions `calls[i]` and completion
/// positions `rets[i]` (`u64::MAX` for ops open to +∞). With `trace`, an invalid result
/// comes with the deepest partial linearization reached (kept incrementally: amortized O(1)
/// per step).
pub(crate) fn search<M: SearchModel>(
    m: &M,
    calls: &[u64],
    rets: &[u64],
    limits: &Limits<'_>,
    trace: bool,
) -> (Outcome, Option<Trace<M::State>>) {
    let n = calls.len();
    if let Some(o) = limits.stop() {
        return (o, None);
    }
    if n == 0 {
        return (Outcome::Valid, None);
    }
    // Nodes: 2i = invocation of op i, 2i+1 = its completion; HEAD and TAIL sentinels.
    let head = 2 * n;
    let tail = 2 * n + 1;
    let mut order: Vec<usize> = (0..2 * n).collect();
    let key = |node: usize| -> (u64, u8, usize) {
        let op = node / 2;
        if node & 1 == 0 {
            (calls[op], 0, op)
        } else {
            (rets[op], 1, op)
        }
    };
    order.sort_unstable_by_key(|&x| key(x));
    let mut next = vec![0u32; 2 * n + 2];
    let mut prev = vec![0u32; 2 * n + 2];
    let mut last = head;
    for &x in &order {
        next[last] = x as u32;
        prev[x] = last as u32;
        last = x;
    }
    next[last] = tail as u32;
    prev[tail] = last as u32;

    // Symmetry: ops open to +∞ with identical inputs are interchangeable (swapping two of
    // them in a linearization keeps it legal: both intervals extend to +∞ and both effects
    // are the same), so they are linearized in invocation order: op i waits for `gate[i]`.
    let mut gate: Vec<Option<u32>> = vec![None; n];
    {
        let mut last: std::collections::HashMap<u64, usize> = Default::default();
        let mut by_call: Vec<usize> = (0..n).filter(|&i| rets[i] == u64::MAX).collect();
        by_call.sort_unstable_by_key(|&i| (calls[i], i));
        for i in by_call {
            if let Some(c) = m.input_class(i) {
                if let Some(j) = last.insert(c, i) {
                    gate[i] = Some(j as u32);
                }
            }
        }
    }
    let zob: Vec<u64> = (0..n).map(zobrist).collect();
    let mut bits = Bits::new(n);
    let mut cache: Memo<M::State> = Memo::new(limits.memory);
    let mut frontier = Frontier::new(calls, rets);
    let mut key: Vec<u64> = Vec::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = m.init();
    let mut best: Option<Trace<M::State>> = None;
    let mut entry = next[head] as usize;
    let mut iter: u32 = 0;
    // Length of the common prefix of `stack` and `best.prefix` (tracing only).
    let mut common: usize = 0;

    while next[head] as usize != tail {
        iter = iter.wrapping_add(1);
        if iter & 4095 == 0 {
            if let Some(o) = limits.stop() {
                return (o, None);
            }
        }
        if entry & 1 == 0 {
            let op = entry / 2;
            if gate[op].is_some_and(|j| !bits.has(j as usize)) {
                entry = next[entry] as usize;
                continue;
            }
            if let Some(ns) = m.step(&state, op) {
                bits.flip(op, zob[op]);
                let saved_lo = frontier.as_ref().map(|f| f.lo);
                match &mut frontier {
                    Some(f) => {
                        f.linearized(op, &bits);
                        f.key(&bits, &mut key);
                    }
                    None => {
                        key.clear();
                        key.extend_from_slice(&bits.words);
                    }
                }
                let inserted = cache.insert(bits.hash, &key, &ns);
                if inserted != Insert::New {
                    if let Some(f) = &mut frontier {
                        f.undone(op);
                        f.lo = saved_lo.unwrap_or(f.lo);
                    }
                }
                if inserted == Insert::OutOfMemory {
                    return (Outcome::MemoryLimit, None);
                }
                if inserted == Insert::New {
                    // Keep `common` = length of the shared prefix of the stack and the best
                    // trace, so that recording a new best copies only what changed.
                    if let Some(b) = &best {
                        if common == stack.len() && b.prefix.get(common) == Some(&op) {
                            common += 1;
                        }
                    }
                    stack.push((entry, std::mem::replace(&mut state, ns)));
                    // Lift the invocation and its completion out of the list.
                    for x in [entry, entry + 1] {
                        let (p, q) = (prev[x] as usize, next[x] as usize);
                        next[p] = q as u32;
                        prev[q] = p as u32;
                    }
                    entry = next[head] as usize;
                    continue;
                }
                bits.flip(op, zob[op]);
            }
            entry = next[entry] as usize;
        } else {
            // The completion of an `info` op: they sit after every other completion, so every
            // op that must take effect is linearized; the `info` ops left take effect "never".
            // (Models whose `info` ops are legal in every state never get here by failing a
            // step; a mutex's `acquire` is not.)
            if rets[entry / 2] == u64::MAX {
                return (Outcome::Valid, None);
            }
            if trace {
                match &mut best {
                    Some(b) if stack.len() <= b.prefix.len() => {}
                    Some(b) => {
                        b.prefix.truncate(common);
                        b.prefix.extend(stack[common..].iter().map(|(e, _)| e / 2));
                        b.blocked = entry / 2;
                        b.state = state.clone();
                        common = stack.len();
                    }
                    None => {
                        best = Some(Trace {
                            prefix: stack.iter().map(|(e, _)| e / 2).collect(),
                            blocked: entry / 2,
                            state: state.clone(),
                        });
                        common = stack.len();
                    }
                }
            }
            let Some((e, s)) = stack.pop() else {
                return (Outcome::Invalid, best);
            };
            common = common.min(stack.len());
            state = s;
            let op = e / 2;
            bits.flip(op, zob[op]);
            if let Some(f) = &mut frontier {
                f.undone(op);
            }
            // Restore in reverse order of lifting (dancing links).
            for x in [e + 1, e] {
                let (p, q) = (prev[x] as usize, next[x] as usize);
                next[p] = x as u32;
                prev[q] = x as u32;
            }
            entry = next[e] as usize;
        }
    }
    (Outcome::Valid, None)
}
