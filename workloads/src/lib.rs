//! Workloads: what Splitbrain's clients do, each bound to its checker model.
//!
//! A workload turns the run's seed into one deterministic stream of operations per worker
//! ([`WorkerGen`]): the same seed, workload and concurrency give every worker the same
//! sequence of operations, whatever the timing of the run. Which worker's operation lands
//! first still depends on timing; what each worker asks for does not.
//!
//! # Layout
//! - [`WorkloadKind::Register`]: one register, reads and writes (model `register`).
//! - [`WorkloadKind::CasRegister`]: one register, reads, writes and compare-and-set
//!   (model `cas-register`, initial value absent).
//! - [`WorkloadKind::Kv`]: independent cas-registers (model `kv`). Workers are split into groups
//!   of at most [`KV_GROUP_SIZE`]; each group works on one key at a time, `ops_per_key`
//!   operations in all on that key, then moves to a fresh key (group `g` of `G` uses keys
//!   `k{g}`, `k{g+G}`, `k{g+2G}`, …), as Jepsen's `independent/concurrent-generator`.
//!
//! Values are small integers (`0..VALUE_RANGE`), as in Jepsen's etcd test, so that a cas
//! often finds the value it expects. With [`WorkerGen::set_unique_writes`] (`--unique-writes`)
//! every write writes a value no other write uses: a value read twice around another write is
//! then proof that one write took effect twice (what a broken request-id dedup does), where
//! with small values another write of the same value could explain it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use splitbrain_checker::ModelKind;

/// Written values and cas arguments are drawn from `0..VALUE_RANGE`.
pub const VALUE_RANGE: i64 = 5;
/// The most workers that share one key of the `kv` workload.
pub const KV_GROUP_SIZE: usize = 5;
/// The key the single-register workloads use on the wire (absent from their histories).
pub const REGISTER_KEY: &str = "register";

/// A workload, by its `--workload` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    Register,
    CasRegister,
    Kv,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::Register,
        WorkloadKind::CasRegister,
        WorkloadKind::Kv,
    ];

    /// The `--workload` name.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::CasRegister => "cas-register",
            WorkloadKind::Kv => "kv",
        }
    }

    /// Parses a `--workload` name.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                format!("unknown workload {s:?}; expected one of: register, cas-register, kv")
            })
    }

    /// The checker model its histories are checked against.
    pub fn model(self) -> ModelKind {
        match self {
            WorkloadKind::Register => ModelKind::Register,
            WorkloadKind::CasRegister => ModelKind::CasRegister,
            WorkloadKind::Kv => ModelKind::Kv,
        }
    }

    /// True if histories carry a `key` per operation.
    pub fn keyed(self) -> bool {
        matches!(self, WorkloadKind::Kv)
    }
}

/// The function of an operation, as in the history's `f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum F {
    Read,
    Write,
    Cas,
}

impl F {
    pub fn name(self) -> &'static str {
        match self {
            F::Read => "read",
            F::Write => "write",
            F::Cas => "cas",
        }
    }
}

/// One operation a worker asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub f: F,
    /// The key on the wire (always set; for single-register workloads [`REGISTER_KEY`]).
    pub key: String,
    /// `write` → `Some((v, v))`'s first; `cas` → `(from, to)`; `read` → `None`.
    pub arg: Option<(i64, i64)>,
}

impl Op {
    /// The invocation's value in the history: `null` for reads, `v` for writes, `[from, to]`
    /// for cas.
    pub fn invoke_value(&self) -> serde_json::Value {
        match (self.f, self.arg) {
            (F::Write, Some((v, _))) => serde_json::json!(v),
            (F::Cas, Some((a, b))) => serde_json::json!([a, b]),
            _ => serde_json::Value::Null,
        }
    }
}

/// The deterministic operation stream of one worker.
#[derive(Debug, Clone)]
pub struct WorkerGen {
    kind: WorkloadKind,
    rng: StdRng,
    /// Keys of this worker's group: `key_base + n * key_stride`.
    key_base: u64,
    key_stride: u64,
    /// Operations this worker performs on each key before moving on.
    ops_per_worker_key: u64,
    /// Operations done on the current key, and the current key's index (`n`).
    done_on_key: u64,
    key_n: u64,
    /// `--unique-writes`: this worker's writes write `base + seq` (see `set_unique_writes`).
    unique: Option<UniqueWrites>,
}

/// Where a worker's unique write values come from.
#[derive(Debug, Clone, Copy)]
struct UniqueWrites {
    base: i64,
    seq: i64,
}

/// Unique write values of worker `w` start at `(w + 1) × UNIQUE_STRIDE`, above `VALUE_RANGE`.
pub const UNIQUE_STRIDE: i64 = 1_000_000_000;

/// Derives a sub-seed, so that workers' and the nemesis's streams are independent.
pub fn sub_seed(seed: u64, stream: u64) -> u64 {
    // splitmix64 of seed ^ stream: distinct streams get unrelated seeds.
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One generator per worker (`0..concurrency`) for `kind`, seeded from `seed`.
pub fn worker_generators(
    kind: WorkloadKind,
    concurrency: usize,
    ops_per_key: u64,
    seed: u64,
) -> Vec<WorkerGen> {
    let concurrency = concurrency.max(1);
    let groups = concurrency.div_ceil(KV_GROUP_SIZE) as u64;
    (0..concurrency)
        .map(|w| {
            let group = w as u64 % groups;
            let group_size = (0..concurrency as u64)
                .filter(|x| x % groups == group)
                .count() as u64;
            WorkerGen {
                kind,
                rng: StdRng::seed_from_u64(sub_seed(seed, 1 + w as u64)),
                key_base: group,
                key_stride: groups,
                ops_per_worker_key: ops_per_key.max(1).div_ceil(group_size).max(1),
                done_on_key: 0,
                key_n: 0,
                unique: None,
            }
        })
        .collect()
}

impl WorkerGen {
    /// The key this worker is on now (the wire key).
    pub fn current_key(&self) -> String {
        match self.kind {
            WorkloadKind::Kv => format!("k{}", self.key_base + self.key_n * self.key_stride),
            _ => REGISTER_KEY.to_string(),
        }
    }

    /// Every key this worker has used so far (including the current one if it started it).
    pub fn keys_used(&self) -> Vec<String> {
        match self.kind {
            WorkloadKind::Kv => {
                let last = if self.done_on_key > 0 {
                    self.key_n + 1
                } else {
                    self.key_n
                };
                (0..last)
                    .map(|n| format!("k{}", self.key_base + n * self.key_stride))
                    .collect()
            }
            _ if self.done_on_key > 0 || self.key_n > 0 => vec![REGISTER_KEY.to_string()],
            _ => vec![],
        }
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
        if self.kind == WorkloadKind::Kv && self.done_on_key >= self.ops_per_worker_key {
            self.key_n += 1;
            self.done_on_key = 0;
        }
        let key = self.current_key();
        self.done_on_key += 1;
        let choices = if self.kind == WorkloadKind::Register {
            2
        } else {
            3
        };
        let (f, arg) = match self.rng.gen_range(0..choices) {
            0 => (F::Read, None),
            1 => {
                let mut v = self.rng.gen_range(0..VALUE_RANGE);
                if let Some(u) = &mut self.unique {
                    v = u.base + u.seq;
                    u.seq += 1;
                }
                (F::Write, Some((v, v)))
            }
            _ => {
                let a = self.rng.gen_range(0..VALUE_RANGE);
                let b = self.rng.gen_range(0..VALUE_RANGE);
                (F::Cas, Some((a, b)))
            }
        };
        Op { f, key, arg }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                (p.f, &p.key),
                (u.f, &u.key),
                "same schedule of functions and keys"
            );
            if u.f == F::Write {
                writes += 1;
                let v = u.arg.unwrap().0;
                assert!(
                    v >= VALUE_RANGE,
                    "unique values stay clear of cas arguments: {v}"
                );
                assert!(seen.insert(v), "value {v} written twice");
            } else {
                assert_eq!(p.arg, u.arg, "reads and cas are unchanged");
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
        for kind in WorkloadKind::ALL {
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
                *counts.entry(g.next_op().key).or_default() += 1;
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
            assert_ne!(op.f, F::Cas);
            assert_eq!(op.key, REGISTER_KEY);
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

    #[test]
    fn parses_workload_names_and_rejects_others() {
        assert_eq!(
            WorkloadKind::parse("cas-register"),
            Ok(WorkloadKind::CasRegister)
        );
        assert!(WorkloadKind::parse("queue")
            .unwrap_err()
            .contains("register, cas-register, kv"));
    }
}
