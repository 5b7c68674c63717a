//! Test support for the Raft core: a model of the caller (a simulated disk that holds what
//! each `Ready` asked to persist, a state machine that records applied entries) and a
//! cluster with a controllable network.
//!
//! The state machine is the list of applied entries; a snapshot's data is that list as JSON,
//! so installing a snapshot restores exactly what was applied up to its index.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::SeedableRng;
use splitbrain_node::raft::{
    Config, CoreBugs, Entry, HardState, Index, Message, Persisted, RawNode, ReadState, Ready, Role,
    Snapshot, Term,
};

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Disk {
    /// Carries out duties 1 and 2 of a `Ready`.
    pub fn persist(&mut self, rd: &Ready) {
        if let Some(s) = &rd.snapshot {
            self.snapshot = Some(s.clone());
            self.entries.clear();
        }
        if let Some(first) = rd.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(rd.entries.iter().cloned());
        }
        if let Some(hs) = &rd.hard_state {
            self.hard_state = hs.clone();
        }
    }

    pub fn persisted(&self) -> Persisted {
        Persisted {
            hard_state: self.hard_state.clone(),
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }

    pub fn compact(&mut self, snap: Snapshot) {
        self.entries.retain(|e| e.index > snap.index);
        self.snapshot = Some(snap);
    }
}

pub fn config(id: &str, all: &[String], bugs: CoreBugs) -> Config {
    Config {
        id: id.to_string(),
        peers: all.iter().filter(|p| *p != id).cloned().collect(),
        election_ticks_min: 10,
        election_ticks_max: 20,
        heartbeat_ticks: 2,
        pre_vote: true,
        check_quorum: true,
        max_inflight: 4,
        max_entries_per_msg: 8,
        max_bytes_per_msg: u64::MAX,
        max_inflight_bytes: u64::MAX,
        max_snapshot_chunk: u64::MAX,
        bugs,
    }
}

pub struct SimNode {
    pub id: String,
    pub cfg: Config,
    /// `None` while crashed.
    pub node: Option<RawNode>,
    pub disk: Disk,
    /// Applied entries; `sm[i]` has index `i + 1`.
    pub sm: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    /// Compact the log every this many applied entries (0 = never).
    pub snapshot_every: u64,
}

impl SimNode {
    pub fn new(cfg: Config, seed: u64) -> Self {
        let node = RawNode::new(
            cfg.clone(),
            Persisted::default(),
            StdRng::seed_from_u64(seed),
        );
        SimNode {
            id: cfg.id.clone(),
            cfg,
            node: Some(node),
            disk: Disk::default(),
            sm: Vec::new(),
            read_states: Vec::new(),
            snapshot_every: 0,
        }
    }

    pub fn alive(&self) -> bool {
        self.node.is_some()
    }

    pub fn raw(&self) -> &RawNode {
        self.node.as_ref().expect("node is alive")
    }

    pub fn raw_mut(&mut self) -> &mut RawNode {
        self.node.as_mut().expect("node is alive")
    }

    pub fn crash(&mut self) {
        self.node = None;
        self.sm.clear();
        self.read_states.clear();
    }

    pub fn restart(&mut self, seed: u64) {
        // The caller restores its state machine from the snapshot, then the core hands out
        // the committed entries after it again.
        self.sm = match &self.disk.snapshot {
            Some(s) => serde_json::from_slice(&s.data).expect("snapshot data is ours"),
            None => Vec::new(),
        };
        self.node = Some(RawNode::new(
            self.cfg.clone(),
            self.disk.persisted(),
            StdRng::seed_from_u64(seed),
        ));
    }

    pub fn role(&self) -> Option<Role> {
        self.node.as_ref().map(|n| n.status().role)
    }

    pub fn term(&self) -> Term {
        self.node.as_ref().map(|n| n.status().term).unwrap_or(0)
    }

    /// Takes the node's `Ready` and does the caller's duties except sending: returns the
    /// messages and the committed entries (for invariant checks).
    pub fn handle_ready(&mut self) -> (Vec<Message>, Ready) {
        let Some(node) = self.node.as_mut() else {
            return (Vec::new(), Ready::default());
        };
        let mut rd = node.ready();
        self.disk.persist(&rd);
        if let Some(s) = &rd.snapshot {
            self.sm = serde_json::from_slice(&s.data).expect("snapshot data is ours");
            assert_eq!(
                self.sm.len() as u64,
                s.index,
                "snapshot data covers its index"
            );
        }
        for e in &rd.committed {
            assert_eq!(
                e.index,
                self.sm.len() as u64 + 1,
                "node {} applies entries in order without gaps",
                self.id
            );
            self.sm.push(e.clone());
        }
        self.read_states.extend(rd.read_states.iter().cloned());
        if self.snapshot_every > 0 {
            let applied = self.sm.len() as u64;
            let (snap_index, _) = node.snapshot_meta();
            if applied >= snap_index + self.snapshot_every {
                let data = serde_json::to_vec(&self.sm).expect("entries serialize");
                node.compact(applied, data.clone());
                let term = self.sm[applied as usize - 1].term;
                self.disk.compact(Snapshot {
                    index: applied,
                    term,
                    data,
                });
            }
        }
        let msgs = std::mem::take(&mut rd.messages);
        (msgs, rd)
    }

    /// Every (index, term, data) the node knows: applied entries (covers the snapshot) and
    /// its log.
    pub fn log_view(&self) -> BTreeMap<Index, Entry> {
        let mut m: BTreeMap<Index, Entry> = BTreeMap::new();
        if let Some(n) = &self.node {
            for e in n.entries() {
                m.insert(e.index, e.clone());
            }
        }
        m
    }
}

/// A cluster with a perfect network except for cut links; for scenario tests.
pub struct Cluster {
    pub ids: Vec<String>,
    pub nodes: BTreeMap<String, SimNode>,
    pub queue: Vec<Message>,
    /// Directed links (from, to) that drop everything.
    pub cut: BTreeSet<(String, String)>,
    pub delivered: usize,
    seed: u64,
}

pub fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

impl Cluster {
    pub fn new(n: usize) -> Self {
        Self::with(n, |_| {})
    }

    pub fn with(n: usize, tweak: impl Fn(&mut Config)) -> Self {
        let ids = names(n);
        let mut nodes = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            let mut cfg = config(id, &ids, CoreBugs::default());
            tweak(&mut cfg);
            nodes.insert(id.clone(), SimNode::new(cfg, 1000 + i as u64));
        }
        let mut c = Cluster {
            ids,
            nodes,
            queue: Vec::new(),
            cut: BTreeSet::new(),
            delivered: 0,
            seed: 7,
        };
        for id in c.ids.clone() {
            c.ready(&id);
        }
        c
    }

    pub fn node(&self, id: &str) -> &RawNode {
        self.nodes[id].raw()
    }

    pub fn node_mut(&mut self, id: &str) -> &mut RawNode {
        self.nodes.get_mut(id).expect("known node").raw_mut()
    }

    pub fn ready(&mut self, id: &str) {
        let (msgs, _) = self.nodes.get_mut(id).expect("known node").handle_ready();
        self.queue.extend(msgs);
    }

    pub fn tick(&mut self, id: &str) {
        if self.nodes[id].alive() {
            self.node_mut(id).tick();
            self.ready(id);
        }
    }

    /// Delivers queued messages (and those they cause) until the network is quiet.
    pub fn deliver_all(&mut self) {
        for _ in 0..10_000 {
            if self.queue.is_empty() {
                return;
            }
            let q = std::mem::take(&mut self.queue);
            for m in q {
                self.deliver(m);
            }
        }
        panic!("network never went quiet");
    }

    pub fn deliver(&mut self, m: Message) {
        if self.cut.contains(&(m.from.clone(), m.to.clone())) || !self.nodes[&m.to].alive() {
            return;
        }
        self.delivered += 1;
        let to = m.to.clone();
        self.node_mut(&to).step(m);
        self.ready(&to);
    }

    /// Delivers queued messages one at a time (oldest first, including those they cause)
    /// until `cond` holds; true if it did. The rest stays queued.
    pub fn deliver_until(&mut self, cond: impl Fn(&Cluster) -> bool) -> bool {
        for _ in 0..100_000 {
            if cond(self) {
                return true;
            }
            if self.queue.is_empty() {
                return false;
            }
            let m = self.queue.remove(0);
            self.deliver(m);
        }
        false
    }

    /// Ticks only `id` (and delivers the network after each tick) until it is leader.
    pub fn force_elect(&mut self, id: &str) {
        self.force_elect_until(id, |c| c.nodes[id].role() == Some(Role::Leader));
    }

    /// Ticks only `id` until it is leader, delivering messages one by one until `cond`.
    pub fn force_elect_until(&mut self, id: &str, cond: impl Fn(&Cluster) -> bool) {
        for _ in 0..2000 {
            self.tick(id);
            if self.deliver_until(&cond) {
                return;
            }
        }
        panic!("{id} was not elected");
    }

    /// One tick on every live node, then deliver everything.
    pub fn tick_all(&mut self) {
        for id in self.ids.clone() {
            self.tick(&id);
        }
        self.deliver_all();
    }

    pub fn run(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.tick_all();
        }
    }

    /// Ticks only `id` until it starts a (pre-)campaign, then lets the network settle.
    pub fn campaign(&mut self, id: &str) {
        for _ in 0..1000 {
            if self.nodes[id].role() != Some(Role::Follower) {
                break;
            }
            self.tick(id);
        }
        self.deliver_all();
    }

    pub fn leaders(&self) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.role() == Some(Role::Leader))
            .map(|n| n.id.clone())
            .collect()
    }

    /// The live leader of the highest term.
    pub fn leader(&self) -> Option<String> {
        self.nodes
            .values()
            .filter(|n| n.role() == Some(Role::Leader))
            .max_by_key(|n| n.term())
            .map(|n| n.id.clone())
    }

    pub fn propose(&mut self, id: &str, data: &[u8]) -> (Index, Term) {
        let r = self
            .node_mut(id)
            .propose(data.to_vec())
            .expect("proposing on the leader");
        self.ready(id);
        r
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&mut self, a: &[&str], b: &[&str]) {
        for x in a {
            for y in b {
                self.cut.insert((x.to_string(), y.to_string()));
                self.cut.insert((y.to_string(), x.to_string()));
            }
        }
    }

    pub fn isolate(&mut self, id: &str) {
        let others: Vec<String> = self.ids.iter().filter(|x| *x != id).cloned().collect();
        let o: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
        self.partition(&[id], &o);
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn crash(&mut self, id: &str) {
        self.nodes.get_mut(id).expect("known node").crash();
    }

    pub fn restart(&mut self, id: &str) {
        self.seed += 1;
        let seed = self.seed;
        self.nodes.get_mut(id).expect("known node").restart(seed);
        self.ready(id);
    }

    /// The data of the entries `id` has applied (no-ops skipped).
    pub fn applied_data(&self, id: &str) -> Vec<Vec<u8>> {
        self.nodes[id]
            .sm
            .iter()
            .filter(|e| !e.data.is_empty())
            .map(|e| e.data.clone())
            .collect()
    }

    pub fn commit(&self, id: &str) -> Index {
        self.node(id).status().commit
    }

    pub fn term(&self, id: &str) -> Term {
        self.node(id).status().term
    }

    pub fn last_index(&self, id: &str) -> Index {
        self.node(id).status().last_index
    }
}
