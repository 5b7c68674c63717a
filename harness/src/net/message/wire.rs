//! The peer wire format: bodies of `POST /raft/{vote,append,snapshot}` split into messages,
//! summarised, and encoded again.
//!
//! A body is one [`Message`] or a JSON array of them, parsed with the node's own serde types
//! (so an encoding change there — e.g. entry data as base64 — needs no change here). A body is
//! only *parsed* if the node would accept it: JSON of the right shape, every message of the
//! request's route and addressed to the link's destination. Anything else is a
//! [`WireError`], and the relay passes such a body through untouched (the node answers it).

use splitbrain_node::raft::{Index, Message, MessageBody, NodeId, Term};
use std::fmt;

/// Largest peer request body the node accepts on any route (its snapshot route's limit,
/// `splitbrain_node::http::PEER_SNAPSHOT_BODY_LIMIT`); see [`route_body_limit`] per route.
pub const BODY_LIMIT: usize = splitbrain_node::http::PEER_SNAPSHOT_BODY_LIMIT;

/// Largest body the node accepts on `POST /raft/<route>`: larger ones get `413` from the node
/// and from the relay.
pub fn route_body_limit(route: &str) -> usize {
    if route == "snapshot" {
        splitbrain_node::http::PEER_SNAPSHOT_BODY_LIMIT
    } else {
        splitbrain_node::http::PEER_BODY_LIMIT
    }
}
/// Header carrying the cluster token on peer routes.
pub const TOKEN_HEADER: &str = splitbrain_node::peer::TOKEN_HEADER;
/// The peer routes (`POST /raft/<route>`).
pub const ROUTES: [&str; 3] = ["vote", "append", "snapshot"];

/// What a message is. Responses are kinds of their own: they travel on the opposite link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Vote,
    VoteResp,
    Append,
    AppendResp,
    Snapshot,
    SnapshotResp,
    /// Not a Raft message (the Maelstrom router's messages).
    Other,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Vote,
        Kind::VoteResp,
        Kind::Append,
        Kind::AppendResp,
        Kind::Snapshot,
        Kind::SnapshotResp,
        Kind::Other,
    ];

    pub fn of(body: &MessageBody) -> Kind {
        match body {
            MessageBody::Vote { .. } => Kind::Vote,
            MessageBody::VoteResponse { .. } => Kind::VoteResp,
            MessageBody::Append { .. } => Kind::Append,
            MessageBody::AppendResponse { .. } => Kind::AppendResp,
            MessageBody::InstallSnapshot { .. } => Kind::Snapshot,
            MessageBody::InstallSnapshotResponse { .. } => Kind::SnapshotResp,
        }
    }

    /// The name used in summaries and fault parameters (`vote-resp`, …).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vote => "vote",
            Kind::VoteResp => "vote-resp",
            Kind::Append => "append",
            Kind::AppendResp => "append-resp",
            Kind::Snapshot => "snapshot",
            Kind::SnapshotResp => "snapshot-resp",
            Kind::Other => "other",
        }
    }

    pub fn is_response(self) -> bool {
        matches!(self, Kind::VoteResp | Kind::AppendResp | Kind::SnapshotResp)
    }

    /// The route that carries it (`other` for non-Raft messages, which have none).
    pub fn route(self) -> &'static str {
        match self {
            Kind::Vote | Kind::VoteResp => "vote",
            Kind::Append | Kind::AppendResp => "append",
            Kind::Snapshot | Kind::SnapshotResp => "snapshot",
            Kind::Other => "other",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the relay logs and reasons about for one message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub kind: Kind,
    /// A pre-vote round (vote and vote-resp only).
    pub pre_vote: bool,
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    /// The index the message is about: vote → candidate's last log index; append →
    /// `prev_log_index`; append-resp and snapshot-resp → `match_index`; snapshot → the
    /// snapshot's index.
    pub index: Index,
    /// Entries carried (append only).
    pub entries: usize,
    /// The terms of those entries, run-length encoded: `(term, count)` in log order.
    pub entry_terms: Vec<(Term, usize)>,
    /// The leader's commit index (append only).
    pub commit: Option<Index>,
    /// Granted / success (responses to vote and append).
    pub ok: Option<bool>,
}

impl Summary {
    pub fn of(m: &Message) -> Summary {
        let mut s = Summary {
            kind: Kind::of(&m.body),
            pre_vote: false,
            from: m.from.clone(),
            to: m.to.clone(),
            term: m.term,
            index: 0,
            entries: 0,
            entry_terms: Vec::new(),
            commit: None,
            ok: None,
        };
        match &m.body {
            MessageBody::Vote {
                pre_vote,
                last_log_index,
                ..
            } => {
                s.pre_vote = *pre_vote;
                s.index = *last_log_index;
            }
            MessageBody::VoteResponse { pre_vote, granted } => {
                s.pre_vote = *pre_vote;
                s.ok = Some(*granted);
            }
            MessageBody::Append {
                prev_log_index,
                entries,
                commit,
                ..
            } => {
                s.index = *prev_log_index;
                s.entries = entries.len();
                s.commit = Some(*commit);
                for e in entries {
                    match s.entry_terms.last_mut() {
                        Some((t, n)) if *t == e.term => *n += 1,
                        _ => s.entry_terms.push((e.term, 1)),
                    }
                }
            }
            MessageBody::AppendResponse {
                success,
                match_index,
                ..
            } => {
                s.index = *match_index;
                s.ok = Some(*success);
            }
            MessageBody::InstallSnapshot { snapshot, .. } => s.index = snapshot.index,
            MessageBody::InstallSnapshotResponse { match_index, .. } => s.index = *match_index,
        }
        s
    }
}

/// `append n1→n2 t5 i10 c9 +3[t4×2 t5]`, `vote-resp n2→n1 t5 ok`, `pre-vote n3→n1 t6 i12`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pre_vote {
            write!(f, "pre-")?;
        }
        write!(f, "{} {}→{} t{}", self.kind, self.from, self.to, self.term)?;
        if self.kind != Kind::VoteResp {
            write!(f, " i{}", self.index)?;
        }
        if let Some(c) = self.commit {
            write!(f, " c{c}")?;
        }
        if self.entries > 0 {
            write!(f, " +{}[", self.entries)?;
            for (i, (t, n)) in self.entry_terms.iter().enumerate() {
                let sep = if i == 0 { "" } else { " " };
                if *n == 1 {
                    write!(f, "{sep}t{t}")?;
                } else {
                    write!(f, "{sep}t{t}×{n}")?;
                }
            }
            write!(f, "]")?;
        }
        match self.ok {
            Some(true) => write!(f, " ok"),
            Some(false) => write!(f, " refused"),
            None => Ok(()),
        }
    }
}

/// Why a body was not parsed (the relay passes it through untouched and counts it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("no peer route /raft/{0} (vote, append, snapshot)")]
    UnknownRoute(String),
    #[error("body is not a raft Message or array of them: {0}")]
    NotMessages(String),
    #[error("message {index} of the body is a {kind} message sent to /raft/{route}")]
    WrongRoute {
        index: usize,
        kind: Kind,
        route: String,
    },
    #[error("message {index} of the body is for {to}, but this link leads to {link_to}")]
    WrongDestination {
        index: usize,
        to: NodeId,
        link_to: NodeId,
    },
    #[error("empty array of messages")]
    Empty,
}

/// Splits a body received on `/raft/{route}` of a link to `to` into its messages, in order.
/// Errors exactly where the node would refuse the body (plus an empty array, which the node
/// accepts and ignores, so that such a body is passed through rather than vanishing).
pub fn split(route: &str, to: &str, body: &[u8]) -> Result<Vec<Message>, WireError> {
    if !ROUTES.contains(&route) {
        return Err(WireError::UnknownRoute(route.to_string()));
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let msgs = if first == Some(&b'[') {
        serde_json::from_slice::<Vec<Message>>(body)
            .map_err(|e| WireError::NotMessages(e.to_string()))?
    } else {
        vec![serde_json::from_slice::<Message>(body)
            .map_err(|e| WireError::NotMessages(e.to_string()))?]
    };
    if msgs.is_empty() {
        return Err(WireError::Empty);
    }
    for (index, m) in msgs.iter().enumerate() {
        let kind = Kind::of(&m.body);
        if kind.route() != route {
            return Err(WireError::WrongRoute {
                index,
                kind,
                route: route.to_string(),
            });
        }
        if m.to != to {
            return Err(WireError::WrongDestination {
                index,
                to: m.to.clone(),
                link_to: to.to_string(),
            });
        }
    }
    Ok(msgs)
}

/// Encodes one message as a body of its own.
pub fn encode_one(m: &Message) -> Vec<u8> {
    // Serializing plain data with string keys cannot fail.
    serde_json::to_vec(m).expect("a raft Message serializes")
}

/// Encodes a batch (all of one route) as a JSON array.
pub fn encode_batch(ms: &[&Message]) -> Vec<u8> {
    // As above: plain data.
    serde_json::to_vec(ms).expect("raft Messages serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_node::raft::Entry;

    fn append(from: &str, to: &str, term: Term, prev: Index, terms: &[Term]) -> Message {
        Message {
            from: from.into(),
            to: to.into(),
            term,
            body: MessageBody::Append {
                prev_log_index: prev,
                prev_log_term: term,
                entries: terms
                    .iter()
                    .enumerate()
                    .map(|(i, t)| Entry {
                        term: *t,
                        index: prev + 1 + i as u64,
                        data: b"x".to_vec(),
                    })
                    .collect(),
                commit: prev,
                read_ctx: 0,
            },
        }
    }

    #[test]
    fn a_single_message_and_an_array_both_split() {
        let m = append("n1", "n2", 3, 4, &[2, 2, 3]);
        let one = encode_one(&m);
        assert_eq!(split("append", "n2", &one).unwrap(), vec![m.clone()]);
        let m2 = append("n1", "n2", 3, 7, &[]);
        let batch = encode_batch(&[&m, &m2]);
        assert_eq!(split("append", "n2", &batch).unwrap(), vec![m, m2]);
    }

    #[test]
    fn a_summary_names_kind_terms_and_entries() {
        let s = Summary::of(&append("n1", "n2", 3, 4, &[2, 2, 3]));
        assert_eq!(s.kind, Kind::Append);
        assert_eq!((s.term, s.index, s.entries), (3, 4, 3));
        assert_eq!(s.entry_terms, vec![(2, 2), (3, 1)]);
        assert_eq!(s.to_string(), "append n1→n2 t3 i4 c4 +3[t2×2 t3]");
        let v = Message {
            from: "n3".into(),
            to: "n1".into(),
            term: 6,
            body: MessageBody::Vote {
                pre_vote: true,
                last_log_index: 12,
                last_log_term: 5,
            },
        };
        assert_eq!(Summary::of(&v).to_string(), "pre-vote n3→n1 t6 i12");
    }

    #[test]
    fn bodies_the_node_would_refuse_are_errors() {
        let m = append("n1", "n2", 3, 4, &[]);
        assert!(matches!(
            split("append", "n2", b"{not json"),
            Err(WireError::NotMessages(_))
        ));
        assert!(matches!(
            split("vote", "n2", &encode_one(&m)),
            Err(WireError::WrongRoute { index: 0, .. })
        ));
        assert!(matches!(
            split("append", "n3", &encode_one(&m)),
            Err(WireError::WrongDestination { .. })
        ));
        assert!(matches!(
            split("kv", "n2", &encode_one(&m)),
            Err(WireError::UnknownRoute(_))
        ));
        assert_eq!(split("append", "n2", b" []"), Err(WireError::Empty));
    }
}
