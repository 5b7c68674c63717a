//! The HTTP layer in-process (a one-node cluster served by `cli::serve` on 127.0.0.1:0): each
//! class of bad input gets its 4xx with a JSON error, the node keeps serving; peer routes need
//! the token; dedup and the no-dedup bug over HTTP; restart on the same data directory.

use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};
use splitbrain_node::cli::{serve, NodeArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: NodeArgs,
}

struct TestNode {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    client: reqwest::Client,
}

impl TestNode {
    async fn start(dir: &std::path::Path, extra: &[&str]) -> TestNode {
        let mut argv = vec![
            "node".to_string(),
            "--id".into(),
            "n1".into(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--cluster-token".into(),
            "secret".into(),
            "--seed".into(),
            "7".into(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        let cfg = Cli::parse_from(argv).args.config().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(cfg, listener, async move {
            let _ = rx.await;
        }));
        let n = TestNode {
            url,
            stop: Some(tx),
            task: Some(task),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        // Wait until the one-node cluster leads.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(r) = n.client.get(format!("{}/status", n.url)).send().await {
                let s: Value = r.json().await.unwrap();
                if s["role"] == "leader" {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "one-node cluster never leads"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        n
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    async fn req(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.client.request(m, format!("{}{path}", self.url));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        let st = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            st,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn assert_json_error(st: u16, body: &Value, want: u16, what: &str) {
    assert_eq!(st, want, "{what}: {body}");
    assert!(body["error"].is_string(), "{what}: no error code: {body}");
    assert!(body["message"].is_string(), "{what}: no message: {body}");
    assert_eq!(body["definite"], json!(true), "{what}: {body}");
}

#[tokio::test]
async fn each_malformed_request_class_gets_its_4xx_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestNode::start(dir.path(), &[]).await;
    let big = format!("{{\"value\":\"{}\"}}", "x".repeat(2 << 20));
    let long_key = format!("/kv/{}", "k".repeat(2000));
    let cases: Vec<(&str, &str, Option<&str>, u16, &str)> = vec![
        ("PUT", "/kv/a", Some("not json"), 400, "not JSON"),
        ("PUT", "/kv/a", Some("{\"value\":1"), 400, "truncated JSON"),
        ("PUT", "/kv/a", Some("[1,2]"), 400, "not an object"),
        ("PUT", "/kv/a", Some("{}"), 400, "missing value"),
        (
            "PUT",
            "/kv/a",
            Some("{\"value\":1,\"extra\":2}"),
            400,
            "unknown field",
        ),
        (
            "PUT",
            "/kv/a",
            Some("{\"value\":1,\"request_id\":5}"),
            400,
            "request_id wrong type",
        ),
        (
            "PUT",
            "/kv/a",
            Some("{\"value\":1,\"request_id\":\"nodash\"}"),
            400,
            "request_id shape",
        ),
        ("PUT", "/kv/a", Some(""), 400, "empty body"),
        (
            "POST",
            "/kv/a/cas",
            Some("{\"from\":1}"),
            400,
            "cas without to",
        ),
        (
            "POST",
            "/kv/a/cas",
            Some("{\"to\":1,\"from\":2,\"x\":0}"),
            400,
            "cas unknown field",
        ),
        ("PUT", &long_key, Some("{\"value\":1}"), 400, "key too long"),
        ("PUT", "/kv/a", Some(&big), 413, "body too large"),
        ("GET", "/nope", None, 404, "unknown route"),
        ("GET", "/kv/a/b/c", None, 404, "unknown nested route"),
        ("DELETE", "/kv/a", None, 405, "wrong method"),
        ("GET", "/kv/a/cas", None, 405, "GET on cas"),
    ];
    for (m, path, body, want, what) in cases {
        let (st, b) = n.req(m, path, body, &[]).await;
        assert_json_error(st, &b, want, what);
        // The node is unaffected.
        let (st, _) = n.req("GET", "/kv/a", None, &[]).await;
        assert_eq!(st, 200, "after {what}");
    }
    assert_eq!(
        n.req("PUT", "/kv/a", Some("{\"value\":{\"x\":[1]}}"), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        n.req("GET", "/kv/a", None, &[]).await,
        (200, json!({"value": {"x": [1]}}))
    );
    n.stop().await;
}

#[tokio::test]
async fn peer_routes_refuse_requests_without_the_cluster_token() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestNode::start(dir.path(), &[]).await;
    let msg = r#"{"from":"n2","to":"n1","term":99,"body":{"Vote":{"pre_vote":false,"last_log_index":0,"last_log_term":0}}}"#;
    for route in ["vote", "append", "snapshot"] {
        let (st, b) = n
            .req("POST", &format!("/raft/{route}"), Some(msg), &[])
            .await;
        assert_eq!(st, 401, "{route}: {b}");
        let (st, _) = n
            .req(
                "POST",
                &format!("/raft/{route}"),
                Some(msg),
                &[("x-splitbrain-token", "wrong")],
            )
            .await;
        assert_eq!(st, 401, "{route} with a wrong token");
    }
    let tok = [("x-splitbrain-token", "secret")];
    let (st, b) = n
        .req("POST", "/raft/vote", Some("{\"garbage\":1}"), &tok)
        .await;
    assert_json_error(st, &b, 400, "garbage message");
    let (st, b) = n.req("POST", "/raft/append", Some(msg), &tok).await;
    assert_json_error(st, &b, 400, "vote message on the append route");
    let other = msg.replace("\"to\":\"n1\"", "\"to\":\"n9\"");
    let (st, b) = n.req("POST", "/raft/vote", Some(&other), &tok).await;
    assert_json_error(st, &b, 400, "message for another node");
    let (st, b) = n.req("POST", "/raft/elsewhere", Some(msg), &tok).await;
    assert_json_error(st, &b, 404, "unknown peer route");
    // Still the leader and serving (the unauthenticated term-99 vote did nothing).
    assert_eq!(
        n.req("PUT", "/kv/z", Some("{\"value\":1}"), &[]).await.0,
        200
    );
    let (_, s) = n.req("GET", "/status", None, &[]).await;
    assert_eq!(s["role"], "leader");
    assert!(s["term"].as_u64().unwrap() < 99, "{s}");
    n.stop().await;
}

async fn retry_scenario(n: &TestNode) -> Value {
    let put = |v: i64, rid: &str| format!("{{\"value\":{v},\"request_id\":\"{rid}\"}}");
    assert_eq!(
        n.req("PUT", "/kv/k", Some(&put(1, "c1-1")), &[]).await.0,
        200
    );
    assert_eq!(
        n.req("PUT", "/kv/k", Some(&put(2, "c2-1")), &[]).await.0,
        200
    );
    // c1 retries its first write (as after a timeout): answered 200 again.
    assert_eq!(
        n.req("PUT", "/kv/k", Some(&put(1, "c1-1")), &[]).await.0,
        200
    );
    n.req("GET", "/kv/k", None, &[]).await.1["value"].clone()
}

#[tokio::test]
async fn a_retried_write_applies_once_and_the_no_dedup_bug_applies_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestNode::start(dir.path(), &[]).await;
    assert_eq!(retry_scenario(&n).await, json!(2));
    // A cas mismatch is answered the same on retry even after the value changed to match.
    let cas = r#"{"from":5,"to":6,"request_id":"c3-1"}"#;
    let (st, b) = n.req("POST", "/kv/k/cas", Some(cas), &[]).await;
    assert_eq!((st, &b["current"]), (409, &json!(2)));
    assert_eq!(
        n.req("PUT", "/kv/k", Some("{\"value\":5}"), &[]).await.0,
        200
    );
    let (st, b) = n.req("POST", "/kv/k/cas", Some(cas), &[]).await;
    assert_eq!((st, &b["current"]), (409, &json!(2)));
    assert_eq!(n.req("GET", "/kv/k", None, &[]).await.1["value"], json!(5));
    n.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let n = TestNode::start(dir.path(), &["--bug", "no-dedup"]).await;
    assert_eq!(retry_scenario(&n).await, json!(1));
    n.stop().await;
}

#[tokio::test]
async fn a_restarted_node_keeps_its_data_and_dedup_state_across_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestNode::start(dir.path(), &["--snapshot-every", "7"]).await;
    for i in 0..30 {
        let body = format!(
            "{{\"value\":{i},\"request_id\":\"c{}-1\"}}",
            i % 4 + 100 * i
        );
        assert_eq!(
            n.req("PUT", &format!("/kv/k{i}"), Some(&body), &[]).await.0,
            200
        );
    }
    n.stop().await;
    assert!(dir.path().join("snapshot.bin").exists());
    let n = TestNode::start(dir.path(), &["--snapshot-every", "7"]).await;
    for i in 0..30 {
        assert_eq!(
            n.req("GET", &format!("/kv/k{i}"), None, &[]).await,
            (200, json!({"value": i}))
        );
    }
    // The retry of the last write is deduplicated after restart (it would set 999).
    let body = "{\"value\":999,\"request_id\":\"c2901-1\"}";
    assert_eq!(n.req("PUT", "/kv/k29", Some(body), &[]).await.0, 200);
    assert_eq!(
        n.req("GET", "/kv/k29", None, &[]).await.1["value"],
        json!(29)
    );
    let (_, s) = n.req("GET", "/status", None, &[]).await;
    assert!(s["snapshot_index"].as_u64().unwrap() >= 28, "{s}");
    assert!(s["sm_digest"].as_str().is_some_and(|d| d.len() == 8), "{s}");
    n.stop().await;
}

#[tokio::test]
async fn append_builds_a_list_once_per_request_id_and_refuses_a_non_list() {
    let dir = tempfile::tempdir().unwrap();
    let n = TestNode::start(dir.path(), &[]).await;
    let app = |v: i64, rid: &str| format!("{{\"value\":{v},\"request_id\":\"{rid}\"}}");
    assert_eq!(
        n.req("POST", "/kv/l/append", Some(&app(1, "c1-1")), &[])
            .await,
        (200, json!({}))
    );
    assert_eq!(
        n.req("GET", "/kv/l", None, &[]).await,
        (200, json!({"value": [1]}))
    );
    assert_eq!(
        n.req("POST", "/kv/l/append", Some(&app(2, "c1-2")), &[])
            .await
            .0,
        200
    );
    // A retry of c1-2 is answered 200 and not applied again.
    assert_eq!(
        n.req("POST", "/kv/l/append", Some(&app(2, "c1-2")), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        n.req("POST", "/kv/l/append", Some("{\"value\":\"x\"}"), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        n.req("GET", "/kv/l", None, &[]).await.1,
        json!({"value": [1, 2, "x"]})
    );
    // A key holding a non-list: 409 not-a-list, definite, nothing changed.
    assert_eq!(
        n.req("PUT", "/kv/s", Some("{\"value\":7}"), &[]).await.0,
        200
    );
    let (st, b) = n
        .req("POST", "/kv/s/append", Some(&app(3, "c2-1")), &[])
        .await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(b["error"], "not-a-list", "{b}");
    assert_eq!(b["definite"], json!(true), "{b}");
    assert!(b["message"].is_string(), "{b}");
    assert_eq!(n.req("GET", "/kv/s", None, &[]).await.1["value"], json!(7));
    // Bad input is refused like PUT's.
    let (st, b) = n.req("POST", "/kv/l/append", Some("{}"), &[]).await;
    assert_json_error(st, &b, 400, "append without value");
    let (st, b) = n
        .req(
            "POST",
            "/kv/l/append",
            Some("{\"value\":1,\"from\":2}"),
            &[],
        )
        .await;
    assert_json_error(st, &b, 400, "append with an unknown field");
    let (st, b) = n.req("GET", "/kv/l/append", None, &[]).await;
    assert_json_error(st, &b, 405, "GET on append");
    n.stop().await;
}

/// A client that sends its head and then stalls in the body gets the server's deadline
/// answer (`--request-timeout` + 2 s): 504 indefinite for a write, and the node serves on.
#[tokio::test]
async fn a_client_stalling_in_its_body_gets_the_server_deadline_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let n = TestNode::start(dir.path(), &["--request-timeout", "200"]).await;
    let addr = n.url.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"PUT /kv/a HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"value\":")
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    let got = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..got]).to_string();
    let took = t.elapsed();
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(text.contains("\"definite\":false"), "{text}");
    assert!(
        took >= Duration::from_millis(2000) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(n.req("GET", "/kv/a", None, &[]).await.0, 200);
    n.stop().await;
}

#[test]
fn bad_flags_are_refused_naming_the_flag() {
    let bad: &[(&[&str], &str)] = &[
        (&["--peer", "n2"], "--peer"),
        (&["--peer", "n1=http://x"], "--peer"),
        (&["--peer", "n2=ftp://x"], "--peer"),
        (&["--election-timeout", "300..150"], "--election-timeout"),
        (&["--election-timeout", "abc"], "--election-timeout"),
        (&["--heartbeat", "500"], "--heartbeat"),
        (&["--bug", "nonsense"], "--bug"),
        (&["--max-append-entries", "0"], "--max-append-entries"),
    ];
    for (extra, flag) in bad {
        let mut argv = vec!["node", "--id", "n1", "--data-dir", "/tmp/x"];
        argv.extend_from_slice(extra);
        let err = Cli::parse_from(argv).args.config().unwrap_err().to_string();
        assert!(err.contains(flag), "{extra:?}: {err}");
    }
}
