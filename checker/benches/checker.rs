//! Speed targets of issue 2, on the shared Porcupine corpus:
//! * all 102 non-empty etcd logs (Porcupine: 0.59 s in all; target ≤ 0.3 s),
//! * `kv/c50-ok.txt` (Porcupine 147 ms; target ≤ 75 ms),
//! * `kv/c50-bad.txt` with every key decided (target: each key ≤ 1 s).
//!
//! `cargo bench -p splitbrain-checker --bench checker`

use criterion::{criterion_group, criterion_main, Criterion};
use splitbrain_checker::history::History;
use splitbrain_checker::read::{read_file, Format};
use splitbrain_checker::{check, CheckOptions, ModelKind, Verdict};
use std::path::PathBuf;
use std::time::Duration;

fn corpus() -> PathBuf {
    let d =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/porcupine/test_data");
    assert!(d.is_dir(), "corpus missing: {}", d.display());
    d
}

fn etcd_logs() -> Vec<History> {
    let mut v = Vec::new();
    for i in 0..=102 {
        let p = corpus().join(format!("jepsen/etcd_{i:03}.log"));
        let h = read_file(&p, Format::PorcupineEtcd).expect("corpus file reads");
        if !h.ops.is_empty() {
            v.push(h);
        }
    }
    assert_eq!(v.len(), 102);
    v
}

fn benches(c: &mut Criterion) {
    let logs = etcd_logs();
    let opts = CheckOptions::default();
    c.bench_function("etcd_all_102_logs", |b| {
        b.iter(|| {
            for h in &logs {
                let r = check(h, ModelKind::CasRegister, &opts);
                assert_ne!(r.valid, Verdict::Unknown);
            }
        })
    });
    c.bench_function("etcd_all_102_logs_read_and_check", |b| {
        b.iter(|| {
            for i in 0..=102 {
                let p = corpus().join(format!("jepsen/etcd_{i:03}.log"));
                let h = read_file(&p, Format::PorcupineEtcd).unwrap();
                check(&h, ModelKind::CasRegister, &opts);
            }
        })
    });

    let ok = read_file(&corpus().join("kv/c50-ok.txt"), Format::PorcupineKv).unwrap();
    c.bench_function("kv_c50_ok", |b| {
        b.iter(|| assert_eq!(check(&ok, ModelKind::AppendKv, &opts).valid, Verdict::Valid))
    });

    let bad = read_file(&corpus().join("kv/c50-bad.txt"), Format::PorcupineKv).unwrap();
    let all = CheckOptions {
        all_partitions: true,
        ..Default::default()
    };
    let r = check(&bad, ModelKind::AppendKv, &all);
    for k in &r.per_key {
        eprintln!(
            "c50-bad key {}: {} in {:.2} ms",
            k.key.as_ref().map(|k| k.to_string()).unwrap_or_default(),
            k.verdict,
            k.elapsed_ms
        );
    }
    c.bench_function("kv_c50_bad_all_partitions", |b| {
        b.iter(|| {
            let r = check(&bad, ModelKind::AppendKv, &all);
            assert_eq!(r.partitions.unknown, 0);
        })
    });
}

criterion_group! {
    name = checker;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(20);
    targets = benches
}
criterion_main!(checker);
