//! One test run, start to end: set up the cluster → start clients and nemesis → run for the
//! time limit → heal everything → wait for recovery → final reads → stop → check → store.
//!
//! A [`TestPlan`] (`crate::plan`) holds every option (it is `test.json`); [`run_test`] runs
//! one test and returns its [`RunOutcome`]. `splitbrain test` and `splitbrain suite` both call it.
//!
//! # Guarantees
//! - The seed is printed before anything happens and stored in `test.json`; the workers'
//!   operations and the nemesis schedule (times and targets) follow from it.
//! - `history.jsonl` is streamed as the run goes.
//! - Every fault is healed and every member resumed or restarted before the final phase, also
//!   after cancellation (Ctrl-C, or the caller's `CancellationToken`), which skips recovery
//!   and final reads but still checks what was recorded.
//! - The caller passes the cancellation token and a [`Progress`] observer (no global state):
//!   `splitbrain test` a terminal spinner, suites [`Quiet`].
//! - Members die with the harness (see `crate::host`); a panic hook kills them too.

use crate::client::{final_reads, Counters, RateLimiter, Worker};
use crate::cluster::Cluster;
use crate::net::proxy::ProxyNet;
use crate::net::NetKind;
use crate::net::Network;
pub use crate::plan::TestPlan;
use crate::recorder::Recorder;
use crate::store;
use crate::summary::{self, Stats};
use crate::sut::Client;
use anyhow::Context;
use serde::Serialize;
use splitbrain_checker::history::History;
use splitbrain_checker::{check, CheckOptions, CheckReport, Verdict};
use splitbrain_workloads::seeds::Stream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub run_dir: PathBuf,
    pub valid: Verdict,
    pub interrupted: bool,
    pub stats: Stats,
    /// `[[event index, reason], …]`: why each `fail` or `info` happened (what the analysis of
    /// the stored history needs to tell a failed compare from an outage).
    pub reasons: serde_json::Value,
    pub check: CheckReport,
    /// Members that exited on their own during the run.
    pub crashed: Vec<(String, String)>,
    /// Of those, the ones that refused their data (`corrupt`): member → `FILE@OFFSET`, from
    /// the node's `refused data: FILE@OFFSET: …` log line.
    #[serde(default)]
    pub refused: Vec<(String, String)>,
    /// The end-of-run cluster checks (`crate::endcheck`).
    pub cluster_check: crate::endcheck::ClusterCheck,
    /// How often each `--nemesis` choice struck, and the choices that never did.
    pub nemesis_coverage: crate::nemesis::Coverage,
    pub nemesis_missing: Vec<&'static str>,
    /// `--read-burst`: the leader changes the harness saw and the reads they started.
    pub read_bursts: ReadBursts,
    /// `--retries`: retries sent, and operations `ok` after a retry.
    pub retries_sent: u64,
    pub ok_after_retry: u64,
    pub elapsed_s: f64,
}

/// What `--read-burst` did in a run (see `crate::client::LeaderChanges`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ReadBursts {
    /// Reads per client per change (0: off).
    pub per_change: usize,
    /// Leader changes the harness saw while the clients ran (each starts a burst).
    pub leader_changes: u64,
    /// Reads invoked by bursts.
    pub reads: u64,
}

impl RunOutcome {
    /// The exit code for this verdict (0 valid, 1 invalid, 2 unknown), 3 if the history is
    /// not invalid but an end-of-run cluster check failed.
    pub fn exit_code(&self) -> u8 {
        match self.valid {
            Verdict::Invalid => crate::cli::exit::INVALID,
            _ if !self.cluster_check.ok() => crate::cli::exit::CLUSTER_CHECK,
            Verdict::Valid => crate::cli::exit::VALID,
            Verdict::Unknown => crate::cli::exit::UNKNOWN,
        }
    }
}

/// Prints a line on stdout, ignoring a closed pipe (`splitbrain test | head` must not panic
/// in the middle of a run).
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// The phases of a run, in order (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Run directory, `test.json`, network, cluster start-up.
    Setup,
    /// Clients and the nemesis, for the time limit.
    Run,
    /// Every fault healed, every member resumed or restarted.
    Heal,
    /// Waiting `--recovery-time`.
    Recover,
    /// Reading every key used.
    FinalReads,
    /// Members stopped, history closed.
    Stop,
    /// The linearizability check.
    Check,
    /// `results.json`, `report.html`.
    Report,
}

/// What a run tells as it goes (passed in: the CLI's progress bar, or nothing).
pub trait Progress: Send + Sync {
    /// Phase `phase` starts; `detail` says more (`recovering for 5s`).
    fn phase(&self, phase: Phase, detail: &str);
    /// About every 200 ms of the run phase.
    fn running(&self, elapsed: Duration, limit: Duration, counters: &Counters, activity: &str);
    /// The run is over (before the summary is printed).
    fn finish(&self) {}
}

/// No progress output (suites, tests).
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&self, _phase: Phase, _detail: &str) {}
    fn running(&self, _: Duration, _: Duration, _: &Counters, _: &str) {}
}

/// An indicatif spinner on the terminal.
pub struct Bar(indicatif::ProgressBar);

impl Bar {
    pub fn new() -> Bar {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(bar)
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl Progress for Bar {
    fn phase(&self, phase: Phase, detail: &str) {
        let what = match phase {
            Phase::Setup => "starting the cluster",
            Phase::Run => "running",
            Phase::Heal => "stopping clients and the nemesis, healing",
            Phase::Recover => "recovering",
            Phase::FinalReads => "final reads",
            Phase::Stop => "stopping the cluster",
            Phase::Check => "checking",
            Phase::Report => "writing the report",
        };
        if detail.is_empty() {
            self.0.set_message(what);
        } else {
            self.0.set_message(detail.to_string());
        }
    }
    fn running(&self, elapsed: Duration, limit: Duration, c: &Counters, act: &str) {
        self.0.set_message(format!(
            "{:>5.1}/{:.0}s  ops ok {} fail {} info {}  {}",
            elapsed.as_secs_f64(),
            limit.as_secs_f64(),
            c.ok.load(Ordering::Relaxed),
            c.fail.load(Ordering::Relaxed),
            c.info.load(Ordering::Relaxed),
            if act.is_empty() {
                "no fault".to_string()
            } else {
                format!("fault: {act}")
            }
        ));
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Cancels `cancel` on Ctrl-C (once; a second Ctrl-C exits at once with 130). Runs inside the
/// run's runtime, so each run listens while it runs.
fn cancel_on_ctrl_c(cancel: CancellationToken) {
    tokio::spawn(async move {
        tokio::select! {
            _ = cancel.cancelled() => {}
            r = tokio::signal::ctrl_c() => {
                if r.is_ok() {
                    eprintln!(
                        "\ninterrupted: healing and stopping the cluster (Ctrl-C again to abort)"
                    );
                    cancel.cancel();
                    if tokio::signal::ctrl_c().await.is_ok() {
                        // Children die with us (PR_SET_PDEATHSIG); the history is on disk;
                        // fault mounts are detached here (exit skips their drops).
                        crate::storage::detach_all();
                        std::process::exit(130);
                    }
                }
            }
        }
    });
}

/// Runs one test. Prints the seed first; with `interactive`, the summary. `cancel` stops it
/// early (Ctrl-C cancels it too): the run heals, stops and checks what was recorded, skipping
/// recovery and final reads. `progress` is told each phase.
pub fn run_test(
    opts: &TestPlan,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> anyhow::Result<RunOutcome> {
    opts.validate().map_err(crate::cli::exit::BadInput)?;
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the tokio runtime")
    };
    runtime()?.block_on(run_async(opts, cancel, progress))
}

async fn run_async(
    opts: &TestPlan,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> anyhow::Result<RunOutcome> {
    cancel_on_ctrl_c(cancel.clone());
    progress.phase(Phase::Setup, "");
    let t0 = Instant::now();
    say(&format!(
        "seed {} (replay with --seed {})",
        opts.seed, opts.seed
    ));
    if opts.uses_fault_fs() {
        // A harness killed with SIGKILL leaves dead fault mounts under the results directory.
        crate::storage::cleanup_leftovers(&opts.results);
    }
    let run_dir = store::create_run_dir(&opts.results, &opts.name)?;
    let schedule = opts.schedule();
    let test_json = serde_json::json!({
        "options": opts,
        "seed": opts.seed,
        "schedule": schedule,
        "nodes": opts.member_ids(),
        "started": store::timestamp(std::time::SystemTime::now()),
        "version": env!("CARGO_PKG_VERSION"),
    });
    store::write_json(&run_dir, "test.json", &test_json)?;
    if opts.interactive {
        say(&format!("run directory {}", run_dir.display()));
    }

    // Cluster.
    // Maelstrom nodes: the harness is their network (router, piped processes).
    let hosted = match opts.target {
        crate::sut::TargetKind::Maelstrom => Some(crate::maelstrom::Hosted::new(opts)?),
        _ => None,
    };
    let target = match &hosted {
        Some(h) => h.target.clone(),
        None => opts.sut()?,
    };
    let ids = opts.member_ids();
    let token = format!("sb-{:016x}", opts.seeds().of(Stream::ClusterToken));
    crate::cluster::install_panic_hook();
    // `--hosts`: connect to every host and prepare it; the members' network is theirs.
    let remote = match &opts.hosts {
        Some(h) => {
            let r =
                tokio::task::block_in_place(|| crate::host::ssh::connect_all(opts, h, &run_dir))?;
            Some(r)
        }
        None => None,
    };
    // A member that exits during start-up (most often: its port was taken between the choice
    // and its bind) gets the proxy network rebuilt on fresh ports, up to 3 attempts.
    let can_retry = opts.net != NetKind::Netns && hosted.is_none() && remote.is_none();
    let mut prebuilt_net = remote.as_ref().map(|r| r.net.clone() as Arc<dyn Network>);
    let mut attempt = 0;
    let cluster = loop {
        attempt += 1;
        let net: Arc<dyn Network> = match prebuilt_net.take() {
            Some(net) => net,
            None if hosted.is_some() => hosted.as_ref().map(|h| h.net.clone()).context("hosted")?,
            None if opts.net == NetKind::Netns => {
                let shared = target.shares_client_and_peer_port();
                Arc::new(tokio::task::block_in_place(|| {
                    crate::net::netns::Netns::create(&ids, shared)
                })?)
            }
            None if opts.net == NetKind::Message => Arc::new(
                crate::net::message::network::MessageNet::start(
                    &ids,
                    target.shares_client_and_peer_port(),
                    opts.seeds().of(Stream::MessageNetwork),
                )
                .await?,
            ),
            None => Arc::new(
                ProxyNet::start(
                    &ids,
                    target.shares_client_and_peer_port(),
                    opts.seeds().of(Stream::ProxyNetwork),
                )
                .await?,
            ),
        };
        let mut cluster = Cluster::new(
            target.clone(),
            net,
            &ids,
            &run_dir,
            &token,
            &opts.node_args,
            opts.seed,
        )?;
        if let Some(h) = &hosted {
            cluster = cluster.on_host(h.host.clone());
        }
        if let Some(r) = &remote {
            cluster = r.place(cluster)?;
        }
        let cluster = Arc::new(cluster);
        let mounted = match (opts.uses_fault_fs(), opts.target.fault_fs_metadata()) {
            (true, Some(md)) => cluster.mount_disks(&run_dir, md),
            _ => Ok(()),
        };
        let started = match mounted.and_then(|()| cluster.start_all()) {
            Ok(()) => cluster.wait_ready(target.ready_deadline()).await,
            Err(e) => Err(e),
        };
        match started {
            Ok(()) => break cluster,
            Err(e) if can_retry && attempt < 3 && !cluster.crashed().is_empty() => {
                eprintln!("start-up attempt {attempt} failed ({e:#}); retrying on fresh ports");
                cluster.stop_all();
                let _ = cluster.unmount_disks();
                drop(cluster);
                for sub in ["data", "disks"] {
                    let d = run_dir.join(sub);
                    if d.exists() {
                        std::fs::remove_dir_all(&d)
                            .with_context(|| format!("clearing {}", d.display()))?;
                    }
                }
            }
            Err(e) => return Err(e).context("starting the cluster"),
        }
    };

    let recorder = Arc::new(Recorder::create(
        &run_dir.join("history.jsonl"),
        Instant::now(),
        opts.workload.keyed(),
    )?);
    let (stop_tx, stop_rx) = watch::channel(false);
    // The run-time invariants (`crate::monitor`), from the first operation to the final reads.
    let (monitor_stop, monitor_rx) = watch::channel(false);
    let monitor_task = tokio::spawn(crate::monitor::run(cluster.clone(), monitor_rx));

    // Clients.
    let op_timeout = Duration::from_secs_f64(opts.op_timeout_s);
    let limiter = Arc::new(RateLimiter::new(opts.rate));
    let counters = Arc::new(Counters::default());
    let workload = opts.workload.workload();
    let gens = workload.generators(
        opts.concurrency,
        opts.ops_per_key,
        opts.seed,
        opts.unique_writes,
    );
    let values = opts.values();
    let mut clients: Vec<Arc<dyn Client>> = Vec::new();
    for spec in &cluster.specs {
        clients.push(
            cluster
                .target
                .client_with_values(spec, op_timeout, values)?,
        );
    }
    let changes_before = cluster.leader_changes.count();
    let mut workers = Vec::new();
    for (i, gen) in gens.into_iter().enumerate() {
        // Each worker has clients of its own (its own connections), one per member.
        let mut member_clients = Vec::new();
        for spec in &cluster.specs {
            member_clients.push(
                cluster
                    .target
                    .client_with_values(spec, op_timeout, values)?,
            );
        }
        let w = Worker {
            index: i,
            concurrency: opts.concurrency,
            workload,
            gen,
            clients: member_clients.clone(),
            retries: opts.retries,
            retry_backoff: Duration::from_secs_f64(opts.retry_backoff_s),
            recorder: recorder.clone(),
            limiter: limiter.clone(),
            counters: counters.clone(),
            op_timeout,
            duplicate: Some(crate::client::Duplicate {
                probability: opts.duplicate_writes,
                net: cluster.client_net.clone(),
                delay: Duration::from_secs_f64(opts.retry_backoff_s.max(0.1)),
                rng: rand::SeedableRng::seed_from_u64(opts.seeds().of(Stream::DuplicateNetwork(i))),
            }),
            leader_changes: cluster.leader_changes.clone(),
            read_burst: opts.read_burst,
        };
        workers.push(tokio::spawn(w.run(stop_rx.clone())));
    }

    // Nemesis and progress.
    let activity = Arc::new(watch::channel(String::new()).0);
    let nemesis_task = tokio::spawn(crate::nemesis::run(
        schedule,
        cluster.clone(),
        recorder.clone(),
        stop_rx.clone(),
        activity.clone(),
    ));
    // On remote hosts a member can be lost with its SSH connection: say so in the history
    // when it happens.
    let exits_task = remote.is_some().then(|| {
        tokio::spawn(record_exits(
            cluster.clone(),
            recorder.clone(),
            stop_rx.clone(),
        ))
    });
    progress.phase(Phase::Run, "");
    run_phase(opts, &recorder, &counters, &activity, cancel, progress).await;
    stop_tx.send_replace(true);
    let leader_changes_in_run = cluster.leader_changes.count() - changes_before;
    progress.phase(Phase::Heal, "");
    let mut gens = Vec::new();
    for w in workers {
        gens.push(w.await.context("a client worker panicked")?);
    }
    let nemesis_coverage = nemesis_task.await.unwrap_or_default();
    if let Some(t) = exits_task {
        let _ = t.await;
    }
    let nemesis_missing = crate::nemesis::missing(&opts.nemesis, &nemesis_coverage);
    heal_phase(&cluster, &recorder);
    let interrupted = cancel.is_cancelled();
    if !interrupted {
        progress.phase(
            Phase::Recover,
            &format!("recovering for {:.0}s", opts.recovery_time_s),
        );
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(opts.recovery_time_s)) => {}
            _ = cancel.cancelled() => {}
        }
        let mut keys: Vec<String> = gens.iter().flat_map(|g| g.keys_used()).collect();
        keys.sort();
        keys.dedup();
        progress.phase(
            Phase::FinalReads,
            &format!("final reads of {} keys", keys.len()),
        );
        let next_process = AtomicU64::new((opts.concurrency as u64) * 1_000_000);
        final_reads(
            workload,
            &keys,
            &clients,
            &recorder,
            &next_process,
            op_timeout,
            5,
        )
        .await;
    }
    monitor_stop.send_replace(true);
    let monitor = monitor_task
        .await
        .context("the run-time monitor panicked")?;
    let cluster_check = if interrupted {
        crate::endcheck::ClusterCheck::default()
    } else {
        progress.phase(Phase::Recover, "checking that the members converged");
        crate::endcheck::check_cluster(&cluster, Duration::from_secs_f64(opts.recovery_time_s))
            .await
    };
    progress.phase(Phase::Stop, "");
    let crashed = cluster.crashed();
    cluster.stop_all();
    if remote.is_some() {
        for e in tokio::task::block_in_place(|| cluster.collect_logs()) {
            eprintln!("warning: {e:#}");
        }
    }
    if let Err(e) = cluster.unmount_disks() {
        eprintln!("warning: {e:#}");
    }
    let refused = refusals(&cluster, &crashed);
    // A member that refused its damaged data did what a correct node must (issue 12): the
    // summary reports it ("refused its data"), the cluster check does not count it.
    let mut cluster_check = cluster_check;
    cluster_check.excuse(&refused.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>());
    cluster_check.excuse_behind_without_quorum(refused.len(), cluster.specs.len());
    // What the monitor saw while the members ran stands even for members that later refused
    // damaged data: it was seen before the damage.
    cluster_check.add_during_run(&monitor);
    recorder.finish()?;
    progress.phase(Phase::Check, "");

    // Check.
    let events = recorder.events();
    let reasons = recorder.reasons();
    let stats = summary::stats(&events, &reasons);
    let history = History::from_events(events)
        .map_err(|e| anyhow::anyhow!("the recorded history is malformed: {e}"))?;
    if opts.interactive {
        eprintln!("checking {} operations…", history.ops.len());
    }
    let report = tokio::task::spawn_blocking({
        let model = opts.workload.model();
        let copts = CheckOptions {
            timeout: Some(Duration::from_secs_f64(opts.check_timeout_s)),
            all_partitions: true,
            ..CheckOptions::default()
        };
        move || check(&history, model, &copts)
    })
    .await
    .context("the checker panicked")?;

    let outcome = RunOutcome {
        run_dir: run_dir.clone(),
        valid: report.valid,
        interrupted,
        stats,
        reasons: crate::analysis::reasons_json(&reasons),
        check: report,
        crashed,
        refused,
        cluster_check,
        nemesis_coverage,
        nemesis_missing,
        read_bursts: ReadBursts {
            per_change: opts.read_burst,
            leader_changes: leader_changes_in_run,
            reads: counters
                .burst_reads
                .load(std::sync::atomic::Ordering::Relaxed),
        },
        retries_sent: counters.retries.load(std::sync::atomic::Ordering::Relaxed),
        ok_after_retry: counters
            .ok_after_retry
            .load(std::sync::atomic::Ordering::Relaxed),
        elapsed_s: t0.elapsed().as_secs_f64(),
    };
    progress.phase(Phase::Report, "");
    let mut results = results_json(&outcome);
    // `--net message`: what the relay saw and did over the whole run.
    let message_counts = cluster.net.messages().map(|r| r.counters());
    if let Some(c) = &message_counts {
        results["messages"] = serde_json::json!(c);
    }
    let net_summary = cluster.net.summary();
    if let Some((v, _)) = &net_summary {
        results[cluster.net.name()] = v.clone();
    }
    store::write_json(&run_dir, "results.json", &results)?;

    // report.html (+ latency.svg, rate.svg). A report that cannot be drawn must not cost the
    // verdict, which is already on disk: warn and go on.
    if let Err(e) = crate::report::write_run_report(&run_dir) {
        eprintln!("warning: could not write report.html: {e:#}");
    }

    progress.finish();
    if opts.interactive {
        say(render_outcome(&outcome).trim_end());
        match &net_summary {
            Some((_, line)) => say(line),
            None => {
                if let Some(c) = &message_counts {
                    say(&crate::net::message::network::render_counters(c));
                }
            }
        }
    }
    Ok(outcome)
}

/// The run phase: until the time limit or `cancel`, telling `progress` how it goes.
async fn run_phase(
    opts: &TestPlan,
    recorder: &Recorder,
    counters: &Counters,
    activity: &watch::Sender<String>,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) {
    let time_limit = Duration::from_secs_f64(opts.time_limit_s);
    let run_start = recorder.start();
    loop {
        let elapsed = run_start.elapsed();
        if elapsed >= time_limit || cancel.is_cancelled() {
            break;
        }
        let act = activity.borrow().clone();
        progress.running(elapsed, time_limit, counters, &act);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200).min(time_limit - elapsed)) => {}
            _ = cancel.cancelled() => {}
        }
    }
}

/// Records a nemesis event `member-exited` (`{"node", "status"}`) the first time each member
/// is seen to have exited on its own, until `stop`.
async fn record_exits(
    cluster: Arc<Cluster>,
    recorder: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let crashed = tokio::task::block_in_place(|| cluster.crashed());
        for (id, status) in crashed {
            if seen.insert(id.clone()) {
                recorder.nemesis(
                    "member-exited",
                    serde_json::json!({"node": id, "status": status}),
                );
            }
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The heal phase: every fault healed, every member resumed or restarted (recorded as the
/// nemesis event `heal`).
fn heal_phase(cluster: &Cluster, recorder: &Recorder) {
    let heal = cluster.heal_all();
    recorder.nemesis(
        "heal",
        serde_json::json!({"healed": heal.is_ok(), "error": heal.as_ref().err().map(|e| format!("{e:#}"))}),
    );
}

/// Members that exited and whose log's last refusal names the damaged `FILE@OFFSET`.
fn refusals(cluster: &Cluster, crashed: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (id, _) in crashed {
        let Ok(spec) = cluster.spec(id) else { continue };
        let Ok(log) = std::fs::read(&spec.log_file) else {
            continue;
        };
        if let Some(at) = crate::nemesis::corrupt::refusal(&String::from_utf8_lossy(&log)) {
            out.push((id.clone(), at));
        }
    }
    out
}

/// `results.json`: the checker's verdict, counterexample and statistics.
pub fn results_json(o: &RunOutcome) -> serde_json::Value {
    serde_json::json!({
        "valid": o.valid,
        "interrupted": o.interrupted,
        "checker": o.check,
        "counterexample_text": o.check.counterexample.as_ref().map(|c| c.to_text()),
        "stats": o.stats,
        "reasons": o.reasons,
        "crashed_members": o.crashed,
        "refused_data": o.refused.iter().map(|(id, at)| serde_json::json!({"member": id, "at": at})).collect::<Vec<_>>(),
        "cluster_check": o.cluster_check,
        "nemesis_coverage": o.nemesis_coverage,
        "nemesis_missing": o.nemesis_missing,
        "read_bursts": o.read_bursts,
        "retries": {"sent": o.retries_sent, "ok_after_retry": o.ok_after_retry},
        "elapsed_s": o.elapsed_s,
    })
}

/// The end-of-run summary for people.
pub fn render_outcome(o: &RunOutcome) -> String {
    let mut out = String::from("\n");
    out.push_str(&summary::render(&o.stats));
    if !o.nemesis_coverage.is_empty() || !o.nemesis_missing.is_empty() {
        let struck: Vec<String> = o
            .nemesis_coverage
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        out.push_str(&format!("nemesis struck      {}\n", struck.join(", ")));
        if !o.nemesis_missing.is_empty() {
            out.push_str(&format!(
                "warning: --nemesis {} never struck in this run (longer --time-limit?)\n",
                o.nemesis_missing.join(",")
            ));
        }
    }
    let b = &o.read_bursts;
    if b.per_change > 0 {
        out.push_str(&format!(
            "read bursts         {} reads after {} leader changes (--read-burst {} per client)\n",
            b.reads, b.leader_changes, b.per_change
        ));
    }
    if o.retries_sent > 0 {
        out.push_str(&format!(
            "retries             {} sent with their request ids, {} ops ok after one\n",
            o.retries_sent, o.ok_after_retry
        ));
    }
    out.push_str(&format!("cluster check       {}\n", o.cluster_check.line()));
    if !o.cluster_check.ran {
        for (id, st) in &o.crashed {
            out.push_str(&format!(
                "failure: member {id} exited on its own ({st}); see nodes/{id}.log\n"
            ));
        }
    }
    for (id, at) in &o.refused {
        out.push_str(&format!("member {id} refused its data: {at}\n"));
    }
    let keys = &o.check.per_key;
    let count = |v: Verdict| keys.iter().filter(|k| k.verdict == v).count();
    out.push_str(&format!(
        "verdict             {}{}  ({} ops checked; keys: {} valid, {} invalid, {} unknown; {:.0} ms)\n",
        match o.valid {
            Verdict::Valid => "VALID",
            Verdict::Invalid => "INVALID",
            Verdict::Unknown => "UNKNOWN",
        },
        if o.interrupted { " (interrupted run)" } else { "" },
        o.check.ops,
        count(Verdict::Valid),
        count(Verdict::Invalid),
        count(Verdict::Unknown),
        o.check.elapsed_ms,
    ));
    if let Some(c) = &o.check.counterexample {
        out.push_str(&c.to_text());
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    let report = o.run_dir.join("report.html");
    if report.exists() {
        out.push_str(&format!("report              {}\n", report.display()));
    }
    out.push_str(&format!("run directory       {}\n", o.run_dir.display()));
    out
}
