//! `splitbrain test`: one (or `--test-count`) Jepsen-style test run(s) of a local cluster.
//! Flags follow Jepsen's vocabulary; see `crate::runner` for what a run does.

use crate::cli::exit::BadInput;
use crate::runner::{run_test, say, TestOptions, INTERRUPTED};
use splitbrain_workloads::WorkloadKind;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// Arguments of `splitbrain test`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Implementation under test: splitbrain, etcd, or cmd (with --node-cmd).
    #[arg(long, default_value = "splitbrain")]
    pub target: String,
    /// For --target cmd: the command starting a member, with placeholders {id} {listen}
    /// {peers} {data-dir} {token}, e.g. 'BIN --id {id} --listen {listen} {peers}'.
    #[arg(long, value_name = "TEMPLATE")]
    pub node_cmd: Option<String>,
    /// Test name (the results sub-directory); default `<target>-<workload>-<nemesis>`.
    #[arg(long)]
    pub name: Option<String>,
    /// Number of members.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Seconds of client operations (faults included), before healing and final reads.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub time_limit: f64,
    /// register | cas-register | kv (independent cas-registers).
    #[arg(long, default_value = "kv")]
    pub workload: String,
    /// kv: operations on each key before moving to a fresh key.
    #[arg(long, default_value_t = 100)]
    pub ops_per_key: u64,
    /// Client workers: a number, or `Kn` for K times the nodes (e.g. `2n`).
    #[arg(long, default_value = "2n")]
    pub concurrency: String,
    /// Operations per second across all workers (0: as fast as possible).
    #[arg(long, default_value_t = 100.0, value_name = "HZ")]
    pub rate: f64,
    /// Comma list of faults: none, kill, pause, partition (a random one of partition-halves,
    /// isolate-one, isolate-leader, majorities-ring, bridge), any of those five, delay (slow,
    /// reordering peer links), all (= kill,pause,partition).
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub nemesis: String,
    /// Run one fault timeline per choice of --nemesis, so that e.g. a kill can happen while a
    /// partition holds (Jepsen's combined nemesis). Default: one fault at a time.
    #[arg(long)]
    pub nemesis_overlap: bool,
    /// Seconds each fault is held; rests between faults last ½–1½ of it.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub nemesis_interval: f64,
    /// Seconds to wait after healing before the final reads.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub recovery_time: f64,
    /// Seed of every random choice (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run the test K times (seeds seed, seed+1, …).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub test_count: u32,
    /// Store of runs.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub results: PathBuf,
    /// Extra argument for every member (repeatable), e.g. `--node-arg=--bug --node-arg=stale-read`.
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// Network between members: proxy (a TCP proxy per directed link) or netns (root: a
    /// network namespace per member, nftables rules; needed to partition etcd).
    #[arg(long, default_value = "proxy")]
    pub net: String,
    /// Client request timeout in seconds (a write that times out is `info`).
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub op_timeout: f64,
    /// Retry an indefinite write or cas up to N times with the same request id, through the
    /// next member (exercises the node's request-id dedup; 0: the op is `info` at once).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub retries: usize,
    /// Seconds to wait before retry i of an indefinite write: i × this.
    #[arg(long, default_value_t = 0.1, value_name = "SECS")]
    pub retry_backoff: f64,
    /// Every write writes a value no other write uses (cas arguments stay small), so that a
    /// write applied twice shows in the history (catches broken request-id dedup)
    #[arg(long)]
    pub unique_writes: bool,
    /// A network that duplicates requests: with probability P an `ok` write or cas is sent
    /// again with the same request id through the next member, --retry-backoff (≥ 0.1 s)
    /// later. A target with request-id dedup must stay linearizable; etcd has none
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub duplicate_writes: f64,
    /// Checker deadline in seconds (keys not decided by then are `unknown`).
    #[arg(long, default_value_t = 120.0, value_name = "SECS")]
    pub check_timeout: f64,
    /// Print the schedule this seed gives (faults with times and targets, and each worker's
    /// first operations) as JSON, and exit without running anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// Parses `--concurrency` (`N` or `Kn`) for `nodes` members.
pub fn parse_concurrency(s: &str, nodes: usize) -> Result<usize, String> {
    let bad = || format!("--concurrency {s:?}: expected a number or `Kn` (e.g. 2n)");
    let n = if let Some(k) = s.strip_suffix('n') {
        k.parse::<usize>().map_err(|_| bad())? * nodes
    } else {
        s.parse::<usize>().map_err(|_| bad())?
    };
    if n == 0 {
        return Err(format!("--concurrency {s:?}: need at least one worker"));
    }
    Ok(n)
}

fn random_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    splitbrain_workloads::sub_seed(t, std::process::id() as u64) % 1_000_000_000
}

impl Args {
    /// The options of run `i` (0-based) of `--test-count`.
    pub fn options(&self, i: u32) -> anyhow::Result<TestOptions> {
        let workload = WorkloadKind::parse(&self.workload)
            .map_err(|e| BadInput(format!("--workload: {e}")))?;
        let concurrency = parse_concurrency(&self.concurrency, self.nodes).map_err(BadInput)?;
        let seed = self.seed.unwrap_or_else(random_seed).wrapping_add(i as u64);
        let name = self.name.clone().unwrap_or_else(|| {
            format!(
                "{}-{}-{}",
                self.target,
                workload.name(),
                self.nemesis.replace(',', "+")
            )
        });
        let opts = TestOptions {
            name,
            target: self.target.clone(),
            node_cmd: self.node_cmd.clone(),
            net: self.net.clone(),
            nodes: self.nodes,
            time_limit_s: self.time_limit,
            workload,
            ops_per_key: self.ops_per_key,
            concurrency,
            rate: self.rate,
            nemesis: self.nemesis.clone(),
            nemesis_overlap: self.nemesis_overlap,
            nemesis_interval_s: self.nemesis_interval,
            recovery_time_s: self.recovery_time,
            seed,
            results: self.results.clone(),
            node_args: self.node_args.clone(),
            op_timeout_s: self.op_timeout,
            retries: self.retries,
            retry_backoff_s: self.retry_backoff,
            unique_writes: self.unique_writes,
            duplicate_writes: self.duplicate_writes,
            check_timeout_s: self.check_timeout,
            interactive: true,
        };
        opts.validate().map_err(BadInput)?;
        Ok(opts)
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if args.test_count == 0 {
        return Err(BadInput("--test-count: must be at least 1".into()).into());
    }
    // One random seed for the whole series, so `--seed S --test-count K` replays it.
    let mut args = args;
    args.seed.get_or_insert_with(random_seed);
    if args.dry_run {
        let opts = args.options(0)?;
        let mut gens = splitbrain_workloads::worker_generators(
            opts.workload,
            opts.concurrency,
            opts.ops_per_key,
            opts.seed,
        );
        if opts.unique_writes {
            for (w, g) in gens.iter_mut().enumerate() {
                g.set_unique_writes(w);
            }
        }
        let ops: Vec<Vec<serde_json::Value>> = gens
            .iter_mut()
            .map(|g| {
                (0..10)
                    .map(|_| {
                        let op = g.next_op();
                        serde_json::json!({"f": op.f.name(), "key": op.key, "value": op.invoke_value()})
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
    for i in 0..args.test_count {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        let opts = args.options(i)?;
        if args.test_count > 1 {
            say(&format!("── test {} of {} ──", i + 1, args.test_count));
        }
        let outcome = run_test(&opts)?;
        let code = outcome.exit_code();
        match code {
            0 => tally.0 += 1,
            1 => tally.1 += 1,
            _ => tally.2 += 1,
        }
        // Invalid outranks unknown, which outranks valid.
        worst = match (worst, code) {
            (1, _) | (_, 1) => 1,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_accepts_numbers_and_multiples_of_nodes() {
        assert_eq!(parse_concurrency("7", 5), Ok(7));
        assert_eq!(parse_concurrency("2n", 5), Ok(10));
        assert_eq!(parse_concurrency("1n", 3), Ok(3));
        assert!(parse_concurrency("0", 3).is_err());
        assert!(parse_concurrency("xn", 3)
            .unwrap_err()
            .contains("--concurrency"));
    }
}
