//! Deterministic simulation of Raft clusters (3 and 5 nodes) over a seeded network that drops,
//! delays, reorders and duplicates messages, with partitions, crashes (also between a step and
//! the persisting of its `Ready`) and restarts from the simulated disk. After every event the
//! five safety properties of Raft §5 (Figure 3) are checked:
//!
//! - Election Safety: at most one leader per term.
//! - Leader Append-Only: a leader never overwrites or deletes entries of its log.
//! - Log Matching: two logs with an entry of the same index and term agree up to it.
//! - Leader Completeness: an entry committed in a term is in the log of every leader of that
//!   or a later term (a commit is attributed to the term of the node that applied it, which
//!   is at least the committing leader's term).
//! - State Machine Safety: no two nodes apply different entries at one index.
//!
//! Plus linearizable ReadIndex (a read's index is at least every index applied anywhere
//! before the read was asked) and progress: after the faults end, a leader is elected and a
//! new entry is applied by every node.
//!
//! A failing seed prints itself; replay one with
//! `RAFT_SIM_SEED=<seed> cargo test -p splitbrain-node --release --test raft_sim -- --ignored --nocapture replay_one_seed`.

mod raft_common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use raft_common::{config, names, SimNode};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use splitbrain_node::raft::{CoreBugs, Entry, Index, Message, Role, Term};

#[derive(Clone, Debug)]
struct SimParams {
    nodes: usize,
    chaos_ticks: u64,
    drop: f64,
    dup: f64,
    max_delay: u64,
    p_partition: f64,
    p_crash: f64,
    p_restart: f64,
    p_crash_mid_ready: f64,
    p_propose: f64,
    p_read: f64,
    snapshot_every: u64,
    max_entries_per_msg: usize,
    max_inflight: usize,
    /// Byte caps (drawn from an RNG of their own so the other parameters of a seed stay as
    /// they were before byte-based flow control).
    max_bytes_per_msg: u64,
    max_inflight_bytes: u64,
    max_snapshot_chunk: u64,
    pre_vote: bool,
    check_quorum: bool,
    bugs: CoreBugs,
}

impl SimParams {
    fn from_seed(seed: u64, bugs: CoreBugs) -> Self {
        let mut r = StdRng::seed_from_u64(seed ^ 0x5eed_5eed);
        let mut rb = StdRng::seed_from_u64(seed ^ 0xb17e_5b17);
        SimParams {
            nodes: if r.gen_bool(0.5) { 3 } else { 5 },
            chaos_ticks: 300,
            drop: [0.0, 0.05, 0.2][r.gen_range(0..3)],
            dup: [0.0, 0.05][r.gen_range(0..2)],
            max_delay: [1, 3, 6][r.gen_range(0..3)],
            p_partition: [0.0, 0.02, 0.05][r.gen_range(0..3)],
            p_crash: [0.0, 0.01, 0.03][r.gen_range(0..3)],
            p_restart: 0.05,
            p_crash_mid_ready: [0.0, 0.002][r.gen_range(0..2)],
            p_propose: [0.1, 0.4][r.gen_range(0..2)],
            p_read: 0.1,
            snapshot_every: [0, 4, 15][r.gen_range(0..3)],
            max_entries_per_msg: [1, 3, 64][r.gen_range(0..3)],
            max_inflight: [1, 4][r.gen_range(0..2)],
            max_bytes_per_msg: [u64::MAX, 1, 12][rb.gen_range(0..3)],
            max_inflight_bytes: [u64::MAX, 1, 30][rb.gen_range(0..3)],
            max_snapshot_chunk: [u64::MAX, 64, 512][rb.gen_range(0..3)],
            pre_vote: r.gen_bool(0.75),
            check_quorum: r.gen_bool(0.75),
            bugs,
        }
    }
}

struct Sim {
    p: SimParams,
    rng: StdRng,
    now: u64,
    nodes: Vec<SimNode>,
    /// (deliver at, message)
    net: Vec<(u64, Message)>,
    /// Group of each node; messages between groups are lost.
    group: Vec<u8>,
    leaders_by_term: BTreeMap<Term, String>,
    /// The log of each node when last seen as leader, with that term.
    leader_logs: BTreeMap<usize, (Term, BTreeMap<Index, Entry>)>,
    /// Every applied entry, with the term of the node that applied it first.
    committed: BTreeMap<Index, (Entry, Term)>,
    max_applied: Index,
    /// (node, ctx) -> the lowest index the read may be served at.
    reads: BTreeMap<(usize, u64), Index>,
    next_ctx: u64,
    next_data: u64,
    events: u64,
    trace: bool,
}

type Check = Result<(), String>;

impl Sim {
    fn new(seed: u64, p: SimParams) -> Self {
        let ids = names(p.nodes);
        let mut rng = StdRng::seed_from_u64(seed);
        let nodes = ids
            .iter()
            .map(|id| {
                let mut cfg = config(id, &ids, p.bugs.clone());
                cfg.max_entries_per_msg = p.max_entries_per_msg;
                cfg.max_inflight = p.max_inflight;
                cfg.max_bytes_per_msg = p.max_bytes_per_msg;
                cfg.max_inflight_bytes = p.max_inflight_bytes;
                cfg.max_snapshot_chunk = p.max_snapshot_chunk;
                cfg.pre_vote = p.pre_vote;
                cfg.check_quorum = p.check_quorum;
                let mut n = SimNode::new(cfg, rng.gen());
                n.snapshot_every = p.snapshot_every;
                n
            })
            .collect();
        Sim {
            group: vec![0; p.nodes],
            p,
            rng,
            now: 0,
            nodes,
            net: Vec::new(),
            leaders_by_term: BTreeMap::new(),
            leader_logs: BTreeMap::new(),
            committed: BTreeMap::new(),
            max_applied: 0,
            reads: BTreeMap::new(),
            next_ctx: 1,
            next_data: 1,
            events: 0,
            trace: std::env::var("RAFT_SIM_TRACE").is_ok(),
        }
    }

    fn idx(&self, id: &str) -> usize {
        id[1..].parse::<usize>().expect("ids are n<k>") - 1
    }

    /// Persist, apply and send the node's `Ready`; maybe crash in between; then check.
    fn after_event(&mut self, i: usize, lossy: bool) -> Check {
        self.events += 1;
        if !self.nodes[i].alive() {
            return Ok(());
        }
        if lossy && self.rng.gen_bool(self.p.p_crash_mid_ready) {
            // Crash while persisting the Ready: nothing of it, or (a torn write of several
            // records) only its hard state, or only its snapshot and entries, is durable.
            // Nothing was sent or applied, so any of these must be safe.
            let node = &mut self.nodes[i];
            let mut rd = node.raw_mut().ready();
            match self.rng.gen_range(0..3) {
                0 => {}
                1 => {
                    rd.snapshot = None;
                    rd.entries.clear();
                    node.disk.persist(&rd);
                }
                _ => {
                    rd.hard_state = None;
                    node.disk.persist(&rd);
                }
            }
            node.crash();
            return Ok(());
        }
        let (msgs, rd) = self.nodes[i].handle_ready();
        if let Some(s) = &rd.snapshot {
            let sm = self.nodes[i].sm.clone();
            for e in sm.iter().take(s.index as usize) {
                self.record_commit(i, e)?;
            }
        }
        for e in &rd.committed {
            self.record_commit(i, e)?;
        }
        self.max_applied = self.max_applied.max(self.nodes[i].sm.len() as u64);
        for rs in &rd.read_states {
            if let Some(min) = self.reads.remove(&(i, rs.ctx)) {
                if rs.index < min {
                    return Err(format!(
                        "ReadIndex: n{} served read {} at index {} but index {} was applied \
                         before the read arrived",
                        i + 1,
                        rs.ctx,
                        rs.index,
                        min
                    ));
                }
            } else {
                return Err(format!(
                    "ReadIndex: n{} answered unknown read {}",
                    i + 1,
                    rs.ctx
                ));
            }
        }
        if lossy && self.rng.gen_bool(self.p.p_crash_mid_ready) {
            // Crash after persisting, before sending.
            self.nodes[i].crash();
            return Ok(());
        }
        for m in msgs {
            if lossy && self.rng.gen_bool(self.p.drop) {
                continue;
            }
            let copies = if lossy && self.rng.gen_bool(self.p.dup) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let d = self.rng.gen_range(0..=self.p.max_delay);
                self.net.push((self.now + d, m.clone()));
            }
        }
        self.check_node(i)
    }

    fn record_commit(&mut self, i: usize, e: &Entry) -> Check {
        let term = self.nodes[i].term();
        match self.committed.get(&e.index) {
            Some((c, _)) if c != e => {
                return Err(format!(
                    "State Machine Safety: n{} applied {:?} at index {} but {:?} was applied \
                     there before",
                    i + 1,
                    e,
                    e.index,
                    c
                ))
            }
            Some(_) => return Ok(()),
            None => {
                self.committed.insert(e.index, (e.clone(), term));
            }
        }
        // Every current leader of this or a later term must hold it.
        for j in 0..self.nodes.len() {
            if self.nodes[j].role() == Some(Role::Leader) && self.nodes[j].term() >= term {
                self.check_has(j, e, term)?;
            }
        }
        Ok(())
    }

    fn check_has(&self, j: usize, e: &Entry, commit_term: Term) -> Check {
        let n = &self.nodes[j];
        let raw = n.raw();
        let (snap, _) = raw.snapshot_meta();
        let have = if e.index <= snap {
            n.sm.get(e.index as usize - 1).cloned()
        } else {
            raw.entries().get((e.index - snap - 1) as usize).cloned()
        };
        if have.as_ref() != Some(e) {
            return Err(format!(
                "Leader Completeness: n{} is leader of term {} without entry {:?} committed by \
                 term {} (it has {:?})",
                j + 1,
                n.term(),
                e,
                commit_term,
                have
            ));
        }
        Ok(())
    }

    fn check_node(&mut self, i: usize) -> Check {
        let n = &self.nodes[i];
        let Some(raw) = &n.node else { return Ok(()) };
        let st = raw.status();
        let view = n.log_view();
        if st.role == Role::Leader {
            // Election Safety
            let id = n.id.clone();
            match self.leaders_by_term.get(&st.term) {
                Some(other) if *other != id => {
                    return Err(format!(
                        "Election Safety: {} and {} are both leaders of term {}",
                        other, id, st.term
                    ))
                }
                Some(_) => {}
                None => {
                    self.leaders_by_term.insert(st.term, id);
                    // A new leader: Leader Completeness against everything committed so far.
                    let all: Vec<(Entry, Term)> = self.committed.values().cloned().collect();
                    for (e, t) in all {
                        if t <= st.term {
                            self.check_has(i, &e, t)?;
                        }
                    }
                }
            }
            // Leader Append-Only
            if let Some((t, old)) = self.leader_logs.get(&i) {
                if *t == st.term {
                    for (idx, e) in old {
                        if let Some(now) = view.get(idx) {
                            if now != e {
                                return Err(format!(
                                    "Leader Append-Only: leader n{} of term {} replaced {:?} \
                                     with {:?}",
                                    i + 1,
                                    t,
                                    e,
                                    now
                                ));
                            }
                        } else if *idx > st.snapshot_index {
                            return Err(format!(
                                "Leader Append-Only: leader n{} of term {} lost entry {}",
                                i + 1,
                                t,
                                idx
                            ));
                        }
                    }
                }
            }
            self.leader_logs.insert(i, (st.term, view.clone()));
        }
        // Log Matching against every other live node.
        for j in 0..self.nodes.len() {
            if j == i || !self.nodes[j].alive() {
                continue;
            }
            let other = self.nodes[j].log_view();
            log_matching(&view, &other)
                .map_err(|e| format!("Log Matching between n{} and n{}: {e}", i + 1, j + 1))?;
        }
        Ok(())
    }

    fn deliver_due(&mut self, lossy: bool) -> Check {
        let now = self.now;
        let mut due: Vec<Message> = Vec::new();
        self.net.retain(|(t, m)| {
            if *t <= now {
                due.push(m.clone());
                false
            } else {
                true
            }
        });
        due.shuffle(&mut self.rng);
        for m in due {
            let (f, t) = (self.idx(&m.from), self.idx(&m.to));
            if self.group[f] != self.group[t] || !self.nodes[t].alive() {
                continue;
            }
            if self.trace {
                eprintln!("t={} deliver {:?}", self.now, m);
            }
            self.nodes[t].raw_mut().step(m);
            self.after_event(t, lossy)?;
        }
        Ok(())
    }

    fn tick_all(&mut self, lossy: bool) -> Check {
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        order.shuffle(&mut self.rng);
        for i in order {
            if self.nodes[i].alive() {
                self.nodes[i].raw_mut().tick();
                self.after_event(i, lossy)?;
            }
        }
        Ok(())
    }

    fn leaders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].role() == Some(Role::Leader))
            .collect()
    }

    fn faults(&mut self) {
        let n = self.nodes.len();
        if self.rng.gen_bool(self.p.p_partition) {
            match self.rng.gen_range(0..3) {
                0 => self.group = vec![0; n],
                1 => {
                    let k = self.rng.gen_range(0..n);
                    self.group = (0..n).map(|i| u8::from(i == k)).collect();
                }
                _ => {
                    self.group = (0..n).map(|_| self.rng.gen_range(0..2)).collect();
                }
            }
            if self.trace {
                eprintln!("t={} partition {:?}", self.now, self.group);
            }
        }
        if self.rng.gen_bool(self.p.p_crash) {
            let i = self.rng.gen_range(0..n);
            if self.trace {
                eprintln!("t={} crash n{}", self.now, i + 1);
            }
            self.nodes[i].crash();
        }
        if self.rng.gen_bool(self.p.p_restart) {
            let dead: Vec<usize> = (0..n).filter(|&i| !self.nodes[i].alive()).collect();
            if let Some(&i) = dead.choose(&mut self.rng) {
                self.restart(i);
            }
        }
    }

    fn restart(&mut self, i: usize) {
        if self.trace {
            eprintln!("t={} restart n{}", self.now, i + 1);
        }
        let seed = self.rng.gen();
        self.nodes[i].restart(seed);
        self.leader_logs.remove(&i);
    }

    fn clients(&mut self) -> Check {
        for l in self.leaders() {
            if self.rng.gen_bool(self.p.p_propose) {
                let d = self.next_data.to_le_bytes().to_vec();
                self.next_data += 1;
                self.nodes[l]
                    .raw_mut()
                    .propose(d)
                    .expect("a leader accepts proposals");
                self.after_event(l, true)?;
            }
            if self.nodes[l].alive() && self.rng.gen_bool(self.p.p_read) {
                let ctx = self.next_ctx;
                self.next_ctx += 1;
                self.nodes[l]
                    .raw_mut()
                    .read_index(ctx)
                    .expect("a leader accepts reads");
                self.reads.insert((l, ctx), self.max_applied);
                self.after_event(l, true)?;
            }
        }
        Ok(())
    }

    fn run(&mut self) -> Result<SimStats, String> {
        // Chaos.
        while self.now < self.p.chaos_ticks {
            self.now += 1;
            self.faults();
            self.clients()?;
            self.tick_all(true)?;
            self.deliver_due(true)?;
        }
        // Heal: everything up, no partitions, no loss.
        self.group = vec![0; self.nodes.len()];
        for i in 0..self.nodes.len() {
            if !self.nodes[i].alive() {
                self.restart(i);
            }
        }
        let healed_at = self.now;
        let mut marker: Option<Vec<u8>> = None;
        let mut marker_at = 0;
        loop {
            self.now += 1;
            if self.now > healed_at + 1500 {
                return Err(format!(
                    "Progress: no entry committed on every node within 1500 ticks after \
                     healing (leaders {:?}, terms {:?})",
                    self.leaders(),
                    self.nodes.iter().map(|n| n.term()).collect::<Vec<_>>()
                ));
            }
            if let Some(&l) = self.leaders().first() {
                if marker.is_none() || self.now > marker_at + 100 {
                    let d = format!("marker-{}", self.now).into_bytes();
                    if self.nodes[l].raw_mut().propose(d.clone()).is_ok() {
                        marker = Some(d);
                        marker_at = self.now;
                        self.after_event(l, false)?;
                    }
                }
            }
            self.tick_all(false)?;
            self.deliver_due(false)?;
            let done = self
                .nodes
                .iter()
                .all(|n| n.sm.iter().any(|e| e.data.starts_with(b"marker-")));
            if done {
                return Ok(SimStats {
                    committed: self.committed.len() as u64,
                    events: self.events,
                    recovery_ticks: self.now - healed_at,
                });
            }
        }
    }
}

/// Log Matching on two views (index -> entry): if both have an entry with the same index and
/// term, every common earlier entry is identical.
fn log_matching(a: &BTreeMap<Index, Entry>, b: &BTreeMap<Index, Entry>) -> Check {
    let mut matched = false;
    for (idx, ea) in a.iter().rev() {
        let Some(eb) = b.get(idx) else { continue };
        if matched || ea.term == eb.term {
            matched = true;
            if ea != eb {
                return Err(format!(
                    "entries {ea:?} and {eb:?} differ below a matching one"
                ));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct SimStats {
    committed: u64,
    events: u64,
    recovery_ticks: u64,
}

fn run_seed(seed: u64, bugs: CoreBugs) -> Result<SimStats, String> {
    run_params(seed, SimParams::from_seed(seed, bugs))
}

fn run_params(seed: u64, p: SimParams) -> Result<SimStats, String> {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut sim = Sim::new(seed, p.clone());
        sim.run().map_err(|e| format!("at tick {}: {e}", sim.now))
    }));
    match r {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("core panicked: {msg}"))
        }
    }
}

fn replay_hint(seed: u64) -> String {
    format!(
        "replay: RAFT_SIM_SEED={seed} cargo test -p splitbrain-node --release --test raft_sim \
         -- --ignored --nocapture replay_one_seed"
    )
}

fn run_seeds(seeds: std::ops::Range<u64>) {
    let (mut committed, mut events, mut worst_recovery) = (0, 0, 0);
    for seed in seeds.clone() {
        match run_seed(seed, CoreBugs::default()) {
            Ok(s) => {
                committed += s.committed;
                events += s.events;
                worst_recovery = worst_recovery.max(s.recovery_ticks);
            }
            Err(e) => panic!(
                "raft_sim seed {seed} ({:?}) violated: {e}\n{}",
                SimParams::from_seed(seed, CoreBugs::default()),
                replay_hint(seed)
            ),
        }
    }
    eprintln!(
        "raft_sim: {} seeds, {events} events checked, {committed} entries committed, slowest \
         recovery after healing {worst_recovery} ticks",
        seeds.end - seeds.start
    );
    assert!(
        committed > (seeds.end - seeds.start) * 10,
        "the simulation commits entries (got {committed} over {} seeds)",
        seeds.end - seeds.start
    );
}

fn seed_count(default: u64) -> u64 {
    std::env::var("RAFT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn simulated_clusters_keep_raft_safety_and_recover_after_faults() {
    // Debug builds are ~20x slower; the CI runs this in release.
    let n = seed_count(if cfg!(debug_assertions) { 100 } else { 2000 });
    run_seeds(0..n);
}

#[test]
#[ignore]
fn simulated_clusters_keep_raft_safety_extended() {
    let n = seed_count(50_000);
    run_seeds(1_000_000..1_000_000 + n);
}

#[test]
#[ignore]
fn replay_one_seed() {
    let seed: u64 = std::env::var("RAFT_SIM_SEED")
        .expect("set RAFT_SIM_SEED")
        .parse()
        .expect("RAFT_SIM_SEED is a number");
    let bugs = CoreBugs {
        vote_any_log: std::env::var("RAFT_SIM_BUG").as_deref() == Ok("vote-any-log"),
        commit_old_term: std::env::var("RAFT_SIM_BUG").as_deref() == Ok("commit-old-term"),
        no_truncate_check: std::env::var("RAFT_SIM_BUG").as_deref() == Ok("no-truncate-check"),
    };
    eprintln!("{:?}", SimParams::from_seed(seed, bugs.clone()));
    match run_seed(seed, bugs) {
        Ok(s) => eprintln!("seed {seed} ok: {s:?}"),
        Err(e) => panic!("seed {seed} violated: {e}"),
    }
}

/// The simulation is only worth something if it catches real bugs: with a known bug on, some
/// seed must violate a safety property (a stuck cluster does not count).
fn find_violation(bugs: CoreBugs, max_seeds: u64) -> Option<(u64, String)> {
    (0..max_seeds).find_map(|seed| {
        run_seed(seed, bugs.clone())
            .err()
            .filter(|e| !e.contains("Progress:"))
            .map(|e| (seed, e))
    })
}

#[test]
fn simulation_catches_vote_any_log_bug() {
    let bugs = CoreBugs {
        vote_any_log: true,
        ..CoreBugs::default()
    };
    let (seed, e) =
        find_violation(bugs, 1000).expect("vote-any-log must break a safety property on some seed");
    eprintln!("vote-any-log: seed {seed}: {e}");
}

#[test]
fn simulation_catches_no_truncate_check_bug() {
    let bugs = CoreBugs {
        no_truncate_check: true,
        ..CoreBugs::default()
    };
    let (seed, e) = find_violation(bugs, 1000)
        .expect("no-truncate-check must break a safety property on some seed");
    eprintln!("no-truncate-check: seed {seed}: {e}");
}
