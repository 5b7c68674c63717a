//! Relay throughput: messages pushed through the real HTTP relay (one directed link) to a
//! sink server that parses them as the node would. `cargo bench -p splitbrain --bench relay`.
//!
//! Each case: `senders` tasks POST bodies of `per_body` append messages (one entry each) to
//! the link's listener, each waiting for the relay's 204 before its next request as a node's
//! sender does; an iteration ends when the sink has received every message. Criterion reports
//! messages/s.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use splitbrain::net::message::relay::{Batching, Relay, RelayConfig};
use splitbrain::net::message::wire;
use splitbrain_node::raft::{Entry, Message, MessageBody};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn append(prev: u64) -> Message {
    Message {
        from: "n1".into(),
        to: "n2".into(),
        term: 3,
        body: MessageBody::Append {
            prev_log_index: prev,
            prev_log_term: 3,
            entries: vec![Entry {
                term: 3,
                index: prev + 1,
                data: br#"{"put":{"key":"k17","value":42,"request_id":"c3-99"}}"#.to_vec(),
            }],
            commit: prev,
            read_ctx: 0,
        },
    }
}

async fn sink(count: Arc<AtomicU64>) -> std::net::SocketAddr {
    let app = Router::new().route(
        "/raft/{route}",
        post(move |body: Bytes| {
            let count = count.clone();
            async move {
                let n = if body.first() == Some(&b'[') {
                    serde_json::from_slice::<Vec<Message>>(&body).map_or(0, |v| v.len())
                } else {
                    serde_json::from_slice::<Message>(&body).map_or(0, |_| 1)
                };
                count.fetch_add(n as u64, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

/// A keep-alive HTTP/1.1 connection that sends a prepared request and reads the relay's
/// `204` (no body), so that the client costs little of the machine the relay runs on.
struct RawConn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    async fn connect(addr: std::net::SocketAddr) -> RawConn {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            buf: Vec::with_capacity(1024),
        }
    }

    async fn post(&mut self, req: &[u8]) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(req).await.unwrap();
        self.buf.clear();
        loop {
            let mut chunk = [0u8; 512];
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .expect("the relay answers within 10 s")
                .unwrap();
            assert!(n > 0, "the relay closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            if self.buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        assert!(
            self.buf.starts_with(b"HTTP/1.1 204"),
            "{}",
            String::from_utf8_lossy(&self.buf)
        );
    }
}

fn bench_relay(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("relay");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (name, senders, per_body, batching) in [
        (
            "rebatch/1-per-body/4-senders",
            4usize,
            1usize,
            Batching::Rebatch(256),
        ),
        (
            "rebatch/16-per-body/1-sender",
            1,
            16,
            Batching::Rebatch(256),
        ),
        (
            "one-per-request/1-per-body/4-senders",
            4,
            1,
            Batching::OnePerRequest,
        ),
    ] {
        let count = Arc::new(AtomicU64::new(0));
        let (relay, addr) = rt.block_on(async {
            let to = sink(count.clone()).await;
            let from = sink(Arc::new(AtomicU64::new(0))).await;
            let mut cfg = RelayConfig::new(vec![("n1".into(), from), ("n2".into(), to)], 1);
            cfg.batching = batching;
            cfg.queue = 1 << 16;
            let relay = Relay::start(cfg).await.unwrap();
            let addr = relay.addr("n1", "n2").unwrap();
            (relay, addr)
        });
        let ctl = relay.control();
        let body: Bytes = {
            let ms: Vec<Message> = (0..per_body as u64).map(append).collect();
            let refs: Vec<&Message> = ms.iter().collect();
            if per_body == 1 {
                wire::encode_one(&ms[0]).into()
            } else {
                wire::encode_batch(&refs).into()
            }
        };
        let req: Arc<Vec<u8>> = Arc::new(
            [
                format!(
                    "POST /raft/append HTTP/1.1\r\nhost: {addr}\r\n{}: bench\r\n\
                     content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    wire::TOKEN_HEADER,
                    body.len()
                )
                .as_bytes(),
                &body,
            ]
            .concat(),
        );
        group.throughput(Throughput::Elements(per_body as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let before = count.load(Ordering::Relaxed);
                    let lost_before = ctl.counters().queue_full + ctl.counters().undelivered;
                    let mut tasks = Vec::new();
                    for s in 0..senders as u64 {
                        let n = iters / senders as u64 + u64::from(s < iters % senders as u64);
                        let req = req.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut conn = RawConn::connect(addr).await;
                            for _ in 0..n {
                                conn.post(&req).await;
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                    let want = iters * per_body as u64;
                    let deadline = Instant::now() + Duration::from_secs(30);
                    loop {
                        let k = ctl.counters();
                        let lost = k.queue_full + k.undelivered - lost_before;
                        if count.load(Ordering::Relaxed) - before + lost >= want {
                            assert_eq!(lost, 0, "the relay lost messages: {k:?}");
                            break;
                        }
                        assert!(Instant::now() < deadline, "sink never got {want}: {k:?}");
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                    start.elapsed()
                })
            })
        });
        rt.block_on(relay.shutdown(Duration::from_secs(5)));
    }
    group.finish();
}

criterion_group!(benches, bench_relay);
criterion_main!(benches);
