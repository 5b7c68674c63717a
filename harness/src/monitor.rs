//! Invariants watched *during* the run, from every member's `/status`, beyond what the
//! clients see.
//!
//! A task ([`run`]) asks every running member's `/status` every [`POLL`] (all members at
//! once, each with [`STATUS_TIMEOUT`]) from the first operation to the end of the final reads,
//! and feeds every answer to [`Monitor::observe`], the pure core:
//! - **Election Safety** (Raft §5.2, Figure 3): at most one leader per term, ever. A member
//!   reporting `leader` for a term that another member was seen leading is a finding
//!   `two-leaders`. Checked only on targets whose `/status` reads role and term together
//!   ([`crate::sut::Target::status_is_consistent`]): a status that reads them separately
//!   (etcd's) can pair a member's old leadership with its new term.
//! - **State-machine safety**: the state at an applied index is the same on every member, at
//!   any time (the state machine is deterministic). The first `(applied_index, sm_digest)`
//!   reported for each index is kept; a member reporting another digest for that index, even
//!   seconds later, is a finding `diverged`. The end-of-run check ([`crate::endcheck`]) only
//!   compares the members' last statuses, so a divergence that later writes or restarts
//!   paper over (a member that lost client sessions while the others kept them, until every
//!   member restarted from the same snapshot) is seen only here.
//!
//! Findings fail the run exactly like the end-of-run ones: they join
//! [`crate::endcheck::ClusterCheck::findings`] (exit 3 when the history is valid or unknown;
//! a JUnit failure in suites). Memory is bounded: digests of the last [`KEEP_INDEXES`]
//! applied indexes, the leader of the last [`KEEP_TERMS`] terms, the first
//! [`MAX_FINDINGS`] findings.

use crate::cluster::Cluster;
use crate::endcheck::Finding;
use crate::sut::MemberStatus;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often every member is asked.
pub const POLL: Duration = Duration::from_millis(50);
/// How long one `/status` may take.
pub const STATUS_TIMEOUT: Duration = Duration::from_millis(250);
/// Applied indexes whose digest is kept (older ones are forgotten).
pub const KEEP_INDEXES: usize = 200_000;
/// Terms whose leader is kept.
pub const KEEP_TERMS: usize = 100_000;
/// Findings kept (later ones are only counted).
pub const MAX_FINDINGS: usize = 10;

/// What the monitor saw (`results.json` field `cluster_check.during_run`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Rounds of polls.
    pub polls: u64,
    /// Status answers observed.
    pub answers: u64,
    /// Terms seen with a leader (each checked for a second one).
    pub terms_with_leader: u64,
    /// Whether leaders were checked (see [`crate::sut::Target::status_is_consistent`]).
    pub leaders_checked: bool,
    /// Applied indexes reported by two or more members (each a digest comparison).
    pub indexes_compared: u64,
    /// Findings beyond [`MAX_FINDINGS`], not listed.
    pub findings_dropped: u64,
}

impl Summary {
    /// One phrase for the summary line: what was compared.
    pub fn line(&self) -> String {
        let mut parts = vec![format!("{} polls", self.polls)];
        if self.leaders_checked {
            parts.push(format!("{} terms, one leader each", self.terms_with_leader));
        }
        parts.push(format!(
            "{} applied indexes compared across members",
            self.indexes_compared
        ));
        parts.join(", ")
    }
}

/// The pure core: feed it statuses, ask it for findings.
#[derive(Debug, Default)]
pub struct Monitor {
    check_leaders: bool,
    leaders: BTreeMap<u64, String>,
    /// applied index → (digest, first member that reported it, compared with another member).
    digests: BTreeMap<u64, (String, String, bool)>,
    findings: Vec<Finding>,
    summary: Summary,
}

impl Monitor {
    /// A monitor; `check_leaders` enables Election Safety (see the module docs).
    pub fn new(check_leaders: bool) -> Monitor {
        Monitor {
            check_leaders,
            summary: Summary {
                leaders_checked: check_leaders,
                ..Summary::default()
            },
            ..Monitor::default()
        }
    }

    /// Takes one round of answers (member id → status).
    pub fn observe(&mut self, statuses: &BTreeMap<String, MemberStatus>) {
        self.summary.polls += 1;
        for (id, s) in statuses {
            self.summary.answers += 1;
            self.observe_one(id, s);
        }
        while self.digests.len() > KEEP_INDEXES {
            self.digests.pop_first();
        }
        while self.leaders.len() > KEEP_TERMS {
            self.leaders.pop_first();
        }
    }

    fn observe_one(&mut self, id: &str, s: &MemberStatus) {
        if let (true, Some("leader"), Some(term)) = (self.check_leaders, s.role.as_deref(), s.term)
        {
            match self.leaders.get(&term) {
                None => {
                    self.leaders.insert(term, id.to_string());
                    self.summary.terms_with_leader += 1;
                }
                Some(first) if first != id => {
                    let detail = format!(
                        "reported leading term {term}, which {first} was seen leading: two \
                         leaders in one term (Raft's Election Safety)"
                    );
                    self.find(id, "two-leaders", detail);
                }
                Some(_) => {}
            }
        }
        if let (Some(index), Some(digest)) = (s.applied_index, s.sm_digest.as_deref()) {
            // Index 0 is the empty state everywhere; nothing to compare.
            if index == 0 {
                return;
            }
            match self.digests.get_mut(&index) {
                None => {
                    self.digests
                        .insert(index, (digest.to_string(), id.to_string(), false));
                }
                Some((d, first, compared)) => {
                    if first != id && !*compared {
                        *compared = true;
                        self.summary.indexes_compared += 1;
                    }
                    if d != digest {
                        let detail = format!(
                            "during the run: sm_digest {digest} at applied index {index}, \
                             where {first} reported {d}"
                        );
                        self.find(id, "diverged", detail);
                    }
                }
            }
        }
    }

    fn find(&mut self, member: &str, kind: &'static str, detail: String) {
        // One finding per member and kind is enough to fail the run and point at the cause.
        if self
            .findings
            .iter()
            .any(|f| f.member == member && f.kind == kind)
        {
            return;
        }
        if self.findings.len() >= MAX_FINDINGS {
            self.summary.findings_dropped += 1;
            return;
        }
        self.findings.push(Finding {
            member: member.to_string(),
            kind,
            detail,
        });
    }

    /// The findings so far (at most one per member and kind).
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// What was observed.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

/// Polls every running member of `cluster` every [`POLL`] until `stop` turns true; returns
/// the monitor. Each round waits at most [`STATUS_TIMEOUT`] (members are asked concurrently;
/// a paused or killed member simply does not answer).
pub async fn run(cluster: Arc<Cluster>, mut stop: watch::Receiver<bool>) -> Monitor {
    let mut m = Monitor::new(cluster.target.status_is_consistent());
    loop {
        if *stop.borrow() {
            break;
        }
        let next = tokio::time::Instant::now() + POLL;
        let statuses = statuses_at_once(&cluster).await;
        cluster.leader_changes.observe(statuses.values());
        m.observe(&statuses);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => {}
        }
    }
    m
}

/// Every running member's status, asked concurrently.
async fn statuses_at_once(cluster: &Arc<Cluster>) -> BTreeMap<String, MemberStatus> {
    let mut tasks = tokio::task::JoinSet::new();
    for spec in cluster.specs.clone() {
        if cluster.state(&spec.id) != Some(crate::cluster::MemberState::Running) {
            continue;
        }
        let c = cluster.clone();
        tasks.spawn(async move {
            let r = c.target.status(&spec, STATUS_TIMEOUT).await;
            (spec.id, r)
        });
    }
    let mut out = BTreeMap::new();
    // Bounded: every status request gives up after STATUS_TIMEOUT; the backstop covers a
    // target whose client ignores its timeout.
    let backstop = tokio::time::sleep(STATUS_TIMEOUT * 4);
    tokio::pin!(backstop);
    loop {
        tokio::select! {
            r = tasks.join_next() => match r {
                None => break,
                Some(Ok((id, Ok(s)))) => {
                    out.insert(id, s);
                }
                Some(_) => {}
            },
            _ = &mut backstop => {
                tasks.abort_all();
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(role: &str, term: u64, applied: u64, digest: &str) -> MemberStatus {
        MemberStatus {
            role: Some(role.into()),
            term: Some(term),
            leader: None,
            commit: Some(applied),
            applied_index: Some(applied),
            sm_digest: Some(digest.into()),
        }
    }

    fn round(v: &[(&str, MemberStatus)]) -> BTreeMap<String, MemberStatus> {
        v.iter()
            .map(|(id, s)| (id.to_string(), s.clone()))
            .collect()
    }

    #[test]
    fn one_leader_per_term_over_many_rounds_is_no_finding() {
        let mut m = Monitor::new(true);
        m.observe(&round(&[
            ("n1", st("leader", 3, 5, "a")),
            ("n2", st("follower", 3, 5, "a")),
        ]));
        m.observe(&round(&[("n1", st("leader", 3, 6, "b"))]));
        m.observe(&round(&[("n2", st("leader", 4, 6, "b"))]));
        assert_eq!(m.findings(), &[]);
        assert_eq!(m.summary().terms_with_leader, 2);
        // Index 5 (n1, n2 in one round) and index 6 (n1, then n2 later).
        assert_eq!(m.summary().indexes_compared, 2);
    }

    #[test]
    fn two_members_leading_one_term_even_in_different_rounds_is_two_leaders() {
        let mut m = Monitor::new(true);
        m.observe(&round(&[("n1", st("leader", 7, 5, "a"))]));
        m.observe(&round(&[("n3", st("leader", 8, 6, "b"))]));
        m.observe(&round(&[("n2", st("leader", 7, 6, "b"))]));
        let f = m.findings();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].member.as_str(), f[0].kind), ("n2", "two-leaders"));
        assert!(
            f[0].detail.contains("term 7") && f[0].detail.contains("n1"),
            "{f:?}"
        );
    }

    #[test]
    fn leaders_are_not_checked_when_the_target_status_is_not_consistent() {
        let mut m = Monitor::new(false);
        m.observe(&round(&[
            ("n1", st("leader", 7, 5, "a")),
            ("n2", st("leader", 7, 5, "a")),
        ]));
        assert_eq!(m.findings(), &[]);
        assert!(!m.summary().leaders_checked);
    }

    #[test]
    fn another_digest_at_an_index_seen_earlier_on_another_member_is_diverged() {
        let mut m = Monitor::new(true);
        m.observe(&round(&[("n1", st("follower", 2, 40, "aaaa0001"))]));
        m.observe(&round(&[("n1", st("follower", 2, 41, "aaaa0002"))]));
        // n2 reaches index 40 two rounds later, with another state.
        m.observe(&round(&[("n2", st("follower", 2, 40, "ffff0009"))]));
        let f = m.findings();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].member.as_str(), f[0].kind), ("n2", "diverged"));
        assert!(
            f[0].detail.contains("ffff0009")
                && f[0].detail.contains("aaaa0001")
                && f[0].detail.contains("index 40"),
            "{f:?}"
        );
    }

    #[test]
    fn equal_digests_at_equal_indexes_and_index_zero_are_no_finding() {
        let mut m = Monitor::new(true);
        for _ in 0..3 {
            m.observe(&round(&[
                ("n1", st("follower", 2, 0, "00000000")),
                ("n2", st("follower", 2, 0, "11111111")),
                ("n3", st("follower", 2, 9, "abcd")),
                ("n4", st("follower", 2, 9, "abcd")),
            ]));
        }
        assert_eq!(m.findings(), &[]);
        assert_eq!(m.summary().indexes_compared, 1);
        assert_eq!(m.summary().answers, 12);
    }

    #[test]
    fn findings_are_one_per_member_and_kind_and_bounded() {
        let mut m = Monitor::new(true);
        m.observe(&round(&[("n1", st("follower", 1, 1, "a"))]));
        for i in 0..3 {
            m.observe(&round(&[("n2", st("follower", 1, 1, &format!("b{i}")))]));
        }
        assert_eq!(m.findings().len(), 1);
        for i in 0..(MAX_FINDINGS as u64 + 5) {
            m.observe(&round(&[(
                format!("x{i}").as_str(),
                st("follower", 1, 1, "z"),
            )]));
        }
        assert_eq!(m.findings().len(), MAX_FINDINGS);
        assert_eq!(m.summary().findings_dropped, 6);
    }

    #[test]
    fn memory_is_bounded_to_the_last_indexes() {
        let mut m = Monitor::new(true);
        for i in 1..=(KEEP_INDEXES as u64 + 10) {
            let mut s = BTreeMap::new();
            s.insert("n1".to_string(), st("follower", 1, i, "a"));
            m.observe(&s);
        }
        assert_eq!(m.digests.len(), KEEP_INDEXES);
        assert_eq!(*m.digests.keys().next().unwrap(), 11);
    }
}
