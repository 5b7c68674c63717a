//! `corrupt`: damage a stopped member's data (like Jepsen's file-corruption faults). Starting
//! the fault SIGKILLs each target and then, in one of its data files, either flips one bit or
//! truncates the file; stopping it restarts the member on the damaged data.
//!
//! Every choice is seeded: the plan draws the mode, the targets and a seed; at run time that
//! seed picks the file (among the member's non-empty regular files, in path order), the offset
//! and the bit, so a replay damages the same bytes of the same files. The history's
//! `start-corrupt` value says, per member, `file` (relative to its data dir), `offset`, `bit`
//! (flips) or the new length (truncations), and the file's size before.
//!
//! Targets: a bit flip hits all members (½), a majority (¼) or a minority (¼) — a correct
//! node refuses mid-log damage, so a flip costs availability, never data. A truncation hits one
//! member only: a log cut at a random offset is indistinguishable from a torn tail, which a
//! correct node drops; losing fsynced entries on a majority would break any Raft, not find a bug.
//!
//! A member that refuses its data exits; the run's summary reports it as "member refused its
//! data: FILE@OFFSET" (from the node's log, see `crate::runner`).

use super::power_loss::storage_targets;
use super::{started, BoxFuture, Fault, FaultKind, Needs, Started};
use crate::cluster::{Cluster, MemberState};
use anyhow::Context;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `corrupt` fault kind.
pub struct CorruptKind;

/// How a file is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Flip one bit at a random offset.
    BitFlip,
    /// Cut the file at a random offset.
    Truncate,
}

impl FaultKind for CorruptKind {
    fn name(&self) -> &'static str {
        "corrupt"
    }
    /// Not in `all`: `all`'s schedules are fixtures, and a refusing member stays down.
    fn in_all(&self) -> bool {
        false
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn plan(&self, nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        let mode = if rng.gen_bool(0.5) {
            Mode::BitFlip
        } else {
            Mode::Truncate
        };
        let nodes = match mode {
            Mode::BitFlip => storage_targets(nodes, rng),
            Mode::Truncate => vec![nodes.choose(rng).cloned().unwrap_or_default()],
        };
        Arc::new(Corrupt {
            nodes,
            mode,
            seed: rng.gen(),
            damage: BTreeMap::new(),
        })
    }
}

/// What was done to one member's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// Relative to the member's data dir.
    pub file: String,
    /// The file's size before.
    pub size: u64,
    /// The byte whose bit was flipped, or the new length.
    pub offset: u64,
    /// The flipped bit (0 = least significant), for flips.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bit: Option<u8>,
}

impl Damage {
    fn describe(&self) -> String {
        match self.bit {
            Some(b) => format!("flipped bit {b} of {}@{}", self.file, self.offset),
            None => format!(
                "truncated {} from {} to {} bytes",
                self.file, self.size, self.offset
            ),
        }
    }
}

/// Members to damage, how, the seed, and (once started) what was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Corrupt {
    pub nodes: Vec<String>,
    pub mode: Mode,
    pub seed: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub damage: BTreeMap<String, Damage>,
}

/// Non-empty regular files under `dir`, relative, in path order.
fn data_files(dir: &Path) -> anyhow::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let e = e.with_context(|| format!("listing {}", d.display()))?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let len = e.metadata()?.len();
                if len > 0 {
                    out.push((e.path().strip_prefix(dir)?.to_path_buf(), len));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Damages one file of `dir` as `mode` with choices from `rng`; durable (fsynced).
pub fn damage(dir: &Path, mode: Mode, rng: &mut StdRng) -> anyhow::Result<Damage> {
    let files = data_files(dir)?;
    let (rel, size) = files
        .choose(rng)
        .cloned()
        .with_context(|| format!("{} holds no data file to damage", dir.display()))?;
    let path = dir.join(&rel);
    let offset = rng.gen_range(0..size);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let bit = match mode {
        Mode::BitFlip => {
            let bit = rng.gen_range(0..8u8);
            let mut b = [0u8];
            f.seek(SeekFrom::Start(offset))?;
            f.read_exact(&mut b)
                .with_context(|| format!("reading {}@{offset}", path.display()))?;
            b[0] ^= 1 << bit;
            f.seek(SeekFrom::Start(offset))?;
            f.write_all(&b)
                .with_context(|| format!("writing {}@{offset}", path.display()))?;
            Some(bit)
        }
        Mode::Truncate => {
            f.set_len(offset)
                .with_context(|| format!("truncating {}", path.display()))?;
            None
        }
    };
    f.sync_all()
        .with_context(|| format!("fsyncing {}", path.display()))?;
    Ok(Damage {
        file: rel.display().to_string(),
        size,
        offset,
        bit,
    })
}

impl Fault for Corrupt {
    fn family(&self) -> &'static str {
        "corrupt"
    }
    fn fields(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if !self.damage.is_empty() {
            let parts: Vec<String> = self
                .damage
                .iter()
                .map(|(id, d)| format!("{id}: {}", d.describe()))
                .collect();
            v["detail"] = serde_json::json!(parts.join("; "));
        }
        v
    }
    fn label(&self) -> String {
        format!("corrupt {}", self.nodes.join(","))
    }
    fn start<'a>(&'a self, cluster: &'a Cluster) -> BoxFuture<'a, Started> {
        Box::pin(async move {
            let mut done = self.clone();
            let mut res: anyhow::Result<()> = Ok(());
            for (i, n) in self.nodes.iter().enumerate() {
                let mut rng = StdRng::seed_from_u64(self.seed.wrapping_add(i as u64));
                let r = cluster.kill(n).and_then(|()| {
                    let dir = &cluster.spec(n)?.data_dir;
                    damage(dir, self.mode, &mut rng)
                });
                match r {
                    Ok(d) => {
                        done.damage.insert(n.clone(), d);
                    }
                    Err(e) => res = res.and(Err(e.context(format!("corrupting {n}")))),
                }
            }
            started(&done, res, None)
        })
    }
    fn stop(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let mut first = None;
        for n in &self.nodes {
            if cluster.state(n) == Some(MemberState::Killed) {
                if let Err(e) = cluster.start(n) {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// The node's refusal in `log` (its last `refused data: FILE@OFFSET: …` line), if any.
pub fn refusal(log: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| l.contains("refused data: "))?;
    let at = line.find("refused data: ")? + "refused data: ".len();
    let rest = &line[at..];
    let end = rest.find(": ").unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bit_flip_changes_exactly_one_bit_of_one_file_as_recorded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wal.log"), vec![0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/snap"), vec![0u8; 50]).unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        let d = damage(dir.path(), Mode::BitFlip, &mut StdRng::seed_from_u64(3)).unwrap();
        let bytes = std::fs::read(dir.path().join(&d.file)).unwrap();
        assert_eq!(bytes.len() as u64, d.size);
        let ones: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
        assert_eq!(ones, vec![d.offset as usize]);
        assert_eq!(bytes[d.offset as usize], 1 << d.bit.unwrap());
        assert_ne!(d.file, "empty");
    }

    #[test]
    fn a_truncation_cuts_the_file_at_the_recorded_offset_and_replays_the_same() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wal.log"), vec![7u8; 1000]).unwrap();
        let d = damage(dir.path(), Mode::Truncate, &mut StdRng::seed_from_u64(9)).unwrap();
        assert_eq!(d.file, "wal.log");
        assert_eq!(d.bit, None);
        let len = std::fs::metadata(dir.path().join("wal.log")).unwrap().len();
        assert_eq!(len, d.offset);
        assert!(len < 1000);
        let again = tempfile::tempdir().unwrap();
        std::fs::write(again.path().join("wal.log"), vec![7u8; 1000]).unwrap();
        let d2 = damage(again.path(), Mode::Truncate, &mut StdRng::seed_from_u64(9)).unwrap();
        assert_eq!(d, d2);
    }

    #[test]
    fn a_data_dir_without_files_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = damage(dir.path(), Mode::BitFlip, &mut StdRng::seed_from_u64(1)).unwrap_err();
        assert!(
            format!("{e:#}").contains(&dir.path().display().to_string()),
            "{e:#}"
        );
    }

    #[test]
    fn finds_the_refusal_file_and_offset_in_a_node_log() {
        let log = "INFO start\nError: opening the WAL: refused data: /x/data/n1/wal.log@633: bad header checksum (damage before the tail; not starting)\n";
        assert_eq!(refusal(log).as_deref(), Some("/x/data/n1/wal.log@633"));
        assert_eq!(refusal("all good\n"), None);
    }

    #[test]
    fn truncations_hit_one_member_and_flips_may_hit_a_majority() {
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let mut rng = StdRng::seed_from_u64(11);
        let (mut flips_big, mut truncs) = (false, 0);
        for _ in 0..100 {
            let f = CorruptKind.plan(&nodes, &mut rng).describe();
            let n = f["nodes"].as_array().unwrap().len();
            match f["mode"].as_str().unwrap() {
                "truncate" => {
                    assert_eq!(n, 1);
                    truncs += 1
                }
                "bit-flip" => flips_big |= n >= 3,
                m => panic!("{m}"),
            }
        }
        assert!(flips_big && truncs > 0);
    }
}
