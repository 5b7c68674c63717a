//! `splitbrain`: a Jepsen-style linearizability test harness for local clusters, as a library.
//! The binary (`src/main.rs`) only parses arguments and calls [`cli`].
//!
//! A test run (`runner`) goes: set up the cluster → start clients and the nemesis → run for
//! the time limit → heal everything → wait for recovery → final reads → stop → check → report.
//! Every random choice follows from one seed, printed at the start and stored in `test.json`.
//!
//! # Layout
//! - [`cli`]: one module per subcommand (`test`, `check`, `suite`, `serve`, `bench`): clap
//!   `Args` and `run(Args) -> exit code`; exit codes in [`cli::exit`].
//! - [`plan`]: the typed plan of a run ([`plan::TestPlan`]), parsed and validated once from
//!   the flags `test`, `suite` and `bench` share ([`plan::PlanArgs`]).
//! - [`runner`]: one test run from its plan to its outcome (`run_test(plan, cancel,
//!   progress)`), phase by phase, with a cancellation token and a progress observer passed in.
//! - [`sut`]: the systems under test (`splitbrain`, `etcd`, `cmd`, `nats`): how to start a member, a
//!   [`sut::Client`] per member, and what a member says about itself.
//! - [`cluster`]: the members: start, kill, pause, resume, restart, status, leader.
//! - [`host`]: where member processes run and how they are supervised ([`host::Host`]: spawn,
//!   signal, kill and reap, exit status, logs; [`host::LocalHost`], dying with the harness;
//!   [`host::ssh::SshHost`], a remote machine over SSH for `--hosts FILE`).
//! - [`net`]: how members reach each other and how links are cut or degraded (`proxy`,
//!   `netns`, `message`, and `ssh`: nftables on remote hosts), behind the [`net::Network`]
//!   trait.
//! - [`nemesis`]: the seeded fault schedule and its faults (one file per fault).
//! - [`maelstrom`]: `--target maelstrom`: Maelstrom lin-kv nodes as piped processes, the
//!   harness as their network (`router`: per-node queues, the message fault engine, latency,
//!   the `lin-kv` service; `process`: the host of piped, niced processes; `protocol`: pure).
//! - [`endcheck`]: end-of-run cluster checks (members converge, none exited, none behind).
//! - [`monitor`]: invariants watched during the run from every member's `/status` (one
//!   leader per term, one state per applied index); its findings join the cluster check.
//! - [`client`]: client workers (one logical process each), the rate limiter, final reads.
//! - [`recorder`]: the history as it happens, streamed to `history.jsonl`.
//! - [`analysis`]: one analysis of a run's history (ops, fault windows, statistics,
//!   availability, recovery times) that the summary, `results.json`, the report and the suite
//!   all read.
//! - [`summary`]: the terminal summary of a run's statistics.
//! - [`report`]: `report.html`, `latency.svg`, `rate.svg` for a run directory or a history.
//! - [`storage`]: members' data dirs on fault filesystems (power loss), leftover cleanup.
//! - [`store`]: the results directory (`results/<name>/<time>/`, `results/latest`).
//! - [`suite`]: a matrix of runs from a suite file, `summary.json/html`, `junit.xml`.
//! - [`testkit`]: fixtures shared by the unit and integration tests (not for production use).

pub mod analysis;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod endcheck;
pub mod host;
pub mod maelstrom;
pub mod monitor;
pub mod nemesis;
pub mod net;
pub mod plan;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod storage;
pub mod store;
pub mod suite;
pub mod summary;
pub mod sut;
pub mod testkit;
