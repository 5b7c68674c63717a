//! Shared by the node end-to-end test and the bench example: a local cluster of
//! `splitbrain-node` processes (data directories on fault mounts or plain directories) and a
//! tiny blocking HTTP/1.1 client (keep-alive, deadlines on every socket operation).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `$SPLITBRAIN_NODE_BIN`, else `target/release/splitbrain-node` (or under `$CARGO_TARGET_DIR`).
pub fn node_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SPLITBRAIN_NODE_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("release/splitbrain-node");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release -p splitbrain-node` first",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Cluster {
    pub addrs: Vec<String>,
    pub data_dirs: Vec<PathBuf>,
    pub logs: PathBuf,
    pub extra_args: Vec<String>,
    procs: Vec<Option<Child>>,
}

impl Cluster {
    /// Starts one node per data directory.
    pub fn start(data_dirs: Vec<PathBuf>, logs: &Path, extra_args: &[&str]) -> Cluster {
        std::fs::create_dir_all(logs).unwrap();
        let addrs = data_dirs
            .iter()
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut c = Cluster {
            addrs,
            procs: data_dirs.iter().map(|_| None).collect(),
            data_dirs,
            logs: logs.to_path_buf(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..c.addrs.len() {
            c.start_node(i);
        }
        c
    }

    pub fn start_node(&mut self, i: usize) {
        let mut cmd = Command::new(node_binary());
        cmd.arg("--id")
            .arg(format!("n{}", i + 1))
            .arg("--listen")
            .arg(&self.addrs[i])
            .arg("--data-dir")
            .arg(&self.data_dirs[i]);
        for (j, a) in self.addrs.iter().enumerate() {
            if j != i {
                cmd.arg("--peer").arg(format!("n{}=http://{a}", j + 1));
            }
        }
        cmd.args(&self.extra_args);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("n{}.log", i + 1)))
            .unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.procs[i] = Some(cmd.spawn().expect("start splitbrain-node"));
    }

    /// SIGKILL and reap.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    /// Whether every node process is still running.
    pub fn all_running(&mut self) -> bool {
        self.procs.iter_mut().all(|p| {
            p.as_mut()
                .is_some_and(|p| p.try_wait().ok().flatten().is_none())
        })
    }

    pub fn log_tail(&self, i: usize) -> String {
        let s =
            std::fs::read_to_string(self.logs.join(format!("n{}.log", i + 1))).unwrap_or_default();
        s.lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill_node(i);
        }
    }
}

/// One keep-alive HTTP/1.1 connection; reconnects after an error.
pub struct Http {
    addr: String,
    conn: Option<BufReader<TcpStream>>,
    timeout: Duration,
}

impl Http {
    pub fn new(addr: &str, timeout: Duration) -> Http {
        Http {
            addr: addr.to_string(),
            conn: None,
            timeout,
        }
    }

    /// Sends a request; returns (status, body). Errors are I/O errors and timeouts.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let r = self.try_request(method, path, body);
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        if self.conn.is_none() {
            let addr = self.addr.parse().map_err(std::io::Error::other)?;
            let s = TcpStream::connect_timeout(&addr, self.timeout)?;
            s.set_read_timeout(Some(self.timeout))?;
            s.set_write_timeout(Some(self.timeout))?;
            s.set_nodelay(true)?;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        conn.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        conn.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut len = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            conn.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().map_err(std::io::Error::other)?;
            }
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let mut buf = vec![0u8; len];
        conn.read_exact(&mut buf)?;
        if close {
            self.conn = None;
        }
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}

/// PUT until a 200 or the deadline: returns whether it was acknowledged.
pub fn put(c: &mut Http, key: &str, value: u64, request_id: &str, deadline: Instant) -> bool {
    let body = format!("{{\"value\": {value}, \"request_id\": \"{request_id}\"}}");
    while Instant::now() < deadline {
        match c.request("PUT", &format!("/kv/{key}"), &body) {
            Ok((200, _)) => return true,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

/// GET until a 200 or the deadline: the value (`None` for null).
pub fn get(c: &mut Http, key: &str, deadline: Instant) -> Option<Option<u64>> {
    while Instant::now() < deadline {
        if let Ok((200, body)) = c.request("GET", &format!("/kv/{key}"), "") {
            let v = body
                .split("\"value\":")
                .nth(1)
                .map(|s| s.trim_end_matches('}').trim().to_string())?;
            return Some(v.parse().ok());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}
