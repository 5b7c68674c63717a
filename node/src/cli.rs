//! Flags of `splitbrain-node` (and `splitbrain node`), and `run`. (Being built: issue 3.)

/// Flags of a node.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// This node's id, e.g. `n1`.
    #[arg(long)]
    pub id: String,
}

/// Runs a node until SIGTERM/SIGINT.
pub fn run(_args: NodeArgs) -> anyhow::Result<()> {
    anyhow::bail!("the node is not built yet")
}
