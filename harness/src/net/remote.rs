//! The network of remote hosts (`--hosts FILE`, shown as `--net ssh`): every member listens
//! on its host's address, clients on the harness machine dial those addresses directly, and
//! link faults are nftables rules applied on each host over SSH.
//!
//! # Layout
//! - member `i` runs on host `i` and serves clients on `ADDRESS:`[`CLIENT_PORT`] and peers on
//!   `ADDRESS:`[`PEER_PORT`] (or the client port, for targets that share it), `ADDRESS` being
//!   the host's `address` from the hosts file or its name resolved to IPv4;
//! - each host has one table `inet splitbrain`, rewritten whole on every change with the
//!   rules `crate::net::netns::render_ruleset` renders (drops for cut links, random drops for
//!   loss), matching only packets between members' addresses: neither client traffic nor
//!   the SSH sessions (which come from the harness machine) are ever cut;
//! - the tables are deleted when the network is dropped; a table left by a harness killed
//!   with SIGKILL is deleted at the next run's start (`crate::host::ssh::SshHost::connect`).
//!
//! When a host cannot be reached, the others still get their rules, and the error names the
//! host (the nemesis records it in the history).

use super::netns::{render_ruleset, NetnsError};
use super::{Link, LinkControl, LinkFaults, MemberAddrs, Network, RuleState, Rules};
use crate::host::ssh::SshHost;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Where members serve clients on their host.
pub const CLIENT_PORT: u16 = 2379;
/// Where members listen for peers on their host.
pub const PEER_PORT: u16 = 2380;

/// Members on remote hosts. See the module docs.
pub struct RemoteNet {
    /// `(member id, its host, its address)`, in id order.
    members: Vec<(String, Arc<SshHost>, Ipv4Addr)>,
    shared_port: bool,
    /// True if the hosts were prepared for nftables (a table exists on each).
    nft: bool,
    /// The rules in force: cut links and loss per link.
    rules: RuleState,
}

impl RemoteNet {
    /// Member `ids[i]` on `hosts[i]` at `addrs[i]`. `nft`: the hosts have a table to rewrite.
    pub fn new(
        ids: &[String],
        hosts: Vec<Arc<SshHost>>,
        addrs: Vec<Ipv4Addr>,
        shared_port: bool,
        nft: bool,
    ) -> anyhow::Result<RemoteNet> {
        anyhow::ensure!(
            ids.len() == hosts.len() && hosts.len() == addrs.len(),
            "{} members for {} hosts: one member per host",
            ids.len(),
            hosts.len()
        );
        Ok(RemoteNet {
            members: ids
                .iter()
                .cloned()
                .zip(hosts)
                .zip(addrs)
                .map(|((i, h), a)| (i, h, a))
                .collect(),
            shared_port,
            nft,
            rules: RuleState::default(),
        })
    }

    fn ip_of(&self, id: &str) -> Result<Ipv4Addr, NetnsError> {
        self.members
            .iter()
            .find(|m| m.0 == id)
            .map(|m| m.2)
            .ok_or_else(|| NetnsError::UnknownMember(id.into()))
    }

    /// The ruleset member `id`'s host gets for `cuts` and `loss`.
    pub fn ruleset(
        &self,
        id: &str,
        cuts: &BTreeSet<Link>,
        loss: &BTreeMap<Link, f64>,
    ) -> anyhow::Result<String> {
        Ok(render_ruleset(id, cuts, loss, &|m| self.ip_of(m))?)
    }

    /// Rewrites every host's table with `r`; tries every host, reports the first failure
    /// (`Err((_, false))`: refused before any host was written).
    fn write(&self, r: &Rules) -> Result<(), (anyhow::Error, bool)> {
        if !self.nft && (!r.cuts.is_empty() || !r.loss.is_empty()) {
            return Err((
                anyhow::anyhow!("the hosts were not prepared for link faults (no nftables table)"),
                false,
            ));
        }
        if let Some(p) = r.bad_loss() {
            return Err((anyhow::anyhow!("loss must be in [0, 1], got {p}"), false));
        }
        for (a, b) in r.cuts.iter().chain(r.loss.keys()) {
            self.ip_of(a)
                .and(self.ip_of(b))
                .map_err(|e| (e.into(), false))?;
        }
        let mut tables = Vec::new();
        for (id, host, _) in &self.members {
            let table = self.ruleset(id, &r.cuts, &r.loss).map_err(|e| (e, false))?;
            tables.push((id, host, table));
        }
        if !self.nft {
            return Ok(());
        }
        let mut first = None;
        for (id, host, table) in tables {
            if let Err(e) = host.nft(&table) {
                first.get_or_insert(e.context(format!("member {id}'s link rules")));
            }
        }
        first.map_or(Ok(()), |e| Err((e, true)))
    }
}

impl Network for RemoteNet {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn addrs(&self, id: &str) -> anyhow::Result<MemberAddrs> {
        let peer = |ip: Ipv4Addr| {
            SocketAddr::from((
                ip,
                if self.shared_port {
                    CLIENT_PORT
                } else {
                    PEER_PORT
                },
            ))
        };
        let ip = self.ip_of(id)?;
        Ok(MemberAddrs {
            client: SocketAddr::from((ip, CLIENT_PORT)),
            peer: peer(ip),
            routes: self
                .members
                .iter()
                .filter(|m| m.0 != id)
                .map(|m| (m.0.clone(), peer(m.2)))
                .collect(),
        })
    }
}

impl LinkControl for RemoteNet {
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
            "remote hosts cannot delay packets (the harness does not install tc netem rules there)",
            |r| self.write(r),
        )
    }
}

impl Drop for RemoteNet {
    fn drop(&mut self) {
        if !self.nft {
            return;
        }
        for (id, host, _) in &self.members {
            if let Err(e) = host.delete_table() {
                eprintln!(
                    "warning: {e:#} (member {id}; the next run on that host deletes the table)"
                );
            }
        }
    }
}
