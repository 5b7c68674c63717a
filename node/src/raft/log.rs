//! The in-memory Raft log of one node: the last snapshot (index, term and, for sending it to
//! followers, its data) followed by the entries after it, plus the bookkeeping of what the
//! caller has already been handed (`unstable_from`, `applied`).
//!
//! Invariants (checked by the callers in `core.rs`):
//! - `entries[i].index == snapshot.index + 1 + i` (contiguous after the snapshot);
//! - `snapshot.index <= applied <= commit` (the caller applies only what it was handed, and
//!   it is handed only committed entries); `commit` may exceed `last_index()` only with the
//!   `no_truncate_check` bug.

use super::{Entry, Index, Snapshot, Term};

#[derive(Clone, Debug, Hash)]
pub(crate) struct RaftLog {
    /// The last snapshot; `index == 0` means none. Its data is kept to send InstallSnapshot.
    pub snapshot: Snapshot,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// Highest index known committed.
    pub commit: Index,
    /// Highest index handed out in `Ready.committed` (or covered by an installed snapshot).
    pub applied: Index,
    /// Entries from this index on have not been handed out in `Ready.entries` yet.
    pub unstable_from: Index,
    /// A snapshot received from the leader, not yet handed out in `Ready.snapshot`.
    pub pending_snapshot: Option<Snapshot>,
}

impl RaftLog {
    pub fn restore(snapshot: Option<Snapshot>, entries: Vec<Entry>, commit: Index) -> Self {
        let snapshot = snapshot.unwrap_or(Snapshot {
            index: 0,
            term: 0,
            data: Vec::new(),
        });
        let mut entries = entries;
        // Entries at or below the snapshot are covered by it (a caller may keep a few).
        entries.retain(|e| e.index > snapshot.index);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.index,
                snapshot.index + 1 + i as u64,
                "persisted log is not contiguous after snapshot {} (entry #{i} has index {})",
                snapshot.index,
                e.index
            );
        }
        let last = snapshot.index + entries.len() as u64;
        let commit = commit.max(snapshot.index).min(last);
        RaftLog {
            applied: snapshot.index,
            unstable_from: last + 1,
            snapshot,
            entries,
            commit,
            pending_snapshot: None,
        }
    }

    pub fn first_index(&self) -> Index {
        self.snapshot.index + 1
    }

    pub fn last_index(&self) -> Index {
        self.snapshot.index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> Term {
        self.entries
            .last()
            .map(|e| e.term)
            .unwrap_or(self.snapshot.term)
    }

    /// Term of the entry at `index`, if known (the snapshot's own index is known).
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot.index {
            Some(self.snapshot.term)
        } else if index < self.snapshot.index || index > self.last_index() {
            None
        } else {
            Some(self.entries[(index - self.snapshot.index - 1) as usize].term)
        }
    }

    /// Entries `lo..=hi` (both within `first_index()..=last_index()`).
    pub fn slice(&self, lo: Index, hi: Index) -> &[Entry] {
        if lo > hi {
            return &[];
        }
        let off = self.snapshot.index + 1;
        debug_assert!(lo >= off && hi <= self.last_index());
        &self.entries[(lo - off) as usize..=(hi - off) as usize]
    }

    pub fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.entries.push(entry);
    }

    /// Drops every entry at or after `index` (> snapshot index).
    pub fn truncate_from(&mut self, index: Index) {
        debug_assert!(index > self.snapshot.index);
        self.entries
            .truncate((index - self.snapshot.index - 1) as usize);
        self.unstable_from = self.unstable_from.min(index);
    }

    /// The first index of the run of entries with the same term as `index`, not going below
    /// `floor` (used for the conflict hint).
    pub fn first_index_of_term_run(&self, index: Index, floor: Index) -> Index {
        let Some(t) = self.term(index) else {
            return index;
        };
        let mut i = index;
        while i > floor.max(self.first_index()) && self.term(i - 1) == Some(t) {
            i -= 1;
        }
        i
    }

    /// Replaces the whole log with `snapshot` (a follower installing the leader's snapshot).
    pub fn install(&mut self, snapshot: Snapshot) {
        self.entries.clear();
        self.commit = snapshot.index;
        self.applied = snapshot.index;
        self.unstable_from = snapshot.index + 1;
        self.pending_snapshot = Some(snapshot.clone());
        self.snapshot = snapshot;
    }

    /// Discards entries up to and including `index`, which becomes the snapshot.
    pub fn compact(&mut self, index: Index, data: Vec<u8>) {
        let term = self
            .term(index)
            .expect("compact: index within the log (checked by the caller)");
        let drop = (index - self.snapshot.index) as usize;
        self.entries.drain(..drop);
        self.snapshot = Snapshot { index, term, data };
    }
}
