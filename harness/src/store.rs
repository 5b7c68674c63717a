//! The store (DESIGN §4): `results/<test-name>/<YYYYMMDDTHHMMSS>/` holding `test.json`,
//! `history.jsonl`, `results.json`, `nodes/<id>.log`, member data dirs under `data/`, and
//! `report.html` (written by `crate::report`); `results/latest` points at the newest run.

use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// UTC `YYYYMMDDTHHMMSS` for `t` (the civil date by the `time` crate).
pub fn timestamp(t: SystemTime) -> String {
    let t = t.max(SystemTime::UNIX_EPOCH);
    let d = time::OffsetDateTime::from(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// Creates a fresh run directory `results/<name>/<timestamp>` (suffixed `-2`, `-3`, … if two
/// runs start within one second) and points `results/latest` at it.
pub fn create_run_dir(results: &Path, name: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        !name.is_empty() && !name.contains('/') && name != "." && name != "..",
        "test name {name:?} must be a non-empty single path component"
    );
    let parent = results.join(name);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let ts = timestamp(SystemTime::now());
    let mut dir = parent.join(&ts);
    let mut n = 1;
    loop {
        match std::fs::create_dir(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => {
                n += 1;
                dir = parent.join(format!("{ts}-{n}"));
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    std::fs::create_dir_all(dir.join("nodes")).context("creating nodes/")?;
    point_latest(results, &dir)?;
    Ok(dir)
}

/// Makes `results/latest` a symlink to `dir` (relative, so the store can be moved).
pub fn point_latest(results: &Path, dir: &Path) -> anyhow::Result<()> {
    let latest = results.join("latest");
    let rel = dir.strip_prefix(results).unwrap_or(dir);
    let tmp = results.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(rel, &tmp).with_context(|| format!("linking {}", tmp.display()))?;
    std::fs::rename(&tmp, &latest).with_context(|| format!("replacing {}", latest.display()))?;
    Ok(())
}

/// Writes `value` as pretty JSON to `dir/file`.
pub fn write_json<T: Serialize>(dir: &Path, file: &str, value: &T) -> anyhow::Result<()> {
    let path = dir.join(file);
    let text = serde_json::to_string_pretty(value).context("serializing JSON")?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(timestamp(SystemTime::UNIX_EPOCH), "19700101T000000");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(timestamp(t), "20261118T110640");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "20000229T000000");
    }

    #[test]
    fn creates_distinct_run_dirs_and_points_latest_at_the_newest() {
        let tmp = tempfile::tempdir().unwrap();
        let a = create_run_dir(tmp.path(), "t").unwrap();
        let b = create_run_dir(tmp.path(), "t").unwrap();
        assert_ne!(a, b);
        assert!(a.join("nodes").is_dir());
        let latest = std::fs::canonicalize(tmp.path().join("latest")).unwrap();
        assert_eq!(latest, std::fs::canonicalize(&b).unwrap());
        assert!(create_run_dir(tmp.path(), "../x").is_err());
    }
}
