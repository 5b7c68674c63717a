//! The seeded schedule is unchanged across refactors: `splitbrain test --dry-run` (the nemesis
//! schedule, with times and targets, and each worker's first operations) must print exactly
//! what the code before the redesign printed, stored in `fixtures/schedules/<case>.json`.

use std::path::Path;
use std::process::Command;

/// (fixture name, `splitbrain test` arguments) — the arguments the fixtures were made with.
const CASES: &[(&str, &[&str])] = &[
    (
        "seed1-all",
        &[
            "--seed",
            "1",
            "--nemesis",
            "all",
            "--time-limit",
            "60",
            "--nemesis-interval",
            "3",
        ],
    ),
    (
        "seed7-all-overlap",
        &[
            "--seed",
            "7",
            "--nemesis",
            "all,delay",
            "--nemesis-overlap",
            "--time-limit",
            "90",
            "--nemesis-interval",
            "2",
            "--nodes",
            "5",
        ],
    ),
    (
        "seed42-partition-3nodes",
        &[
            "--seed",
            "42",
            "--nemesis",
            "partition",
            "--nodes",
            "3",
            "--time-limit",
            "40",
            "--nemesis-interval",
            "3",
            "--workload",
            "cas-register",
        ],
    ),
    (
        "seed5-kill-pause-unique",
        &[
            "--seed",
            "5",
            "--nemesis",
            "kill,pause,isolate-leader",
            "--nodes",
            "7",
            "--time-limit",
            "30",
            "--concurrency",
            "3n",
            "--unique-writes",
            "--workload",
            "kv",
            "--ops-per-key",
            "7",
        ],
    ),
    (
        "seed9-none-register",
        &[
            "--seed",
            "9",
            "--nemesis",
            "none",
            "--workload",
            "register",
            "--concurrency",
            "4",
        ],
    ),
];

#[test]
fn the_seeded_schedule_and_worker_operations_match_the_stored_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schedules");
    for (name, args) in CASES {
        let out = Command::new(env!("CARGO_BIN_EXE_splitbrain"))
            .arg("test")
            .arg("--dry-run")
            .args(*args)
            .output()
            .expect("running splitbrain test --dry-run");
        assert!(out.status.success(), "{name}: {out:?}");
        let got: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: --dry-run printed no JSON ({e})"));
        let path = dir.join(format!("{name}.json"));
        let want: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            got["schedule"].as_array().is_some_and(|s| !s.is_empty())
                || *name == "seed9-none-register",
            "{name}: the case has faults to compare"
        );
        assert_eq!(
            got,
            want,
            "{name}: the schedule differs from {}",
            path.display()
        );
    }
}
