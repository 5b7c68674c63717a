//! One analysis of a run: its history's events → client operations, fault windows,
//! statistics (counts by function in and out of faults, availability, latency percentiles,
//! failure reasons) and recovery times. The terminal summary, `results.json` (`stats`), the
//! report page and the suite comparison all read what this module computes, so they cannot
//! disagree.
//!
//! # Definitions (one each)
//! - **Fault window**: from a nemesis `start-X` to the next `stop-X` of the same family
//!   (`kill`, `partition`, …; windows of different families may overlap); a window never
//!   closed lasts to the end of the history. An operation is *during faults* if it was
//!   **invoked** inside a window, start included, stop excluded: `[start, stop)`.
//! - **Available**: the system answered definitively: `ok`, or a `cas` whose compare failed
//!   (`fail` with reason `cas-mismatch`; without a recorded reason, as in Jepsen and Knossos
//!   histories, a failed cas is a failed compare). Other `fail`s and every `info` are not
//!   available. An invocation never completed is neither counted nor available.
//! - **Latency**: of `ok` operations, completion − invocation; percentiles by nearest rank
//!   ([`percentile`]).
//! - **Recovery time** of a fault: from its `stop-*` event to the completion of the first
//!   state-changing operation (anything but a read) invoked after it that succeeded; `None`
//!   if none did before the history ends.

use serde::Serialize;
use serde_json::Value;
use splitbrain_checker::history::{Event, EventType, Process};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The nearest-rank percentile `p` (0..=1) of sorted values: the smallest value with at least
/// `p` of the values at or below it; 0 for none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `v` (sorted in place; the mean of the middle two for an even count); `None`
/// when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// True if a `fail` of `f` with `reason` was an answer (see the module docs).
pub fn answered_fail(f: &str, reason: Option<&str>) -> bool {
    f == "cas" && reason.is_none_or(|r| r == "cas-mismatch")
}

/// How an operation completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Fail,
    Info,
    /// Invoked, never completed (the run was cut short).
    Open,
}

/// One client operation: an invocation and its completion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    /// `index` of the invocation event.
    pub index: u64,
    pub process: u64,
    pub f: String,
    pub key: Option<String>,
    pub value: Value,
    /// The completion's value (`None` while open).
    pub output: Option<Value>,
    /// Nanoseconds since the test started.
    pub start: u64,
    pub end: Option<u64>,
    pub status: Status,
    /// Why it failed or is unknown, when the client said.
    pub reason: Option<String>,
    /// Invoked during a fault window.
    pub in_fault: bool,
}

impl Op {
    /// Available by the module's one definition.
    pub fn available(&self) -> bool {
        match self.status {
            Status::Ok => true,
            Status::Fail => answered_fail(&self.f, self.reason.as_deref()),
            Status::Info | Status::Open => false,
        }
    }

    /// Latency of an `ok` operation.
    pub fn ok_latency(&self) -> Option<u64> {
        match (self.status, self.end) {
            (Status::Ok, Some(e)) => Some(e.saturating_sub(self.start)),
            _ => None,
        }
    }
}

/// A fault window (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindow {
    /// The `start-…` event's `f` (`start-partition`).
    pub f: String,
    /// `partition`, `kill`, …
    pub family: String,
    pub start: u64,
    /// `None`: never stopped.
    pub stop: Option<u64>,
    /// The start event's value.
    pub value: Value,
}

impl FaultWindow {
    /// True if `t` falls in `[start, stop)` (a window never stopped is open to the end).
    pub fn contains(&self, t: u64) -> bool {
        t >= self.start && self.stop.is_none_or(|s| t < s)
    }
}

/// ok/fail/info counts. Equality compares the three counts (`answered_fail` is derived from
/// the failures, for availability).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// `fail`s that were answers (failed compares), counted as available.
    #[serde(skip)]
    pub answered_fail: u64,
}

impl PartialEq for Counts {
    fn eq(&self, o: &Self) -> bool {
        (self.ok, self.fail, self.info) == (o.ok, o.fail, o.info)
    }
}

impl Eq for Counts {}

impl Counts {
    pub fn add(&mut self, op: &Op) {
        match op.status {
            Status::Ok => self.ok += 1,
            Status::Fail => {
                self.fail += 1;
                if op.available() {
                    self.answered_fail += 1;
                }
            }
            Status::Info => self.info += 1,
            Status::Open => {}
        }
    }
    pub fn total(&self) -> u64 {
        self.ok + self.fail + self.info
    }
    /// (ok + answered fails) / all completed, or `None` without operations.
    pub fn availability(&self) -> Option<f64> {
        (self.total() > 0).then(|| (self.ok + self.answered_fail) as f64 / self.total() as f64)
    }
}

/// Latency percentiles of `ok` operations, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Of latencies in nanoseconds (sorted here).
    pub fn of(mut ns: Vec<u64>) -> Latency {
        ns.sort_unstable();
        let ms = |v: u64| v as f64 / 1e6;
        Latency {
            p50_ms: ms(percentile(&ns, 0.50)),
            p95_ms: ms(percentile(&ns, 0.95)),
            p99_ms: ms(percentile(&ns, 0.99)),
            max_ms: ns.last().map_or(0.0, |&m| ms(m)),
        }
    }
}

/// One fault as the history recorded it (`results.json`'s `stats.faults`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FaultRecord {
    pub f: String,
    pub start_s: f64,
    pub stop_s: Option<f64>,
    pub value: Value,
}

/// The statistics of a run (`results.json`'s `stats`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stats {
    /// By function (`read`, `write`, `cas`, `append`), invoked while no fault was active.
    pub outside_faults: BTreeMap<String, Counts>,
    /// By function, invoked while a fault was active.
    pub during_faults: BTreeMap<String, Counts>,
    pub total: Counts,
    /// Share of completed operations that were available (see the module docs).
    pub availability: Option<f64>,
    /// `fail` and `info` completions by reason (`cas-mismatch`, `timeout`, `not-leader`, …).
    pub reasons: BTreeMap<String, u64>,
    pub availability_during_faults: Option<f64>,
    pub availability_outside_faults: Option<f64>,
    pub latency: Latency,
    pub faults: Vec<FaultRecord>,
    /// Invocations never completed (the run was cut short).
    pub open: u64,
    /// Number of distinct keys.
    pub keys: usize,
    /// Seconds from each fault's stop to recovery (see the module docs), in order of stops.
    pub recovery_s: Vec<Option<f64>>,
    /// `ok` reads of a corrupted padded value (`--value-size`: its text was not what its
    /// writer sent; recorded as `splitbrain_workloads::values::CORRUPT`, which makes the key
    /// invalid).
    #[serde(default)]
    pub corrupt_reads: u64,
}

impl Stats {
    /// The median recovery time over faults that recovered.
    pub fn median_recovery_s(&self) -> Option<f64> {
        let mut t: Vec<f64> = self.recovery_s.iter().flatten().copied().collect();
        median(&mut t)
    }
}

/// The analysis of one history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Client operations in order of invocation.
    pub ops: Vec<Op>,
    pub faults: Vec<FaultWindow>,
    /// Times of every `stop-*` event, in order.
    pub stops: Vec<u64>,
    pub stats: Stats,
}

impl Analysis {
    /// Analyses history events; `reasons[i]` is why event `i` failed or is unknown (may be
    /// shorter than `events`, or empty when unknown).
    pub fn from_events(events: &[Event], reasons: &[Option<String>]) -> Analysis {
        let mut faults: Vec<FaultWindow> = Vec::new();
        let mut stops = Vec::new();
        let mut open_faults: Vec<usize> = Vec::new();
        for e in events.iter().filter(|e| e.process == Process::Nemesis) {
            if let Some(fam) = e.f.strip_prefix("start-") {
                open_faults.push(faults.len());
                faults.push(FaultWindow {
                    f: e.f.clone(),
                    family: fam.to_string(),
                    start: e.time,
                    stop: None,
                    value: e.value.clone(),
                });
            } else if let Some(fam) = e.f.strip_prefix("stop-") {
                stops.push(e.time);
                if let Some(pos) = open_faults.iter().rposition(|&w| faults[w].family == fam) {
                    let w = open_faults.remove(pos);
                    faults[w].stop = Some(e.time);
                }
            }
        }
        let mut ops: Vec<Op> = Vec::new();
        let mut inflight: HashMap<u64, usize> = HashMap::new();
        for e in events {
            let Process::Client(p) = e.process else {
                continue;
            };
            if e.kind == EventType::Invoke {
                inflight.insert(p, ops.len());
                ops.push(Op {
                    index: e.index,
                    process: p,
                    f: e.f.clone(),
                    key: e.key.as_ref().map(|k| match k {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }),
                    value: e.value.clone(),
                    output: None,
                    start: e.time,
                    end: None,
                    status: Status::Open,
                    reason: None,
                    in_fault: faults.iter().any(|w| w.contains(e.time)),
                });
                continue;
            }
            let Some(i) = inflight.remove(&p) else {
                continue;
            };
            let op = &mut ops[i];
            op.status = match e.kind {
                EventType::Ok => Status::Ok,
                EventType::Fail => Status::Fail,
                _ => Status::Info,
            };
            op.end = Some(e.time.max(op.start));
            op.output = Some(e.value.clone());
            op.reason = reasons.get(e.index as usize).cloned().flatten();
        }
        let mut a = Analysis {
            ops,
            faults,
            stops,
            stats: Stats::default(),
        };
        a.stats = a.compute_stats();
        a
    }

    fn compute_stats(&self) -> Stats {
        let mut s = Stats::default();
        let (mut during, mut outside) = (Counts::default(), Counts::default());
        let mut lat = Vec::new();
        let mut keys = BTreeSet::new();
        for op in &self.ops {
            if let Some(k) = &op.key {
                keys.insert(k.clone());
            }
            if op.status == Status::Open {
                s.open += 1;
                continue;
            }
            if let Some(r) = &op.reason {
                *s.reasons.entry(r.clone()).or_default() += 1;
            }
            if op.f == "read"
                && op.status == Status::Ok
                && op
                    .output
                    .as_ref()
                    .is_some_and(splitbrain_workloads::values::is_corrupt_read)
            {
                s.corrupt_reads += 1;
            }
            let (table, side) = if op.in_fault {
                (&mut s.during_faults, &mut during)
            } else {
                (&mut s.outside_faults, &mut outside)
            };
            table.entry(op.f.clone()).or_default().add(op);
            side.add(op);
            s.total.add(op);
            lat.extend(op.ok_latency());
        }
        s.keys = keys.len();
        s.latency = Latency::of(lat);
        s.availability = s.total.availability();
        s.availability_during_faults = during.availability();
        s.availability_outside_faults = outside.availability();
        s.faults = self
            .faults
            .iter()
            .map(|w| FaultRecord {
                f: w.f.clone(),
                start_s: w.start as f64 / 1e9,
                stop_s: w.stop.map(|t| t as f64 / 1e9),
                value: w.value.clone(),
            })
            .collect();
        s.recovery_s = self.recovery_times();
        s
    }

    /// Recovery time after every `stop-*` event (see the module docs).
    pub fn recovery_times(&self) -> Vec<Option<f64>> {
        self.stops
            .iter()
            .map(|&t0| {
                self.ops
                    .iter()
                    .filter(|o| o.status == Status::Ok && o.f != "read" && o.start >= t0)
                    .filter_map(|o| o.end)
                    .min()
                    .map(|end| end.saturating_sub(t0) as f64 / 1e9)
            })
            .collect()
    }
}

/// Parses history JSON Lines into events, skipping lines that are not events (the report and
/// the suite read damaged histories too); returns the events and how many lines were skipped.
pub fn parse_events(text: &str) -> (Vec<Event>, usize) {
    let mut skipped = 0;
    let events = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str::<Event>(l) {
            Ok(e) => Some(e),
            Err(_) => {
                skipped += 1;
                None
            }
        })
        .collect();
    (events, skipped)
}

/// Reasons by event index from `results.json`'s `reasons` (`[[index, reason], …]`).
pub fn reasons_from_results(results: Option<&Value>) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    let Some(list) = results
        .and_then(|r| r.get("reasons"))
        .and_then(Value::as_array)
    else {
        return out;
    };
    for pair in list {
        let (Some(i), Some(r)) = (
            pair.get(0).and_then(Value::as_u64),
            pair.get(1).and_then(Value::as_str),
        ) else {
            continue;
        };
        let i = i as usize;
        if i >= out.len() {
            out.resize(i + 1, None);
        }
        out[i] = Some(r.to_string());
    }
    out
}

/// `results.json`'s `reasons`: `[[event index, reason], …]` for every event with one.
pub fn reasons_json(reasons: &[Option<String>]) -> Value {
    Value::Array(
        reasons
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| serde_json::json!([i, r])))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(index: u64, time_ms: u64, process: Process, kind: EventType, f: &str) -> Event {
        Event {
            index,
            time: time_ms * 1_000_000,
            process,
            kind,
            f: f.into(),
            key: Some(json!("k1")),
            value: Value::Null,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.5), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn a_failed_compare_is_available_and_other_failures_are_not() {
        assert!(answered_fail("cas", Some("cas-mismatch")));
        assert!(answered_fail("cas", None));
        assert!(!answered_fail("cas", Some("not-leader")));
        assert!(!answered_fail("write", None));
    }

    #[test]
    fn windows_are_half_open_and_recovery_waits_for_a_write_invoked_after_the_stop() {
        use EventType::*;
        let c = Process::Client;
        let events = vec![
            ev(0, 100, Process::Nemesis, Info, "start-kill"),
            ev(1, 150, c(0), Invoke, "write"),
            ev(2, 200, Process::Nemesis, Info, "stop-kill"),
            ev(3, 210, c(0), Ok, "write"),
            ev(4, 200, c(1), Invoke, "write"),
            ev(5, 260, c(1), Ok, "write"),
        ];
        let a = Analysis::from_events(&events, &[]);
        assert!(a.ops[0].in_fault);
        assert!(!a.ops[1].in_fault, "invoked at the stop: outside");
        assert_eq!(a.stats.recovery_s, vec![Some(0.06)]);
    }
}
