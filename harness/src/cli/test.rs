//! `splitbrain test`. (Being built.)

/// Arguments of `splitbrain test`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("`splitbrain test` is not built yet")
}
