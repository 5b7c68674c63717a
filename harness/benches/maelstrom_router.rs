//! Maelstrom router throughput: node-to-node lines through [`Router::route`] (parse, the
//! message fault engine on the directed link, latency 0, the destination's bounded queue) and
//! the per-node writer threads that write them out (here into a sink instead of a pipe).
//! `cargo bench -p splitbrain --bench maelstrom_router`; Criterion reports messages/s.
//!
//! Three cases: every link open; a partition cutting a third of the links (cut messages are
//! decided and counted, not delivered) plus `msg-dup p=0.1` on the rest; and through real
//! processes: three `tests/fixtures/maelstrom/flood.py` nodes (niced, piped, as in a run) each
//! writing 50,000 messages to the next, timed from the first spawn to the last delivery.

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

const FLOOD: u64 = 50_000;

/// One flood through real processes; the time from the first spawn to every line delivered
/// (Python's start-up included: nodes flood as soon as they are initialised, so this is a lower
/// bound of the router's rate).
fn flood() -> Duration {
    use splitbrain::host::Host;
    let nodes: Vec<String> = (0..3).map(|i| format!("n{i}")).collect();
    let r = Router::new(RouterConfig::new(nodes.clone(), 1));
    let host = splitbrain::maelstrom::process::MaelstromHost { router: r.clone() };
    let dir = tempfile::tempdir().expect("a temp dir");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/maelstrom/flood.py"
    );
    let mut procs = Vec::new();
    let t0 = Instant::now();
    for n in &nodes {
        let mc = splitbrain::sut::MemberCommand {
            program: "python3".into(),
            args: vec![script.into()],
            env: vec![
                (
                    splitbrain::maelstrom::process::NODE_ID_ENV.into(),
                    n.clone(),
                ),
                ("FLOOD_N".into(), FLOOD.to_string()),
            ],
        };
        procs.push(
            host.spawn(&mc, &dir.path().join(format!("{n}.log")))
                .expect("spawn"),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !nodes.iter().all(|n| r.is_ready(n)) {
        assert!(Instant::now() < deadline, "flood nodes not ready");
        std::thread::sleep(Duration::from_micros(200));
    }
    while r.counts().delivered < 3 * FLOOD {
        assert!(
            Instant::now() < deadline,
            "flood not delivered: {:?}",
            r.counts()
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = t0.elapsed();
    for p in &mut procs {
        p.kill();
    }
    took
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
    let mut g = c.benchmark_group("maelstrom-router-processes");
    g.throughput(Throughput::Elements(3 * FLOOD));
    g.sample_size(10);
    g.bench_function("3 python nodes flooding", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| flood()).sum())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
