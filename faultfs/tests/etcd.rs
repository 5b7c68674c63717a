//! etcd (Debian's `etcd-server`, 3.4, default fsync settings) on a fault mount: it runs there
//! (bbolt's shared read-only mmap, the WAL's fallocate preallocation, flock, directory fsyncs);
//! with ext4-like journal metadata its acknowledged puts survive power losses (SIGKILL,
//! power_loss with a tear, restart); with the POSIX minimum it loses them all.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, Http};
use splitbrain_faultfs::{mount_with, Metadata, Options};

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Etcd {
    child: Option<Child>,
    client: String,
    peer: String,
    data: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Etcd {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let c = format!("http://{}", self.client);
        let p = format!("http://{}", self.peer);
        let child = Command::new("etcd")
            .args(["--name", "e1", "--data-dir"])
            .arg(&self.data)
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args([
                "--listen-peer-urls",
                &p,
                "--initial-advertise-peer-urls",
                &p,
            ])
            .args(["--initial-cluster", &format!("e1={p}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("etcd is missing: apt-get install -y etcd-server (.ci/run does)");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn put(http: &mut Http, key: &str, deadline: Instant) -> bool {
    let body = format!("{{\"key\":\"{}\",\"value\":\"{}\"}}", b64(key), b64("v"));
    while Instant::now() < deadline {
        if let Ok((200, _)) = http.request("POST", "/v3/kv/put", &body) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn exists(http: &mut Http, key: &str, deadline: Instant) -> Option<bool> {
    let body = format!("{{\"key\":\"{}\"}}", b64(key));
    while Instant::now() < deadline {
        if let Ok((200, b)) = http.request("POST", "/v3/kv/range", &body) {
            return Some(b.contains("\"kvs\""));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

struct Run {
    acked: Vec<String>,
    lost: Vec<String>,
    reports: Vec<splitbrain_faultfs::LossReport>,
    log_tail: String,
    stats: splitbrain_faultfs::Stats,
}

/// etcd with its data directory the mount point (the harness's layout); `rounds` times: puts
/// for 1 s, SIGKILL mid-put, power loss (torn), restart. Then reads every acknowledged key.
fn run(metadata: Metadata, rounds: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let m = mount_with(
        dir.path().join("backing"),
        dir.path().join("data"),
        Options { metadata },
    )
    .unwrap();
    let mut etcd = Etcd {
        child: None,
        client: format!("127.0.0.1:{}", free_port()),
        peer: format!("127.0.0.1:{}", free_port()),
        data: m.mount_point().to_path_buf(),
        log: dir.path().join("etcd.log"),
    };
    etcd.start();
    let mut acked = Vec::new();
    let mut reports = Vec::new();
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, stop2) = (etcd.client.clone(), stop.clone());
        let (first_ack, first_acked) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            let mut http = Http::new(&addr, Duration::from_secs(3));
            let mut ok = Vec::new();
            let mut n = 0;
            while !stop2.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("r{round}k{n}");
                if put(&mut http, &key, Instant::now() + Duration::from_secs(10)) {
                    ok.push(key);
                    let _ = first_ack.send(());
                }
            }
            ok
        });
        // The second of puts starts at etcd's first acknowledged put, not at its start: on a
        // loaded machine etcd's start on the mount (a 64 MB WAL preallocation through FUSE)
        // took longer than the whole second, and a round then acknowledged nothing.
        let started = Instant::now();
        let ready = first_acked.recv_timeout(Duration::from_secs(60));
        eprintln!(
            "round {round}: first put acknowledged after {:?}",
            started.elapsed()
        );
        if ready.is_err() {
            stop.store(true, Ordering::Relaxed);
            let log = std::fs::read_to_string(&etcd.log).unwrap_or_default();
            let tail = log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
            panic!(
                "round {round}: etcd acknowledged no put within 60 s\n--- etcd log tail\n{tail}"
            );
        }
        std::thread::sleep(Duration::from_millis(1000));
        etcd.kill(); // mid-write: the writer's current put fails
        stop.store(true, Ordering::Relaxed);
        acked.extend(writer.join().unwrap());
        // No tear: faultfs tears at a random *byte*, stricter than the sector-atomic writes
        // etcd's WAL reader assumes (it takes only a zeroed sector for a torn tail). A torn
        // power loss made etcd 3.4 refuse its WAL ("proto: Record: illegal tag 0"): a finding
        // reported in the README, not the claim of these tests.
        reports.push(m.power_loss(None));
        etcd.start();
    }
    let mut http = Http::new(&etcd.client, Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(30);
    let lost = acked
        .iter()
        .filter(|k| exists(&mut http, k, deadline) != Some(true))
        .cloned()
        .collect();
    etcd.kill();
    let log = std::fs::read_to_string(&etcd.log).unwrap_or_default();
    let log_tail = log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
    Run {
        acked,
        lost,
        reports,
        log_tail,
        stats: m.stats(),
    }
}

#[test]
fn etcd_on_a_journal_mount_keeps_every_acknowledged_put() {
    let r = run(Metadata::Journal, 3);
    eprintln!("reports: {:?}", r.reports);
    assert!(
        r.acked.len() >= 10,
        "etcd acknowledged puts ({})",
        r.acked.len()
    );
    assert!(
        r.lost.is_empty(),
        "{} of {} acknowledged puts lost: {:?}\n--- etcd log tail\n{}",
        r.lost.len(),
        r.acked.len(),
        &r.lost[..r.lost.len().min(10)],
        r.log_tail
    );
    assert!(r.stats.file_syncs > 0, "{:?}", r.stats);
}

/// A finding, not a bug of this crate: etcd 3.4 creates `member/` (and `member/snap/`) in its
/// data directory without fsyncing the data directory, so under the POSIX minimum the whole
/// `member/` directory — WAL and all — is lost by a power loss, with every acknowledged put.
/// (ext4's journal makes it durable with etcd's first WAL fsync; see the test above.)
#[test]
fn etcd_3_4_never_fsyncs_the_directory_holding_member_so_a_posix_power_loss_loses_it() {
    let r = run(Metadata::Posix, 1);
    assert!(
        r.acked.len() >= 10,
        "etcd acknowledged puts ({})",
        r.acked.len()
    );
    assert!(
        r.reports[0].paths_lost.iter().any(|p| p == "/member"),
        "{:?}",
        r.reports[0]
    );
    assert_eq!(
        r.lost.len(),
        r.acked.len(),
        "every acknowledged put is gone"
    );
}
