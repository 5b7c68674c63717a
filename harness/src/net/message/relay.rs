//! The HTTP relay: one listener per directed link, the fault engine between them.
//!
//! Member `a` dials the relay address of link `a → b` (its `--peer b=http://ADDR`) to reach
//! `b`. On that listener:
//! - `POST /raft/{route}`: the body is split into messages ([`wire::split`]) and the relay
//!   answers `204` at once, as the node would. Each message goes through the [`FaultEngine`];
//!   its deliveries are queued on the link and a delivery task POSTs them to `b`'s real peer
//!   address with the token header the request carried, in order of delivery time (so in
//!   sending order except where a fault holds one), re-batched into arrays of consecutive
//!   messages of one route or one per request ([`Batching`]).
//! - A peer body the node would refuse (not JSON, wrong route, wrong destination) is counted
//!   as `unparsed` and passed through untouched; the sender gets the node's own answer. A body
//!   over [`RelayConfig::body_limit`] is refused with the node's `413 too-large`, a wrong token
//!   (when [`RelayConfig::token`] is set) with its `401`.
//! - A link that is cut drops what arrives on it and what was still queued or held on it when
//!   the cut began (messages in flight are lost).
//! - Anything else (`/kv`, `/status`: client requests a follower forwards to the leader) is
//!   passed through untouched and its answer returned. A cut link refuses them with `503`
//!   (`definite: true`: nothing was delivered); an answer arriving after its link was cut is
//!   replaced by `504` (`definite: false`), as a lost answer would be.
//!
//! # Bounds and deadlines
//! Each link holds at most [`RelayConfig::queue`] deliveries (queued and held together); more
//! are dropped and counted (`queue_full`), as the node drops on a full peer queue. One POST is
//! in flight per link, each with [`RelayConfig::deliver_timeout`] (snapshots at least 10 s, as
//! the node does); a failed POST loses its messages (`undelivered`) — Raft retries. Pass-through
//! requests have [`RelayConfig::passthrough_timeout`].
//!
//! # Shutdown
//! [`Relay::shutdown`] stops accepting, ends the delivery tasks (held and queued deliveries are
//! discarded) and waits for in-flight requests up to a deadline, then aborts what is left.
//! Dropping a [`Relay`] stops everything without waiting. (A pass-through request still in
//! flight when the deadline passes ends at its own deadline.)

use super::faults::{
    Counters, Delivery, Fault, FaultEngine, FaultError, FaultName, Link, WireView,
};
use super::wire::{self, Kind, TOKEN_HEADER};
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use splitbrain_node::raft::NodeId;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How survivors are sent on to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// Consecutive due messages of one route in one JSON array, at most this many.
    Rebatch(usize),
    /// Every message in a request of its own (a body of one `Message`).
    OnePerRequest,
}

/// What the relay needs to start.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Every member and its real peer address (where it listens for `/raft/*`).
    pub members: Vec<(NodeId, SocketAddr)>,
    /// Derives every link's RNG ([`super::faults::link_seed`]).
    pub seed: u64,
    /// The cluster token. Set: peer requests without it get the node's `401`. Unset: the
    /// relay forwards whatever token header it was given.
    pub token: Option<String>,
    pub batching: Batching,
    /// Deliveries per link, queued plus held (default 4096, the node's peer queue).
    pub queue: usize,
    /// Largest request body (default: the node's peer limit, [`wire::BODY_LIMIT`]).
    pub body_limit: usize,
    /// Deadline of one delivery POST (default 1 s).
    pub deliver_timeout: Duration,
    /// Deadline of a passed-through request (default 10 s).
    pub passthrough_timeout: Duration,
}

impl RelayConfig {
    pub fn new(members: Vec<(NodeId, SocketAddr)>, seed: u64) -> RelayConfig {
        RelayConfig {
            members,
            seed,
            token: None,
            batching: Batching::Rebatch(splitbrain_node::peer::MAX_BATCH),
            queue: splitbrain_node::peer::QUEUE,
            body_limit: wire::BODY_LIMIT,
            deliver_timeout: Duration::from_secs(1),
            passthrough_timeout: Duration::from_secs(10),
        }
    }
}

/// Misuse of the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("binding the relay listener of link {} → {} on 127.0.0.1: {source}", .link.0, .link.1)]
    Bind { link: Link, source: std::io::Error },
    #[error("no link {} → {} in the relay", .0.0, .0.1)]
    UnknownLink(Link),
    #[error("member {0:?} is listed twice")]
    DuplicateMember(NodeId),
    #[error("relay config: {0}")]
    Config(String),
    #[error(transparent)]
    Fault(#[from] FaultError),
}

/// A fault engine shared between the tasks that feed it messages and its [`RelayControl`]:
/// the engine behind a lock, the clock its `now` comes from, the wire view's watch and the
/// links it knows. Generic over the message type, so the Maelstrom router
/// (`crate::maelstrom::router`) shares the relay's control (and with it every message nemesis).
pub struct EngineCell<M = splitbrain_node::raft::Message> {
    engine: Mutex<FaultEngine<M>>,
    /// `now` for the engine is the time since this instant.
    origin: Instant,
    view: watch::Sender<WireView>,
    links: BTreeSet<Link>,
}

type Shared = EngineCell;

impl<M: super::faults::WireMessage> EngineCell<M> {
    /// An engine seeded with `seed` over the directed `links`, its clock starting now.
    pub fn new(seed: u64, links: BTreeSet<Link>) -> EngineCell<M> {
        EngineCell {
            engine: Mutex::new(FaultEngine::new(seed)),
            origin: Instant::now(),
            view: watch::channel(WireView::default()).0,
            links,
        }
    }
    /// The engine, locked.
    pub fn engine(&self) -> MutexGuard<'_, FaultEngine<M>> {
        // A panic while holding the lock cannot leave the engine half-updated in a way that
        // matters more than losing the relay; keep going with the data as it is.
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// The engine's clock.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// What [`RelayControl`] needs of an [`EngineCell`], whatever its message type.
trait Control: Send + Sync {
    fn set_cuts(&self, cuts: BTreeSet<Link>) -> Result<(), RelayError>;
    fn cuts(&self) -> BTreeSet<Link>;
    fn set_fault(&self, fault: Fault) -> Result<(), RelayError>;
    fn clear_fault(&self, name: FaultName) -> bool;
    fn active(&self) -> Vec<Fault>;
    fn heal(&self);
    fn counters(&self) -> Counters;
    fn view(&self) -> WireView;
    fn watch_view(&self) -> watch::Receiver<WireView>;
    fn now(&self) -> Duration;
}

impl<M: super::faults::WireMessage + Send + 'static> Control for EngineCell<M> {
    fn set_cuts(&self, cuts: BTreeSet<Link>) -> Result<(), RelayError> {
        if let Some(l) = cuts.iter().find(|l| !self.links.contains(*l)) {
            return Err(RelayError::UnknownLink(l.clone()));
        }
        self.engine().set_cuts(cuts);
        Ok(())
    }
    fn cuts(&self) -> BTreeSet<Link> {
        self.engine().cuts().clone()
    }
    fn set_fault(&self, fault: Fault) -> Result<(), RelayError> {
        Ok(self.engine().set(fault)?)
    }
    fn clear_fault(&self, name: FaultName) -> bool {
        self.engine().clear(name)
    }
    fn active(&self) -> Vec<Fault> {
        self.engine().active().cloned().collect()
    }
    fn heal(&self) {
        self.engine().heal()
    }
    fn counters(&self) -> Counters {
        *self.engine().counters()
    }
    fn view(&self) -> WireView {
        self.engine().view().clone()
    }
    fn watch_view(&self) -> watch::Receiver<WireView> {
        self.view.subscribe()
    }
    fn now(&self) -> Duration {
        EngineCell::now(self)
    }
}

/// Run-time control of a running relay (or of the Maelstrom router's engine): cuts, faults,
/// counters, the wire view. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct RelayControl {
    shared: Arc<dyn Control>,
}

impl RelayControl {
    /// Control of `cell` (the Maelstrom router's engine).
    pub fn of<M: super::faults::WireMessage + Send + 'static>(
        cell: Arc<EngineCell<M>>,
    ) -> RelayControl {
        RelayControl { shared: cell }
    }
    /// Makes exactly `cuts` the set of cut directed links (empty heals every partition).
    pub fn set_cuts(&self, cuts: BTreeSet<Link>) -> Result<(), RelayError> {
        self.shared.set_cuts(cuts)
    }
    pub fn cuts(&self) -> BTreeSet<Link> {
        self.shared.cuts()
    }
    /// Activates a fault (replacing an active one of the same name).
    pub fn set_fault(&self, fault: Fault) -> Result<(), RelayError> {
        self.shared.set_fault(fault)
    }
    /// Deactivates a fault; returns whether it was active.
    pub fn clear_fault(&self, name: FaultName) -> bool {
        self.shared.clear_fault(name)
    }
    pub fn active(&self) -> Vec<Fault> {
        self.shared.active()
    }
    /// Deactivates every fault and heals every cut.
    pub fn heal(&self) {
        self.shared.heal()
    }
    pub fn counters(&self) -> Counters {
        self.shared.counters()
    }
    /// Terms and roles as the relay has seen them.
    pub fn view(&self) -> WireView {
        self.shared.view()
    }
    /// Changes whenever the wire's highest term or its leader changes.
    pub fn watch_view(&self) -> watch::Receiver<WireView> {
        self.shared.watch_view()
    }
    /// The relay's clock (the `now` of the engine and of [`WireView`] times).
    pub fn now(&self) -> Duration {
        self.shared.now()
    }
}

/// A running relay. See the module docs.
pub struct Relay {
    links: BTreeMap<Link, SocketAddr>,
    control: RelayControl,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

struct LinkCtx {
    link: Link,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Queued>,
    /// `http://ADDR` of the destination's peer listener.
    dest: String,
    http: reqwest::Client,
    cfg: Arc<RelayConfig>,
}

struct Queued {
    d: Delivery,
    token: Option<HeaderValue>,
}

/// A delivery waiting for its time; ordered by `(at, seq)`, earliest first.
struct Held {
    at: Duration,
    seq: u64,
    q: Queued,
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

impl Relay {
    /// Binds a listener on `127.0.0.1:0` for every directed link between the members and
    /// starts serving. Must be called inside a tokio runtime.
    pub async fn start(cfg: RelayConfig) -> Result<Relay, RelayError> {
        if cfg.queue == 0 {
            return Err(RelayError::Config("queue must be at least 1".into()));
        }
        if cfg.batching == Batching::Rebatch(0) {
            return Err(RelayError::Config("a batch must hold at least 1".into()));
        }
        let mut seen = BTreeSet::new();
        for (id, _) in &cfg.members {
            if !seen.insert(id.clone()) {
                return Err(RelayError::DuplicateMember(id.clone()));
            }
        }
        let cfg = Arc::new(cfg);
        let mut all = BTreeSet::new();
        for (a, _) in &cfg.members {
            for (b, _) in &cfg.members {
                if a != b {
                    all.insert((a.clone(), b.clone()));
                }
            }
        }
        let shared: Arc<Shared> = Arc::new(EngineCell::new(cfg.seed, all));
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| RelayError::Config(format!("building the HTTP client: {e}")))?;
        let (stop, _) = watch::channel(false);
        let mut relay = Relay {
            links: BTreeMap::new(),
            control: RelayControl {
                shared: shared.clone(),
            },
            stop,
            tasks: Vec::new(),
        };
        for (a, _) in &cfg.members {
            for (b, dest) in &cfg.members {
                if a == b {
                    continue;
                }
                let link = (a.clone(), b.clone());
                let listener =
                    tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .map_err(|source| RelayError::Bind {
                            link: link.clone(),
                            source,
                        })?;
                let addr = listener.local_addr().map_err(|source| RelayError::Bind {
                    link: link.clone(),
                    source,
                })?;
                let (tx, rx) = mpsc::channel(cfg.queue);
                let ctx = Arc::new(LinkCtx {
                    link: link.clone(),
                    shared: shared.clone(),
                    tx,
                    dest: format!("http://{dest}"),
                    http: http.clone(),
                    cfg: cfg.clone(),
                });
                let router = Router::new()
                    .route(
                        "/raft/{route}",
                        post(raft_route).fallback(pass_through_route),
                    )
                    .fallback(pass_through_route)
                    .layer(DefaultBodyLimit::max(cfg.body_limit))
                    .with_state(ctx.clone());
                let mut stop_rx = relay.stop.subscribe();
                let server = axum::serve(listener, router).with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                });
                relay.tasks.push(tokio::spawn(async move {
                    if let Err(e) = server.await {
                        tracing::warn!(error = %e, "relay listener failed");
                    }
                }));
                relay
                    .tasks
                    .push(tokio::spawn(deliver_loop(ctx, rx, relay.stop.subscribe())));
                relay.links.insert(link, addr);
            }
        }
        Ok(relay)
    }

    /// The address member `from` dials to reach `to`.
    pub fn addr(&self, from: &str, to: &str) -> Option<SocketAddr> {
        self.links.get(&(from.to_string(), to.to_string())).copied()
    }

    /// `(peer id, address to dial)` for every other member, in id order: what member `from`
    /// is given as its `--peer` routes.
    pub fn routes(&self, from: &str) -> Vec<(NodeId, SocketAddr)> {
        self.links
            .iter()
            .filter(|((a, _), _)| a == from)
            .map(|((_, b), addr)| (b.clone(), *addr))
            .collect()
    }

    /// Every directed link and its listener.
    pub fn links(&self) -> &BTreeMap<Link, SocketAddr> {
        &self.links
    }

    pub fn control(&self) -> RelayControl {
        self.control.clone()
    }

    /// Stops the relay: no new connections or deliveries; waits up to `deadline` for
    /// in-flight requests, then aborts the rest. Nothing of the relay runs afterwards.
    pub async fn shutdown(mut self, deadline: Duration) {
        self.stop.send_replace(true);
        let end = Instant::now() + deadline;
        for t in std::mem::take(&mut self.tasks) {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(end, t).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>, definite: bool) -> Response {
    (
        status,
        Json(json!({"error": code, "message": message.into(), "definite": definite})),
    )
        .into_response()
}

async fn raft_route(
    State(ctx): State<Arc<LinkCtx>>,
    Path(route): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let token = headers.get(TOKEN_HEADER).cloned();
    if let Some(want) = &ctx.cfg.token {
        if token.as_ref().and_then(|t| t.to_str().ok()) != Some(want.as_str()) {
            ctx.shared.engine().counters_mut().refused += 1;
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("peer routes need the cluster token in header `{TOKEN_HEADER}`"),
                true,
            );
        }
    }
    let body = match body {
        Ok(b) if b.len() > wire::route_body_limit(&route).min(ctx.cfg.body_limit) => {
            ctx.shared.engine().counters_mut().refused += 1;
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!(
                    "request body of {} bytes is over the /raft/{route} limit of {} bytes",
                    b.len(),
                    wire::route_body_limit(&route).min(ctx.cfg.body_limit)
                ),
                true,
            );
        }
        Ok(b) => b,
        Err(r) => {
            ctx.shared.engine().counters_mut().refused += 1;
            let status = r.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too-large"
            } else {
                "bad-request"
            };
            return error(status, code, r.body_text(), true);
        }
    };
    let msgs = match wire::split(&route, &ctx.link.1, &body) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(link = ?ctx.link, error = %e, "passing an unparsed peer body through");
            ctx.shared.engine().note_unparsed();
            return pass_through(&ctx, Method::POST, &uri, &headers, body).await;
        }
    };
    let mut out = Vec::with_capacity(msgs.len());
    let mut changed = false;
    let view = {
        let mut eng = ctx.shared.engine();
        let now = ctx.shared.now();
        for m in msgs {
            changed |= eng.on_message(&ctx.link, m, now, &mut out);
        }
        for d in out.drain(..) {
            let q = Queued {
                d,
                token: token.clone(),
            };
            // Pushed under the engine's lock, so the queue keeps the engine's order.
            if let Err(e) = ctx.tx.try_send(q) {
                match e {
                    mpsc::error::TrySendError::Full(_) => eng.counters_mut().queue_full += 1,
                    mpsc::error::TrySendError::Closed(_) => eng.counters_mut().undelivered += 1,
                }
            }
        }
        changed.then(|| eng.view().clone())
    };
    if let Some(v) = view {
        ctx.shared.view.send_replace(v);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn pass_through_route(
    State(ctx): State<Arc<LinkCtx>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match axum::body::to_bytes(body, ctx.cfg.body_limit).await {
        Ok(b) => pass_through(&ctx, method, &uri, &headers, b).await,
        Err(e) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("request body over {} bytes: {e}", ctx.cfg.body_limit),
            true,
        ),
    }
}

fn hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
    )
}

/// Forwards a request to the link's destination as it came and returns its answer.
async fn pass_through(
    ctx: &LinkCtx,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let cut = || ctx.shared.engine().is_cut(&ctx.link);
    if cut() {
        ctx.shared.engine().counters_mut().cut += 1;
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "link-cut",
            format!("the link {} → {} is cut", ctx.link.0, ctx.link.1),
            true,
        );
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let mut req = ctx
        .http
        .request(method, format!("{}{path}", ctx.dest))
        .timeout(ctx.cfg.passthrough_timeout)
        .body(body);
    for (k, v) in headers {
        if !hop_by_hop(k) {
            req = req.header(k, v);
        }
    }
    let lost = |what: String| error(StatusCode::GATEWAY_TIMEOUT, "forward-lost", what, false);
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unreachable",
                format!("{} unreachable through the relay: {e}", ctx.link.1),
                true,
            )
        }
        Err(e) => return lost(format!("forwarding to {} failed: {e}", ctx.link.1)),
    };
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if !hop_by_hop(k) {
            out_headers.append(k.clone(), v.clone());
        }
    }
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return lost(format!("the answer of {} was lost: {e}", ctx.link.1)),
    };
    if cut() {
        ctx.shared.engine().counters_mut().cut += 1;
        return lost(format!(
            "the link {} → {} was cut before the answer came back",
            ctx.link.0, ctx.link.1
        ));
    }
    (status, out_headers, bytes).into_response()
}

/// Delivers a link's queue in order of delivery time, one POST at a time.
async fn deliver_loop(
    ctx: Arc<LinkCtx>,
    mut rx: mpsc::Receiver<Queued>,
    mut stop: watch::Receiver<bool>,
) {
    let mut heap: BinaryHeap<Held> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut due: Vec<Held> = Vec::new();
    let max_batch = match ctx.cfg.batching {
        Batching::Rebatch(n) => n,
        Batching::OnePerRequest => 1,
    };
    let mut push = |heap: &mut BinaryHeap<Held>, q: Queued| {
        if heap.len() >= ctx.cfg.queue {
            ctx.shared.engine().counters_mut().queue_full += 1;
            return;
        }
        seq += 1;
        heap.push(Held { at: q.d.at, seq, q });
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let next = heap.peek().map(|h| ctx.shared.origin + h.at);
        tokio::select! {
            _ = stop.changed() => return,
            r = rx.recv() => match r {
                Some(q) => push(&mut heap, q),
                None => return,
            },
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
        }
        // Let requests being handled right now add to this batch (fewer, larger POSTs).
        tokio::task::yield_now().await;
        while let Ok(q) = rx.try_recv() {
            push(&mut heap, q);
        }
        let now = ctx.shared.now();
        while heap.peek().is_some_and(|h| h.at <= now) {
            // Just checked that the heap has an element.
            due.push(heap.pop().expect("a due delivery"));
        }
        if !due.is_empty() && ctx.shared.engine().is_cut(&ctx.link) {
            // Cut while they were queued or held: lost in flight, as on a real network.
            ctx.shared.engine().counters_mut().cut += due.len() as u64;
            due.clear();
        }
        let mut start = 0;
        while start < due.len() {
            let route = Kind::of(&due[start].q.d.msg.body).route();
            let token = due[start].q.token.clone();
            let mut end = start + 1;
            while end < due.len()
                && end - start < max_batch
                && Kind::of(&due[end].q.d.msg.body).route() == route
                && due[end].q.token == token
            {
                end += 1;
            }
            let body = if ctx.cfg.batching == Batching::OnePerRequest {
                wire::encode_one(&due[start].q.d.msg)
            } else {
                let ms: Vec<_> = due[start..end].iter().map(|h| &h.q.d.msg).collect();
                wire::encode_batch(&ms)
            };
            let n = (end - start) as u64;
            let timeout = if route == "snapshot" {
                ctx.cfg.deliver_timeout.max(Duration::from_secs(10))
            } else {
                ctx.cfg.deliver_timeout
            };
            let mut req = ctx
                .http
                .post(format!("{}/raft/{route}", ctx.dest))
                .header(header::CONTENT_TYPE, "application/json")
                .timeout(timeout)
                .body(body);
            if let Some(t) = token {
                req = req.header(TOKEN_HEADER, t);
            }
            let res = tokio::select! {
                _ = stop.changed() => return,
                r = req.send() => r,
            };
            match res {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::debug!(link = ?ctx.link, status = %r.status(), "destination refused messages");
                    ctx.shared.engine().counters_mut().undelivered += n;
                }
                Err(e) => {
                    tracing::debug!(link = ?ctx.link, error = %e, "delivering messages failed");
                    ctx.shared.engine().counters_mut().undelivered += n;
                }
            }
            start = end;
        }
        due.clear();
    }
}

#[cfg(test)]
mod tests;
