//! Flags of `splitbrain-node` (and `splitbrain node`), and [`run`].
//!
//! [`serve`] is the library entry point (mini-redis style): it takes a bound listener and a
//! shutdown future, so tests bind `127.0.0.1:0` and stop the node with a future.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::http::{router, AppState, LimitedListener, MAX_CONNECTIONS};
use crate::peer::spawn_senders;
use crate::server::{self, Bugs, Event, LoopConfig};

/// Names accepted by `--bug`.
pub const BUG_NAMES: &[&str] = &[
    "stale-read",
    "no-dedup",
    "ack-before-commit",
    "vote-any-log",
    "commit-old-term",
    "no-truncate-check",
    "no-fsync",
    "torn-tail-any-damage",
];

/// Flags of a node.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// This node's id, e.g. `n1`.
    #[arg(long)]
    pub id: String,
    /// Address to listen on (client API and peer routes).
    #[arg(long, default_value = "127.0.0.1:7001")]
    pub listen: String,
    /// A peer, `ID=URL` (e.g. `n2=http://127.0.0.1:7002`); repeat once per peer. None: a
    /// one-node cluster.
    #[arg(long = "peer", value_name = "ID=URL")]
    pub peers: Vec<String>,
    /// Directory of the write-ahead log and snapshot (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Shared secret required on peer routes (header `x-splitbrain-token`).
    #[arg(long, default_value = "splitbrain")]
    pub cluster_token: String,
    /// Election timeout range in ms, `MIN..MAX`, drawn at random at every reset.
    #[arg(long, default_value = "150..300")]
    pub election_timeout: String,
    /// Heartbeat interval in ms.
    #[arg(long, default_value_t = 50)]
    pub heartbeat: u64,
    /// Take a snapshot and compact the log every N applied entries (0: never).
    #[arg(long, default_value_t = 1_000)]
    pub snapshot_every: u64,
    /// At most N entries per AppendEntries message (like etcd's MaxSizePerMsg, in entries).
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub max_append_entries: usize,
    /// Turn on a known bug (repeatable): stale-read, no-dedup, ack-before-commit,
    /// vote-any-log, commit-old-term, no-truncate-check, no-fsync,
    /// torn-tail-any-damage.
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<String>,
    /// Deadline of a client request in ms (waiting for a leader, commit and apply).
    #[arg(long, default_value_t = 2000)]
    pub request_timeout: u64,
    /// Seed of the node's RNG (election timeouts); random if absent (and logged).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Checked configuration of a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: String,
    pub listen: String,
    pub peers: Vec<(String, String)>,
    pub data_dir: PathBuf,
    pub token: String,
    pub election_ms: (u64, u64),
    pub heartbeat_ms: u64,
    pub snapshot_every: u64,
    pub max_append_entries: usize,
    pub bugs: Bugs,
    pub request_timeout: Duration,
    pub seed: u64,
}

impl NodeArgs {
    /// Checks the flags; errors name the flag.
    pub fn config(&self) -> anyhow::Result<NodeConfig> {
        if self.id.is_empty() || self.id.len() > 64 || self.id.contains('=') {
            bail!("--id {:?}: must be 1 to 64 characters without '='", self.id);
        }
        let mut peers = Vec::new();
        for p in &self.peers {
            let (id, url) = p.split_once('=').with_context(|| {
                format!("--peer {p:?}: expected ID=URL, e.g. n2=http://127.0.0.1:7002")
            })?;
            if id.is_empty() || id.len() > 64 {
                bail!("--peer {p:?}: the id must be 1 to 64 characters");
            }
            if id == self.id {
                bail!("--peer {p:?}: a node is not its own peer");
            }
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("--peer {p:?}: the URL must start with http://");
            }
            if peers.iter().any(|(i, _): &(String, String)| i == id) {
                bail!("--peer {p:?}: peer {id} given twice");
            }
            peers.push((id.to_string(), url.trim_end_matches('/').to_string()));
        }
        let (lo, hi) = self
            .election_timeout
            .split_once("..")
            .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)))
            .with_context(|| {
                format!(
                    "--election-timeout {:?}: expected MIN..MAX in ms, e.g. 150..300",
                    self.election_timeout
                )
            })?;
        if lo == 0 || hi <= lo {
            bail!("--election-timeout {lo}..{hi}: need 0 < MIN < MAX");
        }
        if self.heartbeat == 0 || self.heartbeat >= lo {
            bail!(
                "--heartbeat {}: must be > 0 and below the election timeout ({lo} ms)",
                self.heartbeat
            );
        }
        let mut bugs = Bugs::default();
        for b in &self.bugs {
            match b.as_str() {
                "stale-read" => bugs.stale_read = true,
                "no-dedup" => bugs.no_dedup = true,
                "ack-before-commit" => bugs.ack_before_commit = true,
                "vote-any-log" => bugs.core.vote_any_log = true,
                "commit-old-term" => bugs.core.commit_old_term = true,
                "no-truncate-check" => bugs.core.no_truncate_check = true,
                "no-fsync" => bugs.no_fsync = true,
                "torn-tail-any-damage" => bugs.torn_tail_any_damage = true,
                other => bail!(
                    "--bug {other:?}: unknown; known bugs: {}",
                    BUG_NAMES.join(", ")
                ),
            }
        }
        if self.max_append_entries == 0 {
            bail!("--max-append-entries must be at least 1");
        }
        if self.request_timeout == 0 {
            bail!("--request-timeout must be > 0 ms");
        }
        Ok(NodeConfig {
            id: self.id.clone(),
            listen: self.listen.clone(),
            peers,
            data_dir: self.data_dir.clone(),
            token: self.cluster_token.clone(),
            election_ms: (lo, hi),
            heartbeat_ms: self.heartbeat,
            snapshot_every: self.snapshot_every,
            max_append_entries: self.max_append_entries,
            bugs,
            request_timeout: Duration::from_millis(self.request_timeout),
            seed: self.seed.unwrap_or_else(rand::random),
        })
    }
}

/// Runs a node until SIGTERM/SIGINT.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let cfg = args.config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .with_context(|| format!("--listen {}: cannot bind", cfg.listen))?;
        serve(cfg, listener, shutdown_signal()).await
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {},
                _ = i.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("signal received, shutting down");
}

/// Serves a node on `listener` until `shutdown` completes, then stops the event loop cleanly.
pub async fn serve(
    cfg: NodeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tick_ms = cfg.heartbeat_ms.clamp(1, 10);
    let ticks = |ms: u64| ms.div_ceil(tick_ms).max(1) as u32;
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(32)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    let peer_timeout = Duration::from_millis((cfg.election_ms.1 * 2).max(500));
    let outboxes = spawn_senders(&cfg.peers, &cfg.token, client.clone(), peer_timeout);
    let loop_cfg = LoopConfig {
        id: cfg.id.clone(),
        peers: cfg.peers.iter().map(|(i, _)| i.clone()).collect(),
        data_dir: cfg.data_dir.clone(),
        tick: Duration::from_millis(tick_ms),
        election_ticks: (
            ticks(cfg.election_ms.0),
            ticks(cfg.election_ms.1).max(ticks(cfg.election_ms.0) + 1),
        ),
        heartbeat_ticks: ticks(cfg.heartbeat_ms),
        snapshot_every: cfg.snapshot_every,
        max_append_entries: cfg.max_append_entries,
        bugs: cfg.bugs.clone(),
    };
    tracing::info!(id = %cfg.id, listen = %listener.local_addr()?, peers = ?cfg.peers, seed = cfg.seed, bugs = ?cfg.bugs, "starting node");
    let (handle, thread) = server::start(loop_cfg, outboxes, StdRng::seed_from_u64(cfg.seed))?;
    let state = Arc::new(AppState {
        id: cfg.id.clone(),
        handle: handle.clone(),
        peers: cfg.peers.iter().cloned().collect::<HashMap<_, _>>(),
        token: cfg.token.clone(),
        client,
        request_timeout: cfg.request_timeout,
        stale_read: cfg.bugs.stale_read,
    });
    let app = router(state);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let loop_handle = handle.clone();
    // The loop thread may fail (a WAL error): then the server must stop too.
    let watcher = tokio::task::spawn_blocking(move || {
        let r = thread.join();
        let _ = stop_tx.send(());
        r
    });
    let listener = LimitedListener::new(listener, MAX_CONNECTIONS);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown => {},
                _ = stop_rx => {},
            }
        })
        .await
        .context("serving HTTP")?;
    let _ = loop_handle.send_blocking(Event::Shutdown);
    drop(loop_handle);
    match watcher.await {
        Ok(Ok(r)) => r.context("event loop"),
        Ok(Err(_)) => bail!("the event loop panicked"),
        Err(e) => bail!("joining the event loop: {e}"),
    }
}
