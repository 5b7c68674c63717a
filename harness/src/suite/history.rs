//! What the suite reads from a run's `history.jsonl` (DESIGN §1) beyond the runner's statistics:
//! the time to recover after each fault — from a `stop-*` nemesis event to the completion of the
//! first write or cas that was invoked after it and succeeded (`ok`): operations already in
//! flight do not count, and reads do not either (a read can succeed on a member that has no
//! leader in some targets' configurations). A fault after which no write succeeded before the
//! history ends counts as not recovered (`None`).

use serde_json::Value;
use std::path::Path;

/// Recovery time in seconds after every `stop-*` event, in order.
pub fn recovery_times(text: &str) -> Vec<Option<f64>> {
    let mut out: Vec<Option<f64>> = Vec::new();
    let mut waiting: Vec<(usize, u64)> = Vec::new();
    let mut invoked: std::collections::HashMap<String, u64> = Default::default();
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
        } else if !nemesis {
            let process = v.get("process").map(|p| p.to_string()).unwrap_or_default();
            if ty == "invoke" {
                invoked.insert(process, time);
                continue;
            }
            let start = invoked.remove(&process).unwrap_or(0);
            if ty == "ok" && (f == "write" || f == "cas") {
                waiting.retain(|&(i, t0)| {
                    if start >= t0 {
                        out[i] = Some(time.saturating_sub(t0) as f64 / 1e9);
                        false
                    } else {
                        true
                    }
                });
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
    fn measures_from_each_fault_stop_to_the_first_write_invoked_after_it() {
        let h = r#"{"index":0,"time":1000000000,"process":"nemesis","type":"info","f":"start-kill","value":{}}
{"index":1,"time":1500000000,"process":0,"type":"invoke","f":"write","key":"k","value":1}
{"index":2,"time":2000000000,"process":"nemesis","type":"info","f":"stop-kill","value":{}}
{"index":3,"time":2100000000,"process":0,"type":"fail","f":"write","key":"k","value":1}
{"index":4,"time":2200000000,"process":0,"type":"invoke","f":"write","key":"k","value":2}
{"index":5,"time":2750000000,"process":0,"type":"ok","f":"write","key":"k","value":2}
{"index":6,"time":2800000000,"process":1,"type":"invoke","f":"write","key":"k","value":3}
{"index":7,"time":3000000000,"process":"nemesis","type":"info","f":"stop-pause","value":{}}
{"index":8,"time":3100000000,"process":1,"type":"ok","f":"write","key":"k","value":3}
{"index":9,"time":3200000000,"process":0,"type":"invoke","f":"read","key":"k","value":null}
{"index":10,"time":3300000000,"process":0,"type":"ok","f":"read","key":"k","value":3}
{"index":11,"time":3400000000,"process":0,"type":"invoke","f":"cas","key":"k","value":[3,4]}
{"index":12,"time":3500000000,"process":0,"type":"ok","f":"cas","key":"k","value":[3,4]}
{"index":13,"time":4000000000,"process":"nemesis","type":"info","f":"stop-partition","value":{}}
"#;
        let r = recovery_times(h);
        assert_eq!(r.len(), 3);
        assert!((r[0].unwrap() - 0.75).abs() < 1e-9, "{r:?}");
        // The write in flight at the stop and the read do not count; the cas does.
        assert!((r[1].unwrap() - 0.5).abs() < 1e-9, "{r:?}");
        assert_eq!(r[2], None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
