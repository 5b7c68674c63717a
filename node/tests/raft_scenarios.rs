//! Scenarios from the Raft paper and the issue, each a claim. Section numbers cite
//! "In Search of an Understandable Consensus Algorithm" (extended version) and, for §6.4 and
//! §9.6, Ongaro's thesis. The network here is perfect except for the links a test cuts.

mod raft_common;

use raft_common::{names, Cluster};
use rand::rngs::StdRng;
use rand::SeedableRng;
use splitbrain_node::raft::{
    Config, CoreBugs, Entry, HardState, Message, MessageBody, Persisted, RawNode, Role,
};

fn one_leader(c: &Cluster) -> String {
    let ls = c.leaders();
    assert_eq!(ls.len(), 1, "expected exactly one leader, got {ls:?}");
    ls[0].clone()
}

// Raft §5.2
#[test]
fn three_nodes_elect_exactly_one_leader() {
    let mut c = Cluster::new(3);
    c.run(60);
    let l = one_leader(&c);
    let t = c.term(&l);
    for id in names(3) {
        assert_eq!(c.term(&id), t, "{id} is in the leader's term");
        assert_eq!(c.node(&id).status().leader.as_deref(), Some(l.as_str()));
    }
}

// Raft §5.2: a node with no peers is a majority of one.
#[test]
fn single_node_elects_itself_and_commits_at_once() {
    let cfg = raft_common::config("solo", &["solo".to_string()], CoreBugs::default());
    let mut n = RawNode::new(cfg, Persisted::default(), StdRng::seed_from_u64(1));
    assert_eq!(n.status().role, Role::Leader);
    let rd = n.ready();
    assert_eq!(rd.entries.len(), 1, "the no-op");
    let (i, _) = n.propose(b"x".to_vec()).unwrap();
    n.read_index(9).unwrap();
    let rd = n.ready();
    assert_eq!(rd.committed.last().map(|e| e.index), Some(i));
    assert_eq!(rd.read_states.len(), 1);
    assert_eq!(rd.read_states[0].index, i);
}

// Raft §5.3
#[test]
fn leader_replicates_and_commits_on_all_nodes() {
    let mut c = Cluster::new(3);
    c.run(60);
    let l = one_leader(&c);
    for i in 0..20u8 {
        c.propose(&l, &[i]);
    }
    c.run(5);
    let want: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i]).collect();
    for id in names(3) {
        assert_eq!(
            c.applied_data(&id),
            want,
            "{id} applied everything in order"
        );
    }
}

// Raft §5.2: when the leader dies, the others elect a new one in a higher term.
#[test]
fn leader_loss_leads_to_reelection_in_higher_term() {
    let mut c = Cluster::new(3);
    c.run(60);
    let old = one_leader(&c);
    let t = c.term(&old);
    c.propose(&old, b"before");
    c.run(3);
    c.crash(&old);
    c.run(80);
    let new = c.leader().expect("a new leader");
    assert_ne!(new, old);
    assert!(c.term(&new) > t);
    c.propose(&new, b"after");
    c.run(3);
    assert_eq!(
        c.applied_data(&new),
        vec![b"before".to_vec(), b"after".to_vec()]
    );
    c.restart(&old);
    c.run(20);
    assert_eq!(
        c.applied_data(&old),
        vec![b"before".to_vec(), b"after".to_vec()]
    );
    assert_eq!(c.nodes[&old].role(), Some(Role::Follower));
}

// Raft §5.4.1: a vote is refused to a candidate whose log is less up to date.
#[test]
fn vote_refused_to_candidate_with_shorter_log_of_same_term() {
    let entries = |n: u64| -> Vec<Entry> {
        (1..=n)
            .map(|i| Entry {
                term: 1,
                index: i,
                data: vec![],
            })
            .collect()
    };
    let ids = names(3);
    let cfg = raft_common::config("n1", &ids, CoreBugs::default());
    let hs = HardState {
        term: 1,
        vote: None,
        commit: 0,
    };
    let mut voter = RawNode::new(
        cfg.clone(),
        Persisted {
            hard_state: hs.clone(),
            snapshot: None,
            entries: entries(3),
        },
        StdRng::seed_from_u64(1),
    );
    let ask = |lli| Message {
        from: "n2".into(),
        to: "n1".into(),
        term: 2,
        body: MessageBody::Vote {
            pre_vote: false,
            last_log_index: lli,
            last_log_term: 1,
        },
    };
    voter.step(ask(2));
    let granted = |rd: splitbrain_node::raft::Ready| {
        rd.messages
            .iter()
            .any(|m| matches!(m.body, MessageBody::VoteResponse { granted: true, .. }))
    };
    assert!(!granted(voter.ready()), "shorter log: refused");
    // With the bug the same request is granted.
    let mut buggy_cfg = cfg;
    buggy_cfg.bugs.vote_any_log = true;
    let mut buggy = RawNode::new(
        buggy_cfg,
        Persisted {
            hard_state: hs,
            snapshot: None,
            entries: entries(3),
        },
        StdRng::seed_from_u64(1),
    );
    buggy.step(ask(2));
    assert!(granted(buggy.ready()), "vote-any-log grants it");
    // An equally long log is granted by the correct node (it has not voted in term 2).
    voter.step(ask(3));
    assert!(granted(voter.ready()));
}

#[allow(dead_code)]
fn unused(_: Config) {}
