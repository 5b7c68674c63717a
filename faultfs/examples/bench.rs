//! Node write throughput on fault mounts vs plain directories.
//!
//!     cargo build --release -p splitbrain-node
//!     cargo run --release -p splitbrain-faultfs --example bench -- [--secs 10] [--repeats 3] [--clients 16] [--plain-in DIR]
//!
//! Each repeat starts 3 `splitbrain-node`s twice — data directories on plain directories
//! (tmpfs or disk, wherever the temp dir is), then on fault mounts — and drives PUTs with N
//! concurrent clients (client i talks to node i mod 3; followers forward) for `--secs` after a
//! 2 s warm-up. Prints writes/s per run, the medians and their ratio.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{put, Cluster, Http};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Args {
    /// Parent of the plain runs' data directories (default: the temp dir; `/dev/shm` gives a
    /// baseline without fsync cost, isolating the FUSE overhead).
    plain_in: Option<std::path::PathBuf>,
    secs: u64,
    repeats: usize,
    clients: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        plain_in: None,
        secs: 10,
        repeats: 3,
        clients: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it
            .next()
            .ok_or_else(|| format!("flag {flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("flag {flag}: {v:?} is not a whole number"))
        };
        match flag.as_str() {
            "--secs" => a.secs = num(&val)?,
            "--repeats" => a.repeats = num(&val)? as usize,
            "--clients" => a.clients = num(&val)? as usize,
            "--plain-in" => a.plain_in = Some(val.into()),
            _ => {
                return Err(format!(
                    "unknown flag {flag} (flags: --secs, --repeats, --clients, --plain-in)"
                ))
            }
        }
    }
    Ok(a)
}

/// One run: writes/s over `secs` after a warm-up.
fn run(fault: bool, args: &Args, seed: u64) -> f64 {
    let dir = match (&args.plain_in, fault) {
        (Some(p), false) => tempfile::tempdir_in(p).expect("--plain-in: a writable directory"),
        _ => tempfile::tempdir().unwrap(),
    };
    let mut mounts = Vec::new();
    let data: Vec<_> = (1..=3)
        .map(|i| {
            let d = dir.path().join(format!("data/n{i}"));
            if fault {
                let m = splitbrain_faultfs::mount(dir.path().join(format!("backing/n{i}")), &d)
                    .expect("mount");
                mounts.push(m);
            } else {
                std::fs::create_dir_all(&d).unwrap();
            }
            d
        })
        .collect();
    let cluster = Cluster::start(data, &dir.path().join("logs"), &[]);
    // Wait for a leader: one acknowledged write.
    let mut c = Http::new(&cluster.addrs[0], Duration::from_secs(2));
    assert!(
        put(
            &mut c,
            "warm",
            0,
            "c999-1",
            Instant::now() + Duration::from_secs(20)
        ),
        "no leader within 20 s"
    );
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..args.clients)
        .map(|i| {
            let addr = cluster.addrs[i % 3].clone();
            let (counting, stop, count) = (counting.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed * 1000 + i as u64);
                let mut http = Http::new(&addr, Duration::from_secs(3));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("k{}", rng.gen_range(0..1000));
                    let body = format!("{{\"value\": {n}, \"request_id\": \"c{i}-{n}\"}}");
                    if let Ok((200, _)) = http.request("PUT", &format!("/kv/{key}"), &body) {
                        if counting.load(Ordering::Relaxed) {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    counting.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(args.secs));
    let n = count.load(Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    drop(cluster);
    let syncs: u64 = mounts.iter().map(|m| m.stats().file_syncs).sum();
    if fault {
        eprintln!("  (fault mounts: {syncs} file fsyncs)");
    }
    drop(mounts);
    n as f64 / elapsed
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(254);
        }
    };
    let (mut plain, mut fault) = (Vec::new(), Vec::new());
    for r in 0..args.repeats {
        let p = run(false, &args, r as u64);
        println!("repeat {r}: plain {p:.0} writes/s (load {})", loadavg());
        let f = run(true, &args, r as u64);
        println!("repeat {r}: faultfs {f:.0} writes/s (load {})", loadavg());
        plain.push(p);
        fault.push(f);
    }
    let (mp, mf) = (median(&mut plain), median(&mut fault));
    println!(
        "median writes/s at {} clients: plain {mp:.0}, faultfs {mf:.0}, ratio {:.2} (load {})",
        args.clients,
        mf / mp,
        loadavg()
    );
}
