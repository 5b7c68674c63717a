//! The summary of a run, computed from its history: operations by function and outcome in and
//! out of faults, availability, latency percentiles, the faults injected. Serialized into
//! `results.json` (`stats`) and printed for people.

use serde::Serialize;
use serde_json::Value;
use splitbrain_checker::history::{Event, EventType, Process};
use std::collections::{BTreeMap, HashMap};

/// ok/fail/info counts.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// `fail`s that were answers (cas mismatches), counted as available.
    #[serde(skip)]
    pub answered_fail: u64,
}

impl Counts {
    fn add(&mut self, t: EventType) {
        match t {
            EventType::Ok => self.ok += 1,
            EventType::Fail => self.fail += 1,
            EventType::Info => self.info += 1,
            EventType::Invoke => {}
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

/// One fault as the history recorded it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FaultRecord {
    pub f: String,
    pub start_s: f64,
    pub stop_s: Option<f64>,
    pub value: Value,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stats {
    /// By function (`read`, `write`, `cas`), invoked while no fault was active.
    pub outside_faults: BTreeMap<String, Counts>,
    /// By function, invoked while a fault was active.
    pub during_faults: BTreeMap<String, Counts>,
    pub total: Counts,
    /// Share of operations the system answered definitively: `ok`, plus cas that failed
    /// because the value differed (`cas-mismatch`: an answer, not an outage).
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
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

/// Computes the statistics of a history; `reasons[i]` is why event `i` failed (may be empty).
pub fn stats(events: &[Event], reasons: &[Option<String>]) -> Stats {
    let mut s = Stats::default();
    // Fault windows: a start-X opens one, the next stop-X closes it (faults of different
    // families may overlap).
    let mut windows: Vec<(u64, u64)> = Vec::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    for e in events.iter().filter(|e| e.process == Process::Nemesis) {
        if let Some(fam) = e.f.strip_prefix("start-") {
            s.faults.push(FaultRecord {
                f: e.f.clone(),
                start_s: e.time as f64 / 1e9,
                stop_s: None,
                value: e.value.clone(),
            });
            windows.push((e.time, u64::MAX));
            open.push((fam.to_string(), windows.len() - 1));
        } else if let Some(fam) = e.f.strip_prefix("stop-") {
            if let Some(pos) = open.iter().rposition(|(f, _)| f == fam) {
                let (_, w) = open.remove(pos);
                windows[w].1 = e.time;
                s.faults[w].stop_s = Some(e.time as f64 / 1e9);
            }
        }
    }
    let in_fault = |t: u64| windows.iter().any(|&(a, b)| t >= a && t <= b);
    let mut inflight: HashMap<u64, &Event> = HashMap::new();
    let mut lat = Vec::new();
    let mut keys = std::collections::BTreeSet::new();
    let (mut during, mut outside) = (Counts::default(), Counts::default());
    for e in events {
        let Process::Client(p) = e.process else {
            continue;
        };
        if let Some(k) = &e.key {
            keys.insert(k.to_string());
        }
        if e.kind == EventType::Invoke {
            inflight.insert(p, e);
            continue;
        }
        let Some(inv) = inflight.remove(&p) else {
            continue;
        };
        let fault = in_fault(inv.time);
        let reason = reasons.get(e.index as usize).cloned().flatten();
        let answered = reason.as_deref() == Some("cas-mismatch");
        if let Some(r) = reason {
            *s.reasons.entry(r).or_default() += 1;
        }
        let table = if fault {
            &mut s.during_faults
        } else {
            &mut s.outside_faults
        };
        table.entry(e.f.clone()).or_default().add(e.kind);
        let side = if fault { &mut during } else { &mut outside };
        side.add(e.kind);
        if answered {
            side.answered_fail += 1;
            s.total.answered_fail += 1;
        }
        s.total.add(e.kind);
        if e.kind == EventType::Ok {
            lat.push(e.time.saturating_sub(inv.time));
        }
    }
    s.open = inflight.len() as u64;
    s.keys = keys.len();
    lat.sort_unstable();
    s.latency = Latency {
        p50_ms: percentile(&lat, 0.50),
        p95_ms: percentile(&lat, 0.95),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().map_or(0.0, |&m| m as f64 / 1e6),
    };
    s.availability = s.total.availability();
    s.availability_during_faults = during.availability();
    s.availability_outside_faults = outside.availability();
    s
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

/// The human summary (without the verdict, which the caller prints).
pub fn render(s: &Stats) -> String {
    let mut out = String::new();
    let mut fs: Vec<&String> = s
        .outside_faults
        .keys()
        .chain(s.during_faults.keys())
        .collect();
    fs.sort();
    fs.dedup();
    out.push_str("operations          ok    fail    info   (outside faults | during faults)\n");
    for f in fs {
        let o = s.outside_faults.get(f).copied().unwrap_or_default();
        let d = s.during_faults.get(f).copied().unwrap_or_default();
        out.push_str(&format!(
            "  {f:<8} {:>7} {:>7} {:>7}   | {:>7} {:>7} {:>7}\n",
            o.ok, o.fail, o.info, d.ok, d.fail, d.info
        ));
    }
    out.push_str(&format!(
        "  total    {:>7} ok, {} fail, {} info, {} keys{}\n",
        s.total.ok,
        s.total.fail,
        s.total.info,
        s.keys,
        if s.open > 0 {
            format!(", {} never completed", s.open)
        } else {
            String::new()
        }
    ));
    if !s.reasons.is_empty() {
        let r: Vec<String> = s.reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("  fail/info reasons: {}\n", r.join(", ")));
    }
    out.push_str(&format!(
        "availability        {} overall, {} outside faults, {} during faults\n",
        pct(s.availability),
        pct(s.availability_outside_faults),
        pct(s.availability_during_faults)
    ));
    out.push_str(&format!(
        "latency (ok ops)    p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        s.latency.p50_ms, s.latency.p95_ms, s.latency.p99_ms, s.latency.max_ms
    ));
    out.push_str(&format!("faults injected     {}\n", s.faults.len()));
    for f in &s.faults {
        let what = describe_fault(&f.value);
        out.push_str(&format!(
            "  {:>6.1}s–{:<7} {}\n",
            f.start_s,
            f.stop_s.map_or("…".to_string(), |t| format!("{t:.1}s")),
            what
        ));
    }
    out
}

/// A one-line description of a nemesis event's value.
pub fn describe_fault(v: &Value) -> String {
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .or_else(|| v.get("fault").and_then(Value::as_str));
    let mut s = kind.unwrap_or("?").to_string();
    if let Some(nodes) = v.get("nodes").and_then(Value::as_array) {
        let n: Vec<&str> = nodes.iter().filter_map(Value::as_str).collect();
        s.push_str(&format!(" {}", n.join(",")));
    }
    if let Some(groups) = v.get("groups").and_then(Value::as_array) {
        let g: Vec<String> = groups
            .iter()
            .filter_map(Value::as_array)
            .map(|g| {
                g.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        s.push_str(&format!(" {}", g.join(" | ")));
    } else if let Some(cuts) = v.get("cuts").and_then(Value::as_array) {
        s.push_str(&format!(" ({} links cut)", cuts.len()));
    }
    if let Some(d) = v.get("detail").and_then(Value::as_str) {
        s.push_str(&format!(" ({d})"));
    }
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        s.push_str(&format!(" [error: {e}]"));
    }
    s
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
    fn splits_counts_by_fault_windows_and_computes_latency() {
        use EventType::*;
        let c = Process::Client;
        let events = vec![
            ev(0, 0, c(0), Invoke, "read"),
            ev(1, 10, c(0), Ok, "read"),
            ev(2, 100, Process::Nemesis, Info, "start-kill"),
            ev(3, 110, c(0), Invoke, "write"),
            ev(4, 130, c(0), Info, "write"),
            ev(5, 200, Process::Nemesis, Info, "stop-kill"),
            ev(6, 300, c(1), Invoke, "cas"),
            ev(7, 330, c(1), Fail, "cas"),
            ev(8, 400, c(2), Invoke, "read"),
        ];
        let mut reasons = vec![None; 9];
        reasons[7] = Some("cas-mismatch".to_string());
        let s = stats(&events, &reasons);
        assert_eq!(
            s.outside_faults["read"],
            Counts {
                ok: 1,
                fail: 0,
                info: 0,
                answered_fail: 0
            }
        );
        assert_eq!(
            s.outside_faults["cas"],
            Counts {
                ok: 0,
                fail: 1,
                info: 0,
                answered_fail: 0
            }
        );
        assert_eq!(
            s.during_faults["write"],
            Counts {
                ok: 0,
                fail: 0,
                info: 1,
                answered_fail: 0
            }
        );
        assert_eq!(s.total.total(), 3);
        assert_eq!(s.open, 1);
        assert_eq!(s.availability_during_faults, Some(0.0));
        // The cas mismatch was an answer: both operations outside faults were available.
        assert_eq!(s.availability_outside_faults, Some(1.0));
        assert_eq!(s.reasons["cas-mismatch"], 1);
        assert_eq!(s.latency.p50_ms, 10.0);
        assert_eq!(s.faults.len(), 1);
        assert_eq!(s.faults[0].stop_s, Some(0.2));
        assert!(render(&s).contains("faults injected     1"));
    }
}
