//! `pause`: SIGSTOP a minority of members; stopping the fault sends SIGCONT.

use crate::cluster::Cluster;

pub fn start(cluster: &Cluster, nodes: &[String]) -> anyhow::Result<()> {
    for n in nodes {
        cluster.pause(n)?;
    }
    Ok(())
}

pub fn stop(cluster: &Cluster, nodes: &[String]) -> anyhow::Result<()> {
    let mut first = None;
    for n in nodes {
        if let Err(e) = cluster.resume(n) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}
