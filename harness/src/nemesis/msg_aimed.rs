//! Aimed message nemeses: `msg-figure8`, `msg-stale-vote` and `msg-first-commit`
//! ([`FirstCommitKind`]). `msg-figure8`: an **aimed** message nemesis for Raft's Figure 8 (a leader committing an
//! entry of an older term by counting replicas, `commit-old-term`). Random message faults
//! almost never produce the interleaving, so this one watches the terms and leaders the relay
//! sees on the wire ([`crate::net::message::faults::WireView`]) and steers:
//!
//! 1. **strand**: the current leader `L` and a group `F` of ⌊(n−1)/2⌋−1 others (drawn from
//!    the schedule's seed) are cut off from the rest `R` (a majority); appends and snapshots
//!    sent by `R` are dropped. `L` keeps appending client writes of its term that reach only
//!    `F`; `R` elects a leader `M` whose entries stay on `M`.
//! 2. **re-elect**: `M` is cut off from everyone, the rest healed, and every append `L` sends
//!    is trimmed to the entries of older terms than its own (`msg-trim mode=own-term`: what a
//!    leader under a size limit could legally send), and once a follower got a trimmed append,
//!    later appends telling it a higher commit index are dropped (`hold-commit`: as if `L`
//!    crashed right after committing). Once `L` leads again, its old-term entries reach a
//!    majority without its new term's no-op. A correct leader commits nothing; one with
//!    `commit-old-term` commits them and acknowledges the writes, and no follower learns it.
//! 3. **overwrite**: `L` and `F` are cut off, `M` healed: `M`'s log ends in a later term than
//!    the old entries, so the majority elects it and it overwrites them.
//!
//! Each phase waits for what the wire shows (a new leader) up to a deadline; a phase that
//! does not happen in time ends the fault early and the history's `note` says where. Seeded
//! and replayable as far as elections are: which members form `F` and every hold time come
//! from the schedule; which member wins an election does not. The stop event carries the
//! steps taken (`steps`) and the relay's counters over the period (`counts`). Needs
//! `--net message`, ≥ 3 members; not part of `all`.

use super::msg::{relay, Counts};
use super::{BoxFuture, Fault, FaultKind, Held, Needs, Started};
use crate::cluster::Cluster;
use crate::net::message::faults::{self as mf, KindFilter, LinkSel, TrimMode};
use crate::net::message::relay::RelayControl;
use crate::net::message::wire::Kind as MsgKind;
use crate::net::Link;
use crate::recorder::Recorder;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a phase waits for the election it needs.
const ELECTION_DEADLINE: Duration = Duration::from_secs(4);

/// The `msg-figure8` fault kind.
pub struct Figure8Kind;

impl FaultKind for Figure8Kind {
    fn name(&self) -> &'static str {
        "msg-figure8"
    }
    fn in_all(&self) -> bool {
        false
    }
    fn needs(&self) -> Needs {
        Needs {
            link_cuts: true,
            messages: true,
            ..Needs::default()
        }
    }
    fn plan(&self, _nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        Arc::new(Figure8 {
            group_seed: rng.gen(),
            strand_ms: rng.gen_range(300..=800),
            commit_ms: rng.gen_range(800..=1500),
            overwrite_ms: rng.gen_range(1000..=2000),
            steps: Mutex::new(Vec::new()),
            counts: Mutex::new(Counts::default()),
        })
    }
}

/// One planned Figure 8 attempt. See the module docs.
#[derive(Debug)]
pub struct Figure8 {
    /// Seeds the choice of `F` among the members other than the leader.
    pub group_seed: u64,
    /// How long `M` leads alone once elected (its entries pile up locally).
    pub strand_ms: u64,
    /// How long `L` leads with trimmed appends.
    pub commit_ms: u64,
    /// How long the majority has without `L` and `F` once `M` leads again.
    pub overwrite_ms: u64,
    steps: Mutex<Vec<Value>>,
    counts: Mutex<Counts>,
}

impl Clone for Figure8 {
    fn clone(&self) -> Figure8 {
        Figure8 {
            group_seed: self.group_seed,
            strand_ms: self.strand_ms,
            commit_ms: self.commit_ms,
            overwrite_ms: self.overwrite_ms,
            steps: Mutex::new(Vec::new()),
            counts: Mutex::new(Counts::default()),
        }
    }
}

/// Every link between `a` and `b`, both ways.
fn between(a: &BTreeSet<String>, b: &BTreeSet<String>) -> BTreeSet<Link> {
    let mut out = BTreeSet::new();
    for x in a {
        for y in b {
            if x != y {
                out.insert((x.clone(), y.clone()));
                out.insert((y.clone(), x.clone()));
            }
        }
    }
    out
}

/// Waits until the wire shows a current leader in `among` at a term above `above`.
async fn leader_in(
    r: &RelayControl,
    among: &BTreeSet<String>,
    above: u64,
) -> Option<(String, u64)> {
    leader_within(r, among, above, ELECTION_DEADLINE).await
}

/// [`leader_in`] with its own deadline.
async fn leader_within(
    r: &RelayControl,
    among: &BTreeSet<String>,
    above: u64,
    deadline: Duration,
) -> Option<(String, u64)> {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let v = r.view();
        if let Some(l) = v.current_leader() {
            if among.contains(l) && v.term > above {
                return Some((l.clone(), v.term));
            }
        }
        if tokio::time::Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Figure8 {
    fn step(&self, r: &RelayControl, what: Value) {
        let mut v = what;
        v["at_ms"] = json!(r.now().as_millis() as u64);
        self.steps.lock().unwrap_or_else(|p| p.into_inner()).push(v);
    }

    /// Runs the three phases; `Err` names the phase that did not happen.
    async fn run(&self, cluster: &Cluster, r: &RelayControl) -> anyhow::Result<Option<String>> {
        let ids: BTreeSet<String> = cluster.ids().into_iter().collect();
        anyhow::ensure!(ids.len() >= 3, "msg-figure8 needs at least 3 members");
        let all = ids.clone();
        let Some((l, t1)) = leader_in(r, &all, 0).await else {
            return Ok(Some("no leader on the wire: nothing done".into()));
        };
        let mut others: Vec<String> = ids.iter().filter(|x| **x != l).cloned().collect();
        others.shuffle(&mut StdRng::seed_from_u64(self.group_seed));
        let f_size = (ids.len() - 1) / 2 - 1;
        let mut group: BTreeSet<String> = others[..f_size].iter().cloned().collect();
        group.insert(l.clone());
        let rest: BTreeSet<String> = ids.difference(&group).cloned().collect();

        // 1. strand
        cluster.net.set_cuts(&between(&group, &rest))?;
        r.set_fault(
            mf::Fault::loss(1.0)
                .kinds(KindFilter::only(&[MsgKind::Append, MsgKind::Snapshot]))
                .on(LinkSel::From(rest.clone())),
        )?;
        self.step(
            r,
            json!({"phase": "strand", "leader": l, "term": t1, "group": group, "rest": rest}),
        );
        let Some((m, t2)) = leader_in(r, &rest, t1).await else {
            return Ok(Some("strand: the rest elected no leader in time".into()));
        };
        self.step(
            r,
            json!({"phase": "stranded-leader", "leader": m, "term": t2}),
        );
        tokio::time::sleep(Duration::from_millis(self.strand_ms)).await;

        // 2. re-elect
        let only_m: BTreeSet<String> = [m.clone()].into();
        r.clear_fault(mf::FaultName::Loss);
        r.set_fault(mf::Fault::Trim {
            p: 1.0,
            mode: TrimMode::DropOwnTerm,
            links: LinkSel::From([l.clone()].into()),
            hold_commit: mf::HoldCommit::Drop,
        })?;
        cluster.net.set_cuts(&between(&only_m, &all))?;
        self.step(r, json!({"phase": "re-elect", "isolated": m}));
        let Some((l2, t3)) = leader_in(r, &[l.clone()].into(), t2).await else {
            return Ok(Some(format!("re-elect: {l} did not lead again in time")));
        };
        self.step(
            r,
            json!({"phase": "trimmed-leader", "leader": l2, "term": t3}),
        );
        tokio::time::sleep(Duration::from_millis(self.commit_ms)).await;

        // 3. overwrite
        r.clear_fault(mf::FaultName::Trim);
        cluster.net.set_cuts(&between(&group, &all))?;
        self.step(r, json!({"phase": "overwrite", "isolated": group}));
        let Some((m2, t4)) = leader_in(r, &rest, t3).await else {
            return Ok(Some("overwrite: the rest elected no leader in time".into()));
        };
        self.step(
            r,
            json!({"phase": "overwriting-leader", "leader": m2, "term": t4, "aimed": m2 == m}),
        );
        tokio::time::sleep(Duration::from_millis(self.overwrite_ms)).await;
        Ok(None)
    }

    fn undo(&self, cluster: &Cluster, r: &RelayControl) -> anyhow::Result<()> {
        r.clear_fault(mf::FaultName::Loss);
        r.clear_fault(mf::FaultName::Trim);
        cluster.net.set_cuts(&BTreeSet::new())
    }
}

impl Fault for Figure8 {
    fn family(&self) -> &'static str {
        "msg-figure8"
    }
    fn fields(&self) -> Value {
        let mut v = json!({
            "group_seed": self.group_seed,
            "strand_ms": self.strand_ms,
            "commit_ms": self.commit_ms,
            "overwrite_ms": self.overwrite_ms,
        });
        let steps = self.steps.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !steps.is_empty() {
            v["steps"] = json!(steps);
        }
        if let Some(c) = self.counts.lock().unwrap_or_else(|p| p.into_inner()).json() {
            v["counts"] = c;
        }
        v
    }
    fn label(&self) -> String {
        "msg-figure8 (aimed)".into()
    }
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        Box::pin(async move {
            let applied = self.clone();
            let (error, note) = match relay(cluster) {
                Err(e) => (Some(format!("{e:#}")), None),
                Ok(r) => {
                    applied
                        .counts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .begin(&r);
                    match applied.run(cluster, &r).await {
                        Ok(note) => {
                            if note.is_some() {
                                // Ended early: heal now rather than hold a half-done fault.
                                let _ = applied.undo(cluster, &r);
                            }
                            (None, note)
                        }
                        Err(e) => {
                            let _ = applied.undo(cluster, &r);
                            (Some(format!("{e:#}")), None)
                        }
                    }
                }
            };
            Started {
                fault: Arc::new(applied),
                error,
                note,
            }
        })
    }
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let r = relay(cluster)?;
        let res = self.undo(cluster, &r);
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .end(&r);
        res
    }
}

/// The `msg-stale-vote` fault kind: an aimed nemesis for `vote-any-log` (a voter granting
/// its vote to a candidate whose log is behind its own).
///
/// 1. **lag**: with leader `L`, one follower `B` (drawn from the seed) gets `L`'s messages
///    `lag_ms` late (`msg-delay` on `L → B`; 60–120 ms, below the node's smallest election
///    timeout of 150 ms, so `B` keeps hearing heartbeats and never campaigns during the lag),
///    and every other follower `A` never learns a commit index above the one it knew when the
///    fault started (`msg-trim mode=all hold-commit=cap` on `L → A`: appends still arrive, with
///    their commit index lowered, so `A` keeps storing entries and never campaigns either).
///    `L` keeps committing with `A` and acknowledging writes; those of the last `lag_ms` are
///    not on `B` yet, and `A` does not know any of them is committed.
/// 2. **stale election**: `L` is cut off both ways; vote requests from every `A` are dropped,
///    so only `B` can campaign. A correct `A` refuses `B` (its log is behind) and the cluster
///    waits; with `vote-any-log` `B` wins and overwrites what `L` acknowledged.
///
/// Seeded (the choice of `B`, the lag and hold times) and replayable as far as elections
/// are. The stop event carries `steps` and `counts`. Needs `--net message`; not in `all`.
pub struct StaleVoteKind;

impl FaultKind for StaleVoteKind {
    fn name(&self) -> &'static str {
        "msg-stale-vote"
    }
    fn in_all(&self) -> bool {
        false
    }
    fn needs(&self) -> Needs {
        Needs {
            link_cuts: true,
            messages: true,
            ..Needs::default()
        }
    }
    fn plan(&self, _nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        Arc::new(StaleVote {
            pick_seed: rng.gen(),
            lag_ms: rng.gen_range(60..=120),
            lag_hold_ms: rng.gen_range(800..=1500),
            elected_ms: rng.gen_range(1000..=2000),
            steps: Mutex::new(Vec::new()),
            counts: Mutex::new(Counts::default()),
        })
    }
}

/// One planned `msg-stale-vote` attempt. See [`StaleVoteKind`].
#[derive(Debug)]
pub struct StaleVote {
    pub pick_seed: u64,
    /// How late `B` gets `L`'s messages.
    pub lag_ms: u64,
    /// How long `L` leads with a lagging `B` and commit-blind `A`s.
    pub lag_hold_ms: u64,
    /// How long `B` leads once elected.
    pub elected_ms: u64,
    steps: Mutex<Vec<Value>>,
    counts: Mutex<Counts>,
}

impl Clone for StaleVote {
    fn clone(&self) -> StaleVote {
        StaleVote {
            pick_seed: self.pick_seed,
            lag_ms: self.lag_ms,
            lag_hold_ms: self.lag_hold_ms,
            elected_ms: self.elected_ms,
            steps: Mutex::new(Vec::new()),
            counts: Mutex::new(Counts::default()),
        }
    }
}

impl StaleVote {
    fn step(&self, r: &RelayControl, what: Value) {
        let mut v = what;
        v["at_ms"] = json!(r.now().as_millis() as u64);
        self.steps.lock().unwrap_or_else(|p| p.into_inner()).push(v);
    }

    async fn run(&self, cluster: &Cluster, r: &RelayControl) -> anyhow::Result<Option<String>> {
        let ids: BTreeSet<String> = cluster.ids().into_iter().collect();
        anyhow::ensure!(ids.len() >= 3, "msg-stale-vote needs at least 3 members");
        let Some((l, t1)) = leader_in(r, &ids, 0).await else {
            return Ok(Some("no leader on the wire: nothing done".into()));
        };
        let others: Vec<String> = ids.iter().filter(|x| **x != l).cloned().collect();
        let b = others[StdRng::seed_from_u64(self.pick_seed).gen_range(0..others.len())].clone();
        let a: BTreeSet<String> = others.iter().filter(|x| **x != b).cloned().collect();
        let to_a: BTreeSet<Link> = a.iter().map(|x| (l.clone(), x.clone())).collect();

        // 1. lag
        r.set_fault(
            mf::Fault::delay(Duration::from_millis(self.lag_ms), Duration::ZERO)
                .on(LinkSel::Links([(l.clone(), b.clone())].into())),
        )?;
        r.set_fault(mf::Fault::Trim {
            p: 1.0,
            mode: TrimMode::KeepAll,
            links: LinkSel::Links(to_a),
            hold_commit: mf::HoldCommit::Cap,
        })?;
        self.step(
            r,
            json!({"phase": "lag", "leader": l, "term": t1, "lagging": b, "commit_blind": a}),
        );
        tokio::time::sleep(Duration::from_millis(self.lag_hold_ms)).await;

        // 2. stale election
        cluster.net.set_cuts(&between(&[l.clone()].into(), &ids))?;
        r.set_fault(
            mf::Fault::loss(1.0)
                .kinds(KindFilter::only(&[MsgKind::Vote]))
                .on(LinkSel::From(a.clone())),
        )?;
        self.step(r, json!({"phase": "stale-election", "isolated": l}));
        // The voters first wait out their leader (two election rounds): a longer deadline.
        let Some((b2, t2)) = leader_within(r, &[b.clone()].into(), t1, 2 * ELECTION_DEADLINE).await
        else {
            return Ok(Some(format!("stale-election: {b} was not elected in time")));
        };
        self.step(
            r,
            json!({"phase": "stale-leader", "leader": b2, "term": t2}),
        );
        tokio::time::sleep(Duration::from_millis(self.elected_ms)).await;
        Ok(None)
    }

    fn undo(&self, cluster: &Cluster, r: &RelayControl) -> anyhow::Result<()> {
        r.clear_fault(mf::FaultName::Delay);
        r.clear_fault(mf::FaultName::Trim);
        r.clear_fault(mf::FaultName::Loss);
        cluster.net.set_cuts(&BTreeSet::new())
    }
}

impl Fault for StaleVote {
    fn family(&self) -> &'static str {
        "msg-stale-vote"
    }
    fn fields(&self) -> Value {
        let mut v = json!({
            "pick_seed": self.pick_seed,
            "lag_ms": self.lag_ms,
            "lag_hold_ms": self.lag_hold_ms,
            "elected_ms": self.elected_ms,
        });
        let steps = self.steps.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !steps.is_empty() {
            v["steps"] = json!(steps);
        }
        if let Some(c) = self.counts.lock().unwrap_or_else(|p| p.into_inner()).json() {
            v["counts"] = c;
        }
        v
    }
    fn label(&self) -> String {
        "msg-stale-vote (aimed)".into()
    }
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        Box::pin(async move {
            let applied = self.clone();
            let (error, note) = match relay(cluster) {
                Err(e) => (Some(format!("{e:#}")), None),
                Ok(r) => {
                    applied
                        .counts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .begin(&r);
                    match applied.run(cluster, &r).await {
                        Ok(note) => {
                            if note.is_some() {
                                let _ = applied.undo(cluster, &r);
                            }
                            (None, note)
                        }
                        Err(e) => {
                            let _ = applied.undo(cluster, &r);
                            (Some(format!("{e:#}")), None)
                        }
                    }
                }
            };
            Started {
                fault: Arc::new(applied),
                error,
                note,
            }
        })
    }
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let r = relay(cluster)?;
        let res = self.undo(cluster, &r);
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .end(&r);
        res
    }
}

/// The `msg-first-commit` fault kind: an aimed nemesis for a fresh leader that serves reads
/// (or counts anything as committed) before it has committed an entry of its own term
/// (Raft §6.4, §8: `read-index-before-term-commit`).
///
/// Each round, while the hold lasts:
/// 1. **commit-blind followers**: with leader `L` on the wire, every append `L` sends has its
///    commit index capped at what it told first (`msg-trim mode=all hold-commit=cap` on
///    `L → *`). `L` keeps committing and acknowledging writes for `cap_ms`; its followers
///    store the entries but never learn they are committed.
/// 2. **blind leader**: `L` is cut off both ways, and every append the others send is trimmed
///    to no entries (`msg-trim mode=keep:0`: a heartbeat at the same `prev`, what a leader
///    under a size limit may send). The majority elects `F`, whose commit index is behind
///    what `L` acknowledged; `F`'s heartbeats (with their ReadIndex sequence) reach a
///    majority and are acknowledged, but its no-op never does, so it cannot commit. For
///    `blind_ms` clients read through `F` (the run's read bursts follow each leader change).
///    A correct `F` holds every read until its no-op commits (after the heal); one that
///    serves a ReadIndex at its stale commit index answers reads that miss acknowledged
///    writes: stale reads.
/// 3. **heal** for `rest_ms`; the next round starts from whoever leads then.
///
/// Seeded (every round's times) and replayable as far as elections are (who wins is not in
/// the seed). Each round is recorded (`aim-cap`, `aim-isolate`, `aim-blind-leader`,
/// `aim-heal`), and the stop event carries the relay's counters over the hold. Needs
/// `--net message`, ≥ 3 members; part of `thorough` on the message network.
pub struct FirstCommitKind;

/// Rounds drawn per fault (a hold longer than these reuses them cyclically).
const FIRST_COMMIT_ROUNDS: usize = 16;

impl FaultKind for FirstCommitKind {
    fn name(&self) -> &'static str {
        "msg-first-commit"
    }
    fn in_all(&self) -> bool {
        false
    }
    fn needs(&self) -> Needs {
        Needs {
            link_cuts: true,
            messages: true,
            ..Needs::default()
        }
    }
    fn plan(&self, _nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        let rounds = (0..FIRST_COMMIT_ROUNDS)
            .map(|_| FirstCommitRound {
                cap_ms: rng.gen_range(200..=500),
                blind_ms: rng.gen_range(400..=900),
                rest_ms: rng.gen_range(100..=300),
            })
            .collect();
        Arc::new(FirstCommit {
            rounds,
            counts: Mutex::new(Counts::default()),
        })
    }
}

/// One `msg-first-commit` round's seeded times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstCommitRound {
    /// How long `L` commits with commit-blind followers.
    pub cap_ms: u64,
    /// How long the fresh leader `F` leads without being able to commit.
    pub blind_ms: u64,
    /// How long the healed cluster has before the next round.
    pub rest_ms: u64,
}

/// A planned `msg-first-commit` fault. See [`FirstCommitKind`].
#[derive(Debug)]
pub struct FirstCommit {
    pub rounds: Vec<FirstCommitRound>,
    counts: Mutex<Counts>,
}

impl Clone for FirstCommit {
    fn clone(&self) -> FirstCommit {
        FirstCommit {
            rounds: self.rounds.clone(),
            counts: Mutex::new(Counts::default()),
        }
    }
}

impl FirstCommit {
    fn undo(&self, cluster: &Cluster, r: &RelayControl) -> anyhow::Result<()> {
        r.clear_fault(mf::FaultName::Trim);
        cluster.net.set_cuts(&BTreeSet::new())
    }

    /// The rounds of one hold; returns how many reached a blind leader.
    async fn rounds(
        &self,
        cluster: &Cluster,
        r: &RelayControl,
        recorder: &Recorder,
        until: Instant,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<usize> {
        let ids: BTreeSet<String> = cluster.ids().into_iter().collect();
        anyhow::ensure!(ids.len() >= 3, "msg-first-commit needs at least 3 members");
        let over = |stop: &watch::Receiver<bool>| Instant::now() >= until || *stop.borrow();
        let mut n = 0;
        for i in 0.. {
            let round = self.rounds[i % self.rounds.len()];
            // 1. a leader on the wire; its followers become commit-blind.
            let Some((l, t1)) = wire_leader(r, &ids, 0, until, stop).await else {
                break;
            };
            r.set_fault(mf::Fault::Trim {
                p: 1.0,
                mode: TrimMode::KeepAll,
                links: LinkSel::From([l.clone()].into()),
                hold_commit: mf::HoldCommit::Cap,
            })?;
            recorder.nemesis("aim-cap", json!({"node": l, "term": t1}));
            if !nap(round.cap_ms, until, stop).await {
                break;
            }
            // 2. cut it off; whoever the others elect cannot send a single entry.
            let only_l: BTreeSet<String> = [l.clone()].into();
            let rest: BTreeSet<String> = ids.difference(&only_l).cloned().collect();
            r.set_fault(mf::Fault::Trim {
                p: 1.0,
                mode: TrimMode::KeepAtMost(0),
                links: LinkSel::From(rest.clone()),
                hold_commit: mf::HoldCommit::Off,
            })?;
            cluster.net.set_cuts(&between(&only_l, &rest))?;
            recorder.nemesis("aim-isolate", json!({"node": l, "term": t1}));
            if let Some((f, t2)) = wire_leader(r, &rest, t1, until, stop).await {
                recorder.nemesis("aim-blind-leader", json!({"node": f, "term": t2}));
                n += 1;
                nap(round.blind_ms, until, stop).await;
            }
            // 3. heal.
            self.undo(cluster, r)?;
            recorder.nemesis("aim-heal", json!({}));
            if over(stop) || !nap(round.rest_ms, until, stop).await {
                break;
            }
        }
        Ok(n)
    }
}

/// Sleeps `ms` (not past `until`); false if the hold is over.
async fn nap(ms: u64, until: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    let at = (Instant::now() + Duration::from_millis(ms)).min(until);
    super::sleep_until(at, stop).await && Instant::now() < until
}

/// Waits (until the hold ends) for the wire to show a current leader in `among` at a term
/// above `above`.
async fn wire_leader(
    r: &RelayControl,
    among: &BTreeSet<String>,
    above: u64,
    until: Instant,
    stop: &mut watch::Receiver<bool>,
) -> Option<(String, u64)> {
    loop {
        let v = r.view();
        if let Some(l) = v.current_leader() {
            if among.contains(l) && v.term > above {
                return Some((l.clone(), v.term));
            }
        }
        if !nap(20, until, stop).await {
            return None;
        }
    }
}

impl Fault for FirstCommit {
    fn family(&self) -> &'static str {
        "msg-first-commit"
    }
    fn fields(&self) -> Value {
        let mut v = json!({
            "cap_ms": self.rounds.iter().take(4).map(|r| r.cap_ms).collect::<Vec<_>>(),
            "blind_ms": self.rounds.iter().take(4).map(|r| r.blind_ms).collect::<Vec<_>>(),
        });
        if let Some(c) = self.counts.lock().unwrap_or_else(|p| p.into_inner()).json() {
            v["counts"] = c;
        }
        v
    }
    fn label(&self) -> String {
        "msg-first-commit (aimed)".into()
    }
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        // The work happens in `hold`, round after round.
        Box::pin(async move {
            let applied = self.clone();
            let error = match relay(cluster) {
                Ok(r) => {
                    applied
                        .counts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .begin(&r);
                    None
                }
                Err(e) => Some(format!("{e:#}")),
            };
            Started {
                fault: Arc::new(applied),
                error,
                note: None,
            }
        })
    }
    fn hold<'a>(
        &'a self,
        cluster: &'a Cluster,
        recorder: &'a Recorder,
        until: Instant,
        stop: &'a mut watch::Receiver<bool>,
    ) -> BoxFuture<'a, Held> {
        Box::pin(async move {
            let rounds = match relay(cluster) {
                Ok(r) => match self.rounds(cluster, &r, recorder, until, stop).await {
                    Ok(n) => n,
                    Err(e) => {
                        recorder.nemesis("aim-error", json!({"error": format!("{e:#}")}));
                        0
                    }
                },
                Err(_) => 0,
            };
            if Instant::now() < until {
                super::sleep_until(until, stop).await;
            }
            Held {
                interrupted: *stop.borrow(),
                rounds,
            }
        })
    }
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let r = relay(cluster)?;
        let res = self.undo(cluster, &r);
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .end(&r);
        res
    }
}
