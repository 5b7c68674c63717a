//! The node's event loop: one thread owns the Raft core, the write-ahead log and the state
//! machine, and carries out each `Ready` in the order the core's contract demands.
//!
//! # Loop
//! Wait for an event or the next tick → drain every pending event (proposals, reads, peer
//! messages) → tick the core if due → for each non-empty `Ready`: install a snapshot, append the
//! entries and hard state to the WAL with **one** `fdatasync` (group commit), send the
//! messages, apply committed entries and answer their waiters, serve reads whose index is
//! applied. A change of only the commit index is buffered without a sync (a lost commit index
//! is recomputed after a restart), so the commit path costs no extra fsync.
//!
//! HTTP handlers talk to the loop through [`Handle`] (a channel of [`Event`]s and oneshot
//! replies); peer messages leave through one sender task per peer ([`crate::peer`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::peer::Outbox;
use crate::raft::{self, Entry, Index, Message, NodeId, RawNode, Snapshot, Term};
use crate::sm::{Command, Outcome, StateMachine};
use crate::wal::{Wal, WalOptions};

/// Entry data per AppendEntries (etcd's `MaxSizePerMsg`): one 900 KB value per message,
/// many small ones.
pub const MAX_BYTES_PER_MSG: u64 = 1 << 20;
/// Snapshot data per InstallSnapshot message.
pub const MAX_SNAPSHOT_CHUNK: u64 = 1 << 20;
/// Entry data unacknowledged per follower (etcd's `MaxInflightBytes`).
pub const MAX_INFLIGHT_BYTES: u64 = 16 << 20;

/// Known bugs on demand (see `node/README.md`).
#[derive(Clone, Debug, Default)]
pub struct Bugs {
    /// `stale-read`: serve reads from local state, on any node, without ReadIndex.
    pub stale_read: bool,
    /// `no-dedup`: apply retried writes again.
    pub no_dedup: bool,
    /// `ack-before-commit`: answer a write once it is appended (and synced) on the leader.
    pub ack_before_commit: bool,
    /// `no-fsync`: write the WAL without `fdatasync`.
    pub no_fsync: bool,
    /// `torn-tail-any-damage`: the WAL framing rules before issue 12.
    pub torn_tail_any_damage: bool,
    pub core: raft::CoreBugs,
}

/// Everything the loop needs to start.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    pub id: NodeId,
    pub peers: Vec<NodeId>,
    pub data_dir: PathBuf,
    pub tick: Duration,
    pub election_ticks: (u32, u32),
    pub heartbeat_ticks: u32,
    pub snapshot_every: u64,
    /// At most this many entries per AppendEntries message.
    pub max_append_entries: usize,
    pub bugs: Bugs,
}

/// Why the loop could not give an answer.
#[derive(Clone, Debug, PartialEq)]
pub enum LoopError {
    /// Definite: nothing was proposed.
    NotLeader { leader: Option<NodeId> },
    /// Indefinite: proposed, then overwritten or lost (it may still have applied elsewhere
    /// only if re-proposed, which this node never does; answered indefinite to be safe).
    Dropped(String),
    /// The loop is gone (shutting down or failed).
    Stopped,
    /// Definite: the loop's queue is full; nothing was queued.
    Overloaded,
}

/// A request to the loop.
pub enum Event {
    Propose {
        cmd: Command,
        reply: oneshot::Sender<Result<Outcome, LoopError>>,
    },
    Read {
        key: String,
        reply: oneshot::Sender<Result<Value, LoopError>>,
    },
    /// `stale-read`: the local value, no questions asked.
    LocalRead {
        key: String,
        reply: oneshot::Sender<Value>,
    },
    Messages(Vec<Message>),
    Status(oneshot::Sender<NodeStatus>),
    Shutdown,
}

/// `/status` body.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub id: NodeId,
    pub role: raft::Role,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit: Index,
    pub applied: Index,
    /// The same as `applied` (the name the harness reads next to `sm_digest`).
    pub applied_index: Index,
    /// [`StateMachine::digest`] at `applied_index`: equal on replicas that applied the same
    /// prefix.
    pub sm_digest: String,
    pub last_index: Index,
    pub snapshot_index: Index,
    pub peers: Vec<PeerMatch>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PeerMatch {
    pub id: NodeId,
    pub match_index: Index,
    pub next_index: Index,
}

/// Events queued for the loop before handlers are refused (back-pressure: 503 overloaded).
pub const EVENT_QUEUE: usize = 8192;
/// Entry and snapshot data of peer messages queued for the loop before peer requests are
/// refused.
pub const MAX_QUEUED_PEER_BYTES: u64 = 256 << 20;

/// The sending side handed to HTTP handlers: a bounded queue of events, plus a byte budget
/// for the data of queued peer messages.
#[derive(Clone)]
pub struct Handle {
    tx: std_mpsc::SyncSender<Event>,
    peer_bytes: Arc<AtomicU64>,
}

impl Handle {
    /// Queues `ev` without waiting: a full queue is [`LoopError::Overloaded`].
    pub fn send(&self, ev: Event) -> Result<(), LoopError> {
        if let Event::Messages(msgs) = &ev {
            let b: u64 = msgs.iter().map(crate::peer::data_bytes).sum();
            let before = self.peer_bytes.fetch_add(b, Ordering::AcqRel);
            if before > 0 && before + b > MAX_QUEUED_PEER_BYTES {
                self.peer_bytes.fetch_sub(b, Ordering::AcqRel);
                return Err(LoopError::Overloaded);
            }
            return self.tx.try_send(ev).map_err(|e| {
                self.peer_bytes.fetch_sub(b, Ordering::AcqRel);
                match e {
                    std_mpsc::TrySendError::Full(_) => LoopError::Overloaded,
                    std_mpsc::TrySendError::Disconnected(_) => LoopError::Stopped,
                }
            });
        }
        self.tx.try_send(ev).map_err(|e| match e {
            std_mpsc::TrySendError::Full(_) => LoopError::Overloaded,
            std_mpsc::TrySendError::Disconnected(_) => LoopError::Stopped,
        })
    }

    /// Queues `ev`, waiting for room (for shutdown, which must get through).
    pub fn send_blocking(&self, ev: Event) -> Result<(), LoopError> {
        self.tx.send(ev).map_err(|_| LoopError::Stopped)
    }
}

/// A read's key and where to answer it.
type PendingRead = (String, oneshot::Sender<Result<Value, LoopError>>);

struct Waiter {
    term: Term,
    cmd: Command,
    reply: oneshot::Sender<Result<Outcome, LoopError>>,
}

struct Loop {
    cfg: LoopConfig,
    core: RawNode,
    wal: Wal,
    sm: StateMachine,
    applied: Index,
    applied_term: Term,
    /// Last hard state written (synced or buffered).
    hard: raft::HardState,
    waiters: BTreeMap<Index, Waiter>,
    next_ctx: u64,
    pending_reads: HashMap<u64, PendingRead>,
    /// Reads confirmed by ReadIndex, waiting for `applied >= index`.
    ready_reads: BTreeMap<Index, Vec<PendingRead>>,
    outboxes: HashMap<NodeId, Outbox>,
    /// `(applied index, digest)` of the last `/status`, so that polling an idle node does
    /// not rehash its state.
    digest_cache: Option<(Index, String)>,
    /// Shared with [`Handle`]: data bytes of queued peer messages.
    peer_bytes: Arc<AtomicU64>,
}

/// Opens the data directory, recovers, and starts the loop thread. Returns the handle and the
/// thread (which ends after [`Event::Shutdown`] or when every handle is dropped).
pub fn start(
    cfg: LoopConfig,
    outboxes: HashMap<NodeId, Outbox>,
    rng: StdRng,
) -> anyhow::Result<(Handle, std::thread::JoinHandle<anyhow::Result<()>>)> {
    use anyhow::Context;
    let wal_opts = WalOptions {
        no_fsync: cfg.bugs.no_fsync,
        torn_tail_any_damage: cfg.bugs.torn_tail_any_damage,
    };
    let (wal, rec) = Wal::open_with(&cfg.data_dir, wal_opts)
        .with_context(|| format!("opening the data directory {}", cfg.data_dir.display()))?;
    let mut sm = StateMachine::new(cfg.bugs.no_dedup);
    let (mut applied, mut applied_term) = (0, 0);
    if let Some(s) = &rec.snapshot {
        sm.restore(&s.data)
            .map_err(|e| anyhow::anyhow!("{}/snapshot.bin: {e}", cfg.data_dir.display()))?;
        applied = s.index;
        applied_term = s.term;
    }
    // Committed entries after the snapshot are handed out again by the core and applied then.
    tracing::info!(
        id = %cfg.id,
        term = rec.hard_state.term,
        vote = ?rec.hard_state.vote,
        snapshot = rec.snapshot.as_ref().map_or(0, |s| s.index),
        last_index = wal.last_index(),
        applied,
        torn_bytes = rec.torn_bytes,
        "recovered"
    );
    let core_cfg = raft::Config {
        id: cfg.id.clone(),
        peers: cfg.peers.clone(),
        election_ticks_min: cfg.election_ticks.0,
        election_ticks_max: cfg.election_ticks.1,
        heartbeat_ticks: cfg.heartbeat_ticks,
        pre_vote: true,
        check_quorum: true,
        max_inflight: 64,
        max_entries_per_msg: cfg.max_append_entries,
        max_bytes_per_msg: MAX_BYTES_PER_MSG,
        max_inflight_bytes: MAX_INFLIGHT_BYTES,
        max_snapshot_chunk: MAX_SNAPSHOT_CHUNK,
        bugs: cfg.bugs.core.clone(),
    };
    let hard = rec.hard_state.clone();
    let persisted = raft::Persisted {
        hard_state: rec.hard_state,
        snapshot: rec.snapshot,
        entries: rec.entries,
    };
    let (tx, rx) = std_mpsc::sync_channel(EVENT_QUEUE);
    let peer_bytes = Arc::new(AtomicU64::new(0));
    let loop_peer_bytes = peer_bytes.clone();
    let thread = std::thread::Builder::new()
        .name(format!("raft-{}", cfg.id))
        .spawn(move || {
            let core = RawNode::new(core_cfg, persisted, rng);
            let mut lp = Loop {
                cfg,
                core,
                wal,
                sm,
                applied,
                applied_term,
                hard,
                waiters: BTreeMap::new(),
                next_ctx: 1,
                pending_reads: HashMap::new(),
                ready_reads: BTreeMap::new(),
                outboxes,
                digest_cache: None,
                peer_bytes: loop_peer_bytes,
            };
            lp.run(rx)
        })?;
    Ok((Handle { tx, peer_bytes }, thread))
}

fn apply_entry(sm: &mut StateMachine, e: &Entry) -> Option<Outcome> {
    if e.data.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Command>(&e.data) {
        Ok(cmd) => Some(sm.apply(e.index, &cmd)),
        Err(err) => {
            // Only this node's HTTP layer proposes, always valid JSON; log and skip otherwise.
            tracing::error!(index = e.index, %err, "undecodable log entry skipped");
            None
        }
    }
}

impl Loop {
    fn run(&mut self, rx: std_mpsc::Receiver<Event>) -> anyhow::Result<()> {
        let tick = self.cfg.tick;
        let mut next_tick = Instant::now() + tick;
        let mut next_gc = Instant::now() + Duration::from_secs(1);
        self.process_ready()?;
        loop {
            let now = Instant::now();
            let wait = next_tick.saturating_duration_since(now);
            match rx.recv_timeout(wait) {
                Ok(Event::Shutdown) => break,
                Ok(ev) => self.handle(ev),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
            // Drain everything pending: one Ready (one fsync) for the whole batch.
            let mut n = 0;
            let mut stop = false;
            while n < 100_000 {
                match rx.try_recv() {
                    Ok(Event::Shutdown) => {
                        stop = true;
                        break;
                    }
                    Ok(ev) => self.handle(ev),
                    Err(_) => break,
                }
                n += 1;
            }
            let now = Instant::now();
            // After a stall (a long fsync, SIGSTOP) tick at most a few times and skip the rest:
            // a burst of ticks would expire the election timer before fresh messages count.
            let mut burst = 0;
            while now >= next_tick && burst < 3 {
                self.core.tick();
                next_tick += tick;
                burst += 1;
            }
            if now >= next_tick {
                next_tick = now + tick;
            }
            self.process_ready()?;
            if now >= next_gc {
                self.gc();
                next_gc = now + Duration::from_secs(1);
            }
            if stop {
                break;
            }
        }
        self.wal.sync()?;
        tracing::info!(id = %self.cfg.id, "event loop stopped");
        Ok(())
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Propose { cmd, reply } => {
                // Serializing a command of strings and JSON values cannot fail.
                let data = serde_json::to_vec(&cmd).expect("command serializes");
                match self.core.propose(data) {
                    Ok((index, term)) => {
                        if let Some(old) = self.waiters.insert(index, Waiter { term, cmd, reply }) {
                            let _ = old
                                .reply
                                .send(Err(LoopError::Dropped("log index reused".into())));
                        }
                    }
                    Err(raft::ProposeError::NotLeader { leader }) => {
                        let _ = reply.send(Err(LoopError::NotLeader { leader }));
                    }
                }
            }
            Event::Read { key, reply } => {
                let ctx = self.next_ctx;
                self.next_ctx += 1;
                match self.core.read_index(ctx) {
                    Ok(()) => {
                        self.pending_reads.insert(ctx, (key, reply));
                    }
                    Err(raft::ProposeError::NotLeader { leader }) => {
                        let _ = reply.send(Err(LoopError::NotLeader { leader }));
                    }
                }
            }
            Event::LocalRead { key, reply } => {
                let _ = reply.send(self.sm.read(&key));
            }
            Event::Messages(msgs) => {
                let b: u64 = msgs.iter().map(crate::peer::data_bytes).sum();
                self.peer_bytes.fetch_sub(b, Ordering::AcqRel);
                for m in msgs {
                    self.core.step(m);
                }
            }
            Event::Status(reply) => {
                let s = self.core.status();
                let digest = match &self.digest_cache {
                    Some((i, d)) if *i == self.applied => d.clone(),
                    _ => {
                        let d = self.sm.digest();
                        self.digest_cache = Some((self.applied, d.clone()));
                        d
                    }
                };
                let _ = reply.send(NodeStatus {
                    id: s.id,
                    role: s.role,
                    term: s.term,
                    leader: s.leader,
                    commit: s.commit,
                    applied: self.applied,
                    applied_index: self.applied,
                    sm_digest: digest,
                    last_index: s.last_index,
                    snapshot_index: s.snapshot_index,
                    peers: s
                        .peers
                        .into_iter()
                        .map(|p| PeerMatch {
                            id: p.id,
                            match_index: p.match_index,
                            next_index: p.next_index,
                        })
                        .collect(),
                });
            }
            Event::Shutdown => {}
        }
    }

    fn process_ready(&mut self) -> anyhow::Result<()> {
        for _ in 0..64 {
            let rd = self.core.ready();
            if rd.is_empty() {
                return Ok(());
            }
            // 1. Snapshot from a leader.
            if let Some(snap) = &rd.snapshot {
                self.install_snapshot(snap)?;
            }
            // 2. Entries and hard state, one fsync.
            let mut need_sync = !rd.entries.is_empty() || rd.snapshot.is_some();
            if let Some(hs) = &rd.hard_state {
                // Term and vote must be durable before any message depends on them; a change
                // of only the commit index may wait for the next sync.
                if hs.term != self.hard.term || hs.vote != self.hard.vote {
                    need_sync = true;
                }
                if hs.term != self.hard.term {
                    self.on_term_change();
                }
                self.hard = hs.clone();
            }
            self.wal.append(rd.hard_state.as_ref(), &rd.entries)?;
            if need_sync {
                self.wal.sync()?;
            }
            if self.cfg.bugs.ack_before_commit && !rd.entries.is_empty() {
                self.ack_early(&rd.entries);
            }
            // 3. Messages.
            for m in rd.messages {
                if let Some(out) = self.outboxes.get(&m.to) {
                    if let Err(why) = out.try_send(m) {
                        tracing::debug!(?why, "peer outbox full; message dropped");
                    }
                }
            }
            // 4. Apply.
            for e in &rd.committed {
                self.apply(e);
            }
            // 5. Reads.
            for rs in rd.read_states {
                if let Some((key, reply)) = self.pending_reads.remove(&rs.ctx) {
                    self.ready_reads
                        .entry(rs.index)
                        .or_default()
                        .push((key, reply));
                }
            }
            self.serve_reads();
            self.maybe_snapshot()?;
            if !self.pending_reads.is_empty() {
                // The core drops unconfirmed reads silently when it stops leading (check-quorum
                // steps down without a new term): send them elsewhere now, not at the deadline.
                let s = self.core.status();
                if s.role != raft::Role::Leader {
                    for (_, (_, reply)) in self.pending_reads.drain() {
                        let _ = reply.send(Err(LoopError::NotLeader {
                            leader: s.leader.clone(),
                        }));
                    }
                }
            }
        }
        Ok(())
    }

    fn on_term_change(&mut self) {
        // Reads accepted as leader of an older term may never be confirmed.
        for (_, (_, reply)) in self.pending_reads.drain() {
            let _ = reply.send(Err(LoopError::NotLeader { leader: None }));
        }
    }

    fn ack_early(&mut self, entries: &[Entry]) {
        for e in entries {
            if let Some(w) = self.waiters.get(&e.index) {
                if w.term != e.term {
                    continue;
                }
                // Checked just above that the waiter exists.
                let w = self.waiters.remove(&e.index).unwrap();
                let outcome = self.sm.judge(&w.cmd);
                let _ = w.reply.send(Ok(outcome));
            }
        }
    }

    fn apply(&mut self, e: &Entry) {
        if e.index <= self.applied {
            return;
        }
        if e.index > self.applied + 1 {
            // The core skipped entries we have not applied: take them from the log.
            let missing: Vec<Entry> = self.wal.entries(self.applied + 1, e.index - 1).to_vec();
            for m in &missing {
                self.apply(m);
            }
            if e.index > self.applied + 1 {
                tracing::error!(
                    index = e.index,
                    applied = self.applied,
                    "gap in committed entries"
                );
            }
        }
        let outcome = apply_entry(&mut self.sm, e);
        self.applied = e.index;
        self.applied_term = e.term;
        // Waiters at or below this index are answered now.
        while let Some(entry) = self.waiters.first_entry() {
            if *entry.key() > e.index {
                break;
            }
            let (idx, w) = entry.remove_entry();
            let ans = if idx == e.index && w.term == e.term {
                Ok(outcome.clone().unwrap_or(Outcome::Ok))
            } else {
                Err(LoopError::Dropped(format!(
                    "entry {idx} of term {} was replaced by a new leader",
                    w.term
                )))
            };
            let _ = w.reply.send(ans);
        }
    }

    fn serve_reads(&mut self) {
        while let Some(entry) = self.ready_reads.first_entry() {
            if *entry.key() > self.applied {
                break;
            }
            for (key, reply) in entry.remove() {
                let _ = reply.send(Ok(self.sm.read(&key)));
            }
        }
    }

    fn install_snapshot(&mut self, snap: &Snapshot) -> anyhow::Result<()> {
        self.wal.save_snapshot(snap, false)?;
        if snap.index > self.applied {
            self.sm
                .restore(&snap.data)
                .map_err(|e| anyhow::anyhow!("snapshot from the leader at {}: {e}", snap.index))?;
            self.applied = snap.index;
            self.applied_term = snap.term;
            self.digest_cache = None;
            // Proposals at or below the snapshot cannot be matched to their outcome.
            while let Some(entry) = self.waiters.first_entry() {
                if *entry.key() > snap.index {
                    break;
                }
                let _ = entry.remove().reply.send(Err(LoopError::Dropped(
                    "outcome covered by a snapshot".into(),
                )));
            }
        }
        tracing::info!(index = snap.index, term = snap.term, "installed snapshot");
        Ok(())
    }

    fn maybe_snapshot(&mut self) -> anyhow::Result<()> {
        if self.cfg.snapshot_every == 0
            || self.applied < self.wal.snapshot_index() + self.cfg.snapshot_every
        {
            return Ok(());
        }
        let data = self.sm.snapshot();
        let snap = Snapshot {
            index: self.applied,
            term: self.applied_term,
            data,
        };
        self.wal.save_snapshot(&snap, true)?;
        self.core.compact(snap.index, snap.data);
        tracing::info!(index = self.applied, "snapshot taken, log compacted");
        Ok(())
    }

    fn gc(&mut self) {
        self.waiters.retain(|_, w| !w.reply.is_closed());
        self.pending_reads.retain(|_, (_, r)| !r.is_closed());
        for v in self.ready_reads.values_mut() {
            v.retain(|(_, r)| !r.is_closed());
        }
        self.ready_reads.retain(|_, v| !v.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_event_queue_refuses_with_overloaded_instead_of_growing() {
        let (tx, rx) = std_mpsc::sync_channel(2);
        let h = Handle {
            tx,
            peer_bytes: Arc::new(AtomicU64::new(0)),
        };
        let status = || Event::Status(oneshot::channel().0);
        assert!(h.send(status()).is_ok());
        assert!(h.send(status()).is_ok());
        assert_eq!(h.send(status()).err(), Some(LoopError::Overloaded));
        drop(rx);
        assert_eq!(h.send(status()).err(), Some(LoopError::Stopped));
    }

    #[test]
    fn queued_peer_data_is_bounded_by_bytes() {
        let (tx, rx) = std_mpsc::sync_channel(1000);
        let h = Handle {
            tx,
            peer_bytes: Arc::new(AtomicU64::new(0)),
        };
        let big = || {
            Event::Messages(vec![Message {
                from: "n2".into(),
                to: "n1".into(),
                term: 1,
                body: raft::MessageBody::Append {
                    prev_log_index: 0,
                    prev_log_term: 0,
                    entries: vec![Entry {
                        term: 1,
                        index: 1,
                        data: vec![0; 64 << 20],
                    }],
                    commit: 0,
                    read_ctx: 0,
                },
            }])
        };
        let mut ok = 0;
        while h.send(big()).is_ok() {
            ok += 1;
            assert!(ok < 100, "not bounded");
        }
        assert_eq!(ok, (MAX_QUEUED_PEER_BYTES >> 26) as usize);
        drop(rx);
    }
}
