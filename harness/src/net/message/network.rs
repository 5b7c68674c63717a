//! `--net message`: the HTTP relay ([`super::relay`]) on every directed peer link, as a
//! [`Network`].
//!
//! Each member listens for clients and peers on ports of its own (client traffic never passes
//! the relay); its `--peer` routes are the relay's listeners of its outgoing links. Partitions
//! are message filters (a cut link drops every message on it), delays and loss of
//! [`LinkFaults`] are the relay's `msg-delay` and `msg-loss` restricted to the links given,
//! and the message faults (`msg-loss`, `msg-dup`, `msg-reorder`, `msg-replay`, `msg-trim`) are
//! reached through [`LinkControl::messages`].

use super::faults::{Fault, FaultName, LinkSel};
use super::relay::{Relay, RelayConfig, RelayControl};
use crate::net::proxy::free_port;
use crate::net::{Link, LinkControl, LinkFaults, MemberAddrs, Network};
use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// The relay network. Dropping it stops the relay.
pub struct MessageNet {
    addrs: BTreeMap<String, MemberAddrs>,
    control: RelayControl,
    /// Per-link delay and loss set through [`LinkControl::set_faults`].
    link_faults: Mutex<BTreeMap<Link, LinkFaults>>,
    _relay: Relay,
}

impl MessageNet {
    /// Starts the relay for `ids`; `shared_port` makes each member's peer address its client
    /// address. `seed` seeds every link's fault RNG. Must be called inside a tokio runtime.
    pub async fn start(ids: &[String], shared_port: bool, seed: u64) -> anyhow::Result<MessageNet> {
        let mut base = BTreeMap::new();
        for id in ids {
            let client = free_port()?;
            let peer = if shared_port { client } else { free_port()? };
            base.insert(id.clone(), (client, peer));
        }
        let members = ids.iter().map(|id| (id.clone(), base[id].1)).collect();
        let relay = Relay::start(RelayConfig::new(members, seed))
            .await
            .context("starting the message relay")?;
        let mut addrs = BTreeMap::new();
        for id in ids {
            let (client, peer) = base[id];
            addrs.insert(
                id.clone(),
                MemberAddrs {
                    client,
                    peer,
                    routes: relay.routes(id),
                },
            );
        }
        Ok(MessageNet {
            addrs,
            control: relay.control(),
            link_faults: Mutex::new(BTreeMap::new()),
            _relay: relay,
        })
    }

    /// Re-derives the relay's `msg-delay` and `msg-loss` from the per-link faults: every link
    /// with a delay must have the same one (and likewise for loss).
    fn apply_link_faults(&self, all: &BTreeMap<Link, LinkFaults>) -> anyhow::Result<()> {
        let delayed: BTreeMap<&Link, (std::time::Duration, std::time::Duration)> = all
            .iter()
            .filter(|(_, f)| !f.delay.is_zero() || !f.jitter.is_zero())
            .map(|(l, f)| (l, (f.delay, f.jitter)))
            .collect();
        let lossy: BTreeMap<&Link, f64> = all
            .iter()
            .filter(|(_, f)| f.loss > 0.0)
            .map(|(l, f)| (l, f.loss))
            .collect();
        let one = |vals: Vec<String>, what: &str| -> anyhow::Result<()> {
            let set: BTreeSet<&String> = vals.iter().collect();
            anyhow::ensure!(
                set.len() <= 1,
                "the message network gives every {what} link the same value (asked: {})",
                vals.join(", ")
            );
            Ok(())
        };
        one(
            delayed.values().map(|d| format!("{d:?}")).collect(),
            "delayed",
        )?;
        one(lossy.values().map(|p| p.to_string()).collect(), "lossy")?;
        match delayed.values().next() {
            Some(&(d, j)) => self
                .control
                .set_fault(Fault::delay(d, j).on(LinkSel::Links(
                    delayed.keys().map(|l| (*l).clone()).collect(),
                )))?,
            None => {
                self.control.clear_fault(FaultName::Delay);
            }
        }
        match lossy.values().next() {
            Some(&p) => self.control.set_fault(
                Fault::loss(p).on(LinkSel::Links(lossy.keys().map(|l| (*l).clone()).collect())),
            )?,
            None => {
                self.control.clear_fault(FaultName::Loss);
            }
        }
        Ok(())
    }
}

impl LinkControl for MessageNet {
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
        anyhow::ensure!(
            self.addrs
                .get(&link.0)
                .is_some_and(|a| a.routes.iter().any(|(b, _)| *b == link.1)),
            "no link {} → {}",
            link.0,
            link.1
        );
        // Plain data behind the lock: a poisoned lock still holds a usable map.
        let mut all = self.link_faults.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = all.clone();
        if faults == LinkFaults::default() {
            next.remove(link);
        } else {
            next.insert(link.clone(), faults);
        }
        self.apply_link_faults(&next)?;
        *all = next;
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

impl Network for MessageNet {
    fn name(&self) -> &'static str {
        "message"
    }

    fn addrs(&self, id: &str) -> anyhow::Result<MemberAddrs> {
        self.addrs
            .get(id)
            .cloned()
            .with_context(|| format!("no member {id:?} in the network"))
    }
}

/// One summary line of the relay's counters (what `--net message` did over a run).
pub fn render_counters(c: &super::faults::Counters) -> String {
    format!(
        "messages            {} seen, {} delivered; cut {}, lost {}, duplicated {}, reordered {}, \
         replayed {}, delayed {}, trimmed {} ({} entries, {} held commits), unparsed {}, refused {}, \
         queue full {}, undelivered {}",
        c.seen,
        c.delivered,
        c.cut,
        c.lost,
        c.duplicated,
        c.reordered,
        c.replayed,
        c.delayed,
        c.trimmed,
        c.entries_trimmed,
        c.held_commits,
        c.unparsed,
        c.refused,
        c.queue_full,
        c.undelivered
    )
}
