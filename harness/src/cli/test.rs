//! `splitbrain test`: one (or `--test-count`) Jepsen-style test run(s) of a local cluster.
//! Flags follow Jepsen's vocabulary; see `crate::runner` for what a run does.

use crate::cli::exit::BadInput;
use crate::plan::{random_seed, PlanArgs};
use crate::runner::{run_test, say, Bar};
use tokio_util::sync::CancellationToken;

/// Arguments of `splitbrain test`: the plan's flags, and how many runs.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Run the test K times (seeds seed, seed+1, …).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub test_count: u32,
    /// Print the schedule this seed gives (faults with times and targets, and each worker's
    /// first operations) as JSON, and exit without running anything.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if args.test_count == 0 {
        return Err(BadInput("--test-count: must be at least 1".into()).into());
    }
    // One random seed for the whole series, so `--seed S --test-count K` replays it.
    let mut args = args;
    args.plan.seed.get_or_insert_with(random_seed);
    if args.dry_run {
        let opts = args.plan.plan(0)?;
        let workload = opts.workload.workload();
        let mut gens = workload.generators(
            opts.concurrency,
            opts.ops_per_key,
            opts.seed,
            opts.unique_writes,
        );
        let ops: Vec<Vec<serde_json::Value>> = gens
            .iter_mut()
            .map(|g| {
                (0..10)
                    .map(|_| {
                        let op = g.next_op();
                        serde_json::json!({"f": op.f().name(), "key": op.key(), "value": workload.invocation_value(&op)})
                    })
                    .collect()
            })
            .collect();
        let out =
            serde_json::json!({"seed": opts.seed, "schedule": opts.schedule(), "worker_ops": ops});
        say(&serde_json::to_string_pretty(&out)?);
        return Ok(crate::cli::exit::VALID);
    }
    let mut worst = crate::cli::exit::VALID;
    let mut tally = (0, 0, 0);
    // One token for the series: Ctrl-C in one run stops the rest.
    let cancel = CancellationToken::new();
    for i in 0..args.test_count {
        if cancel.is_cancelled() {
            break;
        }
        let opts = args.plan.plan(i)?;
        if args.test_count > 1 {
            say(&format!("── test {} of {} ──", i + 1, args.test_count));
        }
        let outcome = run_test(&opts, &cancel, &Bar::new())?;
        let code = outcome.exit_code();
        match code {
            0 => tally.0 += 1,
            1 => tally.1 += 1,
            _ => tally.2 += 1,
        }
        // Invalid outranks a failed cluster check, which outranks unknown, then valid.
        worst = match (worst, code) {
            (1, _) | (_, 1) => 1,
            (3, _) | (_, 3) => 3,
            (2, _) | (_, 2) => 2,
            _ => 0,
        };
    }
    if args.test_count > 1 {
        say(&format!(
            "{} runs: {} valid, {} invalid, {} unknown",
            args.test_count, tally.0, tally.1, tally.2
        ));
    }
    Ok(worst)
}
