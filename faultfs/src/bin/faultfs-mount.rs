//! `faultfs-mount [--journal] BACKING MOUNT_POINT`: mounts a fault filesystem and keeps it
//! mounted until the process is killed or its standard input closes (then it unmounts).
//! Prints `mounted PATH` once the mount is up, then answers commands on standard input, one a
//! line, each with one line of JSON: `power-loss` or `power-loss SEED` (a torn one) → the
//! `LossReport`; `stats` → the `Stats`. `--journal` selects `Metadata::Journal`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use splitbrain_faultfs::{mount_with, Metadata, Options};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = Options::default();
    if let Some(i) = args.iter().position(|a| a == "--journal") {
        args.remove(i);
        options.metadata = Metadata::Journal;
    }
    let [backing, mount_point] = args.as_slice() else {
        eprintln!("usage: faultfs-mount [--journal] BACKING MOUNT_POINT");
        return ExitCode::from(254);
    };
    let m = match mount_with(backing, mount_point, options) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("faultfs-mount: {e}");
            return ExitCode::from(255);
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "mounted {}", m.mount_point().display());
    let _ = out.flush();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            [] => continue,
            ["power-loss"] => serde_json::to_string(&m.power_loss(None)),
            ["power-loss", seed] => match seed.parse::<u64>() {
                Ok(s) => serde_json::to_string(&m.power_loss(Some(s))),
                Err(_) => {
                    eprintln!("stdin line {}: seed {seed:?} is not a whole number", n + 1);
                    continue;
                }
            },
            ["stats"] => serde_json::to_string(&m.stats()),
            _ => {
                eprintln!(
                    "stdin line {}: unknown command {line:?} (power-loss [SEED], stats)",
                    n + 1
                );
                continue;
            }
        };
        // Serializing plain structs of numbers and strings cannot fail.
        let _ = writeln!(out, "{}", answer.expect("serializable"));
        let _ = out.flush();
    }
    match m.unmount() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultfs-mount: {e}");
            ExitCode::from(255)
        }
    }
}
