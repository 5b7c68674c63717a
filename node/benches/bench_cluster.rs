//! Benchmark of a 3-node cluster of real `splitbrain-node` processes on loopback, fsync on:
//! sequential write latency, throughput with 16 clients, failover time after SIGKILL of the
//! leader. Not a test: it prints figures.
//!
//! `cargo bench -p splitbrain-node --bench bench_cluster` (env `BENCH_SECS`, default 5;
//! `BENCH_FAILOVERS`, default 7; `BENCH_VALUE_SIZE` bytes per written value, default 0 = a
//! small integer; `SPLITBRAIN_NODE_BIN` runs another build of the node, e.g. an older one, to
//! compare in the same session).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Writes that did not answer 200 (a failover under load), across all writers.
static ERRORS: AtomicU64 = AtomicU64::new(0);
use std::time::{Duration, Instant};

use serde_json::json;
use support::Cluster;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn value(i: u64, size: usize) -> serde_json::Value {
    if size == 0 {
        return json!(i);
    }
    let mut s = format!("{i}-");
    s.extend(std::iter::repeat_n('v', size.saturating_sub(s.len())));
    json!(s)
}

async fn writer(
    c: Arc<Cluster>,
    node: usize,
    client: usize,
    until: Instant,
    size: usize,
) -> Vec<Duration> {
    let mut lat = Vec::new();
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        let t = Instant::now();
        let (st, body) = c
            .put(
                node,
                &format!("k{client}-{}", i % 64),
                value(i, size),
                &format!("b{client}-{i}"),
            )
            .await;
        if st != 200 {
            // Counted, not fatal: on a loaded machine a leader change may fail a few writes.
            if ERRORS.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("first failed write: {st} {body}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        lat.push(t.elapsed());
    }
    lat
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let failovers: usize = std::env::var("BENCH_FAILOVERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let size: usize = std::env::var("BENCH_VALUE_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    println!("node binary {}, value size {size} B", support::bin());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let mut c = Cluster::new(3, &["--snapshot-every", "10000"]);
        c.start_all();
        let leader = c.wait_leader(Duration::from_secs(10)).await;
        let c = Arc::new(c);
        // Warm up connections.
        writer(c.clone(), leader, 999, Instant::now() + Duration::from_millis(300), size).await;

        ERRORS.store(0, Ordering::Relaxed);
        let mut lat =
            writer(c.clone(), leader, 0, Instant::now() + Duration::from_secs(secs), size).await;
        lat.sort();
        println!(
            "sequential writes (1 client, to the leader): {} writes in {secs} s = {:.0} writes/s, p50 {}, p99 {}, {} failed",
            lat.len(),
            lat.len() as f64 / secs as f64,
            ms(pct(&lat, 0.5)),
            ms(pct(&lat, 0.99)),
            ERRORS.swap(0, Ordering::Relaxed)
        );

        for clients in [16usize] {
            let until = Instant::now() + Duration::from_secs(secs);
            let start = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|i| tokio::spawn(writer(c.clone(), leader, 1 + i, until, size)))
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.expect("writer"));
            }
            let el = start.elapsed().as_secs_f64();
            all.sort();
            println!(
                "{clients} clients (to the leader): {} writes in {el:.1} s = {:.0} writes/s ({:.2} MB/s of values), p50 {}, p99 {}, {} failed",
                all.len(),
                all.len() as f64 / el,
                all.len() as f64 * size as f64 / el / 1e6,
                ms(pct(&all, 0.5)),
                ms(pct(&all, 0.99)),
                ERRORS.swap(0, Ordering::Relaxed)
            );
        }

        let mut c = Arc::try_unwrap(c).ok().expect("writers done");
        let mut times = Vec::new();
        for round in 0..failovers {
            let old = c.wait_leader(Duration::from_secs(10)).await;
            c.nodes[old].kill9();
            let t = Instant::now();
            let other = (old + 1) % 3;
            let mut seq = 0;
            loop {
                seq += 1;
                let (st, _) = c.put(other, "failover", json!(seq), &format!("f{round}-{seq}")).await;
                if st == 200 {
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(10), "no failover in 10 s");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let took = t.elapsed();
            println!("failover {round}: {}", ms(took));
            times.push(took);
            c.nodes[old].start();
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        times.sort();
        if times.is_empty() {
            return;
        }
        println!(
            "failover after SIGKILL of the leader ({} rounds): median {}, min {}, max {}",
            times.len(),
            ms(pct(&times, 0.5)),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
    });
}
