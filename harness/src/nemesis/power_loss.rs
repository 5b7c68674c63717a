//! `power-loss` and `torn-power-loss`: a power failure of some members. Starting the fault
//! SIGKILLs each target and makes its fault filesystem forget everything not made durable
//! (`crate::storage`); stopping it restarts them on what survived. `torn-power-loss` first keeps
//! a seeded prefix of each target's newest unsynced write (a torn write; the seed is drawn from
//! the nemesis stream when the schedule is planned, so replays tear the same way).
//!
//! Targets: all members with probability ½ (only a power loss of a majority can take away an
//! acknowledged write from a node that skips fsync), else a random majority or minority (¼
//! each). What was lost per member (bytes, files, paths, the torn write) is in the history's
//! `start-power-loss` / `stop-power-loss` values (`lost`) and on the summary's fault line.

use super::{random_minority, started, BoxFuture, Fault, FaultKind, Needs, Started};
use crate::cluster::{Cluster, MemberState};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use splitbrain_faultfs::LossReport;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `power-loss` (`torn: false`) and `torn-power-loss` (`torn: true`) fault kinds.
pub struct PowerLossKind {
    pub torn: bool,
}

impl FaultKind for PowerLossKind {
    fn name(&self) -> &'static str {
        if self.torn {
            "torn-power-loss"
        } else {
            "power-loss"
        }
    }
    /// Not in `all`: it needs FUSE (root or fusermount3), and `all`'s schedules are fixtures.
    fn in_all(&self) -> bool {
        false
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn needs_fault_fs(&self) -> bool {
        true
    }
    fn plan(&self, nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        let nodes = storage_targets(nodes, rng);
        let tear = self.torn.then(|| rng.gen::<u64>());
        Arc::new(PowerLoss {
            nodes,
            tear,
            lost: BTreeMap::new(),
        })
    }
}

/// The members a storage fault hits: all (½), a random majority (¼) or minority (¼).
pub fn storage_targets(nodes: &[String], rng: &mut StdRng) -> Vec<String> {
    let pick = rng.gen_range(0..4);
    let mut v: Vec<String> = match pick {
        0 | 1 => nodes.to_vec(),
        2 => {
            let k = nodes.len() / 2 + 1;
            nodes.choose_multiple(rng, k).cloned().collect()
        }
        _ => random_minority(nodes, rng),
    };
    v.sort();
    v
}

/// Members to power off, the tear seed, and (once started) what each lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PowerLoss {
    pub nodes: Vec<String>,
    /// `Some(seed)`: tear each member's newest unsynced write with this seed.
    pub tear: Option<u64>,
    /// Filled in when started: what each member lost.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub lost: BTreeMap<String, LossReport>,
}

impl Fault for PowerLoss {
    fn family(&self) -> &'static str {
        "power-loss"
    }
    fn fields(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if !self.lost.is_empty() {
            let parts: Vec<String> = self
                .lost
                .iter()
                .map(|(id, r)| format!("{id}: {}", crate::storage::describe_loss(r)))
                .collect();
            v["detail"] = serde_json::json!(parts.join("; "));
            v["bytes_lost"] =
                serde_json::json!(self.lost.values().map(|r| r.bytes_lost).sum::<u64>());
            v["files_lost"] =
                serde_json::json!(self.lost.values().map(|r| r.files_lost).sum::<u64>());
        }
        v
    }
    fn label(&self) -> String {
        format!(
            "{}power loss {}",
            if self.tear.is_some() { "torn " } else { "" },
            self.nodes.join(",")
        )
    }
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        Box::pin(async move {
            let mut done = self.clone();
            let mut res = Ok(());
            for (i, n) in self.nodes.iter().enumerate() {
                // One tear seed per member, from the planned one.
                let tear = self.tear.map(|t| t.wrapping_add(i as u64));
                match cluster.power_loss(n, tear) {
                    Ok(r) => {
                        done.lost.insert(n.clone(), r);
                    }
                    Err(e) => {
                        res = res.and(Err(e));
                    }
                }
            }
            started(&done, res, None)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn power_loss_hits_all_members_a_majority_or_a_minority() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut sizes = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let t = storage_targets(&nodes(5), &mut rng);
            assert!(!t.is_empty() && t.len() <= 5);
            let mut d = t.clone();
            d.dedup();
            assert_eq!(d, t, "targets are distinct and sorted");
            sizes.insert(t.len());
        }
        assert!(sizes.contains(&5) && sizes.contains(&3), "{sizes:?}");
        assert!(sizes.iter().any(|&s| s <= 2), "{sizes:?}");
    }

    #[test]
    fn power_loss_combines_with_other_faults_and_stays_out_of_all() {
        let c = crate::nemesis::parse_nemesis("power-loss,partition").unwrap();
        assert_eq!(c.len(), 2);
        assert!(c[0][0].needs_fault_fs() && !c[1][0].needs_fault_fs());
        let all = crate::nemesis::parse_nemesis("all").unwrap();
        assert!(all.iter().flatten().all(|k| !k.needs_fault_fs()));
        assert!(crate::nemesis::nemesis_names().contains(&"torn-power-loss"));
    }

    #[test]
    fn only_the_torn_kind_plans_a_tear_and_the_plan_follows_the_seed() {
        let plain = PowerLossKind { torn: false };
        let torn = PowerLossKind { torn: true };
        let a = plain.plan(&nodes(3), &mut StdRng::seed_from_u64(1));
        assert_eq!(a.describe()["tear"], serde_json::Value::Null);
        let b = torn.plan(&nodes(3), &mut StdRng::seed_from_u64(1));
        let c = torn.plan(&nodes(3), &mut StdRng::seed_from_u64(1));
        assert!(b.describe()["tear"].is_u64());
        assert_eq!(b.describe(), c.describe());
        assert_eq!(b.describe()["fault"], "power-loss");
    }
}
