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
//!   after Ctrl-C (which skips recovery and final reads but still checks what was recorded).
//! - Members die with the harness (see `crate::cluster`); a panic hook kills them too.

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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub run_dir: PathBuf,
    pub valid: Verdict,
    pub interrupted: bool,
    pub stats: Stats,
    pub check: CheckReport,
    /// Members that exited on their own during the run.
    pub crashed: Vec<(String, String)>,
    pub elapsed_s: f64,
}

impl RunOutcome {
    /// The exit code for this verdict (0 valid, 1 invalid, 2 unknown).
    pub fn exit_code(&self) -> u8 {
        match self.valid {
            Verdict::Valid => crate::cli::exit::VALID,
            Verdict::Invalid => crate::cli::exit::INVALID,
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

/// Set by Ctrl-C; every run in this process stops early once it is set.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs one test. Prints the seed first; with `interactive`, a progress bar and the summary.
pub fn run_test(opts: &TestPlan) -> anyhow::Result<RunOutcome> {
    opts.validate().map_err(crate::cli::exit::BadInput)?;
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the tokio runtime")
    };
    if opts.net == NetKind::Netns {
        // Every socket of the harness (clients, status) is opened inside the clients' namespace.
        let shared = opts.sut()?.shares_client_and_peer_port();
        return crate::net::netns::run_in_clients(&opts.member_ids(), shared, |net| {
            runtime()?.block_on(run_async(opts, Some(net)))
        });
    }
    runtime()?.block_on(run_async(opts, None))
}

async fn run_async(
    opts: &TestPlan,
    prebuilt_net: Option<Arc<dyn Network>>,
) -> anyhow::Result<RunOutcome> {
    let t0 = Instant::now();
    say(&format!(
        "seed {} (replay with --seed {})",
        opts.seed, opts.seed
    ));
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
    let target = opts.sut()?;
    let ids = opts.member_ids();
    let token = format!("sb-{:016x}", opts.seeds().of(Stream::ClusterToken));
    crate::cluster::install_panic_hook();
    // A member that exits during start-up (most often: its port was taken between the choice
    // and its bind) gets the proxy network rebuilt on fresh ports, up to 3 attempts.
    let can_retry = prebuilt_net.is_none();
    let mut prebuilt_net = prebuilt_net;
    let mut attempt = 0;
    let cluster = loop {
        attempt += 1;
        let net: Arc<dyn Network> = match prebuilt_net.take() {
            Some(net) => net,
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
        let cluster = Arc::new(Cluster::new(
            target.clone(),
            net,
            &ids,
            &run_dir,
            &token,
            &opts.node_args,
            opts.seed,
        )?);
        let started = match cluster.start_all() {
            Ok(()) => cluster.wait_ready(Duration::from_secs(30)).await,
            Err(e) => Err(e),
        };
        match started {
            Ok(()) => break cluster,
            Err(e) if can_retry && attempt < 3 && !cluster.crashed().is_empty() => {
                eprintln!("start-up attempt {attempt} failed ({e:#}); retrying on fresh ports");
                cluster.stop_all();
                drop(cluster);
                let data = run_dir.join("data");
                std::fs::remove_dir_all(&data)
                    .with_context(|| format!("clearing {}", data.display()))?;
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
    let stop_tx = Arc::new(stop_tx);
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\ninterrupted: healing and stopping the cluster (Ctrl-C again to abort)"
                );
                INTERRUPTED.store(true, Ordering::SeqCst);
                stop_tx.send_replace(true);
                if tokio::signal::ctrl_c().await.is_ok() {
                    // Children die with us (PR_SET_PDEATHSIG); the history is on disk.
                    std::process::exit(130);
                }
            }
        });
    }

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
    let mut clients: Vec<Arc<dyn Client>> = Vec::new();
    for spec in &cluster.specs {
        clients.push(target.client(spec, op_timeout)?);
    }
    let mut workers = Vec::new();
    for (i, gen) in gens.into_iter().enumerate() {
        // Each worker has clients of its own (its own connections), one per member.
        let mut member_clients = Vec::new();
        for spec in &cluster.specs {
            member_clients.push(target.client(spec, op_timeout)?);
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
            duplicate: (opts.duplicate_writes > 0.0).then(|| crate::client::Duplicate {
                probability: opts.duplicate_writes,
                delay: Duration::from_secs_f64(opts.retry_backoff_s.max(0.1)),
                rng: rand::SeedableRng::seed_from_u64(opts.seeds().of(Stream::DuplicateNetwork(i))),
            }),
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
    let bar = progress_bar(opts.interactive);
    let time_limit = Duration::from_secs_f64(opts.time_limit_s);
    let run_start = recorder.start();
    {
        let mut stop_rx = stop_rx.clone();
        loop {
            let elapsed = run_start.elapsed();
            if elapsed >= time_limit || INTERRUPTED.load(Ordering::SeqCst) {
                break;
            }
            let act = activity.borrow().clone();
            bar.set_message(format!(
                "{:>5.1}/{:.0}s  ops ok {} fail {} info {}  {}",
                elapsed.as_secs_f64(),
                time_limit.as_secs_f64(),
                counters.ok.load(Ordering::Relaxed),
                counters.fail.load(Ordering::Relaxed),
                counters.info.load(Ordering::Relaxed),
                if act.is_empty() {
                    "no fault".to_string()
                } else {
                    format!("fault: {act}")
                }
            ));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200).min(time_limit - elapsed)) => {}
                _ = stop_rx.changed() => {}
            }
        }
    }
    stop_tx.send_replace(true);
    bar.set_message("stopping clients and the nemesis");
    let mut gens = Vec::new();
    for w in workers {
        gens.push(w.await.context("a client worker panicked")?);
    }
    let _ = nemesis_task.await;

    // Final phase: heal, recover, read every key.
    let heal = cluster.heal_all();
    recorder.nemesis(
        "heal",
        serde_json::json!({"healed": heal.is_ok(), "error": heal.as_ref().err().map(|e| format!("{e:#}"))}),
    );
    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    if !interrupted {
        bar.set_message(format!("recovering for {:.0}s", opts.recovery_time_s));
        tokio::time::sleep(Duration::from_secs_f64(opts.recovery_time_s)).await;
        let mut keys: Vec<String> = gens.iter().flat_map(|g| g.keys_used()).collect();
        keys.sort();
        keys.dedup();
        bar.set_message(format!("final reads of {} keys", keys.len()));
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
    let crashed = cluster.crashed();
    cluster.stop_all();
    recorder.finish()?;
    bar.finish_and_clear();

    // Check.
    let events = recorder.events();
    let stats = summary::stats(&events, &recorder.reasons());
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
        check: report,
        crashed,
        elapsed_s: t0.elapsed().as_secs_f64(),
    };
    let mut results = results_json(&outcome);
    // `--net message`: what the relay saw and did over the whole run.
    let message_counts = cluster.net.messages().map(|r| r.counters());
    if let Some(c) = &message_counts {
        results["messages"] = serde_json::json!(c);
    }
    store::write_json(&run_dir, "results.json", &results)?;

    // report.html (+ latency.svg, rate.svg). A report that cannot be drawn must not cost the
    // verdict, which is already on disk: warn and go on.
    if let Err(e) = crate::report::write_run_report(&run_dir) {
        eprintln!("warning: could not write report.html: {e:#}");
    }

    if opts.interactive {
        say(render_outcome(&outcome).trim_end());
        if let Some(c) = &message_counts {
            say(&crate::net::message::network::render_counters(c));
        }
    }
    Ok(outcome)
}

/// `results.json`: the checker's verdict, counterexample and statistics.
pub fn results_json(o: &RunOutcome) -> serde_json::Value {
    serde_json::json!({
        "valid": o.valid,
        "interrupted": o.interrupted,
        "checker": o.check,
        "counterexample_text": o.check.counterexample.as_ref().map(|c| c.to_text()),
        "stats": o.stats,
        "crashed_members": o.crashed,
        "elapsed_s": o.elapsed_s,
    })
}

/// The end-of-run summary for people.
pub fn render_outcome(o: &RunOutcome) -> String {
    let mut out = String::from("\n");
    out.push_str(&summary::render(&o.stats));
    for (id, st) in &o.crashed {
        out.push_str(&format!(
            "warning: member {id} exited on its own ({st}); see nodes/{id}.log\n"
        ));
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

fn progress_bar(interactive: bool) -> indicatif::ProgressBar {
    if !interactive {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
