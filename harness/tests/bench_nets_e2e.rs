//! `splitbrain bench --net proxy,message`: the same target measured on two networks in one
//! run, the relay's messages per second given for the message network only; a network a
//! target cannot run on is a bad argument naming the flag.

use serde_json::Value;
use std::process::Command;

#[test]
fn bench_measures_the_proxy_and_the_message_relay_side_by_side() {
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
        .args([
            "bench",
            "--target",
            "splitbrain",
            "--net",
            "proxy,message",
            "--duration",
            "0.5",
            "--failovers",
            "1",
            "--json",
        ])
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["target"], "splitbrain@proxy");
    assert_eq!(rows[0]["net"], "proxy");
    assert_eq!(rows[1]["target"], "splitbrain@message");
    assert_eq!(rows[1]["net"], "message");
    for r in rows {
        assert!(r["throughput"]["16"].as_f64().unwrap() > 10.0, "{r}");
        assert_eq!(r["failover_s"].as_array().unwrap().len(), 1, "{r}");
    }
    assert!(
        rows[0]["relay_msgs_per_s"].as_object().unwrap().is_empty(),
        "the proxy has no relay: {}",
        rows[0]
    );
    // Writes at 16 clients travel as peer messages: the relay saw them.
    let relayed = rows[1]["relay_msgs_per_s"]["16"].as_f64().unwrap();
    assert!(relayed > 50.0, "{}", rows[1]);
}

#[test]
fn a_network_the_target_cannot_run_on_is_a_bad_argument() {
    for (target, net, says) in [
        ("etcd", "message", "--net message"),
        ("etcd", "proxy", "--net proxy"),
        ("splitbrain", "netns", "--net \"netns\""),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
            .args(["bench", "--target", target, "--net", net])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(254), "{target} {net}: {stderr}");
        assert!(stderr.contains(says), "{target} {net}: {stderr}");
    }
}
