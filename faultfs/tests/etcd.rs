//! etcd (Debian's `etcd-server`, 3.4, default fsync settings) on a fault mount: it runs there
//! (bbolt's shared read-only mmap, the WAL's fallocate preallocation, flock, directory fsyncs)
//! and its acknowledged puts survive power losses (SIGKILL, power_loss with a tear, restart).

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, Http};
use splitbrain_faultfs::mount;

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

#[test]
fn etcd_runs_on_the_fault_filesystem_and_keeps_acknowledged_puts() {
    let dir = tempfile::tempdir().unwrap();
    let m = mount(dir.path().join("backing"), dir.path().join("data")).unwrap();
    let mut etcd = Etcd {
        child: None,
        client: format!("127.0.0.1:{}", free_port()),
        peer: format!("127.0.0.1:{}", free_port()),
        data: m.mount_point().join("e1"),
        log: dir.path().join("etcd.log"),
    };
    etcd.start();
    let mut acked = Vec::new();
    for round in 0..3u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, stop2) = (etcd.client.clone(), stop.clone());
        let writer = std::thread::spawn(move || {
            let mut http = Http::new(&addr, Duration::from_secs(3));
            let mut ok = Vec::new();
            let mut n = 0;
            while !stop2.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("r{round}k{n}");
                if put(&mut http, &key, Instant::now() + Duration::from_secs(10)) {
                    ok.push(key);
                }
            }
            ok
        });
        std::thread::sleep(Duration::from_millis(1500));
        etcd.kill(); // mid-write: the writer's current put fails
        stop.store(true, Ordering::Relaxed);
        acked.extend(writer.join().unwrap());
        let r = m.power_loss(Some(round));
        eprintln!("round {round}: {} acked so far; {r:?}", acked.len());
        etcd.start();
    }
    assert!(
        acked.len() >= 10,
        "etcd acknowledged puts ({})",
        acked.len()
    );
    let mut http = Http::new(&etcd.client, Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(30);
    let lost: Vec<&String> = acked
        .iter()
        .filter(|k| exists(&mut http, k, deadline) != Some(true))
        .collect();
    let log = std::fs::read_to_string(&etcd.log).unwrap_or_default();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged puts lost: {:?}\n--- etcd log tail\n{}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)],
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    let s = m.stats();
    assert!(s.file_syncs > 0 && s.dir_syncs > 0, "{s:?}");
}
