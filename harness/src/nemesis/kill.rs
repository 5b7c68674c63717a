//! `kill`: SIGKILL a minority of members; stopping the fault restarts them on their data dirs.

use super::{random_minority, started, BoxFuture, Fault, FaultKind, Needs, Started};
use crate::cluster::{Cluster, MemberState};
use rand::rngs::StdRng;
use serde::Serialize;
use std::sync::Arc;

/// The `kill` fault kind.
pub struct KillKind;

impl FaultKind for KillKind {
    fn name(&self) -> &'static str {
        "kill"
    }
    fn in_all(&self) -> bool {
        true
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn plan(&self, nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        Arc::new(Kill {
            nodes: random_minority(nodes, rng),
        })
    }
}

/// Members to kill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kill {
    pub nodes: Vec<String>,
}

impl Fault for Kill {
    fn family(&self) -> &'static str {
        "kill"
    }
    fn fields(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn label(&self) -> String {
        format!("kill {}", self.nodes.join(","))
    }
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        Box::pin(async move {
            let mut res = Ok(());
            for n in &self.nodes {
                res = res.and_then(|()| cluster.kill(n));
            }
            started(self, res, None)
        })
    }
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let mut first = None;
        for n in &self.nodes {
            if cluster.state(n) == Some(MemberState::Killed) {
                if let Err(e) = cluster.start(n) {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}
