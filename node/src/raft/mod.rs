//! The pure Raft core: no I/O, no clock, no randomness of its own (the caller passes a seeded
//! RNG). Time comes in as [`RawNode::tick`], messages as values through [`RawNode::step`],
//! and everything to persist, send and apply comes out as one [`Ready`] batch.
//!
//! # The caller's duties, in order, for every `Ready` (as etcd-raft's `doc.go`)
//! 1. If `ready.snapshot` is set, persist it (temp file, fsync, rename) and install it in the
//!    state machine; it replaces the whole log up to its index.
//! 2. Persist `ready.entries` (an entry whose index is at or below the last stored index
//!    replaces the stored suffix from that index: truncate, then append) and
//!    `ready.hard_state` if set, and fsync, **before** step 3 and before answering any client.
//! 3. Send `ready.messages` (one-way; losing them is allowed).
//! 4. Apply `ready.committed` in order to the state machine; answer the clients waiting on them.
//! 5. Serve `ready.read_states` once the applied index reaches each one's `index`.
//!
//! THIS FILE IS THE CONTRACT between the core and the server (issue 3): the types and the
//! signatures of `RawNode` are fixed.
//!
//! # Clarifications of the duties
//! - `ready.snapshot` (a snapshot received from the leader) replaces the *whole* stored log:
//!   discard every stored entry, also those after its index (they may conflict with it);
//!   entries after it arrive in `ready.entries`.
//! - `Persisted.snapshot` must carry the snapshot's `data`: the node sends it to followers
//!   that fall behind its first retained index.
//! - The leader counts the entries it appended as stored on itself at once; that is safe
//!   only because the caller persists step 2 before sending (step 3) or applying (step 4).
//! - `ready.committed` may contain entries that appear in `ready.entries` of the same batch
//!   (persist first, then apply).
//! - `ready.hard_state.commit` never covers entries or a snapshot of the same batch, so the
//!   records of step 2 may be written in any order: a torn write that keeps the hard state
//!   but loses the entries leaves no commit index pointing at missing entries. (The durable
//!   commit index may thus lag by one batch; it is recovered from the leader.)
//! - In a refused `AppendResponse`, `match_index` carries the refused `prev_log_index`.
//! - A granted pre-vote answer carries the term the candidate asked for (it changes no
//!   one's term); every other answer carries the responder's current term.
//! - Pending ReadIndex requests are dropped (never answered) when the node stops leading;
//!   the caller fails them when `status().role` is no longer `Leader`.
//! - `RawNode` implements `Hash` over its protocol state (not the RNG), for model checking.
//!
//! # Layout
//! - `core.rs`: the protocol (elections, replication, ReadIndex, snapshots).
//! - `log.rs`: the in-memory log and what has been handed to the caller.
//! - `progress.rs`: a leader's view of each follower (probe / replicate / snapshot).

mod core;
mod log;
mod progress;

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

pub type NodeId = String;
pub type Term = u64;
pub type Index = u64;

/// One log entry. Index 0 / term 0 is the empty-log sentinel and never stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    /// Empty for the no-op a new leader appends (Raft §8); otherwise the caller's command.
    /// Base64 in JSON (see [`b64`]).
    #[serde(with = "b64")]
    pub data: Vec<u8>,
}

/// What must be durable before anything that depends on it is sent or answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
    pub commit: Index,
}

/// A snapshot of the state machine at `index` (covering every entry up to and including it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    pub index: Index,
    pub term: Term,
    /// The state machine's serialized state (opaque to the core). Base64 in JSON (see
    /// [`b64`]).
    #[serde(with = "b64")]
    pub data: Vec<u8>,
}

/// A message between nodes. One-way: a response is a message of its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: MessageBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageBody {
    /// RequestVote (or, with `pre_vote`, the pre-vote round that does not bump terms).
    /// For a pre-vote, `Message::term` is the term the candidate *would* campaign in.
    Vote {
        pre_vote: bool,
        last_log_index: Index,
        last_log_term: Term,
    },
    VoteResponse {
        pre_vote: bool,
        granted: bool,
    },
    /// AppendEntries: heartbeat when `entries` is empty. `read_ctx` is echoed in the response
    /// so the leader can count acknowledgements for ReadIndex.
    Append {
        prev_log_index: Index,
        prev_log_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        read_ctx: u64,
    },
    /// `success`: `match_index` is the last index the follower now agrees on.
    /// Refusal: `conflict_index`/`conflict_term` is a hint where the leader should retry.
    AppendResponse {
        success: bool,
        match_index: Index,
        conflict_index: Index,
        conflict_term: Term,
        read_ctx: u64,
    },
    /// A snapshot, whole or in chunks. Chunked (`total > 0`): `snapshot.data` holds bytes
    /// `offset..offset + data.len()` of the `total`-byte data of snapshot `(index, term)`;
    /// the follower acknowledges each chunk and installs the snapshot after the last one.
    /// Whole (`total == 0`, the form before chunking): `snapshot.data` is all of it.
    InstallSnapshot {
        snapshot: Snapshot,
        #[serde(default)]
        offset: u64,
        #[serde(default)]
        total: u64,
    },
    /// `match_index`: the follower's log now matches up to there (after a whole snapshot or
    /// its last chunk). A chunk acknowledgement has `snapshot_index` set (the snapshot being
    /// received) and `next_offset`, the byte the follower wants next (0: from the start).
    InstallSnapshotResponse {
        match_index: Index,
        #[serde(default)]
        snapshot_index: Index,
        #[serde(default)]
        next_offset: u64,
    },
}

impl MessageBody {
    /// Which peer route carries it: `vote`, `append` or `snapshot` (`POST /raft/<route>`).
    pub fn route(&self) -> &'static str {
        match self {
            MessageBody::Vote { .. } | MessageBody::VoteResponse { .. } => "vote",
            MessageBody::Append { .. } | MessageBody::AppendResponse { .. } => "append",
            MessageBody::InstallSnapshot { .. } | MessageBody::InstallSnapshotResponse { .. } => {
                "snapshot"
            }
        }
    }
}

/// Serde adapter for the `Vec<u8>` fields of peer messages: written as a standard base64
/// string (4 bytes per 3, against 2 to 4 bytes per byte for serde_json's default array of
/// numbers); read from a base64 string or, for messages written by an older node, an array
/// of numbers.
pub mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a base64 string or an array of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                STANDARD
                    .decode(v)
                    .map_err(|e| E::custom(format!("bad base64: {e}")))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// A linearizable read may be served once the state machine has applied `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's id for the read, as given to [`RawNode::read_index`].
    pub ctx: u64,
    pub index: Index,
}

/// Role of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// Known bugs, on demand (`--bug NAME`), to prove that the harness catches them. All off by
/// default. The server-level bugs (`stale-read`, `no-dedup`, `ack-before-commit`) live in the
/// server; these are the core's.
#[derive(Clone, Debug, Default)]
pub struct CoreBugs {
    /// `vote-any-log`: grant votes ignoring the up-to-date rule (Raft §5.4.1).
    pub vote_any_log: bool,
    /// `commit-old-term`: commit by counting replicas of older-term entries (violates §5.4.2).
    pub commit_old_term: bool,
    /// `no-truncate-check`: a stale AppendEntries may truncate entries, committed ones included.
    pub no_truncate_check: bool,
}

/// Configuration of the core. Times are in ticks (the server ticks every `tick` ms).
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// Every other member of the cluster.
    pub peers: Vec<NodeId>,
    /// The election timeout is drawn uniformly from `[election_ticks_min, election_ticks_max)`
    /// at every reset.
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    pub heartbeat_ticks: u32,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Append messages in flight per follower (pipelining).
    pub max_inflight: usize,
    /// At most this many entries per Append message.
    pub max_entries_per_msg: usize,
    /// At most this many bytes of entry data per Append message (etcd's `MaxSizePerMsg`),
    /// except that one entry always goes (an entry larger than the cap travels alone).
    pub max_bytes_per_msg: u64,
    /// At most this many bytes of entry data unacknowledged per follower (etcd's
    /// `MaxInflightBytes`); the message that crosses it is sent, then the follower pauses.
    pub max_inflight_bytes: u64,
    /// Snapshot data per InstallSnapshot message; a larger snapshot is sent in chunks, each
    /// acknowledged before the next.
    pub max_snapshot_chunk: u64,
    pub bugs: CoreBugs,
}

/// What was durable when the node (re)started.
#[derive(Clone, Debug, Default)]
pub struct Persisted {
    pub hard_state: HardState,
    /// Index and term of the last snapshot (its data stays with the caller), if any.
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot, in order, contiguous.
    pub entries: Vec<Entry>,
}

/// One batch of work for the caller; see the module docs for the order of duties.
#[derive(Clone, Debug, Default)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub committed: Vec<Entry>,
    pub read_states: Vec<ReadState>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.read_states.is_empty()
    }
}

/// Why a proposal or read was refused before anything happened (definite).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
}

/// Peer progress, for `/status`.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    pub id: NodeId,
    pub match_index: Index,
    pub next_index: Index,
}

/// A snapshot of the core's state, for `/status` and for tests.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit: Index,
    pub last_index: Index,
    pub snapshot_index: Index,
    /// Empty unless leader.
    pub peers: Vec<PeerStatus>,
}

/// The Raft state machine of one node.
#[derive(Clone, Debug, Hash)]
pub struct RawNode {
    _private: (),
    raft: core::Raft,
}

impl RawNode {
    /// A node restarting from `persisted` (or starting fresh from `Persisted::default()`),
    /// drawing its election timeouts from `rng`. A node with no peers elects itself at once.
    ///
    /// Panics if `persisted.entries` is not contiguous after the snapshot (the caller's
    /// storage is corrupt; it should have refused to start).
    pub fn new(config: Config, persisted: Persisted, rng: StdRng) -> Self {
        RawNode {
            _private: (),
            raft: core::Raft::new(config, persisted, rng),
        }
    }

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        self.raft.tick()
    }

    /// Handles a message from a peer. Messages for another node or malformed are ignored.
    pub fn step(&mut self, msg: Message) {
        self.raft.step(msg)
    }

    /// Appends `data` to the log if leader; returns the (index, term) it will have if
    /// committed. Refused definitely when not the leader.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(Index, Term), ProposeError> {
        self.raft.propose(data)
    }

    /// Asks for a linearizable read (ReadIndex, Raft §6.4): a `ReadState` with this `ctx`
    /// appears in a later `Ready` once leadership is confirmed by a majority after this call
    /// and the leader has committed an entry of its term. Refused definitely when not leader.
    ///
    /// If the node stops being leader before that, the read is dropped silently: the caller
    /// times it out (a read may always be failed) or watches `status().role`.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        self.raft.read_index(ctx)
    }

    /// Takes the pending batch of work. Call after every `tick`, `step`, `propose`,
    /// `read_index` (or a burst of them) and carry out its duties in order.
    pub fn ready(&mut self) -> Ready {
        self.raft.ready()
    }

    /// The caller has applied every entry up to `index` and its state machine snapshot `data`
    /// covers exactly that: discard the log up to `index` (kept for followers that need it
    /// only as a snapshot from now on).
    ///
    /// Ignored if `index` is at or below the current snapshot; panics if `index` was never
    /// handed out in `Ready.committed` (a bug in the caller).
    pub fn compact(&mut self, index: Index, data: Vec<u8>) {
        self.raft.compact(index, data)
    }

    /// A view of the node's state (role, term, leader, indices, peer progress).
    pub fn status(&self) -> Status {
        self.raft.status()
    }

    /// The current hard state (term, vote, commit), persisted or not.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.raft.term,
            vote: self.raft.vote.clone(),
            commit: self.raft.log.commit,
        }
    }

    /// Index and term of the last snapshot (0, 0 if none).
    pub fn snapshot_meta(&self) -> (Index, Term) {
        (self.raft.log.snapshot.index, self.raft.log.snapshot.term)
    }

    /// The entries after the snapshot, persisted or not (for tests and `/status`).
    pub fn entries(&self) -> &[Entry] {
        &self.raft.log.entries
    }

    /// The term of the entry at `index`, if it is in the log (or is the snapshot's).
    pub fn term_at(&self, index: Index) -> Option<Term> {
        self.raft.log.term(index)
    }

    /// The highest index handed out in `Ready.committed` (or installed by a snapshot).
    pub fn applied(&self) -> Index {
        self.raft.log.applied
    }
}

#[cfg(test)]
mod encoding_tests {
    use super::*;

    fn append_of(data: Vec<u8>) -> Message {
        Message {
            from: "n1".into(),
            to: "n2".into(),
            term: 3,
            body: MessageBody::Append {
                prev_log_index: 7,
                prev_log_term: 2,
                entries: vec![Entry {
                    term: 3,
                    index: 8,
                    data,
                }],
                commit: 7,
                read_ctx: 1,
            },
        }
    }

    #[test]
    fn messages_round_trip_through_json_with_base64_data() {
        let all: Vec<u8> = (0..=255u8).collect();
        for m in [
            append_of(all.clone()),
            append_of(Vec::new()),
            Message {
                from: "n1".into(),
                to: "n3".into(),
                term: 4,
                body: MessageBody::InstallSnapshot {
                    snapshot: Snapshot {
                        index: 9,
                        term: 4,
                        data: all.clone(),
                    },
                    offset: 0,
                    total: 0,
                },
            },
        ] {
            let json = serde_json::to_string(&m).unwrap();
            let back: Message = serde_json::from_str(&json).unwrap();
            assert_eq!(back, m, "{json}");
        }
        let json = serde_json::to_string(&append_of(b"hi".to_vec())).unwrap();
        assert!(json.contains(r#""data":"aGk=""#), "{json}");
    }

    #[test]
    fn data_as_an_array_of_numbers_is_still_read_and_bad_base64_is_refused() {
        let old = r#"{"from":"n1","to":"n2","term":3,"body":{"Append":{"prev_log_index":7,"prev_log_term":2,"entries":[{"term":3,"index":8,"data":[104,105]}],"commit":7,"read_ctx":1}}}"#;
        let m: Message = serde_json::from_str(old).unwrap();
        assert_eq!(m, append_of(b"hi".to_vec()));
        let bad = old.replace("[104,105]", "\"@@@\"");
        let err = serde_json::from_str::<Message>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("base64"), "{err}");
    }

    /// The figures in node/README.md: a 900 KB value's entry as a peer body.
    #[test]
    fn base64_bodies_are_at_most_a_third_larger_than_the_data() {
        // A PUT command of a 900 KB string value (what the HTTP layer proposes), and random
        // bytes (the worst case for the old decimal arrays).
        let cmd = serde_json::to_vec(&serde_json::json!({
            "op": "put", "key": "k", "value": "x".repeat(900_000), "request_id": "c1-1"
        }))
        .unwrap();
        let mut rng_bytes = Vec::with_capacity(900_000);
        let mut x: u32 = 12345;
        for _ in 0..900_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            rng_bytes.push((x >> 16) as u8);
        }
        #[derive(Serialize)]
        struct OldEntry<'a> {
            data: &'a Vec<u8>,
        }
        for (what, data) in [("json command", cmd), ("random bytes", rng_bytes)] {
            let new = serde_json::to_vec(&append_of(data.clone())).unwrap().len();
            let old = serde_json::to_vec(&OldEntry { data: &data }).unwrap().len();
            eprintln!(
                "{what}: {} data bytes → base64 body {new} ({:.2}×), decimal array {old} ({:.2}×)",
                data.len(),
                new as f64 / data.len() as f64,
                old as f64 / data.len() as f64
            );
            assert!(
                new as f64 <= data.len() as f64 * 1.34 + 300.0,
                "{what}: {new}"
            );
            assert!(old > new * 2, "{what}: old {old} new {new}");
        }
    }
}
