//! `splitbrain bench [--target splitbrain,etcd,nats] [--json]`: the same operations without faults,
//! for a fixed time, per target in one run, side by side.
//!
//! For each target a fresh cluster (`--nodes`, default 3) is started on loopback with direct
//! peer links (no proxies, so no target pays an extra hop), through the same cluster code and
//! target adapter as `splitbrain test`. Then, in order:
//! 1. sequential write latency: one client writing to the leader for `--duration` seconds;
//! 2. throughput: 1, 16 and 64 clients writing (spread over the members) for `--duration` each,
//!    ok writes per second;
//! 3. read latency: one client reading (linearizable) from the leader;
//! 4. failover, `--failovers` times: SIGKILL the leader, then write (to the survivors, round
//!    robin, 200 ms timeout) until a write is ok; the time from the kill to that ok. The killed
//!    member is restarted and the cluster waits for a leader before the next round.
//!
//! With `--value-size BYTES` every write (all of the above) carries a value padded to that
//! size (`splitbrain_workloads::values`, constant size, the seed-1 filler) and reads decode
//! and verify it; the throughput rows then also give MB/s (ok writes/s × BYTES / 10⁶).
//!
//! `--net direct,proxy,message` measures each target on each of those networks (default
//! `direct`): `proxy` puts the TCP proxy of `test --net proxy` on every directed peer link,
//! `message` the relay of `test --net message` (splitbrain only), with no fault active, so the
//! table shows what a network costs a run. Columns are then named `target@net`; with `message`
//! a row gives the relay's messages per second during each throughput phase.
//!
//! Latencies are of ok operations; the table gives each target's figure and its ratio to the
//! first target's. `--json` prints the same as JSON. Member data and logs go to
//! `<results>/bench/<time>/<target>/`.

use crate::cli::exit::BadInput;
use crate::cluster::Cluster;
use crate::net::{Link, LinkControl, LinkFaults, MemberAddrs, Network};
use crate::sut::{Client, Outcome, TargetKind};
use anyhow::Context;
use serde::Serialize;
use splitbrain_workloads::values::{SizeDist, ValueSize, Values};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `splitbrain bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Comma list of targets (splitbrain, etcd, nats); ratios are to the first.
    #[arg(long, default_value = "splitbrain,etcd")]
    pub target: String,
    /// Members per cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Seconds of each measurement.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub duration: f64,
    /// Leader kills for the failover measurement.
    #[arg(long, default_value_t = 5)]
    pub failovers: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Store of runs (member data and logs under `bench/<time>/`).
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub results: PathBuf,
    /// Every member's data dir on a fault filesystem (as under `test --nemesis power-loss`),
    /// to measure what it costs. Needs /dev/fuse and root or fusermount3
    #[arg(long)]
    pub fault_fs: bool,
    /// Every write carries a value padded to this size (bytes, or 1KiB, 64KiB, 1MB); the
    /// throughput rows also give MB/s. Default: small integers
    #[arg(long, value_name = "BYTES")]
    pub value_size: Option<String>,
    /// Comma list of networks to measure each target on: direct (peers dial each other),
    /// proxy (`test --net proxy`), message (`test --net message`, splitbrain only)
    #[arg(long, default_value = "direct", value_name = "NETS")]
    pub net: String,
}

/// A network `bench --net` can put between the members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchNet {
    Direct,
    Proxy,
    Message,
}

impl BenchNet {
    fn name(self) -> &'static str {
        match self {
            BenchNet::Direct => "direct",
            BenchNet::Proxy => "proxy",
            BenchNet::Message => "message",
        }
    }
}

/// `--net`, parsed (errors name the flag).
pub fn parse_nets(list: &str) -> Result<Vec<BenchNet>, BadInput> {
    let mut nets = Vec::new();
    for n in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let net = match n {
            "direct" => BenchNet::Direct,
            "proxy" => BenchNet::Proxy,
            "message" => BenchNet::Message,
            _ => {
                return Err(BadInput(format!(
                    "--net {n:?}: expected direct, proxy or message"
                )))
            }
        };
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    if nets.is_empty() {
        return Err(BadInput("--net: name at least one network".into()));
    }
    Ok(nets)
}

impl Args {
    /// `--value-size`, parsed (errors name the flag).
    fn value_size(&self) -> Result<Option<usize>, BadInput> {
        self.value_size
            .as_deref()
            .map(splitbrain_workloads::values::parse_size)
            .transpose()
            .map_err(BadInput)
    }

    /// How the bench's values travel.
    fn values(&self) -> Result<Values, BadInput> {
        let size = self.value_size()?.map(|bytes| ValueSize {
            bytes,
            dist: SizeDist::Constant,
        });
        Ok(Values::new(size, 1))
    }
}

/// Latency percentiles in ms.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
pub struct Lat {
    pub ops: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One target's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetBench {
    pub target: String,
    pub write_latency: Lat,
    pub read_latency: Lat,
    /// Clients → ok writes per second.
    pub throughput: BTreeMap<usize, f64>,
    /// `--value-size` in bytes (`None`: small integers).
    #[serde(default)]
    pub value_size: Option<usize>,
    /// Clients → MB/s of written values (ok writes/s × `value_size` / 10⁶), with `--value-size`.
    #[serde(default)]
    pub throughput_mb_s: BTreeMap<usize, f64>,
    /// Seconds from SIGKILL of the leader to the next ok write, per round.
    pub failover_s: Vec<f64>,
    /// The network between the members (`--net`).
    #[serde(default)]
    pub net: String,
    /// Clients → peer messages the relay passed per second during that throughput phase
    /// (`--net message` only).
    #[serde(default)]
    pub relay_msgs_per_s: BTreeMap<usize, f64>,
    pub failover_median_s: Option<f64>,
    pub failover_max_s: Option<f64>,
}

/// Loopback addresses, peers dialed directly: a network that cannot cut anything.
struct DirectNet {
    addrs: BTreeMap<String, MemberAddrs>,
}

impl DirectNet {
    fn new(ids: &[String], shared: bool) -> anyhow::Result<Self> {
        let mut base = BTreeMap::new();
        for id in ids {
            let client = crate::net::proxy::free_port()?;
            let peer = if shared {
                client
            } else {
                crate::net::proxy::free_port()?
            };
            base.insert(id.clone(), (client, peer));
        }
        let addrs = base
            .iter()
            .map(|(id, &(client, peer))| {
                let routes = base
                    .iter()
                    .filter(|(o, _)| *o != id)
                    .map(|(o, &(_, p))| (o.clone(), p))
                    .collect();
                (
                    id.clone(),
                    MemberAddrs {
                        client,
                        peer,
                        routes,
                    },
                )
            })
            .collect();
        Ok(DirectNet { addrs })
    }
}

impl Network for DirectNet {
    fn name(&self) -> &'static str {
        "direct"
    }
    fn addrs(&self, id: &str) -> anyhow::Result<MemberAddrs> {
        self.addrs
            .get(id)
            .cloned()
            .with_context(|| format!("no member {id}"))
    }
}

impl LinkControl for DirectNet {
    fn set_cuts(&self, cuts: &BTreeSet<Link>) -> anyhow::Result<()> {
        anyhow::ensure!(cuts.is_empty(), "the bench network cannot cut links");
        Ok(())
    }
    fn cuts(&self) -> BTreeSet<Link> {
        BTreeSet::new()
    }
    fn set_faults(&self, _link: &Link, _faults: LinkFaults) -> anyhow::Result<()> {
        anyhow::bail!("the bench network cannot delay or drop")
    }
}

fn lat(v: Vec<Duration>) -> Lat {
    let mut ns: Vec<u64> = v.iter().map(|d| d.as_nanos() as u64).collect();
    ns.sort_unstable();
    let pct = |p: f64| crate::analysis::percentile(&ns, p) as f64 / 1e6;
    Lat {
        ops: ns.len(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

/// The median and max of `v`.
pub fn median_max(v: &[f64]) -> (Option<f64>, Option<f64>) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let med = crate::suite::history::median(&mut s);
    (med, s.last().copied())
}

async fn leader_index(cluster: &Cluster, deadline: Duration) -> anyhow::Result<usize> {
    let t0 = Instant::now();
    loop {
        if let Some(l) = cluster.leader().await {
            if let Some(i) = cluster.specs.iter().position(|s| s.id == l) {
                return Ok(i);
            }
        }
        anyhow::ensure!(t0.elapsed() < deadline, "no leader within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One client, one operation at a time; `phase` makes request ids unique across phases (the
/// node answers a reused id as it answered the first request).
async fn sequential(
    client: &dyn Client,
    dur: Duration,
    write: bool,
    key: &str,
    phase: &str,
) -> Lat {
    let mut v = Vec::new();
    let t0 = Instant::now();
    let mut i = 0i64;
    while t0.elapsed() < dur {
        i += 1;
        let s = Instant::now();
        let ok = if write {
            matches!(
                client.write(key, i, &format!("{phase}-{i}")).await,
                Outcome::Ok(_)
            )
        } else {
            matches!(client.read(key).await, Outcome::Ok(_))
        };
        if ok {
            v.push(s.elapsed());
        }
    }
    lat(v)
}

async fn throughput(clients: &[Arc<dyn Client>], n: usize, dur: Duration) -> f64 {
    let ok = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..n {
        let c = clients[w % clients.len()].clone();
        let ok = ok.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0i64;
            let key = format!("t{n}-{w}");
            while t0.elapsed() < dur {
                i += 1;
                if matches!(
                    c.write(&key, i, &format!("tp{n}-{w}-{i}")).await,
                    Outcome::Ok(_)
                ) {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    ok.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

/// The plan of benchmarking target `name`, built and validated as `splitbrain test` builds
/// its own: no faults, `--nodes` members. Only built-in targets (not `cmd`).
fn bench_plan(name: &str, args: &Args) -> Result<crate::plan::TestPlan, BadInput> {
    let kind = TargetKind::parse(name).ok_or_else(|| {
        let names: Vec<&str> = TargetKind::ALL.iter().map(|k| k.name()).collect();
        BadInput(format!(
            "--target {name:?}: expected one of: {}",
            names.join(", ")
        ))
    })?;
    if !kind.builtin() {
        return Err(BadInput(format!(
            "--target {name} is not supported by bench"
        )));
    }
    if args.value_size()?.is_some() {
        kind.carries_padded_values(splitbrain_workloads::WorkloadKind::Register)
            .map_err(BadInput)?;
    }
    let mut a = crate::plan::PlanArgs::defaults();
    a.target = kind;
    a.nodes = Some(args.nodes);
    a.nemesis = Some("none".parse().map_err(BadInput)?);
    a.seed = Some(1);
    a.results = args.results.clone();
    a.plan(0)
}

async fn bench_target(
    name: &str,
    on: BenchNet,
    label: &str,
    args: &Args,
    dir: &std::path::Path,
) -> anyhow::Result<TargetBench> {
    let plan = bench_plan(name, args)?;
    let target = plan.sut()?;
    let ids: Vec<String> = (1..=args.nodes).map(|i| format!("n{i}")).collect();
    let shared = target.shares_client_and_peer_port();
    let net: Arc<dyn Network> = match on {
        BenchNet::Direct => Arc::new(DirectNet::new(&ids, shared)?),
        BenchNet::Proxy => Arc::new(crate::net::proxy::ProxyNet::start(&ids, shared, 1).await?),
        BenchNet::Message => {
            Arc::new(crate::net::message::network::MessageNet::start(&ids, shared, 1).await?)
        }
    };
    let run_dir = dir.join(label);
    let cluster = Arc::new(Cluster::new(
        target.clone(),
        net,
        &ids,
        &run_dir,
        "sb-bench",
        &[],
        1,
    )?);
    crate::cluster::install_panic_hook();
    if args.fault_fs {
        let plan = bench_plan(name, args)?;
        if let Some(why) = crate::storage::unavailable() {
            return Err(BadInput(format!("--fault-fs needs a fault filesystem: {why}")).into());
        }
        let md = plan.target.fault_fs_metadata().with_context(|| {
            format!("--fault-fs: --target {name} cannot have a fault filesystem")
        })?;
        cluster.mount_disks(&run_dir, md)?;
    }
    cluster.start_all()?;
    cluster
        .wait_ready(Duration::from_secs(30))
        .await
        .context("starting the cluster")?;
    let dur = Duration::from_secs_f64(args.duration);
    let timeout = Duration::from_secs(1);
    let values = args.values()?;
    let clients: Vec<Arc<dyn Client>> = cluster
        .specs
        .iter()
        .map(|s| cluster.target.client_with_values(s, timeout, values))
        .collect::<anyhow::Result<_>>()?;
    let li = leader_index(&cluster, Duration::from_secs(10)).await?;
    let leader = clients[li].clone();
    // Warm up connections and the key.
    let _ = sequential(
        leader.as_ref(),
        Duration::from_millis(300),
        true,
        "w",
        "warm",
    )
    .await;
    let write_latency = sequential(leader.as_ref(), dur, true, "w", "seq").await;
    let mut tput = BTreeMap::new();
    let mut relay_msgs_per_s = BTreeMap::new();
    let relayed = || cluster.net.messages().map(|r| r.counters().seen);
    for n in [1usize, 16, 64] {
        let (before, t0) = (relayed(), Instant::now());
        tput.insert(n, throughput(&clients, n, dur).await);
        if let (Some(b), Some(a)) = (before, relayed()) {
            relay_msgs_per_s.insert(n, a.saturating_sub(b) as f64 / t0.elapsed().as_secs_f64());
        }
    }
    let read_latency = sequential(leader.as_ref(), dur, false, "w", "read").await;

    let mut failover_s = Vec::new();
    let fast: Vec<Arc<dyn Client>> = cluster
        .specs
        .iter()
        .map(|s| {
            cluster
                .target
                .client_with_values(s, Duration::from_millis(200), values)
        })
        .collect::<anyhow::Result<_>>()?;
    for round in 0..args.failovers {
        let li = leader_index(&cluster, Duration::from_secs(20)).await?;
        let victim = cluster.specs[li].id.clone();
        let t0 = Instant::now();
        cluster.kill(&victim)?;
        let mut i = 0usize;
        loop {
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(30),
                "no write succeeded within 30 s of killing {victim}"
            );
            i += 1;
            let c = &fast[(li + 1 + i % (fast.len() - 1)) % fast.len()];
            if matches!(
                c.write("f", i as i64, &format!("f{round}-{i}")).await,
                Outcome::Ok(_)
            ) {
                break;
            }
        }
        failover_s.push(t0.elapsed().as_secs_f64());
        cluster.start(&victim)?;
        cluster.wait_ready(Duration::from_secs(30)).await?;
    }
    cluster.stop_all();
    let (failover_median_s, failover_max_s) = median_max(&failover_s);
    let value_size = args.value_size()?;
    let throughput_mb_s = match value_size {
        Some(bytes) => tput
            .iter()
            .map(|(&n, &w)| (n, w * bytes as f64 / 1e6))
            .collect(),
        None => BTreeMap::new(),
    };
    Ok(TargetBench {
        target: label.to_string(),
        net: on.name().to_string(),
        relay_msgs_per_s,
        write_latency,
        read_latency,
        throughput: tput,
        value_size,
        throughput_mb_s,
        failover_s,
        failover_median_s,
        failover_max_s,
    })
}

/// The side-by-side table: one row per figure, each target's value and its ratio to the first.
pub fn render_table(b: &[TargetBench]) -> String {
    let mut rows: Vec<(String, Vec<Option<f64>>)> = vec![
        (
            "write latency p50 (ms)".into(),
            b.iter().map(|t| Some(t.write_latency.p50_ms)).collect(),
        ),
        (
            "write latency p99 (ms)".into(),
            b.iter().map(|t| Some(t.write_latency.p99_ms)).collect(),
        ),
        (
            "read latency p50 (ms)".into(),
            b.iter().map(|t| Some(t.read_latency.p50_ms)).collect(),
        ),
        (
            "read latency p99 (ms)".into(),
            b.iter().map(|t| Some(t.read_latency.p99_ms)).collect(),
        ),
    ];
    for n in [1usize, 16, 64] {
        rows.push((
            format!("throughput, {n} clients (ok writes/s)"),
            b.iter().map(|t| t.throughput.get(&n).copied()).collect(),
        ));
        if b.iter().any(|t| !t.throughput_mb_s.is_empty()) {
            let bytes = b.iter().find_map(|t| t.value_size).unwrap_or(0);
            rows.push((
                format!("  {n} clients, {} values (MB/s)", human_bytes(bytes)),
                b.iter()
                    .map(|t| t.throughput_mb_s.get(&n).copied())
                    .collect(),
            ));
        }
    }
    if b.iter().any(|t| !t.relay_msgs_per_s.is_empty()) {
        for n in [1usize, 16, 64] {
            rows.push((
                format!("relay messages/s, {n} clients"),
                b.iter()
                    .map(|t| t.relay_msgs_per_s.get(&n).copied())
                    .collect(),
            ));
        }
    }
    rows.push((
        "failover median (s)".into(),
        b.iter().map(|t| t.failover_median_s).collect(),
    ));
    rows.push((
        "failover max (s)".into(),
        b.iter().map(|t| t.failover_max_s).collect(),
    ));
    // Columns as wide as their heading (long `target@net` names), at least 14 and 16.
    let w: Vec<usize> = b
        .iter()
        .map(|t| t.target.chars().count().max(12) + 2)
        .collect();
    let ratio_heads: Vec<String> = b
        .iter()
        .skip(1)
        .map(|t| format!("{}/{}", t.target, b[0].target))
        .collect();
    let rw: Vec<usize> = ratio_heads
        .iter()
        .map(|h| h.chars().count().max(14) + 2)
        .collect();
    let mut out = format!("{:<38}", "");
    for (t, w) in b.iter().zip(&w) {
        out += &format!("{:>w$}", t.target);
    }
    for (h, w) in ratio_heads.iter().zip(&rw) {
        out += &format!("{h:>w$}");
    }
    out += "\n";
    for (label, vals) in rows {
        out += &format!("{label:<38}");
        for (v, w) in vals.iter().zip(&w) {
            out += &v.map_or(format!("{:>w$}", "–"), |x| format!("{x:>w$.2}"));
        }
        for (v, w) in vals.iter().skip(1).zip(&rw) {
            let r = match (v, vals[0]) {
                (Some(x), Some(base)) if base > 0.0 => {
                    format!("{:>w$}", format!("{:.2}x", x / base))
                }
                _ => format!("{:>w$}", "–"),
            };
            out += &r;
        }
        out += "\n";
    }
    out
}

/// `65536` → `64 KiB`, `1000` → `1000 B`.
fn human_bytes(b: usize) -> String {
    match b {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let names: Vec<String> = args
        .target
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(crate::cli::exit::BadInput("--target: name at least one target".into()).into());
    }
    let nets = parse_nets(&args.net)?;
    for n in &names {
        let kind = bench_plan(n, &args)?.target;
        for &net in &nets {
            let fits = match net {
                BenchNet::Direct => true,
                BenchNet::Proxy => kind.peer_links_proxyable(),
                BenchNet::Message => kind == TargetKind::Splitbrain,
            };
            if !fits {
                return Err(BadInput(format!(
                    "--net {}: --target {n} cannot run on it ({})",
                    net.name(),
                    if net == BenchNet::Proxy {
                        "its peers do not dial the addresses they are given"
                    } else {
                        "the relay reads splitbrain's own peer messages"
                    }
                ))
                .into());
            }
        }
    }
    if args.duration.is_nan() || args.duration <= 0.0 || args.nodes == 0 {
        return Err(
            crate::cli::exit::BadInput("--duration and --nodes must be positive".into()).into(),
        );
    }
    let dir = args
        .results
        .join("bench")
        .join(crate::suite::chrono_like_stamp());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let mut all = Vec::new();
    for n in &names {
        for &net in &nets {
            let label = if nets == [BenchNet::Direct] {
                n.clone()
            } else {
                format!("{n}@{}", net.name())
            };
            if !args.json {
                eprintln!(
                    "benchmarking {label} ({} members, {} s per measurement)…",
                    args.nodes, args.duration
                );
            }
            all.push(
                rt.block_on(bench_target(n, net, &label, &args, &dir))
                    .with_context(|| format!("benchmarking {label}"))?,
            );
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&all).context("serializing")?
        );
    } else {
        print!("{}", render_table(&all));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tb(name: &str, p50: f64, fo: Option<f64>) -> TargetBench {
        TargetBench {
            target: name.into(),
            write_latency: Lat {
                ops: 10,
                p50_ms: p50,
                p99_ms: p50 * 3.0,
            },
            read_latency: Lat {
                ops: 10,
                p50_ms: 1.0,
                p99_ms: 2.0,
            },
            throughput: [(1, 100.0), (16, 800.0), (64, 1000.0)].into(),
            value_size: None,
            throughput_mb_s: BTreeMap::new(),
            failover_s: vec![],
            net: "direct".into(),
            relay_msgs_per_s: BTreeMap::new(),
            failover_median_s: fo,
            failover_max_s: fo,
        }
    }

    #[test]
    fn nets_parse_in_order_without_repeats_and_a_bad_name_names_the_flag() {
        assert_eq!(
            parse_nets("proxy, message,proxy").unwrap(),
            vec![BenchNet::Proxy, BenchNet::Message]
        );
        assert_eq!(parse_nets("direct").unwrap(), vec![BenchNet::Direct]);
        let e = parse_nets("netns").unwrap_err().0;
        assert!(e.contains("--net \"netns\"") && e.contains("proxy"), "{e}");
        assert!(parse_nets(" , ").unwrap_err().0.contains("--net"));
    }

    #[test]
    fn with_the_message_network_the_table_gives_the_relays_messages_per_second() {
        let a = tb("splitbrain@proxy", 2.0, None);
        let mut b = tb("splitbrain@message", 2.5, None);
        b.relay_msgs_per_s = [(1, 900.0), (16, 25000.0), (64, 30000.0)].into();
        let t = render_table(&[a.clone(), b]);
        let row = t
            .lines()
            .find(|l| l.starts_with("relay messages/s, 16 clients"))
            .unwrap();
        assert!(row.contains('–') && row.contains("25000.00"), "{row}");
        assert!(t
            .lines()
            .next()
            .unwrap()
            .contains("splitbrain@message/splitbrain@proxy"));
        // Every heading stands apart from the next.
        assert!(
            t.lines().next().unwrap().contains("splitbrain@proxy  "),
            "{t}"
        );
        // No relay, no relay rows.
        assert!(!render_table(&[a]).contains("relay messages"));
    }

    #[test]
    fn table_gives_each_target_and_its_ratio_to_the_first() {
        let t = render_table(&[tb("splitbrain", 4.0, Some(1.0)), tb("etcd", 2.0, None)]);
        let row = t
            .lines()
            .find(|l| l.starts_with("write latency p50"))
            .unwrap();
        assert!(
            row.contains("4.00") && row.contains("2.00") && row.contains("0.50x"),
            "{row}"
        );
        let fo = t
            .lines()
            .find(|l| l.starts_with("failover median"))
            .unwrap();
        assert!(fo.contains('–'), "{fo}");
        assert!(t.lines().next().unwrap().contains("etcd/splitbrain"));
    }

    #[test]
    fn with_a_value_size_the_table_gives_mb_per_second_beside_writes_per_second() {
        let mut a = tb("splitbrain", 4.0, None);
        let mut b = tb("etcd", 2.0, None);
        for t in [&mut a, &mut b] {
            t.value_size = Some(65536);
            t.throughput_mb_s = t
                .throughput
                .iter()
                .map(|(&n, &w)| (n, w * 65536.0 / 1e6))
                .collect();
        }
        b.throughput_mb_s.insert(16, 26.2144);
        let t = render_table(&[a, b]);
        let row = t
            .lines()
            .find(|l| l.starts_with("  16 clients, 64 KiB values (MB/s)"))
            .unwrap_or_else(|| panic!("no MB/s row:\n{t}"));
        // 800 writes/s × 64 KiB = 52.43 MB/s; etcd's 26.21 is half of it.
        assert!(
            row.contains("52.43") && row.contains("26.21") && row.contains("0.50x"),
            "{row}"
        );
        assert!(!render_table(&[tb("splitbrain", 4.0, None)]).contains("MB/s"));
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(1000), "1000 B");
    }

    #[test]
    fn percentiles_and_medians_of_measurements() {
        let l = lat((1..=100).map(Duration::from_millis).collect());
        assert_eq!(
            (l.ops, l.p50_ms.round(), l.p99_ms.round()),
            // Nearest rank (`crate::analysis::percentile`, the one percentile of the harness):
            // the 50th of 100 values; the old rounding of (n-1)·p gave the 51st.
            (100, 50.0, 99.0)
        );
        assert_eq!(median_max(&[3.0, 1.0, 2.0]), (Some(2.0), Some(3.0)));
        assert_eq!(median_max(&[]), (None, None));
    }
}
