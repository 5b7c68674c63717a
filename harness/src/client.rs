//! Clients: one worker per logical process, a rate limiter shared by all workers, and the
//! final reads.
//!
//! # Contract (DESIGN §1)
//! - A worker invokes one operation at a time, records the invocation, then the completion:
//!   `ok`, `fail` (definite error; any failed read) or `info` (unknown outcome).
//! - After an `info` the worker continues as a new process: `process + concurrency`
//!   (Jepsen's numbering), so every process id has at most one `info`, at its end.
//! - Writes carry request ids `c<process>-<seq>`.
//! - A worker bound to member `w mod n`; each request gives up after `--op-timeout`.
//! - The final phase reads every key any worker used, through every member in turn, retrying
//!   a failed read a few times (failed reads are `fail`, so retries are harmless).
//! - Read bursts (`--read-burst N`): when the harness sees a leader of a new term
//!   ([`LeaderChanges`], fed by the run-time monitor's and the aimed faults' `/status` rounds),
//!   every worker's next N operations are reads of the key it is working on, sent back to back
//!   without waiting for the rate limiter: reads land on the fresh leader before it has settled
//!   (Raft §6.4 and §8: a new leader must commit an entry of its term before it can serve them).

use crate::recorder::Recorder;
use crate::sut::{Client, Outcome};
use splitbrain_checker::history::{EventType, Process};
use splitbrain_workloads::{Completion, Generator, Op, Workload};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Spaces invocations across all workers at `rate` per second (0: no limit).
pub struct RateLimiter {
    period: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimiter {
    pub fn new(rate: f64) -> RateLimiter {
        let period = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        RateLimiter {
            period,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next slot.
    pub async fn acquire(&self) {
        let Some(period) = self.period else { return };
        let slot = {
            // Plain data behind the lock: a poisoned lock still holds a valid Instant.
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + period;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// Counts operations as they complete (for the progress bar).
#[derive(Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
    /// Reads of read bursts, invoked (see [`LeaderChanges`]).
    pub burst_reads: AtomicU64,
    /// Retries sent (`--retries`: the same request id again, through the next member), and
    /// the operations that were `ok` after one.
    pub retries: AtomicU64,
    pub ok_after_retry: AtomicU64,
}

/// Leader changes as the harness sees them: every round of `/status` answers it takes
/// ([`LeaderChanges::observe`]) counts a change when some member leads a term above every term
/// seen led before. Shared by the cluster (the monitor and the aimed faults observe) and the
/// workers (who start a read burst per change).
#[derive(Debug)]
pub struct LeaderChanges {
    top_term: AtomicU64,
    changes: watch::Sender<u64>,
}

impl Default for LeaderChanges {
    fn default() -> Self {
        LeaderChanges {
            top_term: AtomicU64::new(0),
            changes: watch::Sender::new(0),
        }
    }
}

impl LeaderChanges {
    /// Notes that a member reported leading `term`; true if that is a change (a term above
    /// every term seen led before).
    pub fn saw_leader(&self, term: u64) -> bool {
        let before = self.top_term.fetch_max(term, Ordering::Relaxed);
        if term > before {
            self.changes.send_modify(|c| *c += 1);
            true
        } else {
            false
        }
    }

    /// Notes the leaders among one round of `/status` answers.
    pub fn observe<'a>(&self, statuses: impl IntoIterator<Item = &'a crate::sut::MemberStatus>) {
        for s in statuses {
            if let (Some("leader"), Some(term)) = (s.role.as_deref(), s.term) {
                self.saw_leader(term);
            }
        }
    }

    /// How many changes were seen so far.
    pub fn count(&self) -> u64 {
        *self.changes.borrow()
    }

    /// A receiver that wakes at each change (its current count is marked seen).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Everything a worker needs.
pub struct Worker {
    pub index: usize,
    pub concurrency: usize,
    /// What the worker does and how its operations are recorded.
    pub workload: &'static dyn Workload,
    pub gen: Box<dyn Generator>,
    /// A client per member; this worker talks to `clients[index % n]`, retries go to the next.
    pub clients: Vec<Arc<dyn Client>>,
    /// Retries of an indefinite write or cas, with the same request id.
    pub retries: usize,
    /// Wait before retry `i`: `retry_backoff × i`.
    pub retry_backoff: Duration,
    pub recorder: Arc<Recorder>,
    pub limiter: Arc<RateLimiter>,
    pub counters: Arc<Counters>,
    pub op_timeout: Duration,
    /// `--duplicate-writes`: a network that duplicates requests (see [`Duplicate`]).
    pub duplicate: Option<Duplicate>,
    /// Where leader changes are counted, and how many reads each one starts (0: none).
    pub leader_changes: Arc<LeaderChanges>,
    pub read_burst: usize,
}

/// The client network's faults that a nemesis switches on and off (`dup-requests`), shared by
/// the cluster (which faults reach) and every worker.
#[derive(Debug, Default)]
pub struct ClientNet {
    /// The probability (f64 bits) that an answered write is sent again; 0 when no
    /// `dup-requests` fault holds.
    dup_probability: AtomicU64,
}

impl ClientNet {
    /// Sets the duplication probability of the `dup-requests` fault (0: off).
    pub fn set_dup_probability(&self, p: f64) {
        self.dup_probability
            .store(p.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }
    /// The probability the `dup-requests` fault gives now.
    pub fn dup_probability(&self) -> f64 {
        f64::from_bits(self.dup_probability.load(Ordering::Relaxed))
    }
}

/// A fault of the client's network: after a write or cas is answered `ok`, it is sent again,
/// with the same request id, through the next member, `delay` later, with probability
/// `probability`; the duplicate's answer is ignored and it is not an operation of the history
/// (it is the network's, not the client's). A node with request-id dedup answers it from the
/// client's session without applying it; a node without (`--bug no-dedup`, or a target that
/// has no dedup at all, such as etcd) applies it again. Each worker's choices come from its own
/// RNG, seeded from the run's seed. The probability is `--duplicate-writes` for the whole run,
/// or while a `dup-requests` fault holds the one it gives ([`ClientNet`]), whichever is larger.
pub struct Duplicate {
    pub probability: f64,
    /// Where the `dup-requests` nemesis sets its probability.
    pub net: Arc<ClientNet>,
    pub delay: Duration,
    pub rng: rand::rngs::StdRng,
}

/// Performs `op` with request id `rid`; returns its completion as the workload records it.
pub async fn perform(
    workload: &dyn Workload,
    client: &dyn Client,
    op: &Op,
    rid: &str,
    timeout: Duration,
) -> Completion {
    // The HTTP client has its own timeout; this is the backstop for a client that hangs.
    let backstop = timeout + Duration::from_secs(1);
    let outcome = match tokio::time::timeout(backstop, client.invoke(op, rid)).await {
        Ok(o) => o,
        Err(_) => Outcome::Info("timeout".into()),
    };
    workload.completion(op, outcome)
}

/// Performs a write, cas or append, retrying an indefinite outcome up to `retries` times with
/// the same request id, each retry through the next member (`clients[start + i]`) after
/// waiting `backoff × i`. The node's request-id dedup makes this safe: a retry applies at most
/// once and answers as the first. Once an attempt was indefinite the operation stays
/// indefinite unless a retry is `ok`: a retry's definite failure (say, a refused connection to
/// a member that is down) says nothing about the earlier attempt, which may have applied, so
/// the operation is then `info` with the earlier attempt's reason. Returns the completion and
/// how many retries were sent.
#[allow(clippy::too_many_arguments)]
pub async fn perform_with_retries(
    workload: &dyn Workload,
    clients: &[Arc<dyn Client>],
    start: usize,
    op: &Op,
    rid: &str,
    timeout: Duration,
    retries: usize,
    backoff: Duration,
) -> (Completion, usize) {
    let mut i = 0;
    let mut indefinite: Option<Completion> = None;
    loop {
        if i > 0 {
            tokio::time::sleep(backoff * i as u32).await;
        }
        let client = &clients[(start + i) % clients.len()];
        let r = perform(workload, &**client, op, rid, timeout).await;
        if r.kind == EventType::Fail {
            if let Some(first) = indefinite {
                return (first, i);
            }
        }
        if r.kind != EventType::Info || op.is_read() || i >= retries {
            return (r, i);
        }
        indefinite.get_or_insert(r);
        i += 1;
    }
}

impl Worker {
    /// Runs until `stop` turns true; returns the generator (which knows the keys used).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Box<dyn Generator> {
        let mut process = self.index as u64;
        let mut seq = 0u64;
        // Changes before the worker started (the first election) start no burst.
        let mut changes = self.leader_changes.subscribe();
        let mut burst = 0usize;
        while !*stop.borrow() {
            if changes.has_changed().unwrap_or(false) {
                changes.borrow_and_update();
                burst = self.read_burst;
            }
            let burst_read = if burst > 0 {
                burst -= 1;
                self.gen
                    .keys_used()
                    .last()
                    .map(|k| self.workload.final_read(k))
            } else {
                None
            };
            let op = match burst_read {
                Some(op) => {
                    self.counters.burst_reads.fetch_add(1, Ordering::Relaxed);
                    op
                }
                None => {
                    // A leader change ends the wait for the rate limiter, and the burst goes
                    // now (the slot taken is given up); so does the end of the run.
                    tokio::select! {
                        _ = self.limiter.acquire() => {}
                        Ok(()) = changes.changed(), if self.read_burst > 0 => {
                            burst = self.read_burst;
                            continue;
                        }
                        _ = stop.changed() => break,
                    }
                    if *stop.borrow() {
                        break;
                    }
                    self.gen.next_op()
                }
            };
            seq += 1;
            let rid = format!("c{process}-{seq}");
            let p = Process::Client(process);
            let f = op.f().name();
            self.recorder.record(
                p,
                EventType::Invoke,
                f,
                Some(op.key()),
                self.workload.invocation_value(&op),
            );
            let (
                Completion {
                    kind,
                    value,
                    reason,
                },
                retried,
            ) = perform_with_retries(
                self.workload,
                &self.clients,
                self.index,
                &op,
                &rid,
                self.op_timeout,
                self.retries,
                self.retry_backoff,
            )
            .await;
            if retried > 0 {
                self.counters
                    .retries
                    .fetch_add(retried as u64, Ordering::Relaxed);
                if kind == EventType::Ok {
                    self.counters.ok_after_retry.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.recorder
                .record_with_reason(p, kind, f, Some(op.key()), value, reason);
            if kind == EventType::Ok && !op.is_read() {
                self.maybe_duplicate(&op, &rid);
            }
            let c = match kind {
                EventType::Ok => &self.counters.ok,
                EventType::Fail => &self.counters.fail,
                _ => &self.counters.info,
            };
            c.fetch_add(1, Ordering::Relaxed);
            if kind == EventType::Info {
                process += self.concurrency as u64;
                seq = 0;
            }
        }
        self.gen
    }

    /// Sends `op` again later with the same request id, if the duplicating network says so.
    fn maybe_duplicate(&mut self, op: &Op, rid: &str) {
        use rand::Rng;
        let Some(d) = &mut self.duplicate else {
            return;
        };
        let p = d.probability.max(d.net.dup_probability());
        if p <= 0.0 || !d.rng.gen_bool(p) {
            return;
        }
        let client = self.clients[(self.index + 1) % self.clients.len()].clone();
        let (op, rid, delay, timeout) = (op.clone(), rid.to_string(), d.delay, self.op_timeout);
        let workload = self.workload;
        // Bounded: one request with the client's timeout (and `perform`'s backstop).
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = perform(workload, &*client, &op, &rid, timeout).await;
        });
    }
}

/// Reads every key in `keys` once (the workload's final read, up to `attempts` tries each),
/// spreading them over `clients`; processes are numbered from `next_process`. Returns (ok,
/// failed) counts.
pub async fn final_reads(
    workload: &'static dyn Workload,
    keys: &[String],
    clients: &[Arc<dyn Client>],
    recorder: &Arc<Recorder>,
    next_process: &AtomicU64,
    timeout: Duration,
    attempts: usize,
) -> (usize, usize) {
    let mut tasks = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let client = clients[i % clients.len()].clone();
        let recorder = recorder.clone();
        let key = key.clone();
        let process = next_process.fetch_add(1, Ordering::Relaxed);
        tasks.push(tokio::spawn(async move {
            let op = workload.final_read(&key);
            let f = op.f().name();
            let p = Process::Client(process);
            for attempt in 0..attempts {
                recorder.record(
                    p,
                    EventType::Invoke,
                    f,
                    Some(&key),
                    workload.invocation_value(&op),
                );
                let c = perform(workload, &*client, &op, "", timeout).await;
                let ok = c.kind == EventType::Ok;
                recorder.record_with_reason(p, c.kind, f, Some(&key), c.value, c.reason);
                if ok {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(200 * (attempt as u64 + 1))).await;
            }
            false
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        if matches!(t.await, Ok(true)) {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    (ok, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sut::{BoxFuture, Reply};
    use rand::SeedableRng;
    use splitbrain_workloads::WorkloadKind;

    /// Counts the requests it gets per request id; every write and cas succeeds.
    #[derive(Default)]
    struct CountingClient {
        sent: Mutex<std::collections::HashMap<String, usize>>,
        reads: AtomicU64,
    }

    impl Client for CountingClient {
        fn invoke<'a>(&'a self, op: &'a Op, rid: &'a str) -> BoxFuture<'a, Outcome<Reply>> {
            if op.is_read() {
                self.reads.fetch_add(1, Ordering::Relaxed);
                return Box::pin(async { Outcome::Ok(Reply::Value(None)) });
            }
            *self
                .sent
                .lock()
                .unwrap()
                .entry(rid.to_string())
                .or_default() += 1;
            Box::pin(async { Outcome::Ok(Reply::Done) })
        }
    }

    /// Runs one kv worker for 100 ms against a counting client with `--duplicate-writes`
    /// `probability` and the client network `net`; returns the client.
    async fn duplicating_worker(probability: f64, net: Arc<ClientNet>) -> Arc<CountingClient> {
        let dir = tempfile::tempdir().unwrap();
        let recorder =
            Arc::new(Recorder::create(&dir.path().join("h.jsonl"), Instant::now(), true).unwrap());
        let client = Arc::new(CountingClient::default());
        let workload = WorkloadKind::Kv.workload();
        let gen = workload.generators(1, 100, 3, false).remove(0);
        let worker = Worker {
            index: 0,
            concurrency: 1,
            workload,
            gen,
            clients: vec![client.clone()],
            retries: 0,
            retry_backoff: Duration::ZERO,
            recorder,
            limiter: Arc::new(RateLimiter::new(2000.0)),
            counters: Arc::new(Counters::default()),
            op_timeout: Duration::from_secs(1),
            duplicate: Some(Duplicate {
                probability,
                net,
                delay: Duration::from_millis(5),
                rng: rand::rngs::StdRng::seed_from_u64(1),
            }),
            leader_changes: Arc::default(),
            read_burst: 0,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let h = tokio::spawn(worker.run(stop_rx));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop_tx.send(true).unwrap();
        h.await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        client
    }

    #[tokio::test]
    async fn a_duplicating_network_sends_each_ok_write_again_with_its_request_id() {
        let client = duplicating_worker(1.0, Arc::default()).await;
        let sent = client.sent.lock().unwrap();
        assert!(sent.len() >= 10, "the worker wrote ({} ids)", sent.len());
        assert!(
            sent.values().all(|&n| n == 2),
            "every ok write or cas sent exactly twice, with one id: {sent:?}"
        );
        assert!(client.reads.load(Ordering::Relaxed) > 0, "reads happened");
    }

    #[tokio::test]
    async fn writes_are_duplicated_only_while_the_dup_requests_fault_holds() {
        let net = Arc::new(ClientNet::default());
        let off = duplicating_worker(0.0, net.clone()).await;
        let sent = off.sent.lock().unwrap().clone();
        assert!(
            sent.len() >= 10 && sent.values().all(|&n| n == 1),
            "{sent:?}"
        );
        net.set_dup_probability(1.0);
        let on = duplicating_worker(0.0, net.clone()).await;
        let sent = on.sent.lock().unwrap().clone();
        assert!(
            sent.len() >= 10 && sent.values().all(|&n| n == 2),
            "{sent:?}"
        );
        net.set_dup_probability(0.0);
        assert_eq!(net.dup_probability(), 0.0);
    }

    /// Answers each request with the next outcome of its script (the last one repeats).
    struct ScriptedClient(Mutex<Vec<Outcome<Reply>>>);

    impl Client for ScriptedClient {
        fn invoke<'a>(&'a self, _op: &'a Op, _rid: &'a str) -> BoxFuture<'a, Outcome<Reply>> {
            let mut script = self.0.lock().unwrap();
            let o = if script.len() > 1 {
                script.remove(0)
            } else {
                script[0].clone()
            };
            Box::pin(async move { o })
        }
    }

    async fn with_retries(script: Vec<Outcome<Reply>>, retries: usize) -> (Completion, usize) {
        let client: Arc<dyn Client> = Arc::new(ScriptedClient(Mutex::new(script)));
        let op = Op::Write {
            key: "k".into(),
            value: 4,
        };
        perform_with_retries(
            WorkloadKind::Kv.workload(),
            &[client],
            0,
            &op,
            "c1-1",
            Duration::from_secs(1),
            retries,
            Duration::ZERO,
        )
        .await
    }

    #[tokio::test]
    async fn a_retry_that_fails_after_an_indefinite_attempt_leaves_the_write_indefinite() {
        let timeout = || Outcome::Info("timeout".into());
        let refused = || Outcome::Fail("connect".into());
        let (c, n) = with_retries(vec![timeout(), refused()], 2).await;
        assert_eq!((c.kind, n), (EventType::Info, 1), "{c:?}");
        assert_eq!(c.reason.as_deref(), Some("timeout"));
        let (c, n) = with_retries(vec![timeout(), timeout(), Outcome::Ok(Reply::Done)], 2).await;
        assert_eq!(
            (c.kind, n),
            (EventType::Ok, 2),
            "a retry that is ok makes it ok"
        );
        let (c, n) = with_retries(vec![refused()], 2).await;
        assert_eq!(
            (c.kind, n),
            (EventType::Fail, 0),
            "a first definite failure stays one"
        );
        let (c, n) = with_retries(vec![timeout()], 2).await;
        assert_eq!((c.kind, n), (EventType::Info, 2), "retries run out");
    }

    #[tokio::test]
    async fn each_leader_change_starts_a_burst_of_reads_that_does_not_wait_for_the_rate_limiter() {
        let dir = tempfile::tempdir().unwrap();
        let recorder =
            Arc::new(Recorder::create(&dir.path().join("h.jsonl"), Instant::now(), true).unwrap());
        let client = Arc::new(CountingClient::default());
        let workload = WorkloadKind::Kv.workload();
        let changes = Arc::new(LeaderChanges::default());
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            index: 0,
            concurrency: 1,
            workload,
            gen: workload.generators(1, 100, 3, false).remove(0),
            clients: vec![client.clone()],
            retries: 0,
            retry_backoff: Duration::ZERO,
            recorder,
            // One operation at once, the next only after 10 s: every later one is a burst's.
            limiter: Arc::new(RateLimiter::new(0.1)),
            counters: counters.clone(),
            op_timeout: Duration::from_secs(1),
            duplicate: None,
            leader_changes: changes.clone(),
            read_burst: 4,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let h = tokio::spawn(worker.run(stop_rx));
        let reads = || client.reads.load(Ordering::Relaxed);
        let pause = || tokio::time::sleep(Duration::from_millis(100));
        pause().await;
        let r0 = reads();
        assert!(changes.saw_leader(7), "a first leader is a change");
        pause().await;
        assert_eq!(reads() - r0, 4, "one burst of 4 reads");
        assert!(!changes.saw_leader(7), "the same term again is no change");
        assert!(!changes.saw_leader(6), "nor is an older term");
        pause().await;
        assert_eq!(reads() - r0, 4, "no second burst without a change");
        assert!(changes.saw_leader(9));
        pause().await;
        assert_eq!(reads() - r0, 8, "a second change, a second burst");
        assert_eq!(counters.burst_reads.load(Ordering::Relaxed), 8);
        stop_tx.send(true).unwrap();
        // The end of the run ends the limiter's wait too (it would last 10 s).
        tokio::time::timeout(Duration::from_secs(2), h)
            .await
            .expect("the worker stops at once")
            .unwrap();
    }

    #[tokio::test]
    async fn rate_limiter_spaces_invocations_across_callers() {
        let l = Arc::new(RateLimiter::new(100.0));
        let t = Instant::now();
        let mut hs = Vec::new();
        for _ in 0..4 {
            let l = l.clone();
            hs.push(tokio::spawn(async move {
                for _ in 0..5 {
                    l.acquire().await;
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
        // 20 slots at 100/s: the last one is 190 ms after the first.
        assert!(
            t.elapsed() >= Duration::from_millis(185),
            "{:?}",
            t.elapsed()
        );
    }
}
