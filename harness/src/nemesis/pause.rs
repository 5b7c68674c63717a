//! `pause`: SIGSTOP a minority of members; stopping the fault sends SIGCONT.

use super::{random_minority, started, BoxFuture, Fault, FaultKind, Needs, Started};
use crate::cluster::Cluster;
use rand::rngs::StdRng;
use serde::Serialize;
use std::sync::Arc;

/// The `pause` fault kind.
pub struct PauseKind;

impl FaultKind for PauseKind {
    fn name(&self) -> &'static str {
        "pause"
    }
    fn in_all(&self) -> bool {
        true
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn plan(&self, nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        Arc::new(Pause {
            nodes: random_minority(nodes, rng),
        })
    }
}

/// Members to pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pause {
    pub nodes: Vec<String>,
}

impl Fault for Pause {
    fn family(&self) -> &'static str {
        "pause"
    }
    fn fields(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn label(&self) -> String {
        format!("pause {}", self.nodes.join(","))
    }
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        Box::pin(async move {
            let mut res = Ok(());
            for n in &self.nodes {
                res = res.and_then(|()| cluster.pause(n));
            }
            started(self, res, None)
        })
    }
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let mut first = None;
        for n in &self.nodes {
            if let Err(e) = cluster.resume(n) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
