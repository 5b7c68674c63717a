//! The router: the harness is the Maelstrom nodes' network.
//!
//! Every line a node writes on stdout comes here ([`Router::route`], with the id of the node
//! that *wrote* it, whatever its `src` says) and goes, by its `dest`:
//! - to a **node**: through the message fault engine on the directed link (writer → dest)
//!   (`crate::net::message::faults`: partitions as cut links, `msg-loss`, `msg-dup`,
//!   `msg-reorder`, `msg-replay`, `msg-delay`, the same decisions as `--net message`), then
//!   Maelstrom's latency, then onto the destination's **own outgoing queue** (a bounded channel
//!   drained by a writer thread per process: a SIGSTOPped node fills only its own pipe and
//!   queue, never the router; a full queue drops and counts);
//! - to a **client** `c…`: delivered to the waiting client whichever node sends it (a follower
//!   may answer for the leader), after latency; an answer to a `msg_id` the client never sent is
//!   bad input (logged, counted), a second or late answer to one it sent is counted as `late`;
//! - to a **service** (`lin-kv`): applied by the harness ([`super::protocol::LinKv`]), the
//!   answer sent back to the request's `src` after latency both ways;
//! - anywhere else: bad input (logged, counted).
//!
//! Client requests (client → node) and service traffic are not subject to partitions or message
//! faults (as in Jepsen, clients reach every node), only to latency.
//!
//! # Latency (Maelstrom's `--latency`, `--latency-dist`)
//! Every message is delayed by a draw from the distribution with mean `--latency` ms:
//! `constant` (exactly the mean), `uniform` (0..2×mean), `exponential` (mean). Draws come from
//! one RNG seeded from the run's seed.
//!
//! # Bad input
//! Lines that are not a JSON message, unknown destinations, answers to unknown `msg_id`s, a
//! node whose stdout closes: each is counted ([`Counts`]) and noted in the node's log
//! (`nodes/<id>.log`, lines starting `splitbrain:`; the first 50 per node and kind), and
//! routing goes on.

use super::protocol::{self, Addr, Envelope, INIT_CLIENT};
use crate::net::message::faults::{Delivery, WireMessage};
use crate::net::message::relay::EngineCell;
use crate::net::message::wire::Kind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One line as the engine sees it: cheap to clone (the engine remembers messages for replay),
/// with the Raft kind its body `type` names, if any ([`raft_kind`]).
#[derive(Debug, Clone)]
pub struct Line(pub Arc<str>, pub Kind);

impl WireMessage for Line {
    fn kind(&self) -> Kind {
        self.1
    }
}

/// The Raft message kind a Maelstrom body `type` names, so that the message faults' kind
/// filters (`msg-loss kinds=append`, `msg-replay`'s appends) reach Raft nodes written for
/// Maelstrom: a type containing `vote`, `append` or `snapshot` is that request, or its answer
/// if it ends in `_res`, `_ok`, `_resp`, `_response` or `_reply`; anything else is
/// [`Kind::Other`] (only faults on every kind apply to it).
pub fn raft_kind(kind: &str) -> Kind {
    let answer = ["_res", "_ok", "_resp", "_response", "_reply"]
        .iter()
        .any(|s| kind.ends_with(s));
    let k = kind.to_ascii_lowercase();
    match (
        k.contains("vote"),
        k.contains("append"),
        k.contains("snapshot"),
    ) {
        (true, _, _) if answer => Kind::VoteResp,
        (true, _, _) => Kind::Vote,
        (_, true, _) if answer => Kind::AppendResp,
        (_, true, _) => Kind::Append,
        (_, _, true) if answer => Kind::SnapshotResp,
        (_, _, true) => Kind::Snapshot,
        _ => Kind::Other,
    }
}

/// Shape of the latency distribution (Maelstrom's `--latency-dist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyDist {
    #[default]
    Constant,
    Uniform,
    Exponential,
}

/// Maelstrom's latency: a mean and a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Latency {
    pub mean: Duration,
    pub dist: LatencyDist,
}

impl Latency {
    /// One draw.
    pub fn draw(&self, rng: &mut StdRng) -> Duration {
        if self.mean.is_zero() {
            return Duration::ZERO;
        }
        let m = self.mean.as_secs_f64();
        let s = match self.dist {
            LatencyDist::Constant => m,
            LatencyDist::Uniform => rng.gen_range(0.0..=2.0 * m),
            // Inverse CDF; 1 - u is in (0, 1].
            LatencyDist::Exponential => -m * (1.0 - rng.gen::<f64>()).ln(),
        };
        Duration::from_secs_f64(s.min(3600.0))
    }
}

/// What the router saw and did (results.json's `maelstrom`, the summary's `maelstrom` line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Lines read from nodes' stdout.
    pub lines: u64,
    /// Messages handed to a destination (a node's queue, a client, the service).
    pub delivered: u64,
    /// Lines that are not a Maelstrom message (not JSON, no src/dest/body).
    pub bad_lines: u64,
    /// Messages to a destination that is no node, client or service.
    pub unknown_dest: u64,
    /// Answers to a client's `msg_id` it never sent (or with no `in_reply_to`).
    pub unknown_replies: u64,
    /// Answers to a request the client already had an answer for or gave up on.
    pub late_replies: u64,
    /// Messages to a node that was not running (killed, not yet restarted) when due.
    pub to_down_node: u64,
    /// Deliveries dropped because the destination's queue was full (a long pause).
    pub queue_full: u64,
    /// Processes whose stdout closed (they exited or were killed).
    pub stdout_closed: u64,
    /// `init` answered with something other than `init_ok`.
    pub init_errors: u64,
    /// Requests the services answered.
    pub service_requests: u64,
}

/// A delivery waiting for its time.
struct Held {
    at: Instant,
    seq: u64,
    to: Dest,
    line: Arc<str>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Debug, Clone)]
enum Dest {
    Node(String),
    Client(String),
    Service(String),
}

/// Where a node's deliveries go: its writer thread's queue, tagged with the incarnation.
struct Endpoint {
    incarnation: u64,
    tx: SyncSender<Arc<str>>,
}

#[derive(Default)]
struct ClientSlot {
    next_msg_id: u64,
    pending: HashMap<u64, oneshot::Sender<Map<String, Value>>>,
}

struct State {
    endpoints: HashMap<String, Endpoint>,
    /// Node → the incarnation that answered its `init` with `init_ok`.
    ready: HashMap<String, u64>,
    /// Node → (incarnation, msg_id of its `init`).
    init_sent: HashMap<String, (u64, u64)>,
    clients: HashMap<String, ClientSlot>,
    services: BTreeMap<&'static str, protocol::LinKv>,
    rng: StdRng,
    counts: Counts,
    /// Notes written per (node, kind), to cap log noise.
    noted: HashMap<(String, &'static str), u32>,
    /// Logs of nodes that are gone (for notes about lines they wrote last).
    logs: HashMap<String, PathBuf>,
}

struct Timer {
    heap: Mutex<BinaryHeap<Held>>,
    wake: Condvar,
}

/// What the router needs to start.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// `n0 … n(N-1)`.
    pub nodes: Vec<String>,
    /// Seeds the fault engine (per link) and the latency RNG.
    pub seed: u64,
    pub latency: Latency,
    /// Deliveries per node queue (default 100 000).
    pub queue: usize,
}

impl RouterConfig {
    pub fn new(nodes: Vec<String>, seed: u64) -> RouterConfig {
        RouterConfig {
            nodes,
            seed,
            latency: Latency::default(),
            queue: 100_000,
        }
    }
}

struct Shared {
    cfg: RouterConfig,
    engine: Arc<EngineCell<Line>>,
    state: Mutex<State>,
    timer: Timer,
    seq: AtomicU64,
    next_client: AtomicU64,
    next_incarnation: AtomicU64,
}

/// The router. Cheap to clone. See the module docs.
#[derive(Clone)]
pub struct Router {
    shared: Arc<Shared>,
}

/// The most notes per node and kind written to its log.
const NOTE_LIMIT: u32 = 50;
/// The longest line read from a node (longer lines are cut and counted as bad).
const MAX_LINE: usize = 16 << 20;

impl Router {
    /// A router for `cfg.nodes`, with its timer thread (which ends when the router is dropped).
    pub fn new(cfg: RouterConfig) -> Router {
        let mut links = BTreeSet::new();
        for a in &cfg.nodes {
            for b in &cfg.nodes {
                if a != b {
                    links.insert((a.clone(), b.clone()));
                }
            }
        }
        let latency_seed = crate::net::message::faults::link_seed(
            cfg.seed,
            &("latency".to_string(), String::new()),
        );
        let shared = Arc::new(Shared {
            engine: Arc::new(EngineCell::new(cfg.seed, links)),
            state: Mutex::new(State {
                endpoints: HashMap::new(),
                ready: HashMap::new(),
                init_sent: HashMap::new(),
                clients: HashMap::new(),
                services: protocol::SERVICES
                    .iter()
                    .map(|s| (*s, protocol::LinKv::default()))
                    .collect(),
                rng: StdRng::seed_from_u64(latency_seed),
                counts: Counts::default(),
                noted: HashMap::new(),
                logs: HashMap::new(),
            }),
            timer: Timer {
                heap: Mutex::new(BinaryHeap::new()),
                wake: Condvar::new(),
            },
            cfg,
            seq: AtomicU64::new(0),
            next_client: AtomicU64::new(1),
            next_incarnation: AtomicU64::new(1),
        });
        let weak = Arc::downgrade(&shared);
        // Without the timer no delayed message is ever delivered; failing to create a thread
        // is an unrecoverable resource exhaustion, reported as an error by the spawn below.
        let spawned = std::thread::Builder::new()
            .name("maelstrom-timer".into())
            .spawn(move || timer_loop(weak));
        if let Err(e) = spawned {
            tracing::error!("cannot start the Maelstrom router's timer thread: {e}");
        }
        Router { shared }
    }

    /// The fault engine (cuts and message faults); `RelayControl::of` gives its control.
    pub fn engine(&self) -> Arc<EngineCell<Line>> {
        self.shared.engine.clone()
    }

    pub fn nodes(&self) -> &[String] {
        &self.shared.cfg.nodes
    }

    /// Deliveries each node's queue holds.
    pub fn queue(&self) -> usize {
        self.shared.cfg.queue.max(1)
    }

    pub fn latency(&self) -> Latency {
        self.shared.cfg.latency
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Plain data behind the lock: keep using it after a panic elsewhere.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn counts(&self) -> Counts {
        self.state().counts
    }

    /// A fresh client id (`c1`, `c2`, …; `c0` is the harness's `init`).
    pub fn new_client(&self) -> String {
        let id = format!(
            "c{}",
            self.shared
                .next_client
                .fetch_add(1, AtomicOrdering::Relaxed)
        );
        self.state()
            .clients
            .insert(id.clone(), ClientSlot::default());
        id
    }

    /// True if node `id`'s current process answered its `init` with `init_ok`.
    pub fn is_ready(&self, id: &str) -> bool {
        let st = self.state();
        match (st.endpoints.get(id), st.ready.get(id)) {
            (Some(e), Some(i)) => e.incarnation == *i,
            _ => false,
        }
    }

    /// Registers a fresh process of node `id`: its deliveries go to `tx` (the writer thread's
    /// queue), notes to `log`; sends it `init`. Returns its incarnation.
    pub fn attach(&self, id: &str, tx: SyncSender<Arc<str>>, log: &Path) -> u64 {
        let inc = self
            .shared
            .next_incarnation
            .fetch_add(1, AtomicOrdering::Relaxed);
        let init_id = inc;
        let line: Arc<str> = serde_json::json!({
            "src": INIT_CLIENT,
            "dest": id,
            "body": {"type": "init", "msg_id": init_id, "node_id": id, "node_ids": self.shared.cfg.nodes},
        })
        .to_string()
        .into();
        let mut st = self.state();
        st.ready.remove(id);
        st.init_sent.insert(id.to_string(), (inc, init_id));
        st.logs.insert(id.to_string(), log.to_path_buf());
        // A fresh queue holds nothing yet: this cannot be full.
        let _ = tx.try_send(line);
        st.endpoints.insert(
            id.to_string(),
            Endpoint {
                incarnation: inc,
                tx,
            },
        );
        inc
    }

    /// Node `id`'s process `incarnation` is gone (killed, or its stdout closed): messages to it
    /// are dropped until the next [`Router::attach`].
    pub fn detach(&self, id: &str, incarnation: u64) {
        let mut st = self.state();
        if st
            .endpoints
            .get(id)
            .is_some_and(|e| e.incarnation == incarnation)
        {
            st.endpoints.remove(id);
            st.ready.remove(id);
        }
    }

    /// The current incarnation of node `id`, if it runs.
    pub fn incarnation(&self, id: &str) -> Option<u64> {
        self.state().endpoints.get(id).map(|e| e.incarnation)
    }

    /// Notes `what` in `node`'s log (capped per kind) and nowhere else.
    fn note(&self, st: &mut State, node: &str, kind: &'static str, what: &str) {
        let n = st.noted.entry((node.to_string(), kind)).or_insert(0);
        *n += 1;
        if *n > NOTE_LIMIT {
            return;
        }
        let Some(log) = st.logs.get(node).cloned() else {
            return;
        };
        let suffix = if *n == NOTE_LIMIT {
            " (further notes of this kind are only counted)"
        } else {
            ""
        };
        let mut shown: String = what.chars().take(500).collect();
        if shown.len() < what.len() {
            shown.push('…');
        }
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&log) {
            let _ = writeln!(f, "splitbrain: {node}: {kind}: {shown}{suffix}");
        }
    }

    /// Notes something about node `id` that its process did (stdout closed, …).
    pub fn note_node(&self, id: &str, kind: &'static str, what: &str) {
        let mut st = self.state();
        if kind == "stdout-closed" {
            st.counts.stdout_closed += 1;
        }
        self.note(&mut st, id, kind, what);
    }

    /// Routes one line written by node `writer`. See the module docs.
    pub fn route(&self, writer: &str, line: &str) {
        let env = match protocol::parse_line(line) {
            Ok(e) => e,
            Err(why) => {
                let mut st = self.state();
                st.counts.lines += 1;
                st.counts.bad_lines += 1;
                self.note(&mut st, writer, "bad-line", &format!("{why}: {line}"));
                return;
            }
        };
        let now = Instant::now();
        let mut st = self.state();
        st.counts.lines += 1;
        match protocol::addr(&env.dest, &self.shared.cfg.nodes) {
            Addr::Node => {
                let line: Arc<str> = line.into();
                let mut out: Vec<Delivery<Line>> = Vec::with_capacity(2);
                if writer != env.dest
                    && protocol::addr(writer, &self.shared.cfg.nodes) == Addr::Node
                {
                    let link = (writer.to_string(), env.dest.clone());
                    let t = self.shared.engine.now();
                    self.shared.engine.engine().on_message(
                        &link,
                        Line(line, raft_kind(env.kind())),
                        t,
                        &mut out,
                    );
                    for d in out {
                        let lat = self.shared.cfg.latency.draw(&mut st.rng);
                        let extra = d.at.saturating_sub(t);
                        self.schedule(
                            &mut st,
                            now + extra + lat,
                            Dest::Node(env.dest.clone()),
                            d.msg.0,
                        );
                    }
                } else {
                    let lat = self.shared.cfg.latency.draw(&mut st.rng);
                    self.schedule(&mut st, now + lat, Dest::Node(env.dest.clone()), line);
                }
            }
            Addr::Client => {
                if env.dest == INIT_CLIENT {
                    self.on_init_answer(&mut st, writer, &env, line);
                    return;
                }
                let known = match (st.clients.get(&env.dest), env.in_reply_to()) {
                    (Some(c), Some(id)) => id < c.next_msg_id,
                    _ => false,
                };
                if !known {
                    st.counts.unknown_replies += 1;
                    self.note(
                        &mut st,
                        writer,
                        "unknown-reply",
                        &format!(
                            "{} never sent msg_id {:?}: {line}",
                            env.dest,
                            env.in_reply_to()
                        ),
                    );
                    return;
                }
                let lat = self.shared.cfg.latency.draw(&mut st.rng);
                self.schedule(
                    &mut st,
                    now + lat,
                    Dest::Client(env.dest.clone()),
                    line.into(),
                );
            }
            Addr::Service => {
                let lat = self.shared.cfg.latency.draw(&mut st.rng);
                self.schedule(
                    &mut st,
                    now + lat,
                    Dest::Service(env.dest.clone()),
                    line.into(),
                );
            }
            Addr::Unknown => {
                st.counts.unknown_dest += 1;
                self.note(
                    &mut st,
                    writer,
                    "unknown-dest",
                    &format!("no node, client or service {:?}: {line}", env.dest),
                );
            }
        }
    }

    fn on_init_answer(&self, st: &mut State, writer: &str, env: &Envelope, line: &str) {
        let expected = st.init_sent.get(writer).copied();
        let current = st.endpoints.get(writer).map(|e| e.incarnation);
        match (expected, env.in_reply_to()) {
            (Some((inc, id)), Some(r)) if r == id && current == Some(inc) => {
                if env.kind() == "init_ok" {
                    st.ready.insert(writer.to_string(), inc);
                } else {
                    st.counts.init_errors += 1;
                    self.note(
                        st,
                        writer,
                        "init-error",
                        &format!("init answered with: {line}"),
                    );
                }
            }
            _ => {
                st.counts.unknown_replies += 1;
                self.note(
                    st,
                    writer,
                    "unknown-reply",
                    &format!("not an answer to its init: {line}"),
                );
            }
        }
    }

    /// Sends a client's request `body` to `node`; the answer, or `None` after `timeout`.
    pub async fn call(
        &self,
        client: &str,
        node: &str,
        mut body: Map<String, Value>,
        timeout: Duration,
    ) -> Option<Map<String, Value>> {
        let (tx, rx) = oneshot::channel();
        let msg_id = {
            let mut st = self.state();
            let slot = st.clients.entry(client.to_string()).or_default();
            slot.next_msg_id = slot.next_msg_id.max(1);
            let id = slot.next_msg_id;
            slot.next_msg_id += 1;
            slot.pending.insert(id, tx);
            body.insert("msg_id".into(), id.into());
            let line: Arc<str> = serde_json::json!({"src": client, "dest": node, "body": body})
                .to_string()
                .into();
            let lat = self.shared.cfg.latency.draw(&mut st.rng);
            self.schedule(
                &mut st,
                Instant::now() + lat,
                Dest::Node(node.to_string()),
                line,
            );
            id
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Some(answer),
            _ => {
                if let Some(slot) = self.state().clients.get_mut(client) {
                    slot.pending.remove(&msg_id);
                }
                None
            }
        }
    }

    fn schedule(&self, st: &mut State, at: Instant, to: Dest, line: Arc<str>) {
        if at <= Instant::now() {
            self.deliver(st, to, line);
            return;
        }
        let seq = self.shared.seq.fetch_add(1, AtomicOrdering::Relaxed);
        let mut heap = self
            .shared
            .timer
            .heap
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let earliest = heap.peek().is_none_or(|h| at < h.at);
        heap.push(Held { at, seq, to, line });
        if earliest {
            self.shared.timer.wake.notify_one();
        }
    }

    fn deliver(&self, st: &mut State, to: Dest, line: Arc<str>) {
        match to {
            Dest::Node(id) => {
                let sent = st.endpoints.get(&id).map(|e| e.tx.try_send(line));
                match sent {
                    Some(Ok(())) => st.counts.delivered += 1,
                    Some(Err(TrySendError::Full(_))) => {
                        st.counts.queue_full += 1;
                        self.note(
                            st,
                            &id,
                            "queue-full",
                            "a message to it was dropped: its queue is full (paused?)",
                        );
                    }
                    Some(Err(TrySendError::Disconnected(_))) | None => st.counts.to_down_node += 1,
                }
            }
            Dest::Client(c) => {
                let Ok(env) = protocol::parse_line(&line) else {
                    return;
                };
                let Some(r) = env.in_reply_to() else { return };
                match st.clients.get_mut(&c).and_then(|s| s.pending.remove(&r)) {
                    Some(tx) => {
                        st.counts.delivered += 1;
                        let _ = tx.send(env.body);
                    }
                    None => st.counts.late_replies += 1,
                }
            }
            Dest::Service(name) => {
                let Ok(env) = protocol::parse_line(&line) else {
                    return;
                };
                let Some(svc) = st.services.get_mut(name.as_str()) else {
                    return;
                };
                st.counts.delivered += 1;
                st.counts.service_requests += 1;
                let mut answer = svc.handle(&env.body);
                if let Some(id) = env.msg_id() {
                    answer.insert("in_reply_to".into(), id.into());
                }
                let reply = Envelope {
                    src: name.clone(),
                    dest: env.src.clone(),
                    body: answer,
                };
                let lat = self.shared.cfg.latency.draw(&mut st.rng);
                let to = match protocol::addr(&env.src, &self.shared.cfg.nodes) {
                    Addr::Node => Dest::Node(env.src.clone()),
                    Addr::Client => Dest::Client(env.src.clone()),
                    _ => return,
                };
                self.schedule(st, Instant::now() + lat, to, reply.to_line().into());
            }
        }
    }
}

fn timer_loop(weak: Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let router = Router { shared };
        let due = {
            let t = &router.shared.timer;
            let mut heap = t.heap.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            match heap.peek() {
                Some(h) if h.at <= now => {
                    let mut due = Vec::new();
                    while heap.peek().is_some_and(|h| h.at <= now) {
                        // Just peeked.
                        if let Some(h) = heap.pop() {
                            due.push(h);
                        }
                    }
                    due
                }
                next => {
                    // Wake at the earliest due time, and at least every 50 ms to notice that
                    // the router is gone.
                    let wait = next
                        .map(|h| h.at - now)
                        .unwrap_or(Duration::from_millis(50))
                        .min(Duration::from_millis(50));
                    let _ = t.wake.wait_timeout(heap, wait);
                    Vec::new()
                }
            }
        };
        if !due.is_empty() {
            let mut st = router.state();
            for h in due {
                router.deliver(&mut st, h.to, h.line);
            }
        }
    }
}

/// Reads node `id`'s stdout line by line into the router until it closes; then detaches the
/// incarnation and notes it. Runs on a thread of its own.
pub fn read_loop(router: Router, id: String, incarnation: u64, out: impl std::io::Read) {
    let mut r = std::io::BufReader::with_capacity(64 << 10, out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match std::io::Read::take(&mut r, MAX_LINE as u64).read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {
                if buf.last() != Some(&b'\n') && buf.len() >= MAX_LINE {
                    router.note_node(&id, "bad-line", "a line longer than 16 MiB (cut)");
                }
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.trim().is_empty() {
                    continue;
                }
                if router.incarnation(&id) != Some(incarnation) {
                    // A killed process's last words: not routed.
                    continue;
                }
                router.route(&id, line);
            }
            Err(_) => break,
        }
    }
    if router.incarnation(&id) == Some(incarnation) {
        router.detach(&id, incarnation);
        router.note_node(
            &id,
            "stdout-closed",
            "its stdout closed (the process exited?)",
        );
    }
}

/// Writes node deliveries into a process's stdin, one line each, until the queue's sender is
/// gone or the pipe breaks. Runs on a thread of its own.
pub fn write_loop(rx: mpsc::Receiver<Arc<str>>, stdin: impl std::io::Write) {
    let mut w = std::io::BufWriter::with_capacity(64 << 10, stdin);
    while let Ok(line) = rx.recv() {
        let mut ok = w.write_all(line.as_bytes()).is_ok() && w.write_all(b"\n").is_ok();
        // Batch what is already queued, then flush once.
        while ok {
            match rx.try_recv() {
                Ok(l) => ok = w.write_all(l.as_bytes()).is_ok() && w.write_all(b"\n").is_ok(),
                Err(_) => break,
            }
        }
        if !ok || w.flush().is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(n: usize) -> Router {
        Router::new(RouterConfig::new(
            (0..n).map(|i| format!("n{i}")).collect(),
            7,
        ))
    }

    fn log() -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "sb-router-{}-{}.log",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::write(&p, "").unwrap();
        p
    }

    fn attach(r: &Router, id: &str, log: &Path) -> mpsc::Receiver<Arc<str>> {
        let (tx, rx) = mpsc::sync_channel(1000);
        r.attach(id, tx, log);
        let init = rx.recv().unwrap();
        assert!(init.contains("\"init\""), "{init}");
        rx
    }

    #[test]
    fn node_messages_reach_their_destination_and_cut_links_drop_them() {
        let r = router(2);
        let l = log();
        let _a = attach(&r, "n0", &l);
        let b = attach(&r, "n1", &l);
        r.route("n0", r#"{"src":"n0","dest":"n1","body":{"type":"x"}}"#);
        assert!(b.try_recv().unwrap().contains("\"x\""));
        r.engine()
            .engine()
            .set_cuts([("n0".to_string(), "n1".to_string())].into());
        r.route("n0", r#"{"src":"n0","dest":"n1","body":{"type":"y"}}"#);
        assert!(b.try_recv().is_err(), "a cut link delivered");
        // Judged by the writer: a message with a client's src, written by n0, is cut too.
        r.route("n0", r#"{"src":"c4","dest":"n1","body":{"type":"z"}}"#);
        assert!(b.try_recv().is_err(), "a forwarded message escaped the cut");
        assert_eq!(r.engine().engine().counters().cut, 2);
    }

    #[test]
    fn bad_lines_unknown_destinations_and_unknown_replies_are_counted_and_noted() {
        let r = router(1);
        let l = log();
        let _a = attach(&r, "n0", &l);
        r.route("n0", "hello there");
        r.route("n0", r#"{"src":"n0","dest":"n9","body":{}}"#);
        r.route("n0", r#"{"src":"n0","dest":"c5","body":{"in_reply_to":3}}"#);
        let c = r.counts();
        assert_eq!((c.bad_lines, c.unknown_dest, c.unknown_replies), (1, 1, 1));
        let text = std::fs::read_to_string(&l).unwrap();
        assert!(
            text.contains("n0: bad-line") && text.contains("hello there"),
            "{text}"
        );
        assert!(
            text.contains("unknown-dest") && text.contains("n9"),
            "{text}"
        );
        assert!(text.contains("unknown-reply"), "{text}");
    }

    #[test]
    fn init_ok_makes_a_node_ready_and_a_new_incarnation_must_answer_again() {
        let r = router(1);
        let l = log();
        let (tx, rx) = mpsc::sync_channel(10);
        r.attach("n0", tx, &l);
        let init = protocol::parse_line(&rx.recv().unwrap()).unwrap();
        assert!(!r.is_ready("n0"));
        r.route(
            "n0",
            &format!(
                r#"{{"src":"n0","dest":"c0","body":{{"type":"init_ok","in_reply_to":{}}}}}"#,
                init.msg_id().unwrap()
            ),
        );
        assert!(r.is_ready("n0"));
        let (tx2, _rx2) = mpsc::sync_channel(10);
        r.attach("n0", tx2, &l);
        assert!(
            !r.is_ready("n0"),
            "a restarted node is ready before its init_ok"
        );
    }

    #[tokio::test]
    async fn a_clients_answer_is_delivered_whichever_node_sends_it_and_the_service_answers() {
        let r = router(2);
        let l = log();
        let a = attach(&r, "n0", &l);
        let _b = attach(&r, "n1", &l);
        let c = r.new_client();
        let r2 = r.clone();
        let c2 = c.clone();
        let call = tokio::spawn(async move {
            let body =
                protocol::request(&splitbrain_workloads::Op::Read { key: "k".into() }, false)
                    .unwrap();
            r2.call(&c2, "n0", body, Duration::from_secs(5)).await
        });
        let req = tokio::task::spawn_blocking(move || a.recv().unwrap())
            .await
            .unwrap();
        let req = protocol::parse_line(&req).unwrap();
        assert_eq!(req.src, c);
        // n1 answers for n0.
        r.route(
            "n1",
            &format!(
                r#"{{"src":"n1","dest":"{c}","body":{{"type":"read_ok","value":3,"in_reply_to":{}}}}}"#,
                req.msg_id().unwrap()
            ),
        );
        let answer = call.await.unwrap().unwrap();
        assert_eq!(answer["value"], 3);
        // The lin-kv service answers the node that asked.
        let (tx, rx) = mpsc::sync_channel(10);
        r.attach("n0", tx, &l);
        let _init = rx.recv().unwrap();
        r.route("n0", r#"{"src":"n0","dest":"lin-kv","body":{"type":"write","key":"a","value":1,"msg_id":9}}"#);
        let ans = protocol::parse_line(&rx.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap();
        assert_eq!(
            (ans.src.as_str(), ans.kind(), ans.in_reply_to()),
            ("lin-kv", "write_ok", Some(9))
        );
    }

    #[test]
    fn raft_message_types_of_maelstrom_nodes_get_raft_kinds() {
        assert_eq!(raft_kind("request_vote"), Kind::Vote);
        assert_eq!(raft_kind("request_vote_res"), Kind::VoteResp);
        assert_eq!(raft_kind("append_entries"), Kind::Append);
        assert_eq!(raft_kind("append_entries_res"), Kind::AppendResp);
        assert_eq!(raft_kind("install_snapshot"), Kind::Snapshot);
        assert_eq!(raft_kind("read"), Kind::Other);
        assert_eq!(raft_kind("write_ok"), Kind::Other);
    }

    #[test]
    fn msg_loss_of_appends_drops_a_maelstrom_nodes_appends_only() {
        use crate::net::message::faults::{Fault, KindFilter};
        let r = router(2);
        let l = log();
        let b = attach(&r, "n1", &l);
        r.engine()
            .engine()
            .set(Fault::loss(1.0).kinds(KindFilter::only(&[Kind::Append])))
            .unwrap();
        r.route(
            "n0",
            r#"{"src":"n0","dest":"n1","body":{"type":"append_entries"}}"#,
        );
        r.route(
            "n0",
            r#"{"src":"n0","dest":"n1","body":{"type":"request_vote"}}"#,
        );
        let got = b.try_recv().unwrap();
        assert!(got.contains("request_vote"), "{got}");
        assert!(b.try_recv().is_err(), "the append was delivered");
    }

    #[test]
    fn latency_delays_delivery_by_about_its_mean() {
        let mut cfg = RouterConfig::new(vec!["n0".into(), "n1".into()], 1);
        cfg.latency = Latency {
            mean: Duration::from_millis(100),
            dist: LatencyDist::Constant,
        };
        let r = Router::new(cfg);
        let l = log();
        let (tx, rx) = mpsc::sync_channel(10);
        r.attach("n1", tx, &l);
        let _ = rx.recv().unwrap();
        let t0 = Instant::now();
        r.route("n0", r#"{"src":"n0","dest":"n1","body":{"type":"x"}}"#);
        assert!(rx.try_recv().is_err(), "delivered at once despite latency");
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let e = t0.elapsed();
        assert!(
            e >= Duration::from_millis(95) && e < Duration::from_secs(2),
            "{e:?}"
        );
    }

    #[test]
    fn latency_distributions_have_the_asked_mean() {
        let mut rng = StdRng::seed_from_u64(3);
        for dist in [
            LatencyDist::Constant,
            LatencyDist::Uniform,
            LatencyDist::Exponential,
        ] {
            let l = Latency {
                mean: Duration::from_millis(10),
                dist,
            };
            let n = 20_000;
            let sum: f64 = (0..n).map(|_| l.draw(&mut rng).as_secs_f64()).sum();
            let mean_ms = sum / n as f64 * 1000.0;
            assert!((mean_ms - 10.0).abs() < 0.5, "{dist:?}: mean {mean_ms}");
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let mut cfg = RouterConfig::new(vec!["n0".into(), "n1".into()], 1);
        cfg.queue = 2;
        let r = Router::new(cfg);
        let l = log();
        let (tx, _rx) = mpsc::sync_channel(2);
        r.attach("n1", tx, &l);
        for _ in 0..5 {
            r.route("n0", r#"{"src":"n0","dest":"n1","body":{"type":"x"}}"#);
        }
        // init + 1 fit; 4 dropped.
        assert_eq!(r.counts().queue_full, 4);
    }
}
