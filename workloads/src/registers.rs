//! The integer-register workloads: `register` (reads and writes of one register, model
//! `register`), `cas-register` (reads, writes and compare-and-set of one register, model
//! `cas-register`, initial value absent) and `kv` (independent cas-registers, model `kv`).
//!
//! Values are small integers (`0..VALUE_RANGE`), as in Jepsen's etcd test, so that a cas
//! often finds the value it expects. With `--unique-writes` every write writes a value no
//! other write uses: a value read twice around another write is then proof that one write took
//! effect twice (what a broken request-id dedup does), where with small values another write
//! of the same value could explain it.

use crate::seeds::{Seeds, Stream};
use crate::{
    register_completion, register_invocation_value, Completion, Generator, Op, Outcome, Reply,
    Workload, WorkloadKind, REGISTER_KEY,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use splitbrain_checker::ModelKind;

/// Written values and cas arguments are drawn from `0..VALUE_RANGE`.
pub const VALUE_RANGE: i64 = 5;
/// The most workers that share one key of a keyed workload.
pub const KV_GROUP_SIZE: usize = 5;
/// Unique write values of worker `w` start at `(w + 1) × UNIQUE_STRIDE`, above `VALUE_RANGE`.
pub const UNIQUE_STRIDE: i64 = 1_000_000_000;

/// One of the three register workloads.
#[derive(Debug, Clone, Copy)]
pub struct Registers {
    kind: WorkloadKind,
}

pub const REGISTER: Registers = Registers {
    kind: WorkloadKind::Register,
};
pub const CAS_REGISTER: Registers = Registers {
    kind: WorkloadKind::CasRegister,
};
pub const KV: Registers = Registers {
    kind: WorkloadKind::Kv,
};

impl Workload for Registers {
    fn name(&self) -> &'static str {
        match self.kind {
            WorkloadKind::Register => "register",
            WorkloadKind::CasRegister => "cas-register",
            _ => "kv",
        }
    }
    fn model(&self) -> ModelKind {
        match self.kind {
            WorkloadKind::Register => ModelKind::Register,
            WorkloadKind::CasRegister => ModelKind::CasRegister,
            _ => ModelKind::Kv,
        }
    }
    fn keyed(&self) -> bool {
        self.kind == WorkloadKind::Kv
    }
    fn generators(
        &self,
        concurrency: usize,
        ops_per_key: u64,
        seed: u64,
        unique_writes: bool,
    ) -> Vec<Box<dyn Generator>> {
        let mut gens = worker_generators(self.kind, concurrency, ops_per_key, seed);
        if unique_writes {
            for (w, g) in gens.iter_mut().enumerate() {
                g.set_unique_writes(w);
            }
        }
        gens.into_iter()
            .map(|g| Box::new(g) as Box<dyn Generator>)
            .collect()
    }
    fn invocation_value(&self, op: &Op) -> serde_json::Value {
        register_invocation_value(op)
    }
    fn completion(&self, op: &Op, outcome: Outcome<Reply>) -> Completion {
        register_completion(op, outcome)
    }
}

/// Which key a worker is on: keyed workloads move to a fresh key after their share of
/// `ops_per_key`; the others always use [`REGISTER_KEY`].
#[derive(Debug, Clone)]
pub struct Keys {
    keyed: bool,
    /// Keys of this worker's group: `k{key_base + n * key_stride}`.
    key_base: u64,
    key_stride: u64,
    /// Operations this worker performs on each key before moving on.
    ops_per_worker_key: u64,
    /// Operations done on the current key, and the current key's index (`n`).
    done_on_key: u64,
    key_n: u64,
}

impl Keys {
    /// The keys of worker `w` of `concurrency` (see the crate docs on groups).
    pub fn for_worker(w: usize, concurrency: usize, ops_per_key: u64, keyed: bool) -> Keys {
        let concurrency = concurrency.max(1);
        let groups = concurrency.div_ceil(KV_GROUP_SIZE) as u64;
        let group = w as u64 % groups;
        let group_size = (0..concurrency as u64)
            .filter(|x| x % groups == group)
            .count() as u64;
        Keys {
            keyed,
            key_base: group,
            key_stride: groups,
            ops_per_worker_key: ops_per_key.max(1).div_ceil(group_size).max(1),
            done_on_key: 0,
            key_n: 0,
        }
    }

    fn key(&self, n: u64) -> String {
        format!("k{}", self.key_base + n * self.key_stride)
    }

    /// The key this worker is on now (the wire key).
    pub fn current(&self) -> String {
        if self.keyed {
            self.key(self.key_n)
        } else {
            REGISTER_KEY.to_string()
        }
    }

    /// The key of the next operation (moving on when the current key is done).
    pub fn next_key(&mut self) -> String {
        if self.keyed && self.done_on_key >= self.ops_per_worker_key {
            self.key_n += 1;
            self.done_on_key = 0;
        }
        self.done_on_key += 1;
        self.current()
    }

    /// Every key used so far (including the current one if it started it).
    pub fn used(&self) -> Vec<String> {
        if self.keyed {
            let last = if self.done_on_key > 0 {
                self.key_n + 1
            } else {
                self.key_n
            };
            (0..last).map(|n| self.key(n)).collect()
        } else if self.done_on_key > 0 || self.key_n > 0 {
            vec![REGISTER_KEY.to_string()]
        } else {
            vec![]
        }
    }
}

/// The deterministic operation stream of one worker of a register workload.
#[derive(Debug, Clone)]
pub struct WorkerGen {
    kind: WorkloadKind,
    rng: StdRng,
    keys: Keys,
    /// `--unique-writes`: this worker's writes write `base + seq` (see `set_unique_writes`).
    unique: Option<UniqueWrites>,
}

/// Where a worker's unique write values come from.
#[derive(Debug, Clone, Copy)]
struct UniqueWrites {
    base: i64,
    seq: i64,
}

/// One generator per worker (`0..concurrency`) for `kind`, seeded from `seed`.
pub fn worker_generators(
    kind: WorkloadKind,
    concurrency: usize,
    ops_per_key: u64,
    seed: u64,
) -> Vec<WorkerGen> {
    let concurrency = concurrency.max(1);
    (0..concurrency)
        .map(|w| WorkerGen {
            kind,
            rng: StdRng::seed_from_u64(Seeds::new(seed).of(Stream::Worker(w))),
            keys: Keys::for_worker(w, concurrency, ops_per_key, kind == WorkloadKind::Kv),
            unique: None,
        })
        .collect()
}

impl WorkerGen {
    /// The key this worker is on now (the wire key).
    pub fn current_key(&self) -> String {
        self.keys.current()
    }

    /// Every key this worker has used so far (including the current one if it started it).
    pub fn keys_used(&self) -> Vec<String> {
        self.keys.used()
    }

    /// From now on, every write of this worker (`worker`: its index in `worker_generators`)
    /// writes a value that no write of any other worker, nor an earlier one of its own, writes.
    /// The random stream is unchanged, so the schedule of ops is the same as without it.
    pub fn set_unique_writes(&mut self, worker: usize) {
        self.unique = Some(UniqueWrites {
            base: (worker as i64 + 1) * UNIQUE_STRIDE,
            seq: 0,
        });
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Op {
        let key = self.keys.next_key();
        let choices = if self.kind == WorkloadKind::Register {
            2
        } else {
            3
        };
        match self.rng.gen_range(0..choices) {
            0 => Op::Read { key },
            1 => {
                let mut value = self.rng.gen_range(0..VALUE_RANGE);
                if let Some(u) = &mut self.unique {
                    value = u.base + u.seq;
                    u.seq += 1;
                }
                Op::Write { key, value }
            }
            _ => {
                let from = self.rng.gen_range(0..VALUE_RANGE);
                let to = self.rng.gen_range(0..VALUE_RANGE);
                Op::Cas { key, from, to }
            }
        }
    }
}

impl Generator for WorkerGen {
    fn next_op(&mut self) -> Op {
        WorkerGen::next_op(self)
    }
    fn keys_used(&self) -> Vec<String> {
        WorkerGen::keys_used(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::F;

    fn written(op: &Op) -> i64 {
        match op {
            Op::Write { value, .. } => *value,
            other => panic!("not a write: {other:?}"),
        }
    }

    #[test]
    fn unique_writes_never_repeat_a_value_and_keep_the_schedule() {
        let plain: Vec<Vec<Op>> = stream(WorkloadKind::Kv, 7);
        let mut gens = worker_generators(WorkloadKind::Kv, 10, 100, 7);
        for (w, g) in gens.iter_mut().enumerate() {
            g.set_unique_writes(w);
        }
        let unique: Vec<Vec<Op>> = gens
            .into_iter()
            .map(|mut g| (0..200).map(|_| g.next_op()).collect())
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut writes = 0;
        for (p, u) in plain.iter().flatten().zip(unique.iter().flatten()) {
            assert_eq!(
                (p.f(), p.key()),
                (u.f(), u.key()),
                "same schedule of functions and keys"
            );
            if u.f() == F::Write {
                writes += 1;
                let v = written(u);
                assert!(
                    v >= VALUE_RANGE,
                    "unique values stay clear of cas arguments: {v}"
                );
                assert!(seen.insert(v), "value {v} written twice");
            } else {
                assert_eq!(p, u, "reads and cas are unchanged");
            }
        }
        assert!(writes > 100, "the stream has writes to check ({writes})");
    }

    fn stream(kind: WorkloadKind, seed: u64) -> Vec<Vec<Op>> {
        worker_generators(kind, 10, 100, seed)
            .into_iter()
            .map(|mut g| (0..200).map(|_| g.next_op()).collect())
            .collect()
    }

    #[test]
    fn same_seed_gives_every_worker_the_same_operations() {
        for kind in [
            WorkloadKind::Register,
            WorkloadKind::CasRegister,
            WorkloadKind::Kv,
        ] {
            assert_eq!(stream(kind, 42), stream(kind, 42));
            assert_ne!(stream(kind, 42), stream(kind, 43));
        }
    }

    #[test]
    fn kv_groups_share_keys_and_move_on_after_ops_per_key() {
        let gens = worker_generators(WorkloadKind::Kv, 10, 100, 1);
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        for mut g in gens {
            for _ in 0..60 {
                *counts.entry(g.next_op().key().to_string()).or_default() += 1;
            }
        }
        // 2 groups of 5 workers, 20 ops per worker per key, 60 ops each → 3 keys per group.
        assert_eq!(counts.len(), 6, "{counts:?}");
        assert!(counts.values().all(|&c| c == 100), "{counts:?}");
        assert!(counts.contains_key("k0") && counts.contains_key("k5"));
    }

    #[test]
    fn register_workload_never_casts_and_uses_one_key() {
        let mut g = worker_generators(WorkloadKind::Register, 1, 10, 5).remove(0);
        for _ in 0..500 {
            let op = g.next_op();
            assert_ne!(op.f(), F::Cas);
            assert_eq!(op.key(), REGISTER_KEY);
        }
        assert_eq!(g.keys_used(), vec![REGISTER_KEY.to_string()]);
    }

    #[test]
    fn keys_used_lists_every_started_key() {
        let mut g = worker_generators(WorkloadKind::Kv, 1, 3, 9).remove(0);
        assert!(g.keys_used().is_empty());
        for _ in 0..4 {
            g.next_op();
        }
        assert_eq!(g.keys_used(), vec!["k0".to_string(), "k1".to_string()]);
    }
}
