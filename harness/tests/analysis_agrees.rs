//! One analysis of a run: for one recorded run (`fixtures/recorded-run/`, a real
//! `splitbrain test --workload kv --nemesis partition,kill` run stored with its
//! `history.jsonl`, `results.json` and `test.json`), the terminal summary, `results.json`'s
//! `stats` and the report page give the same counts and the same availability.

use splitbrain::analysis::{parse_events, reasons_from_results};
use splitbrain::report::Page;
use splitbrain::summary;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recorded-run")
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

#[test]
fn summary_results_json_and_report_page_agree_on_counts_and_availability() {
    let dir = fixture();
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let text = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let (events, skipped) = parse_events(&text);
    assert_eq!(skipped, 0, "the fixture history is clean");
    let reasons = reasons_from_results(Some(&results));
    let stats = summary::stats(&events, &reasons);
    let stored = &results["stats"];

    // The fixture exercises what the definitions are about.
    assert!(
        stats.during_faults.values().any(|c| c.total() > 0),
        "ops during faults"
    );
    assert!(
        stats.reasons.get("cas-mismatch").copied().unwrap_or(0) > 0,
        "failed compares: {:?}",
        stats.reasons
    );

    // results.json ↔ the analysis of the stored history.
    for field in [
        "outside_faults",
        "during_faults",
        "total",
        "availability",
        "availability_during_faults",
        "availability_outside_faults",
        "reasons",
        "open",
        "keys",
    ] {
        assert_eq!(
            serde_json::to_value(&stats).unwrap()[field],
            stored[field],
            "results.json stats.{field} differs from the analysis of history.jsonl"
        );
    }

    // The report page ↔ the analysis.
    let page = Page::from_run_dir(&dir);
    let all = page.data.stats.last().unwrap();
    assert_eq!(all.f, "all");
    for s in &page.data.stats[..page.data.stats.len() - 1] {
        let out = stats.outside_faults.get(&s.f).copied().unwrap_or_default();
        let dur = stats.during_faults.get(&s.f).copied().unwrap_or_default();
        assert_eq!(
            (
                s.out_of_fault.ok as u64,
                s.out_of_fault.fail as u64,
                s.out_of_fault.info as u64
            ),
            (out.ok, out.fail, out.info),
            "{} outside faults",
            s.f
        );
        assert_eq!(
            (
                s.in_fault.ok as u64,
                s.in_fault.fail as u64,
                s.in_fault.info as u64
            ),
            (dur.ok, dur.fail, dur.info),
            "{} during faults",
            s.f
        );
    }
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-12,
        (None, None) => true,
        _ => false,
    };
    assert!(close(
        all.out_of_fault.availability(),
        stats.availability_outside_faults
    ));
    assert!(close(
        all.in_fault.availability(),
        stats.availability_during_faults
    ));

    // The terminal summary prints the same availability.
    let rendered = summary::render(&stats);
    let line = rendered
        .lines()
        .find(|l| l.starts_with("availability"))
        .unwrap();
    for a in [
        stats.availability,
        stats.availability_outside_faults,
        stats.availability_during_faults,
    ] {
        assert!(line.contains(&pct(a)), "{line}");
    }
}
