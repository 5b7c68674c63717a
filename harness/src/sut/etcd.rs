//! The `etcd` target: Debian's `etcd-server` (3.4, `/usr/bin/etcd`; `SPLITBRAIN_ETCD` overrides
//! the binary), reached through etcd's v3 JSON gateway (grpc-gateway on the client port).
//!
//! # Members
//! Each member is a local `etcd` process with its own data dir, client port (`client_addr`)
//! and peer port (`peer_addr`), `--pre-vote=true`, and election settings fast enough for tests
//! (heartbeat 50 ms, election timeout 500 ms by default). etcd derives its cluster and member
//! ids from the peer URLs of `--initial-cluster`, so every member must list the same URLs: the
//! peers' own `peer_addr`s are used and the per-link `routes` are ignored. Faults between etcd
//! members therefore need the `netns` network (rules inside each member's namespace); the
//! `proxy` network cannot cut etcd's peer links.
//!
//! # Client mapping
//! Keys are the key's bytes, values the decimal text of the integer (with `--value-size`, the
//! padded text `"<v>:<filler>"`, see `splitbrain_workloads::values`), both base64 in JSON;
//! 64-bit integers arrive as strings and fields equal to their default are omitted (an absent
//! `kvs` is an absent key; an absent `succeeded` is `false`). Every request carries
//! `Grpc-Metadata-hasleader: true`, so that a member without a leader rejects it before
//! proposing ("etcdserver: no leader").
//!
//! | what happened | write / cas | read |
//! |---|---|---|
//! | 200 | `Ok` (cas: `succeeded` false → `Fail("cas-mismatch")`) | `Ok(value)` |
//! | rejected before proposing: "no leader", invalid argument, too many requests, request too large, … | `Fail` | `Fail` |
//! | "context deadline exceeded", "request timed out", "leader changed", any other error | `Info` | `Fail` |
//! | connection refused (request never sent) | `Fail` | `Fail` |
//! | timeout or connection lost after sending | `Info` | `Fail` |
//!
//! The leader comes from `POST /v3/maintenance/status` (`leader` vs `header.member_id`) and
//! `POST /v3/cluster/member/list` (numeric member id → `--name`).

use super::{
    BoxFuture, Client, MemberCommand, MemberSpec, MemberStatus, Op, Outcome, Reply, Target, Values,
};
use anyhow::Context;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The header that makes a leaderless member reject requests instead of waiting.
pub const HASLEADER_HEADER: &str = "Grpc-Metadata-hasleader";

/// The etcd target. See the module docs.
#[derive(Debug, Clone)]
pub struct Etcd {
    /// The `etcd` binary.
    pub program: PathBuf,
    /// `--heartbeat-interval` in ms.
    pub heartbeat_ms: u64,
    /// `--election-timeout` in ms.
    pub election_ms: u64,
}

impl Default for Etcd {
    fn default() -> Self {
        let program = std::env::var_os("SPLITBRAIN_ETCD")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
        Etcd {
            program,
            heartbeat_ms: 50,
            election_ms: 500,
        }
    }
}

impl Target for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn shares_client_and_peer_port(&self) -> bool {
        false
    }

    fn command(&self, m: &MemberSpec, all: &[MemberSpec]) -> anyhow::Result<MemberCommand> {
        anyhow::ensure!(
            self.program.exists(),
            "etcd binary {} not found: install it with `apt-get install -y etcd-server` \
             (or set SPLITBRAIN_ETCD)",
            self.program.display()
        );
        Ok(MemberCommand {
            program: self.program.clone(),
            args: self.args(m, all),
            env: vec![],
        })
    }

    fn client(&self, m: &MemberSpec, timeout: Duration) -> anyhow::Result<Arc<dyn Client>> {
        self.client_with_values(m, timeout, Values::Plain)
    }

    /// Padded values are the stored bytes themselves (lists: JSON lists of padded strings).
    fn client_with_values(
        &self,
        m: &MemberSpec,
        timeout: Duration,
        values: Values,
    ) -> anyhow::Result<Arc<dyn Client>> {
        let mut c = EtcdClient::new(&format!("http://{}", m.client_addr), timeout)?;
        c.values = values;
        Ok(Arc::new(c))
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
            let base = format!("http://{}", m.client_addr);
            let status = post_json(&http, &format!("{base}/v3/maintenance/status")).await?;
            let members = post_json(&http, &format!("{base}/v3/cluster/member/list")).await?;
            parse_status(&status, &members)
        })
    }
}

impl Etcd {
    /// The arguments that start member `m` of cluster `all`.
    pub fn args(&self, m: &MemberSpec, all: &[MemberSpec]) -> Vec<String> {
        let cluster: Vec<String> = all
            .iter()
            .map(|p| format!("{}=http://{}", p.id, p.peer_addr))
            .collect();
        let mut args: Vec<String> = [
            ("--name", m.id.clone()),
            ("--data-dir", m.data_dir.display().to_string()),
            ("--listen-client-urls", format!("http://{}", m.client_addr)),
            (
                "--advertise-client-urls",
                format!("http://{}", m.client_addr),
            ),
            ("--listen-peer-urls", format!("http://{}", m.peer_addr)),
            (
                "--initial-advertise-peer-urls",
                format!("http://{}", m.peer_addr),
            ),
            ("--initial-cluster", cluster.join(",")),
            ("--initial-cluster-state", "new".into()),
            ("--initial-cluster-token", m.cluster_token.clone()),
            ("--heartbeat-interval", self.heartbeat_ms.to_string()),
            ("--election-timeout", self.election_ms.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
        args.push("--pre-vote=true".into());
        args.push("--logger=zap".into());
        args.extend(m.extra_args.iter().cloned());
        args
    }
}

async fn post_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let resp = http
        .post(url)
        .json(&json!({}))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("POST {url}: body"))?;
    anyhow::ensure!(
        status.is_success(),
        "POST {url}: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    first_json(&body).with_context(|| format!("POST {url}: body is not JSON"))
}

/// A client of one member's JSON gateway.
pub struct EtcdClient {
    base: String,
    http: reqwest::Client,
    /// How values travel: decimal text, or padded text (`--value-size`).
    pub values: Values,
}

impl EtcdClient {
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_millis(500)))
            .pool_max_idle_per_host(4)
            .build()
            .context("building an HTTP client")?;
        Ok(EtcdClient {
            base: base.trim_end_matches('/').to_string(),
            http,
            values: Values::Plain,
        })
    }

    /// Sends `body` to `path`; the status and body, or the transport's outcome for a write
    /// (`write`) or a read.
    async fn call<T>(
        &self,
        path: &str,
        body: Value,
        write: bool,
    ) -> Result<(u16, Vec<u8>), Outcome<T>> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(HASLEADER_HEADER, "true")
            .json(&body);
        match req.send().await {
            Err(e) => Err(transport_error(&e, write)),
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(b) => Ok((status, b.to_vec())),
                    Err(e) => Err(transport_error(&e, write)),
                }
            }
        }
    }
}

/// Tries of an append's read-modify-write before giving up (`fail`: no try applied).
pub const APPEND_ATTEMPTS: usize = 5;

fn done(o: Outcome<()>) -> Outcome<Reply> {
    match o {
        Outcome::Ok(()) => Outcome::Ok(Reply::Done),
        Outcome::Fail(r) => Outcome::Fail(r),
        Outcome::Info(r) => Outcome::Info(r),
    }
}

impl EtcdClient {
    async fn range(&self, key: &str) -> Outcome<Option<(String, u64)>> {
        match self.call("/v3/kv/range", range_request(key), false).await {
            Err(o) => o,
            Ok((status, body)) => decode_range_text(status, &body),
        }
    }

    /// Appends `value` to the JSON list under `key`: read the key and its mod revision, then
    /// a txn that puts the longer list if the mod revision is unchanged (0: still absent).
    /// A failed guard (another write came between) is retried up to [`APPEND_ATTEMPTS`]
    /// times, then `fail` (no try applied).
    async fn append(&self, key: &str, value: i64) -> Outcome<Reply> {
        for _ in 0..APPEND_ATTEMPTS {
            // The stored elements as they are (padded or not): only the new one is encoded.
            let (mut list, rev) = match self.range(key).await {
                Outcome::Ok(None) => (Vec::new(), 0),
                Outcome::Ok(Some((text, rev))) => match parse_raw_list(&text, self.values) {
                    Some(l) => (l, rev),
                    None => return Outcome::Fail("not-a-list".into()),
                },
                // Nothing was written yet (earlier tries' guards failed).
                Outcome::Fail(r) | Outcome::Info(r) => return Outcome::Fail(r),
            };
            list.push(self.values.to_json(key, value));
            let req = append_request(key, rev, &list);
            match self.call("/v3/kv/txn", req, true).await {
                Err(o) => return o,
                Ok((status, body)) => match txn_succeeded(status, &body) {
                    Ok(true) => return Outcome::Ok(Reply::Done),
                    Ok(false) => continue,
                    Err(o) => return done(o),
                },
            }
        }
        Outcome::Fail(format!(
            "append-contention: the key changed between read and write {APPEND_ATTEMPTS} times"
        ))
    }
}

impl Client for EtcdClient {
    fn invoke<'a>(&'a self, op: &'a Op, _rid: &'a str) -> BoxFuture<'a, Outcome<Reply>> {
        Box::pin(async move {
            match op {
                Op::Read { key } => match self.range(key).await {
                    Outcome::Ok(None) => Outcome::Ok(Reply::Value(None)),
                    Outcome::Ok(Some((text, _))) => read_text_values(key, &text, self.values),
                    Outcome::Fail(r) | Outcome::Info(r) => Outcome::Fail(r),
                },
                Op::Write { key, value } => {
                    match self
                        .call(
                            "/v3/kv/put",
                            put_text_request(key, &self.values.to_text(key, *value)),
                            true,
                        )
                        .await
                    {
                        Err(o) => o,
                        Ok((status, body)) => done(decode_put(status, &body)),
                    }
                }
                Op::Cas { key, from, to } => {
                    match self
                        .call(
                            "/v3/kv/txn",
                            cas_text_request(
                                key,
                                &self.values.to_text(key, *from),
                                &self.values.to_text(key, *to),
                            ),
                            true,
                        )
                        .await
                    {
                        Err(o) => o,
                        Ok((status, body)) => done(decode_txn(status, &body)),
                    }
                }
                Op::Append { key, value } => self.append(key, *value).await,
            }
        })
    }
}

/// A stored value as read: an integer (registers) or a JSON list of integers (append).
pub fn read_text(text: &str) -> Outcome<Reply> {
    if let Ok(i) = text.parse::<i64>() {
        return Outcome::Ok(Reply::Value(Some(i)));
    }
    match parse_list(text) {
        Some(l) => Outcome::Ok(Reply::List(l)),
        None => Outcome::Fail(format!("non-integer value {text:?}")),
    }
}

/// A stored value of `key` as read, decoded as `values` says: with padding, a list of padded
/// strings or one padded value; anything that is not what its writer sent is
/// `splitbrain_workloads::values::CORRUPT` (an `ok` read the checker finds illegal).
pub fn read_text_values(key: &str, text: &str, values: Values) -> Outcome<Reply> {
    if !values.is_padded() {
        return read_text(text);
    }
    // A padded register starts with its integer, never with `[`.
    if let Ok(items) = serde_json::from_str::<Vec<Value>>(text) {
        let list: Result<Vec<i64>, String> =
            items.iter().map(|i| values.from_json(key, i)).collect();
        if let Ok(l) = list {
            return Outcome::Ok(Reply::List(l));
        }
    }
    match values.from_text(key, text) {
        Ok(v) => Outcome::Ok(Reply::Value(Some(v))),
        Err(e) => Outcome::Fail(e),
    }
}

/// A JSON list of integers, as the append workload stores it.
pub fn parse_list(text: &str) -> Option<Vec<i64>> {
    serde_json::from_str::<Vec<i64>>(text).ok()
}

/// The stored list's elements as JSON (integers, or with padding the padded strings), to
/// append one more.
pub fn parse_raw_list(text: &str, values: Values) -> Option<Vec<Value>> {
    if values.is_padded() {
        serde_json::from_str::<Vec<Value>>(text).ok()
    } else {
        parse_list(text).map(|l| l.into_iter().map(Value::from).collect())
    }
}

/// `POST /v3/kv/txn`: if the key's mod revision is `rev` (0: absent), put `list` as JSON.
pub fn append_request<T: serde::Serialize>(key: &str, rev: u64, list: &[T]) -> Value {
    let k = b64_encode(key.as_bytes());
    let text = serde_json::to_string(list).unwrap_or_default();
    json!({
        "compare": [{
            "key": k, "target": "MOD", "result": "EQUAL", "mod_revision": rev.to_string()
        }],
        "success": [{ "request_put": { "key": k, "value": b64_encode(text.as_bytes()) } }]
    })
}

/// Whether a txn's guard held (`Err`: the txn's own error outcome).
pub fn txn_succeeded(status: u16, body: &[u8]) -> Result<bool, Outcome<()>> {
    if status != 200 {
        return Err(error_outcome(status, body, true));
    }
    match first_json(body) {
        None => Err(Outcome::Info("txn answer is not JSON".into())),
        Some(v) => Ok(v.get("succeeded").and_then(Value::as_bool) == Some(true)),
    }
}

/// A transport error: a request that never left (connect refused) is `Fail`; a timeout or a
/// connection lost after sending is `Info` for writes; reads are always `Fail`.
fn transport_error<T>(e: &reqwest::Error, write: bool) -> Outcome<T> {
    let never_sent = e.is_connect() && !e.is_timeout();
    let what = if e.is_timeout() {
        "timeout".to_string()
    } else if e.is_connect() {
        "connect".to_string()
    } else {
        format!("transport: {e}")
    };
    if write && !never_sent {
        Outcome::Info(what)
    } else {
        Outcome::Fail(what)
    }
}

/// `POST /v3/kv/range` for one key, linearizable (`serializable` omitted = false).
pub fn range_request(key: &str) -> Value {
    json!({ "key": b64_encode(key.as_bytes()) })
}

/// `POST /v3/kv/put`.
pub fn put_request(key: &str, value: i64) -> Value {
    put_text_request(key, &value.to_string())
}

/// `POST /v3/kv/put` of `text`.
pub fn put_text_request(key: &str, text: &str) -> Value {
    json!({ "key": b64_encode(key.as_bytes()), "value": b64_encode(text.as_bytes()) })
}

/// `POST /v3/kv/txn`: if the value equals `from`, put `to`.
pub fn cas_request(key: &str, from: i64, to: i64) -> Value {
    cas_text_request(key, &from.to_string(), &to.to_string())
}

/// `POST /v3/kv/txn`: if the stored text equals `from`, put `to`.
pub fn cas_text_request(key: &str, from: &str, to: &str) -> Value {
    let k = b64_encode(key.as_bytes());
    json!({
        "compare": [{
            "key": k, "target": "VALUE", "result": "EQUAL",
            "value": b64_encode(from.as_bytes())
        }],
        "success": [{ "request_put": { "key": k, "value": b64_encode(to.as_bytes()) } }]
    })
}

/// The first JSON value of a body (the gateway may append trailers after it on errors).
pub fn first_json(body: &[u8]) -> Option<Value> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// Errors the server raises before a request is proposed to Raft: it certainly did not happen.
const DEFINITE_ERRORS: &[&str] = &[
    "etcdserver: no leader",
    "etcdserver: too many requests",
    "etcdserver: request is too large",
    "etcdserver: not capable",
    "etcdserver: key is not provided",
    "etcdserver: value is provided",
    "etcdserver: duplicate key given in txn request",
    "etcdserver: too many operations in txn request",
    "etcdserver: permission denied",
    "etcdserver: user name is empty",
    "etcdserver: invalid auth token",
];

/// gRPC codes that mean the request was refused as given (InvalidArgument, NotFound,
/// AlreadyExists, PermissionDenied, FailedPrecondition, OutOfRange, Unimplemented,
/// Unauthenticated).
const DEFINITE_CODES: &[i64] = &[3, 5, 6, 7, 9, 11, 12, 16];

/// Maps a non-200 gateway answer. Reads are always `Fail`; writes are `Fail` only when the
/// error is one raised before proposing, else `Info`.
pub fn error_outcome<T>(status: u16, body: &[u8], write: bool) -> Outcome<T> {
    let v = first_json(body);
    let msg = v
        .as_ref()
        .and_then(|v| v.get("error").or_else(|| v.get("message")))
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| format!("http-{status}"));
    let code = v
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_i64);
    let definite = DEFINITE_ERRORS.contains(&msg.as_str())
        || code.is_some_and(|c| DEFINITE_CODES.contains(&c))
        || (400..500).contains(&status) && code.is_none();
    if !write || definite {
        Outcome::Fail(msg)
    } else {
        Outcome::Info(msg)
    }
}

/// The answer to a range request: the value's text and its mod revision, `None` if absent.
pub fn decode_range_text(status: u16, body: &[u8]) -> Outcome<Option<(String, u64)>> {
    if status != 200 {
        return error_outcome(status, body, false);
    }
    let Some(v) = first_json(body) else {
        return Outcome::Fail("range answer is not JSON".into());
    };
    let kvs = match v.get("kvs") {
        None | Some(Value::Null) => return Outcome::Ok(None),
        Some(Value::Array(a)) if a.is_empty() => return Outcome::Ok(None),
        Some(Value::Array(a)) => a,
        Some(other) => return Outcome::Fail(format!("range answer with kvs {other}")),
    };
    let rev = match kvs[0].get("mod_revision") {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    };
    // An absent value field is the empty value, which we never write.
    let raw = kvs[0].get("value").and_then(Value::as_str).unwrap_or("");
    match b64_decode(raw).ok().and_then(|b| String::from_utf8(b).ok()) {
        Some(text) => Outcome::Ok(Some((text, rev))),
        None => Outcome::Fail(format!("value {raw:?} is not base64 text")),
    }
}

/// The answer to a range request of an integer register.
pub fn decode_range(status: u16, body: &[u8]) -> Outcome<Option<i64>> {
    match decode_range_text(status, body) {
        Outcome::Ok(None) => Outcome::Ok(None),
        Outcome::Ok(Some((text, _))) => match text.parse::<i64>() {
            Ok(i) => Outcome::Ok(Some(i)),
            Err(_) => Outcome::Fail(format!("non-integer value {text:?}")),
        },
        Outcome::Fail(r) => Outcome::Fail(r),
        Outcome::Info(r) => Outcome::Info(r),
    }
}

/// The answer to a put.
pub fn decode_put(status: u16, body: &[u8]) -> Outcome<()> {
    if status != 200 {
        return error_outcome(status, body, true);
    }
    Outcome::Ok(())
}

/// The answer to a cas txn: `succeeded` absent or false is a mismatch.
pub fn decode_txn(status: u16, body: &[u8]) -> Outcome<()> {
    if status != 200 {
        return error_outcome(status, body, true);
    }
    match first_json(body) {
        // The txn was applied (200); only its result is unreadable.
        None => Outcome::Info("txn answer is not JSON".into()),
        Some(v) => match v.get("succeeded").and_then(Value::as_bool) {
            Some(true) => Outcome::Ok(()),
            _ => Outcome::Fail("cas-mismatch".into()),
        },
    }
}

/// Builds a [`MemberStatus`] from `maintenance/status` and `cluster/member/list` answers.
pub fn parse_status(status: &Value, members: &Value) -> anyhow::Result<MemberStatus> {
    let id_of = |v: Option<&Value>| -> Option<u64> {
        match v? {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    };
    let me =
        id_of(status.pointer("/header/member_id")).context("status without header.member_id")?;
    let leader = id_of(status.get("leader")).filter(|&l| l != 0);
    let term = id_of(status.get("raftTerm"));
    let name_of = |id: u64| -> Option<String> {
        members.get("members")?.as_array()?.iter().find_map(|m| {
            (id_of(m.get("ID")) == Some(id)).then(|| m.get("name")?.as_str().map(String::from))?
        })
    };
    let role = match leader {
        Some(l) if l == me => "leader",
        Some(_) => "follower",
        None => "candidate",
    };
    let leader_name = match leader {
        None => None,
        Some(l) => {
            Some(name_of(l).with_context(|| format!("leader {l} is not in the member list"))?)
        }
    };
    Ok(MemberStatus {
        role: Some(role.into()),
        term,
        leader: leader_name,
        ..MemberStatus::default()
    })
}

/// Standard base64 with padding (what the gateway uses for `bytes`).
pub fn b64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes standard base64 (padding optional); an error says what is wrong.
pub fn b64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(text).map_err(|e| format!("bad base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A recorded gateway answer: status code and body (headers skipped).
    fn fixture(name: &str) -> (u16, Vec<u8>) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/etcd")
            .join(name);
        let text = std::fs::read_to_string(&path).expect("fixture exists");
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let body = text
            .split_once("\r\n\r\n")
            .or_else(|| text.split_once("\n\n"))
            .expect("headers end")
            .1;
        (status, body.as_bytes().to_vec())
    }

    #[test]
    fn base64_round_trips_and_matches_the_gateway() {
        assert_eq!(b64_encode(b"foo"), "Zm9v");
        assert_eq!(b64_encode(b"none"), "bm9uZQ==");
        assert_eq!(b64_encode(b"x"), "eA==");
        for s in ["", "a", "ab", "abc", "-9223372036854775808", "k17"] {
            assert_eq!(b64_decode(&b64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert!(b64_decode("Zm9v!").is_err());
    }

    #[test]
    fn reads_recorded_range_answers() {
        let (s, b) = fixture("range_ok.http");
        // The recorded value is "bar", not an integer: a read of garbage is a failed read.
        assert!(matches!(decode_range(s, &b), Outcome::Fail(m) if m.contains("bar")));
        let (s, b) = fixture("range_absent.http");
        assert_eq!(decode_range(s, &b), Outcome::Ok(None));
        let body = br#"{"header":{"revision":"9"},"kvs":[{"key":"azE=","value":"LTQy","version":"2"}],"count":"1"}"#;
        assert_eq!(decode_range(200, body), Outcome::Ok(Some(-42)));
    }

    #[test]
    fn maps_recorded_txn_answers_to_ok_and_cas_mismatch() {
        let (s, b) = fixture("txn_ok.http");
        assert_eq!(decode_txn(s, &b), Outcome::Ok(()));
        let (s, b) = fixture("txn_mismatch.http");
        assert_eq!(decode_txn(s, &b), Outcome::Fail("cas-mismatch".into()));
        let (s, b) = fixture("txn_absent.http");
        assert_eq!(decode_txn(s, &b), Outcome::Fail("cas-mismatch".into()));
    }

    #[test]
    fn maps_no_leader_rejection_to_fail_for_writes_and_reads() {
        for f in ["put_noleader.http", "txn_noleader.http"] {
            let (s, b) = fixture(f);
            assert_eq!(
                decode_put(s, &b),
                Outcome::Fail("etcdserver: no leader".into()),
                "{f}"
            );
        }
        let (s, b) = fixture("range_noleader.http");
        assert_eq!(
            decode_range(s, &b),
            Outcome::Fail("etcdserver: no leader".into())
        );
    }

    #[test]
    fn maps_recorded_write_timeouts_to_info_and_read_timeouts_to_fail() {
        let (s, b) = fixture("put_deadline.http");
        assert_eq!(
            decode_put(s, &b),
            Outcome::Info("context deadline exceeded".into())
        );
        assert_eq!(
            decode_txn(s, &b),
            Outcome::Info("context deadline exceeded".into())
        );
        let (s, b) = fixture("put_request_timed_out.http");
        assert_eq!(
            decode_put(s, &b),
            Outcome::Info("etcdserver: request timed out".into())
        );
        let (s, b) = fixture("range_deadline.http");
        assert_eq!(
            decode_range(s, &b),
            Outcome::Fail("etcdserver: request timed out".into())
        );
    }

    #[test]
    fn maps_invalid_argument_to_fail_and_unknown_5xx_to_info() {
        let (s, b) = fixture("bad_json.http");
        assert_eq!(decode_put(s, &b), Outcome::Fail("unexpected EOF".into()));
        assert_eq!(
            decode_put(502, b"<html>bad gateway</html>"),
            Outcome::Info("http-502".into())
        );
        let (s, b) = fixture("put_ok.http");
        assert_eq!(decode_put(s, &b), Outcome::Ok(()));
    }

    #[test]
    fn finds_the_leader_from_recorded_status_answers() {
        let (_, b) = fixture("member_list.http");
        let members = first_json(&b).unwrap();
        let mut leaders = vec![];
        for f in ["status_n1.http", "status_n2.http", "status_n3.http"] {
            let (_, b) = fixture(f);
            let st = parse_status(&first_json(&b).unwrap(), &members).unwrap();
            assert_eq!(st.leader.as_deref(), Some("n2"), "{f}");
            assert_eq!(st.term, Some(2));
            leaders.push(st.role.unwrap());
        }
        assert_eq!(leaders, ["follower", "leader", "follower"]);
        let (_, b) = fixture("status_noleader.http");
        let st = parse_status(&first_json(&b).unwrap(), &members).unwrap();
        assert_eq!((st.leader, st.role.as_deref()), (None, Some("candidate")));
    }

    #[test]
    fn reads_lists_and_mod_revisions_and_guards_appends_by_mod_revision() {
        let (s, b) = fixture("range_ok.http");
        assert_eq!(
            decode_range_text(s, &b),
            Outcome::Ok(Some(("bar".to_string(), 4)))
        );
        assert_eq!(read_text("[1,5]"), Outcome::Ok(Reply::List(vec![1, 5])));
        assert_eq!(read_text("7"), Outcome::Ok(Reply::Value(Some(7))));
        assert!(matches!(read_text("bar"), Outcome::Fail(_)));
        let r = append_request("k1", 0, &[3]);
        assert_eq!(r["compare"][0]["target"], "MOD");
        assert_eq!(r["compare"][0]["mod_revision"], "0");
        assert_eq!(r["success"][0]["request_put"]["value"], b64_encode(b"[3]"));
        let (s, b) = fixture("txn_ok.http");
        assert_eq!(txn_succeeded(s, &b), Ok(true));
        let (s, b) = fixture("txn_mismatch.http");
        assert_eq!(txn_succeeded(s, &b), Ok(false));
        let (s, b) = fixture("txn_noleader.http");
        assert!(matches!(txn_succeeded(s, &b), Err(Outcome::Fail(_))));
    }

    #[test]
    fn encodes_cas_as_value_equal_compare_then_put() {
        let r = cas_request("k1", 3, 4);
        assert_eq!(r["compare"][0]["target"], "VALUE");
        assert_eq!(r["compare"][0]["result"], "EQUAL");
        assert_eq!(r["compare"][0]["value"], b64_encode(b"3"));
        assert_eq!(r["success"][0]["request_put"]["value"], b64_encode(b"4"));
        assert_eq!(r["success"][0]["request_put"]["key"], b64_encode(b"k1"));
    }

    /// Member processes killed when dropped.
    struct Procs(Vec<std::process::Child>);
    impl Drop for Procs {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    fn spawn(cmd: &MemberCommand, log: &Path) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(log).unwrap();
        let mut c = std::process::Command::new(&cmd.program);
        c.args(&cmd.args)
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; the child dies with the test.
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        c.spawn().expect("etcd starts")
    }

    /// A live 3-member cluster through the adapter: commands, client mapping, status, failover.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn live_cluster_serves_put_read_cas_and_reports_one_leader() {
        let etcd = Etcd::default();
        if !etcd.program.exists() {
            eprintln!(
                "skipped: {} missing (apt-get install -y etcd-server)",
                etcd.program.display()
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = || crate::net::proxy::free_port().unwrap();
        let specs: Vec<MemberSpec> = (1..=3)
            .map(|i| MemberSpec {
                id: format!("n{i}"),
                client_addr: port(),
                peer_addr: port(),
                routes: vec![],
                data_dir: dir.path().join(format!("n{i}")),
                log_file: dir.path().join(format!("n{i}.log")),
                cluster_token: "tok-test".into(),
                extra_args: vec![],
                seed: 1,
            })
            .collect();
        let mut procs = Procs(vec![]);
        for m in &specs {
            let cmd = etcd.command(m, &specs).unwrap();
            assert!(cmd.args.contains(&"--pre-vote=true".to_string()));
            procs.0.push(spawn(&cmd, &m.log_file));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let leader = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "no leader within 20 s"
            );
            let mut seen = vec![];
            for m in &specs {
                if let Ok(st) = etcd.status(m, Duration::from_millis(500)).await {
                    seen.push(st);
                }
            }
            if seen.len() == 3
                && seen
                    .iter()
                    .all(|s| s.leader.is_some() && s.leader == seen[0].leader)
            {
                let leaders = seen
                    .iter()
                    .filter(|s| s.role.as_deref() == Some("leader"))
                    .count();
                assert_eq!(leaders, 1, "{seen:?}");
                break seen[0].leader.clone().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let c1 = etcd.client(&specs[0], Duration::from_secs(2)).unwrap();
        let c3 = etcd.client(&specs[2], Duration::from_secs(2)).unwrap();
        assert_eq!(c1.read("k1").await, Outcome::Ok(None));
        assert_eq!(c1.write("k1", 7, "c0-1").await, Outcome::Ok(()));
        assert_eq!(c3.read("k1").await, Outcome::Ok(Some(7)));
        assert_eq!(c3.cas("k1", 7, -8, "c0-2").await, Outcome::Ok(()));
        assert_eq!(
            c1.cas("k1", 7, 9, "c0-3").await,
            Outcome::Fail("cas-mismatch".into())
        );
        assert_eq!(c1.read("k1").await, Outcome::Ok(Some(-8)));
        // Kill everyone but one member: its writes time out (info) or are refused (fail), and
        // its reads fail.
        let li: usize = leader[1..].parse::<usize>().unwrap() - 1;
        let survivor = (li + 1) % 3;
        for (i, c) in procs.0.iter_mut().enumerate() {
            if i != survivor {
                c.kill().unwrap();
            }
        }
        let alone = etcd
            .client(&specs[survivor], Duration::from_secs(2))
            .unwrap();
        assert!(matches!(
            alone.write("k1", 1, "c0-4").await,
            Outcome::Info(_) | Outcome::Fail(_)
        ));
        assert!(matches!(alone.read("k1").await, Outcome::Fail(_)));
        // A dead member: nothing was sent, so even a write is a definite failure.
        let dead = etcd.client(&specs[li], Duration::from_secs(2)).unwrap();
        assert_eq!(
            dead.write("k1", 2, "c0-5").await,
            Outcome::Fail("connect".into())
        );
    }
}
