//! `splitbrain check`. (Being built.)

/// Arguments of `splitbrain check`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("`splitbrain check` is not built yet")
}
