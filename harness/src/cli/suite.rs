//! `splitbrain suite FILE.toml`: runs a matrix of tests one after another (each through
//! `crate::runner::run_test`, the same entry point as `splitbrain test`) and writes
//! `results/suites/<time>/` with `summary.json`, `summary.html` and `junit.xml`.
//! Exit code: 0 all valid, 1 any invalid, 2 any unknown or crashed. See `crate::suite`.

use crate::cli::exit::BadInput;
use crate::net::NetKind;
use crate::plan::{PlanArgs, TestPlan};
use crate::runner::{run_test, Quiet, RunOutcome};
use crate::suite::{self, RunResult, RunSpec, RunStatus, Runner, SuiteFile};
use crate::sut::TargetKind;
use splitbrain_checker::Verdict;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Arguments of `splitbrain suite`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The suite file (TOML): targets × workloads × nemeses × repeats.
    pub file: PathBuf,
    /// Store of runs; the suite's summaries go to `<DIR>/suites/<time>/`.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub results: PathBuf,
}

/// Runs each cell through `run_test`; `cancel` (Ctrl-C in any run) skips the rest.
#[derive(Default)]
pub struct TestRunner {
    pub cancel: CancellationToken,
}

impl TestRunner {
    /// The plan of one cell: `splitbrain test`'s defaults with the cell's values, built and
    /// validated by the same `PlanArgs::plan` as `splitbrain test`.
    pub fn options(spec: &RunSpec, results: &Path) -> Result<TestPlan, String> {
        let mut a = PlanArgs::defaults();
        a.target = TargetKind::parse(&spec.target)
            .ok_or_else(|| format!("target: unknown target {:?}", spec.target))?;
        a.net = <NetKind as clap::ValueEnum>::from_str(&spec.net, false)
            .map_err(|_| format!("nets: unknown network {:?}", spec.net))?;
        a.workload = spec
            .workload
            .parse()
            .map_err(|e| format!("workload: {e}"))?;
        a.nemesis = Some(
            spec.nemesis
                .parse()
                .map_err(|e| format!("--nemesis: {e}"))?,
        );
        a.name = Some(spec.name.clone());
        a.nodes = Some(spec.nodes);
        a.time_limit = spec.time_limit;
        if let Some(c) = &spec.concurrency {
            a.concurrency = c.clone();
        }
        if let Some(r) = spec.rate {
            a.rate = r;
        }
        if let Some(i) = spec.nemesis_interval {
            a.nemesis_interval = i;
        }
        if let Some(r) = spec.recovery_time {
            a.recovery_time = r;
        }
        a.seed = Some(spec.seed);
        a.results = results.to_path_buf();
        // Suites never retry (no backoff to wait).
        a.retry_backoff = 0.0;
        let mut plan = a.plan(0).map_err(|e| e.0)?;
        plan.interactive = false;
        Ok(plan)
    }

    /// What the suite keeps of a finished run.
    pub fn result(spec: &RunSpec, o: &RunOutcome) -> RunResult {
        let status = match o.valid {
            _ if o.interrupted => RunStatus::Crashed,
            // A failed end-of-run cluster check is a failure (JUnit `<failure>`), like invalid.
            Verdict::Valid | Verdict::Unknown if !o.cluster_check.ok() => RunStatus::Invalid,
            Verdict::Valid => RunStatus::Valid,
            Verdict::Invalid => RunStatus::Invalid,
            Verdict::Unknown => RunStatus::Unknown,
        };
        let message = match status {
            RunStatus::Valid => String::new(),
            RunStatus::Crashed => "interrupted".into(),
            RunStatus::Unknown => format!(
                "the checker could not decide ({} of {} partitions unknown)",
                o.check.partitions.unknown, o.check.partitions.total
            ),
            RunStatus::Invalid if o.valid != Verdict::Invalid => {
                format!("cluster check {}", o.cluster_check.line())
            }
            RunStatus::Invalid => o
                .check
                .counterexample
                .as_ref()
                .map(|c| c.to_text())
                .unwrap_or_else(|| "invalid (no counterexample given)".into()),
        };
        let ok = o.stats.total.ok;
        let some = |x: f64| (ok > 0).then_some(x);
        RunResult {
            status,
            run_dir: Some(o.run_dir.clone()),
            message,
            elapsed_s: o.elapsed_s,
            throughput: Some(ok as f64 / spec.time_limit),
            availability_during_faults: o.stats.availability_during_faults,
            latency_p50_ms: some(o.stats.latency.p50_ms),
            latency_p99_ms: some(o.stats.latency.p99_ms),
            recovery_s: o.stats.median_recovery_s(),
            ops_ok: ok,
        }
    }
}

impl Runner for TestRunner {
    fn run(&mut self, spec: &RunSpec, results: &Path) -> RunResult {
        let t0 = Instant::now();
        if self.cancel.is_cancelled() {
            return RunResult::crashed("skipped: the suite was interrupted", 0.0);
        }
        let opts = match Self::options(spec, results) {
            Ok(o) => o,
            Err(e) => return RunResult::crashed(format!("bad options: {e}"), 0.0),
        };
        // A panic inside one run must not end the suite.
        // The plan is only read by the run and dropped after a panic.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_test(&opts, &self.cancel, &Quiet)
        })) {
            Ok(Ok(o)) => Self::result(spec, &o),
            Ok(Err(e)) => RunResult::crashed(format!("{e:#}"), t0.elapsed().as_secs_f64()),
            Err(_) => RunResult::crashed("the run panicked", t0.elapsed().as_secs_f64()),
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let suite = SuiteFile::load(&args.file).map_err(|e| BadInput(e.to_string()))?;
    // Fail fast on cells whose options are invalid (bad workload, nemesis, concurrency).
    for spec in suite.matrix() {
        TestRunner::options(&spec, &args.results).map_err(|e| {
            BadInput(format!(
                "suite file {}: run {}: {e}",
                args.file.display(),
                spec.name
            ))
        })?;
    }
    let total = suite.matrix().len();
    println!("suite {}: {total} runs", suite.name);
    let outcome = suite::run_suite(
        &suite,
        &args.results,
        &mut TestRunner::default(),
        |i, n, spec, result| match result {
            None => println!(
                "[{}/{n}] {} (target {}, net {}, seed {})",
                i + 1,
                spec.name,
                spec.target,
                spec.net,
                spec.seed
            ),
            Some(r) => {
                let first = r.message.lines().next().unwrap_or("");
                println!(
                    "[{}/{n}] {} → {:?} in {:.0}s {first}",
                    i + 1,
                    spec.name,
                    r.status,
                    r.elapsed_s
                )
            }
        },
    )?;
    let count = |s: RunStatus| outcome.runs.iter().filter(|(_, r)| r.status == s).count();
    println!(
        "suite {}: {} valid, {} invalid, {} unknown, {} crashed in {:.0}s\nsummary {}\njunit   {}",
        suite.name,
        count(RunStatus::Valid),
        count(RunStatus::Invalid),
        count(RunStatus::Unknown),
        count(RunStatus::Crashed),
        outcome.elapsed_s,
        outcome.dir.join("summary.html").display(),
        outcome.dir.join("junit.xml").display()
    );
    Ok(outcome.exit_code())
}
