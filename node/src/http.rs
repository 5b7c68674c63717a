//! The HTTP face of a node: the client API of DESIGN.md §3 and the peer routes.
//!
//! # Routes
//! - `GET /kv/{key}` → `200 {"value": v}` (ReadIndex; `null` if absent).
//! - `PUT /kv/{key}` `{"value": v, "request_id": "c3-17"}` → `200 {}`.
//! - `POST /kv/{key}/cas` `{"from": a, "to": b, "request_id": …}` → `200 {}` or
//!   `409 {"error":"cas-mismatch","current": v}`.
//! - `POST /kv/{key}/append` `{"value": v, "request_id": …}` → `200 {}` (an absent key becomes
//!   `[v]`) or `409 {"error":"not-a-list","current": v}`.
//! - `GET /status` → [`NodeStatus`].
//! - `POST /raft/{vote|append|snapshot}` with header [`TOKEN_HEADER`]: a JSON `Message` or array
//!   of them, each of that route and addressed to this node → `204`. No or wrong token → 401,
//!   decided from the head before any of the body is read.
//!
//! # Limits
//! Body limits per route ([`CLIENT_BODY_LIMIT`], [`PEER_BODY_LIMIT`],
//! [`PEER_SNAPSHOT_BODY_LIMIT`]), a server-side deadline per request ([`request_deadline`]),
//! at most [`MAX_CONNECTIONS`] connections ([`LimitedListener`]), and a bounded loop queue
//! (503 `overloaded` when full).
//!
//! # Errors
//! Every error is JSON `{"error", "message", "definite"}`. Definite (`true`): 400 bad request,
//! 401, 404 unknown route, 405, 413 body too large, 503 no leader / leader unreachable before
//! sending. Indefinite (`false`): 504 after proposing (deadline passed, entry replaced, forwarded
//! request lost after it was sent). Reads never change anything, so failed reads are definite.
//!
//! # Forwarding
//! A follower forwards client requests to the leader's address as given by `--peer` (so a
//! proxy on that link sees it), marked with [`FORWARDED_HEADER`]; a node that receives a
//! forwarded request and is not the leader answers 503 instead of forwarding again. While no
//! leader is known the node waits (up to the request deadline) for one to emerge.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use crate::peer::TOKEN_HEADER;
use crate::raft::{Message, NodeId};
use crate::server::{Event, Handle, LoopError, NodeStatus};
use crate::sm::{Command, Outcome, RequestId};

/// Marks a request forwarded by a follower.
pub const FORWARDED_HEADER: &str = "x-splitbrain-forwarded";
/// Largest client request body.
pub const CLIENT_BODY_LIMIT: usize = 1 << 20;
/// Largest body on `/raft/vote` and `/raft/append` (senders cut POSTs at about 4 MiB).
pub const PEER_BODY_LIMIT: usize = 32 << 20;
/// Largest body on `/raft/snapshot` (a snapshot travels whole).
pub const PEER_SNAPSHOT_BODY_LIMIT: usize = 256 << 20;
/// Server-side deadline of a peer request (reading a snapshot body included).
pub const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest key, in bytes.
pub const MAX_KEY: usize = 1024;

/// Shared state of the handlers.
pub struct AppState {
    pub id: NodeId,
    pub handle: Handle,
    /// Peer id → base URL (as given by `--peer`).
    pub peers: HashMap<NodeId, String>,
    pub token: String,
    pub client: reqwest::Client,
    /// Deadline of a client request (waiting for a leader, commit, apply).
    pub request_timeout: Duration,
    pub stale_read: bool,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    definite: bool,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        definite: bool,
    ) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            definite,
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", message, true)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message, "definite": self.definite})),
        )
            .into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// The node's router.
pub fn router(state: Arc<AppState>) -> Router {
    let client = Router::new()
        .route("/kv/{key}", get(get_kv).put(put_kv))
        .route("/kv/{key}/cas", post(cas_kv))
        .route("/kv/{key}/append", post(append_kv))
        .route("/status", get(status))
        .layer(DefaultBodyLimit::max(CLIENT_BODY_LIMIT));
    let peer = Router::new().route("/raft/{route}", post(raft_route));
    client
        .merge(peer)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_deadline,
        ))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no route for {method} {}", uri.path()),
        true,
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{method} is not allowed on {}", uri.path()),
        true,
    )
}

fn body_error(r: BytesRejection) -> ApiError {
    let status = r.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "too-large"
    } else {
        "bad-request"
    };
    ApiError::new(status, code, r.body_text(), true)
}

fn key_of(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(key) = p.map_err(|e| ApiError::bad(format!("bad key in path: {}", e.body_text())))?;
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(ApiError::bad(format!(
            "key must be 1 to {MAX_KEY} bytes, got {}",
            key.len()
        )));
    }
    Ok(key)
}

/// Parses a JSON object body and checks its fields: `required` must be present, nothing
/// outside `required` and `optional` may be.
fn parse_object(
    body: &[u8],
    required: &[&str],
    optional: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("body is not valid JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(ApiError::bad("body must be a JSON object"));
    };
    for f in required {
        if !obj.contains_key(*f) {
            return Err(ApiError::bad(format!("missing field `{f}`")));
        }
    }
    for k in obj.keys() {
        if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
            return Err(ApiError::bad(format!("unknown field `{k}`")));
        }
    }
    Ok(obj)
}

fn request_id(obj: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match obj.get("request_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            RequestId::parse(s).map_err(ApiError::bad)?;
            Ok(Some(s.clone()))
        }
        Some(other) => Err(ApiError::bad(format!(
            "field `request_id` must be a string like \"c3-17\", got {other}"
        ))),
    }
}

fn is_forwarded(h: &HeaderMap) -> bool {
    h.contains_key(FORWARDED_HEADER)
}

async fn get_kv(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let key = key_of(key)?;
    if st.stale_read {
        let (tx, rx) = oneshot::channel();
        send(&st, Event::LocalRead { key, reply: tx })?;
        let v = rx.await.map_err(|_| stopped())?;
        return Ok(Json(json!({ "value": v })).into_response());
    }
    let deadline = Instant::now() + st.request_timeout;
    loop {
        let (tx, rx) = oneshot::channel();
        send(
            &st,
            Event::Read {
                key: key.clone(),
                reply: tx,
            },
        )?;
        let res = match tokio::time::timeout_at(deadline.into(), rx).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "read not confirmed by a quorum before the deadline",
                    true,
                ))
            }
            Ok(Err(_)) => return Err(stopped()),
            Ok(Ok(r)) => r,
        };
        match res {
            Ok(v) => return Ok(Json(json!({ "value": v })).into_response()),
            Err(LoopError::NotLeader { leader }) => {
                if let Some(r) = route_to_leader(
                    &st,
                    &headers,
                    leader,
                    deadline,
                    Method::GET,
                    &uri,
                    None,
                    true,
                )
                .await?
                {
                    return Ok(r);
                }
            }
            Err(LoopError::Dropped(m)) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    m,
                    true,
                ))
            }
            Err(LoopError::Stopped) => return Err(stopped()),
            Err(LoopError::Overloaded) => return Err(overloaded()),
        }
    }
}

async fn put_kv(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let key = key_of(key)?;
    let body = body.map_err(body_error)?;
    let obj = parse_object(&body, &["value"], &["request_id"])?;
    let cmd = Command::Put {
        key,
        value: obj["value"].clone(),
        request_id: request_id(&obj)?,
    };
    write(&st, &headers, &uri, Method::PUT, body, cmd).await
}

async fn cas_kv(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let key = key_of(key)?;
    let body = body.map_err(body_error)?;
    let obj = parse_object(&body, &["from", "to"], &["request_id"])?;
    let cmd = Command::Cas {
        key,
        from: obj["from"].clone(),
        to: obj["to"].clone(),
        request_id: request_id(&obj)?,
    };
    write(&st, &headers, &uri, Method::POST, body, cmd).await
}

async fn append_kv(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    key: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let key = key_of(key)?;
    let body = body.map_err(body_error)?;
    let obj = parse_object(&body, &["value"], &["request_id"])?;
    let cmd = Command::Append {
        key,
        value: obj["value"].clone(),
        request_id: request_id(&obj)?,
    };
    write(&st, &headers, &uri, Method::POST, body, cmd).await
}

async fn write(
    st: &Arc<AppState>,
    headers: &HeaderMap,
    uri: &Uri,
    method: Method,
    body: Bytes,
    cmd: Command,
) -> ApiResult {
    let deadline = Instant::now() + st.request_timeout;
    loop {
        let (tx, rx) = oneshot::channel();
        send(
            st,
            Event::Propose {
                cmd: cmd.clone(),
                reply: tx,
            },
        )?;
        let res = match tokio::time::timeout_at(deadline.into(), rx).await {
            Err(_) => return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "the write was proposed but not committed before the deadline; it may still apply",
                false,
            )),
            Ok(Err(_)) => return Err(stopped_indefinite()),
            Ok(Ok(r)) => r,
        };
        return match res {
            Ok(Outcome::Ok) => Ok(Json(json!({})).into_response()),
            Ok(Outcome::CasMismatch { current }) => Ok((
                StatusCode::CONFLICT,
                Json(json!({
                    "error": "cas-mismatch",
                    "current": current,
                    "message": "the current value differs from `from`",
                    "definite": true
                })),
            )
                .into_response()),
            Ok(Outcome::NotAList { current }) => Ok((
                StatusCode::CONFLICT,
                Json(json!({
                    "error": "not-a-list",
                    "current": current,
                    "message": "the key holds a value that is not a list; nothing was appended",
                    "definite": true
                })),
            )
                .into_response()),
            Ok(Outcome::Stale) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "stale-request",
                "this client already sent a newer request; whether this one applied is unknown",
                false,
            )),
            Err(LoopError::NotLeader { leader }) => {
                match route_to_leader(
                    st,
                    headers,
                    leader,
                    deadline,
                    method.clone(),
                    uri,
                    Some(body.clone()),
                    false,
                )
                .await?
                {
                    Some(r) => Ok(r),
                    None => continue,
                }
            }
            Err(LoopError::Dropped(m)) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "dropped",
                m,
                false,
            )),
            Err(LoopError::Stopped) => Err(stopped_indefinite()),
            Err(LoopError::Overloaded) => Err(overloaded()),
        };
    }
}

/// This node is not the leader: forward to the leader if one is known (returns its answer),
/// or wait a little and return `None` to retry locally. `definite_on_loss`: whether an answer
/// lost after sending is still definite (reads).
#[allow(clippy::too_many_arguments)]
async fn route_to_leader(
    st: &Arc<AppState>,
    headers: &HeaderMap,
    leader: Option<NodeId>,
    deadline: Instant,
    method: Method,
    uri: &Uri,
    body: Option<Bytes>,
    definite_on_loss: bool,
) -> Result<Option<Response>, ApiError> {
    let no_leader =
        |msg: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not-leader", msg, true);
    if is_forwarded(headers) {
        return Err(no_leader(format!(
            "{} received a forwarded request but is not the leader (leader: {leader:?})",
            st.id
        )));
    }
    let url = leader.as_ref().and_then(|l| st.peers.get(l));
    let Some(url) = url else {
        if Instant::now() + Duration::from_millis(20) >= deadline {
            return Err(no_leader(format!(
                "{}: no leader known before the deadline",
                st.id
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Ok(None);
    };
    let target = format!(
        "{}{}",
        url.trim_end_matches('/'),
        uri.path_and_query().map_or(uri.path(), |p| p.as_str())
    );
    let remaining = deadline.saturating_duration_since(Instant::now());
    let mut req = st
        .client
        .request(method, &target)
        .header(FORWARDED_HEADER, st.id.as_str())
        .timeout(remaining.max(Duration::from_millis(1)));
    if let Some(b) = body {
        req = req
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .body(b);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(|e| {
                ApiError::new(
                    if definite_on_loss {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::GATEWAY_TIMEOUT
                    },
                    "forward-lost",
                    format!("the leader's answer was lost: {e}"),
                    definite_on_loss,
                )
            })?;
            if status == StatusCode::SERVICE_UNAVAILABLE && Instant::now() < deadline {
                // The leader we knew is no longer leader (definite): retry locally.
                tokio::time::sleep(Duration::from_millis(10)).await;
                return Ok(None);
            }
            Ok(Some(
                (
                    status,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    bytes,
                )
                    .into_response(),
            ))
        }
        Err(e) if e.is_connect() => {
            if Instant::now() + Duration::from_millis(20) >= deadline {
                return Err(no_leader(format!("leader {leader:?} unreachable: {e}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(None)
        }
        Err(e) => Err(ApiError::new(
            if definite_on_loss {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::GATEWAY_TIMEOUT
            },
            "forward-lost",
            format!("forwarded to leader {leader:?}, answer lost: {e}"),
            definite_on_loss,
        )),
    }
}

fn send(st: &AppState, ev: Event) -> Result<(), ApiError> {
    st.handle.send(ev).map_err(|e| match e {
        LoopError::Overloaded => overloaded(),
        _ => stopped(),
    })
}

fn overloaded() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "the node's event queue is full; nothing was done",
        true,
    )
}

fn stopped() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "stopping",
        "the node is shutting down",
        true,
    )
}

fn stopped_indefinite() -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "stopping",
        "the node stopped after the write was proposed",
        false,
    )
}

async fn status(State(st): State<Arc<AppState>>) -> Result<Json<NodeStatus>, ApiError> {
    let (tx, rx) = oneshot::channel();
    send(&st, Event::Status(tx))?;
    let s = tokio::time::timeout(Duration::from_secs(2), rx)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "status timed out",
                true,
            )
        })?
        .map_err(|_| stopped())?;
    Ok(Json(s))
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Message>),
    One(Box<Message>),
}

async fn raft_route(
    State(st): State<Arc<AppState>>,
    Path(route): Path<String>,
    req: Request,
) -> Result<StatusCode, ApiError> {
    // The token and the route are checked from the head alone: nothing of the body is read
    // for a request that will be refused.
    let headers = req.headers();
    let ok_token = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t == st.token);
    if !ok_token {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("peer routes need the cluster token in header `{TOKEN_HEADER}`"),
            true,
        ));
    }
    if !matches!(route.as_str(), "vote" | "append" | "snapshot") {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no peer route /raft/{route} (vote, append, snapshot)"),
            true,
        ));
    }
    let limit = if route == "snapshot" {
        PEER_SNAPSHOT_BODY_LIMIT
    } else {
        PEER_BODY_LIMIT
    };
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("a /raft/{route} body is at most {limit} bytes"),
            true,
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                too_large()
            } else {
                ApiError::bad(format!("reading the body: {e}"))
            }
        })?;
    let msgs = match serde_json::from_slice::<OneOrMany>(&body) {
        Ok(OneOrMany::Many(v)) => v,
        Ok(OneOrMany::One(m)) => vec![*m],
        Err(e) => {
            return Err(ApiError::bad(format!(
                "body is not a raft Message or array of them: {e}"
            )))
        }
    };
    drop(body);
    for m in &msgs {
        if m.body.route() != route {
            return Err(ApiError::bad(format!(
                "a {} message was sent to /raft/{route}",
                m.body.route()
            )));
        }
        if m.to != st.id {
            return Err(ApiError::bad(format!(
                "message for {} sent to {}",
                m.to, st.id
            )));
        }
    }
    send(&st, Event::Messages(msgs))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Server-side deadline of every request (a backstop behind the handlers' own deadlines,
/// against clients that send their body slowly or never): `503` definite for reads and peer
/// routes, `504` indefinite for client writes (they may have been proposed).
pub async fn request_deadline(
    State(st): State<Arc<AppState>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let is_peer = req.uri().path().starts_with("/raft/");
    let write = !is_peer && req.method() != Method::GET;
    let limit = if is_peer {
        PEER_REQUEST_TIMEOUT
    } else {
        st.request_timeout + Duration::from_secs(2)
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) if write => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the server's deadline of {limit:?} passed; the write may still apply"),
            false,
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the server's deadline of {limit:?} passed"),
            true,
        )
        .into_response(),
    }
}

/// Open connections a node serves at once; further connections wait in the kernel's accept
/// backlog until one closes (back-pressure instead of unbounded tasks and buffers).
pub const MAX_CONNECTIONS: usize = 512;

/// A TCP listener that holds at most `limit` connections open (each accepted stream keeps a
/// semaphore permit until it is dropped) and turns on `TCP_NODELAY`.
pub struct LimitedListener {
    inner: tokio::net::TcpListener,
    permits: Arc<tokio::sync::Semaphore>,
}

impl LimitedListener {
    pub fn new(inner: tokio::net::TcpListener, limit: usize) -> Self {
        LimitedListener {
            inner,
            permits: Arc::new(tokio::sync::Semaphore::new(limit.max(1))),
        }
    }
}

/// An accepted connection and its permit.
pub struct LimitedStream {
    io: tokio::net::TcpStream,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so acquiring only waits.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        loop {
            match self.inner.accept().await {
                Ok((io, addr)) => {
                    let _ = io.set_nodelay(true);
                    return (
                        LimitedStream {
                            io,
                            _permit: permit,
                        },
                        addr,
                    );
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl tokio::io::AsyncRead for LimitedStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
