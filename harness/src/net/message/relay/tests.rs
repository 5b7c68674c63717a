//! The relay over real HTTP: a fake peer server (and, in one test, three real nodes run in
//! process) behind it.

use super::*;
use splitbrain_node::raft::{Entry, Message, MessageBody};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use tokio::sync::Notify;

const TOKEN: &str = "t0ken";
const DEADLINE: Duration = Duration::from_secs(10);

/// What the fake peer received: route, token, whether the body was an array, messages.
type Got = (String, Option<String>, bool, Vec<Message>);

#[derive(Default)]
struct Sink {
    got: Mutex<Vec<Got>>,
    raw: Mutex<Vec<Vec<u8>>>,
    notify: Notify,
    /// Answer every peer request with 500 (a destination that refuses).
    refuse: AtomicBool,
}

impl Sink {
    fn messages(&self) -> Vec<Message> {
        let got = self.got.lock().unwrap();
        got.iter().flat_map(|g| g.3.clone()).collect()
    }
    /// Waits (up to DEADLINE) until at least `n` messages arrived.
    async fn wait_for(&self, n: usize) -> Vec<Message> {
        let end = Instant::now() + DEADLINE;
        loop {
            let notified = self.notify.notified();
            let ms = self.messages();
            if ms.len() >= n {
                return ms;
            }
            if tokio::time::timeout_at(end, notified).await.is_err() {
                panic!(
                    "only {} of {n} messages arrived before the deadline",
                    ms.len()
                );
            }
        }
    }
}

async fn sink_raft(
    State(s): State<Arc<Sink>>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.raw.lock().unwrap().push(body.to_vec());
    if s.refuse.load(AtomicOrdering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let token = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let array = body.first() == Some(&b'[');
    let parsed = if array {
        serde_json::from_slice::<Vec<Message>>(&body)
    } else {
        serde_json::from_slice::<Message>(&body).map(|m| vec![m])
    };
    match parsed {
        Ok(ms) => {
            s.got.lock().unwrap().push((route, token, array, ms));
            s.notify.notify_waiters();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(_) => error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "sink: not messages",
            true,
        ),
    }
}

async fn sink_status() -> Response {
    (
        StatusCode::OK,
        [("x-sink", "yes")],
        Json(json!({"role": "leader", "term": 7})),
    )
        .into_response()
}

/// A fake peer on 127.0.0.1:0; the task ends when the test's runtime does.
async fn sink() -> (SocketAddr, Arc<Sink>) {
    let s = Arc::new(Sink::default());
    let app = Router::new()
        .route("/raft/{route}", post(sink_raft))
        .route("/status", axum::routing::get(sink_status))
        .with_state(s.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, s)
}

/// A relay between n1 (whose peer address is unused here) and the sink as n2.
async fn relay_to_sink(tweak: impl FnOnce(&mut RelayConfig)) -> (Relay, Arc<Sink>, String) {
    let (addr, s) = sink().await;
    let (addr1, _) = sink().await;
    let mut cfg = RelayConfig::new(vec![("n1".into(), addr1), ("n2".into(), addr)], 7);
    tweak(&mut cfg);
    let relay = Relay::start(cfg).await.unwrap();
    let url = format!("http://{}", relay.addr("n1", "n2").unwrap());
    (relay, s, url)
}

fn append(term: u64, prev: u64, n: usize) -> Message {
    Message {
        from: "n1".into(),
        to: "n2".into(),
        term,
        body: MessageBody::Append {
            prev_log_index: prev,
            prev_log_term: term,
            entries: (0..n)
                .map(|i| Entry {
                    term,
                    index: prev + 1 + i as u64,
                    data: b"v".to_vec(),
                })
                .collect(),
            commit: prev,
            read_ctx: 0,
        },
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn post_raw(url: &str, route: &str, body: Vec<u8>) -> reqwest::Response {
    client()
        .post(format!("{url}/raft/{route}"))
        .header(TOKEN_HEADER, TOKEN)
        .body(body)
        .timeout(DEADLINE)
        .send()
        .await
        .unwrap()
}

fn prev_of(m: &Message) -> u64 {
    match &m.body {
        MessageBody::Append { prev_log_index, .. } => *prev_log_index,
        _ => panic!("not an append: {m:?}"),
    }
}

#[tokio::test]
async fn messages_pass_in_order_with_their_token_and_are_answered_204() {
    let (relay, sink, url) = relay_to_sink(|_| {}).await;
    let r = post_raw(&url, "append", wire::encode_one(&append(1, 0, 1))).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let batch = [append(1, 1, 2), append(1, 3, 0)];
    let r = post_raw(&url, "append", wire::encode_batch(&[&batch[0], &batch[1]])).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let got = sink.wait_for(3).await;
    assert_eq!(got.iter().map(prev_of).collect::<Vec<_>>(), vec![0, 1, 3]);
    assert_eq!(got[1], batch[0], "messages arrive unchanged");
    for g in sink.got.lock().unwrap().iter() {
        assert_eq!(g.0, "append");
        assert_eq!(g.1.as_deref(), Some(TOKEN));
    }
    let c = relay.control().counters();
    assert_eq!((c.seen, c.delivered, c.unparsed), (3, 3, 0));
    relay.shutdown(DEADLINE).await;
}

#[tokio::test]
async fn a_cut_link_drops_messages_and_healing_lets_them_pass_again() {
    let (relay, sink, url) = relay_to_sink(|_| {}).await;
    let ctl = relay.control();
    let l: Link = ("n1".into(), "n2".into());
    ctl.set_cuts([l.clone()].into_iter().collect()).unwrap();
    assert!(ctl
        .set_cuts([("n1".into(), "n9".into())].into_iter().collect())
        .is_err());
    let r = post_raw(&url, "append", wire::encode_one(&append(1, 0, 1))).await;
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "a cut looks like loss to the sender"
    );
    ctl.set_cuts(BTreeSet::new()).unwrap();
    post_raw(&url, "append", wire::encode_one(&append(1, 5, 1))).await;
    let got = sink.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(
        prev_of(&got[0]),
        5,
        "only the message sent after healing arrives"
    );
    assert_eq!(ctl.counters().cut, 1);
    relay.shutdown(DEADLINE).await;
}

#[tokio::test]
async fn replay_delivers_an_older_append_after_a_newer_one_over_http() {
    let (relay, sink, url) = relay_to_sink(|_| {}).await;
    let ctl = relay.control();
    post_raw(&url, "append", wire::encode_one(&append(1, 0, 1))).await;
    post_raw(&url, "append", wire::encode_one(&append(1, 1, 1))).await;
    sink.wait_for(2).await;
    ctl.set_fault(Fault::replay(1.0)).unwrap();
    post_raw(&url, "append", wire::encode_one(&append(1, 2, 1))).await;
    let got = sink.wait_for(4).await;
    let prevs: Vec<u64> = got.iter().map(prev_of).collect();
    assert_eq!(&prevs[..3], &[0, 1, 2]);
    assert!(
        prevs[3] < 2,
        "the replayed append {} is older than 2",
        prevs[3]
    );
    assert_eq!(ctl.counters().replayed, 1);
    relay.shutdown(DEADLINE).await;
}

#[tokio::test]
async fn reorder_lets_a_later_message_overtake_a_held_one() {
    let (relay, sink, url) = relay_to_sink(|_| {}).await;
    let ctl = relay.control();
    // Hold the first append for up to 300 ms, send the second unheld.
    ctl.set_fault(Fault::Reorder {
        p: 1.0,
        max_delay: Duration::from_millis(300),
        kinds: super::super::faults::KindFilter::ALL,
        links: Default::default(),
    })
    .unwrap();
    // Seed 7 on n1→n2 holds the first append long enough (the same engine, run alone, says
    // how long); a different seed might not.
    let mut e = FaultEngine::new(7);
    e.set(ctl.active()[0].clone()).unwrap();
    let mut out = Vec::new();
    e.on_message(
        &("n1".into(), "n2".into()),
        append(1, 0, 1),
        Duration::ZERO,
        &mut out,
    );
    assert!(
        out[0].at > Duration::from_millis(100),
        "held only {:?}",
        out[0].at
    );
    post_raw(&url, "append", wire::encode_one(&append(1, 0, 1))).await;
    ctl.clear_fault(FaultName::Reorder);
    post_raw(&url, "append", wire::encode_one(&append(1, 1, 1))).await;
    let got = sink.wait_for(2).await;
    assert_eq!(got.iter().map(prev_of).collect::<Vec<_>>(), vec![1, 0]);
    assert_eq!(ctl.counters().reordered, 1);
    relay.shutdown(DEADLINE).await;
}

#[tokio::test]
async fn an_unparseable_body_is_passed_through_untouched_and_counted() {
    let (relay, sink, url) = relay_to_sink(|_| {}).await;
    let r = post_raw(&url, "append", b"{\"not\": \"a message\"}".to_vec()).await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "the destination's own answer"
    );
    // A vote sent to the append route is not parsed either (the node would refuse it).
    let wrong = wire::encode_one(&append(1, 0, 0));
    let r = post_raw(&url, "vote", wrong.clone()).await;
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "the fake sink accepts it"
    );
    assert_eq!(
        sink.raw.lock().unwrap().clone(),
        vec![b"{\"not\": \"a message\"}".to_vec(), wrong],
        "bodies passed byte for byte"
    );
    let c = relay.control().counters();
    assert_eq!((c.unparsed, c.seen), (2, 0));
    relay.shutdown(DEADLINE).await;
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_413_as_the_node_would() {
    let (relay, sink, url) = relay_to_sink(|c| c.body_limit = 1024).await;
    let r = post_raw(&url, "append", vec![b' '; 2048]).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "too-large");
    assert_eq!(v["definite"], true);
    assert!(sink.raw.lock().unwrap().is_empty());
    assert_eq!(relay.control().counters().refused, 1);
    assert_eq!(
        (
            wire::route_body_limit("append"),
            wire::route_body_limit("snapshot")
        ),
        (
            splitbrain_node::http::PEER_BODY_LIMIT,
            splitbrain_node::http::PEER_SNAPSHOT_BODY_LIMIT
        ),
        "the node's peer limits"
    );
    relay.shutdown(DEADLINE).await;
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_401_when_the_relay_knows_the_token() {
    let (relay, sink, url) = relay_to_sink(|c| c.token = Some("other".into())).await;
    let r = post_raw(&url, "append", wire::encode_one(&append(1, 0, 1))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(sink.raw.lock().unwrap().is_empty());
    assert_eq!(relay.control().counters().refused, 1);
    relay.shutdown(DEADLINE).await;
}

#[tokio::test]
async fn one_per_request_batching_sends_bodies_of_one_message() {
    let (relay, sink, url) = relay_to_sink(|c| c.batching = Batching::OnePerRequest).await;
    let b = [append(1, 0, 1), append(1, 1, 1), append(1, 2, 1)];
    post_raw(&url, "append", wire::encode_batch(&[&b[0], &b[1], &b[2]])).await;
    sink.wait_for(3).await;
    let got = sink.got.lock().unwrap();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|g| !g.2 && g.3.len() == 1));
    drop(got);
    relay.shutdown(DEADLINE).await;
}

#[tokio::test]
async fn a_refused_delivery_is_counted_as_undelivered() {
    let (relay, sink, url) = relay_to_sink(|_| {}).await;
    sink.refuse.store(true, AtomicOrdering::SeqCst);
    post_raw(&url, "append", wire::encode_one(&append(1, 0, 1))).await;
    let end = Instant::now() + DEADLINE;
    while relay.control().counters().undelivered == 0 {
        assert!(
            Instant::now() < end,
            "no undelivered count before the deadline"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    relay.shutdown(DEADLINE).await;
}

#[tokio::test]
async fn client_requests_pass_through_and_a_cut_link_refuses_them_definitely() {
    let (relay, _sink, url) = relay_to_sink(|_| {}).await;
    let r = client().get(format!("{url}/status")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-sink"], "yes");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v, json!({"role": "leader", "term": 7}));
    let r = client().get(format!("{url}/nothing")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "the destination's 404");
    relay
        .control()
        .set_cuts([("n1".into(), "n2".into())].into_iter().collect())
        .unwrap();
    let r = client().get(format!("{url}/status")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"].as_str(), v["definite"].as_bool()),
        (Some("link-cut"), Some(true))
    );
    relay.shutdown(DEADLINE).await;
}

#[tokio::test]
async fn shutdown_closes_every_listener_and_delivers_nothing_more() {
    let (relay, sink, url) = relay_to_sink(|_| {}).await;
    let ctl = relay.control();
    ctl.set_fault(Fault::reorder(Duration::from_millis(200)))
        .unwrap();
    for i in 0..20 {
        post_raw(&url, "append", wire::encode_one(&append(1, i, 1))).await;
    }
    let addrs: Vec<SocketAddr> = relay.links().values().copied().collect();
    let t = Instant::now();
    relay.shutdown(DEADLINE).await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        t.elapsed()
    );
    for a in addrs {
        assert!(
            tokio::net::TcpStream::connect(a).await.is_err(),
            "{a} still accepts"
        );
    }
    let n = sink.messages().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), n, "held deliveries were discarded");
}

/// Three real nodes (in process) talking only through the relay.
struct Cluster {
    relay: Relay,
    clients: BTreeMap<String, String>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    nodes: Vec<JoinHandle<anyhow::Result<()>>>,
    _dirs: Vec<tempfile::TempDir>,
}

async fn cluster(seed: u64) -> Cluster {
    let ids = ["n1", "n2", "n3"];
    let mut listeners = Vec::new();
    let mut members = Vec::new();
    for id in ids {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        members.push((id.to_string(), l.local_addr().unwrap()));
        listeners.push(l);
    }
    let mut cfg = RelayConfig::new(members.clone(), seed);
    cfg.token = Some(TOKEN.into());
    let relay = Relay::start(cfg).await.unwrap();
    let mut c = Cluster {
        relay,
        clients: BTreeMap::new(),
        stops: Vec::new(),
        nodes: Vec::new(),
        _dirs: Vec::new(),
    };
    for ((id, addr), l) in members.into_iter().zip(listeners) {
        let dir = tempfile::tempdir().unwrap();
        let args = splitbrain_node::cli::NodeArgs {
            id: id.clone(),
            listen: addr.to_string(),
            peers: c
                .relay
                .routes(&id)
                .into_iter()
                .map(|(p, a)| format!("{p}=http://{a}"))
                .collect(),
            data_dir: dir.path().to_path_buf(),
            cluster_token: TOKEN.into(),
            election_timeout: "150..300".into(),
            heartbeat: 50,
            snapshot_every: 10_000,
            max_append_entries: 512,
            bugs: Vec::new(),
            request_timeout: 2000,
            seed: Some(seed + c.nodes.len() as u64),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let node_cfg = args.config().unwrap();
        c.nodes.push(tokio::spawn(splitbrain_node::cli::serve(
            node_cfg,
            l,
            async move {
                let _ = rx.await;
            },
        )));
        c.stops.push(tx);
        c.clients.insert(id, format!("http://{addr}"));
        c._dirs.push(dir);
    }
    c
}

impl Cluster {
    /// Waits (up to DEADLINE) for the wire to show a current leader other than `not`.
    async fn leader(&self, not: Option<&str>) -> String {
        let mut w = self.relay.control().watch_view();
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(l) = w.borrow_and_update().current_leader() {
                if Some(l.as_str()) != not {
                    return l.clone();
                }
            }
            if tokio::time::timeout_at(end, w.changed()).await.is_err() {
                panic!(
                    "no leader on the wire before the deadline: {:?}",
                    self.relay.control().view()
                );
            }
        }
    }

    async fn stop(self) {
        for s in self.stops {
            let _ = s.send(());
        }
        for n in self.nodes {
            let r = tokio::time::timeout(DEADLINE, n).await;
            assert!(
                matches!(r, Ok(Ok(Ok(())))),
                "a node did not stop cleanly: {r:?}"
            );
        }
        self.relay.shutdown(DEADLINE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_nodes_elect_write_and_fail_over_through_the_relay() {
    let c = cluster(11).await;
    let leader = c.leader(None).await;
    let follower = c.clients.keys().find(|k| **k != leader).unwrap().clone();
    // A write at a follower is forwarded to the leader through the relay (pass-through).
    let http = client();
    let r = http
        .put(format!("{}/kv/x", c.clients[&follower]))
        .json(&json!({"value": 1, "request_id": "c1-1"}))
        .timeout(DEADLINE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    let r = http
        .get(format!("{}/kv/x", c.clients[&leader]))
        .timeout(DEADLINE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"value": 1})
    );
    // Isolate the leader with cuts both ways: the others elect a new one in a higher term.
    let ctl = c.relay.control();
    let old_term = ctl.view().term;
    let cuts = c
        .relay
        .links()
        .keys()
        .filter(|(a, b)| *a == leader || *b == leader)
        .cloned()
        .collect();
    ctl.set_cuts(cuts).unwrap();
    let new = c.leader(Some(&leader)).await;
    assert_ne!(new, leader);
    assert!(ctl.view().term > old_term);
    let k = ctl.counters();
    assert!(k.seen > 10 && k.cut > 0, "{k:?}");
    assert_eq!((k.unparsed, k.refused), (0, 0), "{k:?}");
    ctl.heal();
    c.stop().await;
}
