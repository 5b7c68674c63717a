//! Scenarios from the Raft paper and the issue, each a claim. Section numbers cite
//! "In Search of an Understandable Consensus Algorithm" (extended version) and, for §6.4 and
//! §9.6, Ongaro's thesis. The network here is perfect except for the links a test cuts.

mod raft_common;

use raft_common::{names, Cluster};
use rand::rngs::StdRng;
use rand::SeedableRng;
use splitbrain_node::raft::{
    Config, CoreBugs, Entry, HardState, Index, Message, MessageBody, Persisted, RawNode, Ready,
    Role, Term,
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

fn no_pre_vote_no_check_quorum(c: &mut Config) {
    c.pre_vote = false;
    c.check_quorum = false;
}

// Raft §5.2: two candidates splitting the votes of a 4-node cluster elect no one in that
// term; the randomized timeouts then let one of them win a later term.
#[test]
fn split_vote_is_resolved_by_randomized_timeouts() {
    let mut c = Cluster::with(4, no_pre_vote_no_check_quorum);
    for id in ["n1", "n2"] {
        while c.nodes[id].role() != Some(Role::Candidate) {
            c.tick(id);
        }
    }
    let t = c.term("n1");
    assert_eq!(c.term("n2"), t, "both campaign in the same term");
    // n3 hears only n1's request, n4 only n2's.
    c.cut.insert(("n1".into(), "n4".into()));
    c.cut.insert(("n2".into(), "n3".into()));
    c.deliver_all();
    assert!(
        c.leaders().is_empty(),
        "2 of 4 votes each: no leader in term {t}"
    );
    c.heal();
    c.run(100);
    let l = one_leader(&c);
    assert!(c.term(&l) > t, "a later term resolved the split");
}

/// Builds: `n3` was leader and appended `stale` entries while cut off; the rest elected a
/// new leader, committed `fresh` entries, then elected another leader. Returns it.
fn diverged_follower(stale: u8, fresh: u8) -> (Cluster, String) {
    let mut c = Cluster::new(3);
    c.force_elect("n3");
    c.run(3);
    c.isolate("n3");
    for i in 0..stale {
        c.propose("n3", &[b's', i]);
    }
    c.run(100);
    let l = c
        .leader()
        .filter(|l| l != "n3")
        .expect("the majority elects");
    for i in 0..fresh {
        c.propose(&l, &[b'f', i]);
    }
    c.run(5);
    // Re-elect the other node, so the leader starts probing n3 at the end of its long log
    // (a leader starts at its own last index, where the logs no longer meet).
    let o = if l == "n1" { "n2" } else { "n1" };
    c.crash(&l);
    c.restart(&l);
    c.force_elect(o);
    c.run(2);
    (c, o.to_string())
}

fn refusals_from(c: &mut Cluster, from: &str, ticks: usize) -> usize {
    let mut refused = 0;
    for _ in 0..ticks {
        for id in c.ids.clone() {
            c.tick(&id);
        }
        while !c.queue.is_empty() {
            let m = c.queue.remove(0);
            if m.from == from
                && matches!(m.body, MessageBody::AppendResponse { success: false, .. })
            {
                refused += 1;
            }
            c.deliver(m);
        }
    }
    refused
}

// Raft §5.3 (the optimization at the end): the conflict hint lets the leader skip a whole
// conflicting term per round trip instead of one entry.
#[test]
fn lagging_follower_is_backfilled_skipping_a_term_per_round_trip() {
    let (mut c, l) = diverged_follower(30, 30);
    assert_eq!(
        c.last_index("n3"),
        31,
        "n3's no-op and its 30 uncommitted entries"
    );
    c.heal();
    let refused = refusals_from(&mut c, "n3", 20);
    eprintln!("backfill of 30 conflicting entries: {refused} refusals");
    assert_eq!(
        c.nodes["n3"].sm, c.nodes[&l].sm,
        "n3 applied what the leader applied"
    );
    assert_eq!(
        c.node("n3").entries(),
        c.node(&l).entries(),
        "identical logs"
    );
    let fresh: Vec<Vec<u8>> = (0..30u8).map(|i| vec![b'f', i]).collect();
    assert_eq!(
        c.applied_data("n3"),
        fresh,
        "the stale entries were rolled back"
    );
    // One refusal for the too-long probe, one for the conflicting term; not 30.
    assert!(
        refused <= 3,
        "{refused} refusals: the leader stepped back entry by entry"
    );
}

// Raft §5.3/§5.4 with the five-node partition {A,B} | {C,D,E}, leader B.
#[test]
fn minority_leader_entry_stays_uncommitted_and_is_rolled_back_after_heal() {
    let mut c = Cluster::new(5);
    c.force_elect("n2");
    c.run(5);
    let t = c.term("n2");
    c.partition(&["n1", "n2"], &["n3", "n4", "n5"]);
    let (bi, bt) = c.propose("n2", b"from-B");
    c.run(3);
    assert!(
        c.commit("n2") < bi,
        "B's entry lacks a majority: not committed"
    );
    assert!(c.node("n1").entries().iter().any(|e| e.data == b"from-B"));
    c.run(100);
    let l = c
        .leader()
        .filter(|l| ["n3", "n4", "n5"].contains(&l.as_str()));
    let l = l.expect("C's side elects a leader");
    assert!(c.term(&l) > t);
    let (ci, _) = c.propose(&l, b"from-C-side");
    c.run(5);
    assert!(c.commit(&l) >= ci, "the majority side commits");
    assert_ne!(
        c.nodes["n2"].role(),
        Some(Role::Leader),
        "check-quorum: B stepped down"
    );
    assert_eq!(
        c.node("n2").term_at(bi),
        Some(bt),
        "B still holds its entry before heal"
    );
    c.heal();
    c.run(30);
    assert_eq!(
        c.leader().as_deref(),
        Some(l.as_str()),
        "the majority's leader stays"
    );
    for id in names(5) {
        assert_eq!(c.applied_data(&id), vec![b"from-C-side".to_vec()], "{id}");
        assert!(
            !c.node(&id).entries().iter().any(|e| e.data == b"from-B"),
            "{id} rolled B's entry back"
        );
    }
}

/// Raft Figure 8, with max one entry per Append. Returns (what S1 applied at index 2 before
/// crashing, what every node finally applied at index 2).
fn figure_8(bug: bool) -> (Option<Entry>, Vec<Entry>) {
    let mut c = Cluster::with(5, |cfg| {
        no_pre_vote_no_check_quorum(cfg);
        cfg.max_entries_per_msg = 1;
        cfg.bugs.commit_old_term = bug;
    });
    // (a) S1 leads and replicates index 2 to S2 only.
    c.force_elect("n1");
    c.deliver_all();
    assert_eq!(
        c.commit("n1"),
        1,
        "the no-op of S1's first term is committed"
    );
    c.partition(&["n1", "n2"], &["n3", "n4", "n5"]);
    let (i, t2) = c.propose("n1", b"a");
    assert_eq!(i, 2);
    c.deliver_all();
    assert_eq!(c.node("n2").term_at(2), Some(t2));
    // (b) S1 crashes; S5 is elected by S3, S4 and appends its no-op at index 2, alone.
    c.crash("n1");
    c.heal();
    c.isolate("n2");
    c.force_elect("n5");
    c.queue.retain(|m| m.from != "n5");
    let t5 = c.term("n5");
    assert_eq!(c.node("n5").term_at(2), Some(t5));
    c.crash("n5");
    // (c) S1 restarts, is elected (S2, S3) and replicates its index 2 to S3.
    c.heal();
    c.restart("n1");
    c.partition(&["n1"], &["n4"]);
    c.force_elect_until("n1", |c| {
        c.nodes["n1"].role() == Some(Role::Leader)
            && c.node("n1")
                .status()
                .peers
                .iter()
                .any(|p| p.id == "n3" && p.match_index == 2)
    });
    assert_eq!(
        c.node("n3").term_at(2),
        Some(t2),
        "index 2 of term {t2} is on a majority"
    );
    let s1_applied = c.nodes["n1"].sm.get(1).cloned();
    // (d) S1 crashes; S5 is elected by S3, S4 (its last term beats theirs) and overwrites.
    c.crash("n1");
    c.queue.clear();
    c.heal();
    c.restart("n5");
    c.force_elect("n5");
    if !bug {
        // (With the bug S1 persisted commit 2 and would stop on S5's conflicting entry.)
        c.restart("n1");
    }
    c.run(30);
    let alive: Vec<String> = names(5)
        .into_iter()
        .filter(|id| c.nodes[id].alive())
        .collect();
    assert_eq!(alive.len(), if bug { 4 } else { 5 });
    let finals = alive
        .iter()
        .map(|id| c.nodes[id].sm.get(1).cloned().expect("index 2 applied"))
        .collect();
    (s1_applied, finals)
}

// Raft §5.4.2, Figure 8: a leader does not commit an entry of an older term by counting
// replicas, so the entry that S5 later overwrites was never applied anywhere.
#[test]
fn figure_8_old_term_entry_is_not_committed_by_counting_replicas() {
    let (s1_applied, finals) = figure_8(false);
    assert_eq!(
        s1_applied, None,
        "S1 did not commit index 2 of the old term"
    );
    assert!(
        finals.windows(2).all(|w| w[0] == w[1]),
        "all nodes agree: {finals:?}"
    );
    assert!(finals[0].data.is_empty(), "S5's no-op won index 2");
}

// The same scenario with `commit-old-term`: S1 applies index 2, the cluster then applies a
// different entry there (State Machine Safety broken). Shows the test above can fail.
#[test]
fn figure_8_with_commit_old_term_bug_applies_an_entry_that_is_later_overwritten() {
    let (s1_applied, finals) = figure_8(true);
    let s1 = s1_applied.expect("with the bug S1 commits index 2 of the old term");
    assert_eq!(s1.data, b"a".to_vec());
    assert_ne!(
        finals[0], s1,
        "the cluster applied something else at index 2"
    );
}

fn isolated_follower_after(pre_vote: bool, ticks: usize) -> (Cluster, String, Term, Term) {
    isolated_follower_with(pre_vote, true, ticks)
}

fn isolated_follower_with(
    pre_vote: bool,
    check_quorum: bool,
    ticks: usize,
) -> (Cluster, String, Term, Term) {
    let mut c = Cluster::with(3, |cfg| {
        cfg.pre_vote = pre_vote;
        cfg.check_quorum = check_quorum;
    });
    c.force_elect("n1");
    c.run(5);
    let t = c.term("n1");
    c.isolate("n3");
    c.run(ticks);
    let t3 = c.term("n3");
    c.heal();
    c.run(50);
    (c, "n1".to_string(), t, t3)
}

// Thesis §9.6: with pre-vote an isolated node cannot win a pre-vote, so it never bumps its
// term, and on its return the healthy leader keeps its term and office.
#[test]
fn pre_vote_keeps_isolated_node_from_inflating_terms_and_deposing_the_leader() {
    let (c, l, t, t3) = isolated_follower_after(true, 300);
    assert_eq!(t3, t, "the isolated node's term did not grow");
    assert_eq!(c.leader().as_deref(), Some(l.as_str()));
    assert_eq!(c.term(&l), t, "the leader was not deposed");
}

// Thesis §9.6 without check-quorum: followers that hear from the leader refuse pre-votes.
#[test]
fn pre_vote_alone_keeps_returning_node_from_deposing_the_leader() {
    let (c, l, t, t3) = isolated_follower_with(true, false, 300);
    assert_eq!(t3, t);
    assert_eq!(c.leader().as_deref(), Some(l.as_str()));
    assert_eq!(c.term(&l), t);
}

// Without pre-vote the same isolated node inflates its term and deposes the leader on return
// (what the test above guards against).
#[test]
fn without_pre_vote_isolated_node_inflates_terms_and_forces_an_election() {
    let (c, l, t, t3) = isolated_follower_after(false, 300);
    assert!(t3 > t + 5, "term inflated to {t3}");
    let now = c.leader().expect("a leader after the forced election");
    assert!(c.term(&now) > t, "{l}'s term {t} ended");
}

// Thesis §6.2: check-quorum makes a leader cut off from a majority step down within an
// election timeout.
#[test]
fn check_quorum_makes_isolated_leader_step_down() {
    for check_quorum in [true, false] {
        let mut c = Cluster::with(3, |cfg| cfg.check_quorum = check_quorum);
        c.force_elect("n1");
        c.run(5);
        c.isolate("n1");
        c.run(45); // two minimum election timeouts plus slack
        let is_leader = c.nodes["n1"].role() == Some(Role::Leader);
        assert_eq!(is_leader, !check_quorum, "check_quorum={check_quorum}");
    }
}

// Thesis §9.6 / §6: a follower that heard from its leader within the minimum election
// timeout ignores vote requests (the leader lease), even of higher terms.
#[test]
fn follower_within_leader_lease_ignores_higher_term_vote_requests() {
    let mut c = Cluster::new(3);
    c.force_elect("n1");
    c.run(3);
    let t = c.term("n2");
    for pre_vote in [true, false] {
        c.node_mut("n2").step(Message {
            from: "n3".into(),
            to: "n2".into(),
            term: t + 3,
            body: MessageBody::Vote {
                pre_vote,
                last_log_index: 100,
                last_log_term: t + 2,
            },
        });
        let rd = c.node_mut("n2").ready();
        assert!(rd.messages.is_empty(), "no answer (pre_vote={pre_vote})");
        assert_eq!(c.term("n2"), t, "term unchanged");
    }
}

// Raft §7: a follower whose next entry was compacted away is caught up by InstallSnapshot.
#[test]
fn follower_behind_compacted_log_catches_up_by_snapshot() {
    assert_eq!(
        catch_up_by_snapshot(u64::MAX),
        1,
        "one whole snapshot message"
    );
}

// Issue 12.2: a snapshot larger than `max_snapshot_chunk` travels in acknowledged chunks.
#[test]
fn a_snapshot_larger_than_a_chunk_is_sent_in_chunks_and_installed_after_the_last() {
    let chunks = catch_up_by_snapshot(16);
    assert!(chunks >= 5, "{chunks} InstallSnapshot messages");
}

/// Returns how many InstallSnapshot messages reached n3.
fn catch_up_by_snapshot(chunk: u64) -> usize {
    let mut c = Cluster::with(3, |cfg| cfg.max_snapshot_chunk = chunk);
    for n in c.nodes.values_mut() {
        n.snapshot_every = 10;
    }
    c.force_elect("n1");
    c.run(3);
    c.crash("n3");
    for i in 0..50u8 {
        c.propose("n1", &[i]);
        c.run(1);
    }
    let (snap, _) = c.node("n1").snapshot_meta();
    assert!(
        snap >= 40,
        "the leader compacted its log (snapshot at {snap})"
    );
    c.restart("n3");
    let mut snapshots = 0;
    for _ in 0..20 {
        for id in c.ids.clone() {
            c.tick(&id);
        }
        while !c.queue.is_empty() {
            let m = c.queue.remove(0);
            if matches!(m.body, MessageBody::InstallSnapshot { .. }) && m.to == "n3" {
                snapshots += 1;
            }
            c.deliver(m);
        }
    }
    assert!(snapshots >= 1, "an InstallSnapshot was sent");
    let want: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i]).collect();
    // Every chunk but the last is acknowledged without installing anything.
    assert_eq!(c.applied_data("n3"), want);
    assert!(
        c.nodes["n3"].disk.snapshot.is_some(),
        "n3 persisted the snapshot"
    );
    c.propose("n1", b"after");
    c.run(3);
    assert_eq!(
        c.applied_data("n3").last().map(|d| d.as_slice()),
        Some(&b"after"[..])
    );
    snapshots
}

fn append(term: Term, prev: Index, prev_term: Term, n: u64, commit: Index) -> Message {
    Message {
        from: "n1".into(),
        to: "n2".into(),
        term,
        body: MessageBody::Append {
            prev_log_index: prev,
            prev_log_term: prev_term,
            entries: (prev + 1..=prev + n)
                .map(|index| Entry {
                    term,
                    index,
                    data: vec![index as u8],
                })
                .collect(),
            commit,
            read_ctx: 0,
        },
    }
}

fn follower(bugs: CoreBugs) -> RawNode {
    let cfg = raft_common::config("n2", &names(3), bugs);
    RawNode::new(cfg, Persisted::default(), StdRng::seed_from_u64(3))
}

fn last_response(rd: &Ready) -> (bool, Index) {
    match rd.messages.last().map(|m| &m.body) {
        Some(MessageBody::AppendResponse {
            success,
            match_index,
            ..
        }) => (*success, *match_index),
        other => panic!("expected an AppendResponse, got {other:?}"),
    }
}

// Raft §5.3: "If an existing entry conflicts with a new one … delete the existing entry and
// all that follow it": only on conflict. A delayed, older Append truncates nothing.
#[test]
fn stale_append_after_newer_ones_does_not_truncate() {
    let mut f = follower(CoreBugs::default());
    f.step(append(1, 0, 0, 5, 3));
    f.ready();
    f.step(append(1, 0, 0, 2, 0)); // the older one, delivered late
    let rd = f.ready();
    assert_eq!(f.status().last_index, 5, "nothing truncated");
    assert_eq!(f.status().commit, 3);
    assert!(rd.entries.is_empty(), "nothing to persist");
    // It answers with what it knows matches: everything up to its commit index.
    assert_eq!(last_response(&rd), (true, 3));
    // With `no-truncate-check` the same delivery cuts the log below the commit index.
    let mut b = follower(CoreBugs {
        no_truncate_check: true,
        ..CoreBugs::default()
    });
    b.step(append(1, 0, 0, 5, 3));
    b.ready();
    b.step(append(1, 0, 0, 2, 0));
    b.ready();
    assert_eq!(
        b.status().last_index,
        2,
        "the bug truncated committed entries"
    );
}

// Raft §5.3: an Append whose previous entry does not match is refused with a hint.
#[test]
fn append_with_mismatching_prev_is_refused_with_conflict_hint() {
    let mut f = follower(CoreBugs::default());
    f.step(append(1, 0, 0, 5, 1));
    f.ready();
    // A leader of term 3 whose entry 4 is of term 2.
    f.step(append(3, 4, 2, 1, 1));
    let rd = f.ready();
    match &rd.messages[0].body {
        MessageBody::AppendResponse {
            success,
            match_index,
            conflict_index,
            conflict_term,
            ..
        } => {
            assert!(!success);
            assert_eq!(*match_index, 4, "the refused prev index");
            assert_eq!(*conflict_term, 1, "our term at index 4");
            assert_eq!(
                *conflict_index, 2,
                "first index of term 1 above our commit (1)"
            );
        }
        b => panic!("unexpected {b:?}"),
    }
    assert_eq!(f.status().last_index, 5, "nothing truncated on refusal");
}

// Raft §5.4: a follower never lets an Append rewrite an entry it knows is committed; that
// would be a broken leader, and the node stops rather than diverge.
#[test]
#[should_panic(expected = "would overwrite committed entry")]
fn overwriting_a_committed_entry_panics_with_node_term_and_index() {
    let mut f = follower(CoreBugs::default());
    f.step(append(1, 0, 0, 3, 3));
    f.ready();
    f.step(append(2, 0, 0, 3, 0));
}

// Thesis §6.4: a leader serves a read only after a majority confirmed its leadership after
// the read arrived; cut off, it does not.
#[test]
fn read_index_waits_for_majority_confirmation() {
    let mut c = Cluster::new(3);
    c.force_elect("n1");
    c.run(3);
    let commit = c.commit("n1");
    c.isolate("n1");
    c.node_mut("n1").read_index(42).unwrap();
    c.run(4);
    assert!(
        c.nodes["n1"].read_states.is_empty(),
        "not served while cut off"
    );
    c.heal();
    c.run(3);
    let rs = &c.nodes["n1"].read_states;
    assert_eq!(rs.len(), 1, "served once confirmed");
    assert_eq!((rs[0].ctx, rs[0].index), (42, commit));
}

// Thesis §6.4 step 1: a new leader does not know the commit index until it committed an
// entry of its term; a read arriving before that waits for it.
#[test]
fn read_index_waits_for_first_commit_of_the_term() {
    let mut c = Cluster::new(3);
    c.force_elect("n1");
    let noop = c.last_index("n1");
    assert!(c.commit("n1") < noop, "elected, no-op not yet committed");
    c.node_mut("n1").read_index(7).unwrap();
    c.ready("n1");
    assert!(c.nodes["n1"].read_states.is_empty());
    c.deliver_all();
    c.run(2);
    let rs = &c.nodes["n1"].read_states;
    assert_eq!(rs.len(), 1);
    assert!(
        rs[0].index >= noop,
        "read index {} covers the no-op {noop}",
        rs[0].index
    );
}

// Refused definitely on a follower (the caller answers 503 / forwards).
#[test]
fn follower_refuses_proposals_and_reads_naming_the_leader() {
    let mut c = Cluster::new(3);
    c.force_elect("n1");
    c.run(3);
    let e = c.node_mut("n2").propose(b"x".to_vec()).unwrap_err();
    assert_eq!(
        e,
        splitbrain_node::raft::ProposeError::NotLeader {
            leader: Some("n1".into())
        }
    );
    assert!(c.node_mut("n2").read_index(1).is_err());
}

// Throughput: up to `max_inflight` Appends per follower are in flight before any answer.
#[test]
fn leader_pipelines_up_to_max_inflight_appends_per_follower() {
    let mut c = Cluster::with(3, |cfg| {
        cfg.max_inflight = 4;
        cfg.max_entries_per_msg = 8;
    });
    c.force_elect("n1");
    c.run(3);
    for i in 0..100u8 {
        c.node_mut("n1").propose(vec![i]).unwrap();
    }
    c.ready("n1");
    let to_n2: Vec<usize> = c
        .queue
        .iter()
        .filter(|m| m.to == "n2")
        .map(|m| match &m.body {
            MessageBody::Append { entries, .. } => entries.len(),
            _ => 0,
        })
        .collect();
    assert_eq!(to_n2, vec![8, 8, 8, 8], "4 batches of 8 in flight");
    c.run(10);
    assert_eq!(c.applied_data("n2").len(), 100);
}

// Flow control by bytes (etcd's MaxSizePerMsg / MaxInflightBytes): Appends are cut at the
// byte cap (an entry larger than it travels alone) and a follower with the byte budget in
// flight gets nothing more until it answers.
#[test]
fn appends_are_capped_by_bytes_per_message_and_bytes_in_flight() {
    let mut c = Cluster::with(3, |cfg| {
        cfg.max_inflight = 100;
        cfg.max_entries_per_msg = 100;
        cfg.max_bytes_per_msg = 10;
        cfg.max_inflight_bytes = 25;
    });
    c.force_elect("n1");
    c.run(3);
    // 4 bytes each, then one of 50 bytes, then 4 bytes each again.
    for i in 0..6u8 {
        c.node_mut("n1").propose(vec![i; 4]).unwrap();
    }
    c.node_mut("n1").propose(vec![9; 50]).unwrap();
    for i in 0..4u8 {
        c.node_mut("n1").propose(vec![i; 4]).unwrap();
    }
    c.ready("n1");
    let sizes: Vec<Vec<usize>> = c
        .queue
        .iter()
        .filter(|m| m.to == "n2")
        .filter_map(|m| match &m.body {
            MessageBody::Append { entries, .. } if !entries.is_empty() => {
                Some(entries.iter().map(|e| e.data.len()).collect())
            }
            _ => None,
        })
        .collect();
    // 8 + 8 + 8 bytes in flight (24 < 25), then the 50-byte entry alone crosses the budget.
    assert_eq!(
        sizes,
        vec![vec![4, 4], vec![4, 4], vec![4, 4], vec![50]],
        "cut by bytes"
    );
    c.run(20);
    assert_eq!(
        c.applied_data("n2").len(),
        11,
        "everything arrives after answers"
    );
    assert_eq!(c.applied_data("n3").len(), 11);
}

// Bad input: messages from strangers, for other nodes, with impossible fields (entries not
// following `prev`, terms from the future, indices near u64::MAX) are ignored: no panic, no
// state change.
#[test]
fn malformed_messages_are_ignored_without_panic() {
    let mut c = Cluster::new(3);
    c.force_elect("n1");
    c.run(3);
    let before: Vec<_> = names(3).iter().map(|id| c.node(id).hard_state()).collect();
    let entry = |term, index| Entry {
        term,
        index,
        data: vec![],
    };
    let bodies = vec![
        MessageBody::Append {
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![entry(1, 5)], // not prev + 1
            commit: 5,
            read_ctx: 0,
        },
        MessageBody::Append {
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![entry(99, 2)], // term above the message's
            commit: 2,
            read_ctx: 0,
        },
        MessageBody::Append {
            prev_log_index: u64::MAX,
            prev_log_term: 0,
            entries: vec![entry(1, 0)],
            commit: u64::MAX,
            read_ctx: 0,
        },
        MessageBody::AppendResponse {
            success: false,
            match_index: u64::MAX,
            conflict_index: u64::MAX,
            conflict_term: u64::MAX,
            read_ctx: u64::MAX,
        },
        MessageBody::InstallSnapshotResponse {
            match_index: u64::MAX,
            snapshot_index: 0,
            next_offset: 0,
        },
        MessageBody::InstallSnapshot {
            snapshot: splitbrain_node::raft::Snapshot {
                index: 0,
                term: 0,
                data: vec![],
            },
            offset: 0,
            total: 0,
        },
        MessageBody::InstallSnapshot {
            snapshot: splitbrain_node::raft::Snapshot {
                index: 5,
                term: 1,
                data: vec![1, 2, 3],
            },
            offset: 9,
            total: 10, // runs past its total
        },
        MessageBody::InstallSnapshotResponse {
            match_index: 0,
            snapshot_index: u64::MAX,
            next_offset: u64::MAX,
        },
        MessageBody::Vote {
            pre_vote: false,
            last_log_index: u64::MAX,
            last_log_term: u64::MAX,
        },
    ];
    for to in names(3) {
        let t = c.term(&to);
        for body in &bodies {
            for (from, term) in [("n2", t), ("n3", t), ("stranger", t + 1), ("n2", u64::MAX)] {
                if from == to {
                    continue;
                }
                c.node_mut(&to).step(Message {
                    from: from.into(),
                    to: to.clone(),
                    term,
                    body: body.clone(),
                });
                // Addressed to someone else.
                c.node_mut(&to).step(Message {
                    from: "n2".into(),
                    to: "n9".into(),
                    term: t + 5,
                    body: body.clone(),
                });
            }
        }
        c.ready(&to);
    }
    let after: Vec<_> = names(3).iter().map(|id| c.node(id).hard_state()).collect();
    assert_eq!(before, after, "hard state untouched by malformed input");
    assert_eq!(c.leader().as_deref(), Some("n1"));
}

// Throughput under failure: a follower that does not answer gets at most `max_inflight`
// Appends with entries plus one probe; after that only empty probes (one per heartbeat).
#[test]
fn unresponsive_follower_gets_empty_probes_not_entries_every_heartbeat() {
    let mut c = Cluster::with(3, |cfg| {
        cfg.max_inflight = 4;
        cfg.max_entries_per_msg = 8;
    });
    c.force_elect("n1");
    c.run(3);
    c.crash("n3");
    let (mut with_entries, mut empty) = (0, 0);
    for i in 0..100u8 {
        c.node_mut("n1").propose(vec![i]).unwrap();
        for id in c.ids.clone() {
            c.tick(&id);
        }
        for m in c.queue.iter().filter(|m| m.to == "n3") {
            match &m.body {
                MessageBody::Append { entries, .. } if entries.is_empty() => empty += 1,
                MessageBody::Append { .. } => with_entries += 1,
                _ => {}
            }
        }
        c.deliver_all();
    }
    assert!(empty >= 40, "heartbeats keep going ({empty})");
    assert!(
        with_entries <= 5,
        "{with_entries} Appends with entries to a dead follower"
    );
    c.restart("n3");
    c.run(10);
    assert_eq!(c.applied_data("n3").len(), 100, "caught up once back");
}

// A peer list naming the node itself (or a peer twice) does not change the quorum.
#[test]
fn node_itself_in_peer_list_is_ignored() {
    let mut cfg = raft_common::config("solo", &["solo".to_string()], CoreBugs::default());
    cfg.peers = vec!["solo".into(), "solo".into()];
    let n = RawNode::new(cfg, Persisted::default(), StdRng::seed_from_u64(1));
    assert_eq!(
        n.status().role,
        Role::Leader,
        "a one-node cluster elects itself"
    );
}

// Durability under torn writes: the commit index handed out for persisting never covers
// entries of the same batch, so a crash that keeps the hard state but loses the entries
// cannot make a restarted node apply stale entries as committed. It catches up next batch.
#[test]
fn persisted_commit_index_never_covers_entries_of_the_same_ready() {
    let mut f = follower(CoreBugs::default());
    f.step(append(1, 0, 0, 3, 3));
    let rd = f.ready();
    assert_eq!(rd.entries.len(), 3);
    assert_eq!(
        rd.committed.len(),
        3,
        "applied in this batch (after persisting it)"
    );
    let hs = rd.hard_state.expect("term changed");
    assert_eq!(hs.commit, 0, "not yet backed by durable entries");
    let rd = f.ready();
    assert_eq!(rd.hard_state.map(|h| h.commit), Some(3), "caught up");
}
