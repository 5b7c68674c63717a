//! Every history of the Porcupine corpus (`../shared/corpus/porcupine/MANIFEST.tsv`) gets the
//! verdict Porcupine gives it.

use splitbrain_checker::read::{read_file, Format};
use splitbrain_checker::{check, CheckOptions, ModelKind, Verdict};
use std::path::PathBuf;

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/porcupine");
    assert!(
        dir.join("MANIFEST.tsv").is_file(),
        "corpus missing: expected {}/MANIFEST.tsv (the shared Porcupine corpus)",
        dir.display()
    );
    dir
}

#[test]
fn every_corpus_history_gets_porcupines_verdict() {
    let dir = corpus();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (path, format, model, expected) = (cols[0], cols[1], cols[2], cols[3]);
        let format = match format {
            "jepsen-etcd-log" => Format::PorcupineEtcd,
            "kv-append-edn-log" => Format::PorcupineKv,
            f => panic!("unknown corpus format {f}"),
        };
        let model = match model {
            "etcd-cas-register" => ModelKind::CasRegister,
            _ => ModelKind::AppendKv,
        };
        let want = match expected {
            "ok" => Verdict::Valid,
            "illegal" => Verdict::Invalid,
            e => panic!("unknown expected verdict {e}"),
        };
        // Auto detection must agree with the manifest's format.
        let h = read_file(&dir.join(path), Format::Auto).unwrap();
        let h2 = read_file(&dir.join(path), format).unwrap();
        assert_eq!(
            h.ops, h2.ops,
            "{path}: auto-detected format reads differently"
        );
        let opts = CheckOptions {
            timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        };
        let r = check(&h, model, &opts);
        if r.valid != want {
            wrong.push(format!("{path}: got {} want {expected}", r.valid));
        }
        if want == Verdict::Invalid {
            assert!(
                r.counterexample.is_some(),
                "{path}: invalid without counterexample"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 109, "expected 109 corpus entries");
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}
