//! `splitbrain check [--model M] [--format F] [--timeout SECS] [--memory-limit SIZE]
//! [--all-partitions] [--json] FILE...`: checks recorded histories offline.
//!
//! `--memory-limit` bounds the search's memory over all files (default: half the machine's
//! memory); a key whose search would need more is `unknown`, reason `memory-limit`.
//!
//! Output: one line per file (verdict, ops, partitions valid/invalid/unknown, elapsed), then
//! the counterexample if invalid; with `--json`, one JSON object per file per line:
//! `{"file","valid","model","ops","partitions":{"total","invalid","unknown"},"elapsed_ms",
//! "counterexample"}`.
//!
//! Without `--model`, the model follows from the file: Porcupine's etcd log → `cas-register`;
//! Porcupine's kv log or any history with `get`/`put`/`append` → `append-kv`; `txn` →
//! `multi-register`; `acquire`/`release` → `mutex`; `add` → `set`; ops with keys → `kv`; ops
//! with `cas` → `cas-register`; else `register`. Queues may be FIFO or not: name
//! `fifo-queue` or `unordered-queue`.
//!
//! Files are read and checked in parallel (rayon's global pool: each check's partitions run
//! in the same pool); output comes in the order the files were given, each file printed as
//! soon as it and those before it are done. On a terminal, a progress bar of decided
//! partitions appears on stderr after a second. When stdout is closed (`check … | head`),
//! the command stops quietly: files not started are skipped, running checks are cancelled.
//!
//! Exit code over all files: 254 if any file could not be read (or a flag is bad), else 1 if
//! any history is invalid, else 2 if any is unknown, else 0. 255 for an internal error.

use super::exit;
use anyhow::Context;
use splitbrain_checker::read::{read_file, Format};
use splitbrain_checker::{
    try_check, CheckOptions, CheckReport, MemoryBudget, ModelKind, Progress, Verdict,
};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Arguments of `splitbrain check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: register, cas-register, kv, append-kv, mutex, multi-register, set, fifo-queue,
    /// unordered-queue (default: inferred from the file; queues must be named).
    #[arg(long, value_parser = parse_model)]
    pub model: Option<ModelKind>,
    /// History format: auto, jsonl, edn, porcupine-etcd, porcupine-kv.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub format: Format,
    /// Give up after SECS seconds per file: undecided partitions are `unknown`.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
    /// Memory the search may hold over all files, e.g. 512M, 4G, 1.5GiB or bytes; a key
    /// whose search would need more is `unknown` (like a timeout). Default: half of this
    /// machine's memory.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<usize>,
    /// Decide every partition (key) instead of stopping at the first invalid one.
    #[arg(long)]
    pub all_partitions: bool,
    /// Print one JSON object per file instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also draw the history and its verdict as one self-contained HTML page at OUT (one FILE).
    #[arg(long, value_name = "OUT")]
    pub report: Option<PathBuf>,
    /// History files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

fn parse_model(s: &str) -> Result<ModelKind, String> {
    s.parse()
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

/// `SIZE`: a number of bytes with an optional unit K, M, G, T (powers of 1024; `KiB`, `KB`,
/// `k` and so on alike).
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        u => {
            return Err(format!(
                "unknown unit {u:?} in {s:?} (expected a size like 512M, 4G or a number of bytes)"
            ))
        }
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("expected a size like 512M, 4G or a number of bytes, found {s:?}"))?;
    let bytes = v * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > usize::MAX as f64 {
        return Err(format!("expected a positive size, found {s:?}"));
    }
    Ok(bytes as usize)
}

/// Half of the machine's physical memory (the default `--memory-limit`); 4 GiB if unknown.
fn default_memory_limit() -> usize {
    // SAFETY: sysconf only reads system configuration values.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && page > 0 {
        (pages as usize).saturating_mul(page as usize) / 2
    } else {
        4 << 30
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("expected a number of seconds, found {s:?}"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!(
            "expected a positive number of seconds, found {s:?}"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// What became of one file.
enum FileOutcome {
    /// Could not be read or interpreted: the message for stderr.
    Unreadable(String),
    /// Checked: the verdict and what to print.
    Checked { verdict: Verdict, out: String },
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if args.report.is_some() && args.files.len() != 1 {
        return Err(exit::BadInput(format!(
            "--report draws one history: give one FILE, not {}",
            args.files.len()
        ))
        .into());
    }
    let progress = Arc::new(Progress::default());
    // One budget for all files: they are checked at the same time.
    let memory = Arc::new(MemoryBudget::new(
        args.memory_limit.unwrap_or_else(default_memory_limit),
    ));
    // Set when stdout is closed (`check … | head`): the files not yet started are skipped.
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<(usize, anyhow::Result<FileOutcome>)>();
    let mut unreadable = false;
    let mut invalid = false;
    let mut unknown = false;
    std::thread::scope(|s| -> anyhow::Result<()> {
        let args = &args;
        let progress = &progress;
        let stop = &stop;
        let memory = &memory;
        // Files are checked in parallel on rayon's global pool (each check's partitions run
        // in the same pool); results come back over the channel as each file is done.
        s.spawn(move || {
            use rayon::prelude::*;
            args.files
                .par_iter()
                .enumerate()
                .for_each_with(tx, |tx, (i, file)| {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // The receiver only goes away when the output is closed: nothing to do.
                    let _ = tx.send((i, check_file(args, file, progress, stop, memory)));
                });
        });
        // Print in the order given, each file as soon as it and those before it are done.
        let tty = std::io::stderr().is_terminal();
        let started = Instant::now();
        let mut bar: Option<indicatif::ProgressBar> = None;
        let mut ready: BTreeMap<usize, anyhow::Result<FileOutcome>> = BTreeMap::new();
        let mut next = 0;
        let mut stdout = std::io::stdout().lock();
        while next < args.files.len() {
            // Wait for a result; wake up only to show or advance the progress bar.
            let wait = match &bar {
                Some(_) => Duration::from_millis(100),
                None if tty => Duration::from_secs(1).saturating_sub(started.elapsed()),
                None => Duration::from_secs(3600),
            };
            match rx.recv_timeout(wait) {
                Ok((i, r)) => {
                    ready.insert(i, r);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Every sender is gone: the workers stopped early (closed output).
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if tty && bar.is_none() && started.elapsed() >= Duration::from_secs(1) {
                let b = indicatif::ProgressBar::new(progress.total.load(Ordering::Relaxed) as u64);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "checking {bar:40} {pos}/{len} partitions {elapsed}",
                    )
                    .context("progress bar template")?,
                );
                bar = Some(b);
            }
            if let Some(b) = &bar {
                b.set_length(progress.total.load(Ordering::Relaxed) as u64);
                b.set_position(progress.done.load(Ordering::Relaxed) as u64);
            }
            while let Some(r) = ready.remove(&next) {
                next += 1;
                let printed = match r? {
                    FileOutcome::Unreadable(msg) => {
                        unreadable = true;
                        // A closed stderr is no reason to stop checking.
                        let say = || writeln!(std::io::stderr(), "error: {msg}");
                        let _ = match &bar {
                            Some(b) => b.suspend(say),
                            None => say(),
                        };
                        Ok(())
                    }
                    FileOutcome::Checked { verdict, out } => {
                        match verdict {
                            Verdict::Valid => {}
                            Verdict::Invalid => invalid = true,
                            Verdict::Unknown => unknown = true,
                        }
                        stdout.write_all(out.as_bytes())
                    }
                };
                if let Err(e) = printed.and_then(|()| stdout.flush()) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        // The reader has gone (`| head`): stop quietly.
                        stop.store(true, Ordering::Relaxed);
                        next = args.files.len();
                        break;
                    }
                    return Err(e).context("writing to stdout");
                }
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        Ok(())
    })?;
    Ok(if unreadable {
        exit::BAD_INPUT
    } else if invalid {
        exit::INVALID
    } else if unknown {
        exit::UNKNOWN
    } else {
        exit::VALID
    })
}

/// Reads and checks one file; renders its output (text or JSON line).
fn check_file(
    args: &Args,
    file: &Path,
    progress: &Arc<Progress>,
    stop: &Arc<AtomicBool>,
    memory: &Arc<MemoryBudget>,
) -> anyhow::Result<FileOutcome> {
    let history = match read_file(file, args.format) {
        Ok(h) => h,
        Err(e) => return Ok(FileOutcome::Unreadable(e.to_string())),
    };
    let model = args
        .model
        .or(history.model_hint)
        .unwrap_or(ModelKind::CasRegister);
    let opts = CheckOptions {
        timeout: args.timeout,
        all_partitions: args.all_partitions,
        progress: Some(progress.clone()),
        cancel: Some(stop.clone()),
        memory: Some(memory.clone()),
        ..Default::default()
    };
    let report = match try_check(&history, model, &opts) {
        Ok(r) => r,
        Err(e) => return Ok(FileOutcome::Unreadable(format!("{}: {e}", file.display()))),
    };
    let mut out = String::new();
    if let Some(path) = &args.report {
        crate::report::write_history_file_report(file, &history, &report, path)?;
        let _ = writeln!(std::io::stderr(), "report {}", path.display());
    }
    if args.json {
        out.push_str(&json_line(file, &report)?);
        out.push('\n');
    } else {
        out.push_str(&text(file, &report));
    }
    Ok(FileOutcome::Checked {
        verdict: report.valid,
        out,
    })
}

fn json_line(file: &std::path::Path, r: &CheckReport) -> anyhow::Result<String> {
    let v = serde_json::json!({
        "file": file.display().to_string(),
        "valid": r.valid,
        "model": r.model,
        "ops": r.ops,
        "partitions": r.partitions,
        "elapsed_ms": r.elapsed_ms,
        "counterexample": r.counterexample,
    });
    serde_json::to_string(&v).context("serializing the report")
}

fn text(file: &std::path::Path, r: &CheckReport) -> String {
    let p = &r.partitions;
    let mut out = format!(
        "{}: {} ({}) — {} ops, partitions {} valid / {} invalid / {} unknown, {:.1} ms\n",
        file.display(),
        r.valid,
        r.model,
        r.ops,
        p.total - p.invalid - p.unknown,
        p.invalid,
        p.unknown,
        r.elapsed_ms
    );
    if let Some(cx) = &r.counterexample {
        for line in cx.to_text().lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
