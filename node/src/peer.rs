//! Outgoing peer messages: two sender tasks per peer, over reqwest.
//!
//! Messages are split into two lanes so that a large data message never holds up the small
//! ones Raft's liveness depends on:
//! - **control**: votes, heartbeats and every other Append without entries, and all
//!   responses; a bounded queue of [`QUEUE`] messages.
//! - **data**: Appends that carry entries, and InstallSnapshot; bounded by
//!   [`MAX_QUEUED_DATA_BYTES`] of entry and snapshot data.
//!
//! A full lane drops the message (Raft tolerates loss; the leader resends after its stall
//! detection). Each task takes what is queued — up to [`MAX_BATCH`] messages and about
//! [`MAX_BODY_BYTES`] of body — groups consecutive messages of the same route and POSTs each
//! group as a JSON array to `{peer}/raft/{route}` with the cluster token, in order, one
//! request at a time. A refused or failed POST loses only its own group. Failures are logged
//! at debug level and forgotten: messages are one-way, Raft retries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::raft::{Message, MessageBody, NodeId};

/// Header carrying the cluster token on peer routes.
pub const TOKEN_HEADER: &str = "x-splitbrain-token";
/// Control messages queued per peer before new ones are dropped.
pub const QUEUE: usize = 4096;
/// Data messages queued per peer (a count bound beside the byte bound).
pub const DATA_QUEUE: usize = 1024;
/// Entry and snapshot data queued per peer before new data messages are dropped.
pub const MAX_QUEUED_DATA_BYTES: u64 = 64 << 20;
/// Messages per POST.
pub const MAX_BATCH: usize = 256;
/// Estimated body bytes per POST (a single larger message still goes alone).
pub const MAX_BODY_BYTES: u64 = 4 << 20;

/// Entry or snapshot data a message carries (what dominates its size).
pub fn data_bytes(m: &Message) -> u64 {
    match &m.body {
        MessageBody::Append { entries, .. } => entries.iter().map(|e| e.data.len() as u64).sum(),
        MessageBody::InstallSnapshot { snapshot, .. } => snapshot.data.len() as u64,
        _ => 0,
    }
}

fn is_data(m: &Message) -> bool {
    match &m.body {
        MessageBody::Append { entries, .. } => !entries.is_empty(),
        MessageBody::InstallSnapshot { .. } => true,
        _ => false,
    }
}

/// A rough size of the JSON body of `m`: base64 data plus a per-entry overhead.
fn body_estimate(m: &Message) -> u64 {
    let entries = match &m.body {
        MessageBody::Append { entries, .. } => entries.len() as u64,
        _ => 0,
    };
    data_bytes(m) * 4 / 3 + 64 * entries + 160
}

/// The queues of one peer.
#[derive(Clone)]
pub struct Outbox {
    control: mpsc::Sender<Message>,
    data: mpsc::Sender<(Message, u64)>,
    queued_data: Arc<AtomicU64>,
}

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Dropped {
    ControlFull,
    DataFull,
}

impl Outbox {
    /// Queues `m` on its lane without waiting; a full lane drops it.
    pub fn try_send(&self, m: Message) -> Result<(), Dropped> {
        if !is_data(&m) {
            return self.control.try_send(m).map_err(|_| Dropped::ControlFull);
        }
        let b = data_bytes(&m);
        let before = self.queued_data.fetch_add(b, Ordering::AcqRel);
        if before > 0 && before + b > MAX_QUEUED_DATA_BYTES {
            self.queued_data.fetch_sub(b, Ordering::AcqRel);
            return Err(Dropped::DataFull);
        }
        self.data.try_send((m, b)).map_err(|_| {
            self.queued_data.fetch_sub(b, Ordering::AcqRel);
            Dropped::DataFull
        })
    }
}

/// Starts the sender tasks of every peer (on the current tokio runtime) and returns their
/// queues.
pub fn spawn_senders(
    peers: &[(NodeId, String)],
    token: &str,
    client: reqwest::Client,
    timeout: Duration,
) -> HashMap<NodeId, Outbox> {
    let mut out = HashMap::new();
    for (id, url) in peers {
        let url = url.trim_end_matches('/').to_string();
        let (ctx, crx) = mpsc::channel(QUEUE);
        let (dtx, mut drx) = mpsc::channel::<(Message, u64)>(DATA_QUEUE);
        let queued = Arc::new(AtomicU64::new(0));
        let post = Poster {
            id: id.clone(),
            url,
            token: token.to_string(),
            client: client.clone(),
            timeout,
        };
        tokio::spawn(post.clone().run(crx));
        // The data lane: unwrap the byte accounting, then the same sender loop.
        let (fwd_tx, fwd_rx) = mpsc::channel::<Message>(1);
        let q = queued.clone();
        tokio::spawn(async move {
            while let Some((m, b)) = drx.recv().await {
                q.fetch_sub(b, Ordering::AcqRel);
                if fwd_tx.send(m).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(post.run(fwd_rx));
        out.insert(
            id.clone(),
            Outbox {
                control: ctx,
                data: dtx,
                queued_data: queued,
            },
        );
    }
    out
}

#[derive(Clone)]
struct Poster {
    id: NodeId,
    url: String,
    token: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl Poster {
    async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let mut batch: Vec<Message> = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.clear();
            let mut size = body_estimate(&first);
            batch.push(first);
            while batch.len() < MAX_BATCH && size < MAX_BODY_BYTES {
                match rx.try_recv() {
                    Ok(m) => {
                        size += body_estimate(&m);
                        batch.push(m);
                    }
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
                self.post(route, &batch[start..end]).await;
                start = end;
            }
        }
    }

    async fn post(&self, route: &str, group: &[Message]) {
        let t = if route == "snapshot" {
            self.timeout.max(Duration::from_secs(10))
        } else {
            self.timeout
        };
        let res = self
            .client
            .post(format!("{}/raft/{route}", self.url))
            .header(TOKEN_HEADER, &self.token)
            .timeout(t)
            .json(group)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::debug!(peer = %self.id, status = %r.status(), "peer refused messages")
            }
            Err(e) => tracing::debug!(peer = %self.id, error = %e, "sending to peer failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::Entry;

    fn append(bytes: usize) -> Message {
        Message {
            from: "n1".into(),
            to: "n2".into(),
            term: 1,
            body: MessageBody::Append {
                prev_log_index: 0,
                prev_log_term: 0,
                entries: if bytes == 0 {
                    vec![]
                } else {
                    vec![Entry {
                        term: 1,
                        index: 1,
                        data: vec![0; bytes],
                    }]
                },
                commit: 0,
                read_ctx: 0,
            },
        }
    }

    #[test]
    fn a_full_data_lane_drops_data_but_heartbeats_still_queue() {
        // No sender tasks: nothing drains, so the lanes fill.
        let (ctx, _crx) = mpsc::channel(QUEUE);
        let (dtx, _drx) = mpsc::channel(DATA_QUEUE);
        let out = Outbox {
            control: ctx,
            data: dtx,
            queued_data: Arc::new(AtomicU64::new(0)),
        };
        let mut queued = 0u64;
        loop {
            match out.try_send(append(1 << 20)) {
                Ok(()) => queued += 1,
                Err(e) => {
                    assert_eq!(e, Dropped::DataFull);
                    break;
                }
            }
            assert!(queued < 1000, "the data lane is not bounded by bytes");
        }
        assert_eq!(queued, MAX_QUEUED_DATA_BYTES >> 20);
        assert_eq!(out.try_send(append(0)), Ok(()), "a heartbeat still queues");
    }
}
