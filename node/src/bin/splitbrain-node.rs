//! `splitbrain-node`: thin binary over [`splitbrain_node::cli`].
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "splitbrain-node",
    version,
    about = "A durable Raft key-value node over HTTP"
)]
struct Cli {
    #[command(flatten)]
    args: splitbrain_node::cli::NodeArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match splitbrain_node::cli::run(cli.args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
