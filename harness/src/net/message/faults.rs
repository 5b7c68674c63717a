//! The message fault engine: pure and deterministic.
//!
//! Input: `(link, message, now)`; output: what to deliver on that link and when
//! ([`Delivery`]: a message and a time `at ≥ now`). No I/O, no clock, no threads: `now` is a
//! [`Duration`] since an origin the caller chooses, and randomness comes from one
//! [`StdRng`] per directed link, seeded by [`link_seed`]`(seed, link)`. So a link's decisions
//! depend only on the seed, the messages seen on that link and the faults active when each
//! was seen — not on how the tasks of other links were scheduled.
//!
//! # Pipeline, per message
//! 1. The [`WireView`] observes it (terms and roles as seen on the wire), whatever happens next.
//! 2. **Cut** (a partition is a set of cut directed links): dropped.
//! 3. **Loss** (`msg-loss`): dropped with probability `p`.
//! 4. **Trim** (`msg-trim`, appends with entries): only a prefix of the entries is kept, and
//!    `commit` is capped at the last kept index, exactly as the node's leader does when it
//!    sends fewer entries — a message the leader could legally have sent.
//! 5. The message (as delivered) is remembered on its link for replay (the last
//!    [`MEMORY`] messages).
//! 6. **Dup** (`msg-dup`): a second copy right after the first.
//! 7. **Replay** (`msg-replay`): after the message, an older one seen on the link earlier
//!    (chosen uniformly among the last `depth` remembered messages of the fault's kinds).
//! 8. **Delay** (`msg-delay`): each of the above deliveries goes at `now + delay + j`, `j`
//!    uniform in `0..=jitter` (a slow link; with jitter, later messages may overtake).
//! 9. **Reorder** (`msg-reorder`): each of the above deliveries is held for a further uniform
//!    delay in `0..=max_delay` with probability `p`; deliveries not held go at once, so later
//!    messages overtake held ones.
//!
//! Each fault has a kind filter ([`KindFilter`]) and a link selection ([`LinkSel`]); a random
//! draw is made only for a message the fault applies to. Faults are activated, replaced and
//! deactivated at any time ([`FaultEngine::set`], [`FaultEngine::clear`]) and combine freely.
//!
//! # Other messages
//! The engine works on any [`WireMessage`]: the node's Raft [`Message`] implements it fully
//! (kinds, trim, the wire view); the Maelstrom router can implement it for its own messages
//! with [`Kind::Other`] and the defaults (no trim, not observed), and every other fault works
//! unchanged.

use super::wire::{Kind, Summary};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use splitbrain_node::raft::{Index, Message, MessageBody, NodeId, Term};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

/// A directed link: messages from `.0` to `.1` (member ids).
pub type Link = (NodeId, NodeId);

/// What the engine needs of a message.
pub trait WireMessage: Clone {
    /// For kind filters.
    fn kind(&self) -> Kind;
    /// What the [`WireView`] learns from it; `None`: nothing.
    fn seen(&self) -> Option<Seen<'_>> {
        None
    }
    /// Whether `msg-trim` could shorten it (an append with entries).
    fn trimmable(&self) -> bool {
        false
    }
    /// The commit index it tells its receiver (an append's `commit`), for `hold_commit`.
    fn commit(&self) -> Option<u64> {
        None
    }
    /// Shortens it per `mode` (drawing from `rng` if the mode is random), as its sender could
    /// legally have sent it; returns how many entries were cut (0: left alone).
    fn trim(&mut self, mode: TrimMode, rng: &mut StdRng) -> usize {
        let _ = (mode, rng);
        0
    }
    /// Lowers the commit index it tells to at most `to` (for `hold_commit` cap).
    fn lower_commit(&mut self, to: u64) {
        let _ = to;
    }
}

/// What a message tells about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen<'a> {
    pub from: &'a str,
    pub term: Term,
    pub kind: Kind,
    /// A pre-vote or its answer: `term` is only prospective.
    pub pre_vote: bool,
    /// A successful append response: the sender's match index.
    pub matched: Option<Index>,
}

impl WireMessage for Message {
    fn kind(&self) -> Kind {
        Kind::of(&self.body)
    }

    fn seen(&self) -> Option<Seen<'_>> {
        let pre_vote = matches!(
            self.body,
            MessageBody::Vote { pre_vote: true, .. }
                | MessageBody::VoteResponse { pre_vote: true, .. }
        );
        let matched = match &self.body {
            MessageBody::AppendResponse {
                success: true,
                match_index,
                ..
            } => Some(*match_index),
            _ => None,
        };
        Some(Seen {
            from: &self.from,
            term: self.term,
            kind: self.kind(),
            pre_vote,
            matched,
        })
    }

    fn trimmable(&self) -> bool {
        matches!(&self.body, MessageBody::Append { entries, .. } if !entries.is_empty())
    }

    fn commit(&self) -> Option<u64> {
        match &self.body {
            MessageBody::Append { commit, .. } => Some(*commit),
            _ => None,
        }
    }

    fn lower_commit(&mut self, to: u64) {
        if let MessageBody::Append { commit, .. } = &mut self.body {
            *commit = (*commit).min(to);
        }
    }

    fn trim(&mut self, mode: TrimMode, rng: &mut StdRng) -> usize {
        let term = self.term;
        let MessageBody::Append {
            prev_log_index,
            entries,
            commit,
            ..
        } = &mut self.body
        else {
            return 0;
        };
        if entries.is_empty() {
            return 0;
        }
        let keep = match mode {
            TrimMode::DropOwnTerm => entries.iter().take_while(|e| e.term < term).count(),
            TrimMode::KeepAtMost(n) => n.min(entries.len()),
            TrimMode::RandomPrefix => rng.gen_range(0..entries.len()),
            TrimMode::KeepAll => entries.len(),
        };
        let cut = entries.len() - keep;
        entries.truncate(keep);
        // As the node's leader does for a shorter append: never claim a commit beyond what
        // this message lets the follower check.
        *commit = (*commit).min(*prev_log_index + keep as u64);
        cut
    }
}

/// Messages remembered per link for `msg-replay`.
pub const MEMORY: usize = 64;

/// The seed of a link's RNG: the run's seed mixed with both member ids (FNV-1a, then
/// SplitMix64's finaliser). Stable across Rust versions and platforms.
pub fn link_seed(seed: u64, link: &Link) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in link.0.bytes().chain([0xff]).chain(link.1.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = seed ^ h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Which message kinds a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KindFilter(u8);

impl KindFilter {
    pub const ALL: KindFilter = KindFilter(0b111_1111);
    pub const NONE: KindFilter = KindFilter(0);

    pub fn only(kinds: &[Kind]) -> KindFilter {
        KindFilter(kinds.iter().fold(0, |acc, k| acc | Self::bit(*k)))
    }

    fn bit(k: Kind) -> u8 {
        1 << (k as u8)
    }

    pub fn matches(self, k: Kind) -> bool {
        self.0 & Self::bit(k) != 0
    }

    /// Parses a comma list of `all`, `append`, `vote`, `snapshot` (requests), `responses`
    /// (every response), or a kind's own name (`append-resp`, …).
    pub fn parse(s: &str) -> Result<KindFilter, FaultError> {
        let mut f = KindFilter::NONE;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            f.0 |= match part {
                "all" => Self::ALL.0,
                "responses" => {
                    Self::only(&[Kind::VoteResp, Kind::AppendResp, Kind::SnapshotResp]).0
                }
                _ => match Kind::ALL.iter().find(|k| k.name() == part) {
                    Some(k) => Self::bit(*k),
                    None => {
                        return Err(FaultError::BadValue {
                            field: "kinds",
                            value: part.to_string(),
                            expected: "all, append, vote, snapshot, responses, vote-resp, \
                                       append-resp or snapshot-resp",
                        })
                    }
                },
            };
        }
        if f == KindFilter::NONE {
            return Err(FaultError::BadValue {
                field: "kinds",
                value: s.to_string(),
                expected: "at least one kind",
            });
        }
        Ok(f)
    }
}

impl fmt::Display for KindFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("all");
        }
        let names: Vec<&str> = Kind::ALL
            .iter()
            .filter(|k| self.matches(**k))
            .map(|k| k.name())
            .collect();
        f.write_str(&names.join(","))
    }
}

/// Which links a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LinkSel {
    #[default]
    All,
    /// Every link leaving one of these members (e.g. "the new leader's appends").
    From(BTreeSet<NodeId>),
    /// Exactly these directed links.
    Links(BTreeSet<Link>),
}

impl LinkSel {
    pub fn matches(&self, link: &Link) -> bool {
        match self {
            LinkSel::All => true,
            LinkSel::From(ids) => ids.contains(&link.0),
            LinkSel::Links(ls) => ls.contains(link),
        }
    }
}

/// How `msg-trim` shortens an AppendEntries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimMode {
    /// Keep only the entries of older terms than the message's (the leader's own term):
    /// Figure 8's first step. An append with no such entries is left alone.
    DropOwnTerm,
    /// Keep at most this many entries (0: a heartbeat with the same `prev`).
    KeepAtMost(usize),
    /// Keep a uniformly drawn prefix `0..len` (at least one entry is cut).
    RandomPrefix,
    /// Keep every entry (with `hold_commit`: only hold the commit index back).
    KeepAll,
}

/// What `msg-trim` does to appends that tell a commit index above the link's ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HoldCommit {
    /// Nothing: the commit index passes.
    #[default]
    Off,
    /// Drop them: as if the sender had crashed right after committing (Figure 8's step
    /// (c)→(d)); the receiver hears nothing more on that link.
    Drop,
    /// Deliver them with the commit index lowered to the ceiling: the receiver keeps getting
    /// entries and heartbeats (its election timer never runs out) but never learns that they
    /// were committed.
    Cap,
}

impl HoldCommit {
    /// As written in `hold-commit=…` and in the history (`false`, `true`, `"cap"`).
    pub fn json(self) -> serde_json::Value {
        match self {
            HoldCommit::Off => serde_json::json!(false),
            HoldCommit::Drop => serde_json::json!(true),
            HoldCommit::Cap => serde_json::json!("cap"),
        }
    }
}

/// One message fault with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// `msg-loss`: drop with probability `p`.
    Loss {
        p: f64,
        kinds: KindFilter,
        links: LinkSel,
    },
    /// `msg-dup`: deliver twice with probability `p`.
    Dup {
        p: f64,
        kinds: KindFilter,
        links: LinkSel,
    },
    /// `msg-reorder`: hold with probability `p` for a uniform delay up to `max_delay`.
    Reorder {
        p: f64,
        max_delay: Duration,
        kinds: KindFilter,
        links: LinkSel,
    },
    /// `msg-replay`: after a message, with probability `p`, re-deliver one of the last `depth`
    /// messages of `kinds` seen on that link (default kinds: append — a stale AppendEntries).
    Replay {
        p: f64,
        depth: usize,
        kinds: KindFilter,
        links: LinkSel,
    },
    /// `msg-trim`: shorten an append with entries, with probability `p`. With `hold_commit`
    /// other than [`HoldCommit::Off`], the first append on a link after the fault starts sets
    /// the link's ceiling (the commit index it tells, after trimming); later appends on it
    /// that tell a higher commit index are dropped ([`HoldCommit::Drop`]) or have their commit
    /// index lowered to the ceiling ([`HoldCommit::Cap`]), counted as `held_commits`: the
    /// receiver never learns what its sender committed afterwards. Only drops, legal trims and
    /// commit indexes a leader may tell (a lower one than its own, as etcd's heartbeats tell a
    /// follower `min(match, committed)`).
    Trim {
        p: f64,
        mode: TrimMode,
        links: LinkSel,
        hold_commit: HoldCommit,
    },
    /// `msg-delay`: every message of `kinds` waits `delay` plus a uniform `0..=jitter`
    /// (what the proxy network's `LinkFaults { delay, jitter }` does to chunks).
    Delay {
        delay: Duration,
        jitter: Duration,
        kinds: KindFilter,
        links: LinkSel,
    },
}

/// The name of a fault, as a nemesis would call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum FaultName {
    #[serde(rename = "msg-loss")]
    Loss,
    #[serde(rename = "msg-dup")]
    Dup,
    #[serde(rename = "msg-reorder")]
    Reorder,
    #[serde(rename = "msg-replay")]
    Replay,
    #[serde(rename = "msg-trim")]
    Trim,
    #[serde(rename = "msg-delay")]
    Delay,
}

impl FaultName {
    pub const ALL: [FaultName; 6] = [
        FaultName::Loss,
        FaultName::Dup,
        FaultName::Reorder,
        FaultName::Replay,
        FaultName::Trim,
        FaultName::Delay,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultName::Loss => "msg-loss",
            FaultName::Dup => "msg-dup",
            FaultName::Reorder => "msg-reorder",
            FaultName::Replay => "msg-replay",
            FaultName::Trim => "msg-trim",
            FaultName::Delay => "msg-delay",
        }
    }

    pub fn parse(s: &str) -> Result<FaultName, FaultError> {
        FaultName::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| FaultError::BadValue {
                field: "fault",
                value: s.to_string(),
                expected: "msg-loss, msg-dup, msg-reorder, msg-replay, msg-trim or msg-delay",
            })
    }
}

impl fmt::Display for FaultName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fault given bad parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("{fault}: `{field}` is {value}, expected {expected}")]
    OutOfRange {
        fault: FaultName,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("bad {field} `{value}`: expected {expected}")]
    BadValue {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl Fault {
    /// `msg-loss p` on every kind and link.
    pub fn loss(p: f64) -> Fault {
        Fault::Loss {
            p,
            kinds: KindFilter::ALL,
            links: LinkSel::All,
        }
    }
    /// `msg-dup p` on every kind and link.
    pub fn dup(p: f64) -> Fault {
        Fault::Dup {
            p,
            kinds: KindFilter::ALL,
            links: LinkSel::All,
        }
    }
    /// `msg-reorder` holding every message (p = 1) up to `max_delay`.
    pub fn reorder(max_delay: Duration) -> Fault {
        Fault::Reorder {
            p: 1.0,
            max_delay,
            kinds: KindFilter::ALL,
            links: LinkSel::All,
        }
    }
    /// `msg-replay p` of appends, from the last 16 messages of a link.
    pub fn replay(p: f64) -> Fault {
        Fault::Replay {
            p,
            depth: 16,
            kinds: KindFilter::only(&[Kind::Append]),
            links: LinkSel::All,
        }
    }
    /// `msg-delay` of every message on every link.
    pub fn delay(delay: Duration, jitter: Duration) -> Fault {
        Fault::Delay {
            delay,
            jitter,
            kinds: KindFilter::ALL,
            links: LinkSel::All,
        }
    }
    /// `msg-trim` of every append (p = 1) with `mode`.
    pub fn trim(mode: TrimMode) -> Fault {
        Fault::Trim {
            p: 1.0,
            mode,
            links: LinkSel::All,
            hold_commit: HoldCommit::Off,
        }
    }

    pub fn name(&self) -> FaultName {
        match self {
            Fault::Loss { .. } => FaultName::Loss,
            Fault::Dup { .. } => FaultName::Dup,
            Fault::Reorder { .. } => FaultName::Reorder,
            Fault::Replay { .. } => FaultName::Replay,
            Fault::Trim { .. } => FaultName::Trim,
            Fault::Delay { .. } => FaultName::Delay,
        }
    }

    /// The same fault restricted to `links`.
    pub fn on(mut self, sel: LinkSel) -> Fault {
        match &mut self {
            Fault::Loss { links, .. }
            | Fault::Dup { links, .. }
            | Fault::Reorder { links, .. }
            | Fault::Replay { links, .. }
            | Fault::Trim { links, .. }
            | Fault::Delay { links, .. } => *links = sel,
        }
        self
    }

    /// The same fault restricted to `kinds` (no effect on `msg-trim`, which only sees appends).
    pub fn kinds(mut self, k: KindFilter) -> Fault {
        match &mut self {
            Fault::Loss { kinds, .. }
            | Fault::Dup { kinds, .. }
            | Fault::Reorder { kinds, .. }
            | Fault::Replay { kinds, .. }
            | Fault::Delay { kinds, .. } => *kinds = k,
            Fault::Trim { .. } => {}
        }
        self
    }

    fn p(&self) -> f64 {
        match self {
            Fault::Loss { p, .. }
            | Fault::Dup { p, .. }
            | Fault::Reorder { p, .. }
            | Fault::Replay { p, .. }
            | Fault::Trim { p, .. } => *p,
            Fault::Delay { .. } => 1.0,
        }
    }

    /// Checks the parameters (probabilities in `0..=1`, replay depth in `1..=MEMORY`).
    pub fn validate(&self) -> Result<(), FaultError> {
        let p = self.p();
        if !(0.0..=1.0).contains(&p) {
            return Err(FaultError::OutOfRange {
                fault: self.name(),
                field: "p",
                value: p.to_string(),
                expected: "a probability within 0..=1",
            });
        }
        if let Fault::Replay { depth, .. } = self {
            if !(1..=MEMORY).contains(depth) {
                return Err(FaultError::OutOfRange {
                    fault: self.name(),
                    field: "depth",
                    value: depth.to_string(),
                    expected: "within 1..=64",
                });
            }
        }
        Ok(())
    }

    /// Parses `NAME key=value …` (space separated), e.g. `msg-loss p=0.2 kinds=append,vote`,
    /// `msg-reorder p=0.5 delay-ms=40`, `msg-replay p=0.1 depth=16 kinds=append`,
    /// `msg-trim mode=own-term|keep:N|random p=1 hold-commit=false`, `msg-delay delay-ms=20 jitter-ms=10`, with `from=n1,n2` or `links=n1>n2,n2>n3`
    /// restricting the links. Unset keys take the defaults of [`Fault::loss`] and friends.
    pub fn parse(s: &str) -> Result<Fault, FaultError> {
        let mut words = s.split_whitespace();
        let name = FaultName::parse(words.next().unwrap_or(""))?;
        let mut f = match name {
            FaultName::Loss => Fault::loss(1.0),
            FaultName::Dup => Fault::dup(1.0),
            FaultName::Reorder => Fault::reorder(Duration::from_millis(50)),
            FaultName::Replay => Fault::replay(1.0),
            FaultName::Trim => Fault::trim(TrimMode::DropOwnTerm),
            FaultName::Delay => Fault::delay(Duration::from_millis(20), Duration::ZERO),
        };
        for w in words {
            let (k, v) = w.split_once('=').ok_or_else(|| FaultError::BadValue {
                field: "parameter",
                value: w.to_string(),
                expected: "key=value",
            })?;
            let bad = |field: &'static str, expected: &'static str| FaultError::BadValue {
                field,
                value: v.to_string(),
                expected,
            };
            match (k, &mut f) {
                ("p", Fault::Delay { .. }) => {
                    return Err(bad("p", "nothing: msg-delay delays every message"))
                }
                ("delay-ms", Fault::Delay { delay, .. }) => {
                    *delay = Duration::from_millis(
                        v.parse()
                            .map_err(|_| bad("delay-ms", "whole milliseconds"))?,
                    )
                }
                ("jitter-ms", Fault::Delay { jitter, .. }) => {
                    *jitter = Duration::from_millis(
                        v.parse()
                            .map_err(|_| bad("jitter-ms", "whole milliseconds"))?,
                    )
                }
                ("p", _) => {
                    let x: f64 = v.parse().map_err(|_| bad("p", "a number"))?;
                    match &mut f {
                        Fault::Loss { p, .. }
                        | Fault::Dup { p, .. }
                        | Fault::Reorder { p, .. }
                        | Fault::Replay { p, .. }
                        | Fault::Trim { p, .. } => *p = x,
                        Fault::Delay { .. } => {}
                    }
                }
                ("kinds", Fault::Trim { .. }) => {
                    return Err(bad("kinds", "nothing: msg-trim only sees appends"))
                }
                ("kinds", _) => f = f.kinds(KindFilter::parse(v)?),
                ("delay-ms", Fault::Reorder { max_delay, .. }) => {
                    *max_delay = Duration::from_millis(
                        v.parse()
                            .map_err(|_| bad("delay-ms", "whole milliseconds"))?,
                    )
                }
                ("depth", Fault::Replay { depth, .. }) => {
                    *depth = v.parse().map_err(|_| bad("depth", "a count"))?
                }
                ("hold-commit", Fault::Trim { hold_commit, .. }) => {
                    *hold_commit = match v {
                        "false" | "off" => HoldCommit::Off,
                        "true" | "drop" => HoldCommit::Drop,
                        "cap" => HoldCommit::Cap,
                        _ => return Err(bad("hold-commit", "true (drop), false or cap")),
                    }
                }
                ("mode", Fault::Trim { mode, .. }) => {
                    *mode = match v {
                        "own-term" => TrimMode::DropOwnTerm,
                        "random" => TrimMode::RandomPrefix,
                        "all" => TrimMode::KeepAll,
                        _ => match v.strip_prefix("keep:").map(str::parse) {
                            Some(Ok(n)) => TrimMode::KeepAtMost(n),
                            _ => return Err(bad("mode", "own-term, random, all or keep:N")),
                        },
                    }
                }
                ("from", _) => {
                    let ids = v.split(',').map(str::to_string).collect();
                    f = f.on(LinkSel::From(ids));
                }
                ("links", _) => {
                    let mut ls = BTreeSet::new();
                    for l in v.split(',') {
                        let (a, b) = l
                            .split_once('>')
                            .ok_or_else(|| bad("links", "a comma list of FROM>TO"))?;
                        ls.insert((a.to_string(), b.to_string()));
                    }
                    f = f.on(LinkSel::Links(ls));
                }
                _ => {
                    return Err(FaultError::BadValue {
                        field: "parameter",
                        value: w.to_string(),
                        expected: "p, kinds, from, links, and delay-ms (msg-reorder), \
                                   depth (msg-replay), mode (msg-trim) or delay-ms and \
                                   jitter-ms (msg-delay, no p)",
                    })
                }
            }
        }
        f.validate()?;
        Ok(f)
    }
}

/// Why a delivery exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// The message as sent (possibly trimmed or held).
    Original,
    /// The second copy of `msg-dup`.
    Duplicate,
    /// An older message re-delivered by `msg-replay`.
    Replay,
}

/// Deliver `msg` on the link at `at` (≥ the `now` it was produced at).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery<M = Message> {
    pub at: Duration,
    pub msg: M,
    pub cause: Cause,
    /// Held by `msg-reorder` (not counting `msg-delay`).
    pub held: bool,
    /// Shortened by `msg-trim`.
    pub trimmed: bool,
}

/// Counts of what the faults did. `seen` = every parsed message; the relay adds its own
/// counts (`unparsed`, `refused`, `queue_full`, `undelivered`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Parsed messages that entered the engine.
    pub seen: u64,
    /// Deliveries produced (originals + duplicates + replays).
    pub delivered: u64,
    /// Dropped because their link was cut (partitions).
    pub cut: u64,
    /// Dropped by `msg-loss`.
    pub lost: u64,
    pub duplicated: u64,
    /// Deliveries held by `msg-reorder`.
    pub reordered: u64,
    pub replayed: u64,
    /// Deliveries slowed by `msg-delay`.
    pub delayed: u64,
    /// Appends shortened by `msg-trim`, and the entries cut from them.
    pub trimmed: u64,
    pub entries_trimmed: u64,
    /// Appends dropped by `msg-trim hold-commit=true` (they told a higher commit index).
    pub held_commits: u64,
    /// Peer bodies the relay could not parse and passed through untouched.
    pub unparsed: u64,
    /// Peer requests the relay refused as the node would (413 too large, 401 bad token).
    pub refused: u64,
    /// Deliveries dropped because the link's bounded queue was full.
    pub queue_full: u64,
    /// Deliveries whose POST to the destination failed or was refused.
    pub undelivered: u64,
}

/// A member's role as its messages show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeenRole {
    /// Sent appends or snapshots in `term`.
    Leader,
    /// Asked for votes in `term`.
    Candidate,
    /// Asked for pre-votes (`term` is then its current term, not the prospective one).
    PreCandidate,
    /// Only answered in `term`.
    Follower,
}

/// What the wire shows of one member.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeView {
    /// The highest term of a real (non-pre-vote) message it sent.
    pub term: Term,
    pub role: SeenRole,
    /// When its latest message was seen.
    pub last_seen: Duration,
    /// Its latest successful append response: `(term, match index)` — how far it holds the
    /// leader's log of that term.
    pub matched: Option<(Term, Index)>,
}

/// Terms and roles as seen on the wire, for aimed nemeses.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WireView {
    /// The highest term of any real message.
    pub term: Term,
    /// The member that sent appends or snapshots in the highest such term, and that term.
    pub leader: Option<(NodeId, Term)>,
    /// When that leader's first append of its term was seen.
    pub leader_since: Option<Duration>,
    pub nodes: BTreeMap<NodeId, NodeView>,
    /// The first term in which two different members were seen sending appends (two leaders
    /// in one term: a safety violation visible on the wire), with both.
    pub two_leaders: Option<(Term, NodeId, NodeId)>,
}

impl WireView {
    /// The leader if no higher term has been seen since it was (no election under way).
    pub fn current_leader(&self) -> Option<&NodeId> {
        match &self.leader {
            Some((id, t)) if *t == self.term => Some(id),
            _ => None,
        }
    }

    /// Observes one message; returns whether `term` or `leader` changed.
    pub fn observe(&mut self, m: Seen<'_>, now: Duration) -> bool {
        let (kind, pre) = (m.kind, m.pre_vote);
        let mut changed = false;
        let role = match kind {
            Kind::Append | Kind::Snapshot => SeenRole::Leader,
            Kind::Vote if pre => SeenRole::PreCandidate,
            Kind::Vote => SeenRole::Candidate,
            _ => SeenRole::Follower,
        };
        if !self.nodes.contains_key(m.from) {
            self.nodes.insert(
                m.from.to_string(),
                NodeView {
                    term: 0,
                    role,
                    last_seen: now,
                    matched: None,
                },
            );
        }
        // Just inserted if it was missing.
        let node = self.nodes.get_mut(m.from).expect("a node view");
        node.last_seen = now;
        if let Some(i) = m.matched {
            node.matched = Some((m.term, i));
        }
        if pre {
            // A pre-vote's term is prospective: it says nothing about the sender's term.
            if kind == Kind::Vote {
                node.role = SeenRole::PreCandidate;
            }
        } else if m.term >= node.term {
            if m.term > node.term || role != SeenRole::Follower || node.role == SeenRole::Follower {
                node.role = role;
            }
            node.term = m.term;
        }
        if !pre && m.term > self.term {
            self.term = m.term;
            changed = true;
        }
        if role == SeenRole::Leader {
            match &self.leader {
                Some((id, t)) if *t == m.term && id != m.from => {
                    if self.two_leaders.is_none() {
                        self.two_leaders = Some((m.term, id.clone(), m.from.to_string()));
                    }
                }
                Some((_, t)) if *t >= m.term => {}
                _ => {
                    self.leader = Some((m.from.to_string(), m.term));
                    self.leader_since = Some(now);
                    changed = true;
                }
            }
        }
        changed
    }
}

/// One link's state: its RNG and its memory of past messages.
struct LinkState<M> {
    rng: StdRng,
    memory: VecDeque<M>,
}

/// The engine. See the module docs.
pub struct FaultEngine<M = Message> {
    seed: u64,
    active: BTreeMap<FaultName, Fault>,
    cuts: BTreeSet<Link>,
    links: HashMap<Link, LinkState<M>>,
    /// `msg-trim hold-commit`: per link, the commit index its first trimmed append told.
    commit_ceilings: HashMap<Link, u64>,
    counters: Counters,
    view: WireView,
}

impl<M: WireMessage> FaultEngine<M> {
    /// An engine with no faults active; `seed` derives every link's RNG.
    pub fn new(seed: u64) -> FaultEngine<M> {
        FaultEngine {
            seed,
            active: BTreeMap::new(),
            cuts: BTreeSet::new(),
            links: HashMap::new(),
            commit_ceilings: HashMap::new(),
            counters: Counters::default(),
            view: WireView::default(),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Activates `fault`, replacing an active fault of the same name.
    pub fn set(&mut self, fault: Fault) -> Result<(), FaultError> {
        fault.validate()?;
        if fault.name() == FaultName::Trim {
            self.commit_ceilings.clear();
        }
        self.active.insert(fault.name(), fault);
        Ok(())
    }

    /// Deactivates a fault; returns whether it was active.
    pub fn clear(&mut self, name: FaultName) -> bool {
        if name == FaultName::Trim {
            self.commit_ceilings.clear();
        }
        self.active.remove(&name).is_some()
    }

    pub fn active(&self) -> impl Iterator<Item = &Fault> {
        self.active.values()
    }

    /// Makes exactly `cuts` the set of cut directed links (empty: no partition).
    pub fn set_cuts(&mut self, cuts: BTreeSet<Link>) {
        self.cuts = cuts;
    }

    pub fn cuts(&self) -> &BTreeSet<Link> {
        &self.cuts
    }

    pub fn is_cut(&self, link: &Link) -> bool {
        self.cuts.contains(link)
    }

    /// Deactivates every fault and heals every cut.
    pub fn heal(&mut self) {
        self.active.clear();
        self.commit_ceilings.clear();
        self.cuts.clear();
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// For the relay's own counts.
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    pub fn view(&self) -> &WireView {
        &self.view
    }

    /// Runs one message through the faults; appends its deliveries to `out` (in the order
    /// they should go when their times are equal). Returns whether the [`WireView`]'s term
    /// or leader changed.
    pub fn on_message(
        &mut self,
        link: &Link,
        mut msg: M,
        now: Duration,
        out: &mut Vec<Delivery<M>>,
    ) -> bool {
        self.counters.seen += 1;
        let changed = match msg.seen() {
            Some(seen) => self.view.observe(seen, now),
            None => false,
        };
        if self.cuts.contains(link) {
            self.counters.cut += 1;
            return changed;
        }
        let seed = self.seed;
        let st = self.links.entry(link.clone()).or_insert_with(|| LinkState {
            rng: StdRng::seed_from_u64(link_seed(seed, link)),
            memory: VecDeque::with_capacity(MEMORY),
        });
        let kind = msg.kind();
        let active = &self.active;
        let counters = &mut self.counters;

        if let Some(Fault::Loss { p, kinds, links }) = active.get(&FaultName::Loss) {
            if kinds.matches(kind) && links.matches(link) && st.rng.gen_bool(*p) {
                counters.lost += 1;
                return changed;
            }
        }

        let mut trimmed = false;
        if let Some(Fault::Trim {
            p,
            mode,
            links,
            hold_commit,
        }) = active.get(&FaultName::Trim)
        {
            if links.matches(link) {
                if let (Some(c), Some(&cap)) = (msg.commit(), self.commit_ceilings.get(link)) {
                    if c > cap {
                        match hold_commit {
                            HoldCommit::Off => {}
                            HoldCommit::Drop => {
                                counters.held_commits += 1;
                                return changed;
                            }
                            HoldCommit::Cap => {
                                counters.held_commits += 1;
                                msg.lower_commit(cap);
                            }
                        }
                    }
                }
                if msg.trimmable() && st.rng.gen_bool(*p) {
                    let cut = msg.trim(*mode, &mut st.rng);
                    if cut > 0 {
                        counters.trimmed += 1;
                        counters.entries_trimmed += cut as u64;
                        trimmed = true;
                    }
                }
                if *hold_commit != HoldCommit::Off {
                    if let Some(c) = msg.commit() {
                        self.commit_ceilings.entry(link.clone()).or_insert(c);
                    }
                }
            }
        }

        let first = out.len();
        // Choose the replayed message before remembering this one: it must be older.
        // Replay's kinds choose what is replayed, not what triggers it.
        let mut replay = None;
        if let Some(Fault::Replay {
            p,
            depth,
            kinds,
            links,
        }) = active.get(&FaultName::Replay)
        {
            if links.matches(link) {
                let candidates: Vec<usize> = (0..st.memory.len())
                    .rev()
                    .filter(|i| kinds.matches(st.memory[*i].kind()))
                    .take(*depth)
                    .collect();
                if !candidates.is_empty() && st.rng.gen_bool(*p) {
                    let i = candidates[st.rng.gen_range(0..candidates.len())];
                    replay = Some(st.memory[i].clone());
                }
            }
        }
        if st.memory.len() == MEMORY {
            st.memory.pop_front();
        }
        st.memory.push_back(msg.clone());

        let mut dup = false;
        if let Some(Fault::Dup { p, kinds, links }) = active.get(&FaultName::Dup) {
            dup = kinds.matches(kind) && links.matches(link) && st.rng.gen_bool(*p);
        }
        let original = Delivery {
            at: now,
            msg,
            cause: Cause::Original,
            held: false,
            trimmed,
        };
        if dup {
            counters.duplicated += 1;
            let copy = Delivery {
                cause: Cause::Duplicate,
                ..original.clone()
            };
            out.push(original);
            out.push(copy);
        } else {
            out.push(original);
        }
        if let Some(old) = replay {
            counters.replayed += 1;
            out.push(Delivery {
                at: now,
                msg: old,
                cause: Cause::Replay,
                held: false,
                trimmed: false,
            });
        }

        if let Some(Fault::Delay {
            delay,
            jitter,
            kinds,
            links,
        }) = active.get(&FaultName::Delay)
        {
            if links.matches(link) {
                let max = jitter.as_micros() as u64;
                for d in &mut out[first..] {
                    if kinds.matches(d.msg.kind()) {
                        let j = if max == 0 {
                            0
                        } else {
                            st.rng.gen_range(0..=max)
                        };
                        d.at += *delay + Duration::from_micros(j);
                        counters.delayed += 1;
                    }
                }
            }
        }
        if let Some(Fault::Reorder {
            p,
            max_delay,
            kinds,
            links,
        }) = active.get(&FaultName::Reorder)
        {
            if links.matches(link) {
                let max = max_delay.as_micros() as u64;
                for d in &mut out[first..] {
                    if kinds.matches(d.msg.kind()) && st.rng.gen_bool(*p) {
                        d.at += Duration::from_micros(st.rng.gen_range(0..=max));
                        d.held = true;
                        counters.reordered += 1;
                    }
                }
            }
        }
        self.counters.delivered += (out.len() - first) as u64;
        changed
    }

    /// Counts a body passed through unparsed.
    pub fn note_unparsed(&mut self) {
        self.counters.unparsed += 1;
    }
}

/// A one-line summary of a delivery, for logs and tests: `append n1→n2 t3 i4 … (dup, held)`.
pub fn describe(d: &Delivery<Message>) -> String {
    let mut s = Summary::of(&d.msg).to_string();
    let mut tags = Vec::new();
    match d.cause {
        Cause::Original => {}
        Cause::Duplicate => tags.push("dup"),
        Cause::Replay => tags.push("replay"),
    }
    if d.trimmed {
        tags.push("trimmed");
    }
    if d.held {
        tags.push("held");
    }
    if !tags.is_empty() {
        s.push_str(&format!(" ({})", tags.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests;
