//! Targets: the implementation under test, behind one adapter interface.
//!
//! A target knows three things about its implementation, and nothing about faults:
//! 1. how to start member `id` given the cluster's layout ([`Target::command`]): the program, its
//!    arguments and environment, from a [`MemberSpec`] (client listen address, peer listen
//!    address, the address this member must dial to reach each peer, data dir, log file, token);
//! 2. how a client talks to a member ([`Target::client`] → [`Client::invoke`] of a typed
//!    [`Op`]: read, write, cas, append), answering an [`Outcome`] — `Ok`, `Fail` (it certainly
//!    did not happen) or `Info` (it may have happened: timeouts, connections lost after
//!    sending);
//! 3. what a member says about itself ([`Target::status`]): role, term and who it thinks leads;
//!    the harness uses it for readiness and for `isolate-leader`.
//!
//! Starting, killing (SIGKILL), pausing (SIGSTOP/SIGCONT) and restarting processes is the
//! cluster's job (`crate::cluster`, through its `crate::host::Host`), the same for every
//! target; cutting links is the network's job (`crate::net`). A target never owns a process.
//!
//! # Layout
//! - `splitbrain`: the project's node, run as `<current exe> node …` ([`splitbrain::Splitbrain`]).
//! - `etcd`, `cmd`: see their modules (issue 6).
//! - `maelstrom`: Maelstrom lin-kv nodes over stdin/stdout; lives in `crate::maelstrom`, since
//!   the harness is also their network and their processes' host.
//! - `nats`: NATS JetStream key-value on Debian's `nats-server` (issue 11).
//!
//! Async methods return boxed futures ([`BoxFuture`]) so that targets can be trait objects.

pub mod cmd;
pub mod etcd;
pub mod nats;
pub mod splitbrain;

use splitbrain_workloads::WorkloadKind;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed, sendable future: what the async methods of [`Target`] and [`Client`] return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub use splitbrain_workloads::values::Values;
pub use splitbrain_workloads::{Op, Outcome, Reply};

/// Where one member lives and how it reaches its peers. Built by the cluster from the network's
/// layout; every address is on loopback (or inside the member's namespace with `netns`).
#[derive(Debug, Clone)]
pub struct MemberSpec {
    /// `n1` … `nN`.
    pub id: String,
    /// Where the member serves clients (and the harness asks `/status`).
    pub client_addr: SocketAddr,
    /// Where the member listens for its peers. Equal to `client_addr` for targets whose
    /// [`Target::shares_client_and_peer_port`] is true.
    pub peer_addr: SocketAddr,
    /// For every other member: the address this member must dial to reach it. With the proxy
    /// network each one is the listen address of the proxy on the directed link `id → peer`.
    pub routes: Vec<PeerRoute>,
    /// The member's data directory (kept across kill/restart).
    pub data_dir: PathBuf,
    /// Where the member's stdout and stderr go (`nodes/<id>.log`).
    pub log_file: PathBuf,
    /// A token shared by the cluster's members (peer RPC authentication).
    pub cluster_token: String,
    /// Extra arguments given with `--node-arg`, appended as is.
    pub extra_args: Vec<String>,
    /// A seed for this member, derived from the run's seed (for targets that take one).
    pub seed: u64,
}

/// The address a member dials to reach peer `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRoute {
    pub id: String,
    pub addr: SocketAddr,
}

/// A command line to start one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// What a member says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct MemberStatus {
    /// `leader`, `follower`, `candidate`, … as the implementation names it.
    pub role: Option<String>,
    pub term: Option<u64>,
    /// The id (`n3`) of the member it believes leads, if any.
    pub leader: Option<String>,
    /// Its commit index, if the target reports one (the node's `commit`).
    pub commit: Option<u64>,
    /// The index its state machine has applied (the node's `applied_index`).
    pub applied_index: Option<u64>,
    /// A digest of its state machine at `applied_index` (the node's `sm_digest`).
    pub sm_digest: Option<String>,
}

/// An implementation under test. See the module docs.
pub trait Target: Send + Sync {
    /// The name given to `--target`.
    fn name(&self) -> &'static str;

    /// True if the member serves clients and peers on one port (then the cluster sets
    /// `peer_addr == client_addr`).
    fn shares_client_and_peer_port(&self) -> bool;

    /// The command line that starts `member` (the same for first start and restarts: the
    /// data dir tells the member it is restarting). `all` is every member, in id order.
    fn command(&self, member: &MemberSpec, all: &[MemberSpec]) -> anyhow::Result<MemberCommand>;

    /// A client bound to `member`, whose requests give up after `timeout` (→ `Info` for
    /// writes, `Fail` for reads).
    fn client(&self, member: &MemberSpec, timeout: Duration) -> anyhow::Result<Arc<dyn Client>>;

    /// A client like [`Target::client`]'s whose written values travel as `values` says
    /// (`--value-size`: padded text, see `splitbrain_workloads::values`) and whose reads are
    /// decoded and verified with it. The default carries plain values only; targets that
    /// carry padding override it (and say so in [`TargetKind::carries_padded_values`]).
    fn client_with_values(
        &self,
        member: &MemberSpec,
        timeout: Duration,
        values: Values,
    ) -> anyhow::Result<Arc<dyn Client>> {
        anyhow::ensure!(
            !values.is_padded(),
            "--value-size: --target {} cannot carry padded values",
            self.name()
        );
        self.client(member, timeout)
    }

    /// Asks `member` about itself; an error if it does not answer within `timeout`.
    fn status<'a>(
        &'a self,
        member: &'a MemberSpec,
        timeout: Duration,
    ) -> BoxFuture<'a, anyhow::Result<MemberStatus>>;

    /// The records of one of its data files (`file` relative to the data dir, `bytes` its
    /// contents) as `(offset, payload length)` of each length-prefixed record, whose first 4
    /// bytes are the little-endian length field; empty if the target does not say (the
    /// default). The `corrupt` fault aims half of its bit flips at a length field with this.
    fn record_frames(&self, file: &str, bytes: &[u8]) -> Vec<(u64, u32)> {
        let _ = (file, bytes);
        Vec::new()
    }

    /// True if some member's status names a leader once the cluster is ready (the cluster
    /// waits for one). Maelstrom nodes report no status beyond `init_ok`: false.
    fn reports_leader(&self) -> bool {
        true
    }

    /// How long a run waits for the cluster to be ready at start-up.
    fn ready_deadline(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// True if one `/status` answer reads role and term at one instant (the node computes it
    /// inside its event loop), so that `leader` for term T means this member led T. The
    /// run-time monitor ([`crate::monitor`]) checks one leader per term only on such targets.
    /// Default false: etcd's status reads the leader and the term separately.
    fn status_is_consistent(&self) -> bool {
        false
    }
}

/// A client of one member: performs typed operations (`splitbrain_workloads::Op`). Request
/// ids (`c<process>-<seq>`) make writes idempotent on targets that support it; others may
/// ignore them. What the history records is the workload's business, not the target's.
pub trait Client: Send + Sync {
    /// Performs `op`: `Ok(Reply::Done)` for an applied write, cas or append; `Ok(Reply::Value)`
    /// or `Ok(Reply::List)` for a read (`Value(None)`: absent). A cas whose `from` did not
    /// match is `Fail("cas-mismatch")`; a read that failed is `Fail`; an answer that may or
    /// may not have applied is `Info`.
    fn invoke<'a>(&'a self, op: &'a Op, request_id: &'a str) -> BoxFuture<'a, Outcome<Reply>>;
}

/// A target whose clients and status requests run on another tokio runtime (`handle`): the
/// runtime of the network's clients' namespace (`crate::net::Network::client_runtime`), so
/// that every socket to a member opens there while the harness's own threads stay where they
/// are. A request dropped before it ends (the harness gave up on it) is aborted there too.
pub struct OnRuntime {
    pub inner: Arc<dyn Target>,
    pub handle: tokio::runtime::Handle,
}

/// Aborts a task on another runtime when the future waiting for it is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` on `handle`'s runtime and waits for it here; `Err` when that runtime dropped it
/// (it is shutting down).
async fn on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let task = handle.spawn(fut);
    let _abort = AbortOnDrop(task.abort_handle());
    task.await
}

impl Target for OnRuntime {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn shares_client_and_peer_port(&self) -> bool {
        self.inner.shares_client_and_peer_port()
    }

    fn command(&self, member: &MemberSpec, all: &[MemberSpec]) -> anyhow::Result<MemberCommand> {
        self.inner.command(member, all)
    }

    fn client(&self, member: &MemberSpec, timeout: Duration) -> anyhow::Result<Arc<dyn Client>> {
        self.client_with_values(member, timeout, Values::Plain)
    }

    fn client_with_values(
        &self,
        member: &MemberSpec,
        timeout: Duration,
        values: Values,
    ) -> anyhow::Result<Arc<dyn Client>> {
        Ok(Arc::new(OnRuntimeClient {
            inner: self.inner.client_with_values(member, timeout, values)?,
            handle: self.handle.clone(),
        }))
    }

    fn status<'a>(
        &'a self,
        member: &'a MemberSpec,
        timeout: Duration,
    ) -> BoxFuture<'a, anyhow::Result<MemberStatus>> {
        let inner = self.inner.clone();
        let member = member.clone();
        Box::pin(async move {
            on(
                &self.handle,
                async move { inner.status(&member, timeout).await },
            )
            .await
            .map_err(|e| anyhow::anyhow!("status request of {}: {e}", self.inner.name()))?
        })
    }

    fn record_frames(&self, file: &str, bytes: &[u8]) -> Vec<(u64, u32)> {
        self.inner.record_frames(file, bytes)
    }

    fn reports_leader(&self) -> bool {
        self.inner.reports_leader()
    }

    fn ready_deadline(&self) -> Duration {
        self.inner.ready_deadline()
    }

    fn status_is_consistent(&self) -> bool {
        self.inner.status_is_consistent()
    }
}

/// A client of [`OnRuntime`].
struct OnRuntimeClient {
    inner: Arc<dyn Client>,
    handle: tokio::runtime::Handle,
}

impl Client for OnRuntimeClient {
    fn invoke<'a>(&'a self, op: &'a Op, request_id: &'a str) -> BoxFuture<'a, Outcome<Reply>> {
        let inner = self.inner.clone();
        let (op, rid) = (op.clone(), request_id.to_string());
        Box::pin(async move {
            on(&self.handle, async move { inner.invoke(&op, &rid).await })
                .await
                // The clients' runtime is gone: whether the request reached the member is
                // not known.
                .unwrap_or_else(|e| Outcome::Info(format!("client runtime: {e}")))
        })
    }
}

/// Typed shorthands over [`Client::invoke`] for the integer registers (bench and tests).
impl dyn Client + '_ {
    /// Reads an integer register (`Ok(None)`: absent); a list is `Fail`.
    pub async fn read(&self, key: &str) -> Outcome<Option<i64>> {
        let op = Op::Read {
            key: key.to_string(),
        };
        match self.invoke(&op, "").await {
            Outcome::Ok(Reply::Value(v)) => Outcome::Ok(v),
            Outcome::Ok(other) => Outcome::Fail(format!("not an integer register: {other:?}")),
            Outcome::Fail(r) => Outcome::Fail(r),
            Outcome::Info(r) => Outcome::Info(r),
        }
    }

    /// Writes `value` to `key`.
    pub async fn write(&self, key: &str, value: i64, request_id: &str) -> Outcome<()> {
        let op = Op::Write {
            key: key.to_string(),
            value,
        };
        unit(self.invoke(&op, request_id).await)
    }

    /// Sets `key` to `to` if it holds `from`.
    pub async fn cas(&self, key: &str, from: i64, to: i64, request_id: &str) -> Outcome<()> {
        let op = Op::Cas {
            key: key.to_string(),
            from,
            to,
        };
        unit(self.invoke(&op, request_id).await)
    }
}

fn unit(o: Outcome<Reply>) -> Outcome<()> {
    match o {
        Outcome::Ok(_) => Outcome::Ok(()),
        Outcome::Fail(r) => Outcome::Fail(r),
        Outcome::Info(r) => Outcome::Info(r),
    }
}

/// The implementations `--target` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// The project's own node.
    Splitbrain,
    /// Debian's etcd 3.4.
    Etcd,
    /// Any binary with the node's client API (`--node-cmd`).
    Cmd,
    /// A Maelstrom lin-kv node (`--node-cmd`): stdin/stdout JSON, the harness is its network
    /// (`crate::maelstrom`).
    Maelstrom,
    /// Debian's nats-server 2.9: JetStream key-value (`--node-arg read=leader|direct`).
    Nats,
}

impl TargetKind {
    pub const ALL: [TargetKind; 5] = [
        TargetKind::Splitbrain,
        TargetKind::Etcd,
        TargetKind::Cmd,
        TargetKind::Maelstrom,
        TargetKind::Nats,
    ];

    /// The `--target` name.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Splitbrain => "splitbrain",
            TargetKind::Etcd => "etcd",
            TargetKind::Cmd => "cmd",
            TargetKind::Maelstrom => "maelstrom",
            TargetKind::Nats => "nats",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<TargetKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// True if its members dial the peer addresses the harness gives each of them, so that a
    /// network can put a proxy on every directed link. etcd dials the peer URLs of its
    /// membership (the same for every member), so per-link proxies cannot reach its links.
    /// NATS routes are one connection per pair used both ways, and members gossip their own
    /// route addresses: a per-link proxy cannot cut one direction, nor reliably a link.
    pub fn peer_links_proxyable(self) -> bool {
        !matches!(self, TargetKind::Etcd | TargetKind::Nats)
    }

    /// How a fault filesystem under its data dir treats metadata (`crate::storage`), or `None`
    /// if it cannot have one. Our node fsyncs its directories: POSIX. etcd 3.4 never fsyncs the
    /// directory that holds `member/` (under POSIX it loses everything on a power loss, a
    /// finding in `README.md`), so it gets ext4's journal. `cmd`: POSIX, the strict default.
    pub fn fault_fs_metadata(self) -> Option<splitbrain_faultfs::Metadata> {
        match self {
            TargetKind::Splitbrain | TargetKind::Cmd => Some(splitbrain_faultfs::Metadata::Posix),
            TargetKind::Etcd => Some(splitbrain_faultfs::Metadata::Journal),
            // Maelstrom nodes keep no disk state.
            TargetKind::Maelstrom => None,
            // JetStream's file store: judged like etcd's (ext4's journal), see `sut::nats`.
            TargetKind::Nats => Some(splitbrain_faultfs::Metadata::Journal),
        }
    }

    /// `Ok` if its clients carry padded values (`--value-size`) for `workload`; else why not
    /// (the plan refuses the run with it).
    pub fn carries_padded_values(self, workload: WorkloadKind) -> Result<(), String> {
        match self {
            // The node stores any JSON value (strings, lists of strings); etcd any bytes.
            TargetKind::Splitbrain | TargetKind::Cmd | TargetKind::Etcd => Ok(()),
            TargetKind::Maelstrom => Err(format!(
                "--value-size: Maelstrom's lin-kv values are integers, a padded value cannot \
                 travel through them (--target maelstrom, --workload {})",
                workload.name()
            )),
            TargetKind::Nats => Err(
                "--value-size: padded values are not implemented for --target nats (its \
                 client sends decimal text; use --target splitbrain, etcd or cmd)"
                    .into(),
            ),
        }
    }

    /// True if it runs without a command template of the user's (suites and bench run these).
    pub fn builtin(self) -> bool {
        !matches!(self, TargetKind::Cmd | TargetKind::Maelstrom)
    }

    /// The network a suite uses for it unless the suite file says otherwise: `netns` where
    /// the proxy cannot reach the peer links.
    pub fn default_suite_net(self) -> crate::net::NetKind {
        if self.peer_links_proxyable() {
            crate::net::NetKind::Proxy
        } else {
            crate::net::NetKind::Netns
        }
    }

    /// The adapter (with `node_cmd`, the `--node-cmd` template, for `cmd`); errors name the flag.
    pub fn resolve(self, node_cmd: Option<&str>) -> Result<Arc<dyn Target>, String> {
        match (self, node_cmd) {
            (TargetKind::Cmd, Some(t)) => {
                Ok(Arc::new(cmd::Cmd::parse(t).map_err(|e| e.to_string())?))
            }
            (TargetKind::Cmd, None) => Err(
                "--target cmd needs --node-cmd 'BIN --id {id} --listen {listen} {peers}'".into(),
            ),
            (TargetKind::Maelstrom, Some(t)) => Ok(Arc::new(
                crate::maelstrom::Maelstrom::parse(t).map_err(|e| e.to_string())?,
            )),
            (TargetKind::Maelstrom, None) => Err(
                "--target maelstrom needs --node-cmd 'python3 node.py' (the node's command line)"
                    .into(),
            ),
            (other, Some(_)) => Err(format!(
                "--node-cmd is only for --target cmd or maelstrom, not {:?}",
                other.name()
            )),
            (TargetKind::Splitbrain, None) => Ok(Arc::new(splitbrain::Splitbrain::current_exe())),
            (TargetKind::Etcd, None) => Ok(Arc::new(etcd::Etcd::default())),
            (TargetKind::Nats, None) => Ok(Arc::new(nats::Nats::default())),
        }
    }
}
