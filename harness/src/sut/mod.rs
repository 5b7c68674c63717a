//! Targets: the implementation under test, behind one adapter interface.
//!
//! A target knows three things about its implementation, and nothing about faults:
//! 1. how to start member `id` given the cluster's layout ([`Target::command`]): the program, its
//!    arguments and environment, from a [`MemberSpec`] (client listen address, peer listen
//!    address, the address this member must dial to reach each peer, data dir, log file, token);
//! 2. how a client talks to a member ([`Target::client`] → [`Client`]): `read`, `write`, `cas`,
//!    each answering an [`Outcome`] — `Ok`, `Fail` (it certainly did not happen) or `Info`
//!    (it may have happened: timeouts, connections lost after sending);
//! 3. what a member says about itself ([`Target::status`]): role, term and who it thinks leads;
//!    the harness uses it for readiness and for `isolate-leader`.
//!
//! Starting, killing (SIGKILL), pausing (SIGSTOP/SIGCONT) and restarting processes is the
//! cluster's job (`crate::cluster`), the same for every target; cutting links is the network's
//! job (`crate::net`). A target never owns a process.
//!
//! # Layout
//! - `splitbrain`: the project's node, run as `<current exe> node …` ([`splitbrain::Splitbrain`]).
//! - `etcd`, `cmd`: see their modules (issue 6).
//!
//! Async methods return boxed futures ([`BoxFuture`]) so that targets can be trait objects.

pub mod cmd;
pub mod etcd;
pub mod splitbrain;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed, sendable future: what the async methods of [`Target`] and [`Client`] return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a client saw of one operation (DESIGN §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// It happened, with this result.
    Ok(T),
    /// It certainly did not happen (a definite error, a cas whose `from` did not match, a read
    /// that failed).
    Fail(String),
    /// It may or may not have happened (timeout or connection lost after sending, 504, …).
    Info(String),
}

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

    /// Asks `member` about itself; an error if it does not answer within `timeout`.
    fn status<'a>(
        &'a self,
        member: &'a MemberSpec,
        timeout: Duration,
    ) -> BoxFuture<'a, anyhow::Result<MemberStatus>>;
}

/// Client operations on integer values. Request ids (`c<process>-<seq>`) make writes idempotent
/// on targets that support it; others may ignore them.
pub trait Client: Send + Sync {
    /// A linearizable read; `Ok(None)` if the key is absent. Reads that fail are `Fail`.
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Outcome<Option<i64>>>;
    /// Writes `value` to `key`.
    fn write<'a>(
        &'a self,
        key: &'a str,
        value: i64,
        request_id: &'a str,
    ) -> BoxFuture<'a, Outcome<()>>;
    /// Sets `key` to `to` if it holds `from`; a mismatch is `Fail("cas-mismatch")`.
    fn cas<'a>(
        &'a self,
        key: &'a str,
        from: i64,
        to: i64,
        request_id: &'a str,
    ) -> BoxFuture<'a, Outcome<()>>;
}

/// Every target name `--target` accepts.
pub const TARGET_NAMES: &[&str] = &["splitbrain", "etcd", "cmd"];

/// The target named `name` (from `--target`), or `None` if there is no such target.
pub fn by_name(name: &str) -> Option<Arc<dyn Target>> {
    match name {
        "splitbrain" => Some(Arc::new(splitbrain::Splitbrain::current_exe())),
        "etcd" => Some(Arc::new(etcd::Etcd::default())),
        _ => None,
    }
}

/// The target for `--target name` (with `--node-cmd template` for `cmd`); errors name the flag.
pub fn resolve(name: &str, node_cmd: Option<&str>) -> Result<Arc<dyn Target>, String> {
    match (name, node_cmd) {
        ("cmd", Some(t)) => Ok(Arc::new(cmd::Cmd::parse(t).map_err(|e| e.to_string())?)),
        ("cmd", None) => {
            Err("--target cmd needs --node-cmd 'BIN --id {id} --listen {listen} {peers}'".into())
        }
        (other, Some(_)) => Err(format!(
            "--node-cmd is only for --target cmd, not {other:?}"
        )),
        (other, None) => by_name(other).ok_or_else(|| {
            format!(
                "--target {other:?}: expected one of: {}",
                TARGET_NAMES.join(", ")
            )
        }),
    }
}
