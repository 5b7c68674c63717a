//! The nemesis: faults on a seeded schedule.
//!
//! `--nemesis` names a list of fault *choices* (a fault kind such as `kill` or `isolate-one`,
//! the group `partition` = its five partition kinds, `all` = every kind marked for it, `none`).
//! The schedule ([`plan`]) is a pure function of the seed, the members, the time limit and the
//! interval: rest, start a fault, hold it for the interval, stop it, rest, repeat, with rests
//! drawn between ½ and 1½ intervals. Each fault picks a choice uniformly, then one kind of the
//! choice, then (the kind's [`FaultKind::plan`]) its targets. One fault is active at a time
//! (per timeline, see [`plan_overlapping`]). The only choice made at run time is the leader for
//! `isolate-leader` (asked from `/status`); its planned fallback node is used if no leader is
//! known, and the history says which.
//!
//! Every start and stop is an event of process `"nemesis"` in the history (`start-kill`,
//! `stop-kill`, `start-pause`, `stop-pause`, `start-partition`, `stop-partition`, …: the fault's
//! [`Fault::family`]) whose value says what was done (`nodes`, `groups`, `cuts`). When the run
//! ends or is interrupted the active fault is stopped (and recorded) before the final phase.
//!
//! # Adding a fault kind
//! Write its file (a [`FaultKind`] that plans a [`Fault`], which starts and stops itself on the
//! [`Cluster`]: its processes and its network's [`crate::net::LinkControl`]), declare what it
//! [`Needs`] from the network, and add one line to [`REGISTRY`]. Which networks and targets can
//! run it follows from the needs (`crate::net::NetKind::supports`,
//! `crate::sut::TargetKind::peer_links_proxyable`).
//!
//! # The `thorough` profile
//! `--nemesis thorough` (the default of `splitbrain test`) is the aimed faults of [`aimed`]
//! (`kill-leader`, `pause-leader`, `kill-in-election`, `isolate-new-leader`, `kill-majority`)
//! plus `kill`, `pause` and the `partition` group, planned densely by [`plan_thorough`]: holds
//! of 0.3–0.6 intervals, rests of 0.05–0.2 intervals, and the first faults a seeded
//! permutation of the choices so that a default-length run holds every one of them. On
//! `--net message` with the built-in node the list also has the [`THOROUGH_MESSAGES`]
//! choices (`msg-first-commit`), placed first in every seed's order.
//!
//! # Layout
//! - [`aimed`]: faults that watch `/status` and strike the leader, a voter, a fresh leader;
//!   `kill-majority`.
//! - [`kill`]: SIGKILL members, restart them on the same data dir.
//! - [`pause`]: SIGSTOP / SIGCONT members.
//! - [`delay`]: slow, reordering peer links (not part of `all`).
//! - [`dup`]: `dup-requests`, answered writes delivered twice by the clients' network (not
//!   part of `all`).
//! - [`partition`]: the five partition kinds as sets of cut directed links.
//! - [`power_loss`]: `power-loss`, `torn-power-loss`: SIGKILL members and forget what they did
//!   not fsync (fault filesystems, `crate::storage`); restart them on what survived.
//! - [`corrupt`]: while a member is down, flip a bit in or truncate one of its data files;
//!   `corrupt-length`: flip a bit of a record's length field.
//! - [`msg`]: the message faults of `--net message` (`msg-loss`, `msg-dup`, `msg-reorder`,
//!   `msg-replay`, `msg-trim`; the group `msg`), not part of `all`.
//! - [`msg_aimed`]: aimed message nemeses: `msg-figure8` (Raft's Figure 8, for
//!   `commit-old-term`), `msg-stale-vote` (a stale candidate's election, for
//!   `vote-any-log`) and `msg-first-commit` (a fresh leader that cannot commit its no-op
//!   while its followers still answer its heartbeats: reads before the term's first
//!   commit; part of `thorough` on `--net message`, [`THOROUGH_MESSAGES`]).

pub mod aimed;
pub mod corrupt;
pub mod delay;
pub mod dup;
pub mod kill;
pub mod msg;
pub mod msg_aimed;
pub mod partition;
pub mod pause;
pub mod power_loss;

use crate::cluster::Cluster;
use crate::recorder::Recorder;
pub use crate::sut::BoxFuture;
use partition::PartitionKind;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Every fault kind, in the order of `--nemesis` help. Adding a kind: one line here.
pub const REGISTRY: &[Kind] = &[
    &kill::KillKind,
    &pause::PauseKind,
    &delay::DelayKind,
    &PartitionKind::PartitionHalves,
    &PartitionKind::IsolateOne,
    &PartitionKind::IsolateLeader,
    &PartitionKind::MajoritiesRing,
    &PartitionKind::Bridge,
    &power_loss::PowerLossKind { torn: false },
    &power_loss::PowerLossKind { torn: true },
    &corrupt::CorruptKind {
        length_fields: false,
    },
    &corrupt::CorruptKind {
        length_fields: true,
    },
    &aimed::Aim::KillLeader,
    &aimed::Aim::PauseLeader,
    &aimed::Aim::KillInElection,
    &aimed::Aim::IsolateNewLeader,
    &aimed::KillMajorityKind,
    &dup::DupRequestsKind,
    &msg::MsgFaultKind::Loss,
    &msg::MsgFaultKind::Dup,
    &msg::MsgFaultKind::Reorder,
    &msg::MsgFaultKind::Replay,
    &msg::MsgFaultKind::Trim,
    &msg_aimed::Figure8Kind,
    &msg_aimed::StaleVoteKind,
    &msg_aimed::FirstCommitKind,
];

/// The choices of `--nemesis thorough`, by name (a group name stands for its kinds).
pub const THOROUGH: &[&str] = &[
    "kill-leader",
    "pause-leader",
    "kill-in-election",
    "isolate-new-leader",
    "kill-majority",
    "kill",
    "pause",
    "partition",
];

/// The choices `thorough` adds on the message network (`--net message`, the built-in node):
/// faults aimed at single Raft messages (each needs at least 3 members).
pub const THOROUGH_MESSAGES: &[&str] = &["msg-first-commit"];

/// What a fault kind needs from the network between members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Cutting directed peer links ([`crate::net::LinkControl::set_cuts`]).
    pub link_cuts: bool,
    /// Delaying peer links ([`crate::net::LinkFaults::delay`]).
    pub link_delay: bool,
    /// Dropping on peer links ([`crate::net::LinkFaults::loss`]).
    pub link_loss: bool,
    /// Seeing and altering single peer messages ([`crate::net::LinkControl::messages`]).
    pub messages: bool,
}

impl Needs {
    /// True if it needs anything of the peer links.
    pub fn peer_links(self) -> bool {
        self.link_cuts || self.link_delay || self.link_loss || self.messages
    }

    /// True if everything `self` needs is in `offered`.
    pub fn met_by(self, offered: Needs) -> bool {
        (!self.link_cuts || offered.link_cuts)
            && (!self.link_delay || offered.link_delay)
            && (!self.link_loss || offered.link_loss)
            && (!self.messages || offered.messages)
    }
}

/// A kind of fault (one file each, listed in [`REGISTRY`]).
pub trait FaultKind: Send + Sync + 'static {
    /// Its `--nemesis` name.
    fn name(&self) -> &'static str;
    /// A group name that chooses it too (`partition`), if any.
    fn group(&self) -> Option<&'static str> {
        None
    }
    /// Part of `--nemesis all`.
    fn in_all(&self) -> bool;
    /// What it needs from the network.
    fn needs(&self) -> Needs;
    /// True if it needs the members' data dirs on fault filesystems (`crate::storage`): the
    /// run then mounts them, and only targets that keep their data in the data dir can run it
    /// ([`crate::sut::TargetKind::fault_fs_metadata`]).
    fn needs_fault_fs(&self) -> bool {
        false
    }
    /// Plans one fault over `nodes`, drawing its targets from `rng`.
    fn plan(&self, nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault>;
}

/// A fault kind from the registry.
pub type Kind = &'static dyn FaultKind;

impl PartialEq for dyn FaultKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl std::fmt::Debug for dyn FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One planned fault with its targets.
pub trait Fault: Send + Sync + std::fmt::Debug {
    /// `kill`, `pause`, `delay`, `partition`: the suffix of the history's `start-…`/`stop-…`.
    fn family(&self) -> &'static str;
    /// Its fields (targets, parameters) as a JSON object, without `fault`.
    fn fields(&self) -> Value;
    /// A short label for progress output.
    fn label(&self) -> String;
    /// Starts it; says what was actually done (isolate-leader re-aims at the leader).
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started>;
    /// Stops it (restart, resume, heal its links).
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()>;

    /// Holds it until `until` (or until `stop` turns true). The default sleeps; aimed faults
    /// ([`aimed`]) watch the cluster and strike again and again. `recorder` takes the events
    /// of what the hold does.
    fn hold<'a>(
        &'a self,
        _cluster: &'a Cluster,
        _recorder: &'a Recorder,
        until: std::time::Instant,
        stop: &'a mut watch::Receiver<bool>,
    ) -> BoxFuture<'a, Held> {
        Box::pin(async move {
            let done = sleep_until(until, stop).await;
            Held {
                interrupted: !done,
                rounds: 1,
            }
        })
    }

    /// `{"fault": family, …fields}`: the schedule's and the history's description.
    fn describe(&self) -> Value {
        let mut v = self.fields();
        if !v.is_object() {
            v = json!({});
        }
        v["fault"] = json!(self.family());
        v
    }
}

/// What a hold did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The run was stopped before the hold's end.
    pub interrupted: bool,
    /// How many times the fault struck (1 for a plain fault; aimed faults count rounds).
    pub rounds: usize,
}

/// A fault as started.
pub struct Started {
    /// What was done (equal to the plan except for isolate-leader's re-aimed target).
    pub fault: Arc<dyn Fault>,
    pub error: Option<String>,
    /// For isolate-leader: whether the leader was known or the planned fallback was used.
    pub note: Option<String>,
}

/// The [`Started`] of `fault` after `res`.
pub fn started<F: Fault + Clone + 'static>(
    fault: &F,
    res: anyhow::Result<()>,
    note: Option<String>,
) -> Started {
    Started {
        fault: Arc::new(fault.clone()),
        error: res.err().map(|e| format!("{e:#}")),
        note,
    }
}

impl Started {
    pub fn describe(&self) -> Value {
        let mut v = self.fault.describe();
        if let Some(e) = &self.error {
            v["error"] = json!(e);
        }
        if let Some(n) = &self.note {
            v["note"] = json!(n);
        }
        v
    }
}

/// The fault kind named `name`, from the registry.
pub fn kind(name: &str) -> Option<Kind> {
    REGISTRY.iter().copied().find(|k| k.name() == name)
}

/// The `--nemesis` names, for help and errors: `none`, each group before its first kind,
/// every kind, `all`.
pub fn nemesis_names() -> Vec<&'static str> {
    let mut out = vec!["none"];
    for k in REGISTRY {
        if let Some(g) = k.group() {
            if !out.contains(&g) {
                out.push(g);
            }
        }
        out.push(k.name());
    }
    out.push("all");
    out.push("thorough");
    out
}

/// Parses `--nemesis` (a comma list) into choices; each choice is a set of kinds, one of which
/// is picked when the choice is. An empty result means no faults.
pub fn parse_nemesis(list: &str) -> Result<Vec<Vec<Kind>>, String> {
    let mut choices: Vec<Vec<Kind>> = Vec::new();
    let mut add = |c: Vec<Kind>| {
        if !choices.contains(&c) {
            choices.push(c);
        }
    };
    let group = |g: &str| -> Vec<Kind> {
        REGISTRY
            .iter()
            .copied()
            .filter(|k| k.group() == Some(g))
            .collect()
    };
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "none" {
            continue;
        }
        if name == "thorough" {
            for n in THOROUGH {
                let g = group(n);
                add(if g.is_empty() {
                    vec![kind(n).expect("THOROUGH names registry kinds")]
                } else {
                    g
                });
            }
            continue;
        }
        if name == "all" {
            for k in REGISTRY.iter().copied().filter(|k| k.in_all()) {
                add(match k.group() {
                    Some(g) => group(g),
                    None => vec![k],
                });
            }
            continue;
        }
        let g = group(name);
        if !g.is_empty() {
            add(g);
            continue;
        }
        match kind(name) {
            Some(k) => add(vec![k]),
            None => {
                return Err(format!(
                    "unknown nemesis {name:?}; expected a comma list of: {}",
                    nemesis_names().join(", ")
                ))
            }
        }
    }
    Ok(choices)
}

/// A parsed `--nemesis` list: the text as given (stored in `test.json`) and its choices.
#[derive(Debug, Clone)]
pub struct NemesisList {
    pub text: String,
    pub choices: Vec<Vec<Kind>>,
}

/// The `--nemesis` name of a choice: its group's name, or its one kind's.
pub fn choice_name(c: &[Kind]) -> &'static str {
    match (c.len(), c.first()) {
        (1, Some(k)) => k.name(),
        (_, Some(k)) => k.group().unwrap_or(k.name()),
        _ => "none",
    }
}

impl NemesisList {
    /// True if the list names the `thorough` profile (then [`plan_thorough`] plans it).
    pub fn thorough(&self) -> bool {
        self.text.split(',').any(|n| n.trim() == "thorough")
    }

    /// With `thorough` in the list, adds the [`THOROUGH_MESSAGES`] choices that work with
    /// `members` members (for a run on the message network); otherwise leaves the list
    /// alone. The text stays as given.
    pub fn add_message_choices(&mut self, members: usize) {
        if !self.thorough() || members < 3 {
            return;
        }
        for n in THOROUGH_MESSAGES {
            let c = vec![kind(n).expect("THOROUGH_MESSAGES names registry kinds")];
            if !self.choices.contains(&c) {
                self.choices.push(c);
            }
        }
    }

    /// Every kind any choice may pick.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.choices.iter().flatten().copied()
    }
}

impl std::str::FromStr for NemesisList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(NemesisList {
            text: s.to_string(),
            choices: parse_nemesis(s)?,
        })
    }
}

impl Serialize for NemesisList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// One planned fault: started at `start`, stopped at `stop` (since the test started).
#[derive(Debug, Clone)]
pub struct Planned {
    /// Which timeline runs it: always 0 one fault at a time; with `--nemesis-overlap`, one
    /// timeline per choice of `--nemesis`, so faults of different choices overlap.
    pub timeline: usize,
    pub start: Duration,
    pub stop: Duration,
    pub fault: Arc<dyn Fault>,
    /// The `--nemesis` choice it was drawn for ([`choice_name`]; not part of its JSON).
    pub choice: &'static str,
}

impl Planned {
    /// As in `test.json` and `--dry-run`: the fault's description with `timeline`, and `start`
    /// and `stop` in seconds (to the millisecond).
    pub fn to_json(&self) -> Value {
        let secs = |d: Duration| json!((d.as_secs_f64() * 1000.0).round() / 1000.0);
        let mut v = self.fault.describe();
        v["timeline"] = json!(self.timeline);
        v["start"] = secs(self.start);
        v["stop"] = secs(self.stop);
        v
    }
}

impl PartialEq for Planned {
    fn eq(&self, other: &Self) -> bool {
        self.to_json() == other.to_json()
    }
}

impl Serialize for Planned {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// A minority of the members (at least one, at most `(n-1)/2`), chosen at random.
pub fn random_minority(nodes: &[String], rng: &mut StdRng) -> Vec<String> {
    let max = ((nodes.len().saturating_sub(1)) / 2).max(1);
    let k = rng.gen_range(1..=max);
    let mut v: Vec<String> = nodes.choose_multiple(rng, k).cloned().collect();
    v.sort();
    v
}

/// The schedule of faults: a pure function of its arguments (see the module docs).
pub fn plan(
    choices: &[Vec<Kind>],
    nodes: &[String],
    time_limit: Duration,
    interval: Duration,
    seed: u64,
) -> Vec<Planned> {
    let mut out = Vec::new();
    if choices.is_empty() || nodes.is_empty() || interval.is_zero() {
        return out;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = interval.mul_f64(rng.gen_range(0.5..1.5));
    while t + interval <= time_limit {
        let choice = &choices[rng.gen_range(0..choices.len())];
        let kind = choice[rng.gen_range(0..choice.len())];
        let fault = kind.plan(nodes, &mut rng);
        out.push(Planned {
            timeline: 0,
            start: t,
            stop: t + interval,
            fault,
            choice: choice_name(choice),
        });
        t += interval + interval.mul_f64(rng.gen_range(0.5..1.5));
    }
    out
}

/// The dense schedule of the `thorough` profile (choices that need single messages first in
/// the permutation): holds of 0.3–0.6 `interval`, rests of
/// 0.05–0.2 `interval`, the first faults a seeded permutation of the choices (so every choice
/// occurs if the run is long enough: ~3 s per fault at the default interval of 5 s), then
/// choices drawn uniformly. A pure function of its arguments.
pub fn plan_thorough(
    choices: &[Vec<Kind>],
    nodes: &[String],
    time_limit: Duration,
    interval: Duration,
    seed: u64,
) -> Vec<Planned> {
    let mut out = Vec::new();
    if choices.is_empty() || nodes.is_empty() || interval.is_zero() {
        return out;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..choices.len()).collect();
    order.shuffle(&mut rng);
    // Choices that need single messages (`thorough` on `--net message`) go first, so that
    // a default-length run holds them even when the list is too long for every choice.
    order.sort_by_key(|&i| !choices[i].iter().any(|k| k.needs().messages));
    let mut t = interval.mul_f64(rng.gen_range(0.05..0.2));
    for i in 0.. {
        let hold = interval.mul_f64(rng.gen_range(0.3..0.6));
        if t + hold > time_limit {
            break;
        }
        let choice = &choices[match order.get(i) {
            Some(&c) => c,
            None => rng.gen_range(0..choices.len()),
        }];
        let kind = choice[rng.gen_range(0..choice.len())];
        let fault = kind.plan(nodes, &mut rng);
        out.push(Planned {
            timeline: 0,
            start: t,
            stop: t + hold,
            fault,
            choice: choice_name(choice),
        });
        t += hold + interval.mul_f64(rng.gen_range(0.05..0.2));
    }
    out
}

/// How often each `--nemesis` choice struck during a run (aimed faults count every round).
pub type Coverage = std::collections::BTreeMap<&'static str, usize>;

/// The choices of `list` that never struck according to `coverage`.
pub fn missing(list: &NemesisList, coverage: &Coverage) -> Vec<&'static str> {
    list.choices
        .iter()
        .map(|c| choice_name(c))
        .filter(|n| coverage.get(n).copied().unwrap_or(0) == 0)
        .collect()
}

/// The schedule with one independent timeline per choice (Jepsen's combined nemesis: a kill
/// may happen while a partition holds). Timeline `i` is `plan(&[choices[i]], …)` with its own
/// seed ([`splitbrain_workloads::seeds::nemesis_timeline`]); the result is ordered by start
/// time.
pub fn plan_overlapping(
    choices: &[Vec<Kind>],
    nodes: &[String],
    time_limit: Duration,
    interval: Duration,
    seed: u64,
) -> Vec<Planned> {
    let mut out: Vec<Planned> = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        let sub = splitbrain_workloads::seeds::nemesis_timeline(seed, i);
        out.extend(
            plan(std::slice::from_ref(c), nodes, time_limit, interval, sub)
                .into_iter()
                .map(|p| Planned { timeline: i, ..p }),
        );
    }
    out.sort_by_key(|p| (p.start, p.timeline));
    out
}

/// What the nemesis is doing now, for the progress bar (empty: nothing).
pub type Activity = watch::Sender<String>;

/// Runs `schedule` against `cluster` until it ends or `stop` turns true, one task per
/// timeline; each timeline stops its active fault (recording it) before returning. Errors
/// applying a fault are recorded in the history as the fault's value (`"error"`) and do not
/// stop the run.
pub async fn run(
    schedule: Vec<Planned>,
    cluster: Arc<Cluster>,
    recorder: Arc<Recorder>,
    stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
) -> Coverage {
    let mut timelines: std::collections::BTreeMap<usize, Vec<Planned>> = Default::default();
    for p in schedule {
        timelines.entry(p.timeline).or_default().push(p);
    }
    let active = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let mut tasks = Vec::new();
    for (i, tl) in timelines {
        tasks.push(tokio::spawn(run_timeline(
            i,
            tl,
            cluster.clone(),
            recorder.clone(),
            stop.clone(),
            activity.clone(),
            active.clone(),
        )));
    }
    let mut coverage = Coverage::new();
    for t in tasks {
        if let Ok(c) = t.await {
            for (k, n) in c {
                *coverage.entry(k).or_default() += n;
            }
        }
    }
    coverage
}

type ActiveFaults = Arc<std::sync::Mutex<std::collections::BTreeMap<usize, String>>>;

fn show(activity: &Activity, active: &ActiveFaults, timeline: usize, label: Option<String>) {
    // Plain data behind the lock: a poisoned lock still holds a usable map.
    let mut a = active.lock().unwrap_or_else(|p| p.into_inner());
    match label {
        Some(l) => a.insert(timeline, l),
        None => a.remove(&timeline),
    };
    activity.send_replace(a.values().cloned().collect::<Vec<_>>().join(" + "));
}

async fn run_timeline(
    timeline: usize,
    schedule: Vec<Planned>,
    cluster: Arc<Cluster>,
    recorder: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
    active: ActiveFaults,
) -> Coverage {
    let mut coverage = Coverage::new();
    let start = recorder.start();
    for p in schedule {
        if !sleep_until(start + p.start, &mut stop).await {
            break;
        }
        let applied = p.fault.start(&cluster).await;
        recorder.nemesis(&format!("start-{}", p.fault.family()), applied.describe());
        show(&activity, &active, timeline, Some(applied.fault.label()));
        let held = applied
            .fault
            .hold(&cluster, &recorder, start + p.stop, &mut stop)
            .await;
        let interrupted = held.interrupted;
        if applied.error.is_none() {
            *coverage.entry(p.choice).or_default() += held.rounds;
        }
        let undo = applied.fault.stop(&cluster);
        let mut stop_value = applied.describe();
        if let Err(e) = undo {
            stop_value["error"] = json!(format!("{e:#}"));
        }
        recorder.nemesis(&format!("stop-{}", p.fault.family()), stop_value);
        show(&activity, &active, timeline, None);
        if interrupted {
            break;
        }
    }
    coverage
}

/// Sleeps until `at` or until `stop` turns true; false if stopped.
async fn sleep_until(at: std::time::Instant, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(at.into()) => !*stop.borrow(),
        _ = async { while stop.changed().await.is_ok() { if *stop.borrow() { return; } } std::future::pending::<()>().await } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn same_seed_gives_the_same_schedule_of_faults_times_and_targets() {
        let c = parse_nemesis("all").unwrap();
        let a = plan(
            &c,
            &nodes(5),
            Duration::from_secs(120),
            Duration::from_secs(3),
            7,
        );
        let b = plan(
            &c,
            &nodes(5),
            Duration::from_secs(120),
            Duration::from_secs(3),
            7,
        );
        let other = plan(
            &c,
            &nodes(5),
            Duration::from_secs(120),
            Duration::from_secs(3),
            8,
        );
        assert!(a.len() >= 10);
        assert_eq!(a, b);
        assert_ne!(a, other);
    }

    #[test]
    fn schedule_alternates_rest_and_hold_within_the_time_limit() {
        let c = parse_nemesis("kill,partition").unwrap();
        let s = plan(
            &c,
            &nodes(3),
            Duration::from_secs(60),
            Duration::from_secs(5),
            1,
        );
        let mut prev_stop = Duration::ZERO;
        for p in &s {
            assert!(p.start >= prev_stop + Duration::from_millis(2500), "{s:?}");
            assert_eq!(p.stop - p.start, Duration::from_secs(5));
            assert!(p.stop <= Duration::from_secs(60));
            prev_stop = p.stop;
        }
        assert!(s.iter().any(|p| p.fault.family() == "kill"));
        assert!(s.iter().any(|p| p.fault.family() == "partition"));
    }

    #[test]
    fn kill_and_pause_target_a_minority() {
        let c = parse_nemesis("kill,pause").unwrap();
        for p in plan(
            &c,
            &nodes(5),
            Duration::from_secs(300),
            Duration::from_secs(1),
            3,
        ) {
            match p.fault.family() {
                "kill" | "pause" => {
                    let nodes = p.fault.describe()["nodes"].as_array().unwrap().len();
                    assert!((1..=2).contains(&nodes), "{nodes:?}")
                }
                _ => panic!("unexpected fault"),
            }
        }
    }

    #[test]
    fn parses_lists_and_rejects_unknown_names() {
        assert!(parse_nemesis("none").unwrap().is_empty());
        assert_eq!(parse_nemesis("all").unwrap().len(), 3);
        assert_eq!(parse_nemesis("kill,kill,bridge").unwrap().len(), 2);
        assert_eq!(parse_nemesis("partition").unwrap()[0].len(), 5);
        let delay: Kind = &delay::DelayKind;
        assert_eq!(parse_nemesis("delay").unwrap(), vec![vec![delay]]);
        assert!(!parse_nemesis("all").unwrap().contains(&vec![delay]));
        let e = parse_nemesis("kill,flood").unwrap_err();
        assert!(e.contains("flood") && e.contains("majorities-ring"), "{e}");
    }

    #[test]
    fn overlapping_schedule_runs_one_timeline_per_choice() {
        let c = parse_nemesis("kill,partition").unwrap();
        let s = plan_overlapping(
            &c,
            &nodes(5),
            Duration::from_secs(60),
            Duration::from_secs(3),
            9,
        );
        assert_eq!(
            s,
            plan_overlapping(
                &c,
                &nodes(5),
                Duration::from_secs(60),
                Duration::from_secs(3),
                9
            )
        );
        assert!(s
            .iter()
            .filter(|p| p.timeline == 0)
            .all(|p| p.fault.family() == "kill"));
        assert!(s
            .iter()
            .filter(|p| p.timeline == 1)
            .all(|p| p.fault.family() == "partition"));
        // Some kill overlaps some partition.
        let overlap = s.iter().any(|a| {
            s.iter()
                .any(|b| a.timeline != b.timeline && a.start < b.stop && b.start < a.stop)
        });
        assert!(overlap, "{s:?}");
        assert!(s.windows(2).all(|w| w[0].start <= w[1].start));
    }

    fn thorough(seed: u64, n: usize, secs: u64) -> Vec<Planned> {
        plan_thorough(
            &parse_nemesis("thorough").unwrap(),
            &nodes(n),
            Duration::from_secs(secs),
            Duration::from_secs(5),
            seed,
        )
    }

    #[test]
    fn thorough_reaches_every_choice_in_a_default_length_run_for_every_seed() {
        let list: NemesisList = "thorough".parse().unwrap();
        assert!(list.thorough());
        assert_eq!(list.choices.len(), THOROUGH.len());
        for seed in 1..=50 {
            let s = thorough(seed, 5, 30);
            let got: std::collections::BTreeSet<&str> = s.iter().map(|p| p.choice).collect();
            let want: std::collections::BTreeSet<&str> = THOROUGH.iter().copied().collect();
            assert_eq!(got, want, "seed {seed}: {s:?}");
            let mut prev = Duration::ZERO;
            for p in &s {
                assert!(p.start >= prev && p.stop > p.start && p.stop <= Duration::from_secs(30));
                prev = p.stop;
            }
        }
    }

    #[test]
    fn thorough_on_the_message_network_reaches_its_message_choice_for_every_seed() {
        let mut list: NemesisList = "thorough".parse().unwrap();
        list.add_message_choices(5);
        assert_eq!(list.choices.len(), THOROUGH.len() + THOROUGH_MESSAGES.len());
        let mut missed = Vec::new();
        for seed in 1..=50 {
            let s = plan_thorough(
                &list.choices,
                &nodes(5),
                Duration::from_secs(30),
                Duration::from_secs(5),
                seed,
            );
            let got: std::collections::BTreeSet<&str> = s.iter().map(|p| p.choice).collect();
            if !THOROUGH_MESSAGES.iter().all(|m| got.contains(m)) {
                missed.push(seed);
            }
        }
        assert!(
            missed.is_empty(),
            "seeds without a message choice: {missed:?}"
        );
        // Lists without `thorough` are left alone.
        let mut kill: NemesisList = "kill".parse().unwrap();
        kill.add_message_choices(5);
        assert_eq!(kill.choices.len(), 1);
        // One member: nothing to aim at.
        let mut one: NemesisList = "thorough".parse().unwrap();
        one.add_message_choices(1);
        assert_eq!(one.choices.len(), THOROUGH.len());
    }

    #[test]
    fn thorough_schedules_differ_by_seed_in_kinds_order_and_times() {
        let order = |s: &[Planned]| s.iter().map(|p| p.choice).collect::<Vec<_>>();
        let (a, b) = (thorough(1, 5, 30), thorough(2, 5, 30));
        assert_eq!(a, thorough(1, 5, 30));
        assert_ne!(order(&a), order(&b));
        assert_ne!(a[0].start, b[0].start);
        let firsts: std::collections::BTreeSet<&str> =
            (1..=20).map(|s| thorough(s, 5, 30)[0].choice).collect();
        assert!(firsts.len() >= 4, "first faults of 20 seeds: {firsts:?}");
    }

    #[test]
    fn kill_majority_kills_a_majority_and_aimed_kinds_are_not_in_all() {
        let k = kind("kill-majority").unwrap();
        for seed in 0..20 {
            let f = k.plan(&nodes(5), &mut StdRng::seed_from_u64(seed));
            assert_eq!(f.describe()["nodes"].as_array().unwrap().len(), 3);
            let f = k.plan(&nodes(3), &mut StdRng::seed_from_u64(seed));
            assert_eq!(f.describe()["nodes"].as_array().unwrap().len(), 2);
        }
        for name in [
            "kill-leader",
            "pause-leader",
            "kill-in-election",
            "isolate-new-leader",
        ] {
            assert!(!kind(name).unwrap().in_all(), "{name}");
        }
        assert_eq!(parse_nemesis("all").unwrap().len(), 3);
        assert!(kind("isolate-new-leader").unwrap().needs().link_cuts);
    }

    #[test]
    fn missing_names_the_choices_that_never_struck() {
        let list: NemesisList = "kill-leader,partition".parse().unwrap();
        let mut c = Coverage::new();
        c.insert("kill-leader", 7);
        assert_eq!(missing(&list, &c), vec!["partition"]);
        c.insert("partition", 1);
        assert!(missing(&list, &c).is_empty());
    }

    #[test]
    fn no_faults_without_choices() {
        assert!(plan(
            &[],
            &nodes(3),
            Duration::from_secs(60),
            Duration::from_secs(5),
            1
        )
        .is_empty());
    }
}
