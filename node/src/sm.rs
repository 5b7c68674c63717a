//! The replicated state machine: keys → JSON values, with write and compare-and-set, and
//! request-id deduplication by client session.
//!
//! # Sessions (bounded dedup memory)
//! A request id looks like `c3-17`: client `c3`, sequence number 17 (split at the last `-`).
//! Per client the machine keeps only the highest sequence number applied and its answer:
//! - a command with a higher sequence number is applied and becomes the session's answer;
//! - the same sequence number is not applied again; it gets the recorded answer (a retry after
//!   a timeout, a leader change, a restart or a snapshot answers as the first did);
//! - a lower sequence number is not applied and answers [`Outcome::Stale`]: the client has moved
//!   on, and whether that old request applied is no longer known (an indefinite answer).
//!
//! At most [`SESSION_CAP`] sessions are kept; beyond it the least recently used one (by the log
//! index that last touched it) is evicted. Eviction is a function of the log alone, so every
//! replica evicts the same sessions. A client idle for more than `SESSION_CAP` other clients'
//! writes loses its dedup protection (a retry after that may apply twice), the same trade-off as
//! Raft's §6.3 session expiry. Reads never create session state. Sessions are part of the
//! snapshot.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::raft::Index;

/// How many client sessions are remembered for deduplication.
pub const SESSION_CAP: usize = 10_000;

/// A command in a log entry (JSON-encoded in `Entry::data`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Command {
    Put {
        key: String,
        value: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    Cas {
        key: String,
        from: Value,
        to: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Appends `value` to the list at `key` (an absent key becomes `[value]`); a key holding
    /// anything but a list answers [`Outcome::NotAList`] and changes nothing.
    Append {
        key: String,
        value: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
}

impl Command {
    fn request_id(&self) -> Option<&str> {
        match self {
            Command::Put { request_id, .. }
            | Command::Cas { request_id, .. }
            | Command::Append { request_id, .. } => request_id.as_deref(),
        }
    }
}

/// The answer to a command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    CasMismatch {
        current: Value,
    },
    /// A retry of a request older than the client's latest: not applied now; whether it
    /// applied before is unknown.
    Stale,
    /// An append to a key that holds something other than a list (definite: nothing changed).
    NotAList {
        current: Value,
    },
}

/// A request id split into client and sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId {
    pub client: String,
    pub seq: u64,
}

impl RequestId {
    /// Parses `client-seq` (split at the last `-`; the client part must be non-empty).
    pub fn parse(s: &str) -> Result<RequestId, String> {
        let (client, seq) = s.rsplit_once('-').ok_or_else(|| {
            format!("request_id {s:?} is not of the form CLIENT-SEQ (e.g. c3-17)")
        })?;
        if client.is_empty() {
            return Err(format!("request_id {s:?} has an empty client part"));
        }
        let seq = seq
            .parse::<u64>()
            .map_err(|_| format!("request_id {s:?}: {seq:?} is not a sequence number"))?;
        Ok(RequestId {
            client: client.to_string(),
            seq,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Session {
    seq: u64,
    answer: Outcome,
    /// Log index of the last command of this client (LRU order).
    last_index: Index,
}

#[derive(Serialize, Deserialize)]
struct SnapshotData {
    kv: BTreeMap<String, Value>,
    sessions: Vec<(String, Session)>,
}

/// The key-value state of one replica.
#[derive(Debug)]
pub struct StateMachine {
    kv: BTreeMap<String, Value>,
    sessions: HashMap<String, Session>,
    /// `last_index → client`, the LRU order of sessions.
    lru: BTreeMap<Index, String>,
    cap: usize,
    /// `--bug no-dedup`: apply every command, retries included.
    no_dedup: bool,
}

impl StateMachine {
    pub fn new(no_dedup: bool) -> Self {
        Self::with_cap(SESSION_CAP, no_dedup)
    }

    pub fn with_cap(cap: usize, no_dedup: bool) -> Self {
        StateMachine {
            kv: BTreeMap::new(),
            sessions: HashMap::new(),
            lru: BTreeMap::new(),
            cap: cap.max(1),
            no_dedup,
        }
    }

    /// The current value of `key` (`Null` if absent).
    pub fn read(&self, key: &str) -> Value {
        self.kv.get(key).cloned().unwrap_or(Value::Null)
    }

    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Applies the command at log `index`. Commands with a malformed request id are applied
    /// without dedup (the HTTP layer refuses them before proposing).
    pub fn apply(&mut self, index: Index, cmd: &Command) -> Outcome {
        let rid = cmd.request_id().and_then(|r| RequestId::parse(r).ok());
        if let Some(rid) = &rid {
            if let Some(s) = self.sessions.get(&rid.client) {
                if !self.no_dedup {
                    if rid.seq == s.seq {
                        let answer = s.answer.clone();
                        self.touch(&rid.client, index);
                        return answer;
                    }
                    if rid.seq < s.seq {
                        return Outcome::Stale;
                    }
                }
            }
        }
        let answer = self.execute(cmd);
        if let Some(rid) = rid {
            let prev = self.sessions.insert(
                rid.client.clone(),
                Session {
                    seq: rid.seq,
                    answer: answer.clone(),
                    last_index: index,
                },
            );
            if let Some(p) = prev {
                self.lru.remove(&p.last_index);
            }
            self.lru.insert(index, rid.client);
            while self.sessions.len() > self.cap {
                // The map is non-empty: it holds more sessions than cap >= 1.
                let (_, client) = self.lru.pop_first().unwrap();
                self.sessions.remove(&client);
            }
        }
        answer
    }

    fn touch(&mut self, client: &str, index: Index) {
        if let Some(s) = self.sessions.get_mut(client) {
            self.lru.remove(&s.last_index);
            s.last_index = index;
            self.lru.insert(index, client.to_string());
        }
    }

    fn execute(&mut self, cmd: &Command) -> Outcome {
        match cmd {
            Command::Put { key, value, .. } => {
                self.kv.insert(key.clone(), value.clone());
                Outcome::Ok
            }
            Command::Cas { key, from, to, .. } => {
                let current = self.read(key);
                if &current == from {
                    self.kv.insert(key.clone(), to.clone());
                    Outcome::Ok
                } else {
                    Outcome::CasMismatch { current }
                }
            }
            Command::Append { key, value, .. } => match self.kv.get_mut(key) {
                None => {
                    self.kv
                        .insert(key.clone(), Value::Array(vec![value.clone()]));
                    Outcome::Ok
                }
                Some(Value::Array(list)) => {
                    list.push(value.clone());
                    Outcome::Ok
                }
                Some(other) => Outcome::NotAList {
                    current: other.clone(),
                },
            },
        }
    }

    /// What `cmd` would answer against the current state, without applying it (for
    /// `--bug ack-before-commit`, which answers before the entry is applied).
    pub fn judge(&self, cmd: &Command) -> Outcome {
        match cmd {
            Command::Put { .. } => Outcome::Ok,
            Command::Cas { key, from, .. } => {
                let current = self.read(key);
                if &current == from {
                    Outcome::Ok
                } else {
                    Outcome::CasMismatch { current }
                }
            }
            Command::Append { key, .. } => match self.kv.get(key) {
                None | Some(Value::Array(_)) => Outcome::Ok,
                Some(other) => Outcome::NotAList {
                    current: other.clone(),
                },
            },
        }
    }

    /// A stable digest of the keys, values and sessions: CRC-32 (`crc32fast`) over a canonical
    /// encoding (keys in order, each as its length, bytes and JSON value; then sessions by
    /// client id with sequence number, answer and last index), as 8 hex digits. Equal on every
    /// replica that applied the same log prefix, on every platform and run.
    pub fn digest(&self) -> String {
        struct H(crc32fast::Hasher);
        impl std::io::Write for H {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.update(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut h = H(crc32fast::Hasher::new());
        let field = |h: &mut H, b: &[u8]| {
            h.0.update(&(b.len() as u64).to_le_bytes());
            h.0.update(b);
        };
        h.0.update(&(self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            field(&mut h, k.as_bytes());
            // Writing JSON into a hasher cannot fail (the writer never errs).
            serde_json::to_writer(&mut h, v).expect("value serializes");
            h.0.update(&[0xff]);
        }
        let mut clients: Vec<(&String, &Session)> = self.sessions.iter().collect();
        clients.sort_by(|a, b| a.0.cmp(b.0));
        h.0.update(&(clients.len() as u64).to_le_bytes());
        for (c, sess) in clients {
            field(&mut h, c.as_bytes());
            h.0.update(&sess.seq.to_le_bytes());
            h.0.update(&sess.last_index.to_le_bytes());
            serde_json::to_writer(&mut h, &sess.answer).expect("answer serializes");
            h.0.update(&[0xff]);
        }
        format!("{:08x}", h.0.finalize())
    }

    /// Serializes keys and sessions.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut sessions: Vec<(String, Session)> = self
            .sessions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        sessions.sort_by_key(|(_, s)| s.last_index);
        let data = SnapshotData {
            kv: self.kv.clone(),
            sessions,
        };
        // Serializing maps with string keys and JSON values cannot fail.
        serde_json::to_vec(&data).expect("state machine serializes")
    }

    /// Replaces the state with a snapshot's (an empty snapshot is the empty state).
    pub fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        if data.is_empty() {
            self.kv.clear();
            self.sessions.clear();
            self.lru.clear();
            return Ok(());
        }
        let d: SnapshotData =
            serde_json::from_slice(data).map_err(|e| format!("bad snapshot data: {e}"))?;
        self.kv = d.kv;
        self.lru = d
            .sessions
            .iter()
            .map(|(c, s)| (s.last_index, c.clone()))
            .collect();
        self.sessions = d.sessions.into_iter().collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(key: &str, v: Value, rid: Option<&str>) -> Command {
        Command::Put {
            key: key.into(),
            value: v,
            request_id: rid.map(Into::into),
        }
    }
    fn cas(key: &str, from: Value, to: Value, rid: Option<&str>) -> Command {
        Command::Cas {
            key: key.into(),
            from,
            to,
            request_id: rid.map(Into::into),
        }
    }

    #[test]
    fn reads_writes_and_cas() {
        let mut sm = StateMachine::new(false);
        assert_eq!(sm.read("k"), Value::Null);
        assert_eq!(sm.apply(1, &put("k", json!(1), None)), Outcome::Ok);
        assert_eq!(sm.read("k"), json!(1));
        assert_eq!(
            sm.apply(2, &cas("k", json!(2), json!(3), None)),
            Outcome::CasMismatch { current: json!(1) }
        );
        assert_eq!(
            sm.apply(3, &cas("k", json!(1), json!(3), None)),
            Outcome::Ok
        );
        assert_eq!(sm.read("k"), json!(3));
        // cas from null on an absent key.
        assert_eq!(
            sm.apply(4, &cas("z", Value::Null, json!("a"), None)),
            Outcome::Ok
        );
        assert_eq!(sm.read("z"), json!("a"));
    }

    #[test]
    fn retried_write_applies_once_and_answers_as_the_first() {
        let mut sm = StateMachine::new(false);
        sm.apply(1, &put("k", json!(0), Some("c1-1")));
        assert_eq!(
            sm.apply(2, &cas("k", json!(0), json!(1), Some("c2-1"))),
            Outcome::Ok
        );
        sm.apply(3, &put("k", json!(0), Some("c1-2")));
        // The retry of c2-1 must not apply again (it would now succeed and set 1).
        assert_eq!(
            sm.apply(4, &cas("k", json!(0), json!(1), Some("c2-1"))),
            Outcome::Ok
        );
        assert_eq!(sm.read("k"), json!(0));
        // A mismatch answer is remembered too.
        assert_eq!(
            sm.apply(5, &cas("k", json!(9), json!(1), Some("c3-1"))),
            Outcome::CasMismatch { current: json!(0) }
        );
        sm.apply(6, &put("k", json!(9), Some("c1-3")));
        assert_eq!(
            sm.apply(7, &cas("k", json!(9), json!(1), Some("c3-1"))),
            Outcome::CasMismatch { current: json!(0) }
        );
        assert_eq!(sm.read("k"), json!(9));
        // An older sequence number is stale, not applied.
        assert_eq!(
            sm.apply(8, &put("k", json!(5), Some("c1-1"))),
            Outcome::Stale
        );
        assert_eq!(sm.read("k"), json!(9));
    }

    #[test]
    fn no_dedup_bug_applies_retries_again() {
        let mut sm = StateMachine::new(true);
        sm.apply(1, &put("k", json!(0), Some("c1-1")));
        sm.apply(2, &cas("k", json!(0), json!(1), Some("c2-1")));
        sm.apply(3, &put("k", json!(0), Some("c1-2")));
        sm.apply(4, &cas("k", json!(0), json!(1), Some("c2-1")));
        assert_eq!(sm.read("k"), json!(1));
    }

    #[test]
    fn dedup_survives_a_snapshot_round_trip() {
        let mut sm = StateMachine::new(false);
        sm.apply(1, &put("a", json!({"x": [1, 2]}), Some("c1-5")));
        sm.apply(2, &cas("b", json!(1), json!(2), Some("c2-1")));
        let data = sm.snapshot();
        let mut other = StateMachine::new(false);
        other.apply(1, &put("junk", json!(1), None));
        other.restore(&data).unwrap();
        assert_eq!(other.read("a"), json!({"x": [1, 2]}));
        assert_eq!(other.read("junk"), Value::Null);
        other.apply(3, &put("a", json!(7), None));
        assert_eq!(
            other.apply(4, &put("a", json!(8), Some("c1-5"))),
            Outcome::Ok
        );
        assert_eq!(other.read("a"), json!(7), "retry after snapshot re-applied");
        assert_eq!(
            other.apply(5, &cas("b", json!(1), json!(2), Some("c2-1"))),
            Outcome::CasMismatch {
                current: Value::Null
            }
        );
        assert_eq!(other.snapshot(), {
            let mut again = StateMachine::new(false);
            again.restore(&other.snapshot()).unwrap();
            again.snapshot()
        });
    }

    #[test]
    fn sessions_are_bounded_by_evicting_the_least_recently_used() {
        let mut sm = StateMachine::with_cap(3, false);
        sm.apply(1, &put("k", json!(1), Some("a-1")));
        sm.apply(2, &put("k", json!(2), Some("b-1")));
        sm.apply(3, &put("k", json!(3), Some("c-1")));
        // Touch a (a retry), so b is now the least recently used.
        sm.apply(4, &put("k", json!(1), Some("a-1")));
        sm.apply(5, &put("k", json!(4), Some("d-1")));
        assert_eq!(sm.sessions(), 3);
        // a is still deduplicated; b was evicted, so its retry applies again.
        sm.apply(6, &put("k", json!(1), Some("a-1")));
        assert_eq!(sm.read("k"), json!(4));
        sm.apply(7, &put("k", json!(2), Some("b-1")));
        assert_eq!(sm.read("k"), json!(2));
        assert_eq!(sm.sessions(), 3);
        // The bound holds across many clients.
        for i in 0..1000 {
            sm.apply(10 + i, &put("k", json!(i), Some(&format!("x{i}-1"))));
        }
        assert_eq!(sm.sessions(), 3);
        let mut restored = StateMachine::with_cap(3, false);
        restored.restore(&sm.snapshot()).unwrap();
        assert_eq!(restored.sessions(), 3);
    }

    fn append(key: &str, v: Value, rid: Option<&str>) -> Command {
        Command::Append {
            key: key.into(),
            value: v,
            request_id: rid.map(Into::into),
        }
    }

    #[test]
    fn append_makes_a_list_and_refuses_a_non_list() {
        let mut sm = StateMachine::new(false);
        assert_eq!(sm.apply(1, &append("l", json!(1), None)), Outcome::Ok);
        assert_eq!(sm.apply(2, &append("l", json!("b"), None)), Outcome::Ok);
        assert_eq!(sm.read("l"), json!([1, "b"]));
        sm.apply(3, &put("s", json!(5), None));
        assert_eq!(
            sm.apply(4, &append("s", json!(1), None)),
            Outcome::NotAList { current: json!(5) }
        );
        assert_eq!(sm.read("s"), json!(5));
        assert_eq!(
            sm.judge(&append("s", json!(1), None)),
            Outcome::NotAList { current: json!(5) }
        );
        assert_eq!(sm.judge(&append("l", json!(1), None)), Outcome::Ok);
    }

    #[test]
    fn a_retried_append_applies_once() {
        let mut sm = StateMachine::new(false);
        sm.apply(1, &append("l", json!(1), Some("c1-1")));
        sm.apply(2, &append("l", json!(1), Some("c1-1")));
        assert_eq!(sm.read("l"), json!([1]));
        let mut buggy = StateMachine::new(true);
        buggy.apply(1, &append("l", json!(1), Some("c1-1")));
        buggy.apply(2, &append("l", json!(1), Some("c1-1")));
        assert_eq!(buggy.read("l"), json!([1, 1]));
    }

    #[test]
    fn the_digest_is_equal_for_the_same_prefix_and_differs_for_another_state() {
        let cmds = [
            put("a", json!(1), Some("c1-1")),
            append("l", json!("x"), Some("c2-1")),
            cas("a", json!(1), json!(2), None),
        ];
        let mut x = StateMachine::new(false);
        let mut y = StateMachine::new(false);
        let empty = x.digest();
        for (i, c) in cmds.iter().enumerate() {
            x.apply(i as u64 + 1, c);
            y.apply(i as u64 + 1, c);
        }
        assert_eq!(x.digest(), y.digest());
        assert_ne!(x.digest(), empty);
        // Through a snapshot: the same digest.
        let mut z = StateMachine::new(false);
        z.restore(&x.snapshot()).unwrap();
        assert_eq!(z.digest(), x.digest());
        // Another value, or only another session, gives another digest.
        let mut v = StateMachine::new(false);
        v.restore(&x.snapshot()).unwrap();
        v.apply(4, &put("a", json!(3), None));
        assert_ne!(v.digest(), x.digest());
        let mut s = StateMachine::new(false);
        s.restore(&x.snapshot()).unwrap();
        s.apply(4, &put("a", json!(2), Some("c9-1")));
        assert_eq!(s.read("a"), x.read("a"));
        assert_ne!(s.digest(), x.digest());
        // Stable across runs (no randomized hasher): a fixed state has a fixed digest.
        let mut f = StateMachine::new(false);
        f.apply(1, &put("k", json!(1), None));
        assert_eq!(f.digest(), f.digest());
        assert_eq!(f.digest().len(), 8);
    }

    #[test]
    fn reads_create_no_session_state() {
        let mut sm = StateMachine::new(false);
        sm.apply(1, &put("k", json!(1), Some("c1-1")));
        for _ in 0..100 {
            sm.read("k");
        }
        assert_eq!(sm.sessions(), 1);
    }

    #[test]
    fn parses_request_ids() {
        assert_eq!(
            RequestId::parse("c3-17").unwrap(),
            RequestId {
                client: "c3".into(),
                seq: 17
            }
        );
        assert_eq!(RequestId::parse("a-b-2").unwrap().client, "a-b");
        assert!(RequestId::parse("c3").is_err());
        assert!(RequestId::parse("-3").is_err());
        assert!(RequestId::parse("c3-x").is_err());
    }
}
