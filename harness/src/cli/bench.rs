//! `splitbrain bench`. (Being built.)

/// Arguments of `splitbrain bench`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("`splitbrain bench` is not built yet")
}
