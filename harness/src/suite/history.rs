//! Recovery times of a stored run, read from its `history.jsonl` through `crate::analysis`:
//! from a `stop-*` nemesis event to the completion of the first state-changing operation
//! (write, cas, append) that was invoked after it and succeeded (`ok`): operations already in
//! flight do not count, and reads do not either (a read can succeed on a member that has no
//! leader in some targets' configurations). A fault after which no write succeeded before the
//! history ends counts as not recovered (`None`).

pub use crate::analysis::median;
use crate::analysis::{parse_events, Analysis};
use std::path::Path;

/// Recovery time in seconds after every `stop-*` event, in order (`crate::analysis`).
pub fn recovery_times(text: &str) -> Vec<Option<f64>> {
    let (events, _) = parse_events(text);
    Analysis::from_events(&events, &[]).recovery_times()
}

/// The median recovery time of a run (over faults that recovered), reading its history.
pub fn median_recovery(run_dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(run_dir.join("history.jsonl")).ok()?;
    let mut t: Vec<f64> = recovery_times(&text).into_iter().flatten().collect();
    median(&mut t)
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
