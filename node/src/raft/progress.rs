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
    /// Entry data bytes of each message in `inflight` (same order), and their sum.
    pub inflight_sizes: VecDeque<u64>,
    pub inflight_bytes: u64,
    /// Snapshot: index of the snapshot sent.
    pub pending_snapshot: Index,
    /// Snapshot: the snapshot being sent in chunks (kept so that a compaction on the leader
    /// during the transfer does not restart it) and the offset of the last chunk sent.
    pub sending: Option<super::Snapshot>,
    pub chunk_offset: u64,
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
            inflight_sizes: VecDeque::new(),
            inflight_bytes: 0,
            pending_snapshot: 0,
            sending: None,
            chunk_offset: 0,
            recent_active: false,
            stall: 0,
            match_at_heartbeat: 0,
        }
    }

    pub fn become_probe(&mut self, next_index: Index) {
        self.state = ProgressState::Probe;
        self.next_index = next_index.max(self.match_index + 1);
        self.probe_sent = false;
        self.clear_inflight();
        self.pending_snapshot = 0;
        self.sending = None;
        self.chunk_offset = 0;
        self.stall = 0;
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.sending = None;
        self.chunk_offset = 0;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.clear_inflight();
        self.stall = 0;
    }

    pub fn become_snapshot(&mut self, snapshot_index: Index) {
        self.state = ProgressState::Snapshot;
        self.pending_snapshot = snapshot_index;
        self.sending = None;
        self.chunk_offset = 0;
        self.clear_inflight();
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
            self.inflight_bytes -= self.inflight_sizes.pop_front().unwrap_or(0);
        }
        news
    }

    /// Records an Append sent in Replicate state: its last index and entry data bytes.
    pub fn push_inflight(&mut self, last: Index, bytes: u64) {
        self.inflight.push_back(last);
        self.inflight_sizes.push_back(bytes);
        self.inflight_bytes += bytes;
    }

    pub fn clear_inflight(&mut self) {
        self.inflight.clear();
        self.inflight_sizes.clear();
        self.inflight_bytes = 0;
    }

    /// Whether no more Appends may be sent now: a probe is out, a snapshot is pending, or
    /// `max_inflight` messages or `max_inflight_bytes` of entry data are unacknowledged
    /// (etcd's `MaxInflightMsgs` / `MaxInflightBytes`).
    pub fn is_paused(&self, max_inflight: usize, max_inflight_bytes: u64) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => {
                self.inflight.len() >= max_inflight || self.inflight_bytes >= max_inflight_bytes
            }
            ProgressState::Snapshot => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgement_frees_every_inflight_message_it_covers() {
        let mut p = Progress::new(1);
        p.become_replicate();
        for last in [8, 16, 24] {
            p.push_inflight(last, 100);
        }
        p.next_index = 25;
        assert!(p.is_paused(3, u64::MAX));
        assert!(p.update_match(16));
        assert_eq!(p.inflight, VecDeque::from([24]));
        assert_eq!(p.inflight_bytes, 100);
        assert!(!p.is_paused(3, u64::MAX));
        assert!(p.is_paused(3, 100), "bytes in flight at the byte cap");
        assert!(!p.is_paused(3, 101));
        assert!(!p.update_match(10), "an older acknowledgement is no news");
        assert_eq!(p.match_index, 16);
    }

    #[test]
    fn probing_never_goes_below_the_match_index() {
        let mut p = Progress::new(10);
        p.update_match(5);
        p.become_probe(2);
        assert_eq!(p.next_index, 6);
        assert!(!p.is_paused(4, u64::MAX));
        p.probe_sent = true;
        assert!(p.is_paused(4, u64::MAX), "one probe at a time");
    }
}
