//! `--target maelstrom`: Maelstrom `lin-kv` nodes as real processes, the harness as their
//! network (issue 15).
//!
//! Maelstrom nodes are programs that read JSON messages on stdin and write them on stdout
//! (Maelstrom's `doc/protocol.md`). Splitbrain starts `--nodes N` of them (`n0 … n(N-1)`, default
//! 3), routes every line between them, sends them `init`, and drives them with lin-kv clients;
//! the usual pipeline (history, checker, `results.json`, report) does the rest.
//!
//! # The seam with the run pipeline
//! The runner builds a [`Hosted`] instead of a network: the [`Maelstrom`] target (its clients
//! send into the router), a [`MaelstromNet`] (partitions and message faults act on the
//! router's engine) and a [`process::MaelstromHost`] (the cluster's processes, piped into the
//! router). Kill, pause, restart and every nemesis stay the cluster's.
//!
//! # Layout
//! - [`protocol`]: pure: envelopes, addresses, error codes, answers → outcomes, the `lin-kv`
//!   service.
//! - [`router`]: per-node queues, the fault engine on node links, latency, clients' answers,
//!   the services, bad-input counts.
//! - [`process`]: node processes with piped stdin/stdout, nice 10, dying with the harness.
//! - this file: the target, its client, the network adapter, [`Hosted`].
//!
//! # Clients (Maelstrom's lin-kv client)
//! Each worker is bound to one node (round-robin) with a client id of its own (`c1`, `c2`, …),
//! one request in flight; the op timeout is `max(10 × mean latency, 1 s)` (the plan sets it).
//! Answers map as [`protocol::outcome`] says. `create_if_not_exists` is not sent: the
//! workloads' cas never asks for it (the service honours it for nodes that do).

pub mod process;
pub mod protocol;
pub mod router;

use crate::net::message::relay::RelayControl;
use crate::net::message::{Fault, FaultName, LinkSel};
use crate::net::{Link, LinkControl, LinkFaults, MemberAddrs, Network};
use crate::sut::{BoxFuture, Client, MemberCommand, MemberSpec, MemberStatus, Target};
use router::{Latency, Router, RouterConfig};
use splitbrain_workloads::{Op, Outcome, Reply};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The Maelstrom target: a command line, and the router its clients talk through.
pub struct Maelstrom {
    words: Vec<String>,
    router: Router,
    missing_read_null: bool,
}

impl Maelstrom {
    /// Parses `--node-cmd` (split on whitespace; quotes group words). The target is not wired
    /// to a run's router (see [`Hosted`]).
    pub fn parse(cmd: &str) -> Result<Maelstrom, String> {
        let words = crate::sut::cmd::split_words(cmd).map_err(|e| e.to_string())?;
        if words.is_empty() {
            return Err("--node-cmd is empty".into());
        }
        Ok(Maelstrom {
            words,
            router: Router::new(RouterConfig::new(Vec::new(), 0)),
            missing_read_null: false,
        })
    }
}

impl Target for Maelstrom {
    fn name(&self) -> &'static str {
        "maelstrom"
    }

    fn shares_client_and_peer_port(&self) -> bool {
        true
    }

    fn command(&self, m: &MemberSpec, _all: &[MemberSpec]) -> anyhow::Result<MemberCommand> {
        let mut args: Vec<String> = self.words[1..].to_vec();
        args.extend(m.extra_args.iter().cloned());
        Ok(MemberCommand {
            program: self.words[0].clone().into(),
            args,
            env: vec![(process::NODE_ID_ENV.to_string(), m.id.clone())],
        })
    }

    fn client(&self, m: &MemberSpec, timeout: Duration) -> anyhow::Result<Arc<dyn Client>> {
        Ok(Arc::new(MaelstromClient {
            router: self.router.clone(),
            id: self.router.new_client(),
            node: m.id.clone(),
            timeout,
            missing_read_null: self.missing_read_null,
        }))
    }

    fn status<'a>(
        &'a self,
        m: &'a MemberSpec,
        _timeout: Duration,
    ) -> BoxFuture<'a, anyhow::Result<MemberStatus>> {
        Box::pin(async move {
            if self.router.is_ready(&m.id) {
                Ok(MemberStatus {
                    role: Some("initialized".into()),
                    ..MemberStatus::default()
                })
            } else {
                anyhow::bail!("{} has not answered init with init_ok", m.id)
            }
        })
    }

    fn reports_leader(&self) -> bool {
        false
    }

    /// `init_ok` needs no election: a node that has not answered in 10 s will not.
    fn ready_deadline(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// A lin-kv client bound to one node.
pub struct MaelstromClient {
    router: Router,
    /// `c1`, `c2`, …
    id: String,
    node: String,
    timeout: Duration,
    missing_read_null: bool,
}

impl Client for MaelstromClient {
    fn invoke<'a>(&'a self, op: &'a Op, _request_id: &'a str) -> BoxFuture<'a, Outcome<Reply>> {
        Box::pin(async move {
            let Some(body) = protocol::request(op, false) else {
                return Outcome::Fail("lin-kv has no append".into());
            };
            let answer = self
                .router
                .call(&self.id, &self.node, body, self.timeout)
                .await;
            protocol::outcome(op, answer.as_ref(), self.missing_read_null)
        })
    }
}

/// The router as the cluster's network: partitions cut links of its engine, per-link delay and
/// loss become its `msg-delay` and `msg-loss`, and the message nemeses reach it through
/// [`LinkControl::messages`].
pub struct MaelstromNet {
    router: Router,
    control: RelayControl,
    /// Per-link delay and loss set through [`LinkControl::set_faults`].
    link_faults: Mutex<BTreeMap<Link, LinkFaults>>,
}

impl MaelstromNet {
    pub fn new(router: Router) -> MaelstromNet {
        MaelstromNet {
            control: RelayControl::of(router.engine()),
            router,
            link_faults: Mutex::new(BTreeMap::new()),
        }
    }
}

impl LinkControl for MaelstromNet {
    fn set_cuts(&self, cuts: &BTreeSet<Link>) -> anyhow::Result<()> {
        Ok(self.control.set_cuts(cuts.clone())?)
    }

    fn cuts(&self) -> BTreeSet<Link> {
        self.control.cuts()
    }

    fn set_faults(&self, link: &Link, faults: LinkFaults) -> anyhow::Result<()> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&faults.loss),
            "loss must be within 0..=1"
        );
        let mut all = self.link_faults.lock().unwrap_or_else(|p| p.into_inner());
        if faults == LinkFaults::default() {
            all.remove(link);
        } else {
            all.insert(link.clone(), faults);
        }
        // One setting for every faulted link (what the `delay` nemesis asks), as --net message.
        let delayed: Vec<Link> = all
            .iter()
            .filter(|(_, f)| !f.delay.is_zero() || !f.jitter.is_zero())
            .map(|(l, _)| l.clone())
            .collect();
        let lossy: Vec<Link> = all
            .iter()
            .filter(|(_, f)| f.loss > 0.0)
            .map(|(l, _)| l.clone())
            .collect();
        match delayed.first().map(|l| all[l]) {
            Some(f) => self.control.set_fault(
                Fault::delay(f.delay, f.jitter).on(LinkSel::Links(delayed.into_iter().collect())),
            )?,
            None => {
                self.control.clear_fault(FaultName::Delay);
            }
        }
        match lossy.first().map(|l| all[l]) {
            Some(f) => self
                .control
                .set_fault(Fault::loss(f.loss).on(LinkSel::Links(lossy.into_iter().collect())))?,
            None => {
                self.control.clear_fault(FaultName::Loss);
            }
        }
        Ok(())
    }

    fn heal(&self) -> anyhow::Result<()> {
        self.link_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.control.heal();
        Ok(())
    }

    fn messages(&self) -> Option<RelayControl> {
        Some(self.control.clone())
    }
}

impl Network for MaelstromNet {
    fn name(&self) -> &'static str {
        "maelstrom"
    }

    /// Maelstrom nodes have no addresses; these are placeholders the target never uses.
    fn addrs(&self, id: &str) -> anyhow::Result<MemberAddrs> {
        anyhow::ensure!(
            self.router.nodes().iter().any(|n| n == id),
            "no node {id:?} in the Maelstrom router"
        );
        let none = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Ok(MemberAddrs {
            client: none,
            peer: none,
            routes: Vec::new(),
        })
    }

    fn summary(&self) -> Option<(serde_json::Value, String)> {
        let c = self.router.counts();
        let m = self.control.counters();
        let line = format!(
            "maelstrom           {} lines, {} delivered; bad lines {}, unknown dest {}, unknown replies {}, \
             late replies {}, to down nodes {}, queue full {}, stdout closed {}, init errors {}, \
             service requests {}; node links: cut {}, lost {}, duplicated {}, reordered {}, replayed {}, delayed {}",
            c.lines,
            c.delivered,
            c.bad_lines,
            c.unknown_dest,
            c.unknown_replies,
            c.late_replies,
            c.to_down_node,
            c.queue_full,
            c.stdout_closed,
            c.init_errors,
            c.service_requests,
            m.cut,
            m.lost,
            m.duplicated,
            m.reordered,
            m.replayed,
            m.delayed,
        );
        Some((serde_json::json!({"router": c, "faults": m}), line))
    }
}

/// What a Maelstrom run uses instead of a network: target, network and host, sharing one
/// router.
pub struct Hosted {
    pub router: Router,
    pub target: Arc<dyn Target>,
    pub net: Arc<dyn Network>,
    pub host: Arc<dyn crate::host::Host>,
}

impl Hosted {
    /// For the plan's nodes, command, latency and seed.
    pub fn new(plan: &crate::plan::TestPlan) -> anyhow::Result<Hosted> {
        let cmd = plan
            .node_cmd
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--target maelstrom needs --node-cmd"))?;
        let mut target = Maelstrom::parse(cmd).map_err(crate::cli::exit::BadInput)?;
        let mut cfg = RouterConfig::new(
            plan.member_ids(),
            plan.seeds()
                .of(splitbrain_workloads::seeds::Stream::MessageNetwork),
        );
        cfg.latency = Latency {
            mean: Duration::from_secs_f64(plan.latency_ms / 1000.0),
            dist: plan.latency_dist,
        };
        let router = Router::new(cfg);
        target.router = router.clone();
        target.missing_read_null = plan.missing_read_null;
        Ok(Hosted {
            target: Arc::new(target),
            net: Arc::new(MaelstromNet::new(router.clone())),
            host: Arc::new(process::MaelstromHost {
                router: router.clone(),
            }),
            router,
        })
    }
}
