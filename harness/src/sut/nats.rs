//! The `nats` target: NATS JetStream key-value on Debian's `nats-server` (2.9,
//! `/usr/sbin/nats-server`; `SPLITBRAIN_NATS` overrides the binary), reached with the
//! `async-nats` client speaking the JetStream wire API itself (requests on `$JS.API.…` and
//! publishes on `$KV.<bucket>.<key>`), so that every answer is decoded here and the mapping
//! to `ok`/`fail`/`info` is tested on recorded answers.
//!
//! # Members
//! Each member is one `nats-server` started with `-c nodes/<id>.conf` (written by
//! [`Target::command`], see [`render_config`]): `server_name` = the member id, clients on
//! `client_addr`, routes on `peer_addr` with an explicit route to every other member's
//! `peer_addr` (cluster name `splitbrain`, `no_advertise` so clients are not told of other
//! members), JetStream with `store_dir` = the member's data dir (the store lands in
//! `<data dir>/jetstream/`), and the monitoring endpoint (`http`) on the member's address
//! (port 8222 under `netns`; a free loopback port per member otherwise). Route connections
//! are one TCP connection per pair, used both ways, and members also gossip their route
//! addresses, so per-link proxies cannot cut a single direction (or even reliably a link):
//! partitions and loss need `--net netns` ([`super::TargetKind::peer_links_proxyable`] is
//! false). Kill, pause and power loss need nothing of the network.
//!
//! # The bucket
//! One KV bucket, [`BUCKET`] (stream `KV_sb`), history 1, replicas min(N, 5), file storage,
//! is created at setup: the first [`Target::status`] call that sees a JetStream meta leader
//! sends `$JS.API.STREAM.CREATE.KV_sb` through that member (readiness waits for a stream
//! leader, so it is retried, within the cluster's readiness deadline, until it holds). The
//! config is the one the KV clients use (subjects `$KV.sb.>`, `max_msgs_per_subject` 1,
//! `discard: new`, rollups allowed, deletes denied).
//!
//! # Operations
//! Target options come as `--node-arg read=leader|direct` (taken out of the server's
//! arguments; other `--node-arg`s go to `nats-server`):
//! - `read`, `read=leader` (default): `$JS.API.STREAM.MSG.GET.KV_sb {"last_by_subj": …}`, which
//!   only the stream's leader answers from its store. This is the read JetStream documents as
//!   consistent; it is not a quorum read (a deposed leader that has not yet stepped down may
//!   answer), which is what the checker is there to see.
//! - `read=direct`: `$JS.API.DIRECT.GET.KV_sb` on a bucket created with `allow_direct`: any
//!   replica answers from its own store, followers included: a known trade of consistency
//!   for load spreading, expected to give stale reads under partitions.
//! - `write` = a publish to `$KV.sb.<key>` waiting for the stream's ack (`Nats-Msg-Id` = the
//!   request id, so a retry within the 2-minute duplicate window is applied once);
//! - `cas(from, to)` = read the key's last message (value and sequence, "revision"), then, if
//!   the value is `from`, publish `to` with `Nats-Expected-Last-Subject-Sequence: <revision>`
//!   (the KV `update`). This pair is a linearizable compare-and-set whatever the read mode:
//!   the stream leader checks the header against the subject's last sequence when it
//!   proposes the message and stores it only if they match, i.e. only if no other message on
//!   that key came after the one read, whose value was `from`. The cas therefore takes effect
//!   atomically at the update's commit, on a key that still holds `from`. A stale read only
//!   makes the guard fail (err_code 10071 "wrong last sequence": `fail`, it was rejected
//!   before being stored). The argument needs the guard to be checked against every message
//!   ordered before it in the stream; nats-server 2.9.10 checks it against what its leader
//!   has applied, so a guarded update right behind a put of the same key still in flight is
//!   accepted: a lost update the checker reports (README.md, `scripts/nats-cas-race.py`);
//! - `append` = the same guarded read-modify-write of a JSON list (absent key: expected
//!   sequence 0), retried up to [`APPEND_ATTEMPTS`] times on a moved revision, then `fail`.
//!
//! # Error mapping
//! | what happened | write / cas / append | read |
//! |---|---|---|
//! | ack `{"stream":…,"seq":…}` | `Ok` | — |
//! | 10071 wrong last sequence | `Fail("cas-mismatch")` | — |
//! | 503 no responders (no stream leader subscribed: nothing received it) | `Fail` | `Fail` |
//! | a JetStream error known to be raised before storing (10059 stream not found, 10039 not enabled, 10060 wrong stream, …) | `Fail` | `Fail` |
//! | any other JetStream error, timeout, connection lost after sending | `Info` | `Fail` |
//! | no connection could be made (nothing sent) | `Fail` | `Fail` |
//!
//! A member that is not connected when a publish is made may buffer it and send it on
//! reconnecting: that is a timeout, hence `info`, which allows exactly that.
//!
//! # Status
//! `GET /jsz?accounts=true&streams=true` on the member's monitoring port: the JetStream meta
//! leader (`meta_cluster.leader`) and the stream's leader (`cluster.leader` of `KV_sb`);
//! `leader` in [`MemberStatus`] is the stream's leader (what `isolate-leader` aims at), role
//! `leader` if that is this member. JetStream does not report a term there.

use super::{
    BoxFuture, Client, MemberCommand, MemberSpec, MemberStatus, Op, Outcome, Reply, Target,
};
use anyhow::Context;
use async_nats::client::RequestErrorKind;
use async_nats::HeaderMap;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The KV bucket's name.
pub const BUCKET: &str = "sb";
/// The bucket's stream.
pub const STREAM: &str = "KV_sb";
/// Where a member's monitoring endpoint listens when members have addresses of their own.
pub const MONITOR_PORT: u16 = 8222;
/// Tries of an append's guarded read-modify-write before giving up (`fail`).
pub const APPEND_ATTEMPTS: usize = 5;

/// How reads are served. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// `STREAM.MSG.GET`: the stream leader answers.
    Leader,
    /// `DIRECT.GET`: any replica answers.
    Direct,
}

/// Target options in the members' `--node-arg`s, and the arguments left for the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub read: ReadMode,
    pub server_args: Vec<String>,
}

/// Splits `read=…` out of `--node-arg`s; an error names the flag and what was expected.
pub fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut read = ReadMode::Leader;
    let mut server_args = Vec::new();
    for a in args {
        match a.strip_prefix("read=") {
            Some("leader") => read = ReadMode::Leader,
            Some("direct") => read = ReadMode::Direct,
            Some(other) => anyhow::bail!(
                "--node-arg read={other}: --target nats reads are `read=leader` (stream leader, \
                 the default) or `read=direct` (any replica)"
            ),
            None => server_args.push(a.clone()),
        }
    }
    Ok(Options { read, server_args })
}

/// The nats target. See the module docs.
#[derive(Debug)]
pub struct Nats {
    /// The `nats-server` binary.
    pub program: PathBuf,
    /// Monitoring ports of members on loopback (memoised: the same across restarts).
    monitor_ports: Mutex<BTreeMap<String, u16>>,
    /// Members in the cluster (known once a command was made): the bucket's replicas.
    members: AtomicUsize,
    /// The bucket exists (created or found by a status call).
    bucket_ready: AtomicBool,
}

impl Default for Nats {
    fn default() -> Self {
        let program = std::env::var_os("SPLITBRAIN_NATS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"));
        Nats {
            program,
            monitor_ports: Mutex::new(BTreeMap::new()),
            members: AtomicUsize::new(0),
            bucket_ready: AtomicBool::new(false),
        }
    }
}

/// The bucket's replicas for a cluster of `n` (JetStream allows at most 5).
pub fn replicas(n: usize) -> usize {
    n.clamp(1, 5)
}

/// A member's config file. `monitor` is its monitoring address.
pub fn render_config(m: &MemberSpec, all: &[MemberSpec], monitor: SocketAddr) -> String {
    let routes: Vec<String> = all
        .iter()
        .filter(|p| p.id != m.id)
        .map(|p| format!("    \"nats-route://{}\"", p.peer_addr))
        .collect();
    // JSON strings are valid NATS config strings (quoted, backslash escapes).
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "server_name: {name}\n\
         listen: \"{client}\"\n\
         http: \"{monitor}\"\n\
         jetstream {{\n  store_dir: {store}\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n\
         cluster {{\n  name: splitbrain\n  listen: \"{peer}\"\n  no_advertise: true\n  \
         connect_retries: 1000000\n  routes: [\n{routes}\n  ]\n}}\n",
        name = q(&m.id),
        client = m.client_addr,
        peer = m.peer_addr,
        store = q(&m.data_dir.display().to_string()),
        routes = routes.join("\n"),
    )
}

/// The `STREAM.CREATE` request of the bucket.
pub fn bucket_config(replicas: usize, read: ReadMode) -> Value {
    json!({
        "name": STREAM,
        "subjects": [format!("$KV.{BUCKET}.>")],
        "retention": "limits",
        "max_consumers": -1,
        "max_msgs": -1,
        "max_bytes": -1,
        "max_age": 0,
        "max_msgs_per_subject": 1,
        "max_msg_size": -1,
        "discard": "new",
        "storage": "file",
        "num_replicas": replicas,
        "duplicate_window": 120_000_000_000u64,
        "allow_rollup_hdrs": true,
        "deny_delete": true,
        "deny_purge": false,
        "allow_direct": read == ReadMode::Direct,
        "mirror_direct": false,
    })
}

impl Nats {
    /// Where member `m`'s monitoring endpoint listens.
    fn monitor_addr(&self, m: &MemberSpec) -> anyhow::Result<SocketAddr> {
        let ip = m.client_addr.ip();
        if !ip.is_loopback() {
            return Ok(SocketAddr::new(ip, MONITOR_PORT));
        }
        let mut ports = self.monitor_ports.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = ports.get(&m.id) {
            return Ok(SocketAddr::new(ip, *p));
        }
        let port = crate::net::proxy::free_port()?.port();
        ports.insert(m.id.clone(), port);
        Ok(SocketAddr::new(ip, port))
    }

    /// Creates the bucket through member `m` (an identical existing stream is success).
    async fn create_bucket(&self, m: &MemberSpec, timeout: Duration) -> anyhow::Result<()> {
        let opts = parse_options(&m.extra_args)?;
        let n = self.members.load(Ordering::SeqCst).max(1);
        let client = connect(m.client_addr, timeout).await?;
        let body = bucket_config(replicas(n), opts.read).to_string();
        let ans = client
            .send_request(
                format!("$JS.API.STREAM.CREATE.{STREAM}"),
                async_nats::Request::new()
                    .payload(body.into())
                    .timeout(Some(timeout)),
            )
            .await
            .with_context(|| format!("creating bucket {BUCKET} through {}", m.id))?;
        let v: Value = serde_json::from_slice(&ans.payload)
            .with_context(|| format!("STREAM.CREATE answer from {} is not JSON", m.id))?;
        match js_error(&v) {
            None => Ok(()),
            Some((code, desc)) => anyhow::bail!("creating bucket {BUCKET}: {code} {desc}"),
        }
    }
}

async fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .ignore_discovered_servers()
        .connection_timeout(timeout)
        .request_timeout(Some(timeout))
        .max_reconnects(None)
        .connect(format!("nats://{addr}"))
        .await
        .with_context(|| format!("connecting to nats://{addr}"))
}

impl Target for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn shares_client_and_peer_port(&self) -> bool {
        false
    }

    fn command(&self, m: &MemberSpec, all: &[MemberSpec]) -> anyhow::Result<MemberCommand> {
        anyhow::ensure!(
            self.program.exists(),
            "nats-server binary {} not found: install it with `apt-get install -y nats-server` \
             (or set SPLITBRAIN_NATS)",
            self.program.display()
        );
        let opts = parse_options(&m.extra_args)?;
        self.members.store(all.len(), Ordering::SeqCst);
        let conf = m.log_file.with_extension("conf");
        std::fs::write(&conf, render_config(m, all, self.monitor_addr(m)?))
            .with_context(|| format!("writing {}", conf.display()))?;
        let mut args = vec!["-c".to_string(), conf.display().to_string()];
        args.extend(opts.server_args);
        Ok(MemberCommand {
            program: self.program.clone(),
            args,
            env: vec![],
        })
    }

    fn client(&self, m: &MemberSpec, timeout: Duration) -> anyhow::Result<Arc<dyn Client>> {
        let opts = parse_options(&m.extra_args)?;
        Ok(Arc::new(NatsClient::new(m.client_addr, opts.read, timeout)))
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
            let url = format!(
                "http://{}/jsz?accounts=true&streams=true",
                self.monitor_addr(m)?
            );
            let jsz: Value = http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?
                .json()
                .await
                .with_context(|| format!("GET {url}: body is not JSON"))?;
            let st = parse_jsz(&jsz, &m.id);
            if st.stream_exists {
                self.bucket_ready.store(true, Ordering::SeqCst);
            } else if st.meta_leader.is_some() && !self.bucket_ready.load(Ordering::SeqCst) {
                // Setup: the first member that knows a meta leader creates the bucket. A
                // failure is retried by the next status call (readiness has a deadline).
                match self.create_bucket(m, timeout).await {
                    Ok(()) => self.bucket_ready.store(true, Ordering::SeqCst),
                    Err(e) => tracing::debug!("{e:#}"),
                }
            }
            Ok(st.status)
        })
    }
}

/// What `/jsz` says, beyond [`MemberStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jsz {
    pub status: MemberStatus,
    pub meta_leader: Option<String>,
    pub stream_exists: bool,
}

/// Reads `/jsz?accounts=true&streams=true` of member `me`.
pub fn parse_jsz(v: &Value, me: &str) -> Jsz {
    let nonempty = |x: Option<&Value>| {
        x.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let meta_leader = nonempty(v.pointer("/meta_cluster/leader"));
    let stream = v
        .get("account_details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.get("stream_detail").and_then(Value::as_array))
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(STREAM));
    let leader = stream.and_then(|s| nonempty(s.pointer("/cluster/leader")));
    let role = match &leader {
        Some(l) if l == me => "leader",
        Some(_) => "follower",
        None => "candidate",
    };
    Jsz {
        status: MemberStatus {
            role: Some(role.into()),
            leader,
            ..MemberStatus::default()
        },
        meta_leader,
        stream_exists: stream.is_some(),
    }
}

/// The JetStream API error of an answer: `(err_code, description)`.
pub fn js_error(v: &Value) -> Option<(u64, String)> {
    let e = v.get("error")?;
    let code = e
        .get("err_code")
        .and_then(Value::as_u64)
        .or_else(|| e.get("code").and_then(Value::as_u64))
        .unwrap_or(0);
    let desc = e
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Some((code, desc))
}

/// JetStream error codes raised before a message is stored (or for a read: any error).
pub const DEFINITE_CODES: &[u64] = &[
    10059, // stream not found
    10039, // JetStream not enabled for account
    10076, // JetStream not enabled
    10060, // expected stream does not match
    10054, // message size exceeds maximum allowed
    10077, // message size exceeds maximum allowed (2.9)
    10070, // expected last sequence mismatch
    10071, // wrong last sequence (expected last subject sequence)
    10053, // wrong last msg id
];

/// What a publish's ack says: `status` is the NATS status of the reply, if it has one.
pub fn decode_pub(status: Option<u16>, payload: &[u8]) -> Outcome<()> {
    if status == Some(503) {
        return Outcome::Fail("no-responders".into());
    }
    let v: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(_) => return Outcome::Info(format!("ack is not JSON (status {status:?})")),
    };
    match js_error(&v) {
        Some((10071, _)) => Outcome::Fail("cas-mismatch".into()),
        Some((code, desc)) if DEFINITE_CODES.contains(&code) => {
            Outcome::Fail(format!("{code} {desc}"))
        }
        Some((code, desc)) => Outcome::Info(format!("{code} {desc}")),
        None if v.get("seq").is_some() => Outcome::Ok(()),
        None => Outcome::Info(format!("ack without seq: {v}")),
    }
}

/// A key's last entry: its revision (stream sequence) and its text.
pub type Entry = Option<(u64, String)>;

/// What `STREAM.MSG.GET {"last_by_subj"}` says (no message: absent; any error: `Fail`).
pub fn decode_msg_get(status: Option<u16>, payload: &[u8]) -> Outcome<Entry> {
    if status == Some(503) {
        return Outcome::Fail("no-responders".into());
    }
    let v: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(_) => return Outcome::Fail(format!("MSG.GET answer is not JSON (status {status:?})")),
    };
    match js_error(&v) {
        Some((10037, _)) => return Outcome::Ok(None),
        Some((code, desc)) => return Outcome::Fail(format!("{code} {desc}")),
        None => {}
    }
    let Some(msg) = v.get("message") else {
        return Outcome::Fail(format!("MSG.GET answer without message: {v}"));
    };
    let Some(seq) = msg.get("seq").and_then(Value::as_u64) else {
        return Outcome::Fail("MSG.GET message without seq".into());
    };
    // A delete or purge marker (KV-Operation header) is an absent key.
    let hdrs = msg
        .get("hdrs")
        .and_then(Value::as_str)
        .and_then(|h| super::etcd::b64_decode(h).ok())
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .unwrap_or_default();
    if hdrs.contains("KV-Operation") {
        return Outcome::Ok(None);
    }
    let data = msg.get("data").and_then(Value::as_str).unwrap_or("");
    match super::etcd::b64_decode(data)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    {
        Some(text) => Outcome::Ok(Some((seq, text))),
        None => Outcome::Fail(format!("MSG.GET data {data:?} is not base64 text")),
    }
}

/// What `DIRECT.GET {"last_by_subj"}` says: the value is the payload, the revision the
/// `Nats-Sequence` header; status 404 is an absent key, any other status a failed read.
pub fn decode_direct_get(
    status: Option<u16>,
    sequence: Option<&str>,
    kv_operation: Option<&str>,
    payload: &[u8],
) -> Outcome<Entry> {
    match status {
        Some(404) => return Outcome::Ok(None),
        Some(503) => return Outcome::Fail("no-responders".into()),
        Some(s) if s >= 300 => return Outcome::Fail(format!("status {s}")),
        _ => {}
    }
    if kv_operation.is_some() {
        return Outcome::Ok(None);
    }
    let Some(seq) = sequence.and_then(|s| s.trim().parse::<u64>().ok()) else {
        return Outcome::Fail("DIRECT.GET answer without Nats-Sequence".into());
    };
    match String::from_utf8(payload.to_vec()) {
        Ok(text) => Outcome::Ok(Some((seq, text))),
        Err(_) => Outcome::Fail("DIRECT.GET payload is not text".into()),
    }
}

/// A request that got no answer: what it means for a write (`write`) or a read.
pub fn request_error<T>(kind: RequestErrorKind, write: bool) -> Outcome<T> {
    match kind {
        RequestErrorKind::NoResponders => Outcome::Fail("no-responders".into()),
        RequestErrorKind::InvalidSubject => Outcome::Fail("invalid-subject".into()),
        RequestErrorKind::MaxPayloadExceeded => Outcome::Fail("max-payload".into()),
        RequestErrorKind::TimedOut if write => Outcome::Info("timeout".into()),
        RequestErrorKind::TimedOut => Outcome::Fail("timeout".into()),
        _ if write => Outcome::Info("connection".into()),
        _ => Outcome::Fail("connection".into()),
    }
}

/// A client of one member.
pub struct NatsClient {
    addr: SocketAddr,
    read: ReadMode,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<async_nats::Client>>,
}

/// A reply: its status code, one header's values, payload.
struct Answer {
    status: Option<u16>,
    sequence: Option<String>,
    kv_operation: Option<String>,
    payload: Vec<u8>,
}

impl NatsClient {
    pub fn new(addr: SocketAddr, read: ReadMode, timeout: Duration) -> NatsClient {
        NatsClient {
            addr,
            read,
            timeout,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// The connection (made on first use; a failure means nothing was sent: `Fail`).
    async fn conn<T>(&self) -> Result<async_nats::Client, Outcome<T>> {
        let mut c = self.conn.lock().await;
        if let Some(c) = c.as_ref() {
            return Ok(c.clone());
        }
        match connect(self.addr, self.timeout.min(Duration::from_secs(1))).await {
            Ok(client) => {
                *c = Some(client.clone());
                Ok(client)
            }
            Err(e) => Err(Outcome::Fail(format!("connect: {e:#}"))),
        }
    }

    async fn request<T>(
        &self,
        subject: String,
        headers: Option<HeaderMap>,
        payload: Vec<u8>,
        write: bool,
    ) -> Result<Answer, Outcome<T>> {
        let conn = self.conn().await?;
        let mut req = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(self.timeout));
        if let Some(h) = headers {
            req = req.headers(h);
        }
        match conn.send_request(subject, req).await {
            Err(e) => Err(request_error(e.kind(), write)),
            Ok(msg) => {
                let header = |name: &str| {
                    msg.headers
                        .as_ref()
                        .and_then(|h| h.get(name))
                        .map(|v| v.as_str().to_string())
                };
                Ok(Answer {
                    status: msg.status.map(|s| s.as_u16()),
                    sequence: header("Nats-Sequence"),
                    kv_operation: header("KV-Operation"),
                    payload: msg.payload.to_vec(),
                })
            }
        }
    }

    /// The key's last entry, read as the read mode says.
    async fn get(&self, key: &str) -> Outcome<Entry> {
        let body = json!({ "last_by_subj": format!("$KV.{BUCKET}.{key}") }).to_string();
        let subject = match self.read {
            ReadMode::Leader => format!("$JS.API.STREAM.MSG.GET.{STREAM}"),
            ReadMode::Direct => format!("$JS.API.DIRECT.GET.{STREAM}"),
        };
        match self.request(subject, None, body.into_bytes(), false).await {
            Err(o) => o,
            Ok(a) => match self.read {
                ReadMode::Leader => decode_msg_get(a.status, &a.payload),
                ReadMode::Direct => decode_direct_get(
                    a.status,
                    a.sequence.as_deref(),
                    a.kv_operation.as_deref(),
                    &a.payload,
                ),
            },
        }
    }

    /// Publishes `text` to `key` (guarded by `expect`: the key's last sequence, 0 = absent).
    async fn put(&self, key: &str, text: String, expect: Option<u64>, rid: &str) -> Outcome<()> {
        let mut h = HeaderMap::new();
        if !rid.is_empty() {
            h.insert("Nats-Msg-Id", rid);
        }
        if let Some(seq) = expect {
            h.insert(
                "Nats-Expected-Last-Subject-Sequence",
                seq.to_string().as_str(),
            );
        }
        let subject = format!("$KV.{BUCKET}.{key}");
        match self
            .request(subject, Some(h), text.into_bytes(), true)
            .await
        {
            Err(o) => o,
            Ok(a) => decode_pub(a.status, &a.payload),
        }
    }

    async fn cas(&self, key: &str, from: i64, to: i64, rid: &str) -> Outcome<()> {
        let seq = match self.get(key).await {
            Outcome::Ok(Some((seq, text))) if text == from.to_string() => seq,
            Outcome::Ok(_) => return Outcome::Fail("cas-mismatch".into()),
            // Nothing was written.
            Outcome::Fail(r) | Outcome::Info(r) => return Outcome::Fail(r),
        };
        self.put(key, to.to_string(), Some(seq), rid).await
    }

    async fn append(&self, key: &str, value: i64, rid: &str) -> Outcome<Reply> {
        for attempt in 0..APPEND_ATTEMPTS {
            let (mut list, seq) = match self.get(key).await {
                Outcome::Ok(None) => (Vec::new(), 0),
                Outcome::Ok(Some((seq, text))) => match super::etcd::parse_list(&text) {
                    Some(l) => (l, seq),
                    None => return Outcome::Fail("not-a-list".into()),
                },
                // Nothing was written yet (earlier tries' guards failed).
                Outcome::Fail(r) | Outcome::Info(r) => return Outcome::Fail(r),
            };
            list.push(value);
            let text = serde_json::to_string(&list).unwrap_or_default();
            // Each try is a different message: a retry must not be deduplicated as the first.
            let id = if rid.is_empty() {
                String::new()
            } else {
                format!("{rid}.{attempt}")
            };
            match self.put(key, text, Some(seq), &id).await {
                Outcome::Ok(()) => return Outcome::Ok(Reply::Done),
                Outcome::Fail(r) if r == "cas-mismatch" => continue,
                Outcome::Fail(r) => return Outcome::Fail(r),
                Outcome::Info(r) => return Outcome::Info(r),
            }
        }
        Outcome::Fail(format!(
            "append-contention: the key changed between read and write {APPEND_ATTEMPTS} times"
        ))
    }
}

fn done(o: Outcome<()>) -> Outcome<Reply> {
    match o {
        Outcome::Ok(()) => Outcome::Ok(Reply::Done),
        Outcome::Fail(r) => Outcome::Fail(r),
        Outcome::Info(r) => Outcome::Info(r),
    }
}

impl Client for NatsClient {
    fn invoke<'a>(&'a self, op: &'a Op, rid: &'a str) -> BoxFuture<'a, Outcome<Reply>> {
        Box::pin(async move {
            match op {
                Op::Read { key } => match self.get(key).await {
                    Outcome::Ok(None) => Outcome::Ok(Reply::Value(None)),
                    Outcome::Ok(Some((_, text))) => super::etcd::read_text(&text),
                    Outcome::Fail(r) | Outcome::Info(r) => Outcome::Fail(r),
                },
                Op::Write { key, value } => done(self.put(key, value.to_string(), None, rid).await),
                Op::Cas { key, from, to } => done(self.cas(key, *from, *to, rid).await),
                Op::Append { key, value } => self.append(key, *value, rid).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A reply recorded from nats-server 2.9.10 on the wire (`MSG`/`HMSG` line, then the
    /// header block and payload): its status, `Nats-Sequence` and `KV-Operation` headers,
    /// payload.
    fn fixture(name: &str) -> (Option<u16>, Option<String>, Option<String>, Vec<u8>) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/nats")
            .join(name);
        let raw = std::fs::read(&path).expect("fixture exists");
        let text = String::from_utf8(raw).expect("fixture is text");
        let (line, rest) = text.split_once("\r\n").expect("protocol line");
        if !line.starts_with("HMSG") {
            return (None, None, None, rest.as_bytes().to_vec());
        }
        let (head, payload) = rest.split_once("\r\n\r\n").expect("header block");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok());
        let mut seq = None;
        let mut op = None;
        for l in lines {
            if let Some((k, v)) = l.split_once(": ") {
                match k {
                    "Nats-Sequence" => seq = Some(v.to_string()),
                    "KV-Operation" => op = Some(v.to_string()),
                    _ => {}
                }
            }
        }
        (status, seq, op, payload.as_bytes().to_vec())
    }

    fn pub_fixture(name: &str) -> Outcome<()> {
        let (st, _, _, p) = fixture(name);
        decode_pub(st, &p)
    }

    fn spec(i: usize, ip: [u8; 4]) -> MemberSpec {
        let ip = std::net::IpAddr::from(ip);
        MemberSpec {
            id: format!("n{i}"),
            client_addr: SocketAddr::new(ip, 2379),
            peer_addr: SocketAddr::new(ip, 2380),
            routes: vec![],
            data_dir: PathBuf::from(format!("/r/data/n{i}")),
            log_file: PathBuf::from(format!("/r/nodes/n{i}.log")),
            cluster_token: "t".into(),
            extra_args: vec![],
            seed: 1,
        }
    }

    #[test]
    fn config_names_the_member_routes_to_every_other_member_and_stores_in_its_data_dir() {
        let all: Vec<MemberSpec> = (1..=3)
            .map(|i| spec(i, [10, 213, 1, 10 + i as u8]))
            .collect();
        let c = render_config(&all[1], &all, "10.213.1.12:8222".parse().unwrap());
        assert!(c.contains("server_name: \"n2\"\n"), "{c}");
        assert!(c.contains("listen: \"10.213.1.12:2379\""), "{c}");
        assert!(c.contains("http: \"10.213.1.12:8222\""), "{c}");
        assert!(c.contains("store_dir: \"/r/data/n2\""), "{c}");
        assert!(c.contains("listen: \"10.213.1.12:2380\""), "{c}");
        assert!(c.contains("\"nats-route://10.213.1.11:2380\""), "{c}");
        assert!(c.contains("\"nats-route://10.213.1.13:2380\""), "{c}");
        assert!(
            !c.contains("nats-route://10.213.1.12"),
            "no route to itself: {c}"
        );
        assert!(c.contains("no_advertise: true"), "{c}");
    }

    #[test]
    fn a_live_server_accepts_the_rendered_config() {
        let nats = Nats::default();
        if !nats.program.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} missing in CI",
                nats.program.display()
            );
            eprintln!("skipped: {} missing", nats.program.display());
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut m = spec(1, [127, 0, 0, 1]);
        m.client_addr = crate::net::proxy::free_port().unwrap();
        m.peer_addr = crate::net::proxy::free_port().unwrap();
        m.log_file = dir.path().join("n1.log");
        m.data_dir = dir.path().join("n1");
        let mut other = m.clone();
        other.id = "n2".into();
        let conf = dir.path().join("n1.conf");
        std::fs::write(
            &conf,
            render_config(&m, &[m.clone(), other], "127.0.0.1:1".parse().unwrap()),
        )
        .unwrap();
        let out = std::process::Command::new(&nats.program)
            .args(["-t", "-c"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nats-server -t rejects the config: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn bucket_has_history_one_replicas_capped_at_five_and_direct_only_when_asked() {
        assert_eq!([1, 3, 5, 7].map(replicas), [1, 3, 5, 5]);
        let c = bucket_config(3, ReadMode::Leader);
        assert_eq!(c["name"], STREAM);
        assert_eq!(c["subjects"][0], "$KV.sb.>");
        assert_eq!(c["max_msgs_per_subject"], 1);
        assert_eq!(c["num_replicas"], 3);
        assert_eq!(c["allow_direct"], false);
        assert_eq!(bucket_config(5, ReadMode::Direct)["allow_direct"], true);
    }

    #[test]
    fn read_mode_option_is_taken_out_of_the_server_arguments_and_bad_ones_are_named() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = parse_options(&args(&["--debug", "read=direct"])).unwrap();
        assert_eq!(
            (o.read, o.server_args),
            (ReadMode::Direct, args(&["--debug"]))
        );
        assert_eq!(parse_options(&[]).unwrap().read, ReadMode::Leader);
        let e = parse_options(&args(&["read=follower"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("read=follower") && e.contains("read=leader"),
            "{e}"
        );
    }

    #[test]
    fn maps_recorded_acks_to_ok_and_wrong_last_sequence_to_cas_mismatch() {
        assert_eq!(pub_fixture("pub_ok.txt"), Outcome::Ok(()));
        assert_eq!(pub_fixture("pub_duplicate.txt"), Outcome::Ok(()));
        assert_eq!(pub_fixture("pub_expected_ok.txt"), Outcome::Ok(()));
        assert_eq!(
            pub_fixture("pub_wrong_last_sequence.txt"),
            Outcome::Fail("cas-mismatch".into())
        );
        assert_eq!(
            pub_fixture("pub_wrong_stream.txt"),
            Outcome::Fail("10060 expected stream does not match".into())
        );
    }

    #[test]
    fn maps_no_responders_and_stream_not_found_to_fail() {
        assert_eq!(
            pub_fixture("pub_no_responders.txt"),
            Outcome::Fail("no-responders".into())
        );
        // The same error body answering a publish: rejected before storing.
        assert_eq!(
            pub_fixture("msg_get_stream_not_found.txt"),
            Outcome::Fail("10059 stream not found".into())
        );
        let (st, _, _, p) = fixture("msg_get_stream_not_found.txt");
        assert_eq!(
            decode_msg_get(st, &p),
            Outcome::Fail("10059 stream not found".into())
        );
    }

    #[test]
    fn maps_timeouts_and_unknown_errors_to_info_for_writes_and_fail_for_reads() {
        assert_eq!(
            request_error::<()>(RequestErrorKind::TimedOut, true),
            Outcome::Info("timeout".into())
        );
        assert_eq!(
            request_error::<()>(RequestErrorKind::TimedOut, false),
            Outcome::Fail("timeout".into())
        );
        assert_eq!(
            request_error::<()>(RequestErrorKind::Other, true),
            Outcome::Info("connection".into())
        );
        assert_eq!(
            request_error::<()>(RequestErrorKind::NoResponders, true),
            Outcome::Fail("no-responders".into())
        );
        // "JetStream system temporarily unavailable" (no leader) answering a publish: the
        // server does not say whether it was stored, so info; answering a read: fail.
        assert_eq!(
            pub_fixture("msg_get_no_leader.txt"),
            Outcome::Info("10008 JetStream system temporarily unavailable".into())
        );
        let (st, _, _, p) = fixture("msg_get_no_leader.txt");
        assert_eq!(
            decode_msg_get(st, &p),
            Outcome::Fail("10008 JetStream system temporarily unavailable".into())
        );
        assert!(matches!(decode_pub(None, b"garbage"), Outcome::Info(_)));
    }

    #[test]
    fn reads_recorded_leader_and_direct_gets() {
        let (st, _, _, p) = fixture("msg_get_ok.txt");
        assert_eq!(decode_msg_get(st, &p), Outcome::Ok(Some((1, "7".into()))));
        let (st, _, _, p) = fixture("msg_get_absent.txt");
        assert_eq!(decode_msg_get(st, &p), Outcome::Ok(None));
        let (st, seq, op, p) = fixture("direct_get_ok.txt");
        assert_eq!(
            decode_direct_get(st, seq.as_deref(), op.as_deref(), &p),
            Outcome::Ok(Some((1, "7".into())))
        );
        let (st, seq, op, p) = fixture("direct_get_absent.txt");
        assert_eq!(st, Some(404));
        assert_eq!(
            decode_direct_get(st, seq.as_deref(), op.as_deref(), &p),
            Outcome::Ok(None)
        );
        // A lone replica (the other two killed) still answers a direct get from its store.
        let (st, seq, op, p) = fixture("direct_get_no_leader.txt");
        assert_eq!(
            decode_direct_get(st, seq.as_deref(), op.as_deref(), &p),
            Outcome::Ok(Some((2, "8".into())))
        );
        assert!(matches!(
            decode_direct_get(Some(408), None, None, b""),
            Outcome::Fail(_)
        ));
        assert_eq!(
            decode_direct_get(None, Some("3"), Some("DEL"), b""),
            Outcome::Ok(None)
        );
    }

    #[test]
    fn finds_the_stream_leader_and_meta_leader_in_recorded_jsz() {
        let read = |f: &str| -> Value {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/nats")
                .join(f);
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        let mut roles = vec![];
        for id in ["n1", "n2", "n3"] {
            let j = parse_jsz(&read(&format!("jsz_{id}.json")), id);
            assert!(j.stream_exists);
            assert_eq!(j.meta_leader.as_deref(), Some("n3"));
            assert_eq!(j.status.leader.as_deref(), Some("n1"), "{id}");
            roles.push(j.status.role.unwrap());
        }
        assert_eq!(roles, ["leader", "follower", "follower"]);
        let before: Value = serde_json::json!({"meta_cluster": {"leader": "n2"}});
        let j = parse_jsz(&before, "n1");
        assert!(!j.stream_exists);
        assert_eq!(j.meta_leader.as_deref(), Some("n2"));
        assert_eq!(
            (j.status.leader, j.status.role.as_deref()),
            (None, Some("candidate"))
        );
    }
}
