//! `splitbrain check [--model M] [--format F] [--timeout SECS] [--all-partitions] [--json]
//! FILE...`: checks recorded histories offline.
//!
//! Output: one line per file (verdict, ops, partitions valid/invalid/unknown, elapsed), then
//! the counterexample if invalid; with `--json`, one JSON object per file per line:
//! `{"file","valid","model","ops","partitions":{"total","invalid","unknown"},"elapsed_ms",
//! "counterexample"}`.
//!
//! Without `--model`, the model follows from the file: Porcupine's etcd log → `cas-register`;
//! Porcupine's kv log or any history with `get`/`put`/`append` → `append-kv`; ops with keys →
//! `kv`; ops with `cas` → `cas-register`; else `register`.
//!
//! Exit code over all files: 254 if any file could not be read (or a flag is bad), else 1 if
//! any history is invalid, else 2 if any is unknown, else 0. 255 for an internal error.

use super::exit;
use anyhow::Context;
use splitbrain_checker::read::{read_file, Format};
use splitbrain_checker::{try_check, CheckOptions, CheckReport, ModelKind, Progress, Verdict};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `splitbrain check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: register, cas-register, kv, append-kv (default: inferred from the file).
    #[arg(long, value_parser = parse_model)]
    pub model: Option<ModelKind>,
    /// History format: auto, jsonl, edn, porcupine-etcd, porcupine-kv.
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub format: Format,
    /// Give up after SECS seconds per file: undecided partitions are `unknown`.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
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

pub fn run(args: Args) -> anyhow::Result<u8> {
    if args.report.is_some() && args.files.len() != 1 {
        return Err(exit::BadInput(format!(
            "--report draws one history: give one FILE, not {}",
            args.files.len()
        ))
        .into());
    }
    let mut unreadable = false;
    let mut invalid = false;
    let mut unknown = false;
    for file in &args.files {
        let history = match read_file(file, args.format) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                unreadable = true;
                continue;
            }
        };
        let model = args
            .model
            .or(history.model_hint)
            .unwrap_or(ModelKind::CasRegister);
        let progress = Arc::new(Progress::default());
        let opts = CheckOptions {
            timeout: args.timeout,
            all_partitions: args.all_partitions,
            progress: Some(progress.clone()),
            ..Default::default()
        };
        let report = match with_progress_bar(&progress, || try_check(&history, model, &opts))? {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                unreadable = true;
                continue;
            }
        };
        match report.valid {
            Verdict::Valid => {}
            Verdict::Invalid => invalid = true,
            Verdict::Unknown => unknown = true,
        }
        if let Some(out) = &args.report {
            crate::report::write_history_file_report(file, &history, &report, out)?;
            eprintln!("report {}", out.display());
        }
        if args.json {
            println!("{}", json_line(file, &report)?);
        } else {
            print!("{}", text(file, &report));
        }
    }
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

/// Runs `f` on a worker thread; if it takes longer than a second and stderr is a terminal,
/// shows a progress bar of decided partitions on stderr meanwhile.
fn with_progress_bar<T: Send>(
    progress: &Progress,
    f: impl FnOnce() -> T + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        let worker = s.spawn(f);
        let tty = std::io::stderr().is_terminal();
        let mut bar: Option<indicatif::ProgressBar> = None;
        let started = std::time::Instant::now();
        while !worker.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
            if tty && bar.is_none() && started.elapsed() > Duration::from_secs(1) {
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
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("the checker panicked"))
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
