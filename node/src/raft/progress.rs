//! What a leader knows about one follower's log (etcd-raft's `tracker.Progress`).
//!
//! - `Probe`: the leader does not know where the logs diverge; it sends one Append at
//!   `next - 1` and waits for the answer (or the next heartbeat) before sending another.
//! - `Replicate`: the logs match up to `match_index`; Appends are pipelined, `next` advances
//!   optimistically, at most `max_inflight` messages are unacknowledged.
//! - `Snapshot`: the follower needs entries the leader has compacted; an InstallSnapshot was
//!   sent and the leader waits for it to be acknowledged.

use std::collections::VecDeque;

use super::Index;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ProgressState {
    Probe,
    Replicate,
    Snapshot,
}

#[derive(Clone, Debug, Hash)]
pub(crate) struct Progress {
    /// Highest index known to be replicated on the follower.
    pub match_index: Index,
    /// Next index to send.
    pub next_index: Index,
    pub state: ProgressState,
    /// Probe: an Append was sent and not answered since the last heartbeat.
    pub probe_sent: bool,
    /// Replicate: last index of each unacknowledged Append, oldest first.
    pub inflight: VecDeque<Index>,
    /// Snapshot: index of the snapshot sent.
    pub pending_snapshot: Index,
    /// Heard from in the current check-quorum period.
    pub recent_active: bool,
    /// Heartbeat periods in a row without progress while messages were outstanding; the
    /// leader falls back to probing when it reaches 2 (messages may have been lost).
    pub stall: u32,
    /// `match_index` at the previous heartbeat (to measure `stall`).
    pub match_at_heartbeat: Index,
}

impl Progress {
    pub fn new(next_index: Index) -> Self {
        Progress {
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            pending_snapshot: 0,
            recent_active: false,
            stall: 0,
            match_at_heartbeat: 0,
        }
    }

    pub fn become_probe(&mut self, next_index: Index) {
        self.state = ProgressState::Probe;
        self.next_index = next_index.max(self.match_index + 1);
        self.probe_sent = false;
        self.inflight.clear();
        self.pending_snapshot = 0;
        self.stall = 0;
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflight.clear();
        self.stall = 0;
    }

    pub fn become_snapshot(&mut self, snapshot_index: Index) {
        self.state = ProgressState::Snapshot;
        self.pending_snapshot = snapshot_index;
        self.inflight.clear();
        self.probe_sent = false;
        self.stall = 0;
    }

    /// Records that the follower has everything up to `index`; true if that is news.
    pub fn update_match(&mut self, index: Index) -> bool {
        let news = index > self.match_index;
        if news {
            self.match_index = index;
            self.stall = 0;
        }
        if self.next_index < index + 1 {
            self.next_index = index + 1;
        }
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        news
    }

    pub fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflight.len() >= max_inflight,
            ProgressState::Snapshot => true,
        }
    }
}
