//! The `netns` network (`--net netns`, root only): a Linux network namespace per member, joined
//! by a bridge that lives in a namespace of its own; the clients sit in one more namespace.
//! Faults are nftables rules inside the members' namespaces, so they work for any
//! implementation, whatever addresses it dials (etcd included).
//!
//! # Layout
//! For run id `R` (`<pid hex>x<seq>`, unique per network in this machine) and members n1…nN:
//! - namespaces `sb-R-br` (bridge `br0` and one veth end `v<id>` per member and `vcl` for the
//!   clients), `sb-R-cl` (clients) and `sb-R-<id>` (each member, its end named `eth0`);
//! - addresses `10.213.<S>.0/24`, `S` derived from the run id, only inside those namespaces:
//!   clients `.2`, member i (1-based) `.(10+i)`; every member listens on its own address, so
//!   every member can use the same ports ([`CLIENT_PORT`], [`PEER_PORT`]);
//! - in each member namespace one nftables table `inet splitbrain`, rewritten whole by
//!   [`Netns::apply`]: drops for the cut links (output to the peer and input from it) and a
//!   random drop of a share of the packets from other members (loss). Client traffic is never
//!   matched.
//!
//! Nothing is added to the host's namespace except the namespaces' names
//! (`/var/run/netns/sb-*`). Members are started inside their namespace with
//! `ip netns exec sb-R-<id> PROGRAM …` ([`Network::wrap_command`]; `ip` execs the program, so the pid the
//! cluster holds is the member's). The harness's clients run their requests on a tokio runtime
//! whose threads sit in the clients' namespace ([`Netns::clients_runtime`], started by a thread
//! that entered it, whose runtime workers inherit it; `crate::sut::OnRuntime` sends every
//! client and status request there); the rest of the run stays in the host's namespace.
//!
//! # Cleanup
//! [`Netns`] stops the clients' runtime and deletes its namespaces when dropped (after the
//! cluster has killed the members).
//! [`remove_stale`] (called by [`Netns::create`]) deletes the namespaces of runs whose process
//! is gone: a run killed with SIGKILL leaves its namespaces, the next run removes them. (If the
//! dead run's pid has been reused by another live process, its namespaces wait until that one
//! is gone too.) The random loss rules use the kernel's `numgen random`, not the run's seed.

use super::{Link, LinkControl, LinkFaults, MemberAddrs, Network, RuleState, Rules};
use crate::sut::MemberCommand;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where members serve clients inside their namespace.
pub const CLIENT_PORT: u16 = 2379;
/// Where members listen for peers inside their namespace.
pub const PEER_PORT: u16 = 2380;

const PREFIX: &str = "sb-";
const NETNS_DIR: &str = "/var/run/netns";

/// Errors of the netns network.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("--net netns needs root (it creates network namespaces and nftables rules); run as root or use --net proxy")]
    NotRoot,
    #[error(
        "--net netns needs `{0}` ({1}); install it with `apt-get install -y nftables iproute2`"
    )]
    MissingTool(&'static str, String),
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("unknown member `{0}`")]
    UnknownMember(String),
    #[error("loss must be in [0, 1], got {0}")]
    BadLoss(f64),
    #[error("entering namespace {ns}: {source}")]
    Enter { ns: String, source: std::io::Error },
    #[error("starting the clients' runtime: {0}")]
    ClientsRuntime(std::io::Error),
}

type Result<T> = std::result::Result<T, NetnsError>;

/// A run's namespaces. See the module docs.
#[derive(Debug)]
pub struct Netns {
    run: String,
    subnet: u8,
    members: Vec<String>,
    removed: bool,
    shared_port: bool,
    /// The rules in force: cut links and loss per link.
    rules: RuleState,
    /// The runtime whose threads live in the clients' namespace, once started.
    clients: std::sync::OnceLock<ClientsRuntime>,
}

/// A tokio runtime whose worker threads sit in the clients' namespace: a socket a task on it
/// opens is opened there (the harness's own threads stay in the host's namespace). Built by
/// a thread that entered the namespace (the workers it starts inherit it), which then waits
/// for the shutdown signal and drops the runtime, cancelling what still runs on it.
#[derive(Debug)]
struct ClientsRuntime {
    handle: tokio::runtime::Handle,
    shutdown: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClientsRuntime {
    fn start(ns: String) -> Result<ClientsRuntime> {
        let (tx, rx) = std::sync::mpsc::channel::<Result<tokio::runtime::Handle>>();
        let (shutdown, stop) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("netns-clients".into())
            .spawn(move || {
                let rt = enter(&ns).and_then(|()| {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .thread_name("netns-client")
                        .enable_all()
                        .build()
                        .map_err(NetnsError::ClientsRuntime)
                });
                match rt {
                    Ok(rt) => {
                        let _ = tx.send(Ok(rt.handle().clone()));
                        // Until the network is dropped (or its sender is gone).
                        let _ = stop.recv();
                        rt.shutdown_background();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .map_err(NetnsError::ClientsRuntime)?;
        let handle = rx.recv().map_err(|_| {
            NetnsError::ClientsRuntime(std::io::Error::other(
                "its thread ended before starting the runtime",
            ))
        })??;
        Ok(ClientsRuntime {
            handle,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

impl Drop for ClientsRuntime {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn run_cmd(program: &str, args: &[&str], stdin: Option<&str>) -> Result<()> {
    let cmd_text = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetnsError::Command {
            cmd: cmd_text.clone(),
            stderr: e.to_string(),
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| NetnsError::Command {
                cmd: cmd_text.clone(),
                stderr: e.to_string(),
            })?;
    }
    let out = child.wait_with_output().map_err(|e| NetnsError::Command {
        cmd: cmd_text.clone(),
        stderr: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Command {
            cmd: cmd_text,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn ip(args: &[&str]) -> Result<()> {
    run_cmd("ip", args, None)
}

/// Checks root and the tools.
pub fn preflight() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(NetnsError::NotRoot);
    }
    for (tool, arg) in [("ip", "-V"), ("nft", "--version")] {
        match Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => return Err(NetnsError::MissingTool(tool, format!("exited {s}"))),
            Err(e) => return Err(NetnsError::MissingTool(tool, e.to_string())),
        }
    }
    Ok(())
}

/// The pid encoded in a namespace name `sb-<pidhex>x<seq>-…`, if it is one of ours.
fn owner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('x')?;
    i32::from_str_radix(pid, 16).ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Every namespace name of ours present on the machine.
pub fn list_ours() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return vec![];
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| owner_pid(n).is_some())
        .collect();
    names.sort();
    names
}

/// Deletes the namespaces of runs whose process is gone; the names it removed.
pub fn remove_stale() -> Vec<String> {
    let mut removed = vec![];
    for name in list_ours() {
        if owner_pid(&name).is_some_and(|pid| !alive(pid)) && ip(&["netns", "del", &name]).is_ok() {
            removed.push(name);
        }
    }
    removed
}

impl Netns {
    /// Creates the namespaces, bridge and addresses for `members` (after removing stale ones).
    /// With `shared_port`, members serve peers on their client port (targets such as the
    /// project's node).
    pub fn create(members: &[String], shared_port: bool) -> Result<Self> {
        preflight()?;
        let stale = remove_stale();
        if !stale.is_empty() {
            tracing::info!(?stale, "removed namespaces left by a crashed run");
        }
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let run = format!("{pid:x}x{seq}");
        let subnet = ((pid.wrapping_mul(31).wrapping_add(seq)) % 250) as u8 + 1;
        let mut me = Netns {
            run,
            subnet,
            members: members.to_vec(),
            removed: false,
            shared_port,
            rules: RuleState::default(),
            clients: std::sync::OnceLock::new(),
        };
        if let Err(e) = me.build() {
            me.remove();
            return Err(e);
        }
        Ok(me)
    }

    fn build(&mut self) -> Result<()> {
        let br = self.ns("br");
        ip(&["netns", "add", &br])?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        let mut ends: Vec<(String, String, Ipv4Addr)> =
            vec![(self.ns("cl"), "vcl".into(), self.client_ip())];
        for m in &self.members {
            ends.push((self.ns(m), format!("v{m}"), self.ip_of(m)?));
        }
        for (ns, veth, addr) in ends {
            ip(&["netns", "add", &ns])?;
            ip(&[
                "-n", &br, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &br, "link", "set", &veth, "master", "br0", "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        self.apply(&[], 0.0)
    }

    /// The namespace name for `what` (`br`, `cl`, or a member id).
    pub fn ns(&self, what: &str) -> String {
        format!("{PREFIX}{}-{what}", self.run)
    }

    /// Every namespace of this run.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v = vec![self.ns("br"), self.ns("cl")];
        v.extend(self.members.iter().map(|m| self.ns(m)));
        v
    }

    /// The clients' address.
    pub fn client_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, 2)
    }

    /// Member `id`'s address.
    pub fn ip_of(&self, id: &str) -> Result<Ipv4Addr> {
        let i = self
            .members
            .iter()
            .position(|m| m == id)
            .ok_or_else(|| NetnsError::UnknownMember(id.into()))?;
        Ok(Ipv4Addr::new(10, 213, self.subnet, 10 + i as u8 + 1))
    }

    /// Where member `id` serves clients.
    pub fn client_addr(&self, id: &str) -> Result<SocketAddr> {
        Ok(SocketAddr::from((self.ip_of(id)?, CLIENT_PORT)))
    }

    /// Where member `id` listens for peers.
    pub fn peer_addr(&self, id: &str) -> Result<SocketAddr> {
        let port = if self.shared_port {
            CLIENT_PORT
        } else {
            PEER_PORT
        };
        Ok(SocketAddr::from((self.ip_of(id)?, port)))
    }

    /// Moves the calling thread into the clients' namespace (threads it spawns afterwards
    /// start there too).
    pub fn enter_clients(&self) -> Result<()> {
        enter(&self.ns("cl"))
    }

    /// The runtime whose threads sit in the clients' namespace (started on first use): the
    /// harness's clients run their requests on it ([`Network::client_runtime`]).
    pub fn clients_runtime(&self) -> Result<tokio::runtime::Handle> {
        if let Some(c) = self.clients.get() {
            return Ok(c.handle.clone());
        }
        let started = ClientsRuntime::start(self.ns("cl"))?;
        // Another thread may have won the race: its runtime is kept, this one dropped.
        Ok(self.clients.get_or_init(|| started).handle.clone())
    }

    /// Replaces every member's rules: `cuts` are directed links `(from, to)` whose packets are
    /// dropped; `loss` is the share of packets between any two members dropped at random.
    pub fn apply(&self, cuts: &[(String, String)], loss: f64) -> Result<()> {
        let mut per_link = BTreeMap::new();
        for a in &self.members {
            for b in &self.members {
                if a != b && loss > 0.0 {
                    per_link.insert((a.clone(), b.clone()), loss);
                }
            }
        }
        let cuts: BTreeSet<Link> = cuts.iter().cloned().collect();
        self.apply_links(&cuts, &per_link)
    }

    /// Replaces every member's rules with `cuts` and a loss probability per directed link.
    pub fn apply_links(&self, cuts: &BTreeSet<Link>, loss: &BTreeMap<Link, f64>) -> Result<()> {
        self.rules.change(
            |r| {
                *r = Rules {
                    cuts: cuts.clone(),
                    loss: loss.clone(),
                }
            },
            |r| self.write(r),
        )
    }

    /// Writes `r` into every member's table; `Err((_, false))`: refused before any was written.
    fn write(&self, r: &Rules) -> std::result::Result<(), (NetnsError, bool)> {
        if let Some(p) = r.bad_loss() {
            return Err((NetnsError::BadLoss(p), false));
        }
        for (a, b) in r.cuts.iter().chain(r.loss.keys()) {
            self.ip_of(a).and(self.ip_of(b)).map_err(|e| (e, false))?;
        }
        let tables = self
            .members
            .iter()
            .map(|m| Ok((m, self.ruleset(m, &r.cuts, &r.loss)?)))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| (e, false))?;
        for (i, (m, table)) in tables.into_iter().enumerate() {
            run_cmd(
                "ip",
                &["netns", "exec", &self.ns(m), "nft", "-f", "-"],
                Some(&table),
            )
            .map_err(|e| (e, i > 0))?;
        }
        Ok(())
    }

    /// Removes every rule (heals partitions and loss).
    pub fn heal(&self) -> Result<()> {
        self.apply_links(&BTreeSet::new(), &BTreeMap::new())
    }

    /// The nftables ruleset for member `m` ([`render_ruleset`] with this run's addresses).
    pub fn ruleset(
        &self,
        m: &str,
        cuts: &BTreeSet<Link>,
        loss: &BTreeMap<Link, f64>,
    ) -> Result<String> {
        render_ruleset(m, cuts, loss, &|id| self.ip_of(id))
    }

    /// Deletes every namespace of this run (idempotent; errors are logged).
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        // The clients' runtime first: its sockets are in a namespace about to go.
        drop(self.clients.take());
        for ns in self.namespaces() {
            if Path::new(NETNS_DIR).join(&ns).exists() {
                if let Err(e) = ip(&["netns", "del", &ns]) {
                    tracing::warn!("removing namespace {ns}: {e}");
                }
            }
        }
    }
}

/// The nftables ruleset (table `inet splitbrain`, replaced whole) for member `m`, whose peers'
/// addresses `ip_of` gives: the cut link `m → x` drops output to `x`, the cut link `x → m`
/// drops input from `x`, and loss on `x → m` drops that share of input from `x`. Only packets
/// between members are matched. The SSH hosts' network (`crate::net::remote`) applies the same
/// rules on each remote host.
pub fn render_ruleset(
    m: &str,
    cuts: &BTreeSet<Link>,
    loss: &BTreeMap<Link, f64>,
    ip_of: &dyn Fn(&str) -> Result<Ipv4Addr>,
) -> Result<String> {
    let mut input = String::new();
    let mut output = String::new();
    for (a, b) in cuts {
        if a == m {
            output += &format!("    ip daddr {} drop\n", ip_of(b)?);
        }
        if b == m {
            input += &format!("    ip saddr {} drop\n", ip_of(a)?);
        }
    }
    for ((a, b), p) in loss {
        let per_mille = (p * 1000.0).round() as u32;
        if b != m || per_mille == 0 || cuts.contains(&(a.clone(), b.clone())) {
            continue;
        }
        input += &if per_mille >= 1000 {
            format!("    ip saddr {} drop\n", ip_of(a)?)
        } else {
            format!(
                "    ip saddr {} numgen random mod 1000 < {per_mille} drop\n",
                ip_of(a)?
            )
        };
    }
    Ok(format!(
        "table inet splitbrain\ndelete table inet splitbrain\ntable inet splitbrain {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n{input}  }}\n  chain output {{\n    type filter hook output priority 0; policy accept;\n{output}  }}\n}}\n"
    ))
}

impl Network for Netns {
    fn name(&self) -> &'static str {
        "netns"
    }

    fn addrs(&self, id: &str) -> anyhow::Result<MemberAddrs> {
        let routes = self
            .members
            .iter()
            .filter(|m| *m != id)
            .map(|m| Ok((m.clone(), self.peer_addr(m)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(MemberAddrs {
            client: self.client_addr(id)?,
            peer: self.peer_addr(id)?,
            routes,
        })
    }

    fn client_runtime(&self) -> anyhow::Result<Option<tokio::runtime::Handle>> {
        Ok(Some(self.clients_runtime()?))
    }

    fn wrap_command(&self, id: &str, cmd: MemberCommand) -> MemberCommand {
        let mut args = vec!["netns".to_string(), "exec".into(), self.ns(id)];
        args.push(cmd.program.display().to_string());
        args.extend(cmd.args);
        MemberCommand {
            program: PathBuf::from("ip"),
            args,
            env: cmd.env,
        }
    }
}

impl LinkControl for Netns {
    fn set_cuts(&self, cuts: &BTreeSet<Link>) -> anyhow::Result<()> {
        self.rules.set_cuts(cuts, |r| self.write(r))
    }

    fn cuts(&self) -> BTreeSet<Link> {
        self.rules.rules().cuts
    }

    fn set_faults(&self, link: &Link, faults: LinkFaults) -> anyhow::Result<()> {
        self.rules.set_faults(
            link,
            faults,
            "the netns network cannot delay packets (tc netem is missing from this kernel): use --net proxy",
            |r| self.write(r),
        )
    }

    fn heal(&self) -> anyhow::Result<()> {
        Ok(Netns::heal(self)?)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Moves the calling thread into namespace `ns` (by name).
pub fn enter(ns: &str) -> Result<()> {
    let path = Path::new(NETNS_DIR).join(ns);
    let file = std::fs::File::open(&path).map_err(|source| NetnsError::Enter {
        ns: ns.into(),
        source,
    })?;
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is valid for the call (file lives until the end of scope); setns only
    // changes the calling thread's network namespace.
    let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(NetnsError::Enter {
            ns: ns.into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        preflight().is_ok() && unsafe { libc::geteuid() } == 0
    }

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    /// Tries a TCP connection to `addr` from inside namespace `ns`.
    fn reaches(ns: &str, addr: SocketAddr) -> bool {
        let ns = ns.to_string();
        std::thread::spawn(move || {
            enter(&ns).expect("enter namespace");
            TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
        })
        .join()
        .expect("probe thread")
    }

    /// Listens on `addr` inside `ns`, accepting forever (the listener dies with the test).
    fn listen(ns: &str, addr: SocketAddr) {
        let ns = ns.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            enter(&ns).expect("enter namespace");
            let l = TcpListener::bind(addr).expect("bind in namespace");
            tx.send(()).expect("test waits");
            for s in l.incoming() {
                drop(s);
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("listener up");
    }

    #[test]
    fn ruleset_drops_cut_links_and_random_loss_between_members_only() {
        let n = Netns {
            run: "0x0".into(),
            subnet: 7,
            members: ids(3),
            removed: true,
            shared_port: false,
            rules: RuleState::default(),
            clients: std::sync::OnceLock::new(),
        };
        let link = |a: &str, b: &str| (a.to_string(), b.to_string());
        let cuts: BTreeSet<Link> = [link("n1", "n2"), link("n3", "n1")].into();
        let loss: BTreeMap<Link, f64> = [
            (link("n2", "n1"), 0.25),
            (link("n3", "n1"), 0.5),
            (link("n1", "n3"), 0.5),
        ]
        .into();
        let r = n.ruleset("n1", &cuts, &loss).unwrap();
        assert!(r.contains("ip daddr 10.213.7.12 drop"), "{r}");
        assert!(r.contains("ip saddr 10.213.7.13 drop"), "{r}");
        assert!(
            r.contains("ip saddr 10.213.7.12 numgen random mod 1000 < 250 drop"),
            "{r}"
        );
        assert!(
            !r.contains("< 500"),
            "loss on a cut link or another member's input: {r}"
        );
        assert!(
            !r.contains("10.213.7.2 "),
            "client address must never be matched: {r}"
        );
        assert!(matches!(n.apply(&[], 1.5), Err(NetnsError::BadLoss(_))));
        assert!(matches!(n.ip_of("n9"), Err(NetnsError::UnknownMember(_))));
    }

    #[test]
    fn the_clients_runtime_reaches_members_while_the_callers_thread_stays_in_the_host_namespace() {
        if !root() {
            eprintln!("skipped: needs root, ip and nft");
            return;
        }
        let own_ns = || std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let before = own_ns();
        let net = Netns::create(&ids(2), false).unwrap();
        let n1 = net.client_addr("n1").unwrap();
        // A listener in n1's namespace that tells who connected.
        let (peers_tx, peers) = std::sync::mpsc::channel();
        let (up_tx, up) = std::sync::mpsc::channel();
        let ns1 = net.ns("n1");
        std::thread::spawn(move || {
            enter(&ns1).expect("enter namespace");
            let l = TcpListener::bind(n1).expect("bind in namespace");
            up_tx.send(()).expect("test waits");
            for s in l.incoming().flatten() {
                let _ = peers_tx.send(s.peer_addr().map(|a| a.ip()));
            }
        });
        up.recv_timeout(Duration::from_secs(5))
            .expect("listener up");
        let rt = net.clients_runtime().unwrap();
        let connect = move || async move {
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(n1))
                .await
                .is_ok_and(|c| c.is_ok())
        };
        let there = std::thread::spawn({
            let rt = rt.clone();
            move || rt.block_on(rt.spawn(connect())).unwrap()
        })
        .join()
        .unwrap();
        assert!(there, "a task on the clients' runtime reaches n1");
        let from = peers.recv_timeout(Duration::from_secs(2)).unwrap().unwrap();
        assert_eq!(
            from,
            std::net::IpAddr::V4(net.client_ip()),
            "the connection came from the clients' namespace"
        );
        assert_eq!(
            own_ns(),
            before,
            "creating the network moved no harness thread"
        );
        // The same runtime every time; dropping the network stops it.
        assert!(net.clients_runtime().is_ok());
        drop(net);
        let after = std::thread::spawn(move || rt.block_on(rt.spawn(connect())).is_err())
            .join()
            .unwrap();
        assert!(after, "the clients' runtime is shut down with the network");
    }

    #[test]
    fn isolated_members_cannot_reach_each_other_while_clients_still_reach_them() {
        if !root() {
            eprintln!("skipped: needs root, ip and nft");
            return;
        }
        let net = Netns::create(&ids(3), false).unwrap();
        for m in ids(3) {
            listen(&net.ns(&m), net.client_addr(&m).unwrap());
        }
        let n2 = net.client_addr("n2").unwrap();
        assert!(
            reaches(&net.ns("n1"), n2),
            "n1 reaches n2 before the partition"
        );
        // Isolate n2 from everyone.
        let cuts: Vec<(String, String)> = ["n1", "n3"]
            .iter()
            .flat_map(|o| {
                [
                    (o.to_string(), "n2".to_string()),
                    ("n2".to_string(), o.to_string()),
                ]
            })
            .collect();
        net.apply(&cuts, 0.0).unwrap();
        assert!(!reaches(&net.ns("n1"), n2), "n1 must not reach isolated n2");
        assert!(
            !reaches(&net.ns("n2"), net.client_addr("n3").unwrap()),
            "n2 must not reach n3"
        );
        assert!(
            reaches(&net.ns("n1"), net.client_addr("n3").unwrap()),
            "n1 still reaches n3"
        );
        assert!(
            reaches(&net.ns("cl"), n2),
            "clients still reach isolated n2"
        );
        // Total loss between members, clients unaffected.
        net.apply(&[], 1.0).unwrap();
        assert!(!reaches(&net.ns("n3"), net.client_addr("n1").unwrap()));
        assert!(reaches(&net.ns("cl"), net.client_addr("n1").unwrap()));
        net.heal().unwrap();
        assert!(reaches(&net.ns("n1"), n2), "healed");
    }

    fn host_links_and_addrs() -> String {
        let out = Command::new("ip")
            .args(["-o", "addr"])
            .output()
            .expect("ip runs");
        let links = Command::new("ip")
            .args(["-o", "link"])
            .output()
            .expect("ip runs");
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&links.stdout)
    }

    #[test]
    fn adds_no_interface_or_address_to_the_host_namespace() {
        if !root() {
            eprintln!("skipped: needs root, ip and nft");
            return;
        }
        let before = host_links_and_addrs();
        let net = Netns::create(&ids(3), false).unwrap();
        let during = host_links_and_addrs();
        assert_eq!(before, during);
        assert!(!during.contains("10.213."));
        drop(net);
    }

    #[test]
    fn removes_every_namespace_when_dropped() {
        if !root() {
            eprintln!("skipped: needs root, ip and nft");
            return;
        }
        let net = Netns::create(&ids(2), true).unwrap();
        let names = net.namespaces();
        assert_eq!(names.len(), 4);
        assert_eq!(
            net.addrs("n1").unwrap().peer,
            net.addrs("n1").unwrap().client
        );
        for n in &names {
            assert!(list_ours().contains(n), "{n} exists");
        }
        drop(net);
        let left = list_ours();
        for n in &names {
            assert!(!left.contains(n), "{n} removed");
        }
    }

    #[test]
    fn removes_namespaces_of_a_crashed_run_at_next_start() {
        if !root() {
            eprintln!("skipped: needs root, ip and nft");
            return;
        }
        // A run whose process died: its pid is gone and its namespaces are still there.
        let mut child = Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        assert!(!alive(dead as i32));
        let stale = [
            format!("{PREFIX}{dead:x}x0-br"),
            format!("{PREFIX}{dead:x}x0-n1"),
        ];
        for s in &stale {
            ip(&["netns", "add", s]).unwrap();
        }
        // A live run's namespace (ours) must survive.
        let live = Netns::create(&ids(1), false).unwrap();
        let left = list_ours();
        for s in &stale {
            assert!(!left.contains(s), "stale {s} removed");
        }
        assert!(left.contains(&live.ns("n1")));
    }

    #[test]
    fn wraps_member_commands_in_ip_netns_exec() {
        let n = Netns {
            run: "ffx1".into(),
            subnet: 9,
            members: ids(2),
            removed: true,
            shared_port: false,
            rules: RuleState::default(),
            clients: std::sync::OnceLock::new(),
        };
        let c = MemberCommand {
            program: "/usr/bin/etcd".into(),
            args: vec!["--name=n2".into()],
            env: vec![],
        };
        let w = n.wrap_command("n2", c);
        assert_eq!(w.program, PathBuf::from("ip"));
        assert_eq!(
            w.args,
            ["netns", "exec", "sb-ffx1-n2", "/usr/bin/etcd", "--name=n2"]
        );
        assert_eq!(n.client_addr("n2").unwrap().to_string(), "10.213.9.12:2379");
        assert_eq!(owner_pid("sb-ffx1-n2"), Some(0xff));
        assert_eq!(owner_pid("other-ns"), None);
    }
}
