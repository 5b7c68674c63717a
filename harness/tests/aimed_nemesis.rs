//! The aimed nemesis against real nodes: `kill-leader` kills the member that `/status` names
//! leader, within a bound after its election, again and again; and the end-of-run cluster
//! checks fail runs whose members exit on their own or never catch up (exit code 3).

use serde_json::Value;
use splitbrain::cluster::Cluster;
use splitbrain::nemesis::kind;
use splitbrain::net::proxy::ProxyNet;
use splitbrain::recorder::Recorder;
use splitbrain::sut::splitbrain::Splitbrain;
use splitbrain::sut::Target;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bound between the harness's own poller first seeing a leader and its kill (the fault
/// polls every 10 ms and waits at most 60 ms; the rest is slack for a loaded 2-core machine).
const WITHIN_MS: u64 = 800;

#[test]
fn kill_leader_kills_each_new_leader_soon_after_its_election() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
        let target: Arc<dyn Target> = Arc::new(Splitbrain {
            exe: PathBuf::from(env!("CARGO_BIN_EXE_splitbrain")),
        });
        let net = Arc::new(ProxyNet::start(&ids, true, 5).await.unwrap());
        let cluster = Arc::new(Cluster::new(target, net, &ids, dir.path(), "tok", &[], 5).unwrap());
        cluster.start_all().unwrap();
        cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
        let recorder = Recorder::create(&dir.path().join("h.jsonl"), Instant::now(), true).unwrap();
        let t0 = recorder.start();

        // An independent observer: when each (member, term) was first seen leading.
        let seen: Arc<Mutex<BTreeMap<(String, u64), u64>>> = Default::default();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let observer = {
            let (cluster, seen, mut stop) = (cluster.clone(), seen.clone(), stop_rx.clone());
            tokio::spawn(async move {
                while !*stop.borrow_and_update() {
                    for (id, s) in cluster.statuses(Duration::from_millis(200)).await {
                        if s.role.as_deref() == Some("leader") {
                            let at = t0.elapsed().as_millis() as u64;
                            seen.lock()
                                .unwrap()
                                .entry((id, s.term.unwrap_or(0)))
                                .or_insert(at);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };

        let mut rng = rand::SeedableRng::seed_from_u64(1);
        let fault = kind("kill-leader").unwrap().plan(&ids, &mut rng);
        let mut stop = stop_rx.clone();
        let started = fault.start(&cluster).await;
        assert!(started.error.is_none(), "{:?}", started.error);
        let held = fault
            .hold(
                &cluster,
                &recorder,
                Instant::now() + Duration::from_secs(5),
                &mut stop,
            )
            .await;
        fault.stop(&cluster).unwrap();
        stop_tx.send_replace(true);
        observer.await.unwrap();
        cluster.stop_all();

        let kills: Vec<(u64, String, u64)> = recorder
            .events()
            .iter()
            .filter(|e| e.f == "aim-kill")
            .map(|e| {
                let v: &Value = &e.value;
                (
                    e.time / 1_000_000,
                    v["node"].as_str().unwrap().to_string(),
                    v["term"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(held.rounds, kills.len());
        assert!(
            kills.len() >= 3,
            "only {} leader kills in 5 s: {kills:?}",
            kills.len()
        );
        assert!(
            kills.windows(2).all(|w| w[0].2 < w[1].2),
            "each kill is of a newer term: {kills:?}"
        );
        let seen = seen.lock().unwrap();
        let mut close = 0;
        for (at, node, term) in &kills {
            match seen.get(&(node.clone(), *term)) {
                // The observer saw this member lead this term; the kill came soon after.
                Some(first) => {
                    assert!(
                        *at + 50 >= *first,
                        "{node} killed at {at} ms before it led term {term} ({first} ms)"
                    );
                    if at - first.min(at) <= WITHIN_MS {
                        close += 1;
                    }
                }
                // A leader killed before the observer's next poll: the kill was at least as
                // fast as the bound.
                None => close += 1,
            }
        }
        // The observer must have seen most leaders at all, or it checks nothing.
        let observed = kills
            .iter()
            .filter(|(_, n, t)| seen.contains_key(&(n.clone(), *t)))
            .count();
        assert!(
            observed * 2 >= kills.len(),
            "observer saw {observed} of {kills:?}: {seen:?}"
        );
        assert_eq!(close, kills.len(), "kills {kills:?}, first seen {seen:?}");
    });
}

fn cmd_run(script: &str, name: &str) -> (i32, String, Value) {
    let results = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_splitbrain");
    // Positional parameters carry the placeholders ({peers} must be a word of its own).
    let template = format!(
        "sh -c 'id=$1; listen=$2; dd=$3; tok=$4; shift 4; {script} exec {bin} node --id $id --listen $listen --data-dir $dd --cluster-token $tok \"$@\"' sh {{id}} {{listen}} {{data-dir}} {{token}} {{peers}}"
    );
    let out = Command::new(bin)
        .args(["test", "--target", "cmd", "--node-cmd", &template])
        .args(["--nemesis", "none", "--nodes", "3", "--time-limit", "5"])
        .args(["--recovery-time", "2", "--seed", "3", "--name", name])
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let dir = std::fs::canonicalize(results.path().join("latest")).unwrap();
    let results_json = read_json(&dir.join("results.json"));
    (out.status.code().unwrap_or(-1), stdout, results_json)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn findings(r: &Value) -> Vec<(String, String)> {
    r["cluster_check"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["member"].as_str().unwrap().to_string(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_member_that_exits_on_its_own_fails_the_run_with_exit_3() {
    // n3 is sent SIGTERM 3 s in: it exits cleanly (status 0), but nobody asked it to.
    let (code, stdout, r) = cmd_run(
        "if [ $id = n3 ]; then (sleep 3; kill -TERM $$) & fi;",
        "exits",
    );
    assert_eq!(r["valid"], true, "{stdout}");
    assert_eq!(
        findings(&r),
        vec![("n3".into(), "exited".into())],
        "{stdout}"
    );
    assert!(
        stdout.contains("cluster check       FAILED: n3 exited"),
        "{stdout}"
    );
    assert_eq!(code, 3, "{stdout}");
}

#[test]
fn a_member_that_never_catches_up_fails_the_run_with_exit_3() {
    // n3 has the wrong cluster token: it answers /status but every AppendEntries to it is
    // refused, so it never catches up.
    let (code, stdout, r) = cmd_run("if [ $id = n3 ]; then tok=wrong; fi;", "behind");
    assert_eq!(r["valid"], true, "{stdout}");
    assert_eq!(
        findings(&r),
        vec![("n3".into(), "behind".into())],
        "{stdout}"
    );
    assert_eq!(code, 3, "{stdout}");
}

#[test]
fn converged_members_pass_the_cluster_check() {
    let (code, stdout, r) = cmd_run("", "converged");
    assert_eq!(findings(&r), vec![], "{stdout}");
    assert_eq!(r["cluster_check"]["statuses"].as_object().unwrap().len(), 3);
    let digests: Vec<&Value> = r["cluster_check"]["statuses"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| &s["sm_digest"])
        .collect();
    assert!(digests[0].is_string() && digests.iter().all(|d| *d == digests[0]));
    assert_eq!(code, 0, "{stdout}");
}
