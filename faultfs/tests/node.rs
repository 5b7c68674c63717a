//! End to end: the real `splitbrain-node` on fault mounts. Acknowledged PUTs survive a power
//! loss of every member (SIGKILL, power_loss with a tear, restart on the same mount).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{get, put, Cluster, Http};
use splitbrain_faultfs::{mount, FaultMount, LossReport};

const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 5;

/// Per key: the values attempted (in order) and the last acknowledged one.
type Seen = BTreeMap<String, (Vec<u64>, Option<u64>)>;

/// A writer owns its keys and writes increasing values to them, one at a time, until `stop`;
/// each PUT is retried (same request id) for up to 5 s, rotating over the nodes.
fn writer(addrs: Vec<String>, w: usize, stop: Arc<AtomicBool>) -> (Seen, usize) {
    let mut seen = Seen::new();
    let mut acks = 0;
    let mut conns: Vec<Http> = addrs
        .iter()
        .map(|a| Http::new(a, Duration::from_secs(2)))
        .collect();
    let mut v = 0u64;
    let mut node = w % addrs.len();
    while !stop.load(Ordering::Relaxed) {
        for k in 0..KEYS_PER_WRITER {
            v += 1;
            let key = format!("w{w}k{k}");
            let e = seen.entry(key.clone()).or_default();
            e.0.push(v);
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut acked = false;
            while !acked && Instant::now() < deadline {
                acked = put(
                    &mut conns[node],
                    &key,
                    v,
                    &format!("c{w}-{v}"),
                    Instant::now() + Duration::from_millis(300),
                );
                if !acked {
                    node = (node + 1) % addrs.len();
                }
            }
            if acked {
                e.1 = Some(v);
                acks += 1;
            }
        }
    }
    (seen, acks)
}

fn power_loss_all(c: &mut Cluster, mounts: &[FaultMount], tear: Option<u64>) -> Vec<LossReport> {
    for i in 0..mounts.len() {
        c.kill_node(i);
    }
    let reports = mounts
        .iter()
        .enumerate()
        .map(|(i, m)| m.power_loss(tear.map(|s| s + i as u64)))
        .collect();
    for i in 0..mounts.len() {
        c.start_node(i);
    }
    reports
}

/// Every key reads a value it was given, not older than its last acknowledged write.
fn check_acked_survive(c: &Cluster, seen: &Seen) -> Vec<String> {
    let mut http = Http::new(&c.addrs[1], Duration::from_secs(3));
    let mut problems = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for (key, (attempted, acked)) in seen {
        let got = get(&mut http, key, deadline);
        match (got, acked) {
            (None, _) => problems.push(format!("{key}: no answer")),
            (Some(None), Some(a)) => problems.push(format!("{key}: acked {a}, read null")),
            (Some(Some(v)), Some(a)) if v < *a || !attempted.contains(&v) => {
                problems.push(format!("{key}: acked {a}, read {v}"))
            }
            _ => {}
        }
    }
    problems
}

struct Outcome {
    /// Acknowledged writes that were lost (or keys that could not be read).
    problems: Vec<String>,
    reports: Vec<Vec<LossReport>>,
    acked: usize,
    file_syncs: u64,
    /// Whether every node still ran at the end (a node may refuse to start on what survived).
    all_running: bool,
}

fn run(extra_args: &[&str], tear: Option<u64>) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let mounts: Vec<FaultMount> = (1..=3)
        .map(|i| {
            mount(
                dir.path().join(format!("backing/n{i}")),
                dir.path().join(format!("data/n{i}")),
            )
            .unwrap()
        })
        .collect();
    let data = mounts
        .iter()
        .map(|m| m.mount_point().to_path_buf())
        .collect();
    let mut c = Cluster::start(data, &dir.path().join("logs"), extra_args);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (addrs, stop) = (c.addrs.clone(), stop.clone());
            std::thread::spawn(move || writer(addrs, w, stop))
        })
        .collect();
    let mut reports = Vec::new();
    // Power losses while the writers are busy: some writes are between write and fdatasync.
    for round in 0..4u64 {
        std::thread::sleep(Duration::from_millis(700));
        reports.push(power_loss_all(
            &mut c,
            &mounts,
            tear.map(|s| s + 10 * round),
        ));
    }
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    let mut seen = Seen::new();
    let mut acked = 0;
    for w in writers {
        let (s, a) = w.join().unwrap();
        seen.extend(s);
        acked += a;
    }
    let problems = check_acked_survive(&c, &seen);
    let all_running = c.all_running();
    if !problems.is_empty() || !all_running {
        for i in 0..3 {
            eprintln!("--- n{} log tail\n{}", i + 1, c.log_tail(i));
        }
    }
    drop(c);
    Outcome {
        problems,
        reports,
        acked,
        file_syncs: mounts.iter().map(|m| m.stats().file_syncs).sum(),
        all_running,
    }
}

#[test]
fn acknowledged_puts_survive_power_losses_of_the_whole_cluster() {
    let Outcome {
        problems,
        reports,
        acked,
        file_syncs: syncs,
        all_running,
    } = run(&[], Some(7));
    assert!(all_running, "a node exited after a power loss");
    assert!(
        syncs >= acked as u64,
        "the node's fdatasyncs reach the filesystem ({syncs})"
    );
    assert!(
        acked >= WRITERS * KEYS_PER_WRITER,
        "the cluster acknowledged writes ({acked})"
    );
    assert!(
        problems.is_empty(),
        "lost acknowledged writes: {problems:#?}"
    );
    let lost: u64 = reports.iter().flatten().map(|r| r.bytes_lost).sum();
    let torn = reports
        .iter()
        .flatten()
        .filter(|r| r.torn.is_some())
        .count();
    eprintln!("acked writes {acked}; file fsyncs {syncs}; unsynced bytes discarded {lost}; torn writes {torn}");
}

/// `--bug no-fsync` (added on the node's branch): acknowledges after writing, without
/// `fdatasync`; a power loss of the whole cluster then loses acknowledged writes.
/// Un-ignore after the node branch is merged.
#[test]
#[ignore = "needs the node's --bug no-fsync (another branch)"]
fn a_node_that_does_not_fsync_loses_acknowledged_puts() {
    // No tear: a tear of an append-only log keeps the unsynced appends before the newest one.
    let o = run(&["--bug", "no-fsync"], None);
    let lost: u64 = o.reports.iter().flatten().map(|r| r.bytes_lost).sum();
    eprintln!("problems: {:?}; all running: {}", o.problems, o.all_running);
    assert!(lost > 0, "the power losses discarded unsynced bytes");
    assert!(
        !o.problems.is_empty() || !o.all_running,
        "no acknowledged write was lost and every node restarted"
    );
}
