//! `kill`: SIGKILL a minority of members; stopping the fault restarts them on their data dirs.

use crate::cluster::Cluster;

pub fn start(cluster: &Cluster, nodes: &[String]) -> anyhow::Result<()> {
    for n in nodes {
        cluster.kill(n)?;
    }
    Ok(())
}

pub fn stop(cluster: &Cluster, nodes: &[String]) -> anyhow::Result<()> {
    let mut first = None;
    for n in nodes {
        if cluster.state(n) == Some(crate::cluster::MemberState::Killed) {
            if let Err(e) = cluster.start(n) {
                first.get_or_insert(e);
            }
        }
    }
    first.map_or(Ok(()), Err)
}
