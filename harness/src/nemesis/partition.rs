//! `partition`: network partitions as sets of cut directed links (see `crate::net`).
//!
//! - `partition-halves`: members shuffled and split into ⌊n/2⌋ and the rest; every link between
//!   the halves cut both ways.
//! - `isolate-one`: one random member cut off from all others, both ways.
//! - `isolate-leader`: the member `/status` names leader, cut off both ways (chosen at run time).
//! - `majorities-ring` (Jepsen's): members in a random ring; each member hears only the
//!   majority window of the ring centred on it, so every member sees a majority but no two
//!   see the same one. A member `x` not hearing `y` is the cut link `y → x`; for 3 members the
//!   cuts are asymmetric.
//! - `bridge` (Jepsen's): two halves joined by one member that talks to both; links between the
//!   halves cut both ways.

use super::{started, BoxFuture, Fault, FaultKind, Needs, Started};
use crate::cluster::Cluster;
use crate::net::Link;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    PartitionHalves,
    IsolateOne,
    IsolateLeader,
    MajoritiesRing,
    Bridge,
}

impl PartitionKind {
    pub const ALL: [PartitionKind; 5] = [
        PartitionKind::PartitionHalves,
        PartitionKind::IsolateOne,
        PartitionKind::IsolateLeader,
        PartitionKind::MajoritiesRing,
        PartitionKind::Bridge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PartitionKind::PartitionHalves => "partition-halves",
            PartitionKind::IsolateOne => "isolate-one",
            PartitionKind::IsolateLeader => "isolate-leader",
            PartitionKind::MajoritiesRing => "majorities-ring",
            PartitionKind::Bridge => "bridge",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Every partition kind is a fault kind of its own, also chosen by the group `partition`.
impl FaultKind for PartitionKind {
    fn name(&self) -> &'static str {
        PartitionKind::name(*self)
    }
    fn group(&self) -> Option<&'static str> {
        Some("partition")
    }
    fn in_all(&self) -> bool {
        true
    }
    fn needs(&self) -> Needs {
        Needs {
            link_cuts: true,
            ..Needs::default()
        }
    }
    fn plan(&self, nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        Arc::new(Partition::plan(*self, nodes, rng))
    }
}

impl Fault for Partition {
    fn family(&self) -> &'static str {
        "partition"
    }
    fn fields(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn label(&self) -> String {
        Partition::label(self)
    }
    /// Cuts the planned links; `isolate-leader` first re-aims at the member `/status` names
    /// leader (the planned member if none is known; the note says which).
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        Box::pin(async move {
            let mut p = self.clone();
            let mut note = None;
            if p.kind == PartitionKind::IsolateLeader {
                match cluster.leader().await {
                    Some(l) => {
                        p.retarget_isolate(&l, &cluster.ids());
                        note = Some(format!("leader {l} per /status"));
                    }
                    None => note = Some("no leader known; isolated the planned node".into()),
                }
            }
            let res = cluster.net.set_cuts(&p.cuts.iter().cloned().collect());
            started(&p, res, note)
        })
    }
    /// Clears the cuts only (a concurrent `delay` fault keeps its delays).
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()> {
        cluster.net.set_cuts(&BTreeSet::new())
    }
}

/// A planned partition: its groups (for people) and the links it cuts (for the network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub kind: PartitionKind,
    /// Groups of members that can talk among themselves (the bridge member is in both).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<String>>,
    /// Cut directed links `[from, to]`.
    pub cuts: Vec<Link>,
}

/// Every link between `a` and `b`, both ways.
fn cut_between(a: &[String], b: &[String]) -> BTreeSet<Link> {
    let mut s = BTreeSet::new();
    for x in a {
        for y in b {
            if x != y {
                s.insert((x.clone(), y.clone()));
                s.insert((y.clone(), x.clone()));
            }
        }
    }
    s
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

impl Partition {
    /// Plans a partition of `kind` over `nodes` (for isolate-leader: a fallback node).
    pub fn plan(kind: PartitionKind, nodes: &[String], rng: &mut StdRng) -> Partition {
        let mut shuffled = nodes.to_vec();
        shuffled.shuffle(rng);
        match kind {
            PartitionKind::PartitionHalves => {
                let (a, b) = shuffled.split_at(nodes.len() / 2);
                Self::groups(kind, vec![sorted(a.to_vec()), sorted(b.to_vec())])
            }
            PartitionKind::IsolateOne | PartitionKind::IsolateLeader => {
                let one = shuffled[rng.gen_range(0..shuffled.len())].clone();
                Self::isolate(kind, &one, nodes)
            }
            PartitionKind::Bridge => {
                let half = nodes.len() / 2;
                let (a, rest) = shuffled.split_at(half);
                let bridge = rest[0].clone();
                let b = &rest[1..];
                let cuts = cut_between(a, b);
                let mut ga = a.to_vec();
                ga.push(bridge.clone());
                let gb = rest.to_vec();
                Partition {
                    kind,
                    groups: vec![sorted(ga), sorted(gb)],
                    cuts: cuts.into_iter().collect(),
                }
            }
            PartitionKind::MajoritiesRing => {
                let n = shuffled.len();
                let m = n / 2 + 1;
                let mut cuts = BTreeSet::new();
                for start in 0..n {
                    let window: Vec<&String> = (0..m).map(|i| &shuffled[(start + i) % n]).collect();
                    let centre = window[m / 2];
                    for y in &shuffled {
                        if !window.contains(&y) {
                            cuts.insert((y.clone(), centre.clone()));
                        }
                    }
                }
                Partition {
                    kind,
                    groups: Vec::new(),
                    cuts: cuts.into_iter().collect(),
                }
            }
        }
    }

    fn groups(kind: PartitionKind, groups: Vec<Vec<String>>) -> Partition {
        let cuts = cut_between(&groups[0], &groups[1]);
        Partition {
            kind,
            groups,
            cuts: cuts.into_iter().collect(),
        }
    }

    fn isolate(kind: PartitionKind, one: &str, nodes: &[String]) -> Partition {
        let rest: Vec<String> = nodes.iter().filter(|n| *n != one).cloned().collect();
        Self::groups(kind, vec![vec![one.to_string()], rest])
    }

    /// Re-aims an isolate partition at `leader`.
    pub fn retarget_isolate(&mut self, leader: &str, nodes: &[String]) {
        *self = Self::isolate(self.kind, leader, nodes);
    }

    pub fn label(&self) -> String {
        if self.groups.is_empty() {
            format!("{} ({} links cut)", self.kind.name(), self.cuts.len())
        } else {
            let g: Vec<String> = self.groups.iter().map(|g| g.join(",")).collect();
            format!("{} {}", self.kind.name(), g.join(" | "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    /// Who each member can hear (links into it that are not cut), itself included.
    fn hears(p: &Partition, nodes: &[String]) -> BTreeMap<String, BTreeSet<String>> {
        let cuts: BTreeSet<Link> = p.cuts.iter().cloned().collect();
        nodes
            .iter()
            .map(|x| {
                let h = nodes
                    .iter()
                    .filter(|y| *y == x || !cuts.contains(&((*y).clone(), x.clone())))
                    .cloned()
                    .collect();
                (x.clone(), h)
            })
            .collect()
    }

    #[test]
    fn halves_cut_every_link_between_the_groups_both_ways() {
        let mut rng = StdRng::seed_from_u64(1);
        let p = Partition::plan(PartitionKind::PartitionHalves, &nodes(5), &mut rng);
        assert_eq!(p.groups[0].len(), 2);
        assert_eq!(p.groups[1].len(), 3);
        assert_eq!(p.cuts.len(), 2 * 2 * 3);
    }

    #[test]
    fn majorities_ring_gives_every_member_a_distinct_majority() {
        for n in [3, 5, 7] {
            let mut rng = StdRng::seed_from_u64(n as u64);
            let ns = nodes(n);
            let p = Partition::plan(PartitionKind::MajoritiesRing, &ns, &mut rng);
            let h = hears(&p, &ns);
            let views: BTreeSet<&BTreeSet<String>> = h.values().collect();
            assert_eq!(views.len(), n, "views not distinct: {h:?}");
            assert!(h.values().all(|v| v.len() == n / 2 + 1), "{h:?}");
        }
    }

    #[test]
    fn bridge_member_talks_to_both_halves_which_cannot_talk_to_each_other() {
        let mut rng = StdRng::seed_from_u64(4);
        let ns = nodes(5);
        let p = Partition::plan(PartitionKind::Bridge, &ns, &mut rng);
        let h = hears(&p, &ns);
        let bridge: Vec<&String> = ns.iter().filter(|x| h[*x].len() == 5).collect();
        assert_eq!(bridge.len(), 1, "{h:?}");
        assert!(ns.iter().filter(|x| h[*x].len() == 3).count() == 4, "{h:?}");
    }

    #[test]
    fn isolate_leader_retargets_to_the_leader() {
        let mut rng = StdRng::seed_from_u64(2);
        let ns = nodes(3);
        let mut p = Partition::plan(PartitionKind::IsolateLeader, &ns, &mut rng);
        p.retarget_isolate("n2", &ns);
        assert_eq!(p.groups[0], vec!["n2".to_string()]);
        assert_eq!(hears(&p, &ns)["n2"].len(), 1);
        assert_eq!(hears(&p, &ns)["n1"].len(), 2);
    }
}
