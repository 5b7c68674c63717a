//! Aimed faults: faults that watch `/status` during their hold and strike where Raft breaks.
//!
//! - `kill-leader`: kill the leader; as soon as `/status` shows a leader of a newer term,
//!   restart the previous victim and, after a short seeded delay, kill the new leader; repeat
//!   until the hold ends (tens of leader changes in a 30 s run).
//! - `pause-leader`: the same with SIGSTOP / SIGCONT.
//! - `kill-in-election`: kill the leader, then kill a member the moment it reports the new
//!   term (it is voting or campaigning: a vote is in flight) and restart it a few tens of
//!   milliseconds later, within that term; restart the old leader; repeat.
//! - `isolate-new-leader`: cut the leader off; the moment the majority elects a new leader,
//!   move the cut to it (before its no-op has committed); repeat.
//! - `kill-majority`: kill a random majority for the hold, then restart it (planned targets).
//!
//! The targets of the first four are chosen at run time from `/status` (like
//! `isolate-leader`); everything else — the per-round delays and down times, the majority —
//! is drawn from the nemesis RNG when the schedule is planned, so a seed replays them. Each
//! round is recorded in the history as `aim-kill`/`aim-restart`, `aim-pause`/`aim-resume` or
//! `aim-isolate` events (value: `node`, `term`, `after_election_ms`: how long after the
//! harness first saw that member lead that term it was hit), inside the fault's own
//! `start-…`/`stop-…` window.

use super::kill::Kill;
use super::{started, BoxFuture, Fault, FaultKind, Held, Needs, Started};
use crate::cluster::{Cluster, MemberState};
use crate::recorder::Recorder;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the aimed faults poll `/status`.
const POLL: Duration = Duration::from_millis(10);
/// How long one `/status` may take during a hold.
const STATUS_TIMEOUT: Duration = Duration::from_millis(200);
/// Rounds drawn per fault (more rounds than fit in a hold reuse them cyclically).
const ROUNDS: usize = 64;

/// What an aimed fault does to its victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aim {
    KillLeader,
    PauseLeader,
    KillInElection,
    IsolateNewLeader,
}

impl Aim {
    fn name(self) -> &'static str {
        match self {
            Aim::KillLeader => "kill-leader",
            Aim::PauseLeader => "pause-leader",
            Aim::KillInElection => "kill-in-election",
            Aim::IsolateNewLeader => "isolate-new-leader",
        }
    }
}

impl FaultKind for Aim {
    fn name(&self) -> &'static str {
        Aim::name(*self)
    }
    fn in_all(&self) -> bool {
        false
    }
    fn needs(&self) -> Needs {
        Needs {
            link_cuts: *self == Aim::IsolateNewLeader,
            ..Needs::default()
        }
    }
    fn plan(&self, _nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        let rounds = (0..ROUNDS)
            .map(|_| Round {
                delay_ms: rng.gen_range(0..=60),
                down_ms: rng.gen_range(20..=150),
            })
            .collect();
        Arc::new(Aimed { aim: *self, rounds })
    }
}

/// One round's seeded timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Delay between seeing a fresh leader (or new term) and striking.
    pub delay_ms: u64,
    /// `kill-in-election`: how long the voter stays down.
    pub down_ms: u64,
}

/// A planned aimed fault.
#[derive(Debug, Clone)]
pub struct Aimed {
    pub aim: Aim,
    pub rounds: Vec<Round>,
}

impl Fault for Aimed {
    fn family(&self) -> &'static str {
        match self.aim {
            Aim::KillLeader | Aim::KillInElection => "kill",
            Aim::PauseLeader => "pause",
            Aim::IsolateNewLeader => "partition",
        }
    }
    fn fields(&self) -> Value {
        json!({
            "kind": self.aim.name(),
            "delays_ms": self.rounds.iter().take(4).map(|r| r.delay_ms).collect::<Vec<_>>(),
        })
    }
    fn label(&self) -> String {
        self.aim.name().to_string()
    }
    fn start<'a>(&'a self, _cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        // The work happens in `hold`, where the leader is watched.
        Box::pin(async move { started(self, Ok(()), None) })
    }
    fn hold<'a>(
        &'a self,
        cluster: &'a Cluster,
        recorder: &'a Recorder,
        until: Instant,
        stop: &'a mut watch::Receiver<bool>,
    ) -> BoxFuture<'a, Held> {
        Box::pin(async move {
            let mut h = Hold {
                cluster,
                recorder,
                until,
                stop,
                seen: Default::default(),
            };
            let rounds = match self.aim {
                Aim::KillLeader => h.leader_loop(self, false).await,
                Aim::PauseLeader => h.leader_loop(self, true).await,
                Aim::KillInElection => h.election_loop(self).await,
                Aim::IsolateNewLeader => h.isolate_loop(self).await,
            };
            Held {
                interrupted: *h.stop.borrow(),
                rounds,
            }
        })
    }
    /// Restarts, resumes and heals whatever the hold left hurt.
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let mut first = None;
        if self.aim == Aim::IsolateNewLeader {
            first = cluster.net.set_cuts(&BTreeSet::new()).err();
        }
        for id in cluster.ids() {
            let r = match (self.aim, cluster.state(&id)) {
                (Aim::PauseLeader, Some(MemberState::Paused)) => cluster.resume(&id),
                (Aim::KillLeader | Aim::KillInElection, Some(MemberState::Killed)) => {
                    cluster.start(&id)
                }
                _ => Ok(()),
            };
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// The state of one hold: the cluster, where to record, the deadline, and when each
/// (leader, term) was first seen.
struct Hold<'a> {
    cluster: &'a Cluster,
    recorder: &'a Recorder,
    until: Instant,
    stop: &'a mut watch::Receiver<bool>,
    seen: std::collections::BTreeMap<(String, u64), Instant>,
}

impl Hold<'_> {
    fn over(&self) -> bool {
        Instant::now() >= self.until || *self.stop.borrow()
    }

    async fn nap(&mut self, d: Duration) {
        let at = (Instant::now() + d).min(self.until);
        super::sleep_until(at, self.stop).await;
    }

    /// The leader of the highest term among the members that answer, with its term.
    async fn leader(&mut self) -> Option<(String, u64)> {
        let st = self.cluster.statuses(STATUS_TIMEOUT).await;
        let best = st
            .iter()
            .filter(|(_, s)| s.role.as_deref() == Some("leader"))
            .map(|(id, s)| (id.clone(), s.term.unwrap_or(0)))
            .max_by_key(|(_, t)| *t)?;
        self.seen.entry(best.clone()).or_insert_with(Instant::now);
        Some(best)
    }

    /// Waits for a leader of a term above `above` (any leader if `None`).
    async fn fresh_leader(&mut self, above: Option<u64>) -> Option<(String, u64)> {
        while !self.over() {
            if let Some((l, t)) = self.leader().await {
                if above.is_none_or(|a| t > a) {
                    return Some((l, t));
                }
            }
            self.nap(POLL).await;
        }
        None
    }

    fn record(&self, f: &str, node: &str, term: u64) {
        let after = self
            .seen
            .get(&(node.to_string(), term))
            .map(|t| t.elapsed().as_millis() as u64);
        self.recorder.nemesis(
            f,
            json!({"node": node, "term": term, "after_election_ms": after}),
        );
    }

    fn record_error(&self, f: &str, node: &str, e: anyhow::Error) {
        self.recorder
            .nemesis(f, json!({"node": node, "error": format!("{e:#}")}));
    }

    /// kill-leader / pause-leader.
    async fn leader_loop(&mut self, a: &Aimed, pause: bool) -> usize {
        let (hit, undo) = if pause {
            ("aim-pause", "aim-resume")
        } else {
            ("aim-kill", "aim-restart")
        };
        let mut victim: Option<(String, u64)> = None;
        let mut n = 0;
        loop {
            let Some((l, t)) = self.fresh_leader(victim.as_ref().map(|v| v.1)).await else {
                break;
            };
            if let Some((v, vt)) = victim.take() {
                self.undo(pause, &v, vt, undo);
            }
            let r = a.rounds[n % a.rounds.len()];
            self.nap(Duration::from_millis(r.delay_ms)).await;
            if self.over() {
                break;
            }
            let res = if pause {
                self.cluster.pause(&l)
            } else {
                self.cluster.kill(&l)
            };
            match res {
                Ok(()) => {
                    self.record(hit, &l, t);
                    n += 1;
                    victim = Some((l, t));
                }
                Err(e) => self.record_error(hit, &l, e),
            }
        }
        if let Some((v, vt)) = victim {
            self.undo(pause, &v, vt, undo);
        }
        n
    }

    fn undo(&self, pause: bool, node: &str, term: u64, f: &str) {
        let res = if pause {
            self.cluster.resume(node)
        } else {
            self.cluster.start(node)
        };
        match res {
            Ok(()) => self.record(f, node, term),
            Err(e) => self.record_error(f, node, e),
        }
    }

    /// kill-in-election.
    async fn election_loop(&mut self, a: &Aimed) -> usize {
        let mut n = 0;
        while let Some((l, t)) = self.fresh_leader(None).await {
            if let Err(e) = self.cluster.kill(&l) {
                self.record_error("aim-kill", &l, e);
                break;
            }
            self.record("aim-kill", &l, t);
            // The first member to report a newer term is voting or campaigning in it.
            let mut voter = None;
            while !self.over() {
                let st = self.cluster.statuses(STATUS_TIMEOUT).await;
                let mut in_new: Vec<(&String, &crate::sut::MemberStatus)> = st
                    .iter()
                    .filter(|(_, s)| s.term.unwrap_or(0) > t && s.role.as_deref() != Some("leader"))
                    .collect();
                in_new.sort_by_key(|(_, s)| s.role.as_deref() != Some("candidate"));
                if let Some((id, s)) = in_new.first() {
                    voter = Some(((*id).clone(), s.term.unwrap_or(0)));
                    break;
                }
                if st.values().any(|s| s.term.unwrap_or(0) > t) {
                    break; // the election finished between two polls
                }
                self.nap(Duration::from_millis(2)).await;
            }
            if let Some((v, vt)) = voter {
                match self.cluster.kill(&v) {
                    Ok(()) => {
                        self.recorder
                            .nemesis("aim-kill", json!({"node": v, "term": vt, "voting": true}));
                        n += 1;
                        let r = a.rounds[n % a.rounds.len()];
                        let down = Instant::now() + Duration::from_millis(r.down_ms);
                        // Restart within the same term whatever the hold's deadline says.
                        tokio::time::sleep_until(down.into()).await;
                        match self.cluster.start(&v) {
                            Ok(()) => {
                                self.recorder.nemesis(
                                    "aim-restart",
                                    json!({"node": v, "term": vt, "down_ms": r.down_ms}),
                                );
                            }
                            Err(e) => self.record_error("aim-restart", &v, e),
                        }
                    }
                    Err(e) => self.record_error("aim-kill", &v, e),
                }
            }
            // Let the old leader back once the cluster has a new one.
            let _ = self.fresh_leader(Some(t)).await;
            self.undo(false, &l, t, "aim-restart");
            let r = a.rounds[n % a.rounds.len()];
            self.nap(Duration::from_millis(100 + r.delay_ms * 5)).await;
        }
        n
    }

    /// isolate-new-leader.
    async fn isolate_loop(&mut self, a: &Aimed) -> usize {
        let ids = self.cluster.ids();
        let mut last: Option<u64> = None;
        let mut n = 0;
        while let Some((l, t)) = self.fresh_leader(last).await {
            let r = a.rounds[n % a.rounds.len()];
            self.nap(Duration::from_millis(r.delay_ms / 2)).await;
            if self.over() {
                break;
            }
            let mut p = super::partition::Partition::plan(
                super::partition::PartitionKind::IsolateLeader,
                &ids,
                &mut rand::SeedableRng::seed_from_u64(0),
            );
            p.retarget_isolate(&l, &ids);
            match self.cluster.net.set_cuts(&p.cuts.iter().cloned().collect()) {
                Ok(()) => {
                    self.record("aim-isolate", &l, t);
                    n += 1;
                }
                Err(e) => {
                    self.record_error("aim-isolate", &l, e);
                    break;
                }
            }
            last = Some(t);
        }
        n
    }
}

/// The `kill-majority` fault kind: kill a random majority, restart it when the fault stops.
pub struct KillMajorityKind;

impl FaultKind for KillMajorityKind {
    fn name(&self) -> &'static str {
        "kill-majority"
    }
    fn in_all(&self) -> bool {
        false
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn plan(&self, nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        let k = nodes.len() / 2 + 1;
        let mut v: Vec<String> = nodes.choose_multiple(rng, k).cloned().collect();
        v.sort();
        Arc::new(Kill { nodes: v })
    }
}
