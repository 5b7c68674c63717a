//! Exhaustive model check (stateright, breadth first) of the Raft core in a small bounded
//! configuration: 3 nodes, terms up to `MAX_TERM`, up to `MAX_PROPOSALS` client entries (plus
//! each leader's no-op). Actions are: a node's election timer fires (one tick; the election
//! timeout is fixed at one tick so that every tick of a follower starts an election), a
//! leader's heartbeat tick, the delivery of any message in the network (which is a set: any
//! order, any delay, never delivering = loss), and a client proposal on a leader.
//!
//! Properties: Election Safety (over the whole history), Log Matching, State Machine Safety
//! (no two different entries applied at one index), Leader Completeness, and that the core
//! never panics. A `sometimes` property checks that commits are reachable at all.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::rngs::StdRng;
use rand::SeedableRng;
use splitbrain_node::raft::{
    Config, CoreBugs, Entry, Index, Message, Persisted, RawNode, Role, Term,
};
use stateright::{Checker, Model, Property};

const N: usize = 3;
const MAX_NET: usize = 4;
const STATE_CAP: usize = 300_000;

#[derive(Clone)]
struct RaftModel {
    max_term: Term,
    max_proposals: u8,
    /// States with more messages in flight are not expanded.
    max_net: usize,
    pre_vote: bool,
    bugs: CoreBugs,
}

/// `RawNode` compared by its protocol state (the `Hash` impl covers it; the RNG is irrelevant
/// with a fixed one-tick timeout).
#[derive(Clone, Debug)]
struct Node(RawNode);

impl Hash for Node {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.hash(h)
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        fp(&self.0) == fp(&other.0)
    }
}

fn fp<T: Hash>(t: &T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

#[derive(Clone, Debug, Hash, PartialEq)]
struct State {
    nodes: Vec<Node>,
    /// Messages in flight, as a set ordered by their JSON form.
    net: BTreeMap<String, Message>,
    /// (term, node) of every leader ever.
    leaders: BTreeSet<(Term, usize)>,
    /// Every applied entry, with the term of the node that applied it first.
    applied: BTreeMap<Index, (Entry, Term)>,
    /// An entry applied at an index where a different one was applied before.
    applied_conflict: bool,
    proposals: u8,
    panicked: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq)]
enum Action {
    Tick(usize),
    Deliver(String),
    Propose(usize),
}

fn id(i: usize) -> String {
    format!("n{}", i + 1)
}

impl RaftModel {
    fn config(&self, i: usize) -> Config {
        Config {
            id: id(i),
            peers: (0..N).filter(|&j| j != i).map(id).collect(),
            election_ticks_min: 1,
            election_ticks_max: 2,
            heartbeat_ticks: 1,
            pre_vote: self.pre_vote,
            check_quorum: false,
            max_inflight: 2,
            max_entries_per_msg: 2,
            max_bytes_per_msg: u64::MAX,
            max_inflight_bytes: u64::MAX,
            max_snapshot_chunk: u64::MAX,
            bugs: self.bugs.clone(),
        }
    }

    fn after(&self, s: &mut State, i: usize) {
        let rd = s.nodes[i].0.ready();
        let term = s.nodes[i].0.status().term;
        for m in rd.messages {
            let k = serde_json::to_string(&m).expect("messages serialize");
            s.net.insert(k, m);
        }
        for e in rd.committed {
            match s.applied.get(&e.index) {
                Some((c, _)) if *c != e => s.applied_conflict = true,
                Some(_) => {}
                None => {
                    s.applied.insert(e.index, (e, term));
                }
            }
        }
        for (j, n) in s.nodes.iter().enumerate() {
            let st = n.0.status();
            if st.role == Role::Leader {
                s.leaders.insert((st.term, j));
            }
        }
    }
}

impl Model for RaftModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let nodes = (0..N)
            .map(|i| {
                Node(RawNode::new(
                    self.config(i),
                    Persisted::default(),
                    StdRng::seed_from_u64(i as u64),
                ))
            })
            .collect();
        vec![State {
            nodes,
            net: BTreeMap::new(),
            leaders: BTreeSet::new(),
            applied: BTreeMap::new(),
            applied_conflict: false,
            proposals: 0,
            panicked: None,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        if s.panicked.is_some() {
            return;
        }
        for (i, n) in s.nodes.iter().enumerate() {
            let st = n.0.status();
            // A node's timer fires only while none of its messages is in flight: that keeps
            // the network small without losing retries (a lost message is one never delivered).
            let quiet = !s.net.values().any(|m| m.from == st.id);
            if st.role == Role::Leader {
                if quiet {
                    actions.push(Action::Tick(i));
                }
                if s.proposals < self.max_proposals {
                    actions.push(Action::Propose(i));
                }
            } else if st.term < self.max_term && quiet {
                actions.push(Action::Tick(i));
            }
        }
        for k in s.net.keys() {
            actions.push(Action::Deliver(k.clone()));
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        let r = catch_unwind(AssertUnwindSafe(|| {
            match action {
                Action::Tick(i) => {
                    s.nodes[i].0.tick();
                    self.after(&mut s, i);
                }
                Action::Propose(i) => {
                    s.proposals += 1;
                    let data = vec![b'v', s.proposals];
                    s.nodes[i].0.propose(data).expect("only leaders propose");
                    self.after(&mut s, i);
                }
                Action::Deliver(k) => {
                    let m = s.net.remove(&k).expect("delivering a message in flight");
                    let to = m.to[1..].parse::<usize>().expect("ids are n<k>") - 1;
                    s.nodes[to].0.step(m);
                    self.after(&mut s, to);
                }
            }
            s
        }));
        match r {
            Ok(s) => Some(s),
            Err(p) => {
                let mut s = last.clone();
                s.panicked = Some(
                    p.downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_else(|| "panic".into()),
                );
                Some(s)
            }
        }
    }

    fn within_boundary(&self, s: &State) -> bool {
        s.net.len() <= self.max_net && s.nodes.iter().all(|n| n.0.status().term <= self.max_term)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("election safety", |_, s: &State| {
                let mut terms = BTreeSet::new();
                s.leaders.iter().all(|(t, _)| terms.insert(*t))
            }),
            Property::always("log matching", |_, s: &State| {
                for a in &s.nodes {
                    for b in &s.nodes {
                        let (ea, eb) = (a.0.entries(), b.0.entries());
                        for x in ea {
                            if let Some(y) = eb.iter().find(|y| y.index == x.index) {
                                if x.term == y.term {
                                    let pa = ea.iter().filter(|e| e.index <= x.index);
                                    let pb: Vec<&Entry> =
                                        eb.iter().filter(|e| e.index <= x.index).collect();
                                    if !pa.eq(pb.into_iter()) {
                                        return false;
                                    }
                                }
                            }
                        }
                    }
                }
                true
            }),
            Property::always("state machine safety", |_, s: &State| !s.applied_conflict),
            Property::always("leader completeness", |_, s: &State| {
                s.nodes.iter().all(|n| {
                    let st = n.0.status();
                    st.role != Role::Leader
                        || s.applied.values().all(|(e, t)| {
                            *t > st.term || n.0.entries().get(e.index as usize - 1) == Some(e)
                        })
                })
            }),
            Property::always("core never panics", |_, s: &State| s.panicked.is_none()),
            Property::sometimes("an entry is committed", |_, s: &State| {
                s.applied.values().any(|(e, _)| !e.data.is_empty())
            }),
        ]
    }
}

fn check_safe(model: RaftModel, cap: usize) {
    let checker = model
        .checker()
        .threads(2)
        .target_state_count(cap)
        .spawn_bfs()
        .join();
    let states = checker.unique_state_count();
    eprintln!(
        "raft_model: {states} unique states, max depth {}",
        checker.max_depth()
    );
    assert!(
        states > 1000,
        "the checker explored the space ({states} states)"
    );
    assert!(
        states < cap,
        "the bounded space was exhausted, not cut at {cap} states"
    );
    for name in [
        "election safety",
        "log matching",
        "state machine safety",
        "leader completeness",
        "core never panics",
    ] {
        if let Some(path) = checker.discovery(name) {
            panic!("{name} violated:\n{path:?}");
        }
    }
    assert!(
        checker.discovery("an entry is committed").is_some(),
        "commits are reachable in the model"
    );
}

// Raft §5.2 (Election Safety), §5.3 (Log Matching), §5.4 (Leader Completeness, State
// Machine Safety), exhaustively in the bounded configuration: 2 terms, 1 client entry.
#[test]
fn model_check_finds_no_safety_violation_in_bounded_three_node_cluster() {
    let model = RaftModel {
        max_term: 2,
        max_proposals: 1,
        max_net: MAX_NET,
        pre_vote: false,
        bugs: CoreBugs::default(),
    };
    check_safe(model, STATE_CAP);
}

// The same with pre-vote (thesis §9.6): the extra round changes no safety property.
#[test]
fn model_check_with_pre_vote_finds_no_safety_violation() {
    let model = RaftModel {
        max_term: 2,
        max_proposals: 1,
        max_net: MAX_NET,
        pre_vote: true,
        bugs: CoreBugs::default(),
    };
    check_safe(model, STATE_CAP);
}

// A larger bound, by default 3 terms and 2 client entries (RAFT_MODEL_TERMS,
// RAFT_MODEL_ENTRIES): the space grows fast (3 terms and 1 entry did not finish in 200 s on a
// loaded 2-core machine), so this is for a long run on a big machine, not for CI.
#[test]
#[ignore]
fn model_check_finds_no_safety_violation_in_three_terms() {
    let model = RaftModel {
        max_term: std::env::var("RAFT_MODEL_TERMS").map_or(3, |v| v.parse().expect("a number")),
        max_proposals: std::env::var("RAFT_MODEL_ENTRIES")
            .map_or(2, |v| v.parse().expect("a number")),
        max_net: MAX_NET,
        pre_vote: false,
        bugs: CoreBugs::default(),
    };
    check_safe(model, 20_000_000);
}

// The same check with `vote-any-log` finds a counterexample: the model check can fail.
#[test]
fn model_check_finds_counterexample_with_vote_any_log() {
    let model = RaftModel {
        max_term: 2,
        max_proposals: 1,
        max_net: MAX_NET,
        pre_vote: false,
        bugs: CoreBugs {
            vote_any_log: true,
            ..CoreBugs::default()
        },
    };
    let checker = model
        .checker()
        .threads(2)
        .target_state_count(STATE_CAP)
        .spawn_bfs()
        .join();
    let found: Vec<&str> = [
        "leader completeness",
        "state machine safety",
        "core never panics",
    ]
    .into_iter()
    .filter(|n| checker.discovery(n).is_some())
    .collect();
    assert!(!found.is_empty(), "vote-any-log breaks a safety property");
    eprintln!("vote-any-log counterexample found for {found:?}");
}
