//! `delay`: every peer link delays each forwarded chunk by a fixed delay plus a random jitter,
//! so that a request sent later on a fresh connection can overtake an earlier one (what a
//! congested network does to a sender that times out and moves on). Not part of `all`.

use crate::cluster::Cluster;
use crate::net::{Link, LinkFaults};
use std::time::Duration;

fn links(cluster: &Cluster) -> Vec<Link> {
    let mut out = Vec::new();
    for s in &cluster.specs {
        for r in &s.routes {
            out.push((s.id.clone(), r.id.clone()));
        }
    }
    out
}

pub fn start(cluster: &Cluster, delay_ms: u64, jitter_ms: u64) -> anyhow::Result<()> {
    let f = LinkFaults {
        delay: Duration::from_millis(delay_ms),
        jitter: Duration::from_millis(jitter_ms),
        loss: 0.0,
    };
    for l in links(cluster) {
        cluster.net.set_faults(&l, f)?;
    }
    Ok(())
}

pub fn stop(cluster: &Cluster) -> anyhow::Result<()> {
    for l in links(cluster) {
        cluster.net.set_faults(&l, LinkFaults::default())?;
    }
    Ok(())
}
