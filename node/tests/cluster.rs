//! Real `splitbrain-node` processes on loopback: election, the client API through any node,
//! failover after SIGKILL, catch-up, durability of acknowledged writes, torn-tail recovery,
//! and the server-level bugs on demand.

#![allow(clippy::needless_range_loop)]

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{wal_path, Cluster};

const FAST: &[&str] = &["--request-timeout", "1000"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_and_serve_writes_reads_and_cas_through_any_node() {
    let mut c = Cluster::new(3, FAST);
    c.start_all();
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    // Every node agrees on who leads.
    let lid = c.nodes[leader].id.clone();
    let deadline = Instant::now() + Duration::from_secs(3);
    for i in 0..3 {
        loop {
            let s = c.status(i).await.unwrap_or_default();
            if s["leader"] == json!(lid) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} does not know leader {lid}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for i in 0..3 {
        let key = format!("k{i}");
        assert_eq!(
            c.put(i, &key, json!(i), &format!("w{i}-1")).await.0,
            200,
            "{}",
            c.logs()
        );
        for j in 0..3 {
            assert_eq!(c.get(j, &key).await, (200, json!({"value": i})));
        }
    }
    assert_eq!(
        c.get((leader + 1) % 3, "absent").await,
        (200, json!({"value": null}))
    );
    // cas through a follower: success, then mismatch with the current value.
    let f = (leader + 1) % 3;
    assert_eq!(c.cas(f, "k0", json!(0), json!(10), "c1-1").await.0, 200);
    let (st, body) = c.cas(f, "k0", json!(0), json!(11), "c1-2").await;
    assert_eq!(st, 409, "{body}");
    assert_eq!(body["error"], "cas-mismatch");
    assert_eq!(body["current"], json!(10));
    assert_eq!(c.get(leader, "k0").await, (200, json!({"value": 10})));
    // append through a follower (forwarded like a write), its retry deduplicated.
    assert_eq!(c.append(f, "l", json!("a"), "c1-3").await.0, 200);
    assert_eq!(c.append(f, "l", json!("a"), "c1-3").await.0, 200);
    assert_eq!(c.append(f, "l", json!("b"), "c1-4").await.0, 200);
    let (st, body) = c.append(f, "k0", json!(1), "c1-5").await;
    assert_eq!((st, &body["error"]), (409, &json!("not-a-list")), "{body}");
    for j in 0..3 {
        assert_eq!(c.get(j, "l").await, (200, json!({"value": ["a", "b"]})));
    }
    // Status reports the peers' match index on the leader.
    let s = c.status(leader).await.unwrap();
    assert_eq!(s["role"], "leader");
    assert_eq!(s["peers"].as_array().map(Vec::len), Some(2), "{s}");
    assert!(s["applied"].as_u64().unwrap() >= 5, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_after_the_same_writes_report_the_same_sm_digest() {
    let mut c = Cluster::new(3, FAST);
    c.start_all();
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    for i in 0..20 {
        let (st, b) = c
            .put(
                i % 3,
                &format!("k{}", i % 7),
                json!(i),
                &format!("d{}-{i}", i % 2),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    assert_eq!(c.append(leader, "l", json!(1), "d9-1").await.0, 200);
    // Wait until all three have applied the leader's commit index; then compare digests.
    let digests = |want: u64| {
        let c = &c;
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let mut ds = Vec::new();
                for i in 0..3 {
                    let s = c.status(i).await.unwrap_or_default();
                    if s["applied_index"].as_u64() == Some(want) {
                        assert_eq!(s["applied"], s["applied_index"], "{s}");
                        ds.push(s["sm_digest"].as_str().unwrap().to_string());
                    }
                }
                if ds.len() == 3 {
                    return ds;
                }
                assert!(Instant::now() < deadline, "not all applied {want}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let commit = c.status(leader).await.unwrap()["commit"].as_u64().unwrap();
    let ds = digests(commit).await;
    assert!(ds.iter().all(|d| d == &ds[0]), "digests differ: {ds:?}");
    // One more write (a different state): a different digest, again equal everywhere.
    assert_eq!(c.put(leader, "k0", json!("new"), "d0-99").await.0, 200);
    let commit2 = c.status(leader).await.unwrap()["commit"].as_u64().unwrap();
    let ds2 = digests(commit2).await;
    assert!(ds2.iter().all(|d| d == &ds2[0]), "digests differ: {ds2:?}");
    assert_ne!(ds2[0], ds[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_serves_writes_within_a_second_of_sigkill_and_the_old_one_catches_up() {
    let mut c = Cluster::new(3, FAST);
    c.start_all();
    let old = c.wait_leader(Duration::from_secs(5)).await;
    for i in 0..20 {
        assert_eq!(
            c.put(old, &format!("a{i}"), json!(i), &format!("a-{i}"))
                .await
                .0,
            200
        );
    }
    assert_eq!(c.put(old, "d", json!(1), "d-1").await.0, 200);
    c.nodes[old].kill9();
    let killed = Instant::now();
    let other = (old + 1) % 3;
    let mut seq = 0;
    loop {
        seq += 1;
        let (st, _) = c.put(other, "after", json!(seq), &format!("b-{seq}")).await;
        if st == 200 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "no write after failover\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(1), "failover took {took:?}");
    let new = c.wait_leader(Duration::from_secs(2)).await;
    assert_ne!(new, old);
    // A retry of a write acknowledged by the old leader is not applied again by the new one.
    assert_eq!(c.put(new, "d", json!(99), "d-1").await.0, 200);
    assert_eq!(c.get(new, "d").await, (200, json!({"value": 1})));
    for i in 0..20 {
        assert_eq!(
            c.put(new, &format!("c{i}"), json!(i), &format!("c-{i}"))
                .await
                .0,
            200
        );
    }
    // The old leader restarts on its data dir and catches up.
    c.nodes[old].start();
    let target = c.status(new).await.unwrap()["commit"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = c.status(old).await {
            if s["applied"].as_u64().unwrap_or(0) >= target {
                assert_eq!(s["role"], "follower", "{s}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "old leader did not catch up\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.get(old, "c19").await, (200, json!({"value": 19})));
    assert_eq!(c.get(old, "after").await, (200, json!({"value": seq})));
}

/// Issue 12.2: a follower behind on large values catches up (byte-capped batches, base64
/// data, heartbeats on a lane of their own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_100_writes_of_900_kb_catches_up_within_10_s() {
    catch_up_after_large_writes(&["--request-timeout", "5000"]).await;
}

/// The same through a snapshot of about 9 MB (10 keys of 900 KB), sent in 1 MiB chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_a_9_mb_snapshot_catches_up_in_chunks_within_10_s() {
    let c =
        catch_up_after_large_writes(&["--request-timeout", "5000", "--snapshot-every", "30"]).await;
    let s = c.logs();
    assert!(s.contains("installed snapshot"), "{s}");
}

async fn catch_up_after_large_writes(args: &[&str]) -> Cluster {
    let mut c = Cluster::new(3, args);
    c.start_all();
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    let lagging = (leader + 1) % 3;
    c.nodes[lagging].kill9();
    let big = "v".repeat(900_000);
    for i in 0..100 {
        let (st, b) = c
            .put(
                leader,
                &format!("big{}", i % 10),
                json!(format!("{i}{big}")),
                &format!("g-{i}"),
            )
            .await;
        assert_eq!(
            st,
            200,
            "write {i}: {b}
{}",
            c.logs()
        );
    }
    let target = c.status(leader).await.unwrap()["commit"].as_u64().unwrap();
    c.nodes[lagging].start();
    let restarted = Instant::now();
    loop {
        if let Some(s) = c.status(lagging).await {
            if s["applied"].as_u64().unwrap_or(0) >= target {
                break;
            }
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "the follower did not catch up within 10 s: {:?}\n{}",
            c.status(lagging).await,
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "caught up {target} entries of 900 KB in {:?}",
        restarted.elapsed()
    );
    let (st, b) = c.get(lagging, "big9").await;
    assert_eq!(st, 200);
    assert!(b["value"].as_str().unwrap().starts_with("99v"));
    assert!(!c.logs().contains("status=413"), "{}", c.logs());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_far_behind_catches_up_through_a_snapshot() {
    let mut c = Cluster::new(3, &["--request-timeout", "1000", "--snapshot-every", "20"]);
    c.start_all();
    let l = c.wait_leader(Duration::from_secs(5)).await;
    let f = (l + 1) % 3;
    c.nodes[f].kill9();
    for i in 0..100 {
        let (st, b) = c
            .put(l, &format!("s{i}"), json!(i), &format!("s-{i}"))
            .await;
        assert_eq!(st, 200, "{b}");
    }
    let s = c.status(l).await.unwrap();
    assert!(
        s["snapshot_index"].as_u64().unwrap() >= 80,
        "leader did not compact: {s}"
    );
    c.nodes[f].start();
    let target = s["commit"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = c.status(f).await {
            if s["applied"].as_u64().unwrap_or(0) >= target {
                assert!(s["snapshot_index"].as_u64().unwrap() >= 80, "{s}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "follower did not catch up\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(c.nodes[f].data_dir.join("snapshot.bin").exists());
    // The follower restarts from the installed snapshot and still has everything.
    c.nodes[f].kill9();
    c.nodes[f].start();
    c.nodes[l].kill9();
    let l2 = c.wait_leader(Duration::from_secs(5)).await;
    assert_ne!(l2, l);
    for i in 0..100 {
        assert_eq!(c.get(f, &format!("s{i}")).await, (200, json!({"value": i})));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_serves_no_stale_read_and_rolls_back_its_write_on_heal() {
    let (mut c, proxies) = Cluster::with_proxies(3, FAST);
    c.start_all();
    let old = c.wait_leader(Duration::from_secs(5)).await;
    assert_eq!(c.put(old, "k", json!(1), "a-1").await.0, 200);
    let cut = |on: bool| {
        for i in 0..3 {
            for j in 0..3 {
                if i == old || j == old {
                    if let Some(p) = &proxies[i][j] {
                        p.set_cut(on);
                    }
                }
            }
        }
    };
    cut(true);
    // The majority side elects a new leader and commits a new value.
    let deadline = Instant::now() + Duration::from_secs(5);
    let other = (old + 1) % 3;
    let mut n = 0;
    loop {
        n += 1;
        if c.put(other, "k", json!(2), &format!("b-{n}")).await.0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "majority never served\n{}",
            c.logs()
        );
    }
    // The isolated old leader must not serve the old value nor acknowledge a write.
    let (st, body) = c.get(old, "k").await;
    assert_eq!(st, 503, "isolated node answered a read: {body}");
    assert_eq!(body["definite"], json!(true));
    let (st, body) = c.put(old, "k", json!(3), "z-1").await;
    assert!(
        st == 503 || st == 504,
        "isolated node acknowledged a write: {st} {body}"
    );
    cut(false);
    // On heal the old leader follows and holds the majority's value, not its own write.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = c.status(old).await.unwrap_or_default();
        if s["role"] == "follower" && s["leader"].is_string() {
            let (st, body) = c.get(old, "k").await;
            if st == 200 {
                assert_eq!(body, json!({"value": 2}));
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "old leader did not rejoin: {s}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_replaced_and_follows_after_it_resumes() {
    let mut c = Cluster::new(3, FAST);
    c.start_all();
    let old = c.wait_leader(Duration::from_secs(5)).await;
    assert_eq!(c.put(old, "p", json!(1), "p-1").await.0, 200);
    c.nodes[old].signal(libc::SIGSTOP);
    let other = (old + 1) % 3;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 1;
    loop {
        n += 1;
        if c.put(other, "p", json!(2), &format!("p-{n}")).await.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no new leader\n{}", c.logs());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.nodes[old].signal(libc::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = c.status(old).await.unwrap_or_default();
        if s["role"] == "follower"
            && s["leader"].is_string()
            && s["leader"] != json!(c.nodes[old].id)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resumed leader did not follow: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.get(old, "p").await, (200, json!({"value": 2})));
}

/// Writers on distinct keys; every acknowledged one must be read back after SIGKILL of all
/// nodes and a restart.
async fn acknowledged_writes(
    c: &Arc<Cluster>,
    writers: usize,
    for_: Duration,
) -> BTreeMap<String, Value> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let end = Instant::now() + for_;
            let mut i = 0;
            while Instant::now() < end {
                i += 1;
                let key = format!("w{w}-{i}");
                let (st, _) = c.put(i % 3, &key, json!(i), &format!("w{w}-{i}")).await;
                if st == 200 {
                    acked.push((key, json!(i)));
                }
            }
            acked
        }));
    }
    let mut all = BTreeMap::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill_of_all_nodes_and_a_restart() {
    let mut c = Cluster::new(3, &["--request-timeout", "1000", "--snapshot-every", "150"]);
    c.start_all();
    c.wait_leader(Duration::from_secs(5)).await;
    let c = Arc::new(c);
    let acked = acknowledged_writes(&c, 6, Duration::from_millis(2000)).await;
    assert!(
        acked.len() > 50,
        "too few writes acknowledged: {}",
        acked.len()
    );
    let mut c = Arc::try_unwrap(c).ok().expect("writers finished");
    assert_eq!(c.put(0, "fin", json!(1), "fin-1").await.0, 200);
    for n in &mut c.nodes {
        n.kill9();
    }
    // Snapshots were taken (snapshot-every 150) so recovery goes through them too.
    assert!(c
        .nodes
        .iter()
        .any(|n| n.data_dir.join("snapshot.bin").exists()));
    c.start_all();
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    for (k, v) in &acked {
        let (st, body) = c.get(leader, k).await;
        assert_eq!(
            (st, &body["value"]),
            (200, v),
            "acknowledged write of {k} lost\n{}",
            c.logs()
        );
    }
    // A retry of an acknowledged write after the restart (and snapshot) is not applied again.
    assert_eq!(c.put(leader, "fin", json!("again"), "fin-1").await.0, 200);
    assert_eq!(c.get(leader, "fin").await, (200, json!({"value": 1})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_wal_tail_is_dropped_and_the_node_serves_after_restart() {
    let mut c = Cluster::new(3, FAST);
    c.start_all();
    let l = c.wait_leader(Duration::from_secs(5)).await;
    for i in 0..10 {
        assert_eq!(
            c.put(l, &format!("t{i}"), json!(i), &format!("t-{i}"))
                .await
                .0,
            200
        );
    }
    for n in &mut c.nodes {
        n.kill9();
    }
    // A record header that promises 200 bytes, followed by only 13 of them: a torn append.
    for n in &c.nodes {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(wal_path(&n.data_dir))
            .unwrap();
        let mut rec = splitbrain_node::wal::record_header(200, 0xdead_beef).to_vec();
        rec.extend_from_slice(b"partial write");
        f.write_all(&rec).unwrap();
    }
    c.start_all();
    let l = c.wait_leader(Duration::from_secs(5)).await;
    for i in 0..10 {
        assert_eq!(c.get(l, &format!("t{i}")).await, (200, json!({"value": i})));
    }
    assert_eq!(c.put(l, "t10", json!(10), "t-10").await.0, 200);
    assert!(c.logs().contains("torn tail"), "{}", c.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_before_the_wal_tail_stops_the_node_with_file_and_offset() {
    let mut c = Cluster::new(1, &[]);
    c.start_all();
    c.wait_leader(Duration::from_secs(5)).await;
    for i in 0..5 {
        assert_eq!(
            c.put(0, &format!("d{i}"), json!(i), &format!("d-{i}"))
                .await
                .0,
            200
        );
    }
    c.nodes[0].kill9();
    let p = wal_path(&c.nodes[0].data_dir);
    let mut bytes = std::fs::read(&p).unwrap();
    assert!(bytes.len() > 100);
    bytes[20] ^= 0xff; // inside the first records
    std::fs::write(&p, &bytes).unwrap();
    c.nodes[0].start();
    let st = c.nodes[0]
        .wait_exit(Duration::from_secs(5))
        .expect("node must refuse to start");
    assert!(!st.success());
    // The form a harness greps: `refused data: FILE@OFFSET: reason`.
    let log = c.nodes[0].log_text();
    let want = format!("refused data: {}@0: ", p.display());
    assert!(log.contains(&want), "{log}");
}

/// Issue 12's reproduction: one byte of record #2's length field changed. The correct node
/// refuses to start naming file and offset; `--bug torn-tail-any-damage` starts and has lost
/// every acknowledged write after the damage (and its term and vote).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_length_field_is_refused_and_the_bug_mode_silently_loses_the_writes() {
    let mut c = Cluster::new(1, &[]);
    c.start_all();
    c.wait_leader(Duration::from_secs(5)).await;
    for i in 0..5 {
        let (st, _) = c
            .put(0, &format!("d{i}"), json!(i), &format!("d-{i}"))
            .await;
        assert_eq!(st, 200);
    }
    c.nodes[0].signal(libc::SIGTERM);
    assert!(c.nodes[0].wait_exit(Duration::from_secs(5)).is_some());
    let p = wal_path(&c.nodes[0].data_dir);
    let mut bytes = std::fs::read(&p).unwrap();
    let first_len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let rec2 = splitbrain_node::wal::HEADER + first_len;
    bytes[rec2 + 2] ^= 0x01; // the length grows by 64 KiB: past the end of the file
    std::fs::write(&p, &bytes).unwrap();

    c.nodes[0].start();
    let st = c.nodes[0]
        .wait_exit(Duration::from_secs(5))
        .expect("the correct node must refuse to start");
    assert!(!st.success());
    let want = format!("refused data: {}@{rec2}: ", p.display());
    assert!(c.nodes[0].log_text().contains(&want), "{}", c.logs());
    assert_eq!(
        std::fs::read(&p).unwrap(),
        bytes,
        "the refused log is left as it was"
    );

    c.nodes[0]
        .args
        .extend(["--bug".to_string(), "torn-tail-any-damage".to_string()]);
    c.nodes[0].start();
    c.wait_leader(Duration::from_secs(5)).await;
    let mut lost = 0;
    for i in 0..5 {
        let (st, b) = c.get(0, &format!("d{i}")).await;
        assert_eq!(st, 200);
        if b["value"].is_null() {
            lost += 1;
        }
    }
    assert!(
        lost >= 4,
        "the bug mode should lose the writes after record #2 (lost {lost})"
    );
    assert!(c.logs().contains("torn tail"), "{}", c.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_node_cleanly() {
    let mut c = Cluster::new(1, &[]);
    c.start_all();
    c.wait_leader(Duration::from_secs(5)).await;
    assert_eq!(c.put(0, "x", json!(1), "x-1").await.0, 200);
    c.nodes[0].signal(libc::SIGTERM);
    let st = c.nodes[0]
        .wait_exit(Duration::from_secs(5))
        .expect("exits on SIGTERM");
    assert!(st.success(), "{st:?}\n{}", c.logs());
    c.nodes[0].start();
    c.wait_leader(Duration::from_secs(5)).await;
    assert_eq!(c.get(0, "x").await, (200, json!({"value": 1})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_before_commit_bug_acknowledges_writes_no_quorum_has() {
    for bug in [false, true] {
        let mut extra = vec!["--request-timeout", "600"];
        if bug {
            extra.extend(["--bug", "ack-before-commit"]);
        }
        let mut c = Cluster::new(3, &extra);
        c.start_all();
        let l = c.wait_leader(Duration::from_secs(5)).await;
        assert_eq!(c.put(l, "k", json!(1), "a-1").await.0, 200);
        // Freeze both followers: nothing can commit any more.
        for i in 0..3 {
            if i != l {
                c.nodes[i].signal(libc::SIGSTOP);
            }
        }
        let (st, body) = c.put(l, "k", json!(2), "a-2").await;
        if bug {
            assert_eq!(st, 200, "bug on: acknowledged at once: {body}");
        } else {
            assert_eq!(
                st, 504,
                "bug off: not acknowledged without a quorum: {body}"
            );
            assert_eq!(body["definite"], json!(false));
        }
        for i in 0..3 {
            c.nodes[i].signal(libc::SIGCONT);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_read_bug_serves_reads_without_a_leader() {
    for bug in [false, true] {
        let mut extra = vec!["--request-timeout", "500"];
        if bug {
            extra.extend(["--bug", "stale-read"]);
        }
        // Only n1 of three runs: it can never be confirmed as leader.
        let mut c = Cluster::new(3, &extra);
        c.nodes[0].start();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (st, body) = c.get(0, "k").await;
        if bug {
            assert_eq!((st, body), (200, json!({"value": null})));
        } else {
            assert_eq!(st, 503, "{body}");
            assert_eq!(body["definite"], json!(true));
        }
    }
}

/// Peak resident memory of a process, from `/proc/PID/status` (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Sends `POST path` with a declared body of `len` bytes, writing as much of it as the node
/// takes (giving up when it stops reading for 2 s or closes); returns the status line.
fn post_huge(port: u16, path: &str, token: Option<&str>, len: u64) -> (String, u64) {
    use std::io::{BufRead, BufReader};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tok = token.map_or(String::new(), |t| format!("x-splitbrain-token: {t}\r\n"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{tok}content-length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'['; 1 << 20];
    let mut sent = 0u64;
    while sent < len {
        match s.write(&chunk[..chunk.len().min((len - sent) as usize)]) {
            Ok(n) => sent += n as u64,
            Err(_) => break,
        }
    }
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
    (line, sent)
}

/// Issue 12.3: the token is checked before the body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_body_without_the_token_is_refused_unread_and_rss_stays_under_100_mib() {
    let mut c = Cluster::new(1, &[]);
    c.start_all();
    c.wait_leader(Duration::from_secs(5)).await;
    let pid = c.nodes[0].child.as_ref().unwrap().id();
    let port = c.nodes[0].port;
    let before = peak_rss_kib(pid);
    let (line, sent) =
        tokio::task::spawn_blocking(move || post_huge(port, "/raft/append", None, 200 << 20))
            .await
            .unwrap();
    let after = peak_rss_kib(pid);
    eprintln!(
        "status {line:?}; {sent} of {} bytes taken; peak RSS {before} → {after} KiB",
        200u64 << 20
    );
    assert!(line.contains(" 401 "), "{line:?}");
    assert!(after < 100 * 1024, "peak RSS {after} KiB");
    assert!(
        sent < 100 << 20,
        "the node read {sent} bytes of a refused body"
    );
    // With the token, a body over the route's limit is refused from its declared length.
    let (line, _) = tokio::task::spawn_blocking(move || {
        post_huge(port, "/raft/append", Some("test-token"), 200 << 20)
    })
    .await
    .unwrap();
    assert!(line.contains(" 413 "), "{line:?}");
    assert!(peak_rss_kib(pid) < 100 * 1024);
    // The node still serves.
    assert_eq!(c.put(0, "k", json!(1), "r-1").await.0, 200);
}
