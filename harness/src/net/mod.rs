//! Networks: how members reach each other, and how the nemesis cuts them apart.
//!
//! A network gives every member its addresses ([`MemberAddrs`]: where it serves clients, where
//! it listens for peers, and what it dials to reach each peer), and cuts **directed links**: the
//! link `(a, b)` carries what `a` sends to `b`. A partition is a set of cut links
//! ([`Network::set_cuts`] replaces the whole set; the empty set heals). Client traffic is never
//! cut.
//!
//! # Layout
//! - [`proxy`] (default, no root): a TCP proxy per directed link, owned by the harness. With a
//!   per-link proxy, the link `a → b` is the proxy `a` dials to reach `b`: cutting it closes the
//!   connections `a` opened to `b` and refuses new ones, so `a`'s requests to `b` (and their
//!   answers) are lost while `b`'s requests to `a` still flow — an asymmetric cut.
//! - [`netns`] (root): a namespace per member and nftables drop rules; the runner runs its
//!   clients inside the clients' namespace ([`netns::run_in_clients`]).

pub mod message;
pub mod netns;
pub mod proxy;

use crate::sut::MemberCommand;
use std::collections::BTreeSet;
use std::net::SocketAddr;
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

/// A network between members. See the module docs.
pub trait Network: Send + Sync {
    /// The name given to `--net`.
    fn name(&self) -> &'static str;
    /// The addresses of member `id`.
    fn addrs(&self, id: &str) -> anyhow::Result<MemberAddrs>;
    /// Makes exactly `cuts` the set of cut links (the empty set heals everything).
    fn set_cuts(&self, cuts: &BTreeSet<Link>) -> anyhow::Result<()>;
    /// The currently cut links.
    fn cuts(&self) -> BTreeSet<Link>;
    /// Sets delay and loss on one link (not every network can).
    fn set_faults(&self, link: &Link, faults: LinkFaults) -> anyhow::Result<()> {
        let _ = (link, faults);
        anyhow::bail!("the {} network cannot delay or drop", self.name())
    }
    /// Adjusts a member's command to run inside this network (e.g. in its namespace).
    fn wrap_command(&self, id: &str, cmd: MemberCommand) -> MemberCommand {
        let _ = id;
        cmd
    }
    /// Heals everything (cuts, delay, loss).
    fn heal(&self) -> anyhow::Result<()> {
        self.set_cuts(&BTreeSet::new())
    }
}

/// Every network name `--net` accepts.
pub const NET_NAMES: &[&str] = &["proxy", "netns"];
