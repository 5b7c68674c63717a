//! The Raft protocol itself, behind [`super::RawNode`]. Section numbers cite the Raft paper
//! (Ongaro & Ousterhout 2014) and, for §6.4 and §9.6, Ongaro's thesis.
//!
//! # Design decisions
//! - Terms: any message with a higher term makes the node a follower of that term (§5.1),
//!   except a pre-vote request and a granted pre-vote answer (§9.6), which do not change terms.
//!   A pre-vote request arriving while the node has heard from a leader within the minimum
//!   election timeout is ignored (§9.6), and so, with check-quorum, is a vote request (the
//!   leader lease), so that a node returning from a partition cannot depose a healthy leader.
//! - A message with a lower term is answered with the current term (so a stale leader or
//!   candidate learns it is stale) and otherwise ignored.
//! - Heartbeats are empty Appends at the follower's `match_index`, which the follower always
//!   accepts; they carry `commit` (capped at that index) and the latest ReadIndex sequence
//!   number in `read_ctx`. A refusal carries in `match_index` the `prev_log_index` it refuses,
//!   so the leader can tell stale refusals from fresh ones.
//! - Appends for new entries are sent lazily when the caller takes the `Ready`, so that many
//!   proposals between two `ready()` calls travel in one message (group commit).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::Rng;

use super::log::RaftLog;
use super::progress::{Progress, ProgressState};
use super::{
    Config, Entry, HardState, Index, Message, MessageBody, NodeId, PeerStatus, Persisted,
    ProposeError, ReadState, Ready, Role, Snapshot, Status, Term,
};

/// A ReadIndex request waiting for a majority to confirm this node's leadership.
#[derive(Clone, Debug, Hash)]
struct PendingRead {
    ctx: u64,
    /// The commit index when the read was accepted (§6.4 step 1).
    index: Index,
    /// Reads are numbered; an Append response echoing `read_ctx >= seq` confirms it.
    seq: u64,
    acks: BTreeSet<NodeId>,
}

/// Follower: a chunked snapshot being received.
#[derive(Clone, Debug, Hash)]
struct IncomingSnapshot {
    index: Index,
    term: Term,
    total: u64,
    data: Vec<u8>,
}

#[derive(Clone, Debug)]
pub(crate) struct Raft {
    cfg: Config,
    pub term: Term,
    pub vote: Option<NodeId>,
    pub leader: Option<NodeId>,
    pub role: Role,
    pub log: RaftLog,
    /// Ticks since the last reset (heard from the leader, granted a vote, role change).
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    /// Drawn in `[election_ticks_min, election_ticks_max)` at every reset.
    randomized_timeout: u32,
    /// Votes received in the current (pre-)campaign, own included.
    votes: BTreeMap<NodeId, bool>,
    /// Leader only: each follower's progress.
    progress: BTreeMap<NodeId, Progress>,
    msgs: Vec<Message>,
    read_states: Vec<ReadState>,
    pending_reads: VecDeque<PendingRead>,
    /// Reads that arrived before this leader committed an entry of its term.
    queued_reads: Vec<u64>,
    read_seq: u64,
    /// A heartbeat round for new reads is due at the next `ready()`.
    read_round_due: bool,
    /// The leader's commit advanced: followers should hear about it at the next `ready()`.
    commit_round_due: bool,
    /// The hard state handed out last.
    prev_hard_state: HardState,
    /// Follower: the chunks received so far of a snapshot sent in chunks.
    incoming_snapshot: Option<IncomingSnapshot>,
    rng: StdRng,
}

impl std::hash::Hash for Raft {
    /// The protocol state, not the RNG nor the configuration (for model checking).
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.term.hash(h);
        self.vote.hash(h);
        self.leader.hash(h);
        self.role.hash(h);
        self.log.hash(h);
        self.election_elapsed.hash(h);
        self.heartbeat_elapsed.hash(h);
        self.randomized_timeout.hash(h);
        self.votes.hash(h);
        self.progress.hash(h);
        self.msgs.hash(h);
        self.pending_reads.hash(h);
        self.queued_reads.hash(h);
        self.read_seq.hash(h);
        self.prev_hard_state.hash(h);
        self.incoming_snapshot.hash(h);
    }
}

impl Raft {
    pub fn new(mut cfg: Config, persisted: Persisted, rng: StdRng) -> Self {
        // Tolerate the node itself or duplicates in the peer list: they would skew quorums.
        let me = cfg.id.clone();
        cfg.peers.retain(|p| *p != me);
        cfg.peers.sort();
        cfg.peers.dedup();
        let hs = persisted.hard_state;
        let log = RaftLog::restore(persisted.snapshot, persisted.entries, hs.commit);
        let prev_hard_state = HardState {
            term: hs.term,
            vote: hs.vote.clone(),
            commit: log.commit,
        };
        let mut r = Raft {
            term: hs.term,
            vote: hs.vote,
            leader: None,
            role: Role::Follower,
            log,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            msgs: Vec::new(),
            read_states: Vec::new(),
            pending_reads: VecDeque::new(),
            queued_reads: Vec::new(),
            read_seq: 0,
            read_round_due: false,
            commit_round_due: false,
            prev_hard_state,
            incoming_snapshot: None,
            rng,
            cfg,
        };
        r.reset_timers();
        if r.cfg.peers.is_empty() {
            r.campaign();
        }
        r
    }

    fn quorum(&self) -> usize {
        let members = self.cfg.peers.len() + 1;
        members / 2 + 1
    }

    fn reset_timers(&mut self) {
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let (lo, hi) = (
            self.cfg.election_ticks_min.max(1),
            self.cfg.election_ticks_max,
        );
        self.randomized_timeout = if hi > lo {
            self.rng.gen_range(lo..hi)
        } else {
            lo
        };
    }

    fn send(&mut self, to: &NodeId, term: Term, body: MessageBody) {
        self.msgs.push(Message {
            from: self.cfg.id.clone(),
            to: to.clone(),
            term,
            body,
        });
    }

    // ---- roles -------------------------------------------------------------------------

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.reset_role_state();
        self.reset_timers();
    }

    /// Forgets what only a candidate or leader keeps. Pending reads are dropped: the
    /// caller never sees them answered and times them out.
    fn reset_role_state(&mut self) {
        self.votes.clear();
        self.progress.clear();
        self.pending_reads.clear();
        self.queued_reads.clear();
        self.read_round_due = false;
        self.commit_round_due = false;
    }

    fn campaign(&mut self) {
        if self.cfg.pre_vote {
            self.role = Role::PreCandidate;
            self.leader = None;
            self.reset_role_state();
            self.reset_timers();
            self.votes.insert(self.cfg.id.clone(), true);
            if self.votes_won() {
                self.campaign_for_real();
                return;
            }
            self.request_votes(true, self.term + 1);
        } else {
            self.campaign_for_real();
        }
    }

    fn campaign_for_real(&mut self) {
        self.term += 1;
        self.vote = Some(self.cfg.id.clone());
        self.role = Role::Candidate;
        self.leader = None;
        self.reset_role_state();
        self.reset_timers();
        self.votes.insert(self.cfg.id.clone(), true);
        if self.votes_won() {
            self.become_leader();
            return;
        }
        self.request_votes(false, self.term);
    }

    fn request_votes(&mut self, pre_vote: bool, term: Term) {
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for p in self.cfg.peers.clone() {
            self.send(
                &p,
                term,
                MessageBody::Vote {
                    pre_vote,
                    last_log_index,
                    last_log_term,
                },
            );
        }
    }

    fn votes_won(&self) -> bool {
        self.votes.values().filter(|g| **g).count() >= self.quorum()
    }

    fn votes_lost(&self) -> bool {
        self.votes.values().filter(|g| !**g).count() >= self.quorum()
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id.clone());
        self.reset_role_state();
        self.reset_timers();
        let next = self.log.last_index() + 1;
        for p in &self.cfg.peers {
            self.progress.insert(p.clone(), Progress::new(next));
        }
        // Raft §8: a no-op of the new term lets the leader commit (and so learn the commit
        // index, and serve reads) without waiting for a client write.
        self.append_own(Vec::new());
        // Announce leadership at once (the no-op goes out in the next `ready()`).
        self.maybe_commit();
    }

    fn append_own(&mut self, data: Vec<u8>) -> (Index, Term) {
        let index = self.log.last_index() + 1;
        self.log.append(Entry {
            term: self.term,
            index,
            data,
        });
        (index, self.term)
    }

    // ---- inputs ------------------------------------------------------------------------

    pub fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.randomized_timeout {
                self.campaign();
            }
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks_min.max(1) {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let active = 1 + self.progress.values().filter(|p| p.recent_active).count();
                if active < self.quorum() {
                    // Check-quorum (§6.2): a leader cut off from a majority steps down, so
                    // that its clients go and find the real leader.
                    let term = self.term;
                    self.become_follower(term, None);
                    return;
                }
            }
            for p in self.progress.values_mut() {
                p.recent_active = false;
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks.max(1) {
            self.heartbeat_elapsed = 0;
            self.heartbeat_round();
        }
    }

    /// One heartbeat to every follower; also where lost messages are detected.
    fn heartbeat_round(&mut self) {
        for p in self.cfg.peers.clone() {
            let Some(pr) = self.progress.get_mut(&p) else {
                continue;
            };
            match pr.state {
                ProgressState::Probe => {
                    if pr.probe_sent {
                        // The probe or its answer may have been lost (or the follower is
                        // down): ask again with an empty probe; entries follow its answer.
                        let prev = pr.next_index - 1;
                        if let Some(prev_term) = self.log.term(prev) {
                            self.send_empty_append(&p, prev, prev_term);
                            continue;
                        }
                        pr.probe_sent = false;
                    }
                    self.send_append(&p, true);
                    continue;
                }
                ProgressState::Replicate => {
                    if !pr.inflight.is_empty() && pr.match_index == pr.match_at_heartbeat {
                        pr.stall += 1;
                    } else {
                        pr.stall = 0;
                    }
                }
                ProgressState::Snapshot => pr.stall += 1,
            }
            pr.match_at_heartbeat = pr.match_index;
            if pr.state == ProgressState::Snapshot
                && pr.sending.is_some()
                && (2..10).contains(&pr.stall)
            {
                // A chunk or its acknowledgement was lost: send the last chunk again (the
                // follower answers with the byte it wants, from 0 after a restart).
                let off = pr.chunk_offset;
                self.send_snapshot_chunk(&p, off);
                continue;
            }
            // A snapshot may be large and slow to transfer: give it longer before resending.
            let limit = if pr.state == ProgressState::Snapshot {
                10
            } else {
                2
            };
            if pr.stall >= limit {
                // Nothing acknowledged for two heartbeat periods: messages were lost.
                let m = pr.match_index;
                pr.become_probe(m + 1);
                self.send_append(&p, true);
            } else {
                self.send_heartbeat(&p);
            }
        }
    }

    pub fn propose(&mut self, data: Vec<u8>) -> Result<(Index, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader.clone(),
            });
        }
        let r = self.append_own(data);
        self.maybe_commit();
        Ok(r)
    }

    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader.clone(),
            });
        }
        if !self.committed_in_term() {
            self.queued_reads.push(ctx);
            return Ok(());
        }
        self.start_read(ctx);
        Ok(())
    }

    fn committed_in_term(&self) -> bool {
        self.log.term(self.log.commit) == Some(self.term)
    }

    fn start_read(&mut self, ctx: u64) {
        if self.cfg.peers.is_empty() {
            // A single node is a majority by itself.
            self.read_states.push(ReadState {
                ctx,
                index: self.log.commit,
            });
            return;
        }
        self.read_seq += 1;
        self.pending_reads.push_back(PendingRead {
            ctx,
            index: self.log.commit,
            seq: self.read_seq,
            acks: BTreeSet::new(),
        });
        self.read_round_due = true;
    }

    pub fn step(&mut self, m: Message) {
        if m.to != self.cfg.id || m.from == self.cfg.id || !self.cfg.peers.contains(&m.from) {
            return;
        }
        if !well_formed(&m) {
            return;
        }
        if m.term > self.term {
            let in_lease =
                self.leader.is_some() && self.election_elapsed < self.cfg.election_ticks_min;
            let lease_applies = match &m.body {
                // Thesis §9.6: no pre-vote while a leader was heard within the timeout.
                MessageBody::Vote { pre_vote: true, .. } => true,
                // With check-quorum also no real vote (the leader lease, thesis §6.4.1).
                MessageBody::Vote {
                    pre_vote: false, ..
                } => self.cfg.check_quorum,
                _ => false,
            };
            if in_lease && lease_applies {
                return;
            }
            match &m.body {
                MessageBody::Vote { pre_vote: true, .. } => {}
                MessageBody::VoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                MessageBody::Append { .. } | MessageBody::InstallSnapshot { .. } => {
                    self.become_follower(m.term, Some(m.from.clone()))
                }
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            let term = self.term;
            match &m.body {
                MessageBody::Append { .. } => self.send(
                    &m.from,
                    term,
                    MessageBody::AppendResponse {
                        success: false,
                        match_index: 0,
                        conflict_index: 0,
                        conflict_term: 0,
                        read_ctx: 0,
                    },
                ),
                MessageBody::InstallSnapshot { .. } => self.send(
                    &m.from,
                    term,
                    MessageBody::InstallSnapshotResponse {
                        match_index: 0,
                        snapshot_index: 0,
                        next_offset: 0,
                    },
                ),
                MessageBody::Vote { pre_vote, .. } => {
                    let pre_vote = *pre_vote;
                    self.send(
                        &m.from,
                        term,
                        MessageBody::VoteResponse {
                            pre_vote,
                            granted: false,
                        },
                    )
                }
                _ => {}
            }
            return;
        }

        let from = m.from;
        match m.body {
            MessageBody::Vote {
                pre_vote,
                last_log_index,
                last_log_term,
            } => self.handle_vote(from, m.term, pre_vote, last_log_index, last_log_term),
            MessageBody::VoteResponse { pre_vote, granted } => {
                let counts = if pre_vote {
                    self.role == Role::PreCandidate
                        && ((granted && m.term == self.term + 1)
                            || (!granted && m.term == self.term))
                } else {
                    self.role == Role::Candidate && m.term == self.term
                };
                if !counts {
                    return;
                }
                self.votes.insert(from, granted);
                if self.votes_won() {
                    if pre_vote {
                        self.campaign_for_real();
                    } else {
                        self.become_leader();
                    }
                } else if self.votes_lost() {
                    let term = self.term;
                    self.become_follower(term, None);
                }
            }
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
                read_ctx,
            } => {
                if self.role == Role::Leader {
                    return; // two leaders of one term cannot exist (§5.2)
                }
                if self.role != Role::Follower {
                    let term = self.term;
                    self.become_follower(term, Some(from.clone()));
                }
                self.leader = Some(from.clone());
                self.election_elapsed = 0;
                self.handle_append(
                    from,
                    prev_log_index,
                    prev_log_term,
                    entries,
                    commit,
                    read_ctx,
                );
            }
            MessageBody::InstallSnapshot {
                snapshot,
                offset,
                total,
            } => {
                if self.role == Role::Leader {
                    return;
                }
                if self.role != Role::Follower {
                    let term = self.term;
                    self.become_follower(term, Some(from.clone()));
                }
                self.leader = Some(from.clone());
                self.election_elapsed = 0;
                if total == 0 {
                    self.incoming_snapshot = None;
                    self.handle_snapshot(from, snapshot);
                } else {
                    self.handle_snapshot_chunk(from, snapshot, offset, total);
                }
            }
            MessageBody::AppendResponse {
                success,
                match_index,
                conflict_index,
                conflict_term,
                read_ctx,
            } => {
                if self.role == Role::Leader {
                    self.handle_append_response(
                        from,
                        success,
                        match_index,
                        conflict_index,
                        conflict_term,
                        read_ctx,
                    );
                }
            }
            MessageBody::InstallSnapshotResponse {
                match_index,
                snapshot_index,
                next_offset,
            } => {
                if self.role == Role::Leader {
                    self.handle_snapshot_response(from, match_index, snapshot_index, next_offset);
                }
            }
        }
    }

    // ---- elections ---------------------------------------------------------------------

    fn handle_vote(&mut self, from: NodeId, term: Term, pre_vote: bool, lli: Index, llt: Term) {
        // §5.2: one vote per term; a follower that knows this term's leader votes for no one
        // else; a pre-vote for a later term binds nothing.
        let can_vote = self.vote.as_ref() == Some(&from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        // §5.4.1: the candidate's log must be at least as up to date as ours.
        let up_to_date = self.cfg.bugs.vote_any_log
            || llt > self.log.last_term()
            || (llt == self.log.last_term() && lli >= self.log.last_index());
        if can_vote && up_to_date {
            self.send(
                &from,
                term,
                MessageBody::VoteResponse {
                    pre_vote,
                    granted: true,
                },
            );
            if !pre_vote {
                self.election_elapsed = 0;
                self.vote = Some(from);
            }
        } else {
            let t = self.term;
            self.send(
                &from,
                t,
                MessageBody::VoteResponse {
                    pre_vote,
                    granted: false,
                },
            );
        }
    }

    // ---- follower side of replication --------------------------------------------------

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_log_index: Index,
        prev_log_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        read_ctx: u64,
    ) {
        let term = self.term;
        let reply_ok = |r: &mut Raft, match_index: Index| {
            r.send(
                &from,
                term,
                MessageBody::AppendResponse {
                    success: true,
                    match_index,
                    conflict_index: 0,
                    conflict_term: 0,
                    read_ctx,
                },
            )
        };
        if self.cfg.bugs.no_truncate_check {
            return self.handle_append_buggy(
                from,
                prev_log_index,
                prev_log_term,
                entries,
                commit,
                read_ctx,
            );
        }
        let (mut prev, mut prev_term, mut entries) = (prev_log_index, prev_log_term, entries);
        // Entries at or below our commit index are already here (Leader Completeness): they
        // must agree, and are skipped; in particular they are never truncated.
        if prev < self.log.commit {
            let c = self.log.commit;
            let skip = entries.iter().take_while(|e| e.index <= c).count();
            for e in &entries[..skip] {
                if let Some(t) = self.log.term(e.index) {
                    if t != e.term {
                        panic!(
                            "raft: node {} term {}: leader {} would overwrite committed entry {} \
                             (term {}) with one of term {}",
                            self.cfg.id, self.term, from, e.index, t, e.term
                        );
                    }
                }
            }
            entries.drain(..skip);
            prev = c;
            prev_term = self
                .log
                .term(c)
                .expect("the commit index is within the log");
        }
        if prev > self.log.last_index() {
            let last = self.log.last_index();
            return self.send(
                &from,
                term,
                MessageBody::AppendResponse {
                    success: false,
                    match_index: prev_log_index,
                    conflict_index: last + 1,
                    conflict_term: 0,
                    read_ctx,
                },
            );
        }
        let our = self
            .log
            .term(prev)
            .expect("prev is between commit and last index");
        if our != prev_term {
            if prev == self.log.commit {
                panic!(
                    "raft: node {} term {}: leader {} disagrees on committed entry {} (ours term \
                     {}, its term {})",
                    self.cfg.id, self.term, from, prev, our, prev_term
                );
            }
            let ci = self.log.first_index_of_term_run(prev, self.log.commit + 1);
            return self.send(
                &from,
                term,
                MessageBody::AppendResponse {
                    success: false,
                    match_index: prev_log_index,
                    conflict_index: ci,
                    conflict_term: our,
                    read_ctx,
                },
            );
        }
        let last_new = prev + entries.len() as u64;
        // §5.3: skip what we have, truncate at the first conflict, append the rest. An
        // Append that is merely older than what we have (no conflict) truncates nothing.
        let mut rest = entries.into_iter().peekable();
        while let Some(e) = rest.peek() {
            match self.log.term(e.index) {
                Some(t) if t == e.term => {
                    rest.next();
                }
                Some(_) => {
                    let i = e.index;
                    debug_assert!(i > self.log.commit);
                    self.log.truncate_from(i);
                    break;
                }
                None => break,
            }
        }
        for e in rest {
            self.log.append(e);
        }
        self.commit_to(commit.min(last_new));
        reply_ok(self, last_new);
    }

    /// `no-truncate-check`: the log is cut after the Append's last entry whether or not
    /// anything conflicts, committed entries included.
    fn handle_append_buggy(
        &mut self,
        from: NodeId,
        prev: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        read_ctx: u64,
    ) {
        let term = self.term;
        let ok = prev >= self.log.snapshot.index && self.log.term(prev) == Some(prev_term);
        if !ok {
            let last = self.log.last_index();
            let (ci, ct) = if prev > last || prev < self.log.snapshot.index {
                (last.min(prev) + 1, 0)
            } else {
                let t = self.log.term(prev).unwrap_or(0);
                (
                    self.log
                        .first_index_of_term_run(prev, self.log.first_index()),
                    t,
                )
            };
            return self.send(
                &from,
                term,
                MessageBody::AppendResponse {
                    success: false,
                    match_index: prev,
                    conflict_index: ci,
                    conflict_term: ct,
                    read_ctx,
                },
            );
        }
        let last_new = prev + entries.len() as u64;
        if !entries.is_empty() {
            self.log.truncate_from(prev + 1);
            for e in entries {
                self.log.append(e);
            }
        }
        self.commit_to(commit.min(last_new));
        self.send(
            &from,
            term,
            MessageBody::AppendResponse {
                success: true,
                match_index: last_new,
                conflict_index: 0,
                conflict_term: 0,
                read_ctx,
            },
        );
    }

    fn commit_to(&mut self, index: Index) {
        if index > self.log.commit {
            self.log.commit = index;
        }
    }

    fn handle_snapshot(&mut self, from: NodeId, snap: Snapshot) {
        let term = self.term;
        let match_index = if snap.index <= self.log.commit {
            self.log.commit
        } else if self.log.term(snap.index) == Some(snap.term) {
            // We have the entries: just learn that they are committed.
            self.commit_to(snap.index);
            snap.index
        } else {
            let i = snap.index;
            self.log.install(snap);
            i
        };
        self.send(
            &from,
            term,
            MessageBody::InstallSnapshotResponse {
                match_index,
                snapshot_index: 0,
                next_offset: 0,
            },
        );
    }

    /// One chunk of a snapshot: collect it, install after the last one, acknowledge with
    /// the next byte wanted.
    fn handle_snapshot_chunk(&mut self, from: NodeId, chunk: Snapshot, offset: u64, total: u64) {
        let (index, term) = (chunk.index, chunk.term);
        if index <= self.log.commit || self.log.term(index) == Some(term) {
            // Nothing to install (committed already, or we hold its last entry): answer
            // with the match at once.
            self.incoming_snapshot = None;
            let meta = Snapshot {
                index,
                term,
                data: Vec::new(),
            };
            self.handle_snapshot(from, meta);
            return;
        }
        let same = |s: &IncomingSnapshot| s.index == index && s.term == term && s.total == total;
        if offset == 0 {
            self.incoming_snapshot = Some(IncomingSnapshot {
                index,
                term,
                total,
                data: chunk.data,
            });
        } else if let Some(s) = &mut self.incoming_snapshot {
            if same(s) && s.data.len() as u64 == offset {
                s.data.extend_from_slice(&chunk.data);
            }
        }
        let have = match &self.incoming_snapshot {
            Some(s) if same(s) => s.data.len() as u64,
            _ => 0,
        };
        if have >= total {
            // Checked just above that it is this snapshot's buffer.
            let s = self
                .incoming_snapshot
                .take()
                .expect("buffer of this snapshot");
            self.handle_snapshot(
                from,
                Snapshot {
                    index,
                    term,
                    data: s.data,
                },
            );
            return;
        }
        let t = self.term;
        self.send(
            &from,
            t,
            MessageBody::InstallSnapshotResponse {
                match_index: 0,
                snapshot_index: index,
                next_offset: have,
            },
        );
    }

    /// Leader: sends `to` the chunk that starts at `offset` of the snapshot it is being sent
    /// (the whole snapshot in one message, the form before chunking, when it fits).
    fn send_snapshot_chunk(&mut self, to: &NodeId, offset: u64) {
        let max = self.cfg.max_snapshot_chunk.max(1);
        let term = self.term;
        let Some(pr) = self.progress.get_mut(to) else {
            return;
        };
        let snap = match &pr.sending {
            Some(s) => s,
            None => {
                if self.log.snapshot.data.len() as u64 <= max {
                    let snapshot = self.log.snapshot.clone();
                    self.send(
                        to,
                        term,
                        MessageBody::InstallSnapshot {
                            snapshot,
                            offset: 0,
                            total: 0,
                        },
                    );
                    return;
                }
                pr.sending.insert(self.log.snapshot.clone())
            }
        };
        let total = snap.data.len() as u64;
        let lo = offset.min(total);
        let hi = (lo + max).min(total);
        let chunk = Snapshot {
            index: snap.index,
            term: snap.term,
            data: snap.data[lo as usize..hi as usize].to_vec(),
        };
        pr.chunk_offset = lo;
        self.send(
            to,
            term,
            MessageBody::InstallSnapshot {
                snapshot: chunk,
                offset: lo,
                total,
            },
        );
    }

    // ---- leader side of replication ----------------------------------------------------

    fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        match_index: Index,
        conflict_index: Index,
        conflict_term: Term,
        read_ctx: u64,
    ) {
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if success {
            let news = pr.update_match(match_index.min(last));
            if pr.state == ProgressState::Probe && pr.match_index + 1 >= pr.next_index {
                pr.become_replicate();
            } else if pr.state == ProgressState::Probe && news {
                pr.probe_sent = false;
            }
            if pr.state == ProgressState::Snapshot && pr.match_index >= pr.pending_snapshot {
                let m = pr.match_index;
                pr.become_probe(m + 1);
            }
            if news {
                self.maybe_commit();
            }
        } else {
            let rejected = match_index;
            let stale = match pr.state {
                ProgressState::Replicate => rejected <= pr.match_index,
                ProgressState::Probe => rejected + 1 != pr.next_index || rejected <= pr.match_index,
                ProgressState::Snapshot => true,
            };
            if !stale {
                let next = if conflict_term == 0 {
                    conflict_index
                } else {
                    // Skip back over the follower's whole conflicting term at once: if we have
                    // entries of that term, resume after our last one, else before its first.
                    let mut i = rejected.min(last);
                    let floor = self.log.snapshot.index;
                    while i > floor && self.log.term(i).is_some_and(|t| t > conflict_term) {
                        i -= 1;
                    }
                    if self.log.term(i) == Some(conflict_term) {
                        i + 1
                    } else {
                        conflict_index
                    }
                };
                let pr = self.progress.get_mut(&from).expect("looked up above");
                let next = next.min(rejected).max(pr.match_index + 1);
                pr.become_probe(next);
            }
        }
        self.ack_reads(&from, read_ctx);
    }

    fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        match_index: Index,
        snapshot_index: Index,
        next_offset: u64,
    ) {
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        let news = pr.update_match(match_index.min(last));
        if pr.state == ProgressState::Snapshot && pr.match_index >= pr.pending_snapshot {
            let m = pr.match_index;
            pr.become_probe(m + 1);
        } else if pr.state == ProgressState::Snapshot
            && snapshot_index > 0
            && pr
                .sending
                .as_ref()
                .is_some_and(|s| s.index == snapshot_index)
        {
            // A chunk acknowledged: the transfer is alive; send the chunk asked for.
            pr.stall = 0;
            self.send_snapshot_chunk(&from, next_offset);
        }
        if news {
            self.maybe_commit();
        }
    }

    /// §5.3/§5.4.2: the highest index stored on a majority commits if it is of this term.
    fn maybe_commit(&mut self) {
        let mut matches: Vec<Index> = self.progress.values().map(|p| p.match_index).collect();
        matches.push(self.log.last_index());
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let q = matches[self.quorum() - 1];
        if q <= self.log.commit {
            return;
        }
        if self.log.term(q) != Some(self.term) && !self.cfg.bugs.commit_old_term {
            return;
        }
        self.log.commit = q;
        self.commit_round_due = true;
        if self.committed_in_term() && !self.queued_reads.is_empty() {
            for ctx in std::mem::take(&mut self.queued_reads) {
                self.start_read(ctx);
            }
        }
    }

    fn ack_reads(&mut self, from: &NodeId, read_ctx: u64) {
        if read_ctx == 0 || self.pending_reads.is_empty() {
            return;
        }
        for r in self.pending_reads.iter_mut() {
            if r.seq <= read_ctx {
                r.acks.insert(from.clone());
            }
        }
        let q = self.quorum();
        // Later reads' acknowledgements are a subset of earlier ones': serve in order.
        while let Some(r) = self.pending_reads.front() {
            if r.acks.len() + 1 < q {
                break;
            }
            let r = self.pending_reads.pop_front().expect("front exists");
            self.read_states.push(ReadState {
                ctx: r.ctx,
                index: r.index,
            });
        }
    }

    /// Sends new entries (or, with `allow_empty`, an empty probe) to `to` if its progress
    /// allows; true if something was sent and more could follow.
    fn send_append(&mut self, to: &NodeId, allow_empty: bool) -> bool {
        let max_inflight = self.cfg.max_inflight.max(1);
        let max_inflight_bytes = self.cfg.max_inflight_bytes.max(1);
        let max_entries = self.cfg.max_entries_per_msg.max(1) as u64;
        let max_bytes = self.cfg.max_bytes_per_msg.max(1);
        let last = self.log.last_index();
        let Some(pr) = self.progress.get(to) else {
            return false;
        };
        if pr.is_paused(max_inflight, max_inflight_bytes) {
            return false;
        }
        let next = pr.next_index;
        if next > last && !(allow_empty && pr.state == ProgressState::Probe) {
            return false;
        }
        let prev = next - 1;
        let Some(prev_term) = self.log.term(prev) else {
            // Compacted away: only a snapshot can catch this follower up.
            let index = self.log.snapshot.index;
            self.progress
                .get_mut(to)
                .expect("looked up above")
                .become_snapshot(index);
            self.send_snapshot_chunk(to, 0);
            return false;
        };
        let hi = last.min(next + max_entries - 1);
        // Cut by bytes: at least one entry, then as many as fit under the cap.
        let candidates = self.log.slice(next, hi);
        let mut bytes = 0u64;
        let mut take = 0usize;
        for e in candidates {
            let b = e.data.len() as u64;
            if take > 0 && bytes + b > max_bytes {
                break;
            }
            bytes += b;
            take += 1;
        }
        let entries = candidates[..take].to_vec();
        let n = entries.len() as u64;
        let hi = if n == 0 { hi } else { next + n - 1 };
        let pr = self.progress.get_mut(to).expect("looked up above");
        match pr.state {
            ProgressState::Probe => pr.probe_sent = true,
            ProgressState::Replicate => {
                pr.next_index = hi + 1;
                pr.push_inflight(hi, bytes);
            }
            ProgressState::Snapshot => unreachable!("paused"),
        }
        let more = pr.state == ProgressState::Replicate && n > 0;
        let commit = self.log.commit.min(prev + n);
        let (term, read_ctx) = (self.term, self.read_seq);
        self.send(
            to,
            term,
            MessageBody::Append {
                prev_log_index: prev,
                prev_log_term: prev_term,
                entries,
                commit,
                read_ctx,
            },
        );
        more
    }

    /// An empty Append at the follower's match index: always accepted by a live follower;
    /// carries the commit index and the read sequence.
    fn send_heartbeat(&mut self, to: &NodeId) {
        let Some(pr) = self.progress.get(to) else {
            return;
        };
        let m = pr.match_index;
        let (prev, prev_term) = match self.log.term(m) {
            Some(t) => (m, t),
            None => (self.log.snapshot.index, self.log.snapshot.term),
        };
        self.send_empty_append(to, prev, prev_term);
    }

    fn send_empty_append(&mut self, to: &NodeId, prev: Index, prev_term: Term) {
        let commit = self.log.commit.min(prev);
        let (term, read_ctx) = (self.term, self.read_seq);
        self.send(
            to,
            term,
            MessageBody::Append {
                prev_log_index: prev,
                prev_log_term: prev_term,
                entries: Vec::new(),
                commit,
                read_ctx,
            },
        );
    }

    // ---- outputs -----------------------------------------------------------------------

    pub fn ready(&mut self) -> super::Ready {
        if self.role == Role::Leader {
            let peers = self.cfg.peers.clone();
            let mut sent_to = BTreeSet::new();
            for p in &peers {
                let before = self.msgs.len();
                while self.send_append(p, false) {}
                if self.msgs.len() > before {
                    sent_to.insert(p.clone());
                }
            }
            if self.read_round_due || self.commit_round_due {
                for p in &peers {
                    if self.read_round_due || !sent_to.contains(p) {
                        self.send_heartbeat(p);
                    }
                }
            }
            self.read_round_due = false;
            self.commit_round_due = false;
        }
        let snapshot = self.log.pending_snapshot.take();
        let last = self.log.last_index();
        let entries = if self.log.unstable_from <= last {
            let lo = self.log.unstable_from.max(self.log.first_index());
            self.log.slice(lo, last).to_vec()
        } else {
            Vec::new()
        };
        self.log.unstable_from = last + 1;
        // The commit index handed out for persisting never covers entries (or a snapshot)
        // of this same batch: it may then be written in any order with them, and a torn
        // write cannot leave a durable commit index pointing at entries that are not. It
        // catches up at the next `ready()`.
        let durable_bound = if snapshot.is_some() {
            self.prev_hard_state.commit
        } else if let Some(first) = entries.first() {
            first.index - 1
        } else {
            Index::MAX
        };
        let hs = HardState {
            term: self.term,
            vote: self.vote.clone(),
            commit: self
                .log
                .commit
                .min(durable_bound)
                .max(self.prev_hard_state.commit),
        };
        let hard_state = if hs != self.prev_hard_state {
            self.prev_hard_state = hs.clone();
            Some(hs)
        } else {
            None
        };
        let hi = self.log.commit.min(last);
        let committed = if hi > self.log.applied {
            let c = self.log.slice(self.log.applied + 1, hi).to_vec();
            self.log.applied = hi;
            c
        } else {
            Vec::new()
        };
        Ready {
            hard_state,
            snapshot,
            entries,
            messages: std::mem::take(&mut self.msgs),
            committed,
            read_states: std::mem::take(&mut self.read_states),
        }
    }

    pub fn compact(&mut self, index: Index, data: Vec<u8>) {
        if index <= self.log.snapshot.index {
            return;
        }
        assert!(
            index <= self.log.applied,
            "raft: node {} term {}: compact({index}) beyond the applied index {}",
            self.cfg.id,
            self.term,
            self.log.applied
        );
        self.log.compact(index, data);
    }

    pub fn status(&self) -> Status {
        let peers = if self.role == Role::Leader {
            self.progress
                .iter()
                .map(|(id, p)| PeerStatus {
                    id: id.clone(),
                    match_index: p.match_index,
                    next_index: p.next_index,
                })
                .collect()
        } else {
            Vec::new()
        };
        Status {
            id: self.cfg.id.clone(),
            role: self.role,
            term: self.term,
            leader: self.leader.clone(),
            commit: self.log.commit,
            last_index: self.log.last_index(),
            snapshot_index: self.log.snapshot.index,
            peers,
        }
    }
}

/// Indices and terms beyond this are refused as malformed, so arithmetic on them cannot
/// overflow (a real cluster would need 2^62 entries or elections to get there).
const MAX_SANE: u64 = 1 << 62;
/// Largest snapshot a chunked transfer may announce (1 TiB).
const MAX_SNAPSHOT: u64 = 1 << 40;

/// Structural checks on a message from the network; ill-formed ones are dropped.
fn well_formed(m: &Message) -> bool {
    if m.term > MAX_SANE {
        return false;
    }
    match &m.body {
        MessageBody::Append {
            prev_log_index,
            prev_log_term,
            entries,
            commit,
            read_ctx: _,
        } => {
            if *prev_log_index > MAX_SANE || *commit > MAX_SANE || entries.len() as u64 > MAX_SANE {
                return false;
            }
            let mut t = *prev_log_term;
            for (i, e) in entries.iter().enumerate() {
                if e.index != prev_log_index + 1 + i as u64 || e.term < t || e.term > m.term {
                    return false;
                }
                t = e.term;
            }
            *prev_log_term <= m.term
        }
        MessageBody::InstallSnapshot {
            snapshot,
            offset,
            total,
        } => {
            snapshot.index > 0
                && snapshot.index <= MAX_SANE
                && snapshot.term > 0
                && snapshot.term <= m.term
                && *total <= MAX_SNAPSHOT
                && offset
                    .checked_add(snapshot.data.len() as u64)
                    .is_some_and(|end| *total == 0 && *offset == 0 || end <= *total)
        }
        MessageBody::Vote {
            last_log_term,
            last_log_index,
            ..
        } => *last_log_term <= m.term && *last_log_index <= MAX_SANE,
        MessageBody::AppendResponse {
            match_index,
            conflict_index,
            conflict_term,
            ..
        } => *match_index <= MAX_SANE && *conflict_index <= MAX_SANE && *conflict_term <= MAX_SANE,
        MessageBody::InstallSnapshotResponse {
            match_index,
            snapshot_index,
            next_offset,
        } => {
            *match_index <= MAX_SANE && *snapshot_index <= MAX_SANE && *next_offset <= MAX_SNAPSHOT
        }
        MessageBody::VoteResponse { .. } => true,
    }
}
