//! The nemesis: faults on a seeded schedule.
//!
//! `--nemesis` names a list of fault *choices* (`kill`, `pause`, `partition`, one partition kind,
//! `all` = `kill,pause,partition`, `none`). The schedule ([`plan`]) is a pure function of the
//! seed, the members, the time limit and the interval: rest, start a fault, hold it for the
//! interval, stop it, rest, repeat, with rests drawn between ½ and 1½ intervals. Each fault
//! picks a choice uniformly, then (for `partition`) one of the five partition kinds, then its
//! targets. One fault is active at a time. The only choice made at run time is the leader for
//! `isolate-leader` (asked from `/status`); its planned fallback node is used if no leader is
//! known, and the history says which.
//!
//! Every start and stop is an event of process `"nemesis"` in the history (`start-kill`,
//! `stop-kill`, `start-pause`, `stop-pause`, `start-partition`, `stop-partition`) whose value
//! says what was done (`nodes`, `groups`, `cuts`). When the run ends or is interrupted the
//! active fault is stopped (and recorded) before the final phase.
//!
//! # Layout
//! - [`kill`]: SIGKILL members, restart them on the same data dir.
//! - [`pause`]: SIGSTOP / SIGCONT members.
//! - [`delay`]: slow, reordering peer links (not part of `all`).
//! - [`partition`]: the five partition kinds as sets of cut directed links.

pub mod delay;
pub mod kill;
pub mod partition;
pub mod pause;

use crate::cluster::Cluster;
use crate::recorder::Recorder;
use partition::PartitionKind;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Kill,
    Pause,
    Delay,
    Partition(PartitionKind),
}

/// The `--nemesis` names, for help and errors.
pub const NEMESIS_NAMES: &[&str] = &[
    "none",
    "kill",
    "pause",
    "delay",
    "partition",
    "partition-halves",
    "isolate-one",
    "isolate-leader",
    "majorities-ring",
    "bridge",
    "all",
];

/// Parses `--nemesis` (a comma list) into choices; each choice is a set of kinds, one of which
/// is picked when the choice is. An empty result means no faults.
pub fn parse_nemesis(list: &str) -> Result<Vec<Vec<FaultKind>>, String> {
    let mut choices: Vec<Vec<FaultKind>> = Vec::new();
    let mut add = |c: Vec<FaultKind>| {
        if !choices.contains(&c) {
            choices.push(c);
        }
    };
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name {
            "none" => {}
            "kill" => add(vec![FaultKind::Kill]),
            "pause" => add(vec![FaultKind::Pause]),
            "delay" => add(vec![FaultKind::Delay]),
            "partition" => add(PartitionKind::ALL
                .iter()
                .map(|k| FaultKind::Partition(*k))
                .collect()),
            "all" => {
                add(vec![FaultKind::Kill]);
                add(vec![FaultKind::Pause]);
                add(PartitionKind::ALL
                    .iter()
                    .map(|k| FaultKind::Partition(*k))
                    .collect());
            }
            other => match PartitionKind::parse(other) {
                Some(k) => add(vec![FaultKind::Partition(k)]),
                None => {
                    return Err(format!(
                        "unknown nemesis {other:?}; expected a comma list of: {}",
                        NEMESIS_NAMES.join(", ")
                    ))
                }
            },
        }
    }
    Ok(choices)
}

/// A fault with its targets, as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    Kill {
        nodes: Vec<String>,
    },
    Pause {
        nodes: Vec<String>,
    },
    /// Every peer link delays each chunk by `delay_ms` plus up to `jitter_ms` (so messages
    /// can overtake each other).
    Delay {
        delay_ms: u64,
        jitter_ms: u64,
    },
    Partition(partition::Partition),
}

impl Fault {
    /// `kill`, `pause` or `partition`: the suffix of the history's `start-…`/`stop-…`.
    pub fn family(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::Delay { .. } => "delay",
            Fault::Partition(_) => "partition",
        }
    }

    /// A short label for progress output.
    pub fn label(&self) -> String {
        match self {
            Fault::Kill { nodes } => format!("kill {}", nodes.join(",")),
            Fault::Pause { nodes } => format!("pause {}", nodes.join(",")),
            Fault::Delay {
                delay_ms,
                jitter_ms,
            } => format!("delay {delay_ms}+{jitter_ms} ms"),
            Fault::Partition(p) => p.label(),
        }
    }
}

/// One planned fault: started at `start`, stopped at `stop` (since the test started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// Which timeline runs it: always 0 one fault at a time; with `--nemesis-overlap`, one
    /// timeline per choice of `--nemesis`, so faults of different choices overlap.
    pub timeline: usize,
    #[serde(serialize_with = "ser_secs")]
    pub start: Duration,
    #[serde(serialize_with = "ser_secs")]
    pub stop: Duration,
    #[serde(flatten)]
    pub fault: Fault,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// A minority of the members (at least one, at most `(n-1)/2`), chosen at random.
fn random_minority(nodes: &[String], rng: &mut StdRng) -> Vec<String> {
    let max = ((nodes.len().saturating_sub(1)) / 2).max(1);
    let k = rng.gen_range(1..=max);
    let mut v: Vec<String> = nodes.choose_multiple(rng, k).cloned().collect();
    v.sort();
    v
}

/// The schedule of faults: a pure function of its arguments (see the module docs).
pub fn plan(
    choices: &[Vec<FaultKind>],
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
        let fault = match kind {
            FaultKind::Kill => Fault::Kill {
                nodes: random_minority(nodes, &mut rng),
            },
            FaultKind::Pause => Fault::Pause {
                nodes: random_minority(nodes, &mut rng),
            },
            FaultKind::Delay => Fault::Delay {
                delay_ms: rng.gen_range(50..=200),
                jitter_ms: rng.gen_range(300..=1000),
            },
            FaultKind::Partition(k) => {
                Fault::Partition(partition::Partition::plan(k, nodes, &mut rng))
            }
        };
        out.push(Planned {
            timeline: 0,
            start: t,
            stop: t + interval,
            fault,
        });
        t += interval + interval.mul_f64(rng.gen_range(0.5..1.5));
    }
    out
}

/// The schedule with one independent timeline per choice (Jepsen's combined nemesis: a kill
/// may happen while a partition holds). Timeline `i` is `plan(&[choices[i]], …)` with its own
/// sub-seed; the result is ordered by start time.
pub fn plan_overlapping(
    choices: &[Vec<FaultKind>],
    nodes: &[String],
    time_limit: Duration,
    interval: Duration,
    seed: u64,
) -> Vec<Planned> {
    let mut out: Vec<Planned> = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        let sub = splitbrain_workloads::sub_seed(seed, i as u64 + 1);
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
) {
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
    for t in tasks {
        let _ = t.await;
    }
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
) {
    let start = recorder.start();
    for p in schedule {
        if !sleep_until(start + p.start, &mut stop).await {
            break;
        }
        let applied = apply(&p.fault, &cluster).await;
        recorder.nemesis(&format!("start-{}", p.fault.family()), applied.describe());
        show(&activity, &active, timeline, Some(applied.label()));
        let interrupted = !sleep_until(start + p.stop, &mut stop).await;
        let undo = applied.undo(&cluster);
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

/// A fault as actually applied.
pub struct Applied {
    pub fault: Fault,
    pub error: Option<String>,
    /// For isolate-leader: whether the leader was known or the planned fallback was used.
    pub note: Option<String>,
}

impl Applied {
    pub fn describe(&self) -> Value {
        let mut v = serde_json::to_value(&self.fault).unwrap_or(Value::Null);
        if let Some(e) = &self.error {
            v["error"] = json!(e);
        }
        if let Some(n) = &self.note {
            v["note"] = json!(n);
        }
        v
    }

    pub fn label(&self) -> String {
        self.fault.label()
    }

    pub fn undo(&self, cluster: &Cluster) -> anyhow::Result<()> {
        match &self.fault {
            Fault::Kill { nodes } => kill::stop(cluster, nodes),
            Fault::Pause { nodes } => pause::stop(cluster, nodes),
            Fault::Delay { .. } => delay::stop(cluster),
            Fault::Partition(_) => partition::stop(cluster),
        }
    }
}

async fn apply(fault: &Fault, cluster: &Cluster) -> Applied {
    let mut fault = fault.clone();
    let mut note = None;
    let res = match &mut fault {
        Fault::Kill { nodes } => kill::start(cluster, nodes),
        Fault::Pause { nodes } => pause::start(cluster, nodes),
        Fault::Delay {
            delay_ms,
            jitter_ms,
        } => delay::start(cluster, *delay_ms, *jitter_ms),
        Fault::Partition(p) => {
            if p.kind == PartitionKind::IsolateLeader {
                match cluster.leader().await {
                    Some(l) => {
                        p.retarget_isolate(&l, &cluster.ids());
                        note = Some(format!("leader {l} per /status"));
                    }
                    None => note = Some("no leader known; isolated the planned node".into()),
                }
            }
            partition::start(cluster, p)
        }
    };
    Applied {
        fault,
        error: res.err().map(|e| format!("{e:#}")),
        note,
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
            match p.fault {
                Fault::Kill { nodes } | Fault::Pause { nodes } => {
                    assert!((1..=2).contains(&nodes.len()), "{nodes:?}")
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
        assert_eq!(
            parse_nemesis("delay").unwrap(),
            vec![vec![FaultKind::Delay]]
        );
        assert!(!parse_nemesis("all")
            .unwrap()
            .contains(&vec![FaultKind::Delay]));
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
