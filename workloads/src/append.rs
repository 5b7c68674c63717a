//! `append`: per key a list; clients append unique values and read the whole list. Checked
//! with the checker's `append-kv` model (Porcupine's kv: a string per key, `append`
//! concatenates, `get`/`read` returns the whole string, absent = `""`).
//!
//! # History mapping
//! The model works on strings, so each element `v` is the token `"v,"` in the history: an
//! append of 17 is `{"f":"append","key":"k3","value":"17,"}`, a read of `[3, 17]` is
//! `{"f":"read","key":"k3","value":"3,17,"}` and a read of an absent key is `null`. Every
//! appended value is unique in the run (worker `w` of `C` appends `1 + w + C·i`), and the
//! tokens form a prefix code (the comma ends each), so the model's version hints apply: each
//! read reveals the exact state every observed append was applied to, which decides long
//! histories of concurrent appends.
//!
//! Keys move on as in `kv` (groups of at most `KV_GROUP_SIZE` workers, `ops_per_key` per key);
//! half the operations are reads, half appends.

use crate::registers::Keys;
use crate::seeds::{Seeds, Stream};
use crate::{register_completion, Completion, Generator, Op, Outcome, Reply, Workload};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use splitbrain_checker::history::EventType;
use splitbrain_checker::ModelKind;

/// The `append` workload.
#[derive(Debug, Clone, Copy)]
pub struct Append;

/// The history's string for a list element.
pub fn token(v: i64) -> String {
    format!("{v},")
}

/// The history's string for a whole list.
pub fn tokens(list: &[i64]) -> String {
    list.iter().map(|v| token(*v)).collect()
}

impl Workload for Append {
    fn name(&self) -> &'static str {
        "append"
    }
    fn model(&self) -> ModelKind {
        ModelKind::AppendKv
    }
    fn keyed(&self) -> bool {
        true
    }
    fn generators(
        &self,
        concurrency: usize,
        ops_per_key: u64,
        seed: u64,
        _unique_writes: bool,
    ) -> Vec<Box<dyn Generator>> {
        let concurrency = concurrency.max(1);
        (0..concurrency)
            .map(|w| {
                Box::new(AppendGen {
                    rng: StdRng::seed_from_u64(Seeds::new(seed).of(Stream::Worker(w))),
                    keys: Keys::for_worker(w, concurrency, ops_per_key, true),
                    next_value: 1 + w as i64,
                    stride: concurrency as i64,
                }) as Box<dyn Generator>
            })
            .collect()
    }
    fn invocation_value(&self, op: &Op) -> Value {
        match op {
            Op::Append { value, .. } => Value::String(token(*value)),
            _ => Value::Null,
        }
    }
    fn completion(&self, op: &Op, outcome: Outcome<Reply>) -> Completion {
        match (op, outcome) {
            (Op::Read { .. }, Outcome::Ok(Reply::List(list))) => {
                Completion::new(EventType::Ok, Value::String(tokens(&list)), None)
            }
            (Op::Read { .. }, Outcome::Ok(Reply::Value(None))) => {
                Completion::new(EventType::Ok, Value::Null, None)
            }
            (Op::Read { .. }, Outcome::Ok(other)) => Completion::new(
                EventType::Fail,
                Value::Null,
                Some(format!("not a list: {other:?}")),
            ),
            (Op::Read { .. }, Outcome::Fail(r) | Outcome::Info(r)) => {
                Completion::new(EventType::Fail, Value::Null, Some(r))
            }
            (Op::Append { .. }, outcome) => {
                let v = self.invocation_value(op);
                match outcome {
                    Outcome::Ok(_) => Completion::new(EventType::Ok, v, None),
                    Outcome::Fail(r) => Completion::new(EventType::Fail, v, Some(r)),
                    Outcome::Info(r) => Completion::new(EventType::Info, v, Some(r)),
                }
            }
            (other, outcome) => register_completion(other, outcome),
        }
    }
}

/// One worker's appends and reads.
#[derive(Debug, Clone)]
pub struct AppendGen {
    rng: StdRng,
    keys: Keys,
    /// The next value this worker appends; values step by the number of workers, so no two
    /// appends of the run append the same value.
    next_value: i64,
    stride: i64,
}

impl Generator for AppendGen {
    fn next_op(&mut self) -> Op {
        let key = self.keys.next_key();
        if self.rng.gen_range(0..2) == 0 {
            Op::Read { key }
        } else {
            let value = self.next_value;
            self.next_value += self.stride;
            Op::Append { key, value }
        }
    }
    fn keys_used(&self) -> Vec<String> {
        self.keys.used()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitbrain_checker::history::History;
    use splitbrain_checker::{check, CheckOptions, Verdict};

    fn ops(seed: u64) -> Vec<Vec<Op>> {
        Append
            .generators(10, 100, seed, false)
            .into_iter()
            .map(|mut g| (0..200).map(|_| g.next_op()).collect())
            .collect()
    }

    #[test]
    fn every_appended_value_is_unique_and_half_the_ops_read() {
        let all = ops(3);
        assert_eq!(all, ops(3), "same seed, same operations");
        assert_ne!(all, ops(4));
        let mut seen = std::collections::HashSet::new();
        let (mut reads, mut appends) = (0, 0);
        for op in all.iter().flatten() {
            match op {
                Op::Append { value, .. } => {
                    appends += 1;
                    assert!(seen.insert(*value), "{value} appended twice");
                }
                Op::Read { .. } => reads += 1,
                other => panic!("the append workload asked for {other:?}"),
            }
        }
        assert!(
            reads > 800 && appends > 800,
            "{reads} reads, {appends} appends"
        );
    }

    /// A history of one key as the harness records it: (process, op, completion) in order,
    /// each op completing before the next is invoked.
    fn history(steps: &[(Op, Outcome<Reply>)]) -> History {
        let mut events = Vec::new();
        let mut t = 0u64;
        for (i, (op, outcome)) in steps.iter().enumerate() {
            let c = Append.completion(op, outcome.clone());
            let inv = serde_json::json!({"index": events.len(), "time": t, "process": i,
                "type": "invoke", "f": op.f().name(), "key": op.key(),
                "value": Append.invocation_value(op)});
            t += 10;
            let kind = match c.kind {
                EventType::Ok => "ok",
                EventType::Fail => "fail",
                EventType::Info => "info",
                EventType::Invoke => "invoke",
            };
            let done = serde_json::json!({"index": events.len() + 1, "time": t, "process": i,
                "type": kind, "f": op.f().name(), "key": op.key(), "value": c.value});
            t += 10;
            events.push(inv);
            events.push(done);
        }
        let events = events
            .into_iter()
            .map(|e| serde_json::from_value(e).unwrap())
            .collect();
        History::from_events(events).unwrap()
    }

    fn verdict(steps: &[(Op, Outcome<Reply>)]) -> Verdict {
        check(
            &history(steps),
            ModelKind::AppendKv,
            &CheckOptions::default(),
        )
        .valid
    }

    fn append(v: i64) -> (Op, Outcome<Reply>) {
        (
            Op::Append {
                key: "k0".into(),
                value: v,
            },
            Outcome::Ok(Reply::Done),
        )
    }

    fn read(list: &[i64]) -> (Op, Outcome<Reply>) {
        let reply = if list.is_empty() {
            Reply::Value(None)
        } else {
            Reply::List(list.to_vec())
        };
        (Op::Read { key: "k0".into() }, Outcome::Ok(reply))
    }

    #[test]
    fn the_mapped_history_checks_valid_with_the_append_kv_model() {
        assert_eq!(
            verdict(&[
                read(&[]),
                append(1),
                append(12),
                read(&[1, 12]),
                append(2),
                read(&[1, 12, 2])
            ]),
            Verdict::Valid
        );
    }

    #[test]
    fn a_read_missing_a_completed_append_is_invalid() {
        assert_eq!(
            verdict(&[append(1), append(12), read(&[1])]),
            Verdict::Invalid
        );
        assert_eq!(
            verdict(&[append(1), append(12), read(&[12, 1])]),
            Verdict::Invalid
        );
    }
}
