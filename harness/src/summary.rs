//! The terminal summary of a run: operations by function and outcome in and out of faults,
//! availability, latency percentiles, the faults injected. The numbers are
//! `crate::analysis`'s (the same as `results.json`'s `stats` and the report's).

use crate::analysis::Analysis;
pub use crate::analysis::{Counts, FaultRecord, Latency, Stats};
use serde_json::Value;
use splitbrain_checker::history::Event;

/// Computes the statistics of a history (`crate::analysis`); `reasons[i]` is why event `i`
/// failed (may be empty).
pub fn stats(events: &[Event], reasons: &[Option<String>]) -> Stats {
    Analysis::from_events(events, reasons).stats
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
    // Each group of columns has its own headings.
    let row = |name: &str, a: [String; 3], b: [String; 3]| {
        format!(
            "{name:<10} {:>8} {:>7} {:>7}   {:>7} {:>7} {:>7}\n",
            a[0], a[1], a[2], b[0], b[1], b[2]
        )
    };
    out.push_str(&format!(
        "{:<10} {:<26}   {}\n",
        "operations", "outside faults", "during faults"
    ));
    let heads = || ["ok".to_string(), "fail".into(), "info".into()];
    out.push_str(&row("", heads(), heads()));
    for f in fs {
        let o = s.outside_faults.get(f).copied().unwrap_or_default();
        let d = s.during_faults.get(f).copied().unwrap_or_default();
        let n = |c: Counts| [c.ok.to_string(), c.fail.to_string(), c.info.to_string()];
        out.push_str(&row(&format!("  {f}"), n(o), n(d)));
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
    if s.corrupt_reads > 0 {
        out.push_str(&format!(
            "corrupt reads       {}: a value read was not what its writer sent (--value-size \
             padding differs); recorded as {}, a value nobody wrote\n",
            s.corrupt_reads,
            splitbrain_workloads::values::CORRUPT
        ));
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
    use splitbrain_checker::history::{EventType, Process};

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
        let text = render(&s);
        let head: Vec<&str> = text.lines().take(2).collect();
        assert!(head[0].contains("outside faults") && head[0].contains("during faults"));
        assert_eq!(
            head[1].matches("ok").count(),
            2,
            "each group has its headings: {text}"
        );
    }
}
