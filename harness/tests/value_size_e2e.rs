//! `--value-size`: end-to-end runs against the real node (three members, kills), the wire
//! checked from outside, and the flag's refusals.

use serde_json::Value;
use splitbrain_workloads::values::{Padding, SizeDist, ValueSize};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn splitbrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_splitbrain"))
}

/// `GET /kv/{key}` on `addr` with a plain HTTP/1.1 request: the answer's JSON body, if any.
fn get_kv(addr: &str, key: &str) -> Option<Value> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /kv/{key} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    // axum answers with a Content-Length (no chunking) for JSON bodies.
    serde_json::from_str(body).ok()
}

/// The listen addresses members logged (`starting node … listen=ADDR`) in `run/nodes/*.log`.
fn member_addrs(run: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for id in ["n1", "n2", "n3"] {
        let Ok(log) = std::fs::read_to_string(run.join("nodes").join(format!("{id}.log"))) else {
            continue;
        };
        // The last start (a restarted member logs it again).
        if let Some(addr) = log
            .lines()
            .rev()
            .filter(|l| l.contains("starting node"))
            .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("listen=")))
        {
            out.push(addr.to_string());
        }
    }
    out
}

/// The run directory `results/latest` points at, once it exists.
fn latest(results: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(results.join("latest")).ok()
}

#[test]
fn a_run_with_64kib_values_and_kills_is_valid_records_the_size_and_sends_values_that_big() {
    let results = tempfile::tempdir().unwrap();
    let seed = 5u64;
    let child = splitbrain()
        .args([
            "test",
            "--nodes",
            "3",
            "--time-limit",
            "12",
            "--nemesis",
            "kill",
            "--nemesis-interval",
            "2",
            "--recovery-time",
            "3",
            "--rate",
            "60",
            "--value-size",
            "64KiB",
            "--seed",
            &seed.to_string(),
            "--results",
        ])
        .arg(results.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While the run goes, read keys from outside through a member's client API: a value on
    // the wire must be 64 KiB of exactly the padding the run's seed gives.
    let padding = Padding::new(
        ValueSize {
            bytes: 65536,
            dist: SizeDist::Constant,
        },
        seed,
    );
    let t0 = Instant::now();
    let mut seen: Option<(String, usize, i64)> = None;
    while seen.is_none() && t0.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(300));
        let Some(run) = latest(results.path()) else {
            continue;
        };
        for addr in member_addrs(&run) {
            for key in ["k0", "k1"] {
                let Some(body) = get_kv(&addr, key) else {
                    continue;
                };
                if let Some(text) = body["value"].as_str() {
                    let v = padding
                        .verify(key, text)
                        .unwrap_or_else(|e| panic!("{key} on {addr}: {e}"));
                    seen = Some((key.to_string(), text.len(), v));
                }
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let (key, len, v) = seen.expect("no member answered a read of a written key during the run");
    assert_eq!(len, 65536, "{key} = {v}: the wire value's length");
    assert_eq!(out.status.code(), Some(0), "verdict not valid:\n{stdout}");

    let run = latest(results.path()).unwrap();
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["options"]["value_size"], 65536, "{test}");
    assert_eq!(test["options"]["value_size_dist"], "constant", "{test}");
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let events: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kills = events
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["f"] == "start-kill")
        .count();
    assert!(kills >= 1, "no kill struck:\n{stdout}");
    // The history keeps the logical integers, and reads saw written values.
    let ok_reads: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "ok" && e["f"] == "read" && !e["value"].is_null())
        .collect();
    assert!(!ok_reads.is_empty(), "no read saw a value:\n{stdout}");
    assert!(ok_reads.iter().all(|e| e["value"].is_i64()), "{ok_reads:?}");
    let results_json: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results_json["stats"]["corrupt_reads"], 0);
}

/// Runs `splitbrain test` with `args` (nothing should start); returns (exit code, stderr).
fn refused(args: &[&str]) -> (i32, String) {
    let results = tempfile::tempdir().unwrap();
    let out = splitbrain()
        .arg("test")
        .args(args)
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !results.path().join("latest").exists(),
        "a refused run made a run directory: {stderr}"
    );
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn bad_value_sizes_and_targets_that_cannot_carry_padding_are_refused_with_254() {
    let (code, err) = refused(&["--value-size", "12XB"]);
    assert_eq!(code, 254, "{err}");
    assert!(
        err.contains("--value-size \"12XB\"") && err.contains("64KiB"),
        "{err}"
    );
    let (code, err) = refused(&["--value-size", "1KiB", "--value-size-dist", "zipf"]);
    assert_eq!(code, 254, "{err}");
    assert!(err.contains("--value-size-dist \"zipf\""), "{err}");
    let (code, err) = refused(&["--value-size-dist", "uniform"]);
    assert_eq!(code, 254, "{err}");
    assert!(err.contains("needs --value-size"), "{err}");
    let (code, err) = refused(&[
        "--target",
        "maelstrom",
        "--node-cmd",
        "python3 node.py",
        "--value-size",
        "1KiB",
    ]);
    assert_eq!(code, 254, "{err}");
    assert!(err.contains("lin-kv values are integers"), "{err}");
    let (code, err) = refused(&["--target", "nats", "--value-size", "1KiB"]);
    assert_eq!(code, 254, "{err}");
    assert!(err.contains("--target nats"), "{err}");
}

/// Command lines of running processes that mention `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                out.push(cmd);
            }
        }
    }
    out
}

#[test]
fn reads_a_member_damaged_on_the_way_out_are_corrupt_reads_and_the_run_is_invalid() {
    // Members behind `fixtures/tamper_proxy.py`, which changes one byte of every third long
    // value it serves. The logical value (the `<v>:` prefix) is intact, so only the padding's
    // check can see it: without it the run would be valid.
    let results = tempfile::tempdir().unwrap();
    let proxy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tamper_proxy.py"
    );
    let template = format!(
        "python3 {proxy} {{listen}} {} node --id {{id}} {{peers}} --data-dir {{data-dir}} \
         --cluster-token {{token}}",
        env!("CARGO_BIN_EXE_splitbrain")
    );
    let out = splitbrain()
        .args([
            "test",
            "--target",
            "cmd",
            "--node-cmd",
            &template,
            "--nodes",
            "3",
            "--nemesis",
            "none",
            "--time-limit",
            "6",
            "--recovery-time",
            "1",
            "--value-size",
            "1KiB",
            "--seed",
            "2",
            "--results",
        ])
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "not invalid:\n{stdout}");
    assert!(stdout.contains("corrupt reads"), "{stdout}");
    let run = latest(results.path()).unwrap();
    let results_json: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let corrupt = results_json["stats"]["corrupt_reads"].as_u64().unwrap();
    assert!(corrupt > 0, "{}", results_json["stats"]);
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let recorded = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| {
            e["type"] == "ok"
                && e["f"] == "read"
                && e["value"] == splitbrain_workloads::values::CORRUPT
        })
        .count() as u64;
    assert_eq!(
        recorded, corrupt,
        "every corrupt read is in the history as CORRUPT"
    );
    // Neither the proxies nor the nodes behind them outlive the run.
    let left = processes_mentioning(&results.path().display().to_string());
    assert!(left.is_empty(), "left running: {left:?}");
}
