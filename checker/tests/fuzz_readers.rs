//! Fuzzing the readers: arbitrary bytes, and lines of real corpus files mutated, in every
//! format (and auto-detection). A reader never panics; it accepts, or rejects with an error
//! that names the file and a line that exists. Accepted histories are then checked (briefly)
//! without a panic either. A few thousand cases run in CI; 100,000 with `--ignored`.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use splitbrain_checker::read::{read_from, Format, ReadError};
use splitbrain_checker::{check, CheckOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

const FORMATS: [Format; 5] = [
    Format::Auto,
    Format::Jsonl,
    Format::Edn,
    Format::PorcupineEtcd,
    Format::PorcupineKv,
];

/// Seeds: real files of each format (corpus files, and JSONL and EDN written here).
fn seeds() -> Vec<Vec<u8>> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/porcupine/test_data");
    let mut out = Vec::new();
    for f in [
        "jepsen/etcd_000.log",
        "jepsen/etcd_002.log",
        "kv/c01-bad.txt",
        "kv/c01-ok.txt",
    ] {
        let p = dir.join(f);
        out.push(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())));
    }
    out.push(
        concat!(
            r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"cas","key":"k1","value":[null,2]}"#,
            "\n",
            r#"{"index":1,"time":2,"process":"nemesis","type":"info","f":"start","value":null}"#,
            "\n",
            r#"{"index":2,"time":3,"process":0,"type":"ok","f":"cas","key":"k1","value":[null,2],"node":"n1"}"#,
            "\n",
            r#"{"index":3,"time":4,"process":"w","type":"invoke","f":"read","key":"k1","value":null}"#,
            "\n",
            r#"{"index":4,"time":5.5,"process":"w","type":"ok","f":"read","key":"k1","value":2}"#,
            "\n",
        )
        .as_bytes()
        .to_vec(),
    );
    out.push(
        b"[{:process 0, :type :invoke, :f :enqueue, :value 1, :time 3}\n\
          {:process :nemesis, :type :info, :f :start, :value nil}\n\
          #jepsen.history.Op{:process 0, :type :ok, :f :enqueue, :value 1, :index 2}\n\
          {:process \"p\", :type :invoke, :f :txn, :value [[:read :x nil] [:write :y 2]]}\n\
          {:process \"p\", :type :ok, :f :txn, :value [[:read :x nil] [:write :y 2]], :error :jepsen/x}\n\
          {:process 1, :type :invoke, :f :add, :value [3 4]}\n\
          {:process 1, :type :info, :f :add, :value #{1 2}}]\n"
            .to_vec(),
    );
    out
}

/// A line-level mutation of `text`, every choice from `rng`.
fn mutate(text: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    for _ in 0..rng.gen_range(1..=3) {
        if lines.is_empty() {
            lines.push(Vec::new());
        }
        let i = rng.gen_range(0..lines.len());
        let n = lines[i].len();
        match rng.gen_range(0..8) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(rng.gen_range(0..=lines.len()), l);
            }
            2 => {
                let j = rng.gen_range(0..lines.len());
                lines.swap(i, j);
            }
            3 => lines[i].truncate(rng.gen_range(0..=n)),
            4 if n > 0 => {
                let a = rng.gen_range(0..n);
                let b = rng.gen_range(a..=n);
                lines[i].drain(a..b);
            }
            5 => {
                let at = rng.gen_range(0..=n);
                let junk: Vec<u8> = (0..rng.gen_range(1..6)).map(|_| rng.gen()).collect();
                lines[i].splice(at..at, junk);
            }
            6 if n > 0 => {
                // Replace one byte with a structural character.
                let at = rng.gen_range(0..n);
                lines[i][at] = *b"{}[]()\",: #-0123456789nil:\\"
                    .get(rng.gen_range(0..28))
                    .unwrap_or(&b'x');
            }
            _ => {
                // Copy a token from another line.
                let j = rng.gen_range(0..lines.len());
                let src = lines[j].clone();
                if !src.is_empty() {
                    let a = rng.gen_range(0..src.len());
                    let b = rng.gen_range(a..=src.len().min(a + 12));
                    let at = rng.gen_range(0..=n);
                    lines[i].splice(at..at, src[a..b].iter().copied());
                }
            }
        }
    }
    lines.join(&b'\n')
}

/// The claim: no panic; an accepted history checks without a panic; a rejection names the
/// file and a line of the input.
fn read_one(bytes: &[u8], format: Format) {
    let path = Path::new("fuzz/input.txt");
    match read_from(bytes, path, format) {
        Ok(h) => {
            let model = h.model_hint.expect("readers set a model hint");
            let opts = CheckOptions {
                timeout: Some(Duration::from_millis(50)),
                ..Default::default()
            };
            let _ = check(&h, model, &opts);
        }
        Err(e @ ReadError::Io { .. }) => panic!("an in-memory read failed: {e}"),
        Err(e) => {
            let line = e.line().expect("a parse error has a line");
            let lines = bytes.split(|&b| b == b'\n').count();
            assert!(line >= 1 && line <= lines, "line {line} of {lines}: {e}");
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("fuzz/input.txt:{line}: ")),
                "{msg}"
            );
        }
    }
}

fn run(cases: u32) {
    let seeds = seeds();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    // Arbitrary bytes, with a bias to text-like bytes.
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(
            prop::sample::select(b"{}[]()\",: \n#:-0123456789abcdefiklnoprstuvwxy\\".to_vec()),
            0..300
        ),
    ];
    runner
        .run(&(bytes, 0..FORMATS.len()), |(b, f)| {
            read_one(&b, FORMATS[f]);
            Ok(())
        })
        .unwrap();
    runner
        .run(
            &(0..seeds.len(), any::<u64>(), 0..FORMATS.len()),
            |(s, seed, f)| {
                let mut rng = StdRng::seed_from_u64(seed);
                let m = mutate(&seeds[s], &mut rng);
                read_one(&m, FORMATS[f]);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn readers_never_panic_and_name_file_and_line_on_fuzzed_input() {
    run(3000);
}

#[test]
#[ignore = "100,000 cases: cargo test --release -p splitbrain-checker --test fuzz_readers -- --ignored"]
fn readers_never_panic_on_100_000_fuzzed_inputs() {
    run(100_000);
}
