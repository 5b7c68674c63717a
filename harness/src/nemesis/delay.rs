//! `delay`: every peer link delays each forwarded chunk by a fixed delay plus a random jitter,
//! so that a request sent later on a fresh connection can overtake an earlier one (what a
//! congested network does to a sender that times out and moves on). Not part of `all`.

use super::{started, BoxFuture, Fault, FaultKind, Needs, Started};
use crate::cluster::Cluster;
use crate::net::{Link, LinkFaults};
use rand::rngs::StdRng;
use rand::Rng;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The `delay` fault kind.
pub struct DelayKind;

impl FaultKind for DelayKind {
    fn name(&self) -> &'static str {
        "delay"
    }
    fn in_all(&self) -> bool {
        false
    }
    fn needs(&self) -> Needs {
        Needs {
            link_delay: true,
            ..Needs::default()
        }
    }
    fn plan(&self, _nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        Arc::new(Delay {
            delay_ms: rng.gen_range(50..=200),
            jitter_ms: rng.gen_range(300..=1000),
        })
    }
}

/// Every peer link delays each chunk by `delay_ms` plus up to `jitter_ms` (so messages can
/// overtake each other).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delay {
    pub delay_ms: u64,
    pub jitter_ms: u64,
}

fn links(cluster: &Cluster) -> Vec<Link> {
    let mut out = Vec::new();
    for s in &cluster.specs {
        for r in &s.routes {
            out.push((s.id.clone(), r.id.clone()));
        }
    }
    out
}

impl Fault for Delay {
    fn family(&self) -> &'static str {
        "delay"
    }
    fn fields(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn label(&self) -> String {
        format!("delay {}+{} ms", self.delay_ms, self.jitter_ms)
    }
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        Box::pin(async move {
            let f = LinkFaults {
                delay: Duration::from_millis(self.delay_ms),
                jitter: Duration::from_millis(self.jitter_ms),
                ..LinkFaults::default()
            };
            let mut res = Ok(());
            for l in links(cluster) {
                res = res.and_then(|()| cluster.net.set_faults(&l, f));
            }
            started(self, res, None)
        })
    }
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()> {
        for l in links(cluster) {
            cluster.net.set_faults(&l, LinkFaults::default())?;
        }
        Ok(())
    }
}
