//! The recorder: the history, streamed to `history.jsonl` as it happens.
//!
//! Every event gets the next `index` and the nanoseconds since the test started (monotonic),
//! is written as one JSON line and flushed at once, so a run that crashes leaves a history the
//! checker can read (an invocation left open is treated as `info`). A copy stays in memory for
//! the checker and the summary.

use anyhow::Context;
use serde_json::Value;
use splitbrain_checker::history::{Event, EventType, Process};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

struct Inner {
    out: BufWriter<File>,
    events: Vec<Event>,
    /// Why each event is what it is (`cas-mismatch`, `timeout`, …), by event index; kept for
    /// the summary only (the history format has no field for it).
    reasons: Vec<Option<String>>,
    error: Option<String>,
}

/// Appends events to the history (thread-safe).
pub struct Recorder {
    start: Instant,
    keyed: bool,
    inner: Mutex<Inner>,
}

impl Recorder {
    /// Creates `path`; times count from `start`. `keyed`: write each op's key (multi-key
    /// workloads); single-register histories carry no key.
    pub fn create(path: &Path, start: Instant, keyed: bool) -> anyhow::Result<Recorder> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Recorder {
            start,
            keyed,
            inner: Mutex::new(Inner {
                out: BufWriter::new(f),
                events: Vec::new(),
                reasons: Vec::new(),
                error: None,
            }),
        })
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Records one event and returns it. A write error is remembered (see [`Recorder::finish`])
    /// rather than stopping the run.
    pub fn record(
        &self,
        process: Process,
        kind: EventType,
        f: &str,
        key: Option<&str>,
        value: Value,
    ) -> Event {
        self.record_with_reason(process, kind, f, key, value, None)
    }

    /// [`Recorder::record`] with the reason of a `fail` or `info` (for the summary).
    pub fn record_with_reason(
        &self,
        process: Process,
        kind: EventType,
        f: &str,
        key: Option<&str>,
        value: Value,
        reason: Option<String>,
    ) -> Event {
        // A panic while holding the lock leaves a consistent Vec and writer: keep going.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let ev = Event {
            index: inner.events.len() as u64,
            time: self.start.elapsed().as_nanos() as u64,
            process,
            kind,
            f: f.to_string(),
            key: if self.keyed || process == Process::Nemesis {
                key.map(|k| Value::String(k.to_string()))
            } else {
                None
            },
            value,
        };
        let line = serde_json::to_string(&ev).map_err(|e| e.to_string());
        let res = line.and_then(|l| {
            writeln!(inner.out, "{l}")
                .and_then(|_| inner.out.flush())
                .map_err(|e| e.to_string())
        });
        if let Err(e) = res {
            inner.error.get_or_insert(e);
        }
        inner.events.push(ev.clone());
        inner.reasons.push(reason);
        ev
    }

    /// A nemesis event (`process: "nemesis"`, `type: info`).
    pub fn nemesis(&self, f: &str, value: Value) -> Event {
        self.record(Process::Nemesis, EventType::Info, f, None, value)
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .clone()
    }

    /// The reasons recorded with events, by event index.
    pub fn reasons(&self) -> Vec<Option<String>> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reasons
            .clone()
    }

    /// Flushes and reports the first write error, if any.
    pub fn finish(&self) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.out.flush().context("flushing history.jsonl")?;
        inner
            .out
            .get_ref()
            .sync_all()
            .context("syncing history.jsonl")?;
        if let Some(e) = &inner.error {
            anyhow::bail!("writing history.jsonl: {e}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn streams_each_event_to_disk_before_returning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let r = Recorder::create(&path, Instant::now(), true).unwrap();
        r.record(
            Process::Client(3),
            EventType::Invoke,
            "cas",
            Some("k7"),
            json!([1, 4]),
        );
        // Read while the recorder is still open: the line must already be there.
        let text = std::fs::read_to_string(&path).unwrap();
        let ev: Event = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(ev.index, 0);
        assert_eq!(ev.key, Some(json!("k7")));
        assert_eq!(ev.value, json!([1, 4]));
        r.nemesis("start-kill", json!({"nodes": ["n1"]}));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .contains("\"process\":\"nemesis\""));
    }

    #[test]
    fn single_register_histories_carry_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::create(&dir.path().join("h"), Instant::now(), false).unwrap();
        let ev = r.record(
            Process::Client(0),
            EventType::Invoke,
            "read",
            Some("register"),
            Value::Null,
        );
        assert_eq!(ev.key, None);
    }
}
