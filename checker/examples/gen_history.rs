//! Writes a simulated linearizable history as native JSONL, for benchmarks and demos.
//!
//! `cargo run --release -p splitbrain-checker --example gen_history -- OUT [OPS] [KEYS]
//! [PROCESSES] [INFO_RATE] [SEED] [MODEL]` — defaults: 1000000 ops, 1000 keys, 10 processes,
//! 0.01 info, seed 1, model cas-register (`register`, `cas-register`, `append-kv`). Every
//! written value is unique. Add `--corrupt` as the last argument to corrupt one read.

#[path = "../tests/common/sim.rs"]
mod sim;

use sim::{corrupt_one_read, simulate, Sim, SimModel};
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let corrupt = args.last().is_some_and(|a| a == "--corrupt");
    if corrupt {
        args.pop();
    }
    let out = args.first().ok_or("usage: gen_history OUT [OPS] [KEYS] [PROCESSES] [INFO_RATE] [SEED] [MODEL] [--corrupt]")?;
    let num = |i: usize, d: &str| -> Result<String, Box<dyn std::error::Error>> {
        Ok(args.get(i).cloned().unwrap_or_else(|| d.to_string()))
    };
    let model = match num(6, "cas-register")?.as_str() {
        "register" => SimModel::Register,
        "cas-register" => SimModel::CasRegister,
        "append-kv" => SimModel::AppendKv,
        m => return Err(format!("unknown model {m}").into()),
    };
    let cfg = Sim {
        model,
        ops: num(1, "1000000")?.parse()?,
        keys: num(2, "1000")?.parse()?,
        processes: num(3, "10")?.parse()?,
        info_rate: num(4, "0.01")?.parse()?,
        values: 0,
    };
    let seed: u64 = num(5, "1")?.parse()?;
    let mut events = simulate(&cfg, seed);
    if corrupt {
        corrupt_one_read(&mut events, seed);
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    for e in &events {
        serde_json::to_writer(&mut w, e)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    eprintln!("wrote {} events ({} ops) to {out}", events.len(), cfg.ops);
    Ok(())
}
