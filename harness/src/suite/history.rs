//! What the suite reads from a run's `history.jsonl` (DESIGN §1) beyond the runner's statistics:
//! the time to recover after each fault — from a `stop-*` nemesis event to the next `ok`
//! completion of a client operation. A fault after which nothing succeeded before the history
//! ends counts as not recovered (`None`).

use serde_json::Value;
use std::path::Path;

/// Recovery time in seconds after every `stop-*` event, in order.
pub fn recovery_times(text: &str) -> Vec<Option<f64>> {
    let mut out: Vec<Option<f64>> = Vec::new();
    let mut waiting: Vec<(usize, u64)> = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let time = v.get("time").and_then(Value::as_u64).unwrap_or(0);
        let nemesis = v.get("process").and_then(Value::as_str) == Some("nemesis");
        let f = v.get("f").and_then(Value::as_str).unwrap_or("");
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        if nemesis && f.starts_with("stop-") {
            waiting.push((out.len(), time));
            out.push(None);
        } else if !nemesis && ty == "ok" {
            for (i, t0) in waiting.drain(..) {
                out[i] = Some(time.saturating_sub(t0) as f64 / 1e9);
            }
        }
    }
    out
}

/// The median recovery time of a run (over faults that recovered), reading its history.
pub fn median_recovery(run_dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(run_dir.join("history.jsonl")).ok()?;
    let mut t: Vec<f64> = recovery_times(&text).into_iter().flatten().collect();
    median(&mut t)
}

/// The median of `v` (sorted in place); `None` when empty.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_from_each_fault_stop_to_the_next_ok() {
        let h = r#"{"index":0,"time":1000000000,"process":"nemesis","type":"info","f":"start-kill","value":{}}
{"index":1,"time":1500000000,"process":0,"type":"invoke","f":"write","key":"k","value":1}
{"index":2,"time":2000000000,"process":"nemesis","type":"info","f":"stop-kill","value":{}}
{"index":3,"time":2100000000,"process":0,"type":"fail","f":"write","key":"k","value":1}
{"index":4,"time":2200000000,"process":0,"type":"invoke","f":"write","key":"k","value":2}
{"index":5,"time":2750000000,"process":0,"type":"ok","f":"write","key":"k","value":2}
{"index":6,"time":3000000000,"process":"nemesis","type":"info","f":"stop-partition","value":{}}
"#;
        let r = recovery_times(h);
        assert_eq!(r.len(), 2);
        assert!((r[0].unwrap() - 0.75).abs() < 1e-9, "{r:?}");
        assert_eq!(r[1], None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
