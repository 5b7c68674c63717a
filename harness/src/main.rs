//! `splitbrain`: the command-line interface. Clap and dispatch only: every subcommand is
//! `splitbrain::cli::<verb>::run`. Exit codes follow Jepsen: 0 valid, 1 invalid, 2 unknown,
//! 254 bad arguments or unreadable input, 255 internal error.

use clap::{Parser, Subcommand};
use splitbrain::cli;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "splitbrain",
    version,
    about = "Jepsen-style linearizability testing for local clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a test: start a local cluster, inject faults while clients work, check the history.
    // Boxed: its flags are most of the enum's size.
    Test(Box<cli::test::Args>),
    /// Check recorded histories for linearizability (native JSONL, Jepsen EDN, Porcupine logs).
    Check(cli::check::Args),
    /// Run a matrix of tests from a suite file.
    Suite(cli::suite::Args),
    /// Serve the results directory: an index of runs and their reports.
    Serve(cli::serve::Args),
    /// Benchmark targets without faults.
    Bench(cli::bench::Args),
    /// Run a Splitbrain Raft node (same flags as `splitbrain-node`).
    Node(splitbrain_node::cli::NodeArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                cli::exit::BAD_INPUT
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Test(a) => cli::test::run(*a),
        Command::Check(a) => cli::check::run(a),
        Command::Suite(a) => cli::suite::run(a),
        Command::Serve(a) => cli::serve::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Node(a) => splitbrain_node::cli::run(a).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::exit::code_for_error(&e))
        }
    }
}
