//! A cluster of real `splitbrain-node` processes on loopback, for tests and the benchmark.
//! Children get `PR_SET_PDEATHSIG(SIGKILL)` and are killed on drop: none outlives the test.
#![allow(dead_code, clippy::needless_range_loop)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_splitbrain-node");

/// The node binary to run: `SPLITBRAIN_NODE_BIN` if set (e.g. an older build, to compare),
/// else this package's.
pub fn bin() -> String {
    std::env::var("SPLITBRAIN_NODE_BIN").unwrap_or_else(|_| BIN.to_string())
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

pub struct Node {
    pub id: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub args: Vec<String>,
    pub child: Option<Child>,
}

impl Node {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let mut cmd = Command::new(bin());
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; called between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().expect("spawn splitbrain-node"));
    }

    pub fn signal(&mut self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself; returns its status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(c) = &mut self.child {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return Some(st);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl Cluster {
    /// `n` nodes n1..nN on free loopback ports, not started.
    pub fn new(n: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let id = format!("n{}", i + 1);
            let data_dir = dir.path().join(&id);
            let mut args = vec![
                "--id".to_string(),
                id.clone(),
                "--listen".into(),
                format!("127.0.0.1:{}", ports[i]),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--cluster-token".into(),
                "test-token".into(),
            ];
            for (j, p) in ports.iter().enumerate() {
                if j != i {
                    args.push("--peer".into());
                    args.push(format!("n{}=http://127.0.0.1:{p}", j + 1));
                }
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            nodes.push(Node {
                id: id.clone(),
                port: ports[i],
                data_dir,
                log: dir.path().join(format!("{id}.log")),
                args,
                child: None,
            });
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        Cluster { nodes, dir, client }
    }

    pub fn start_all(&mut self) {
        for n in &mut self.nodes {
            n.start();
        }
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("==== {} ====\n{}", n.id, n.log_text()))
            .collect()
    }

    pub async fn status(&self, i: usize) -> Option<Value> {
        let r = self
            .client
            .get(format!("{}/status", self.nodes[i].url()))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Waits until a running node reports itself leader and returns its position.
    pub async fn wait_leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            for i in 0..self.nodes.len() {
                if self.nodes[i].child.is_none() {
                    continue;
                }
                if let Some(s) = self.status(i).await {
                    if s["role"] == "leader" {
                        return i;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader within {within:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn put(&self, i: usize, key: &str, value: Value, rid: &str) -> (u16, Value) {
        self.send(
            self.client
                .put(format!("{}/kv/{key}", self.nodes[i].url()))
                .json(&json!({"value": value, "request_id": rid})),
        )
        .await
    }

    pub async fn cas(
        &self,
        i: usize,
        key: &str,
        from: Value,
        to: Value,
        rid: &str,
    ) -> (u16, Value) {
        self.send(
            self.client
                .post(format!("{}/kv/{key}/cas", self.nodes[i].url()))
                .json(&json!({"from": from, "to": to, "request_id": rid})),
        )
        .await
    }

    pub async fn append(&self, i: usize, key: &str, value: Value, rid: &str) -> (u16, Value) {
        self.send(
            self.client
                .post(format!("{}/kv/{key}/append", self.nodes[i].url()))
                .json(&json!({"value": value, "request_id": rid})),
        )
        .await
    }

    pub async fn get(&self, i: usize, key: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}/kv/{key}", self.nodes[i].url())))
            .await
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value) {
        match rb.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, json!({"error": e.to_string()})),
        }
    }
}

/// A TCP proxy on one directed link that can be cut: while cut, new connections are closed at
/// once and open ones are closed at their next byte.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Must be called inside a tokio runtime.
    pub fn start(target: u16) -> Proxy {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        std_l.set_nonblocking(true).unwrap();
        let port = std_l.local_addr().unwrap().port();
        let l = tokio::net::TcpListener::from_std(std_l).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let cut2 = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = l.accept().await {
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let cut3 = cut2.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::select! {
                        _ = pipe(ri, wo, cut3.clone()) => {},
                        _ = pipe(ro, wi, cut3) => {},
                    }
                });
            }
        });
        Proxy { port, cut, task }
    }

    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) || w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Cluster {
    /// Like [`Cluster::new`], but every directed link i→j goes through a [`Proxy`]
    /// (`proxies[i][j]`), so links can be cut. Must be called inside a tokio runtime.
    pub fn with_proxies(n: usize, extra: &[&str]) -> (Cluster, Vec<Vec<Option<Proxy>>>) {
        let mut c = Cluster::new(n, extra);
        let mut proxies: Vec<Vec<Option<Proxy>>> = Vec::new();
        for i in 0..n {
            let mut row = Vec::new();
            for j in 0..n {
                row.push((i != j).then(|| Proxy::start(c.nodes[j].port)));
            }
            proxies.push(row);
        }
        for i in 0..n {
            for j in 0..n {
                if let Some(p) = &proxies[i][j] {
                    let want = format!("n{}=http://127.0.0.1:{}", j + 1, c.nodes[j].port);
                    let pos = c.nodes[i].args.iter().position(|a| *a == want).unwrap();
                    c.nodes[i].args[pos] = format!("n{}=http://127.0.0.1:{}", j + 1, p.port);
                }
            }
        }
        (c, proxies)
    }
}

pub fn wal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("wal.log")
}
