//! The `splitbrain` target: the project's own node, started as `<current exe> node …` (the
//! harness links the node as a library, so nothing else needs to be built).
//!
//! Client mapping (DESIGN §3): `200` → `Ok`; `409 cas-mismatch` → `Fail`; an error body with
//! `"definite": true` (or any 4xx without a body we understand) → `Fail`; `"definite": false`,
//! other 5xx, timeouts and connections lost after the request was sent → `Info`. A connection
//! that could not be opened never carried the request → `Fail`. Reads that fail are `Fail`.

use super::{
    BoxFuture, Client, MemberCommand, MemberSpec, MemberStatus, Op, Outcome, Reply, Target, Values,
};
use anyhow::Context;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The project's node.
#[derive(Debug, Clone)]
pub struct Splitbrain {
    /// The `splitbrain` binary to run as `<exe> node …`.
    pub exe: PathBuf,
}

impl Splitbrain {
    /// Runs nodes with this very executable (`std::env::current_exe()`); `SPLITBRAIN_EXE`
    /// overrides it (for tests whose own binary is not `splitbrain`).
    pub fn current_exe() -> Self {
        let exe = std::env::var_os("SPLITBRAIN_EXE")
            .map(PathBuf::from)
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("splitbrain"));
        Splitbrain { exe }
    }
}

/// The `--snapshot-every` the harness gives its nodes unless `--node-arg` sets one.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 200;

impl Target for Splitbrain {
    fn name(&self) -> &'static str {
        "splitbrain"
    }

    fn shares_client_and_peer_port(&self) -> bool {
        true
    }

    fn command(&self, m: &MemberSpec, _all: &[MemberSpec]) -> anyhow::Result<MemberCommand> {
        let mut args = vec![
            "node".to_string(),
            "--id".into(),
            m.id.clone(),
            "--listen".into(),
            m.client_addr.to_string(),
            "--data-dir".into(),
            m.data_dir.display().to_string(),
            "--cluster-token".into(),
            m.cluster_token.clone(),
            "--seed".into(),
            m.seed.to_string(),
        ];
        for r in &m.routes {
            args.push("--peer".into());
            args.push(format!("{}=http://{}", r.id, r.addr));
        }
        // Snapshots in every default run (the node's own default, 1000, is crossed rarely at
        // the harness's ~100 ops/s under faults); `--node-arg=--snapshot-every…` overrides it.
        if !m
            .extra_args
            .iter()
            .any(|a| a.starts_with("--snapshot-every"))
        {
            args.extend([
                "--snapshot-every".to_string(),
                DEFAULT_SNAPSHOT_EVERY.to_string(),
            ]);
        }
        args.extend(m.extra_args.iter().cloned());
        Ok(MemberCommand {
            program: self.exe.clone(),
            args,
            env: vec![(
                "RUST_LOG".into(),
                std::env::var("SPLITBRAIN_NODE_LOG").unwrap_or_else(|_| "info".into()),
            )],
        })
    }

    fn client(&self, m: &MemberSpec, timeout: Duration) -> anyhow::Result<Arc<dyn Client>> {
        self.client_with_values(m, timeout, Values::Plain)
    }

    /// Padded values are JSON strings (`"<v>:<filler>"`): the node stores any JSON value.
    fn client_with_values(
        &self,
        m: &MemberSpec,
        timeout: Duration,
        values: Values,
    ) -> anyhow::Result<Arc<dyn Client>> {
        Ok(Arc::new(
            HttpClient::new(&format!("http://{}", m.client_addr), timeout)?.with_values(values),
        ))
    }

    /// The node answers `/status` inside its event loop, between two steps: role, term,
    /// applied index and digest are one instant's.
    fn status_is_consistent(&self) -> bool {
        true
    }

    /// `wal.log`'s frames (`len | crc | hcrc | payload`, see `splitbrain_node::wal`).
    fn record_frames(&self, file: &str, bytes: &[u8]) -> Vec<(u64, u32)> {
        if file == "wal.log" {
            splitbrain_node::wal::record_frames(bytes)
        } else {
            Vec::new()
        }
    }

    fn status<'a>(
        &'a self,
        m: &'a MemberSpec,
        timeout: Duration,
    ) -> BoxFuture<'a, anyhow::Result<MemberStatus>> {
        Box::pin(async move {
            let http = reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .context("building an HTTP client")?;
            let url = format!("http://{}/status", m.client_addr);
            let resp = http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            anyhow::ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
            let v: Value = resp
                .json()
                .await
                .with_context(|| format!("GET {url}: body"))?;
            Ok(parse_status(&v))
        })
    }
}

/// Reads `role`, `term`, `leader`, `commit`, `applied_index` and `sm_digest` from a `/status`
/// body, tolerating absent fields.
pub fn parse_status(v: &Value) -> MemberStatus {
    MemberStatus {
        role: v.get("role").and_then(Value::as_str).map(str::to_lowercase),
        term: v.get("term").and_then(Value::as_u64),
        leader: v
            .get("leader")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from),
        commit: v.get("commit").and_then(Value::as_u64),
        applied_index: v
            .get("applied_index")
            .or_else(|| v.get("applied"))
            .and_then(Value::as_u64),
        sm_digest: v.get("sm_digest").and_then(Value::as_str).map(String::from),
    }
}

/// A client of the node's HTTP API (DESIGN §3), bound to one member.
pub struct HttpClient {
    base: String,
    http: reqwest::Client,
    /// How values travel: integers, or padded strings (`--value-size`).
    values: Values,
}

impl HttpClient {
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_millis(500)))
            .pool_max_idle_per_host(4)
            .build()
            .context("building an HTTP client")?;
        Ok(HttpClient {
            base: base.trim_end_matches('/').to_string(),
            http,
            values: Values::Plain,
        })
    }

    /// The same client, its values travelling as `values` says.
    pub fn with_values(self, values: Values) -> Self {
        HttpClient { values, ..self }
    }

    async fn write_like(&self, req: reqwest::RequestBuilder) -> Outcome<()> {
        match req.send().await {
            Err(e) => transport_error(&e, false),
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return Outcome::Ok(());
                }
                let body: Option<Value> = resp.json().await.ok();
                error_outcome(status.as_u16(), body.as_ref())
            }
        }
    }
}

/// Maps a transport error. A connect error never carried the request: `Fail`. Anything else
/// (timeout, reset after sending) may have: `Info` — unless `read`, where it is `Fail`.
fn transport_error<T>(e: &reqwest::Error, read: bool) -> Outcome<T> {
    let what = if e.is_timeout() {
        "timeout".to_string()
    } else if e.is_connect() {
        "connect".to_string()
    } else {
        // The full error names the URL; the reason is a category (for the summary's counts).
        "transport".to_string()
    };
    if read || (e.is_connect() && !e.is_timeout()) {
        Outcome::Fail(what)
    } else {
        Outcome::Info(what)
    }
}

/// Maps a non-2xx answer of a write or cas.
pub fn error_outcome(status: u16, body: Option<&Value>) -> Outcome<()> {
    let code = body
        .and_then(|b| b.get("error"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let reason = if code.is_empty() {
        format!("http-{status}")
    } else {
        code.clone()
    };
    if status == 409 && code == "cas-mismatch" {
        return Outcome::Fail(reason);
    }
    match body
        .and_then(|b| b.get("definite"))
        .and_then(Value::as_bool)
    {
        Some(true) => Outcome::Fail(reason),
        Some(false) => Outcome::Info(reason),
        // No verdict from the node: 4xx means it refused the request, anything else is unknown.
        None if (400..500).contains(&status) => Outcome::Fail(reason),
        None => Outcome::Info(reason),
    }
}

fn key_url(base: &str, key: &str) -> String {
    format!("{base}/kv/{key}")
}

/// A read answer's `value`: `null` (absent), an integer, or a list of integers.
pub fn read_reply(v: Option<&Value>) -> Outcome<Reply> {
    read_values(v, "", Values::Plain)
}

/// A read answer's `value` of `key`, its values decoded as `values` says: with padding, an
/// element or value that is not what its writer sent is `splitbrain_workloads::values::CORRUPT`
/// (an `ok` read of a value nobody wrote, which the checker finds illegal).
pub fn read_values(v: Option<&Value>, key: &str, values: Values) -> Outcome<Reply> {
    match v {
        Some(Value::Null) => Outcome::Ok(Reply::Value(None)),
        Some(Value::Array(items)) => {
            let list: Result<Vec<i64>, String> =
                items.iter().map(|i| values.from_json(key, i)).collect();
            match list {
                Ok(l) => Outcome::Ok(Reply::List(l)),
                Err(_) => {
                    Outcome::Fail(format!("list with a non-integer element {}", json!(items)))
                }
            }
        }
        Some(v) => match values.from_json(key, v) {
            Ok(i) => Outcome::Ok(Reply::Value(Some(i))),
            Err(e) => Outcome::Fail(e),
        },
        None => Outcome::Fail("read answer without a value".into()),
    }
}

fn done(o: Outcome<()>) -> Outcome<Reply> {
    match o {
        Outcome::Ok(()) => Outcome::Ok(Reply::Done),
        Outcome::Fail(r) => Outcome::Fail(r),
        Outcome::Info(r) => Outcome::Info(r),
    }
}

impl HttpClient {
    /// `GET /kv/{key}`.
    pub async fn read(&self, key: &str) -> Outcome<Reply> {
        match self.http.get(key_url(&self.base, key)).send().await {
            Err(e) => transport_error(&e, true),
            Ok(resp) => {
                let status = resp.status();
                let body: Option<Value> = resp.json().await.ok();
                if !status.is_success() {
                    let code = body
                        .as_ref()
                        .and_then(|b| b.get("error"))
                        .and_then(Value::as_str)
                        .map(String::from)
                        .unwrap_or_else(|| format!("http-{}", status.as_u16()));
                    return Outcome::Fail(code);
                }
                read_values(body.as_ref().and_then(|b| b.get("value")), key, self.values)
            }
        }
    }

    /// `PUT /kv/{key}`.
    pub async fn write(&self, key: &str, value: i64, request_id: &str) -> Outcome<()> {
        let req = self
            .http
            .put(key_url(&self.base, key))
            .json(&json!({"value": self.values.to_json(key, value), "request_id": request_id}));
        self.write_like(req).await
    }

    /// `POST /kv/{key}/cas`.
    pub async fn cas(&self, key: &str, from: i64, to: i64, request_id: &str) -> Outcome<()> {
        let req = self
            .http
            .post(format!("{}/cas", key_url(&self.base, key)))
            .json(&json!({
                "from": self.values.to_json(key, from),
                "to": self.values.to_json(key, to),
                "request_id": request_id
            }));
        self.write_like(req).await
    }

    /// `POST /kv/{key}/append` (a key holding a non-list answers `409 not-a-list`, definite).
    pub async fn append(&self, key: &str, value: i64, request_id: &str) -> Outcome<()> {
        let req = self
            .http
            .post(format!("{}/append", key_url(&self.base, key)))
            .json(&json!({"value": self.values.to_json(key, value), "request_id": request_id}));
        self.write_like(req).await
    }
}

impl Client for HttpClient {
    fn invoke<'a>(&'a self, op: &'a Op, request_id: &'a str) -> BoxFuture<'a, Outcome<Reply>> {
        Box::pin(async move {
            match op {
                Op::Read { key } => self.read(key).await,
                Op::Write { key, value } => done(self.write(key, *value, request_id).await),
                Op::Cas { key, from, to } => done(self.cas(key, *from, *to, request_id).await),
                Op::Append { key, value } => done(self.append(key, *value, request_id).await),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_definite_errors_to_fail_and_indefinite_to_info() {
        let def = json!({"error":"not-leader","message":"x","definite":true});
        let indef = json!({"error":"timeout","message":"x","definite":false});
        assert_eq!(
            error_outcome(503, Some(&def)),
            Outcome::Fail("not-leader".into())
        );
        assert_eq!(
            error_outcome(504, Some(&indef)),
            Outcome::Info("timeout".into())
        );
        assert_eq!(
            error_outcome(409, Some(&json!({"error":"cas-mismatch","current":3}))),
            Outcome::Fail("cas-mismatch".into())
        );
        assert_eq!(error_outcome(502, None), Outcome::Info("http-502".into()));
        assert_eq!(error_outcome(400, None), Outcome::Fail("http-400".into()));
        assert_eq!(
            error_outcome(
                409,
                Some(&json!({"error":"not-a-list","message":"x","definite":true}))
            ),
            Outcome::Fail("not-a-list".into())
        );
    }

    #[test]
    fn reads_integers_absent_keys_and_lists() {
        assert_eq!(
            read_reply(Some(&json!(null))),
            Outcome::Ok(Reply::Value(None))
        );
        assert_eq!(
            read_reply(Some(&json!(4))),
            Outcome::Ok(Reply::Value(Some(4)))
        );
        assert_eq!(
            read_reply(Some(&json!([3, 1]))),
            Outcome::Ok(Reply::List(vec![3, 1]))
        );
        assert!(matches!(read_reply(Some(&json!(["x"]))), Outcome::Fail(_)));
        assert!(matches!(read_reply(None), Outcome::Fail(_)));
    }

    #[test]
    fn parses_status_with_missing_fields() {
        let s = parse_status(&json!({"role":"Leader","term":4,"leader":"n2"}));
        assert_eq!(s.leader.as_deref(), Some("n2"));
        assert_eq!(s.role.as_deref(), Some("leader"));
        assert_eq!(parse_status(&json!({"leader":null})).leader, None);
    }
}

#[cfg(test)]
mod padded_tests {
    use super::*;
    use axum::extract::{Path, State};
    use axum::routing::get;
    use axum::Json;
    use splitbrain_checker::history::History;
    use splitbrain_checker::{check, CheckOptions, ModelKind, Verdict};
    use splitbrain_workloads::values::{Padding, SizeDist, ValueSize, CORRUPT};
    use splitbrain_workloads::WorkloadKind;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// A member that stores what it is sent and answers reads with it, byte 100 of the value
    /// changed while `tamper` is set (a disk or a network that damages data).
    #[derive(Clone, Default)]
    struct Member {
        kv: Arc<Mutex<BTreeMap<String, Value>>>,
        tamper: Arc<AtomicBool>,
    }

    async fn put(
        State(m): State<Member>,
        Path(key): Path<String>,
        Json(b): Json<Value>,
    ) -> Json<Value> {
        m.kv.lock().unwrap().insert(key, b["value"].clone());
        Json(json!({}))
    }

    async fn read(State(m): State<Member>, Path(key): Path<String>) -> Json<Value> {
        let v =
            m.kv.lock()
                .unwrap()
                .get(&key)
                .cloned()
                .unwrap_or(Value::Null);
        let v = match v {
            Value::String(s) if m.tamper.load(Ordering::SeqCst) => {
                let mut b = s.into_bytes();
                b[100] = if b[100] == b'A' { b'B' } else { b'A' };
                Value::String(String::from_utf8(b).unwrap())
            }
            v => v,
        };
        Json(json!({ "value": v }))
    }

    /// `(invoke, completion)` of each op in turn, as a kv history of one process per op.
    fn history(
        steps: &[(Op, Outcome<Reply>)],
    ) -> (History, Vec<splitbrain_checker::history::Event>) {
        let w = WorkloadKind::Kv.workload();
        let mut events = Vec::new();
        for (i, (op, outcome)) in steps.iter().enumerate() {
            let c = w.completion(op, outcome.clone());
            let t = i as u64 * 20;
            events.push(
                json!({"index": events.len(), "time": t, "process": i, "type": "invoke",
                "f": op.f().name(), "key": op.key(), "value": w.invocation_value(op)}),
            );
            let kind = serde_json::to_value(c.kind).unwrap();
            events.push(
                json!({"index": events.len(), "time": t + 10, "process": i, "type": kind,
                "f": op.f().name(), "key": op.key(), "value": c.value}),
            );
        }
        let events: Vec<splitbrain_checker::history::Event> = events
            .into_iter()
            .map(|e| serde_json::from_value(e).unwrap())
            .collect();
        (History::from_events(events.clone()).unwrap(), events)
    }

    #[tokio::test]
    async fn a_read_whose_padding_was_tampered_with_is_a_corrupt_value_and_the_key_is_invalid() {
        let member = Member::default();
        let app = axum::Router::new()
            .route("/kv/{key}", get(read).put(put))
            .with_state(member.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let padding = Padding::new(
            ValueSize {
                bytes: 4096,
                dist: SizeDist::Constant,
            },
            9,
        );
        let client = HttpClient::new(&format!("http://{addr}"), Duration::from_secs(2))
            .unwrap()
            .with_values(Values::Padded(padding));
        let write = Op::Write {
            key: "k0".into(),
            value: 3,
        };
        let read_op = Op::Read { key: "k0".into() };
        let w = client.invoke(&write, "c0-1").await;
        assert_eq!(w, Outcome::Ok(Reply::Done));
        let stored = member.kv.lock().unwrap()["k0"].clone();
        assert_eq!(
            stored.as_str().map(str::len),
            Some(4096),
            "the wire value's size"
        );
        let good = client.invoke(&read_op, "").await;
        assert_eq!(good, Outcome::Ok(Reply::Value(Some(3))));
        member.tamper.store(true, Ordering::SeqCst);
        let bad = client.invoke(&read_op, "").await;
        assert_eq!(bad, Outcome::Ok(Reply::Value(Some(CORRUPT))));

        let (h, _) = history(&[(write.clone(), w.clone()), (read_op.clone(), good.clone())]);
        let opts = CheckOptions::default();
        assert_eq!(check(&h, ModelKind::Kv, &opts).valid, Verdict::Valid);
        let (h, events) = history(&[(write, w), (read_op.clone(), good), (read_op, bad)]);
        assert_eq!(check(&h, ModelKind::Kv, &opts).valid, Verdict::Invalid);
        let stats = crate::summary::stats(&events, &[]);
        assert_eq!(stats.corrupt_reads, 1);
        assert!(crate::summary::render(&stats).contains("corrupt reads       1:"));
    }
}
