//! What the report page is fed: operations paired from a history, fault periods, statistics,
//! plot series and the counterexample, all computed here so that they can be unit-tested
//! without a browser.
//!
//! # Contract
//! - Input is a list of history events in DESIGN §1's shape as JSON values (`index`, `time` in
//!   ns, `process` = number or `"nemesis"`, `type`, `f`, `key`, `value`). Reading is tolerant:
//!   a line that is not an event is kept as a warning for the page, never a panic, because a
//!   crashed run may end in half a line.
//! - Every client invocation becomes exactly one [`Op`]: an invoke followed by the process's
//!   next completion (`ok`/`fail`/`info`). An invoke with no completion is shown as `info`
//!   with an open end (the checker treats it so too). A completion without an invoke is a
//!   warning. No op is ever dropped: [`PageData::ops`] has one entry per invocation.
//! - Nemesis events become [`Fault`] periods: `start-X` opens a period of kind `X` and `stop-X`
//!   closes it; `kill`/`restart`, `pause`/`resume`, `partition`/`heal` are paired the same way
//!   (Jepsen's names). A repeat of an open start (Jepsen's invoke then info of one nemesis op)
//!   adds to its description; a stop with nothing open is ignored; any other nemesis event is an
//!   instant marker. A period still open at the end of the history ends there.

use serde::Serialize;
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// How a client operation completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
        }
    }
}

/// One client operation: an invocation and its completion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Op {
    /// The `index` of the invoke event (as written in the history; else its position).
    pub index: u64,
    /// The process as written (`"3"`, or a name for other histories).
    pub process: String,
    /// Which lane of the timeline the op is drawn in (see `from_events` for the packing).
    pub lane: u32,
    /// Index of the process in [`PageData::procs`].
    pub pid: u32,
    /// The operation's function (`read`, `write`, `cas`, …).
    pub f: String,
    pub key: Option<String>,
    /// The invoke's value and the completion's value, as compact JSON.
    pub invoke_value: String,
    pub result_value: Option<String>,
    /// Nanoseconds since the test started.
    pub start: u64,
    /// Completion time; `None` for an invoke that never completed (open to +∞).
    pub end: Option<u64>,
    pub outcome: Outcome,
    /// Whether the op was invoked while a fault was active.
    pub in_fault: bool,
    /// Why it failed or is unknown (from `results.json`'s `reasons`, when the run has them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Op {
    /// Latency in nanoseconds; `None` when the op never completed.
    pub fn latency(&self) -> Option<u64> {
        self.end.map(|e| e.saturating_sub(self.start))
    }
}

/// A fault period (or an instant nemesis event when `start == end`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fault {
    pub kind: String,
    /// Short: the fault's kind and whom it hit (`isolate-leader n1 | n2,n3,n4,n5`, `pause n4`).
    pub description: String,
    /// The nemesis events' values as JSON.
    pub detail: String,
    pub start: u64,
    pub end: u64,
}

/// Latency quantiles in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub count: usize,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Quantiles {
    /// Quantiles of `values` (sorted here); all zero when empty.
    pub fn of(mut values: Vec<u64>) -> Quantiles {
        values.sort_unstable();
        let q = |p: f64| quantile_sorted(&values, p);
        Quantiles {
            count: values.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: values.last().copied().unwrap_or(0),
        }
    }
}

/// Nearest-rank quantile of sorted values; 0 for none (`crate::analysis::percentile`).
pub fn quantile_sorted(sorted: &[u64], p: f64) -> u64 {
    crate::analysis::percentile(sorted, p)
}

/// Counts of one operation function, in and out of faults.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    /// `fail`s that were answers (failed compares): available (`crate::analysis`).
    pub answered_fail: usize,
}

impl Counts {
    fn add(&mut self, op: &Op) {
        match op.outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => {
                self.fail += 1;
                if crate::analysis::answered_fail(&op.f, op.reason.as_deref()) {
                    self.answered_fail += 1;
                }
            }
            Outcome::Info => self.info += 1,
        }
    }
    pub fn total(&self) -> usize {
        self.ok + self.fail + self.info
    }
    /// Share of ops that were available (`crate::analysis`'s one definition: ok, or a failed
    /// compare); `None` when there are none.
    pub fn availability(&self) -> Option<f64> {
        (self.total() > 0).then(|| (self.ok + self.answered_fail) as f64 / self.total() as f64)
    }
}

/// Statistics of one operation function (`f`), or of all (`f == "all"`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FStats {
    pub f: String,
    pub in_fault: Counts,
    pub out_of_fault: Counts,
    pub latency_ok: Quantiles,
}

/// One time bucket of the throughput plot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RateBucket {
    /// Bucket start, ns.
    pub start: u64,
    /// Completions per second in this bucket by function, for `ok` completions only.
    pub ok_per_s: BTreeMap<String, f64>,
    /// All completions (ok, fail, info) per second.
    pub all_per_s: f64,
}

/// One time bucket of the latency quantile lines (ok ops invoked in the bucket).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencyBucket {
    pub start: u64,
    pub count: usize,
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
}

/// One step of the counterexample: an op linearized and the model state around it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CxStep {
    /// 1-based position in the linearization.
    pub number: usize,
    pub op: String,
    /// `invoke_index` of the op in the history, when known.
    pub index: Option<u64>,
    pub process: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One op of the counterexample window, with its interval when known.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CxOp {
    pub label: String,
    pub process: Option<String>,
    pub index: Option<u64>,
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// The counterexample of an invalid partition, normalised for drawing. Built tolerantly from
/// the checker's JSON: fields it cannot find are left empty and the raw JSON is shown too.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CxView {
    pub key: Option<String>,
    pub window: Vec<CxOp>,
    /// The last [`MAX_PREFIX_STEPS`] steps of the prefix.
    pub prefix: Vec<CxStep>,
    /// Length of the whole prefix.
    pub prefix_total: usize,
    pub failing: Option<String>,
    pub failing_index: Option<u64>,
    pub failing_process: Option<String>,
    pub state: Option<String>,
    pub message: Option<String>,
    /// The checker's own account (`Counterexample::to_text`), when the run stored it.
    pub text: Option<String>,
    pub raw: String,
}

/// Everything the page shows besides the header.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageData {
    pub ops: Vec<Op>,
    /// Label of each lane: its first process, and how many followed it.
    pub lanes: Vec<String>,
    /// Every process, sorted numerically then by name; [`Op::pid`] indexes it.
    pub procs: Vec<String>,
    pub faults: Vec<Fault>,
    /// Function names in order of first appearance (stable colours).
    pub fs: Vec<String>,
    /// Time of the last event, ns.
    pub end_time: u64,
    pub stats: Vec<FStats>,
    pub rate: Vec<RateBucket>,
    pub rate_bucket_ns: u64,
    pub latency: Vec<LatencyBucket>,
    pub warnings: Vec<String>,
    pub nemesis_events: usize,
}

/// Cap on warnings kept, so a history of garbage does not make a page of garbage.
const MAX_WARNINGS: usize = 50;

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn names(v: &Value) -> Option<String> {
    let a = v.as_array()?;
    Some(a.iter().map(compact).collect::<Vec<_>>().join(","))
}

/// A short description of a fault from its nemesis value: the `kind` (or the fault's name) and
/// the `groups` (`a,b | c,d,e`) or `nodes`/`node` it hit; other values as compact JSON.
pub fn describe_fault(kind: &str, v: &Value) -> String {
    let Some(m) = v.as_object() else {
        return if v.is_null() {
            kind.to_string()
        } else {
            format!("{kind} {}", compact(v))
        };
    };
    let name = m.get("kind").and_then(Value::as_str).unwrap_or(kind);
    let whom = if let Some(groups) = m.get("groups").and_then(Value::as_array) {
        Some(
            groups
                .iter()
                .filter_map(names)
                .collect::<Vec<_>>()
                .join(" | "),
        )
    } else if let Some(n) = m.get("nodes").and_then(names) {
        Some(n)
    } else {
        m.get("node").map(compact)
    };
    match whom {
        Some(w) if name == kind => format!("{kind} {w}"),
        Some(w) => format!("{kind}: {name} {w}"),
        None => {
            let mut s = format!("{kind} {}", compact(v));
            if s.len() > 80 {
                let mut end = 77;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
                s.push('…');
            }
            s
        }
    }
}

fn process_name(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn is_nemesis(p: &str) -> bool {
    p == "nemesis" || p == ":nemesis"
}

/// The fault kind a nemesis `f` opens or closes, if it is one of the paired names.
fn fault_edge(f: &str) -> Option<(bool, String)> {
    if let Some(k) = f
        .strip_prefix("start-")
        .or_else(|| f.strip_prefix("start_"))
    {
        return Some((true, k.to_string()));
    }
    if let Some(k) = f.strip_prefix("stop-").or_else(|| f.strip_prefix("stop_")) {
        return Some((false, k.to_string()));
    }
    match f {
        "kill" => Some((true, "kill".into())),
        "restart" | "start" => Some((false, "kill".into())),
        "pause" => Some((true, "pause".into())),
        "resume" | "unpause" => Some((false, "pause".into())),
        "partition" => Some((true, "partition".into())),
        "heal" => Some((false, "partition".into())),
        _ => None,
    }
}

impl PageData {
    /// Builds the page data from history events (DESIGN §1 JSON). `warnings` from reading are
    /// carried into the page.
    pub fn from_events(events: &[Value], warnings: Vec<String>) -> PageData {
        Self::from_events_with_reasons(events, warnings, &[])
    }

    /// [`PageData::from_events`] with the reason of each `fail`/`info` completion by event
    /// index (`results.json`'s `reasons`), so that availability is `crate::analysis`'s.
    pub fn from_events_with_reasons(
        events: &[Value],
        mut warnings: Vec<String>,
        reasons: &[Option<String>],
    ) -> PageData {
        let warn = |w: String, ws: &mut Vec<String>| {
            if ws.len() < MAX_WARNINGS {
                ws.push(w);
            } else if ws.len() == MAX_WARNINGS {
                ws.push("… more warnings left out".into());
            }
        };
        let mut ops: Vec<Op> = Vec::new();
        let mut open: HashMap<String, usize> = HashMap::new();
        let mut faults: Vec<Fault> = Vec::new();
        let mut open_faults: BTreeMap<String, usize> = BTreeMap::new();
        let mut fs: Vec<String> = Vec::new();
        let mut end_time = 0u64;
        let mut nemesis_events = 0usize;
        for (pos, ev) in events.iter().enumerate() {
            let time = ev
                .get("time")
                .and_then(Value::as_f64)
                .map(|t| t.max(0.0) as u64);
            let Some(time) = time else {
                warn(format!("event {pos}: no numeric `time`"), &mut warnings);
                continue;
            };
            end_time = end_time.max(time);
            let Some(process) = ev.get("process").and_then(process_name) else {
                warn(format!("event {pos}: no `process`"), &mut warnings);
                continue;
            };
            let ty = ev.get("type").and_then(Value::as_str).unwrap_or("");
            let ty = ty.trim_start_matches(':');
            let f = ev.get("f").map(compact).unwrap_or_default();
            let f = f.trim_start_matches(':').to_string();
            let value = ev
                .get("value")
                .map(compact)
                .unwrap_or_else(|| "null".into());
            if is_nemesis(&process) {
                nemesis_events += 1;
                let raw = ev.get("value").unwrap_or(&Value::Null);
                match fault_edge(&f) {
                    Some((true, kind)) => {
                        if let Some(&i) = open_faults.get(&kind) {
                            if value != "null" && !faults[i].detail.contains(&value) {
                                faults[i].detail.push(' ');
                                faults[i].detail.push_str(&value);
                            }
                        } else {
                            open_faults.insert(kind.clone(), faults.len());
                            faults.push(Fault {
                                description: describe_fault(&kind, raw),
                                detail: if value == "null" {
                                    String::new()
                                } else {
                                    value.clone()
                                },
                                kind,
                                start: time,
                                end: u64::MAX,
                            });
                        }
                    }
                    Some((false, kind)) => {
                        if let Some(i) = open_faults.remove(&kind) {
                            faults[i].end = time;
                        }
                    }
                    None => faults.push(Fault {
                        kind: f.clone(),
                        description: describe_fault(&f, raw),
                        detail: if value == "null" {
                            String::new()
                        } else {
                            value.clone()
                        },
                        start: time,
                        end: time,
                    }),
                }
                continue;
            }
            match ty {
                "invoke" => {
                    if let Some(prev) = open.remove(&process) {
                        warn(
                            format!(
                                "event {pos}: process {process} invoked again before op {} completed",
                                ops[prev].index
                            ),
                            &mut warnings,
                        );
                    }
                    if !fs.contains(&f) {
                        fs.push(f.clone());
                    }
                    let index = ev
                        .get("index")
                        .and_then(Value::as_u64)
                        .unwrap_or(pos as u64);
                    open.insert(process.clone(), ops.len());
                    ops.push(Op {
                        index,
                        process,
                        lane: 0,
                        pid: 0,
                        f,
                        key: ev.get("key").filter(|k| !k.is_null()).map(compact),
                        invoke_value: value,
                        result_value: None,
                        start: time,
                        end: None,
                        outcome: Outcome::Info,
                        in_fault: false,
                        reason: None,
                    });
                }
                "ok" | "fail" | "info" => {
                    let Some(i) = open.remove(&process) else {
                        warn(
                            format!("event {pos}: {ty} for process {process} with no invoke"),
                            &mut warnings,
                        );
                        continue;
                    };
                    let op = &mut ops[i];
                    op.outcome = match ty {
                        "ok" => Outcome::Ok,
                        "fail" => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                    op.result_value = Some(value);
                    let ci = ev
                        .get("index")
                        .and_then(Value::as_u64)
                        .unwrap_or(pos as u64);
                    op.reason = reasons.get(ci as usize).cloned().flatten();
                    // An `info` is open to +∞ for the checker, but its completion time is still
                    // when the client gave up, which is what a reader wants to see.
                    op.end = Some(time.max(op.start));
                }
                other => warn(
                    format!("event {pos}: unknown type {other:?}"),
                    &mut warnings,
                ),
            }
        }
        for f in faults.iter_mut() {
            if f.end == u64::MAX {
                f.end = end_time.max(f.start);
            }
        }
        // Lanes: processes sorted numerically where they are numbers, then by name.
        let mut procs: Vec<String> = ops.iter().map(|o| o.process.clone()).collect();
        procs.sort_by(|a, b| match (a.parse::<i64>(), b.parse::<i64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            _ => a.cmp(b),
        });
        procs.dedup();
        // Lanes: a process never overlaps itself, and after an `info` its worker continues as
        // a new process; so processes are packed into lanes, each taking the lane that fell
        // free earliest (a new lane only when all are busy). With Jepsen's process numbering
        // that is one lane per worker, however many `info`s there were.
        let pid_of: HashMap<&str, u32> = procs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i as u32))
            .collect();
        let mut span: Vec<(u64, u64)> = vec![(u64::MAX, 0); procs.len()];
        for op in &ops {
            let sp = &mut span[pid_of[op.process.as_str()] as usize];
            sp.0 = sp.0.min(op.start);
            sp.1 = sp.1.max(op.end.unwrap_or(end_time).max(op.start));
        }
        // The final reads (processes that start after the run's last `heal` and never ran
        // before it) share one lane, "final reads", at the bottom.
        let last_heal = events
            .iter()
            .filter(|e| {
                e.get("process").and_then(process_name).as_deref() == Some("nemesis")
                    && e.get("f").and_then(Value::as_str) == Some("heal")
            })
            .filter_map(|e| e.get("time").and_then(Value::as_f64))
            .map(|t| t.max(0.0) as u64)
            .max();
        let is_final: Vec<bool> = (0..procs.len())
            .map(|i| last_heal.is_some_and(|h| span[i].0 >= h))
            .collect();
        let mut order: Vec<usize> = (0..procs.len()).filter(|&i| !is_final[i]).collect();
        order.sort_by_key(|&i| (span[i].0, i));
        let mut free: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
        let mut lane_procs: Vec<Vec<String>> = Vec::new();
        let mut lane_of_pid = vec![0u32; procs.len()];
        for i in order {
            let (s, e) = span[i];
            let lane = match free.peek() {
                Some(&Reverse((end, lane))) if end < s => {
                    free.pop();
                    lane
                }
                _ => {
                    lane_procs.push(Vec::new());
                    (lane_procs.len() - 1) as u32
                }
            };
            lane_procs[lane as usize].push(procs[i].clone());
            lane_of_pid[i] = lane;
            free.push(Reverse((e, lane)));
        }
        let mut lanes: Vec<String> = lane_procs
            .iter()
            .map(|ps| match ps.len() {
                1 => ps[0].clone(),
                n => format!("{} (+{} more)", ps[0], n - 1),
            })
            .collect();
        if is_final.iter().any(|&f| f) {
            let lane = lanes.len() as u32;
            lanes.push("final reads".into());
            for (i, f) in is_final.iter().enumerate() {
                if *f {
                    lane_of_pid[i] = lane;
                }
            }
        }
        let mut periods: Vec<(u64, u64)> = faults
            .iter()
            .filter(|f| f.end > f.start)
            .map(|f| (f.start, f.end))
            .collect();
        periods.sort_unstable();
        for op in ops.iter_mut() {
            op.pid = pid_of[op.process.as_str()];
            op.lane = lane_of_pid[op.pid as usize];
            op.in_fault = periods.iter().any(|&(s, e)| s <= op.start && op.start < e);
        }
        let mut page = PageData {
            ops,
            lanes,
            procs,
            faults,
            fs,
            end_time,
            warnings,
            nemesis_events,
            ..PageData::default()
        };
        page.compute_stats();
        // About 10 completions per bucket, between 10 and 100 buckets.
        let buckets = (page.ops.len() as u64 / 10).clamp(10, 100);
        page.compute_series(buckets);
        page
    }

    fn compute_stats(&mut self) {
        let mut by_f: BTreeMap<&str, (FStats, Vec<u64>)> = BTreeMap::new();
        let mut all = (
            FStats {
                f: "all".into(),
                ..FStats::default()
            },
            Vec::new(),
        );
        for op in &self.ops {
            let entry = by_f.entry(op.f.as_str()).or_insert_with(|| {
                (
                    FStats {
                        f: op.f.clone(),
                        ..FStats::default()
                    },
                    Vec::new(),
                )
            });
            for (s, lat) in [(&mut entry.0, &mut entry.1), (&mut all.0, &mut all.1)] {
                if op.in_fault {
                    s.in_fault.add(op);
                } else {
                    s.out_of_fault.add(op);
                }
                if op.outcome == Outcome::Ok {
                    lat.extend(op.latency());
                }
            }
        }
        let mut stats: Vec<FStats> = Vec::new();
        for f in &self.fs {
            if let Some((mut s, lat)) = by_f.remove(f.as_str()) {
                s.latency_ok = Quantiles::of(lat);
                stats.push(s);
            }
        }
        all.0.latency_ok = Quantiles::of(all.1);
        stats.push(all.0);
        self.stats = stats;
    }

    /// Buckets the run into `n` windows for the throughput and latency-quantile lines.
    fn compute_series(&mut self, n: u64) {
        let span = self.end_time.max(1);
        let width = span.div_ceil(n).max(1);
        self.rate_bucket_ns = width;
        let buckets = span.div_ceil(width) as usize;
        let mut rate: Vec<RateBucket> = (0..buckets)
            .map(|i| RateBucket {
                start: i as u64 * width,
                ok_per_s: BTreeMap::new(),
                all_per_s: 0.0,
            })
            .collect();
        let mut lat: Vec<Vec<u64>> = vec![Vec::new(); buckets];
        let per_s = 1e9 / width as f64;
        for op in &self.ops {
            if let Some(end) = op.end {
                let b = ((end / width) as usize).min(buckets - 1);
                rate[b].all_per_s += per_s;
                if op.outcome == Outcome::Ok {
                    *rate[b].ok_per_s.entry(op.f.clone()).or_insert(0.0) += per_s;
                    let bi = ((op.start / width) as usize).min(buckets - 1);
                    lat[bi].push(end - op.start);
                }
            }
        }
        self.latency = lat
            .into_iter()
            .enumerate()
            .map(|(i, mut v)| {
                v.sort_unstable();
                LatencyBucket {
                    start: i as u64 * width,
                    count: v.len(),
                    p50: quantile_sorted(&v, 0.5),
                    p95: quantile_sorted(&v, 0.95),
                    p99: quantile_sorted(&v, 0.99),
                }
            })
            .collect();
        self.rate = rate;
    }

    /// The stats row of all functions together.
    #[cfg(test)]
    pub fn total(&self) -> &FStats {
        // compute_stats always pushes the "all" row last.
        self.stats
            .last()
            .expect("stats always end with the `all` row")
    }
}

/// Parses JSON Lines tolerantly: each bad line is a warning naming its line number.
pub fn parse_jsonl(text: &str) -> (Vec<Value>, Vec<String>) {
    let mut events = Vec::new();
    let mut warnings = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => events.push(v),
            Ok(_) => warnings.push(format!("history line {}: not a JSON object", i + 1)),
            Err(e) => warnings.push(format!("history line {}: {e}", i + 1)),
        }
        if warnings.len() > MAX_WARNINGS {
            warnings.truncate(MAX_WARNINGS);
            warnings.push("… more warnings left out".into());
            break;
        }
    }
    (events, warnings)
}

fn first<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| v.get(*n).filter(|x| !x.is_null()))
}

/// A readable label of an op in the checker's JSON (`f`, `key`, `value`, `output`, `status`),
/// e.g. `write 3`, `read → 2`, `cas k1 [1,2]`, `write 4 (info)`.
fn op_label(v: &Value) -> String {
    let Some(obj) = v.as_object() else {
        return compact(v);
    };
    let f = obj.get("f").map(compact).unwrap_or_default();
    let f = f.trim_start_matches(':');
    let mut s = f.to_string();
    if let Some(k) = obj.get("key").filter(|k| !k.is_null()) {
        s.push_str(&format!(" {}", compact(k)));
    }
    let value = obj
        .get("value")
        .or_else(|| obj.get("input"))
        .filter(|x| !x.is_null());
    let output = obj
        .get("output")
        .or_else(|| obj.get("result"))
        .filter(|x| !x.is_null());
    let info = obj.get("status").and_then(Value::as_str) == Some("info");
    let is_read = matches!(f, "read" | "get" | "r");
    if let Some(x) = value.filter(|_| !is_read || output.is_none()) {
        s.push(' ');
        s.push_str(&x.to_string());
    }
    match output {
        Some(o) if Some(o) != value || is_read => {
            s.push_str(" → ");
            s.push_str(&o.to_string());
        }
        None if is_read && !info => s.push_str(" → null"),
        _ => {}
    }
    if info {
        s.push_str(" (info)");
    }
    if s.trim().is_empty() {
        v.to_string()
    } else {
        s
    }
}

/// How the page shows a model state (strings quoted, other values as JSON).
pub fn state_string(v: Option<&Value>) -> Option<String> {
    v.map(|s| match s {
        Value::String(x) => format!("{x:?}"),
        other => other.to_string(),
    })
}

/// The model states before and after each op of `prefix`, replayed by the checker's own
/// models ([`splitbrain_checker::replay`]), so the page never holds a second copy of the model
/// rules. `None` when the model is unknown, an op is not the checker's `Op` (a counterexample
/// of another tool), or the replay is refused; then the page shows the steps without states.
fn checker_replay(model: Option<&str>, prefix: &[Value]) -> Option<Vec<(Value, Option<Value>)>> {
    let model: splitbrain_checker::ModelKind = model?.parse().ok()?;
    let ops: Vec<splitbrain_checker::history::Op> = prefix
        .iter()
        .map(|s| serde_json::from_value(s.get("op").filter(|o| o.is_object()).unwrap_or(s).clone()))
        .collect::<Result<_, _>>()
        .ok()?;
    let steps = splitbrain_checker::replay(model, &ops).ok()?;
    Some(steps.into_iter().map(|s| (s.before, s.after)).collect())
}

/// At most this many ops of the window are drawn (the checker's window is the smallest one).
pub const MAX_WINDOW_OPS: usize = 500;

/// At most this many prefix steps are kept for the page (the last ones, nearest the failure).
pub const MAX_PREFIX_STEPS: usize = 200;

impl CxView {
    /// Reads a counterexample from the checker's JSON (`splitbrain_checker::Counterexample`:
    /// `key`, `op` that cannot be placed, `window` of concurrent ops, `prefix` in linearization
    /// order, `state` after the prefix; ops carry `invoke_index`, `invoke_time`,
    /// `complete_time`). Other shapes are read where their fields have the usual names
    /// (`failing`, `state_before`/`state_after` per step). When the steps carry no states they
    /// are replayed by the checker's models ([`splitbrain_checker::replay`]).
    pub fn from_json(cx: &Value, model: Option<&str>) -> CxView {
        let mut view = CxView {
            raw: serde_json::to_string_pretty(cx).unwrap_or_default(),
            key: first(cx, &["key", "partition"]).map(compact),
            message: first(cx, &["message", "reason", "explanation"]).map(compact),
            state: state_string(first(cx, &["state", "model_state", "state_at_failure"])),
            ..CxView::default()
        };
        if let Some(window) = first(cx, &["window", "ops", "concurrent"]).and_then(Value::as_array)
        {
            view.window = window.iter().take(MAX_WINDOW_OPS).map(cx_op).collect();
        }
        if let Some(prefix) = first(
            cx,
            &["prefix", "linearized", "linearizable_prefix", "steps"],
        )
        .and_then(Value::as_array)
        {
            let replayed = checker_replay(model, prefix);
            let mut steps = Vec::with_capacity(prefix.len());
            for (i, s) in prefix.iter().enumerate() {
                let op = s.get("op").filter(|o| o.is_object()).unwrap_or(s);
                let mut step = CxStep {
                    number: i + 1,
                    op: op_label(op),
                    process: op.get("process").and_then(process_name),
                    index: op_index(op),
                    before: state_string(first(s, &["state_before", "before"])),
                    after: state_string(first(s, &["state_after", "after"])),
                };
                if step.before.is_none() && step.after.is_none() {
                    if let Some((before, after)) = replayed.as_ref().and_then(|r| r.get(i)) {
                        step.before = state_string(Some(before));
                        step.after = state_string(after.as_ref());
                    }
                }
                steps.push(step);
            }
            view.prefix_total = steps.len();
            if steps.len() > MAX_PREFIX_STEPS {
                steps.drain(..steps.len() - MAX_PREFIX_STEPS);
            }
            view.prefix = steps;
        }
        if let Some(f) = first(
            cx,
            &["failing", "unplaceable", "op", "failed_op", "last_op"],
        ) {
            view.failing = Some(op_label(f));
            view.failing_index = op_index(f);
            view.failing_process = f.get("process").and_then(process_name);
        }
        view
    }
}

fn op_index(v: &Value) -> Option<u64> {
    first(v, &["invoke_index", "index"]).and_then(Value::as_u64)
}

fn cx_op(v: &Value) -> CxOp {
    CxOp {
        label: op_label(v),
        process: v.get("process").and_then(process_name),
        index: op_index(v),
        start: first(v, &["invoke_time", "start", "time"]).and_then(Value::as_f64),
        end: first(v, &["complete_time", "end"]).and_then(Value::as_f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(index: u64, time: u64, process: Value, ty: &str, f: &str, value: Value) -> Value {
        json!({"index": index, "time": time, "process": process, "type": ty, "f": f, "value": value})
    }

    #[test]
    fn final_reads_after_the_last_heal_share_one_lane() {
        let mut events = vec![
            ev(0, 0, json!(0), "invoke", "write", json!(1)),
            ev(1, 10, json!(0), "ok", "write", json!(1)),
            ev(
                2,
                20,
                json!("nemesis"),
                "info",
                "heal",
                json!({"healed": true}),
            ),
        ];
        for p in 0..5u64 {
            let proc_id = json!(1_000_000 + p);
            events.push(ev(
                3 + 2 * p,
                30,
                proc_id.clone(),
                "invoke",
                "read",
                Value::Null,
            ));
            events.push(ev(4 + 2 * p, 40 + p, proc_id, "ok", "read", json!(1)));
        }
        let p = PageData::from_events(&events, vec![]);
        assert_eq!(p.lanes, vec!["0".to_string(), "final reads".to_string()]);
        assert!(p.ops[1..].iter().all(|o| o.lane == 1), "{:?}", p.ops);
    }

    #[test]
    fn a_failed_compare_counts_as_available_on_the_page_as_in_the_summary() {
        let events = vec![
            ev(0, 0, json!(0), "invoke", "cas", json!([1, 2])),
            ev(1, 10, json!(0), "fail", "cas", json!([1, 2])),
            ev(2, 20, json!(0), "invoke", "cas", json!([1, 2])),
            ev(3, 30, json!(0), "fail", "cas", json!([1, 2])),
        ];
        let reasons = vec![
            None,
            Some("cas-mismatch".into()),
            None,
            Some("not-leader".into()),
        ];
        let p = PageData::from_events_with_reasons(&events, vec![], &reasons);
        assert_eq!(p.total().out_of_fault.availability(), Some(0.5));
    }

    #[test]
    fn pairs_each_invoke_with_its_process_completion() {
        let events = vec![
            ev(0, 10, json!(0), "invoke", "write", json!(1)),
            ev(1, 12, json!(1), "invoke", "read", Value::Null),
            ev(2, 20, json!(0), "ok", "write", json!(1)),
            ev(3, 30, json!(1), "fail", "read", Value::Null),
            ev(4, 40, json!(2), "invoke", "cas", json!([1, 2])),
        ];
        let p = PageData::from_events(&events, vec![]);
        assert_eq!(p.ops.len(), 3);
        assert_eq!(
            (p.ops[0].start, p.ops[0].end, p.ops[0].outcome),
            (10, Some(20), Outcome::Ok)
        );
        assert_eq!(
            (p.ops[1].start, p.ops[1].end, p.ops[1].outcome),
            (12, Some(30), Outcome::Fail)
        );
        assert_eq!(
            p.ops[2].end, None,
            "an invoke without completion stays open"
        );
        assert_eq!(p.ops[2].outcome, Outcome::Info);
        assert_eq!(p.procs, vec!["0", "1", "2"]);
        assert_eq!(
            p.lanes.len(),
            2,
            "p2 starts after p0 is done, so it takes p0's lane"
        );
        assert_eq!(p.ops[2].lane, p.ops[0].lane);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn successor_process_after_info_continues_in_the_same_lane() {
        let events = vec![
            ev(0, 1, json!(10), "invoke", "read", Value::Null),
            ev(1, 2, json!(9), "invoke", "read", Value::Null),
            ev(2, 3, json!(10), "ok", "read", Value::Null),
            ev(3, 4, json!(9), "info", "read", Value::Null),
            ev(4, 5, json!(19), "invoke", "read", Value::Null),
            ev(5, 6, json!(19), "ok", "read", Value::Null),
            ev(6, 6, json!(10), "invoke", "read", Value::Null),
        ];
        let p = PageData::from_events(&events, vec![]);
        assert_eq!(
            p.procs,
            vec!["9", "10", "19"],
            "processes sorted numerically"
        );
        assert_eq!(p.lanes.len(), 2, "19 reuses a lane freed by 9's info");
        assert_ne!(
            p.ops[0].lane, p.ops[1].lane,
            "overlapping processes get separate lanes"
        );
        assert_eq!(p.ops[0].lane, p.ops[3].lane, "a process keeps its lane");
        assert_eq!(p.procs[p.ops[2].pid as usize], "19");
        assert!(
            p.lanes.iter().any(|l| l.contains("+1 more")),
            "{:?}",
            p.lanes
        );
    }

    #[test]
    fn nemesis_start_stop_make_a_fault_period_and_mark_ops_inside() {
        let events = vec![
            ev(
                0,
                100,
                json!("nemesis"),
                "info",
                "start-partition",
                json!({"groups": [["n1"], ["n2", "n3"]]}),
            ),
            ev(1, 150, json!(0), "invoke", "write", json!(1)),
            ev(2, 160, json!(0), "info", "write", json!(1)),
            ev(
                3,
                200,
                json!("nemesis"),
                "info",
                "stop-partition",
                Value::Null,
            ),
            ev(4, 250, json!(1), "invoke", "read", Value::Null),
            ev(5, 260, json!(1), "ok", "read", json!(1)),
            ev(6, 300, json!("nemesis"), "info", "kill", json!(["n2"])),
        ];
        let p = PageData::from_events(&events, vec![]);
        assert_eq!(p.faults.len(), 2);
        assert_eq!((p.faults[0].start, p.faults[0].end), (100, 200));
        assert!(
            p.faults[0].description.contains("n2"),
            "{}",
            p.faults[0].description
        );
        assert_eq!(p.faults[1].kind, "kill");
        assert_eq!(
            p.faults[1].end, 300,
            "a kill never healed ends at the history's end"
        );
        assert!(p.ops[0].in_fault);
        assert!(!p.ops[1].in_fault);
        let all = p.total();
        assert_eq!((all.in_fault.info, all.out_of_fault.ok), (1, 1));
        assert_eq!(all.in_fault.availability(), Some(0.0));
    }

    #[test]
    fn faults_are_described_by_kind_and_whom_they_hit() {
        let v = json!({"fault": "partition", "kind": "isolate-leader", "groups": [["n1"], ["n2", "n3"]], "cuts": [["n1", "n2"]]});
        assert_eq!(
            describe_fault("partition", &v),
            "partition: isolate-leader n1 | n2,n3"
        );
        assert_eq!(
            describe_fault("pause", &json!({"fault": "pause", "nodes": ["n4"]})),
            "pause n4"
        );
        assert_eq!(describe_fault("kill", &json!(["n2"])), "kill [\"n2\"]");
        assert_eq!(describe_fault("heal", &Value::Null), "heal");
        assert!(
            describe_fault("x", &json!({"a": "y".repeat(200)}))
                .chars()
                .count()
                <= 80
        );
    }

    #[test]
    fn stats_give_latency_quantiles_of_ok_ops() {
        let mut events = Vec::new();
        for i in 0..100u64 {
            events.push(ev(2 * i, i * 1000, json!(0), "invoke", "read", Value::Null));
            events.push(ev(
                2 * i + 1,
                i * 1000 + (i + 1) * 10,
                json!(0),
                "ok",
                "read",
                json!(1),
            ));
        }
        let p = PageData::from_events(&events, vec![]);
        let read = &p.stats[0];
        assert_eq!(read.f, "read");
        assert_eq!(read.latency_ok.count, 100);
        assert_eq!(read.latency_ok.p50, 500);
        assert_eq!(read.latency_ok.p99, 990);
        assert_eq!(read.latency_ok.max, 1000);
        let completions: f64 = p
            .rate
            .iter()
            .map(|b| b.all_per_s * p.rate_bucket_ns as f64 / 1e9)
            .sum();
        assert!(
            (completions - 100.0).abs() < 1e-6,
            "throughput buckets count every completion: {completions}"
        );
    }

    #[test]
    fn tolerates_bad_lines_and_orphan_completions_with_warnings() {
        let text = "{\"index\":0,\"time\":5,\"process\":0,\"type\":\"ok\",\"f\":\"read\"}\nnot json\n{\"index\":1,";
        let (events, warnings) = parse_jsonl(text);
        assert_eq!(events.len(), 1);
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("line 2"), "{warnings:?}");
        let p = PageData::from_events(&events, warnings);
        assert!(p.ops.is_empty());
        assert_eq!(p.warnings.len(), 3);
        assert!(p.warnings[2].contains("no invoke"));
    }

    #[test]
    fn counterexample_is_read_from_several_shapes() {
        let cx = json!({
            "key": "k3",
            "prefix": [{"op": {"process": 1, "f": "write", "value": 2}, "state_before": "null", "state_after": "2"}],
            "window": [{"process": 1, "f": "write", "value": 2, "start": 10, "end": 20},
                       {"process": 2, "f": "read", "value": 1, "start": 12, "end": 22, "index": 7}],
            "failing": {"process": 2, "f": "read", "value": 1, "index": 7},
            "state": 2
        });
        let v = CxView::from_json(&cx, None);
        assert_eq!(v.key.as_deref(), Some("k3"));
        assert_eq!(v.window.len(), 2);
        assert_eq!(v.window[1].index, Some(7));
        assert_eq!(v.prefix.len(), 1);
        assert_eq!(
            v.prefix[0].after.as_deref(),
            Some("\"2\""),
            "given states are shown as JSON"
        );
        assert_eq!(v.failing_index, Some(7));
        assert!(v.failing.as_deref().unwrap().starts_with("read"));
        assert_eq!(v.state.as_deref(), Some("2"));
    }
}
