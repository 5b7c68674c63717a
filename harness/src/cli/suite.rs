//! `splitbrain suite`. (Being built.)

/// Arguments of `splitbrain suite`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("`splitbrain suite` is not built yet")
}
