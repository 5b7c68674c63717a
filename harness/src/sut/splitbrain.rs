//! The `splitbrain` target: the project's own node, started as `<current exe> node …` (the
//! harness links the node as a library, so nothing else needs to be built).
//!
//! Client mapping (DESIGN §3): `200` → `Ok`; `409 cas-mismatch` → `Fail`; an error body with
//! `"definite": true` (or any 4xx without a body we understand) → `Fail`; `"definite": false`,
//! other 5xx, timeouts and connections lost after the request was sent → `Info`. A connection
//! that could not be opened never carried the request → `Fail`. Reads that fail are `Fail`.

use super::{
    BoxFuture, Client, MemberCommand, MemberSpec, MemberStatus, Op, Outcome, Reply, Target,
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
        Ok(Arc::new(HttpClient::new(
            &format!("http://{}", m.client_addr),
            timeout,
        )?))
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
        })
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
    match v {
        Some(Value::Null) => Outcome::Ok(Reply::Value(None)),
        Some(Value::Array(items)) => {
            let list: Option<Vec<i64>> = items.iter().map(Value::as_i64).collect();
            match list {
                Some(l) => Outcome::Ok(Reply::List(l)),
                None => Outcome::Fail(format!("list with a non-integer element {}", json!(items))),
            }
        }
        Some(v) => match v.as_i64() {
            Some(i) => Outcome::Ok(Reply::Value(Some(i))),
            None => Outcome::Fail(format!("non-integer value {v}")),
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
                read_reply(body.as_ref().and_then(|b| b.get("value")))
            }
        }
    }

    /// `PUT /kv/{key}`.
    pub async fn write(&self, key: &str, value: i64, request_id: &str) -> Outcome<()> {
        let req = self
            .http
            .put(key_url(&self.base, key))
            .json(&json!({"value": value, "request_id": request_id}));
        self.write_like(req).await
    }

    /// `POST /kv/{key}/cas`.
    pub async fn cas(&self, key: &str, from: i64, to: i64, request_id: &str) -> Outcome<()> {
        let req = self
            .http
            .post(format!("{}/cas", key_url(&self.base, key)))
            .json(&json!({"from": from, "to": to, "request_id": request_id}));
        self.write_like(req).await
    }

    /// `POST /kv/{key}/append` (a key holding a non-list answers `409 not-a-list`, definite).
    pub async fn append(&self, key: &str, value: i64, request_id: &str) -> Outcome<()> {
        let req = self
            .http
            .post(format!("{}/append", key_url(&self.base, key)))
            .json(&json!({"value": value, "request_id": request_id}));
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
