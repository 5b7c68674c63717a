//! Outgoing peer messages: one sender task per peer, over reqwest.
//!
//! The loop hands messages to a bounded queue per peer (full → the message is dropped; Raft
//! tolerates loss). The task takes every queued message (up to [`MAX_BATCH`]), groups
//! consecutive messages of the same route and POSTs each group as a JSON array to
//! `{peer}/raft/{route}` with the cluster token, in order, one request at a time. Failures are
//! logged at debug level and forgotten: messages are one-way, Raft retries.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::raft::{Message, NodeId};

/// Header carrying the cluster token on peer routes.
pub const TOKEN_HEADER: &str = "x-splitbrain-token";
/// Messages queued per peer before new ones are dropped.
pub const QUEUE: usize = 4096;
/// Messages per sender wake-up.
pub const MAX_BATCH: usize = 256;

/// Starts one sender task per peer (on the current tokio runtime) and returns their queues.
pub fn spawn_senders(
    peers: &[(NodeId, String)],
    token: &str,
    client: reqwest::Client,
    timeout: Duration,
) -> HashMap<NodeId, mpsc::Sender<Message>> {
    let mut out = HashMap::new();
    for (id, url) in peers {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(sender(
            id.clone(),
            url.trim_end_matches('/').to_string(),
            token.to_string(),
            client.clone(),
            timeout,
            rx,
        ));
        out.insert(id.clone(), tx);
    }
    out
}

async fn sender(
    id: NodeId,
    url: String,
    token: String,
    client: reqwest::Client,
    timeout: Duration,
    mut rx: mpsc::Receiver<Message>,
) {
    let mut batch: Vec<Message> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut start = 0;
        while start < batch.len() {
            let route = batch[start].body.route();
            let mut end = start + 1;
            while end < batch.len() && batch[end].body.route() == route {
                end += 1;
            }
            let group = &batch[start..end];
            let t = if route == "snapshot" {
                timeout.max(Duration::from_secs(10))
            } else {
                timeout
            };
            let res = client
                .post(format!("{url}/raft/{route}"))
                .header(TOKEN_HEADER, &token)
                .timeout(t)
                .json(group)
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::debug!(peer = %id, status = %r.status(), "peer refused messages"),
                Err(e) => tracing::debug!(peer = %id, error = %e, "sending to peer failed"),
            }
            start = end;
        }
    }
}
