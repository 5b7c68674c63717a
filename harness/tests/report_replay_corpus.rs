//! The report's counterexample replay is the checker's own: on every invalid history of the
//! Porcupine corpus, the model states the page shows beside each step of the linearizable
//! prefix are exactly those of `splitbrain_checker::replay` over the same prefix.

use splitbrain::report::page_data::{state_string, CxView};
use splitbrain_checker::read::{read_file, Format};
use splitbrain_checker::{check, replay, CheckOptions, ModelKind, Verdict};
use std::path::PathBuf;

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/porcupine");
    assert!(
        dir.join("MANIFEST.tsv").is_file(),
        "corpus missing: expected {}/MANIFEST.tsv",
        dir.display()
    );
    dir
}

#[test]
fn the_reports_replay_equals_the_checkers_on_every_invalid_corpus_history() {
    let dir = corpus();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let (mut histories, mut steps_compared) = (0, 0);
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (path, model, expected) = (cols[0], cols[2], cols[3]);
        if expected != "illegal" {
            continue;
        }
        let model = match model {
            "etcd-cas-register" => ModelKind::CasRegister,
            _ => ModelKind::AppendKv,
        };
        let h = read_file(&dir.join(path), Format::Auto).unwrap();
        let r = check(&h, model, &CheckOptions::default());
        assert_eq!(r.valid, Verdict::Invalid, "{path}");
        let cx = r
            .counterexample
            .expect("invalid comes with a counterexample");
        let want = replay(model, &cx.prefix).unwrap();
        let json = serde_json::to_value(&cx).unwrap();
        let view = CxView::from_json(&json, Some(model.name()));
        assert_eq!(view.prefix_total, want.len(), "{path}: every prefix step");
        // The page keeps the last steps (nearest the failure); compare those.
        let tail = &want[want.len() - view.prefix.len()..];
        for (shown, step) in view.prefix.iter().zip(tail) {
            assert_eq!(
                shown.before,
                state_string(Some(&step.before)),
                "{path}: state before step {}",
                shown.number
            );
            assert_eq!(
                shown.after,
                state_string(step.after.as_ref()),
                "{path}: state after step {}",
                shown.number
            );
            steps_compared += 1;
        }
        histories += 1;
    }
    assert_eq!(histories, 82, "the corpus has 82 invalid histories");
    assert!(steps_compared > 0, "some counterexample has a prefix");
}
