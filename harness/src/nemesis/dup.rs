//! `dup-requests`: a client network that delivers answered writes twice. While the fault
//! holds, each write, cas or append that a worker sees answered `ok` is sent again with the
//! same request id, through the next member, a retry backoff (at least 0.1 s) later, with the
//! fault's probability (see `crate::client::Duplicate`). The duplicate is the network's, not
//! an operation of the history; a node with request-id dedup answers it from the client's
//! session without applying it, one without (`--bug no-dedup`, or etcd, which has no request
//! ids) applies it again, which a later read of a unique value shows.
//!
//! The probability is drawn from the plan's RNG (0.3–0.9) and recorded in `start-dup-requests`;
//! `--duplicate-writes P` is the same network fault held for the whole run.

use super::{started, BoxFuture, Fault, FaultKind, Needs, Started};
use crate::cluster::Cluster;
use rand::rngs::StdRng;
use rand::Rng;
use serde::Serialize;
use std::sync::Arc;

/// The `dup-requests` fault kind.
pub struct DupRequestsKind;

impl FaultKind for DupRequestsKind {
    fn name(&self) -> &'static str {
        "dup-requests"
    }
    /// Not in `all`: `all`'s schedules are fixtures.
    fn in_all(&self) -> bool {
        false
    }
    /// Nothing of the peer links: it is a fault of the clients' network.
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn plan(&self, _nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        let p: f64 = rng.gen_range(0.3..0.9);
        Arc::new(DupRequests {
            probability: (p * 100.0).round() / 100.0,
        })
    }
}

/// Duplicate answered writes with `probability` while it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DupRequests {
    pub probability: f64,
}

impl Fault for DupRequests {
    fn family(&self) -> &'static str {
        "dup-requests"
    }
    fn fields(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn label(&self) -> String {
        format!("dup-requests p={}", self.probability)
    }
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        Box::pin(async move {
            cluster.client_net.set_dup_probability(self.probability);
            started(self, Ok(()), None)
        })
    }
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()> {
        cluster.client_net.set_dup_probability(0.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn plans_a_recorded_probability_between_three_and_nine_tenths_from_the_seed() {
        let mut a = StdRng::seed_from_u64(5);
        let mut b = StdRng::seed_from_u64(5);
        for _ in 0..50 {
            let f = DupRequestsKind.plan(&[], &mut a).describe();
            let p = f["probability"].as_f64().unwrap();
            assert!((0.3..=0.9).contains(&p), "{f}");
            assert_eq!(f, DupRequestsKind.plan(&[], &mut b).describe());
        }
    }
}
