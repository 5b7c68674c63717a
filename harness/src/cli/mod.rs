//! One module per subcommand (`splitbrain <verb>`): each has an `Args` (clap) and
//! `run(Args) -> anyhow::Result<u8>` returning the process exit code.

pub mod bench;
pub mod check;
pub mod exit;
pub mod serve;
pub mod suite;
pub mod test;
