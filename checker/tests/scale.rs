//! Scale: the memo of one long key stays bounded by the history's concurrency, not its length.

mod common;

use common::sim::{simulate, Sim, SimModel};
use splitbrain_checker::history::History;
use splitbrain_checker::{check, CheckOptions, MemoryBudget, ModelKind, Verdict};
use std::sync::Arc;

#[test]
fn the_memo_of_one_key_with_200_000_ops_stays_small() {
    let cfg = Sim {
        model: SimModel::CasRegister,
        processes: 5,
        ops: 280_000, // about 200,000 after the failed cas are removed
        keys: 0,
        info_rate: 0.01,
        values: 0,
    };
    let h = History::from_events(simulate(&cfg, 7)).unwrap();
    let n = h.ops.len();
    assert!(n > 190_000, "{n} ops");
    // Five processes: the search stores about 1.7 memo entries per op here. A memo keyed by
    // the whole linearized set needs n/64 words per entry (~27 KB each, ~10 GB in all); the
    // frontier encoding needs about 2 words. 256 MiB is far less than the first and far more
    // than the second.
    let budget = Arc::new(MemoryBudget::new(256 << 20));
    let opts = CheckOptions {
        memory: Some(budget.clone()),
        ..Default::default()
    };
    let r = check(&h, ModelKind::CasRegister, &opts);
    assert_eq!(r.valid, Verdict::Valid, "{:?}", r.per_key[0].reason);
    let peak = budget.peak();
    eprintln!(
        "one key, {n} ops: memo peak {:.1} MiB ({:.1} bytes per op)",
        peak as f64 / (1 << 20) as f64,
        peak as f64 / n as f64
    );
    assert!(peak < 64 << 20, "memo peak {peak} bytes");
}
