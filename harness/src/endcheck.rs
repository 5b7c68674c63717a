//! End-of-run checks: what the cluster looks like after recovery, beyond what the clients saw.
//!
//! After the final reads the runner asks every member's `/status` until the members agree or
//! the recovery time has passed again. Each disagreement is a [`Finding`]:
//! - `exited`: a member exited on its own during the run (a panic, a safety check, a clean
//!   exit nobody asked for) — a failure, not a warning;
//! - `unreachable`: a running member did not answer `/status` (stopped, hung);
//! - `behind`: a member's commit or applied index stayed below the others' (it never caught
//!   up within the recovery time);
//! - `diverged`: members at the same applied index report different `sm_digest`s (their state
//!   machines, client sessions included, differ).
//!
//! Any finding fails the run: `splitbrain test` exits 3 ([`crate::cli::exit::CLUSTER_CHECK`])
//! when the history is valid or unknown (1 when it is invalid: invalid outranks it), and a
//! suite counts the run as a failure. Targets that report no applied index or digest (etcd)
//! get only the `exited` and `unreachable` checks; the report says so.

use crate::cluster::Cluster;
use crate::sut::MemberStatus;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One thing wrong with one member after recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub member: String,
    /// `exited`, `unreachable`, `behind` or `diverged`.
    pub kind: &'static str,
    pub detail: String,
}

/// The end-of-run checks' result (`results.json` field `cluster_check`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterCheck {
    /// True if the checks ran (not after Ctrl-C).
    pub ran: bool,
    pub findings: Vec<Finding>,
    /// What each answering member said last.
    pub statuses: BTreeMap<String, MemberStatus>,
    /// Set when the target reports no applied index or digest (only exits and answers checked).
    pub partial: Option<String>,
    pub waited_ms: u64,
    /// Findings about members that refused their damaged data (`corrupt`): the correct
    /// outcome of that fault, reported as such and not counted as failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excused: Vec<Finding>,
    /// What the run-time monitor ([`crate::monitor`]) observed; its findings are in
    /// [`Self::findings`] too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during_run: Option<crate::monitor::Summary>,
}

impl ClusterCheck {
    /// Moves the findings about `members` (members that refused their damaged data) from
    /// [`Self::findings`] to [`Self::excused`].
    pub fn excuse(&mut self, members: &[String]) {
        let (excused, kept): (Vec<Finding>, Vec<Finding>) = std::mem::take(&mut self.findings)
            .into_iter()
            .partition(|f| members.contains(&f.member));
        self.findings = kept;
        self.excused.extend(excused);
    }

    /// When the members that refused their data (`refused` of `members`) leave no majority,
    /// no leader can be elected and nothing more can commit: a member `behind` the highest
    /// commit index seen can never catch up, whatever the node does. Such findings move to
    /// [`Self::excused`] (the summary says "behind with no quorum left"); the `exited`,
    /// `unreachable` and `diverged` ones stay.
    pub fn excuse_behind_without_quorum(&mut self, refused: usize, members: usize) {
        if members.saturating_sub(refused) > members / 2 {
            return;
        }
        let (excused, kept): (Vec<Finding>, Vec<Finding>) = std::mem::take(&mut self.findings)
            .into_iter()
            .partition(|f| f.kind == "behind");
        self.findings = kept;
        self.excused.extend(excused);
    }

    /// Adds what the run-time monitor found (`two-leaders`, `diverged` during the run) and
    /// its summary. Nothing when the checks did not run (Ctrl-C).
    pub fn add_during_run(&mut self, m: &crate::monitor::Monitor) {
        if !self.ran {
            return;
        }
        self.findings.extend(m.findings().iter().cloned());
        self.during_run = Some(m.summary().clone());
    }

    /// True if nothing was found.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// One line for the summary.
    pub fn line(&self) -> String {
        if !self.ran {
            return "not run (interrupted)".into();
        }
        if self.ok() {
            let s = self.statuses.values().next();
            let mut out = format!("OK ({} members agree", self.statuses.len());
            if let Some(s) = s {
                if let (Some(c), Some(a)) = (s.commit, s.applied_index) {
                    out.push_str(&format!(": commit {c}, applied {a}"));
                }
                if let Some(d) = &s.sm_digest {
                    out.push_str(&format!(", digest {d}"));
                }
            }
            out.push_str(&format!("; {} ms)", self.waited_ms));
            if let Some(p) = &self.partial {
                out.push_str(&format!("; {p}"));
            }
            let who = |behind: bool| {
                let mut w: Vec<&str> = self
                    .excused
                    .iter()
                    .filter(|f| (f.kind == "behind") == behind)
                    .map(|f| f.member.as_str())
                    .collect();
                w.dedup();
                w.join(", ")
            };
            let (refused, behind) = (who(false), who(true));
            if !refused.is_empty() {
                out.push_str(&format!("; not counted: {refused} refused damaged data"));
            }
            if !behind.is_empty() {
                out.push_str(&format!(
                    "; {behind} behind with no quorum left (a majority refused its data)"
                ));
            }
            if let Some(d) = &self.during_run {
                out.push_str(&format!("; during the run: {}", d.line()));
            }
            return out;
        }
        let parts: Vec<String> = self
            .findings
            .iter()
            .map(|f| format!("{} {}: {}", f.member, f.kind, f.detail))
            .collect();
        format!("FAILED: {}", parts.join("; "))
    }
}

/// The findings for members `ids`, given the statuses of those that answered and the members
/// that exited on their own (id, exit status). Pure: the unit of the checks.
pub fn evaluate(
    ids: &[String],
    statuses: &BTreeMap<String, MemberStatus>,
    crashed: &[(String, String)],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (id, st) in crashed {
        out.push(Finding {
            member: id.clone(),
            kind: "exited",
            detail: format!("exited on its own ({st}); see nodes/{id}.log"),
        });
    }
    for id in ids {
        if !statuses.contains_key(id) && !crashed.iter().any(|(c, _)| c == id) {
            out.push(Finding {
                member: id.clone(),
                kind: "unreachable",
                detail: "no /status answer after recovery".into(),
            });
        }
    }
    let max_commit = statuses.values().filter_map(|s| s.commit).max();
    let max_applied = statuses.values().filter_map(|s| s.applied_index).max();
    for (id, s) in statuses {
        let mut behind = Vec::new();
        if let (Some(m), Some(c)) = (max_commit, s.commit) {
            if c < m {
                behind.push(format!("commit {c} of {m}"));
            }
        }
        if let (Some(m), Some(a)) = (max_applied, s.applied_index) {
            if a < m {
                behind.push(format!("applied {a} of {m}"));
            }
        }
        if !behind.is_empty() {
            out.push(Finding {
                member: id.clone(),
                kind: "behind",
                detail: format!("{} (never caught up)", behind.join(", ")),
            });
        }
    }
    // Digests per applied index: every member at one index must have the same state.
    let mut by_index: BTreeMap<u64, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for (id, s) in statuses {
        if let (Some(a), Some(d)) = (s.applied_index, s.sm_digest.as_deref()) {
            by_index
                .entry(a)
                .or_default()
                .entry(d)
                .or_default()
                .push(id);
        }
    }
    for (index, digests) in by_index {
        if digests.len() < 2 {
            continue;
        }
        // The most common digest is the reference; the others diverged from it.
        let (reference, _) = digests
            .iter()
            .max_by_key(|(d, m)| (m.len(), std::cmp::Reverse(**d)))
            .map(|(d, m)| (*d, m.len()))
            .unwrap_or(("", 0));
        for (d, members) in &digests {
            if *d == reference {
                continue;
            }
            for m in members {
                out.push(Finding {
                    member: m.to_string(),
                    kind: "diverged",
                    detail: format!(
                        "sm_digest {d} at applied index {index}, others {reference} ({})",
                        digests[reference].join(",")
                    ),
                });
            }
        }
    }
    out
}

/// Polls the members until [`evaluate`] finds nothing but exits or `deadline` passes.
pub async fn check_cluster(cluster: &Cluster, deadline: Duration) -> ClusterCheck {
    let t0 = Instant::now();
    let ids = cluster.ids();
    loop {
        let statuses = cluster.statuses(Duration::from_millis(500)).await;
        let crashed = cluster.crashed();
        let findings = evaluate(&ids, &statuses, &crashed);
        // A member that exited will not come back: stop waiting once only exits are left.
        let done = findings.iter().all(|f| f.kind == "exited") || t0.elapsed() >= deadline;
        if done {
            let partial = (!statuses.is_empty()
                && statuses
                    .values()
                    .all(|s| s.applied_index.is_none() && s.sm_digest.is_none()))
            .then(|| {
                format!(
                    "{} reports no applied index or digest: only exits and answers checked",
                    cluster.target.name()
                )
            });
            return ClusterCheck {
                ran: true,
                findings,
                statuses,
                partial,
                waited_ms: t0.elapsed().as_millis() as u64,
                excused: Vec::new(),
                during_run: None,
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn st(commit: u64, applied: u64, digest: &str) -> MemberStatus {
        MemberStatus {
            role: Some("follower".into()),
            term: Some(3),
            leader: Some("n1".into()),
            commit: Some(commit),
            applied_index: Some(applied),
            sm_digest: Some(digest.into()),
        }
    }

    fn all(v: &[(u64, u64, &str)]) -> BTreeMap<String, MemberStatus> {
        v.iter()
            .enumerate()
            .map(|(i, (c, a, d))| (format!("n{}", i + 1), st(*c, *a, d)))
            .collect()
    }

    #[test]
    fn members_that_agree_give_no_finding() {
        let s = all(&[(9, 9, "abcd0001"), (9, 9, "abcd0001"), (9, 9, "abcd0001")]);
        assert_eq!(evaluate(&ids(3), &s, &[]), vec![]);
    }

    #[test]
    fn a_member_whose_digest_differs_at_the_same_index_diverged() {
        let s = all(&[(9, 9, "abcd0001"), (9, 9, "ffff0002"), (9, 9, "abcd0001")]);
        let f = evaluate(&ids(3), &s, &[]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].member.as_str(), f[0].kind), ("n2", "diverged"));
        assert!(f[0].detail.contains("ffff0002") && f[0].detail.contains("abcd0001"));
    }

    #[test]
    fn a_member_that_never_caught_up_is_behind() {
        let s = all(&[(2007, 2007, "a"), (1068, 1068, "b"), (2007, 2007, "a")]);
        let f = evaluate(&ids(3), &s, &[]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].member.as_str(), f[0].kind), ("n2", "behind"));
        assert!(f[0].detail.contains("applied 1068 of 2007"), "{f:?}");
    }

    #[test]
    fn a_member_that_exited_on_its_own_is_a_failure_and_one_that_is_silent_unreachable() {
        let mut s = all(&[(5, 5, "a"), (5, 5, "a"), (5, 5, "a")]);
        s.remove("n2");
        s.remove("n3");
        let f = evaluate(&ids(3), &s, &[("n3".into(), "exit status: 101".into())]);
        assert_eq!(
            f.iter()
                .map(|f| (f.member.as_str(), f.kind))
                .collect::<Vec<_>>(),
            vec![("n3", "exited"), ("n2", "unreachable")]
        );
        assert!(f[0].detail.contains("101"));
    }

    #[test]
    fn a_target_without_indexes_is_checked_for_answers_only() {
        let s: BTreeMap<String, MemberStatus> = ids(3)
            .into_iter()
            .map(|i| (i, MemberStatus::default()))
            .collect();
        assert_eq!(evaluate(&ids(3), &s, &[]), vec![]);
    }

    #[test]
    fn findings_about_members_that_refused_damaged_data_are_excused_not_counted() {
        let f = |m: &str| Finding {
            member: m.into(),
            kind: "exited",
            detail: "exit status: 1".into(),
        };
        let mut c = ClusterCheck {
            ran: true,
            findings: vec![f("n1"), f("n2")],
            ..Default::default()
        };
        c.excuse(&["n1".to_string()]);
        assert!(!c.ok(), "n2 exited without refusing data: still a failure");
        assert_eq!(c.excused, vec![f("n1")]);
        c.excuse(&["n2".to_string()]);
        assert!(c.ok());
        assert!(
            c.line()
                .contains("not counted: n1, n2 refused damaged data"),
            "{}",
            c.line()
        );
    }

    #[test]
    fn a_member_behind_is_excused_only_when_the_refusals_left_no_majority() {
        let f = |m: &str, kind: &'static str| Finding {
            member: m.into(),
            kind,
            detail: "x".into(),
        };
        let check = || ClusterCheck {
            ran: true,
            findings: vec![f("n1", "exited"), f("n2", "exited"), f("n5", "behind")],
            ..Default::default()
        };
        // Two of five refused: three remain, a majority; being behind is a finding.
        let mut c = check();
        c.excuse(&["n1".to_string(), "n2".to_string()]);
        c.excuse_behind_without_quorum(2, 5);
        assert!(!c.ok(), "{}", c.line());
        assert_eq!(c.findings, vec![f("n5", "behind")]);
        // Three of five refused (seed 2 of the catch table's corrupt,kill row): no leader can
        // be elected, n5 cannot catch up.
        let mut c = check();
        c.findings.insert(2, f("n3", "exited"));
        c.excuse(&["n1".to_string(), "n2".to_string(), "n3".to_string()]);
        c.excuse_behind_without_quorum(3, 5);
        assert!(c.ok(), "{}", c.line());
        let line = c.line();
        assert!(
            line.contains("not counted: n1, n2, n3 refused damaged data")
                && line.contains("n5 behind with no quorum left"),
            "{line}"
        );
        // A member that exited without refusing data still fails the run.
        let mut c = check();
        c.excuse(&["n1".to_string()]);
        c.excuse_behind_without_quorum(1, 2);
        assert_eq!(c.findings, vec![f("n2", "exited")]);
    }
}
