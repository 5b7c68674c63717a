//! Networks: how members reach each other, and how the nemesis cuts them apart.
//!
//! A network gives every member its addresses ([`MemberAddrs`]: where it serves clients, where
//! it listens for peers, and what it dials to reach each peer), and cuts **directed links**: the
//! link `(a, b)` carries what `a` sends to `b`. A partition is a set of cut links
//! ([`LinkControl::set_cuts`] replaces the whole set; the empty set heals). Client traffic is never
//! cut.
//!
//! # Layout
//! - [`proxy`] (default, no root): a TCP proxy per directed link, owned by the harness. With a
//!   per-link proxy, the link `a → b` is the proxy `a` dials to reach `b`: cutting it closes the
//!   connections `a` opened to `b` and refuses new ones, so `a`'s requests to `b` (and their
//!   answers) are lost while `b`'s requests to `a` still flow — an asymmetric cut.
//! - [`message`] (no root): an HTTP relay per directed link that sees every Raft message
//!   ([`message::network::MessageNet`]); partitions are message filters, and the message
//!   faults reach it through [`LinkControl::messages`].
//! - [`netns`] (root): a namespace per member and nftables drop rules; the harness's clients
//!   run their requests on a runtime whose threads sit in the clients' namespace
//!   ([`Network::client_runtime`], through `crate::sut::OnRuntime`); the rest of the run stays
//!   in the host's namespace.

pub mod message;
pub mod netns;
pub mod proxy;
pub mod remote;

use crate::nemesis::{Kind, Needs};
use crate::sut::MemberCommand;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// A directed link: traffic from `.0` to `.1` (member ids).
pub type Link = (String, String);

/// The addresses of one member under a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAddrs {
    pub client: SocketAddr,
    pub peer: SocketAddr,
    /// `(peer id, address this member dials to reach it)`, for every other member in id order.
    pub routes: Vec<(String, SocketAddr)>,
}

/// Degradations of a link that is not cut.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkFaults {
    /// Added before each chunk of bytes is forwarded.
    pub delay: Duration,
    /// A further delay drawn uniformly from `0..jitter` per chunk: connections of one link
    /// no longer keep their relative order (a request sent later may arrive first).
    pub jitter: Duration,
    /// Probability, per forwarded chunk, that the connection is dropped instead (a lost message).
    pub loss: f64,
}

/// Link control: what a fault can do to the links between members. Every network implements
/// it (the proxy per TCP link, netns with nftables rules, a message relay per peer message):
/// per **directed** link, cut it or degrade it.
pub trait LinkControl: Send + Sync {
    /// Makes exactly `cuts` the set of cut links (the empty set heals every cut).
    fn set_cuts(&self, cuts: &BTreeSet<Link>) -> anyhow::Result<()>;
    /// The currently cut links.
    fn cuts(&self) -> BTreeSet<Link>;
    /// Sets delay and loss on one link (`LinkFaults::default()` clears them). A network that
    /// cannot do one of them says so ([`NetKind::offers`] tells before the run).
    fn set_faults(&self, link: &Link, faults: LinkFaults) -> anyhow::Result<()>;
    /// Heals everything (cuts, delay, loss).
    fn heal(&self) -> anyhow::Result<()> {
        self.set_cuts(&BTreeSet::new())
    }
    /// Control of every peer message (`--net message`'s relay), for the message faults;
    /// `None` on networks that only see connections or packets.
    fn messages(&self) -> Option<message::relay::RelayControl> {
        None
    }
}

/// The faults of a network whose links are firewall rules rewritten whole on every change
/// (`netns`, `ssh`): the cut links, and the share of packets dropped per link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub cuts: BTreeSet<Link>,
    pub loss: BTreeMap<Link, f64>,
}

impl Rules {
    /// The first loss outside `[0, 1]`, if any.
    pub fn bad_loss(&self) -> Option<f64> {
        self.loss
            .values()
            .copied()
            .find(|p| !(0.0..=1.0).contains(p))
    }
}

/// The [`Rules`] in force on a rule-based network, and the one way to change them: a change
/// edits a copy, the network applies the copy (to every member's table), and the copy becomes
/// the rules in force. Changes are serialized (one at a time, so two nemeses never lose each
/// other's edits). A change whose applying failed after some member's table was written is
/// recorded too (the next change rewrites every table whole anyway, and [`RuleState::rules`]
/// says what was asked for); one refused before any table was written is not.
#[derive(Debug, Default)]
pub struct RuleState(Mutex<Rules>);

impl RuleState {
    /// The rules in force.
    pub fn rules(&self) -> Rules {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Edits the rules with `edit`, hands them to `apply` and records them unless `apply`
    /// says they were refused (`Err((e, false))`: nothing was written) — `Err((e, true))`
    /// means some member's table was written.
    pub fn change<E>(
        &self,
        edit: impl FnOnce(&mut Rules),
        apply: impl FnOnce(&Rules) -> Result<(), (E, bool)>,
    ) -> Result<(), E> {
        // Plain data behind the lock: a poisoned lock still holds usable rules.
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = state.clone();
        edit(&mut next);
        match apply(&next) {
            Ok(()) => {
                *state = next;
                Ok(())
            }
            Err((e, written)) => {
                if written {
                    *state = next;
                }
                Err(e)
            }
        }
    }

    /// [`LinkControl::set_cuts`] of a rule-based network: `cuts` replace the cut links, loss
    /// stays.
    pub fn set_cuts<E: Into<anyhow::Error>>(
        &self,
        cuts: &BTreeSet<Link>,
        apply: impl FnOnce(&Rules) -> Result<(), (E, bool)>,
    ) -> anyhow::Result<()> {
        self.change(|r| r.cuts = cuts.clone(), apply)
            .map_err(Into::into)
    }

    /// [`LinkControl::set_faults`] of a rule-based network, which can drop packets but not
    /// delay them: `no_delay` is the error for a delay or jitter.
    pub fn set_faults<E: Into<anyhow::Error>>(
        &self,
        link: &Link,
        faults: LinkFaults,
        no_delay: &str,
        apply: impl FnOnce(&Rules) -> Result<(), (E, bool)>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            faults.delay.is_zero() && faults.jitter.is_zero(),
            "{no_delay}"
        );
        self.change(
            |r| {
                if faults.loss > 0.0 {
                    r.loss.insert(link.clone(), faults.loss);
                } else {
                    r.loss.remove(link);
                }
            },
            apply,
        )
        .map_err(Into::into)
    }
}

/// A network between members: their addresses, and control of their links. See the module
/// docs.
pub trait Network: LinkControl {
    /// The name given to `--net`.
    fn name(&self) -> &'static str;
    /// The addresses of member `id`.
    fn addrs(&self, id: &str) -> anyhow::Result<MemberAddrs>;
    /// The runtime the harness's clients must run their requests on (every socket to a
    /// member opened there), when this network's members cannot be reached from the harness's
    /// own threads: netns's clients' namespace. `None` (the default): any thread reaches them.
    fn client_runtime(&self) -> anyhow::Result<Option<tokio::runtime::Handle>> {
        Ok(None)
    }
    /// Adjusts a member's command to run inside this network (e.g. in its namespace).
    fn wrap_command(&self, id: &str, cmd: MemberCommand) -> MemberCommand {
        let _ = id;
        cmd
    }
    /// What the network saw over the run, for `results.json` (under its name) and one summary
    /// line; `None`: nothing to say (the Maelstrom router counts messages and bad input).
    fn summary(&self) -> Option<(serde_json::Value, String)> {
        None
    }
}

/// The networks `--net` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NetKind {
    /// A TCP proxy per directed link (no root).
    Proxy,
    /// A network namespace per member, nftables rules (root).
    Netns,
    /// An HTTP relay on every directed peer link that sees every Raft message (no root):
    /// partitions as message filters, and the message faults (`msg-loss`, …).
    Message,
    /// Members on remote hosts (`--hosts FILE`, which implies it): nftables rules on each
    /// host, applied over SSH.
    Ssh,
}

impl NetKind {
    /// The `--net` name.
    pub fn name(self) -> &'static str {
        match self {
            NetKind::Proxy => "proxy",
            NetKind::Netns => "netns",
            NetKind::Message => "message",
            NetKind::Ssh => "ssh",
        }
    }

    /// What its link control can do.
    pub fn offers(self) -> Needs {
        match self {
            NetKind::Proxy => Needs {
                link_cuts: true,
                link_delay: true,
                link_loss: true,
                messages: false,
            },
            NetKind::Message => Needs {
                link_cuts: true,
                link_delay: true,
                link_loss: true,
                messages: true,
            },
            // No tc netem in this kernel (nor installed on remote hosts): no delays.
            NetKind::Netns | NetKind::Ssh => Needs {
                link_cuts: true,
                link_delay: false,
                link_loss: true,
                messages: false,
            },
        }
    }

    /// True if faults of `kind` can run on this network.
    pub fn supports(self, kind: Kind) -> bool {
        kind.needs().met_by(self.offers())
    }

    /// True if it reaches peer links by handing each member the addresses to dial (so a target
    /// whose peer links cannot be proxied escapes it; see
    /// `crate::sut::TargetKind::peer_links_proxyable`).
    pub fn works_through_peer_addresses(self) -> bool {
        matches!(self, NetKind::Proxy | NetKind::Message)
    }

    /// Why a fault needing `needs` cannot run here (for the error).
    pub fn missing(self, needs: Needs) -> &'static str {
        let offered = self.offers();
        if needs.messages && !offered.messages {
            "cannot see single peer messages (use --net message)"
        } else if needs.link_delay && !offered.link_delay {
            "cannot delay packets (tc netem is missing from this kernel)"
        } else if needs.link_loss && !offered.link_loss {
            "cannot drop packets"
        } else {
            "cannot cut links"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn link(a: &str, b: &str) -> Link {
        (a.into(), b.into())
    }

    fn ok(_: &Rules) -> Result<(), (anyhow::Error, bool)> {
        Ok(())
    }

    #[test]
    fn cuts_keep_the_loss_and_faults_keep_the_cuts() {
        let s = RuleState::default();
        let lossy = LinkFaults {
            loss: 0.3,
            ..LinkFaults::default()
        };
        s.set_faults(&link("n1", "n2"), lossy, "no delay", ok)
            .unwrap();
        s.set_cuts(&[link("n2", "n3")].into(), ok).unwrap();
        let r = s.rules();
        assert_eq!(r.cuts, [link("n2", "n3")].into());
        assert_eq!(r.loss, [(link("n1", "n2"), 0.3)].into());
        s.set_faults(&link("n1", "n2"), LinkFaults::default(), "no delay", ok)
            .unwrap();
        assert!(s.rules().loss.is_empty());
        assert_eq!(s.rules().cuts, [link("n2", "n3")].into());
    }

    #[test]
    fn a_refused_change_is_not_recorded_but_a_half_written_one_is() {
        let s = RuleState::default();
        let refused = s.set_cuts(&[link("a", "b")].into(), |_| {
            Err((anyhow::anyhow!("no table"), false))
        });
        assert!(refused.unwrap_err().to_string().contains("no table"));
        assert!(s.rules().cuts.is_empty());
        let half = s.set_cuts(&[link("a", "b")].into(), |_| {
            Err((anyhow::anyhow!("host b unreachable"), true))
        });
        assert!(half.is_err());
        assert_eq!(s.rules().cuts, [link("a", "b")].into());
        let delay = LinkFaults {
            delay: Duration::from_millis(5),
            ..LinkFaults::default()
        };
        let e = s.set_faults(
            &link("a", "b"),
            delay,
            "cannot delay here",
            |_| -> Result<(), (anyhow::Error, bool)> {
                panic!("a delay must be refused before applying")
            },
        );
        assert_eq!(e.unwrap_err().to_string(), "cannot delay here");
    }

    #[test]
    fn loss_outside_zero_to_one_is_found() {
        let mut r = Rules::default();
        assert_eq!(r.bad_loss(), None);
        r.loss.insert(link("a", "b"), 1.5);
        assert_eq!(r.bad_loss(), Some(1.5));
    }

    #[test]
    fn concurrent_changes_never_lose_each_others_edits() {
        // One thread sets loss on 200 links while another rewrites the cuts, with a slow
        // apply in between: serialized changes keep every loss.
        let s = Arc::new(RuleState::default());
        let slow = |_: &Rules| -> Result<(), (anyhow::Error, bool)> {
            std::thread::yield_now();
            Ok(())
        };
        let a = {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let f = LinkFaults {
                        loss: 0.5,
                        ..LinkFaults::default()
                    };
                    s.set_faults(&link("n1", &format!("m{i}")), f, "", slow)
                        .unwrap();
                }
            })
        };
        let b = {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    s.set_cuts(&[link("n2", &format!("c{i}"))].into(), slow)
                        .unwrap();
                }
            })
        };
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(s.rules().loss.len(), 200);
        assert_eq!(s.rules().cuts, [link("n2", "c199")].into());
    }
}
