//! Suites: a matrix of tests (targets × workloads × nemeses × repeats) from a TOML file, run one
//! after another, summarized for people (`summary.html`), machines (`summary.json`) and CI
//! (`junit.xml`).
//!
//! # Layout
//! - this module: the suite file ([`SuiteFile`]), the matrix ([`SuiteFile::matrix`]) and the
//!   loop ([`run_suite`]) that calls a [`Runner`] once per cell and survives failing runs;
//! - [`junit`]: `junit.xml`; [`summary`]: `summary.json`, `summary.html` and the comparison of
//!   targets per workload × nemesis;
//! - [`history`]: what the summary computes from a run's `history.jsonl` (recovery times).
//!
//! # Suite file
//! ```toml
//! name = "smoke"            # required
//! targets = ["splitbrain"]  # required, names of `--target`
//! workloads = ["kv"]        # required
//! nemeses = ["partition", "kill"]   # required, each one `--nemesis` value
//! repeats = 1               # default 1
//! time_limit = 15           # seconds of each run (default 20)
//! max_minutes = 3           # budget of the whole suite: later runs are skipped (error)
//! nodes = 3                 # default 3
//! seed = 1                  # base seed; run i gets seed + i (default 1)
//! concurrency = "2n"        # optional, as --concurrency
//! rate = 0                  # optional
//! nemesis_interval = 3      # optional
//! recovery_time = 3         # optional
//! [nets]                    # optional: --net per target (default proxy, etcd and nats: netns)
//! etcd = "netns"
//! ```
//!
//! Exit code: 0 all valid, 1 any invalid (and none unknown or crashed), 2 any unknown, crashed
//! or skipped.

pub mod history;
pub mod junit;
pub mod summary;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors of suite files.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("reading suite file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("suite file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("suite file {path}: field `{field}`: {message}")]
    Field {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
}

/// A suite file. See the module docs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    pub name: String,
    pub targets: Vec<String>,
    pub workloads: Vec<String>,
    pub nemeses: Vec<String>,
    #[serde(default = "one")]
    pub repeats: u32,
    #[serde(default = "default_time_limit")]
    pub time_limit: f64,
    #[serde(default)]
    pub max_minutes: Option<f64>,
    #[serde(default = "three")]
    pub nodes: usize,
    #[serde(default = "one_u64")]
    pub seed: u64,
    #[serde(default)]
    pub concurrency: Option<String>,
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub nemesis_interval: Option<f64>,
    #[serde(default)]
    pub recovery_time: Option<f64>,
    #[serde(default)]
    pub nets: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}
fn one_u64() -> u64 {
    1
}
fn three() -> usize {
    3
}
fn default_time_limit() -> f64 {
    20.0
}

/// One cell of the matrix: one test run to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSpec {
    /// `<suite>-<target>-<workload>-<nemesis>-r<repeat>` (also the test name).
    pub name: String,
    pub target: String,
    pub net: String,
    pub workload: String,
    pub nemesis: String,
    pub repeat: u32,
    pub seed: u64,
    pub nodes: usize,
    pub time_limit: f64,
    pub concurrency: Option<String>,
    pub rate: Option<f64>,
    pub nemesis_interval: Option<f64>,
    pub recovery_time: Option<f64>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Valid,
    Invalid,
    Unknown,
    /// The run itself failed (an error, a panic) or was skipped by the suite's time budget.
    Crashed,
}

/// What the suite keeps of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub status: RunStatus,
    /// The run directory (with `report.html`), if the run got that far.
    pub run_dir: Option<PathBuf>,
    /// Counterexample or error text (empty when valid).
    pub message: String,
    pub elapsed_s: f64,
    /// ok operations per second over the run's time limit.
    pub throughput: Option<f64>,
    pub availability_during_faults: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Median time from the end of a fault to the next ok operation.
    pub recovery_s: Option<f64>,
    pub ops_ok: u64,
}

impl RunResult {
    /// A run that did not produce a verdict.
    pub fn crashed(message: impl Into<String>, elapsed_s: f64) -> Self {
        RunResult {
            status: RunStatus::Crashed,
            run_dir: None,
            message: message.into(),
            elapsed_s,
            throughput: None,
            availability_during_faults: None,
            latency_p50_ms: None,
            latency_p99_ms: None,
            recovery_s: None,
            ops_ok: 0,
        }
    }
}

/// Runs one cell. The production runner calls `splitbrain test`'s library entry point; tests
/// use fakes.
pub trait Runner {
    fn run(&mut self, spec: &RunSpec, results: &Path) -> RunResult;
}

impl SuiteFile {
    /// Reads and validates a suite file; errors name the file and the field or line.
    pub fn load(path: &Path) -> Result<Self, SuiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses suite text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, SuiteError> {
        let s: SuiteFile = toml::from_str(text).map_err(|e| SuiteError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        let field = |field, message: &str| SuiteError::Field {
            path: path.into(),
            field,
            message: message.into(),
        };
        if s.name.trim().is_empty() || s.name.contains(['/', ' ']) {
            return Err(field(
                "name",
                "must be a non-empty word without `/` or spaces",
            ));
        }
        for (f, v) in [
            ("targets", &s.targets),
            ("workloads", &s.workloads),
            ("nemeses", &s.nemeses),
        ] {
            if v.is_empty() {
                return Err(field(f, "must list at least one entry"));
            }
        }
        for t in &s.targets {
            if !crate::sut::TargetKind::parse(t).is_some_and(|k| k.builtin()) {
                return Err(field(
                    "targets",
                    &format!("unknown target {t:?} (expected splitbrain, etcd or nats)"),
                ));
            }
        }
        for t in s.nets.keys() {
            if !s.targets.contains(t) {
                return Err(field("nets", &format!("{t:?} is not one of the targets")));
            }
        }
        if s.repeats == 0 {
            return Err(field("repeats", "must be at least 1"));
        }
        if !(s.time_limit > 0.0 && s.time_limit.is_finite()) {
            return Err(field("time_limit", "must be a positive number of seconds"));
        }
        if s.max_minutes.is_some_and(|m| m.is_nan() || m <= 0.0) {
            return Err(field("max_minutes", "must be positive"));
        }
        if s.nodes == 0 {
            return Err(field("nodes", "must be at least 1"));
        }
        Ok(s)
    }

    /// The network used for `target`.
    pub fn net_for(&self, target: &str) -> String {
        self.nets.get(target).cloned().unwrap_or_else(|| {
            crate::sut::TargetKind::parse(target)
                .map_or(crate::net::NetKind::Proxy, |k| k.default_suite_net())
                .name()
                .to_string()
        })
    }

    /// Every run, in order: workload, nemesis, repeat, then target (so targets compared with
    /// each other run close together).
    pub fn matrix(&self) -> Vec<RunSpec> {
        let mut out = Vec::new();
        for w in &self.workloads {
            for n in &self.nemeses {
                for r in 1..=self.repeats {
                    for t in &self.targets {
                        let i = out.len() as u64;
                        out.push(RunSpec {
                            name: format!("{}-{t}-{w}-{}-r{r}", self.name, n.replace(',', "+")),
                            target: t.clone(),
                            net: self.net_for(t),
                            workload: w.clone(),
                            nemesis: n.clone(),
                            repeat: r,
                            seed: self.seed.wrapping_add(i),
                            nodes: self.nodes,
                            time_limit: self.time_limit,
                            concurrency: self.concurrency.clone(),
                            rate: self.rate,
                            nemesis_interval: self.nemesis_interval,
                            recovery_time: self.recovery_time,
                        });
                    }
                }
            }
        }
        out
    }
}

/// A finished suite.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteOutcome {
    pub dir: PathBuf,
    pub runs: Vec<(RunSpec, RunResult)>,
    pub elapsed_s: f64,
}

impl SuiteOutcome {
    /// 0 all valid, 1 any invalid, 2 any unknown or crashed (which wins over invalid).
    pub fn exit_code(&self) -> u8 {
        let any = |s: RunStatus| self.runs.iter().any(|(_, r)| r.status == s);
        if any(RunStatus::Unknown) || any(RunStatus::Crashed) {
            2
        } else if any(RunStatus::Invalid) {
            1
        } else {
            0
        }
    }
}

/// Runs every cell of `suite` with `runner`, writing `results/suites/<time>/` as it goes (the
/// summary files are rewritten after every run, so an interrupted suite still has them).
pub fn run_suite(
    suite: &SuiteFile,
    results: &Path,
    runner: &mut dyn Runner,
    mut progress: impl FnMut(usize, usize, &RunSpec, Option<&RunResult>),
) -> anyhow::Result<SuiteOutcome> {
    use anyhow::Context;
    let t0 = Instant::now();
    let stamp = chrono_like_stamp();
    let mut dir = results.join("suites").join(&stamp);
    let mut k = 1;
    while dir.exists() {
        k += 1;
        dir = results.join("suites").join(format!("{stamp}-{k}"));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let budget = suite.max_minutes.map(|m| Duration::from_secs_f64(m * 60.0));
    let matrix = suite.matrix();
    let mut outcome = SuiteOutcome {
        dir: dir.clone(),
        runs: Vec::new(),
        elapsed_s: 0.0,
    };
    for (i, spec) in matrix.iter().enumerate() {
        progress(i, matrix.len(), spec, None);
        let over = budget.is_some_and(|b| t0.elapsed() >= b);
        let result = if over {
            RunResult::crashed(
                format!(
                    "skipped: the suite's budget of {} minutes was used up",
                    suite.max_minutes.unwrap_or(0.0)
                ),
                0.0,
            )
        } else {
            runner.run(spec, results)
        };
        progress(i, matrix.len(), spec, Some(&result));
        outcome.runs.push((spec.clone(), result));
        outcome.elapsed_s = t0.elapsed().as_secs_f64();
        summary::write_all(suite, &outcome)?;
    }
    outcome.elapsed_s = t0.elapsed().as_secs_f64();
    summary::write_all(suite, &outcome)?;
    Ok(outcome)
}

/// `YYYYMMDDTHHMMSS` in UTC, from the system clock.
pub fn chrono_like_stamp() -> String {
    crate::store::timestamp(std::time::SystemTime::now())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn suite_text() -> &'static str {
        r#"
name = "t"
targets = ["splitbrain", "etcd"]
workloads = ["kv", "register"]
nemeses = ["partition", "kill"]
repeats = 2
time_limit = 5
"#
    }

    #[test]
    fn expands_the_matrix_with_targets_side_by_side_and_distinct_seeds() {
        let s = SuiteFile::parse(suite_text(), Path::new("t.toml")).unwrap();
        let m = s.matrix();
        assert_eq!(m.len(), 2 * 2 * 2 * 2);
        assert_eq!(m[0].name, "t-splitbrain-kv-partition-r1");
        assert_eq!(m[1].name, "t-etcd-kv-partition-r1");
        assert_eq!((m[0].net.as_str(), m[1].net.as_str()), ("proxy", "netns"));
        let mut seeds: Vec<u64> = m.iter().map(|r| r.seed).collect();
        seeds.dedup();
        assert_eq!(seeds.len(), m.len());
    }

    #[test]
    fn rejects_bad_suite_files_naming_the_field() {
        let p = Path::new("bad.toml");
        let e = SuiteFile::parse(
            "name='x'\ntargets=['nope']\nworkloads=['kv']\nnemeses=['kill']",
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("bad.toml") && e.contains("targets") && e.contains("nope"),
            "{e}"
        );
        let e = SuiteFile::parse(
            "name='x'\ntargets=[]\nworkloads=['kv']\nnemeses=['kill']",
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`targets`"), "{e}");
        let e = SuiteFile::parse(
            "name='x'\ntargets=['etcd']\nworkloads=['kv']\nnemeses=['kill']\ntime_limt=3",
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("time_limt") && e.contains("line 5"), "{e}");
    }

    #[test]
    fn stamps_look_like_the_run_store() {
        let s = chrono_like_stamp();
        assert_eq!(s.len(), 15);
        assert_eq!(&s[8..9], "T");
        assert!(s.starts_with("20"));
    }

    struct Fake(Vec<RunStatus>);
    impl Runner for Fake {
        fn run(&mut self, _spec: &RunSpec, _results: &Path) -> RunResult {
            let status = self.0.remove(0);
            RunResult {
                status,
                ..RunResult::crashed("counterexample: read 3 after write 4", 1.0)
            }
        }
    }

    #[test]
    fn exit_code_is_two_for_unknown_or_crashed_else_one_for_invalid() {
        let s = SuiteFile::parse(
            "name='x'\ntargets=['splitbrain']\nworkloads=['kv']\nnemeses=['kill','pause']",
            Path::new("x"),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let code = |v: Vec<RunStatus>| {
            run_suite(&s, dir.path(), &mut Fake(v), |_, _, _, _| {})
                .unwrap()
                .exit_code()
        };
        assert_eq!(code(vec![RunStatus::Valid, RunStatus::Valid]), 0);
        assert_eq!(code(vec![RunStatus::Valid, RunStatus::Invalid]), 1);
        assert_eq!(code(vec![RunStatus::Invalid, RunStatus::Unknown]), 2);
        assert_eq!(code(vec![RunStatus::Crashed, RunStatus::Valid]), 2);
    }
}
