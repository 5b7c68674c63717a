//! `splitbrain serve`. (Being built.)

/// Arguments of `splitbrain serve`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("`splitbrain serve` is not built yet")
}
