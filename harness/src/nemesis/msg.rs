//! The message faults of `--net message` (see `crate::net::message::faults`): `msg-loss`,
//! `msg-dup`, `msg-reorder`, `msg-replay` and `msg-trim`, each a fault kind whose parameters
//! are drawn from the schedule's seed (so they are in `test.json` and `--dry-run`), active
//! from its `start-msg-…` event to its `stop-msg-…` event. The stop event carries what the
//! fault did while it was active (`counts`: the relay's counters over that period).
//!
//! They need [`Needs::messages`]: only a network that sees single peer messages
//! ([`crate::net::LinkControl::messages`]) can run them. None is part of `all`.

use super::{BoxFuture, Fault, FaultKind, Needs, Started};
use crate::cluster::Cluster;
use crate::net::message::faults::{self as mf, KindFilter, TrimMode};
use crate::net::message::relay::RelayControl;
use crate::net::message::wire::Kind as MsgKind;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One of the five random message fault kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgFaultKind {
    Loss,
    Dup,
    Reorder,
    Replay,
    Trim,
}

/// The message relay of `cluster`'s network, or an error naming the flag.
pub fn relay(cluster: &Cluster) -> anyhow::Result<RelayControl> {
    cluster.net.messages().ok_or_else(|| {
        anyhow::anyhow!(
            "the {} network cannot see single messages (use --net message)",
            cluster.net.name()
        )
    })
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl FaultKind for MsgFaultKind {
    fn name(&self) -> &'static str {
        match self {
            MsgFaultKind::Loss => "msg-loss",
            MsgFaultKind::Dup => "msg-dup",
            MsgFaultKind::Reorder => "msg-reorder",
            MsgFaultKind::Replay => "msg-replay",
            MsgFaultKind::Trim => "msg-trim",
        }
    }
    fn group(&self) -> Option<&'static str> {
        Some("msg")
    }
    fn in_all(&self) -> bool {
        false
    }
    fn needs(&self) -> Needs {
        Needs {
            messages: true,
            ..Needs::default()
        }
    }
    fn plan(&self, _nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        let fault = match self {
            MsgFaultKind::Loss => {
                let kinds = [
                    KindFilter::ALL,
                    KindFilter::only(&[MsgKind::Append]),
                    KindFilter::only(&[MsgKind::Vote, MsgKind::VoteResp]),
                    KindFilter::only(&[
                        MsgKind::VoteResp,
                        MsgKind::AppendResp,
                        MsgKind::SnapshotResp,
                    ]),
                ][rng.gen_range(0..4)];
                mf::Fault::loss(round(rng.gen_range(0.05..0.3))).kinds(kinds)
            }
            MsgFaultKind::Dup => mf::Fault::dup(round(rng.gen_range(0.1..0.5))),
            MsgFaultKind::Reorder => mf::Fault::Reorder {
                p: round(rng.gen_range(0.3..1.0)),
                max_delay: Duration::from_millis(rng.gen_range(20..=200)),
                kinds: KindFilter::ALL,
                links: mf::LinkSel::All,
            },
            MsgFaultKind::Replay => mf::Fault::Replay {
                p: round(rng.gen_range(0.05..0.3)),
                depth: rng.gen_range(4..=32),
                kinds: KindFilter::only(&[MsgKind::Append]),
                links: mf::LinkSel::All,
            },
            MsgFaultKind::Trim => {
                let mode = match rng.gen_range(0..3) {
                    0 => TrimMode::DropOwnTerm,
                    1 => TrimMode::KeepAtMost(rng.gen_range(0..=2)),
                    _ => TrimMode::RandomPrefix,
                };
                mf::Fault::Trim {
                    p: round(rng.gen_range(0.3..1.0)),
                    mode,
                    links: mf::LinkSel::All,
                    hold_commit: mf::HoldCommit::Off,
                }
            }
        };
        Arc::new(MsgFault::new(self.name(), fault))
    }
}

/// The relay's counters as a JSON object of numbers.
pub fn counters_json(c: &mf::Counters) -> Value {
    serde_json::to_value(c).unwrap_or_default()
}

/// `after - before`, field by field (both [`counters_json`] objects).
pub fn counters_delta(before: &Value, after: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(a) = after.as_object() {
        for (k, v) in a {
            let b = before.get(k).and_then(Value::as_u64).unwrap_or(0);
            out.insert(k.clone(), json!(v.as_u64().unwrap_or(0).saturating_sub(b)));
        }
    }
    Value::Object(out)
}

/// What a message fault did between its start and stop.
#[derive(Debug, Default)]
pub struct Counts {
    before: Option<Value>,
    delta: Option<Value>,
}

impl Counts {
    pub fn begin(&mut self, relay: &RelayControl) {
        self.before = Some(counters_json(&relay.counters()));
    }
    pub fn end(&mut self, relay: &RelayControl) {
        let after = counters_json(&relay.counters());
        self.delta = Some(counters_delta(
            self.before.as_ref().unwrap_or(&json!({})),
            &after,
        ));
    }
    pub fn json(&self) -> Option<Value> {
        self.delta.clone()
    }
}

/// One planned message fault.
#[derive(Debug)]
pub struct MsgFault {
    name: &'static str,
    pub fault: mf::Fault,
    counts: Mutex<Counts>,
}

impl Clone for MsgFault {
    fn clone(&self) -> MsgFault {
        MsgFault::new(self.name, self.fault.clone())
    }
}

impl MsgFault {
    pub fn new(name: &'static str, fault: mf::Fault) -> MsgFault {
        MsgFault {
            name,
            fault,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Plain data behind the lock: a poisoned lock still holds usable numbers.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The parameters of a message fault as JSON fields.
pub fn fault_fields(f: &mf::Fault) -> Value {
    let ms = |d: &Duration| json!(d.as_millis() as u64);
    match f {
        mf::Fault::Loss { p, kinds, .. } | mf::Fault::Dup { p, kinds, .. } => {
            json!({"p": p, "kinds": kinds.to_string()})
        }
        mf::Fault::Reorder {
            p,
            max_delay,
            kinds,
            ..
        } => json!({"p": p, "max_delay_ms": ms(max_delay), "kinds": kinds.to_string()}),
        mf::Fault::Replay {
            p, depth, kinds, ..
        } => {
            json!({"p": p, "depth": depth, "kinds": kinds.to_string()})
        }
        mf::Fault::Trim {
            p,
            mode,
            hold_commit,
            ..
        } => json!({"p": p, "hold_commit": hold_commit.json(), "mode": match mode {
            TrimMode::DropOwnTerm => "own-term".to_string(),
            TrimMode::KeepAtMost(n) => format!("keep:{n}"),
            TrimMode::RandomPrefix => "random".to_string(),
            TrimMode::KeepAll => "all".to_string(),
        }}),
        mf::Fault::Delay { delay, jitter, .. } => {
            json!({"delay_ms": ms(delay), "jitter_ms": ms(jitter)})
        }
    }
}

impl Fault for MsgFault {
    fn family(&self) -> &'static str {
        self.name
    }
    fn fields(&self) -> Value {
        let mut v = fault_fields(&self.fault);
        if let Some(c) = self.counts().json() {
            v["counts"] = c;
        }
        v
    }
    fn label(&self) -> String {
        let f = fault_fields(&self.fault);
        let params: Vec<String> = f
            .as_object()
            .map(|o| o.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        format!("{} {}", self.name, params.join(" "))
    }
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        Box::pin(async move {
            // A fresh copy counts this period (the planned fault stays as planned).
            let applied = self.clone();
            let res = relay(cluster).and_then(|r| {
                applied.counts().begin(&r);
                r.set_fault(self.fault.clone()).map_err(anyhow::Error::from)
            });
            Started {
                fault: Arc::new(applied),
                error: res.err().map(|e| format!("{e:#}")),
                note: None,
            }
        })
    }
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let r = relay(cluster)?;
        r.clear_fault(self.fault.name());
        self.counts().end(&r);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn message_faults_draw_their_parameters_from_the_schedule_seed() {
        let nodes: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
        for k in [
            MsgFaultKind::Loss,
            MsgFaultKind::Dup,
            MsgFaultKind::Reorder,
            MsgFaultKind::Replay,
            MsgFaultKind::Trim,
        ] {
            let a = k.plan(&nodes, &mut StdRng::seed_from_u64(4)).describe();
            let b = k.plan(&nodes, &mut StdRng::seed_from_u64(4)).describe();
            assert_eq!(a, b);
            assert_eq!(a["fault"], k.name());
            let p = a["p"].as_f64().unwrap();
            assert!(p > 0.0 && p <= 1.0, "{a}");
        }
    }

    #[test]
    fn counts_are_the_difference_over_the_fault_period() {
        let d = counters_delta(
            &json!({"lost": 3, "seen": 10}),
            &json!({"lost": 5, "seen": 30}),
        );
        assert_eq!(d, json!({"lost": 2, "seen": 20}));
    }
}
