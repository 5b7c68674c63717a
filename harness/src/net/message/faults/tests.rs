//! Each fault on a scripted message sequence, with a fixed seed.

use super::*;
use splitbrain_node::raft::{Entry, Index};

const SEED: u64 = 42;

fn link(a: &str, b: &str) -> Link {
    (a.to_string(), b.to_string())
}

fn append(term: Term, prev: Index, terms: &[Term]) -> Message {
    Message {
        from: "n1".into(),
        to: "n2".into(),
        term,
        body: MessageBody::Append {
            prev_log_index: prev,
            prev_log_term: term,
            entries: terms
                .iter()
                .enumerate()
                .map(|(i, t)| Entry {
                    term: *t,
                    index: prev + 1 + i as u64,
                    data: Vec::new(),
                })
                .collect(),
            commit: prev + terms.len() as u64,
            read_ctx: 0,
        },
    }
}

fn vote(from: &str, to: &str, term: Term, pre_vote: bool) -> Message {
    Message {
        from: from.into(),
        to: to.into(),
        term,
        body: MessageBody::Vote {
            pre_vote,
            last_log_index: 0,
            last_log_term: 0,
        },
    }
}

fn append_resp(term: Term, match_index: Index) -> Message {
    Message {
        from: "n2".into(),
        to: "n1".into(),
        term,
        body: MessageBody::AppendResponse {
            success: true,
            match_index,
            conflict_index: 0,
            conflict_term: 0,
            read_ctx: 0,
        },
    }
}

/// Six heartbeats-with-one-entry on n1→n2, 1 ms apart: prev 0..5.
fn six_appends() -> Vec<(Link, Message, Duration)> {
    (0..6)
        .map(|i| {
            (
                link("n1", "n2"),
                append(1, i, &[1]),
                Duration::from_millis(i),
            )
        })
        .collect()
}

/// Runs a script and returns what is delivered, in delivery order (time, then production
/// order), described.
fn run(e: &mut FaultEngine, script: &[(Link, Message, Duration)]) -> Vec<String> {
    let mut out = Vec::new();
    for (l, m, now) in script {
        e.on_message(l, m.clone(), *now, &mut out);
    }
    let mut idx: Vec<usize> = (0..out.len()).collect();
    idx.sort_by_key(|i| (out[*i].at, *i));
    idx.into_iter().map(|i| describe(&out[i])).collect()
}

fn prevs(delivered: &[String]) -> Vec<u64> {
    delivered
        .iter()
        .map(|s| {
            let i = s.find(" i").expect("an index") + 2;
            s[i..].split(' ').next().unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn with_no_faults_every_message_passes_in_order_untouched() {
    let mut e = FaultEngine::new(SEED);
    let d = run(&mut e, &six_appends());
    assert_eq!(prevs(&d), vec![0, 1, 2, 3, 4, 5]);
    assert!(d.iter().all(|s| !s.contains('(')), "{d:?}");
    assert_eq!(e.counters().seen, 6);
    assert_eq!(e.counters().delivered, 6);
}

#[test]
fn loss_drops_a_seeded_subset_and_the_same_seed_drops_the_same_subset() {
    let mut a = FaultEngine::new(SEED);
    a.set(Fault::loss(0.5)).unwrap();
    let da = run(&mut a, &six_appends());
    let mut b = FaultEngine::new(SEED);
    b.set(Fault::loss(0.5)).unwrap();
    assert_eq!(run(&mut b, &six_appends()), da);
    // The expected sequence for seed 42 (golden: changes only if the RNG derivation does).
    assert_eq!(prevs(&da), vec![0, 3, 5]);
    assert_eq!(a.counters().lost, 3);
    let runs: Vec<Vec<String>> = (0..4)
        .map(|k| {
            let mut e = FaultEngine::new(SEED + k);
            e.set(Fault::loss(0.5)).unwrap();
            run(&mut e, &six_appends())
        })
        .collect();
    assert!(runs.iter().any(|r| *r != da), "other seeds drop otherwise");
}

#[test]
fn loss_by_kind_drops_only_that_kind() {
    let mut e = FaultEngine::new(SEED);
    e.set(Fault::loss(1.0).kinds(KindFilter::parse("append").unwrap()))
        .unwrap();
    let script = vec![
        (link("n1", "n2"), append(1, 0, &[1]), Duration::ZERO),
        (link("n1", "n2"), vote("n1", "n2", 2, false), Duration::ZERO),
        (link("n2", "n1"), append_resp(1, 1), Duration::ZERO),
    ];
    let d = run(&mut e, &script);
    assert_eq!(d, vec!["vote n1→n2 t2 i0", "append-resp n2→n1 t1 i1 ok"]);
    e.set(Fault::loss(1.0).kinds(KindFilter::parse("responses").unwrap()))
        .unwrap();
    let d = run(&mut e, &script);
    assert_eq!(d, vec!["append n1→n2 t1 i0 c1 +1[t1]", "vote n1→n2 t2 i0"]);
}

#[test]
fn dup_delivers_each_message_twice_in_a_row() {
    let mut e = FaultEngine::new(SEED);
    e.set(Fault::dup(1.0)).unwrap();
    let d = run(&mut e, &six_appends()[..2]);
    assert_eq!(
        d,
        vec![
            "append n1→n2 t1 i0 c1 +1[t1]",
            "append n1→n2 t1 i0 c1 +1[t1] (dup)",
            "append n1→n2 t1 i1 c2 +1[t1]",
            "append n1→n2 t1 i1 c2 +1[t1] (dup)",
        ]
    );
    assert_eq!(e.counters().duplicated, 2);
}

#[test]
fn reorder_lets_later_messages_overtake_held_ones_within_the_delay() {
    let mut e = FaultEngine::new(SEED);
    let max = Duration::from_millis(20);
    e.set(Fault::reorder(max)).unwrap();
    let mut out = Vec::new();
    for (l, m, now) in six_appends() {
        e.on_message(&l, m, now, &mut out);
        let d = out.last().unwrap();
        assert!(
            d.at >= now && d.at <= now + max,
            "{:?} not within {now:?}+{max:?}",
            d.at
        );
    }
    let d = run(&mut FaultEngine::new(SEED), &[]);
    assert!(d.is_empty());
    let mut e = FaultEngine::new(SEED);
    e.set(Fault::reorder(max)).unwrap();
    let d = run(&mut e, &six_appends());
    // Golden for seed 42.
    assert_eq!(prevs(&d), vec![0, 4, 1, 5, 2, 3]);
    assert_eq!(e.counters().reordered, 6);
}

#[test]
fn replay_delivers_an_older_append_after_newer_ones() {
    let mut e = FaultEngine::new(SEED);
    let script = six_appends();
    let mut out = Vec::new();
    // Three appends pass normally, then replay is switched on.
    for (l, m, now) in &script[..3] {
        e.on_message(l, m.clone(), *now, &mut out);
    }
    e.set(Fault::replay(1.0)).unwrap();
    for (l, m, now) in &script[3..] {
        e.on_message(l, m.clone(), *now, &mut out);
    }
    let d: Vec<String> = out.iter().map(describe).collect();
    let p = prevs(&d);
    // After each of the last three appends comes a replay of an older one.
    assert_eq!(p.len(), 9);
    for k in [4, 6, 8] {
        assert!(d[k].ends_with("(replay)"), "{d:?}");
        assert!(
            p[k] < p[k - 1],
            "replayed {} is not older than {}",
            p[k],
            p[k - 1]
        );
    }
    // Golden for seed 42.
    assert_eq!(p, vec![0, 1, 2, 3, 2, 4, 1, 5, 2]);
    assert_eq!(e.counters().replayed, 3);
}

#[test]
fn replay_replays_only_the_chosen_kinds() {
    let mut e = FaultEngine::new(SEED);
    e.set(Fault::replay(1.0)).unwrap();
    let l = link("n1", "n2");
    let mut out = Vec::new();
    e.on_message(&l, vote("n1", "n2", 2, false), Duration::ZERO, &mut out);
    e.on_message(&l, vote("n1", "n2", 3, false), Duration::ZERO, &mut out);
    assert_eq!(out.len(), 2, "no append seen yet, so nothing to replay");
    e.on_message(&l, append(3, 0, &[3]), Duration::ZERO, &mut out);
    e.on_message(&l, vote("n1", "n2", 4, false), Duration::ZERO, &mut out);
    assert_eq!(out.len(), 5);
    assert_eq!(out[4].cause, Cause::Replay);
    assert_eq!(Kind::of(&out[4].msg.body), Kind::Append);
}

#[test]
fn trim_own_term_forwards_only_the_old_term_prefix_and_caps_commit() {
    let mut e = FaultEngine::new(SEED);
    e.set(Fault::trim(TrimMode::DropOwnTerm)).unwrap();
    // Leader of term 4 sends entries of terms 2, 2 and its own no-op of term 4.
    let d = run(
        &mut e,
        &[(link("n1", "n2"), append(4, 3, &[2, 2, 4]), Duration::ZERO)],
    );
    assert_eq!(d, vec!["append n1→n2 t4 i3 c5 +2[t2×2] (trimmed)"]);
    // Only own-term entries: a heartbeat with the same prev remains.
    let d = run(
        &mut e,
        &[(link("n1", "n2"), append(4, 6, &[4]), Duration::ZERO)],
    );
    assert_eq!(d, vec!["append n1→n2 t4 i6 c6 (trimmed)"]);
    // Nothing of the own term: untouched and not counted.
    let d = run(
        &mut e,
        &[(link("n1", "n2"), append(4, 6, &[3]), Duration::ZERO)],
    );
    assert_eq!(d, vec!["append n1→n2 t4 i6 c7 +1[t3]"]);
    assert_eq!(e.counters().trimmed, 2);
    assert_eq!(e.counters().entries_trimmed, 2);
}

#[test]
fn trim_keep_at_most_n_keeps_a_prefix_of_n() {
    let mut e = FaultEngine::new(SEED);
    e.set(Fault::trim(TrimMode::KeepAtMost(1))).unwrap();
    let d = run(
        &mut e,
        &[(link("n1", "n2"), append(2, 0, &[1, 2, 2]), Duration::ZERO)],
    );
    assert_eq!(d, vec!["append n1→n2 t2 i0 c1 +1[t1] (trimmed)"]);
}

#[test]
fn delay_without_jitter_keeps_order_and_adds_the_delay() {
    let mut e = FaultEngine::new(SEED);
    e.set(Fault::parse("msg-delay delay-ms=30").unwrap())
        .unwrap();
    let mut out = Vec::new();
    for (l, m, now) in six_appends() {
        e.on_message(&l, m, now, &mut out);
    }
    for (i, d) in out.iter().enumerate() {
        assert_eq!(d.at, Duration::from_millis(30 + i as u64));
    }
    assert_eq!(e.counters().delayed, 6);
    // With jitter as large as the spacing times six, order is no longer kept (seed 42).
    e.set(Fault::delay(
        Duration::from_millis(30),
        Duration::from_millis(6),
    ))
    .unwrap();
    let d = run(&mut e, &six_appends());
    assert_ne!(prevs(&d), vec![0, 1, 2, 3, 4, 5]);
    assert!(Fault::parse("msg-delay p=0.5").is_err());
}

#[test]
fn a_cut_link_drops_everything_while_the_opposite_link_passes() {
    let mut e = FaultEngine::new(SEED);
    e.set_cuts([link("n1", "n2")].into_iter().collect());
    let d = run(
        &mut e,
        &[
            (link("n1", "n2"), append(1, 0, &[1]), Duration::ZERO),
            (link("n2", "n1"), append_resp(1, 0), Duration::ZERO),
        ],
    );
    assert_eq!(d, vec!["append-resp n2→n1 t1 i0 ok"]);
    assert_eq!(e.counters().cut, 1);
    e.set_cuts(BTreeSet::new());
    let d = run(
        &mut e,
        &[(link("n1", "n2"), append(1, 0, &[1]), Duration::ZERO)],
    );
    assert_eq!(d.len(), 1);
}

#[test]
fn faults_restricted_to_links_leave_other_links_alone() {
    let mut e = FaultEngine::new(SEED);
    e.set(Fault::parse("msg-loss p=1 from=n3").unwrap())
        .unwrap();
    let d = run(&mut e, &six_appends());
    assert_eq!(d.len(), 6);
    e.set(Fault::parse("msg-loss p=1 links=n1>n2").unwrap())
        .unwrap();
    assert!(run(&mut e, &six_appends()).is_empty());
}

#[test]
fn combined_faults_apply_together_and_clearing_one_keeps_the_others() {
    let mut e = FaultEngine::new(SEED);
    e.set(Fault::dup(1.0)).unwrap();
    e.set(Fault::trim(TrimMode::KeepAtMost(0))).unwrap();
    let d = run(
        &mut e,
        &[(link("n1", "n2"), append(1, 0, &[1]), Duration::ZERO)],
    );
    assert_eq!(
        d,
        vec![
            "append n1→n2 t1 i0 c0 (trimmed)",
            "append n1→n2 t1 i0 c0 (dup, trimmed)"
        ]
    );
    assert!(e.clear(FaultName::Trim));
    assert!(!e.clear(FaultName::Trim));
    let d = run(
        &mut e,
        &[(link("n1", "n2"), append(1, 0, &[1]), Duration::ZERO)],
    );
    assert_eq!(d.len(), 2);
    assert!(!d[0].contains("trimmed"));
    e.heal();
    assert_eq!(e.active().count(), 0);
}

#[test]
fn the_wire_view_follows_terms_and_leaders() {
    let mut e = FaultEngine::new(SEED);
    let mut out = Vec::new();
    let l = link("n1", "n2");
    e.on_message(&l, vote("n1", "n2", 3, true), Duration::ZERO, &mut out);
    assert_eq!(e.view().term, 0, "a pre-vote's term is only prospective");
    assert!(e.on_message(&l, vote("n1", "n2", 3, false), Duration::ZERO, &mut out));
    assert_eq!(e.view().nodes["n1"].role, SeenRole::Candidate);
    assert_eq!(e.view().current_leader(), None);
    assert!(e.on_message(&l, append(3, 0, &[3]), Duration::from_millis(5), &mut out));
    assert_eq!(e.view().current_leader().map(String::as_str), Some("n1"));
    assert_eq!(e.view().leader_since, Some(Duration::from_millis(5)));
    assert!(!e.on_message(&l, append(3, 1, &[]), Duration::from_millis(6), &mut out));
    assert_eq!(e.view().leader_since, Some(Duration::from_millis(5)));
    // A higher term seen anywhere: the old leader is no longer current.
    let l3 = link("n3", "n1");
    e.on_message(
        &l3,
        vote("n3", "n1", 4, false),
        Duration::from_millis(7),
        &mut out,
    );
    assert_eq!(e.view().current_leader(), None);
    assert_eq!(e.view().leader, Some(("n1".to_string(), 3)));
    // Seen even on a cut link.
    e.set_cuts([l3.clone()].into_iter().collect());
    let mut a = append(4, 0, &[]);
    a.from = "n3".into();
    a.to = "n1".into();
    e.on_message(&l3, a.clone(), Duration::from_millis(8), &mut out);
    assert_eq!(e.view().current_leader().map(String::as_str), Some("n3"));
    e.on_message(
        &link("n2", "n1"),
        append_resp(4, 9),
        Duration::from_millis(8),
        &mut out,
    );
    assert_eq!(e.view().nodes["n2"].matched, Some((4, 9)));
    // Two senders of appends in one term.
    a.from = "n2".into();
    e.on_message(&link("n2", "n1"), a, Duration::from_millis(9), &mut out);
    assert_eq!(
        e.view().two_leaders,
        Some((4, "n3".to_string(), "n2".to_string()))
    );
}

#[test]
fn link_rngs_differ_per_link_and_stay_fixed_per_seed() {
    assert_eq!(
        link_seed(1, &link("n1", "n2")),
        link_seed(1, &link("n1", "n2"))
    );
    assert_ne!(
        link_seed(1, &link("n1", "n2")),
        link_seed(1, &link("n2", "n1"))
    );
    assert_ne!(
        link_seed(1, &link("n1", "n2")),
        link_seed(2, &link("n1", "n2"))
    );
    assert_ne!(
        link_seed(1, &link("n1", "n23")),
        link_seed(1, &link("n12", "n3"))
    );
}

#[test]
fn bad_fault_parameters_are_errors_naming_the_field() {
    let e = Fault::parse("msg-loss p=1.5").unwrap_err().to_string();
    assert!(e.contains("`p`") && e.contains("1.5"), "{e}");
    let e = Fault::parse("msg-dup q=1").unwrap_err().to_string();
    assert!(e.contains("q=1"), "{e}");
    let e = Fault::parse("msg-drop p=1").unwrap_err().to_string();
    assert!(e.contains("msg-drop"), "{e}");
    let e = Fault::parse("msg-loss kinds=appends")
        .unwrap_err()
        .to_string();
    assert!(e.contains("appends"), "{e}");
    let e = Fault::parse("msg-replay depth=0").unwrap_err().to_string();
    assert!(e.contains("depth"), "{e}");
    let e = Fault::parse("msg-trim mode=keep:x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("keep:x"), "{e}");
    assert_eq!(
        Fault::parse("msg-reorder p=0.5 delay-ms=40").unwrap(),
        Fault::Reorder {
            p: 0.5,
            max_delay: Duration::from_millis(40),
            kinds: KindFilter::ALL,
            links: LinkSel::All
        }
    );
    let mut eng: FaultEngine = FaultEngine::new(SEED);
    assert!(eng.set(Fault::loss(-0.1)).is_err());
}

/// A non-Raft message, as the Maelstrom router would have.
#[derive(Debug, Clone, PartialEq)]
struct Line(u32);

impl WireMessage for Line {
    fn kind(&self) -> Kind {
        Kind::Other
    }
}

#[test]
fn the_engine_works_on_messages_that_are_not_raft() {
    let mut e: FaultEngine<Line> = FaultEngine::new(SEED);
    e.set(Fault::loss(1.0).kinds(KindFilter::parse("append").unwrap()))
        .unwrap();
    e.set(Fault::trim(TrimMode::KeepAtMost(0))).unwrap();
    e.set(Fault::dup(1.0)).unwrap();
    let mut out = Vec::new();
    let l = link("n1", "n2");
    e.on_message(&l, Line(1), Duration::ZERO, &mut out);
    let got: Vec<(u32, Cause)> = out.iter().map(|d| (d.msg.0, d.cause)).collect();
    assert_eq!(got, vec![(1, Cause::Original), (1, Cause::Duplicate)]);
    e.heal();
    e.set(Fault::replay(1.0).kinds(KindFilter::parse("other").unwrap()))
        .unwrap();
    out.clear();
    e.on_message(&l, Line(2), Duration::ZERO, &mut out);
    assert_eq!(
        out.last().map(|d| (d.msg.0, d.cause)),
        Some((1, Cause::Replay))
    );
    assert_eq!(e.view(), &WireView::default(), "nothing observed");
}

#[test]
fn trim_hold_commit_drops_later_appends_that_tell_a_higher_commit() {
    let mut e = FaultEngine::new(SEED);
    e.set(Fault::parse("msg-trim mode=own-term hold-commit=true").unwrap())
        .unwrap();
    let d = run(
        &mut e,
        &[
            // Trimmed to the old-term entries: tells commit 5, the link's ceiling.
            (link("n1", "n2"), append(4, 3, &[2, 2, 4]), Duration::ZERO),
            // The leader committed more: this one would tell commit 6, and is dropped.
            (link("n1", "n2"), append(4, 5, &[4]), Duration::ZERO),
            // Commit 4, below the ceiling: passes.
            (link("n1", "n2"), append(4, 3, &[2]), Duration::ZERO),
            // Another link has no ceiling yet.
            (link("n1", "n3"), append(4, 5, &[3]), Duration::ZERO),
        ],
    );
    assert_eq!(
        d,
        vec![
            "append n1→n2 t4 i3 c5 +2[t2×2] (trimmed)",
            "append n1→n2 t4 i3 c4 +1[t2]",
            "append n1→n2 t4 i5 c6 +1[t3]",
        ]
    );
    assert_eq!(e.counters().held_commits, 1);
    // Clearing the fault forgets the ceilings.
    e.clear(FaultName::Trim);
    let d = run(
        &mut e,
        &[(link("n1", "n2"), append(4, 5, &[4]), Duration::ZERO)],
    );
    assert_eq!(d, vec!["append n1→n2 t4 i5 c6 +1[t4]"]);
}

#[test]
fn trim_hold_commit_cap_delivers_later_appends_with_the_commit_lowered_to_the_ceiling() {
    let mut e = FaultEngine::new(SEED);
    e.set(Fault::parse("msg-trim mode=all hold-commit=cap").unwrap())
        .unwrap();
    let d = run(
        &mut e,
        &[
            // The first append sets the ceiling: commit 5 (i3 + 2 entries bounds it at 5).
            (link("n1", "n2"), append(4, 3, &[4, 4]), Duration::ZERO),
            // The leader committed more (6, 7): delivered, entries and all, telling 5.
            (link("n1", "n2"), append(4, 5, &[4]), Duration::ZERO),
            (link("n1", "n2"), append(4, 6, &[4]), Duration::ZERO),
        ],
    );
    assert_eq!(
        d,
        vec![
            "append n1→n2 t4 i3 c5 +2[t4×2]",
            "append n1→n2 t4 i5 c5 +1[t4]",
            "append n1→n2 t4 i6 c5 +1[t4]",
        ]
    );
    assert_eq!(e.counters().held_commits, 2);
    assert_eq!(e.counters().lost, 0);
    assert!(Fault::parse("msg-trim hold-commit=maybe")
        .unwrap_err()
        .to_string()
        .contains("hold-commit"));
}
