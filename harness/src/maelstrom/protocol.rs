//! The Maelstrom protocol, pure: envelopes, addresses, error codes, how a lin-kv answer becomes
//! an [`Outcome`], and the `lin-kv` service's state machine.
//!
//! # Messages (Maelstrom's `doc/protocol.md`)
//! One JSON object per line: `{"src": ID, "dest": ID, "body": {"type": T, "msg_id": N,
//! "in_reply_to": N, …}}`. Nodes are `n0 … n(N-1)`, clients `c0, c1 …` (the harness's own `init`
//! comes from `c0`), services by name (`lin-kv`). `init {node_id, node_ids}` → `init_ok`.
//! Errors are bodies `{"type": "error", "code": C, "text": …}`.
//!
//! # Answers → outcomes (Maelstrom's `client.clj` `with-errors` and `workload/lin_kv.clj`)
//! - `read_ok {value}` → `Ok(Value)`; `write_ok`, `cas_ok` → `Ok(Done)`.
//! - A read that gets any error, or no answer, is `fail` (reads change nothing). With
//!   `--maelstrom-missing-read-null`, a read answered `20 key-does-not-exist` is a read of `null`
//!   instead (the default is Maelstrom's: `fail`).
//! - A write or cas that gets a **definite** error (1, 10, 11, 12, 14, 20, 21, 22, 30: see
//!   [`definite`]) is `fail`; any other code (0 timeout, 13 crash, codes Maelstrom does not
//!   define) or no answer before the client's timeout is `info`.

use serde_json::{Map, Value};
use splitbrain_workloads::{Op, Outcome, Reply};
use std::collections::HashMap;

/// The services the harness provides to nodes, addressable as `dest`.
pub const SERVICES: &[&str] = &["lin-kv"];

/// The id the harness's `init` messages come from.
pub const INIT_CLIENT: &str = "c0";

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub src: String,
    pub dest: String,
    pub body: Map<String, Value>,
}

impl Envelope {
    pub fn kind(&self) -> &str {
        self.body.get("type").and_then(Value::as_str).unwrap_or("")
    }
    pub fn in_reply_to(&self) -> Option<u64> {
        self.body.get("in_reply_to").and_then(Value::as_u64)
    }
    pub fn msg_id(&self) -> Option<u64> {
        self.body.get("msg_id").and_then(Value::as_u64)
    }
    /// The line for this envelope (no newline).
    pub fn to_line(&self) -> String {
        serde_json::json!({"src": self.src, "dest": self.dest, "body": self.body}).to_string()
    }
}

/// Parses one line a node wrote; the error says what is wrong with it.
pub fn parse_line(line: &str) -> Result<Envelope, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut o) = v else {
        return Err("not a JSON object".into());
    };
    let mut field = |name: &str| match o.remove(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("`{name}` is not a string")),
        None => Err(format!("no `{name}`")),
    };
    let src = field("src")?;
    let dest = field("dest")?;
    let body = match o.remove("body") {
        Some(Value::Object(b)) => b,
        Some(_) => return Err("`body` is not an object".into()),
        None => return Err("no `body`".into()),
    };
    Ok(Envelope { src, dest, body })
}

/// What a destination id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addr {
    Node,
    Client,
    Service,
    Unknown,
}

/// Classifies `id` for a cluster whose nodes are `nodes`.
pub fn addr(id: &str, nodes: &[String]) -> Addr {
    if nodes.iter().any(|n| n == id) {
        Addr::Node
    } else if SERVICES.contains(&id) {
        Addr::Service
    } else if id.len() > 1 && id.starts_with('c') && id[1..].bytes().all(|b| b.is_ascii_digit()) {
        Addr::Client
    } else {
        Addr::Unknown
    }
}

/// True if error `code` means the operation certainly did not happen (Maelstrom's
/// `errors.edn`); unknown codes are indefinite, as Maelstrom says custom codes are.
pub fn definite(code: i64) -> bool {
    matches!(code, 1 | 10 | 11 | 12 | 14 | 20 | 21 | 22 | 30)
}

/// Maelstrom's name of error `code`.
pub fn error_name(code: i64) -> &'static str {
    match code {
        0 => "timeout",
        1 => "node-not-found",
        10 => "not-supported",
        11 => "temporarily-unavailable",
        12 => "malformed-request",
        13 => "crash",
        14 => "abort",
        20 => "key-does-not-exist",
        21 => "key-already-exists",
        22 => "precondition-failed",
        30 => "txn-conflict",
        _ => "custom",
    }
}

/// The request body of a lin-kv client operation (`msg_id` is added by the client);
/// `Append` has no lin-kv request.
pub fn request(op: &Op, create_if_not_exists: bool) -> Option<Map<String, Value>> {
    let v = match op {
        Op::Read { key } => serde_json::json!({"type": "read", "key": key}),
        Op::Write { key, value } => {
            serde_json::json!({"type": "write", "key": key, "value": value})
        }
        Op::Cas { key, from, to } if create_if_not_exists => serde_json::json!(
            {"type": "cas", "key": key, "from": from, "to": to, "create_if_not_exists": true}
        ),
        Op::Cas { key, from, to } => {
            serde_json::json!({"type": "cas", "key": key, "from": from, "to": to})
        }
        Op::Append { .. } => return None,
    };
    match v {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The outcome of `op` given its answer (`None`: no answer before the timeout). See the module
/// docs.
pub fn outcome(
    op: &Op,
    answer: Option<&Map<String, Value>>,
    missing_read_null: bool,
) -> Outcome<Reply> {
    let read = op.is_read();
    let Some(body) = answer else {
        return if read {
            Outcome::Fail("timeout (no answer)".into())
        } else {
            Outcome::Info("timeout (no answer)".into())
        };
    };
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
    match (op, kind) {
        (Op::Read { .. }, "read_ok") => match body.get("value") {
            None | Some(Value::Null) => Outcome::Ok(Reply::Value(None)),
            Some(v) => match v.as_i64() {
                Some(i) => Outcome::Ok(Reply::Value(Some(i))),
                None => Outcome::Fail(format!("read_ok with a value that is not an integer: {v}")),
            },
        },
        (Op::Write { .. }, "write_ok") | (Op::Cas { .. }, "cas_ok") => Outcome::Ok(Reply::Done),
        (_, "error") => {
            let code = body.get("code").and_then(Value::as_i64).unwrap_or(-1);
            // The node's text stays out of the reason, so that reasons aggregate.
            let why = format!("error {code} {}", error_name(code));
            if read && code == 20 && missing_read_null {
                Outcome::Ok(Reply::Value(None))
            } else if read || definite(code) {
                if matches!(op, Op::Cas { .. }) && code == 22 {
                    Outcome::Fail("cas-mismatch".into())
                } else {
                    Outcome::Fail(why)
                }
            } else {
                Outcome::Info(why)
            }
        }
        (_, other) => {
            let why = format!("unexpected answer type {other:?}");
            if read {
                Outcome::Fail(why)
            } else {
                Outcome::Info(why)
            }
        }
    }
}

/// The `lin-kv` service: a linearizable map (every request is applied atomically, in the order
/// the router hands them over). Keys are compared by their JSON text.
#[derive(Debug, Default)]
pub struct LinKv {
    map: HashMap<String, Value>,
}

fn error_body(code: i64, text: impl Into<String>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), "error".into());
    m.insert("code".into(), code.into());
    m.insert("text".into(), Value::String(text.into()));
    m
}

impl LinKv {
    /// Applies one request body; returns the answer body (without `in_reply_to`).
    pub fn handle(&mut self, body: &Map<String, Value>) -> Map<String, Value> {
        let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
        let Some(key) = body.get("key") else {
            return error_body(12, format!("{kind}: no `key`"));
        };
        let k = key.to_string();
        let ok = |t: &str| {
            let mut m = Map::new();
            m.insert("type".into(), t.into());
            m
        };
        match kind {
            "read" => match self.map.get(&k) {
                Some(v) => {
                    let mut m = ok("read_ok");
                    m.insert("value".into(), v.clone());
                    m
                }
                None => error_body(20, format!("key {k} does not exist")),
            },
            "write" => match body.get("value") {
                Some(v) => {
                    self.map.insert(k, v.clone());
                    ok("write_ok")
                }
                None => error_body(12, "write: no `value`"),
            },
            "cas" => {
                let (Some(from), Some(to)) = (body.get("from"), body.get("to")) else {
                    return error_body(12, "cas: needs `from` and `to`");
                };
                let create = body
                    .get("create_if_not_exists")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                match self.map.get(&k) {
                    Some(cur) if cur == from => {
                        self.map.insert(k, to.clone());
                        ok("cas_ok")
                    }
                    Some(cur) => error_body(22, format!("expected {from}, had {cur}")),
                    None if create => {
                        self.map.insert(k, to.clone());
                        ok("cas_ok")
                    }
                    None => error_body(20, format!("key {k} does not exist")),
                }
            }
            other => error_body(10, format!("lin-kv does not support {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn a_line_parses_into_an_envelope_and_bad_lines_say_what_is_wrong() {
        let e = parse_line(r#"{"src":"n1","dest":"c3","body":{"type":"read_ok","in_reply_to":4}}"#)
            .unwrap();
        assert_eq!(
            (e.src.as_str(), e.dest.as_str(), e.kind()),
            ("n1", "c3", "read_ok")
        );
        assert_eq!(e.in_reply_to(), Some(4));
        assert!(parse_line("hello").unwrap_err().contains("not JSON"));
        assert!(parse_line("[1]").unwrap_err().contains("object"));
        assert!(parse_line(r#"{"src":"n1","body":{}}"#)
            .unwrap_err()
            .contains("dest"));
        assert!(parse_line(r#"{"src":"n1","dest":"n2","body":3}"#)
            .unwrap_err()
            .contains("body"));
    }

    #[test]
    fn addresses_are_nodes_clients_services_or_unknown() {
        let nodes = vec!["n0".to_string(), "n1".to_string()];
        assert_eq!(addr("n1", &nodes), Addr::Node);
        assert_eq!(addr("n2", &nodes), Addr::Unknown);
        assert_eq!(addr("c12", &nodes), Addr::Client);
        assert_eq!(addr("c", &nodes), Addr::Unknown);
        assert_eq!(addr("lin-kv", &nodes), Addr::Service);
    }

    #[test]
    fn definite_errors_fail_writes_and_indefinite_ones_leave_them_unknown() {
        let w = Op::Write {
            key: "k".into(),
            value: 1,
        };
        for code in [11, 20, 22, 14] {
            let a = obj(json!({"type":"error","code":code}));
            assert!(
                matches!(outcome(&w, Some(&a), false), Outcome::Fail(_)),
                "{code}"
            );
        }
        for code in [0, 13, 1000] {
            let a = obj(json!({"type":"error","code":code}));
            assert!(
                matches!(outcome(&w, Some(&a), false), Outcome::Info(_)),
                "{code}"
            );
        }
        assert!(matches!(outcome(&w, None, false), Outcome::Info(_)));
        let c = Op::Cas {
            key: "k".into(),
            from: 1,
            to: 2,
        };
        let a = obj(json!({"type":"error","code":22}));
        assert!(matches!(outcome(&c, Some(&a), false), Outcome::Fail(r) if r == "cas-mismatch"));
    }

    #[test]
    fn reads_fail_on_any_error_or_timeout_unless_missing_keys_read_null() {
        let r = Op::Read { key: "k".into() };
        assert!(matches!(outcome(&r, None, false), Outcome::Fail(_)));
        let crash = obj(json!({"type":"error","code":13}));
        assert!(matches!(outcome(&r, Some(&crash), false), Outcome::Fail(_)));
        let missing = obj(json!({"type":"error","code":20}));
        assert!(matches!(
            outcome(&r, Some(&missing), false),
            Outcome::Fail(_)
        ));
        assert_eq!(
            outcome(&r, Some(&missing), true),
            Outcome::Ok(Reply::Value(None))
        );
        let ok = obj(json!({"type":"read_ok","value":7}));
        assert_eq!(
            outcome(&r, Some(&ok), false),
            Outcome::Ok(Reply::Value(Some(7)))
        );
    }

    #[test]
    fn the_lin_kv_service_reads_writes_and_compares_and_sets() {
        let mut kv = LinKv::default();
        let t = |m: Map<String, Value>| m["type"].as_str().unwrap().to_string();
        let code = |m: Map<String, Value>| m["code"].as_i64().unwrap();
        assert_eq!(code(kv.handle(&obj(json!({"type":"read","key":1})))), 20);
        assert_eq!(
            code(kv.handle(&obj(json!({"type":"cas","key":1,"from":1,"to":2})))),
            20
        );
        assert_eq!(
            t(kv.handle(&obj(
                json!({"type":"cas","key":1,"from":1,"to":2,"create_if_not_exists":true})
            ))),
            "cas_ok"
        );
        assert_eq!(
            code(kv.handle(&obj(json!({"type":"cas","key":1,"from":1,"to":3})))),
            22
        );
        assert_eq!(
            t(kv.handle(&obj(json!({"type":"write","key":1,"value":5})))),
            "write_ok"
        );
        assert_eq!(
            kv.handle(&obj(json!({"type":"read","key":1})))["value"],
            json!(5)
        );
        assert_eq!(code(kv.handle(&obj(json!({"type":"txn","key":1})))), 10);
    }
}
