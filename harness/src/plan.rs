//! The typed plan of a test run: every option parsed and validated once ([`TestPlan`]), built
//! the same way by `splitbrain test`, `splitbrain suite` and `splitbrain bench` from
//! [`PlanArgs`] (the flags they share).
//!
//! Names are types: targets ([`TargetKind`]), networks ([`NetKind`]), workloads
//! ([`WorkloadKind`]) and nemesis lists ([`NemesisList`], kinds from the nemesis registry).
//! Which fault runs on which network and target follows from their capabilities
//! (`NetKind::supports`, `TargetKind::peer_links_proxyable`, `FaultKind::needs`), checked in
//! [`TestPlan::validate`]; errors name the flag.

use crate::cli::exit::BadInput;
use crate::nemesis::{self, NemesisList};
use crate::net::NetKind;
use crate::sut::{Target, TargetKind};
use serde::Serialize;
use splitbrain_workloads::seeds::{Seeds, Stream};
use splitbrain_workloads::values::{SizeDist, ValueSize, Values};
use splitbrain_workloads::WorkloadKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `--retries` when not given, for `--target splitbrain` (other targets: 0).
pub const DEFAULT_RETRIES: usize = 2;

/// The flags of a test run, shared by `splitbrain test` (flattened into its arguments) and
/// the suite (which starts from their defaults, [`PlanArgs::defaults`]).
#[derive(clap::Args, Debug, Clone)]
pub struct PlanArgs {
    /// Implementation under test: splitbrain, etcd, cmd (with --node-cmd), or maelstrom
    /// (with --node-cmd: a Maelstrom lin-kv node, stdin/stdout JSON; the harness is its network).
    #[arg(long, value_enum, default_value = "splitbrain")]
    pub target: TargetKind,
    /// For --target cmd: the command starting a member, with placeholders {id} {listen}
    /// {peers} {data-dir} {token}, e.g. 'BIN --id {id} --listen {listen} {peers}'. For
    /// --target maelstrom: the node's command line, e.g. 'python3 node.py'.
    #[arg(long, value_name = "TEMPLATE")]
    pub node_cmd: Option<String>,
    /// --target maelstrom: mean latency of every message in milliseconds (Maelstrom's --latency).
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub latency: f64,
    /// --target maelstrom: shape of the latency: constant, uniform (0..2×mean) or exponential.
    #[arg(long, value_enum, default_value = "constant")]
    pub latency_dist: crate::maelstrom::router::LatencyDist,
    /// --target maelstrom: a read answered `20 key-does-not-exist` is a read of null (default:
    /// `fail`, as Maelstrom's lin-kv client records it).
    #[arg(long)]
    pub missing_read_null: bool,
    /// Test name (the results sub-directory); default `<target>-<workload>-<nemesis>`.
    #[arg(long)]
    pub name: Option<String>,
    /// Number of members (default 5; 3 with --target maelstrom, as Maelstrom's lin-kv; with
    /// --hosts, the number of hosts).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Seconds of client operations (faults included), before healing and final reads.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub time_limit: f64,
    /// register | cas-register | kv (independent cas-registers) | append (lists per key).
    #[arg(long, default_value = "kv")]
    pub workload: WorkloadKind,
    /// kv, append: operations on each key before moving to a fresh key.
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
    /// reordering peer links), all (= kill,pause,partition), the aimed kill-leader,
    /// pause-leader, kill-in-election, isolate-new-leader, kill-majority, and thorough (the
    /// default: every aimed kind plus kill,pause,partition, densely: holds of 0.3-0.6 and rests
    /// of 0.05-0.2 --nemesis-interval; with --target maelstrom the default is partition).
    #[arg(long, value_name = "LIST")]
    pub nemesis: Option<NemesisList>,
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
    /// Store of runs.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub results: PathBuf,
    /// Extra argument for every member (repeatable), e.g. `--node-arg=--bug --node-arg=stale-read`.
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// Network between members: proxy (a TCP proxy per directed link), netns (root: a
    /// network namespace per member, nftables rules; needed to partition etcd) or message
    /// (an HTTP relay that sees every Raft message; needed by the msg-* nemeses).
    #[arg(long, value_enum, default_value = "proxy")]
    pub net: NetKind,
    /// Client request timeout in seconds (a write that times out is `info`). With --target
    /// maelstrom it is Maelstrom's: max(10 × --latency, 1 s).
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub op_timeout: f64,
    /// Retry an indefinite write or cas up to N times with the same request id, through the
    /// next member (exercises the node's request-id dedup, also across snapshots; 0: the op
    /// is `info` at once). Default: 2 with --target splitbrain (its dedup makes a resent write
    /// safe), 0 for every other target (etcd and NATS have no request ids, Maelstrom's lin-kv
    /// neither).
    #[arg(long, value_name = "N")]
    pub retries: Option<usize>,
    /// Seconds to wait before retry i of an indefinite write: i × this.
    #[arg(long, default_value_t = 0.1, value_name = "SECS")]
    pub retry_backoff: f64,
    /// After each leader change the harness sees (a leader of a new term in `/status`), every
    /// client's next N operations are reads of its current key, sent back to back, outside
    /// --rate (0: no bursts; at most 100).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub read_burst: usize,
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
    /// Writes (cas arguments, appended elements) carry values padded to this size: bytes,
    /// or with a unit (1KiB, 64KiB, 1MB). A read whose padding is not what its writer sent
    /// is a corrupted read (invalid). Targets splitbrain, etcd and cmd
    #[arg(long, value_name = "BYTES")]
    pub value_size: Option<String>,
    /// With --value-size: constant, uniform (1..=2×size) or exponential (mean size, at most
    /// 8×size) [default: constant]
    #[arg(long, value_name = "DIST")]
    pub value_size_dist: Option<String>,
    /// Put every member's data dir on a fault filesystem (FUSE; forgets unsynced writes on a
    /// power loss) even without a power-loss fault (`power-loss` and `torn-power-loss` mount
    /// them anyway). Needs /dev/fuse and root or fusermount3
    #[arg(long)]
    pub fault_fs: bool,
    /// Run each member on a remote host over SSH: a file with one `[user@]host[:port]` per
    /// line, or TOML `[[host]]` tables (host, user, port, key, workdir, address, program,
    /// nft). One member per host; implies --net ssh (nftables on the hosts). See the README
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// With --hosts: the private key for hosts without a `key` of their own
    #[arg(long, value_name = "PATH")]
    pub ssh_key: Option<PathBuf>,
    /// With --hosts: check host keys against known_hosts (yes), or accept any and record
    /// none (no)
    #[arg(long, default_value = "yes", value_parser = ["yes", "no"])]
    pub ssh_strict_host_keys: String,
}

/// Parses `PlanArgs` alone (for its defaults).
#[derive(clap::Parser)]
struct PlanOnly {
    #[command(flatten)]
    plan: PlanArgs,
}

impl PlanArgs {
    /// Every flag at its default (what `splitbrain test` with no flags runs).
    pub fn defaults() -> PlanArgs {
        use clap::Parser;
        match PlanOnly::try_parse_from(["splitbrain"]) {
            Ok(p) => p.plan,
            // The defaults above are literals that parse; a failure is a bug in this file.
            Err(e) => panic!("the default flags of a test do not parse: {e}"),
        }
    }

    /// The plan of run `i` (0-based) of a series (seed `seed + i`; a random seed when none is
    /// given). Errors name the flag.
    pub fn plan(&self, i: u32) -> Result<TestPlan, BadInput> {
        let maelstrom = self.target == TargetKind::Maelstrom;
        let (hosts, nodes, net) = self.remote_hosts(if maelstrom { 3 } else { DEFAULT_NODES })?;
        if maelstrom && hosts.is_some() {
            return Err(BadInput(
                "--target maelstrom runs its nodes on this machine (its router is their network); --hosts does not apply".into(),
            ));
        }
        let mut nemesis = match &self.nemesis {
            Some(n) => n.clone(),
            None => (if maelstrom { "partition" } else { "thorough" })
                .parse()
                .map_err(BadInput)?,
        };
        if self.target == TargetKind::Splitbrain && net == NetKind::Message {
            // `thorough` on the message network also aims at single Raft messages.
            nemesis.add_message_choices(nodes);
        }
        let concurrency = parse_concurrency(&self.concurrency, nodes).map_err(BadInput)?;
        let value_size = self.value_size().map_err(BadInput)?;
        if maelstrom && self.net == NetKind::Netns {
            return Err(BadInput(
                "--target maelstrom: the harness is the nodes' network; --net netns does not apply"
                    .into(),
            ));
        }
        if !(self.latency >= 0.0 && self.latency.is_finite()) {
            return Err(BadInput(format!("--latency {}: must be ≥ 0", self.latency)));
        }
        if !maelstrom && (self.latency > 0.0 || self.missing_read_null) {
            return Err(BadInput(
                "--latency and --missing-read-null are for --target maelstrom (other targets: \
                 --nemesis delay)"
                    .into(),
            ));
        }
        // Maelstrom's lin-kv client: max(10 × mean latency, 1 s).
        let op_timeout = if maelstrom {
            (10.0 * self.latency / 1000.0).max(1.0)
        } else {
            self.op_timeout
        };
        let seed = self.seed.unwrap_or_else(random_seed).wrapping_add(i as u64);
        let name = self.name.clone().unwrap_or_else(|| {
            format!(
                "{}-{}-{}",
                self.target.name(),
                self.workload.name(),
                nemesis.text.replace(',', "+")
            )
        });
        let plan = TestPlan {
            name,
            target: self.target,
            node_cmd: self.node_cmd.clone(),
            net: if maelstrom { NetKind::Message } else { net },
            nodes,
            time_limit_s: self.time_limit,
            workload: self.workload,
            ops_per_key: self.ops_per_key,
            concurrency,
            rate: self.rate,
            nemesis,
            nemesis_overlap: self.nemesis_overlap,
            nemesis_interval_s: self.nemesis_interval,
            recovery_time_s: self.recovery_time,
            seed,
            results: self.results.clone(),
            node_args: self.node_args.clone(),
            op_timeout_s: op_timeout,
            latency_ms: self.latency,
            latency_dist: self.latency_dist,
            missing_read_null: self.missing_read_null,
            retries: self
                .retries
                .unwrap_or(if self.target == TargetKind::Splitbrain {
                    DEFAULT_RETRIES
                } else {
                    0
                }),
            retry_backoff_s: self.retry_backoff,
            read_burst: self.read_burst,
            unique_writes: self.unique_writes,
            duplicate_writes: self.duplicate_writes,
            check_timeout_s: self.check_timeout,
            value_size: value_size.map(|v| v.bytes),
            value_size_dist: value_size.map(|v| v.dist),
            fault_fs: self.fault_fs,
            hosts,
            interactive: true,
        };
        plan.validate().map_err(BadInput)?;
        Ok(plan)
    }
}

impl PlanArgs {
    /// `--value-size` and `--value-size-dist`, parsed (`None`: plain integer values).
    pub fn value_size(&self) -> Result<Option<ValueSize>, String> {
        let dist = self
            .value_size_dist
            .as_deref()
            .map(str::parse::<SizeDist>)
            .transpose()?;
        match (&self.value_size, dist) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err("--value-size-dist needs --value-size BYTES".into()),
            (Some(s), dist) => Ok(Some(ValueSize {
                bytes: splitbrain_workloads::values::parse_size(s)?,
                dist: dist.unwrap_or_default(),
            })),
        }
    }

    /// `--hosts`, read and parsed, with the members and network it implies: one member per
    /// host (`--nodes` left at its default follows the file; another value must match it)
    /// and `--net ssh` (`--net proxy`, the default, gives way to it).
    /// The hosts of `--hosts`, the number of members (`default_nodes` unless `--nodes` or the
    /// hosts say), and the network.
    fn remote_hosts(
        &self,
        default_nodes: usize,
    ) -> Result<(Option<RemoteHosts>, usize, NetKind), BadInput> {
        let Some(file) = &self.hosts else {
            if self.net == NetKind::Ssh {
                return Err(BadInput("--net ssh needs --hosts FILE".into()));
            }
            if self.ssh_key.is_some() {
                return Err(BadInput("--ssh-key is only for --hosts".into()));
            }
            return Ok((None, self.nodes.unwrap_or(default_nodes), self.net));
        };
        let entries =
            crate::host::hosts_file::load(file).map_err(|e| BadInput(format!("--hosts {e}")))?;
        let nodes = match self.nodes {
            None => entries.len(),
            Some(n) if n == entries.len() => n,
            Some(n) => {
                return Err(BadInput(format!(
                    "--nodes {n} but --hosts {} lists {} hosts: one member per host",
                    file.display(),
                    entries.len()
                )));
            }
        };
        if !matches!(self.net, NetKind::Proxy | NetKind::Ssh) {
            return Err(BadInput(format!(
                "--net {} cannot run with --hosts: members on remote hosts use --net ssh (nftables on each host)",
                self.net.name()
            )));
        }
        let ssh = crate::host::ssh::SshOptions {
            key: self.ssh_key.clone(),
            strict_host_keys: self.ssh_strict_host_keys == "yes",
            ..Default::default()
        };
        Ok((
            Some(RemoteHosts {
                file: file.clone(),
                entries,
                ssh,
            }),
            nodes,
            NetKind::Ssh,
        ))
    }
}

/// The `--nodes` default (a `--hosts` file overrides it).
const DEFAULT_NODES: usize = 5;

/// `--hosts` and its SSH options: where the members run.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteHosts {
    pub file: PathBuf,
    /// Member `n<i+1>` runs on `entries[i]`.
    pub entries: Vec<crate::host::hosts_file::HostEntry>,
    pub ssh: crate::host::ssh::SshOptions,
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

/// A fresh seed from the clock and the process id.
pub fn random_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    splitbrain_workloads::seeds::fresh(t, std::process::id() as u64)
}

/// Every option of a test run: written to `test.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TestPlan {
    pub name: String,
    pub target: TargetKind,
    /// `--node-cmd` template of the `cmd` target.
    #[serde(default)]
    pub node_cmd: Option<String>,
    pub net: NetKind,
    pub nodes: usize,
    pub time_limit_s: f64,
    pub workload: WorkloadKind,
    pub ops_per_key: u64,
    /// Workers (resolved from `--concurrency`, e.g. `2n` → 10 with 5 nodes).
    pub concurrency: usize,
    /// Operations per second across all workers (0: unlimited).
    pub rate: f64,
    /// The `--nemesis` list (stored as given).
    pub nemesis: NemesisList,
    /// One fault timeline per `--nemesis` choice, so faults overlap (Jepsen's combined
    /// nemesis); false: one fault at a time.
    #[serde(default)]
    pub nemesis_overlap: bool,
    pub nemesis_interval_s: f64,
    pub recovery_time_s: f64,
    pub seed: u64,
    pub results: PathBuf,
    pub node_args: Vec<String>,
    /// Client request timeout.
    pub op_timeout_s: f64,
    /// Retries of an indefinite write or cas with the same request id (through the next
    /// member); 0 = Jepsen's behaviour (the op is `info`).
    #[serde(default)]
    pub retries: usize,
    /// Wait before retry `i` of an indefinite write: `retry_backoff_s × i` seconds.
    #[serde(default)]
    pub retry_backoff_s: f64,
    /// Reads per worker after each leader change (`--read-burst`, `crate::client::LeaderChanges`);
    /// 0 (also in plans recorded before it existed): none.
    #[serde(default)]
    pub read_burst: usize,
    /// Every write writes a value of its own (`--unique-writes`), so that a write applied
    /// twice is visible (see `splitbrain_workloads::WorkerGen::set_unique_writes`).
    #[serde(default)]
    pub unique_writes: bool,
    /// Probability that an `ok` write or cas is duplicated by the network `retry_backoff_s`
    /// (at least 0.1 s) later (`--duplicate-writes`; see `client::Duplicate`). 0: never.
    #[serde(default)]
    pub duplicate_writes: f64,
    /// Checker deadline (undecided keys are `unknown`).
    pub check_timeout_s: f64,
    /// `--value-size`: the mean wire length in bytes of every written value (`None`: plain
    /// integers), and `--value-size-dist` (see `splitbrain_workloads::values`).
    #[serde(default)]
    pub value_size: Option<usize>,
    #[serde(default)]
    pub value_size_dist: Option<SizeDist>,
    /// `--target maelstrom`: mean message latency (ms) and its distribution.
    #[serde(default)]
    pub latency_ms: f64,
    #[serde(default)]
    pub latency_dist: crate::maelstrom::router::LatencyDist,
    /// `--target maelstrom`: a read of a missing key (error 20) is a read of null, not `fail`.
    #[serde(default)]
    pub missing_read_null: bool,
    /// Show the progress bar and print the summary.
    #[serde(skip)]
    pub interactive: bool,
    /// `--fault-fs`: mount fault filesystems without a fault that needs them (see
    /// [`TestPlan::uses_fault_fs`]).
    #[serde(default)]
    pub fault_fs: bool,
    /// `--hosts`: members on remote hosts over SSH (`None`: local processes).
    #[serde(default)]
    pub hosts: Option<RemoteHosts>,
}

impl TestPlan {
    /// Validates the options; errors name the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.read_burst > 100 {
            return Err(format!(
                "--read-burst {}: at most 100 reads per client per leader change",
                self.read_burst
            ));
        }
        if !(0.0..=1.0).contains(&self.duplicate_writes) {
            return Err(format!(
                "--duplicate-writes {}: expected a probability in 0..=1",
                self.duplicate_writes
            ));
        }
        if self.nodes == 0 || self.nodes > 15 {
            return Err(format!("--nodes {}: expected 1..=15", self.nodes));
        }
        if self.time_limit_s.is_nan() || self.time_limit_s <= 0.0 {
            return Err(format!(
                "--time-limit {}: must be positive",
                self.time_limit_s
            ));
        }
        if self.concurrency == 0 {
            return Err("--concurrency: need at least one worker".into());
        }
        if self.rate < 0.0 || !self.rate.is_finite() {
            return Err(format!("--rate {}: must be ≥ 0", self.rate));
        }
        if self.nemesis_interval_s.is_nan() || self.nemesis_interval_s <= 0.0 {
            return Err(format!(
                "--nemesis-interval {}: must be positive",
                self.nemesis_interval_s
            ));
        }
        if self.recovery_time_s < 0.0 {
            return Err(format!(
                "--recovery-time {}: must be ≥ 0",
                self.recovery_time_s
            ));
        }
        if !(self.retry_backoff_s >= 0.0 && self.retry_backoff_s.is_finite()) {
            return Err(format!(
                "--retry-backoff {}: must be ≥ 0",
                self.retry_backoff_s
            ));
        }
        if self.op_timeout_s.is_nan() || self.op_timeout_s <= 0.0 {
            return Err(format!(
                "--op-timeout {}: must be positive",
                self.op_timeout_s
            ));
        }
        if self.ops_per_key == 0 {
            return Err("--ops-per-key: must be at least 1".into());
        }
        let sut = self.target.resolve(self.node_cmd.as_deref())?;
        let _ = sut;
        if self.value_size.is_some() {
            self.target.carries_padded_values(self.workload)?;
        }
        if self.uses_fault_fs() {
            let flag = if self.fault_fs {
                "--fault-fs".to_string()
            } else {
                format!("--nemesis {}", self.nemesis.text)
            };
            if self.target.fault_fs_metadata().is_none() {
                return Err(format!(
                    "{flag} needs a target that keeps its data in its data dir; --target {} does not say where it keeps it",
                    self.target.name()
                ));
            }
            if let Some(why) = crate::storage::unavailable() {
                return Err(format!("{flag} needs a fault filesystem: {why}"));
            }
        }
        if self.target == TargetKind::Maelstrom {
            if self.net != NetKind::Message {
                return Err(format!(
                    "--target maelstrom: the harness is the nodes' network (--net {} does not apply)",
                    self.net.name()
                ));
            }
            if !matches!(
                self.workload,
                WorkloadKind::Register | WorkloadKind::CasRegister | WorkloadKind::Kv
            ) {
                return Err(format!(
                    "--workload {}: Maelstrom's lin-kv has read, write and cas only (use register, cas-register or kv)",
                    self.workload.name()
                ));
            }
            if self.uses_fault_fs() {
                return Err("--target maelstrom: Maelstrom nodes keep no disk state (no --fault-fs, power-loss or corrupt)".into());
            }
            if self.retries > 0 || self.duplicate_writes > 0.0 {
                return Err("--retries and --duplicate-writes resend a write with its request id; Maelstrom's lin-kv has no request ids, so a resent write may apply twice (not with --target maelstrom)".into());
            }
        } else if self.net == NetKind::Message && self.target != crate::sut::TargetKind::Splitbrain
        {
            return Err(format!(
                "--net message needs --target splitbrain: the relay parses the node's Raft \
                 messages, and {} speaks another protocol (use --net proxy or netns)",
                self.target.name()
            ));
        }
        if let Some(h) = &self.hosts {
            if h.entries.len() != self.nodes {
                return Err(format!(
                    "--nodes {} but --hosts lists {} hosts: one member per host",
                    self.nodes,
                    h.entries.len()
                ));
            }
            if self.uses_fault_fs()
                || self
                    .nemesis
                    .kinds()
                    .any(|k| k.name().starts_with("corrupt"))
            {
                return Err(format!(
                    "{} needs the members' data dirs on this machine; not with --hosts",
                    if self.fault_fs {
                        "--fault-fs".to_string()
                    } else {
                        format!("--nemesis {}", self.nemesis.text)
                    }
                ));
            }
        } else if self.net == NetKind::Ssh {
            return Err("--net ssh needs --hosts FILE".into());
        }
        for kind in self.nemesis.kinds() {
            let needs = kind.needs();
            if !self.net.supports(kind) {
                return Err(format!(
                    "--nemesis {} needs another --net: the {} network {}",
                    kind.name(),
                    self.net.name(),
                    self.net.missing(needs)
                ));
            }
            if needs.peer_links()
                && self.net.works_through_peer_addresses()
                && !self.target.peer_links_proxyable()
            {
                return Err(format!(
                    "--target {t} with --nemesis {k} needs --net netns (root): the {n} network cannot reach {t}'s peer links",
                    t = self.target.name(),
                    k = kind.name(),
                    n = self.net.name()
                ));
            }
        }
        Ok(())
    }

    /// How the run's values travel: plain integers, or padded (`--value-size`) with the
    /// filler of the run's value stream.
    pub fn values(&self) -> Values {
        let size = self.value_size.map(|bytes| ValueSize {
            bytes,
            dist: self.value_size_dist.unwrap_or_default(),
        });
        Values::new(size, self.seed)
    }

    /// True if the members' data dirs are fault filesystems: `--fault-fs`, or a fault kind of
    /// `--nemesis` needs them (`power-loss`).
    pub fn uses_fault_fs(&self) -> bool {
        self.fault_fs || self.nemesis.kinds().any(|k| k.needs_fault_fs())
    }

    /// `n1 … nN`; Maelstrom's `n0 … n(N-1)` for `--target maelstrom`.
    pub fn member_ids(&self) -> Vec<String> {
        if self.target == TargetKind::Maelstrom {
            return (0..self.nodes).map(|i| format!("n{i}")).collect();
        }
        (1..=self.nodes).map(|i| format!("n{i}")).collect()
    }

    /// The nemesis schedule this run will follow.
    pub fn schedule(&self) -> Vec<nemesis::Planned> {
        let choices = &self.nemesis.choices;
        let plan = if self.nemesis_overlap {
            nemesis::plan_overlapping
        } else if self.nemesis.thorough() {
            nemesis::plan_thorough
        } else {
            nemesis::plan
        };
        plan(
            choices,
            &self.member_ids(),
            Duration::from_secs_f64(self.time_limit_s),
            Duration::from_secs_f64(self.nemesis_interval_s),
            self.seeds().of(Stream::Nemesis),
        )
    }
}

impl TestPlan {
    /// The run's named random streams.
    pub fn seeds(&self) -> Seeds {
        Seeds::new(self.seed)
    }

    /// The system under test's adapter (validated in [`TestPlan::validate`]).
    pub fn sut(&self) -> Result<Arc<dyn Target>, BadInput> {
        self.target
            .resolve(self.node_cmd.as_deref())
            .map_err(BadInput)
    }
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

    fn args(f: impl FnOnce(&mut PlanArgs)) -> Result<TestPlan, String> {
        let mut a = PlanArgs::defaults();
        a.seed = Some(1);
        f(&mut a);
        a.plan(0).map_err(|e| e.0)
    }

    #[test]
    fn etcd_partitions_on_the_proxy_network_are_refused_by_capability() {
        let e = args(|a| {
            a.target = TargetKind::Etcd;
            a.nemesis = Some("isolate-one".parse().unwrap());
        })
        .unwrap_err();
        assert!(e.contains("--net netns") && e.contains("etcd"), "{e}");
        assert!(args(|a| {
            a.target = TargetKind::Etcd;
            a.nemesis = Some("kill,pause".parse().unwrap());
        })
        .is_ok());
        assert!(args(|a| {
            a.target = TargetKind::Etcd;
            a.net = NetKind::Netns;
            a.nemesis = Some("partition".parse().unwrap());
        })
        .is_ok());
    }

    #[test]
    fn delay_on_netns_is_refused_because_netns_cannot_delay() {
        let e = args(|a| {
            a.net = NetKind::Netns;
            a.nemesis = Some("delay".parse().unwrap());
        })
        .unwrap_err();
        assert!(e.contains("--nemesis delay") && e.contains("netns"), "{e}");
        assert!(NetKind::Proxy.supports(&crate::nemesis::delay::DelayKind));
        assert!(!NetKind::Netns.supports(&crate::nemesis::delay::DelayKind));
    }

    #[test]
    fn maelstrom_defaults_follow_maelstroms_lin_kv_and_unfit_options_are_refused() {
        let p = args(|a| {
            a.target = TargetKind::Maelstrom;
            a.node_cmd = Some("python3 node.py".into());
            a.latency = 250.0;
        })
        .unwrap();
        assert_eq!((p.nodes, p.concurrency), (3, 6));
        assert_eq!(p.nemesis.text, "partition");
        assert_eq!(p.member_ids(), vec!["n0", "n1", "n2"]);
        assert_eq!(p.op_timeout_s, 2.5, "max(10 × latency, 1 s)");
        let explicit = args(|a| {
            a.target = TargetKind::Maelstrom;
            a.node_cmd = Some("python3 node.py".into());
            a.nodes = Some(5);
            a.nemesis = Some("pause".parse().unwrap());
        })
        .unwrap();
        assert_eq!(
            (explicit.nodes, explicit.nemesis.text.as_str()),
            (5, "pause")
        );
        let e = args(|a| {
            a.target = TargetKind::Maelstrom;
            a.node_cmd = Some("python3 node.py".into());
            a.retries = Some(2);
        })
        .unwrap_err();
        assert!(e.contains("--retries"), "{e}");
        let e = args(|a| a.latency = 5.0).unwrap_err();
        assert!(e.contains("--latency"), "{e}");
        let e = args(|a| a.target = TargetKind::Maelstrom).unwrap_err();
        assert!(e.contains("--node-cmd"), "{e}");
    }

    #[test]
    fn the_default_plan_is_valid_and_names_itself_after_its_parts() {
        let p = args(|_| {}).unwrap();
        assert_eq!(p.name, "splitbrain-kv-thorough");
        assert_eq!(p.concurrency, 10);
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["target"], "splitbrain");
        assert_eq!(j["net"], "proxy");
        assert_eq!(j["nemesis"], "thorough");
        assert_eq!(j["workload"], "kv");
        assert_eq!(p.read_burst, 3);
    }

    #[test]
    fn thorough_adds_the_message_aimed_choice_only_on_the_message_network() {
        let names = |p: &TestPlan| -> Vec<&'static str> {
            p.nemesis
                .choices
                .iter()
                .map(|c| nemesis::choice_name(c))
                .collect()
        };
        let proxy = args(|_| {}).unwrap();
        assert!(!names(&proxy).contains(&"msg-first-commit"));
        let msg = args(|a| a.net = NetKind::Message).unwrap();
        assert!(
            names(&msg).contains(&"msg-first-commit"),
            "{:?}",
            names(&msg)
        );
        assert_eq!(names(&msg).len(), names(&proxy).len() + 1);
        assert_eq!(serde_json::to_value(&msg).unwrap()["nemesis"], "thorough");
        // Planned: a default-length run on the message network strikes it.
        assert!(msg
            .schedule()
            .iter()
            .any(|p| p.choice == "msg-first-commit"));
        let kill = args(|a| {
            a.net = NetKind::Message;
            a.nemesis = Some("kill".parse().unwrap());
        })
        .unwrap();
        assert_eq!(names(&kill), vec!["kill"]);
    }

    #[test]
    fn retries_default_to_two_only_for_the_node_whose_request_ids_make_them_safe() {
        assert_eq!(args(|_| {}).unwrap().retries, DEFAULT_RETRIES);
        assert!(DEFAULT_RETRIES > 0);
        let etcd = |a: &mut PlanArgs| {
            a.target = TargetKind::Etcd;
            a.nemesis = Some("kill".parse().unwrap());
        };
        assert_eq!(args(etcd).unwrap().retries, 0);
        let m = args(|a| {
            a.target = TargetKind::Maelstrom;
            a.node_cmd = Some("python3 node.py".into());
        })
        .unwrap();
        assert_eq!(m.retries, 0, "Maelstrom's lin-kv has no request ids");
        assert_eq!(args(|a| a.retries = Some(0)).unwrap().retries, 0);
        assert_eq!(
            args(|a| {
                etcd(a);
                a.retries = Some(5);
            })
            .unwrap()
            .retries,
            5
        );
    }

    #[test]
    fn read_bursts_are_bounded() {
        let e = args(|a| a.read_burst = 101).unwrap_err();
        assert!(e.contains("--read-burst 101"), "{e}");
        assert_eq!(args(|a| a.read_burst = 0).unwrap().read_burst, 0);
    }

    #[test]
    fn hosts_set_the_members_and_the_ssh_network_and_refuse_what_needs_local_data_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hosts");
        std::fs::write(&f, "root@10.0.0.1\nroot@10.0.0.2\nroot@10.0.0.3\n").unwrap();
        let with = |g: &dyn Fn(&mut PlanArgs)| {
            args(|a| {
                a.hosts = Some(f.clone());
                g(a);
            })
        };
        let p = with(&|_| {}).unwrap();
        assert_eq!((p.nodes, p.net), (3, NetKind::Ssh));
        assert_eq!(p.hosts.as_ref().unwrap().entries[2].host, "10.0.0.3");
        assert!(p.hosts.as_ref().unwrap().ssh.strict_host_keys);
        let e = with(&|a| a.nodes = Some(4)).unwrap_err();
        assert!(e.contains("--nodes 4") && e.contains("3 hosts"), "{e}");
        assert!(with(&|a| a.nodes = Some(3)).is_ok());
        let e = with(&|a| a.net = NetKind::Netns).unwrap_err();
        assert!(e.contains("--net netns") && e.contains("--hosts"), "{e}");
        let e = with(&|a| a.nemesis = Some("corrupt".parse().unwrap())).unwrap_err();
        assert!(e.contains("--hosts"), "{e}");
        let e = with(&|a| a.nemesis = Some("delay".parse().unwrap())).unwrap_err();
        assert!(e.contains("delay") && e.contains("ssh"), "{e}");
        let e = args(|a| a.net = NetKind::Ssh).unwrap_err();
        assert!(e.contains("--hosts"), "{e}");
        std::fs::write(&f, "root@10.0.0.1\nroot@:22\n").unwrap();
        let e = with(&|_| {}).unwrap_err();
        assert!(e.contains(&format!("{}:2:", f.display())), "{e}");
    }
}
