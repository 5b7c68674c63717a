//! The cluster: one OS process per member, on free loopback ports, with its data dir and log
//! file inside the run directory.
//!
//! # Contract
//! - Members are started from the target's command line, with stdout and stderr appended to
//!   `nodes/<id>.log` and the data dir `data/<id>` kept across restarts.
//! - Processes are the host's (`crate::host`: spawn, signal, kill, exit status, logs; local by
//!   default): nothing outlives the harness, and [`Cluster`]'s `Drop` kills and reaps them.
//! - `kill` is SIGKILL (then reap), `restart` starts the same command on the same data dir,
//!   `pause`/`resume` are SIGSTOP/SIGCONT.
//! - Every wait has a deadline.

use crate::host::{Host, HostProcess, LocalHost, Signal};
use crate::net::Network;
use crate::sut::{MemberSpec, MemberStatus, PeerRoute, Target};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a member process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    Running,
    Paused,
    Killed,
}

struct Proc {
    child: Option<Box<dyn HostProcess>>,
    state: MemberState,
}

/// A cluster of member processes. Cheap to share behind an `Arc`.
pub struct Cluster {
    /// Where the members run (`LocalHost` unless [`Cluster::on_host`] says otherwise).
    pub host: Arc<dyn Host>,
    pub target: Arc<dyn Target>,
    pub net: Arc<dyn Network>,
    /// Members in id order.
    pub specs: Vec<MemberSpec>,
    procs: Mutex<BTreeMap<String, Proc>>,
    /// Members that run on a host of their own (`--hosts`), instead of [`Cluster::host`].
    member_hosts: BTreeMap<String, Arc<dyn Host>>,
    /// The members' fault filesystems, when the plan mounts them (`crate::storage`). Dropped
    /// (unmounted) after `Drop` has killed the members.
    disks: OnceLock<crate::storage::Disks>,
    /// The clients' network, for faults of it (`dup-requests`).
    pub client_net: Arc<crate::client::ClientNet>,
    /// Leader changes seen in `/status` rounds (for the workers' read bursts).
    pub leader_changes: Arc<crate::client::LeaderChanges>,
}

pub use crate::host::{install_panic_hook, spawn_guarded};

impl Cluster {
    /// Lays out `n` members (`n1` … `nN`) under `run_dir` (`data/<id>`, `nodes/<id>.log`) with the
    /// network's addresses. Starts nothing.
    pub fn new(
        target: Arc<dyn Target>,
        net: Arc<dyn Network>,
        ids: &[String],
        run_dir: &Path,
        cluster_token: &str,
        extra_args: &[String],
        seed: u64,
    ) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(run_dir.join("nodes")).context("creating nodes/")?;
        // Members this network's own threads reach only from its clients' runtime (netns):
        // every client and status request of the run goes there.
        let target: Arc<dyn Target> = match net.client_runtime()? {
            Some(handle) => Arc::new(crate::sut::OnRuntime {
                inner: target,
                handle,
            }),
            None => target,
        };
        let mut specs = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let a = net.addrs(id)?;
            let data_dir = run_dir.join("data").join(id);
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            specs.push(MemberSpec {
                id: id.clone(),
                client_addr: a.client,
                peer_addr: a.peer,
                routes: a
                    .routes
                    .into_iter()
                    .map(|(id, addr)| PeerRoute { id, addr })
                    .collect(),
                data_dir,
                log_file: run_dir.join("nodes").join(format!("{id}.log")),
                cluster_token: cluster_token.to_string(),
                extra_args: extra_args.to_vec(),
                seed: splitbrain_workloads::seeds::Seeds::new(seed)
                    .of(splitbrain_workloads::seeds::Stream::Member(i)),
            });
        }
        Ok(Cluster {
            host: Arc::new(LocalHost),
            target,
            net,
            specs,
            procs: Mutex::new(BTreeMap::new()),
            member_hosts: BTreeMap::new(),
            disks: OnceLock::new(),
            client_net: Arc::default(),
            leader_changes: Arc::default(),
        })
    }

    /// Runs the members on `host` instead of this machine.
    pub fn on_host(mut self, host: Arc<dyn Host>) -> Cluster {
        self.host = host;
        self
    }

    /// Runs member `id` on `host`, with its data dir at `data_dir` there (its log stays
    /// `nodes/<id>.log` here, filled by [`Cluster::collect_logs`]).
    pub fn on_member_host(
        mut self,
        id: &str,
        host: Arc<dyn Host>,
        data_dir: std::path::PathBuf,
    ) -> anyhow::Result<Cluster> {
        let spec = self
            .specs
            .iter_mut()
            .find(|s| s.id == id)
            .with_context(|| format!("no member {id:?}"))?;
        spec.data_dir = data_dir;
        self.member_hosts.insert(id.to_string(), host);
        Ok(self)
    }

    /// The host member `id` runs on.
    pub fn host_of(&self, id: &str) -> &Arc<dyn Host> {
        self.member_hosts.get(id).unwrap_or(&self.host)
    }

    /// Brings every member's log (and, from remote hosts, a listing of its data dir) into
    /// `nodes/`; the errors, one per member that failed.
    pub fn collect_logs(&self) -> Vec<anyhow::Error> {
        let mut errs = Vec::new();
        for s in &self.specs {
            if let Err(e) = self.host_of(&s.id).collect_logs(&s.log_file) {
                errs.push(e.context(format!("collecting {}'s log", s.id)));
            }
        }
        errs
    }

    pub fn ids(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.id.clone()).collect()
    }

    pub fn spec(&self, id: &str) -> anyhow::Result<&MemberSpec> {
        self.specs
            .iter()
            .find(|s| s.id == id)
            .with_context(|| format!("no member {id:?}"))
    }

    fn procs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Proc>> {
        // A panic while holding this lock leaves plain data behind: keep using it.
        self.procs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts member `id` (first start or restart after a kill).
    pub fn start(&self, id: &str) -> anyhow::Result<()> {
        let spec = self.spec(id)?;
        let mc = self.target.command(spec, &self.specs)?;
        let mc = self.net.wrap_command(id, mc);
        let mut procs = self.procs();
        if let Some(p) = procs.get(id) {
            if p.state != MemberState::Killed {
                bail!("member {id} is already running");
            }
        }
        let child = self
            .host_of(id)
            .spawn(&mc, &spec.log_file)
            .with_context(|| format!("starting {id}: {}", mc.program.display()))?;
        procs.insert(
            id.to_string(),
            Proc {
                child: Some(child),
                state: MemberState::Running,
            },
        );
        Ok(())
    }

    pub fn start_all(&self) -> anyhow::Result<()> {
        for id in self.ids() {
            self.start(&id)?;
        }
        Ok(())
    }

    /// SIGKILL and reap member `id`.
    pub fn kill(&self, id: &str) -> anyhow::Result<()> {
        let mut procs = self.procs();
        let p = procs
            .get_mut(id)
            .with_context(|| format!("member {id} was never started"))?;
        if let Some(mut child) = p.child.take() {
            child.kill();
        }
        p.state = MemberState::Killed;
        Ok(())
    }

    /// Mounts a fault filesystem on every member's data dir (before the first start).
    pub fn mount_disks(
        &self,
        run_dir: &Path,
        metadata: splitbrain_faultfs::Metadata,
    ) -> anyhow::Result<()> {
        let members: Vec<(String, std::path::PathBuf)> = self
            .specs
            .iter()
            .map(|s| (s.id.clone(), s.data_dir.clone()))
            .collect();
        let disks = crate::storage::Disks::mount(run_dir, &members, metadata)?;
        if self.disks.set(disks).is_err() {
            bail!("the members' fault filesystems are already mounted");
        }
        Ok(())
    }

    /// True if the members' data dirs are fault filesystems.
    pub fn has_disks(&self) -> bool {
        self.disks.get().is_some()
    }

    /// A power loss of member `id`: SIGKILL and reap it, then forget what it had not made
    /// durable (`tear`: keep a seeded prefix of its newest unsynced write). It stays down.
    pub fn power_loss(
        &self,
        id: &str,
        tear: Option<u64>,
    ) -> anyhow::Result<splitbrain_faultfs::LossReport> {
        let disks = self.disks.get().with_context(|| {
            format!("member {id}'s data dir is not a fault filesystem (power-loss needs one)")
        })?;
        self.kill(id)?;
        disks.power_loss(id, tear)
    }

    /// Kills every member and unmounts their fault filesystems (if any).
    pub fn unmount_disks(&self) -> anyhow::Result<()> {
        self.stop_all();
        match self.disks.get() {
            Some(d) => d.unmount_all(),
            None => Ok(()),
        }
    }

    /// SIGSTOP member `id`.
    pub fn pause(&self, id: &str) -> anyhow::Result<()> {
        let mut procs = self.procs();
        let p = procs
            .get_mut(id)
            .with_context(|| format!("member {id} was never started"))?;
        if let (Some(c), MemberState::Running) = (p.child.as_mut(), p.state) {
            c.signal(Signal::Stop)?;
            p.state = MemberState::Paused;
        }
        Ok(())
    }

    /// SIGCONT member `id`.
    pub fn resume(&self, id: &str) -> anyhow::Result<()> {
        let mut procs = self.procs();
        let p = procs
            .get_mut(id)
            .with_context(|| format!("member {id} was never started"))?;
        if let (Some(c), MemberState::Paused) = (p.child.as_mut(), p.state) {
            c.signal(Signal::Cont)?;
            p.state = MemberState::Running;
        }
        Ok(())
    }

    pub fn state(&self, id: &str) -> Option<MemberState> {
        self.procs().get(id).map(|p| p.state)
    }

    /// Members that exited on their own (crashed), with their exit status.
    pub fn crashed(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (id, p) in self.procs().iter_mut() {
            if let Some(st) = p.child.as_mut().and_then(|c| c.exited()) {
                out.push((id.clone(), st));
            }
        }
        out
    }

    /// Heals the network, resumes paused members and restarts killed ones: the state every
    /// final phase starts from. Tries everything, reports the first error.
    pub fn heal_all(&self) -> anyhow::Result<()> {
        let mut first = self.net.heal().err();
        for id in self.ids() {
            let r = match self.state(&id) {
                Some(MemberState::Paused) => self.resume(&id),
                Some(MemberState::Killed) => self.start(&id),
                _ => Ok(()),
            };
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Asks every running member for its status (members that do not answer are left out).
    /// The leaders among the answers are noted in [`Cluster::leader_changes`].
    pub async fn statuses(&self, timeout: Duration) -> BTreeMap<String, MemberStatus> {
        let mut out = BTreeMap::new();
        for spec in &self.specs {
            if self.state(&spec.id) != Some(MemberState::Running) {
                continue;
            }
            if let Ok(s) = self.target.status(spec, timeout).await {
                out.insert(spec.id.clone(), s);
            }
        }
        self.leader_changes.observe(out.values());
        out
    }

    /// The leader a majority of answering members agree on (or the one that says it leads).
    pub async fn leader(&self) -> Option<String> {
        let st = self.statuses(Duration::from_millis(500)).await;
        let mut votes: BTreeMap<String, usize> = BTreeMap::new();
        for (id, s) in &st {
            if s.role.as_deref() == Some("leader") {
                *votes.entry(id.clone()).or_default() += self.specs.len();
            }
            if let Some(l) = &s.leader {
                *votes.entry(l.clone()).or_default() += 1;
            }
        }
        votes.into_iter().max_by_key(|(_, v)| *v).map(|(id, _)| id)
    }

    /// Waits until every running member answers `/status` and one of them knows a leader.
    pub async fn wait_ready(&self, deadline: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let st = self.statuses(Duration::from_millis(500)).await;
            let running: Vec<String> = self
                .ids()
                .into_iter()
                .filter(|id| self.state(id) == Some(MemberState::Running))
                .collect();
            let all_answer = running.iter().all(|id| st.contains_key(id));
            let leader = st
                .values()
                .any(|s| s.leader.is_some() || s.role.as_deref() == Some("leader"));
            if all_answer && (leader || !self.target.reports_leader()) {
                return Ok(());
            }
            if let Some((id, status)) = self.crashed().into_iter().next() {
                let log = &self.spec(&id)?.log_file;
                bail!(
                    "member {id} exited ({status}) while waiting for the cluster; see {}{}",
                    log.display(),
                    log_tail(log)
                );
            }
            if start.elapsed() > deadline {
                let missing: Vec<&String> =
                    running.iter().filter(|id| !st.contains_key(*id)).collect();
                // What the first silent member's status says (e.g. no init_ok).
                let why = match missing.first() {
                    Some(id) => match self
                        .target
                        .status(self.spec(id)?, Duration::from_millis(500))
                        .await
                    {
                        Err(e) => format!(" ({e:#})"),
                        Ok(_) => String::new(),
                    },
                    None => String::new(),
                };
                bail!(
                    "the cluster was not ready within {:.0?}: {} (logs in nodes/)",
                    deadline,
                    if !missing.is_empty() {
                        format!("no /status answer from {missing:?}{why}")
                    } else {
                        "no member knows a leader".to_string()
                    }
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills every member (resuming none: SIGKILL works on stopped processes) and reaps them.
    pub fn stop_all(&self) {
        let mut procs = self.procs();
        for p in procs.values_mut() {
            if let Some(mut c) = p.child.take() {
                c.kill();
            }
            p.state = MemberState::Killed;
        }
    }
}

/// The last lines of a member's log (its stderr), for start-up errors: `""` if there are none.
fn log_tail(log: &Path) -> String {
    let Ok(bytes) = std::fs::read(log) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(10)..];
    format!("; its last lines:\n  {}", tail.join("\n  "))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
