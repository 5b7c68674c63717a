//! Maelstrom router throughput: node-to-node lines through [`Router::route`] (parse, the
//! message fault engine on the directed link, latency 0, the destination's bounded queue) and
//! the per-node writer threads that write them out (here into a sink instead of a pipe).
//! `cargo bench -p splitbrain --bench maelstrom_router`; Criterion reports messages/s.
//!
//! Two cases: every link open, and a partition cutting a third of the links (cut messages are
//! decided and counted, not delivered) plus `msg-dup p=0.1` on the rest.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use splitbrain::maelstrom::router::{write_loop, Router, RouterConfig};
use splitbrain::net::message::Fault;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BATCH: u64 = 20_000;

fn router() -> (Router, Vec<String>) {
    let nodes: Vec<String> = (0..3).map(|i| format!("n{i}")).collect();
    let r = Router::new(RouterConfig::new(nodes.clone(), 1));
    let log = std::env::temp_dir().join(format!("sb-bench-router-{}.log", std::process::id()));
    for n in &nodes {
        let (tx, rx) = mpsc::sync_channel(r.queue());
        r.attach(n, tx, &log);
        std::thread::spawn(move || write_loop(rx, std::io::sink()));
    }
    (r, nodes)
}

fn lines(nodes: &[String]) -> Vec<(String, String)> {
    (0..BATCH as usize)
        .map(|i| {
            let a = &nodes[i % 3];
            let b = &nodes[(i + 1) % 3];
            let line = format!(
                r#"{{"src":"{a}","dest":"{b}","body":{{"type":"append_entries","term":3,"msg_id":{i},"entries":[{{"term":3,"op":["write",17,42]}}],"commit":{i}}}}}"#
            );
            (a.clone(), line)
        })
        .collect()
}

fn run(r: &Router, batch: &[(String, String)]) {
    let before = r.counts();
    let seen0 = r.engine().engine().counters().seen;
    for (w, l) in batch {
        r.route(w, l);
    }
    // Every line was decided (delivered, or cut); wait for the queues' hand-off.
    let deadline = Instant::now() + Duration::from_secs(30);
    while r.engine().engine().counters().seen - seen0 < BATCH {
        assert!(Instant::now() < deadline, "lines not routed");
        std::thread::yield_now();
    }
    let after = r.counts();
    assert!(after.lines - before.lines == BATCH);
    assert_eq!(after.queue_full, before.queue_full, "queues overflowed");
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("maelstrom-router");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(20);
    let (r, nodes) = router();
    let batch = lines(&nodes);
    g.bench_function("open links", |b| b.iter(|| run(&r, &batch)));
    let (r2, nodes2) = router();
    let cut = [("n0".to_string(), "n1".to_string())].into();
    r2.engine().engine().set_cuts(cut);
    r2.engine()
        .engine()
        .set(Fault::dup(0.1))
        .expect("a valid fault");
    let batch2 = lines(&nodes2);
    g.bench_function("partition + msg-dup", |b| b.iter(|| run(&r2, &batch2)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
