//! `corrupt`: damage a stopped member's data (like Jepsen's file-corruption faults). Starting
//! the fault SIGKILLs each target and then, in one of its data files, either flips one bit or
//! truncates the file; stopping it restarts the member on the damaged data.
//!
//! Every choice is seeded: the plan draws the mode, the targets and a seed; at run time that
//! seed picks the file and offset (a uniformly random byte of the member's non-empty regular
//! files, in path order) and the bit, so a replay damages the same bytes of the same files.
//! Half of the flips are aimed instead at the length field of a record that is not the last,
//! where the target names its records ([`crate::sut::Target::record_frames`]: the node's
//! `wal.log`), choosing a bit that makes the record run past the end of the file: the damage a
//! recovery most easily mistakes for a torn tail (issue 12's `torn-tail-any-damage`);
//! `corrupt-length` aims every flip so (on all members, a majority or a minority). The
//! history's `start-corrupt` value says, per member, `file` (relative to its data dir),
//! `offset`, `bit` (flips), `length_field_of` (aimed flips: the record's offset) or the new
//! length (truncations), and the file's size before.
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

/// The `corrupt` fault kind (`length_fields: false`), or `corrupt-length` (`true`): every
/// flip aimed at a record's length field, on all members, a majority or a minority.
pub struct CorruptKind {
    pub length_fields: bool,
}

/// How a file is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Flip one bit at a random offset.
    BitFlip,
    /// Cut the file at a random offset.
    Truncate,
    /// Flip one bit of a record's length field (see [`aim_at_length_field`]); a random bit
    /// where the target names no records.
    LengthFlip,
}

impl FaultKind for CorruptKind {
    fn name(&self) -> &'static str {
        if self.length_fields {
            "corrupt-length"
        } else {
            "corrupt"
        }
    }
    /// Not in `all`: `all`'s schedules are fixtures, and a refusing member stays down.
    fn in_all(&self) -> bool {
        false
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn plan(&self, nodes: &[String], rng: &mut StdRng) -> Arc<dyn Fault> {
        let mode = if self.length_fields {
            Mode::LengthFlip
        } else if rng.gen_bool(0.5) {
            Mode::BitFlip
        } else {
            Mode::Truncate
        };
        let nodes = match mode {
            Mode::BitFlip | Mode::LengthFlip => storage_targets(nodes, rng),
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
    /// For a flip aimed at a length field: the offset of the record whose field it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length_field_of: Option<u64>,
}

impl Damage {
    fn describe(&self) -> String {
        match self.bit {
            Some(b) => match self.length_field_of {
                Some(r) => format!(
                    "flipped bit {b} of {}@{} (the length field of the record at {r})",
                    self.file, self.offset
                ),
                None => format!("flipped bit {b} of {}@{}", self.file, self.offset),
            },
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

/// How a target frames the records of a data file: `(file relative to the data dir, bytes)`
/// → `(offset, payload length)` per record (see `crate::sut::Target::record_frames`).
pub type Frames<'a> = &'a dyn Fn(&str, &[u8]) -> Vec<(u64, u32)>;

/// A length-field flip: in a file whose target names at least two records, one bit of the
/// length field of a record that is not the last, chosen among the bits that make the record
/// run past the end of the file (the damage a recovery most easily mistakes for a torn write;
/// any bit of the field if none does).
fn aim_at_length_field(
    dir: &Path,
    files: &[(PathBuf, u64)],
    frames: Frames,
    rng: &mut StdRng,
) -> anyhow::Result<Option<AimedFlip>> {
    let mut framed = Vec::new();
    for (rel, size) in files {
        let path = dir.join(rel);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let fr = frames(&rel.display().to_string(), &bytes);
        if fr.len() >= 2 {
            framed.push((rel.clone(), *size, fr));
        }
    }
    let Some((rel, size, fr)) = framed.choose(rng) else {
        return Ok(None);
    };
    let (off, len) = fr[rng.gen_range(0..fr.len() - 1)];
    let past_end: Vec<u8> = (0..32u8)
        .filter(|b| {
            let l = u64::from(len ^ (1u32 << b));
            l > 0 && l <= 1 << 30 && off + 12 + l > *size
        })
        .collect();
    let b = match past_end.choose(rng) {
        Some(&b) => b,
        None => rng.gen_range(0..32u8),
    };
    Ok(Some(AimedFlip {
        file: rel.clone(),
        size: *size,
        offset: off + u64::from(b / 8),
        bit: b % 8,
        record: off,
    }))
}

/// A bit flip [`aim_at_length_field`] chose.
struct AimedFlip {
    /// The file, relative to the data directory, and its size.
    file: PathBuf,
    size: u64,
    /// The byte and the bit in it.
    offset: u64,
    bit: u8,
    /// The offset of the record whose length field holds that byte.
    record: u64,
}

/// Damages one file of `dir` as `mode` with choices from `rng`; durable (fsynced). Half of the
/// bit flips are aimed at a record's length field where `frames` names records (see
/// [`aim_at_length_field`]); the others, and truncations, hit a uniformly random byte of the
/// member's data (a file chosen with probability proportional to its size).
pub fn damage(dir: &Path, mode: Mode, frames: Frames, rng: &mut StdRng) -> anyhow::Result<Damage> {
    let files = data_files(dir)?;
    if files.is_empty() {
        anyhow::bail!("{} holds no data file to damage", dir.display());
    }
    let aimed = if mode == Mode::LengthFlip || (mode == Mode::BitFlip && rng.gen_bool(0.5)) {
        aim_at_length_field(dir, &files, frames, rng)?
    } else {
        None
    };
    let (rel, size, offset, aimed_bit, record) = match aimed {
        Some(a) => (a.file, a.size, a.offset, Some(a.bit), Some(a.record)),
        None => {
            // A uniformly random byte of the member's data: files weighted by their size.
            let total: u64 = files.iter().map(|f| f.1).sum();
            let mut at = rng.gen_range(0..total);
            let (rel, size) = files
                .iter()
                .find(|f| {
                    let here = at < f.1;
                    if !here {
                        at -= f.1;
                    }
                    here
                })
                .cloned()
                .expect("at < total");
            (rel, size, at, None, None)
        }
    };
    let path = dir.join(&rel);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let bit = match mode {
        Mode::BitFlip | Mode::LengthFlip => {
            let bit = aimed_bit.unwrap_or_else(|| rng.gen_range(0..8u8));
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
        length_field_of: record,
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
                    let target = cluster.target.clone();
                    let frames = move |f: &str, b: &[u8]| target.record_frames(f, b);
                    damage(dir, self.mode, &frames, &mut rng)
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

    fn no_frames(_: &str, _: &[u8]) -> Vec<(u64, u32)> {
        Vec::new()
    }

    #[test]
    fn a_bit_flip_changes_exactly_one_bit_of_one_file_as_recorded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wal.log"), vec![0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/snap"), vec![0u8; 50]).unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        let d = damage(
            dir.path(),
            Mode::BitFlip,
            &no_frames,
            &mut StdRng::seed_from_u64(3),
        )
        .unwrap();
        let bytes = std::fs::read(dir.path().join(&d.file)).unwrap();
        assert_eq!(bytes.len() as u64, d.size);
        let ones: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
        assert_eq!(ones, vec![d.offset as usize]);
        assert_eq!(bytes[d.offset as usize], 1 << d.bit.unwrap());
        assert_ne!(d.file, "empty");
    }

    /// A real node WAL of five entry records in `dir`.
    fn node_wal(dir: &Path) {
        use splitbrain_node::raft::Entry;
        let (mut w, _) = splitbrain_node::wal::Wal::open(dir).unwrap();
        for i in 1..=5 {
            let e = Entry {
                term: 1,
                index: i,
                data: format!("entry {i}").into_bytes(),
            };
            w.append(None, &[e]).unwrap();
            w.sync().unwrap();
        }
    }

    #[test]
    fn aimed_flips_hit_a_length_field_before_the_last_record_which_the_node_refuses_and_the_old_rules_drop(
    ) {
        let frames = |f: &str, b: &[u8]| {
            if f == "wal.log" {
                splitbrain_node::wal::record_frames(b)
            } else {
                Vec::new()
            }
        };
        let (mut aimed, mut random) = (0, 0);
        for seed in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            node_wal(dir.path());
            let before = std::fs::read(dir.path().join("wal.log")).unwrap();
            let fr = splitbrain_node::wal::record_frames(&before);
            let d = damage(
                dir.path(),
                Mode::BitFlip,
                &frames,
                &mut StdRng::seed_from_u64(seed),
            )
            .unwrap();
            let Some(rec) = d.length_field_of else {
                random += 1;
                continue;
            };
            aimed += 1;
            let i = fr.iter().position(|f| f.0 == rec).expect("a record start");
            assert!(
                i + 1 < fr.len(),
                "seed {seed}: the last record was aimed at"
            );
            assert!((rec..rec + 4).contains(&d.offset), "seed {seed}: {d:?}");
            let after = std::fs::read(dir.path().join("wal.log")).unwrap();
            let len = u32::from_le_bytes(after[rec as usize..rec as usize + 4].try_into().unwrap());
            assert!(
                rec + 12 + u64::from(len) > d.size,
                "seed {seed}: runs past the end"
            );
            let err = splitbrain_node::wal::Wal::open(dir.path())
                .err()
                .map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.contains(&format!("wal.log@{rec}"))),
                "seed {seed}: the node must refuse at the record: {err:?}"
            );
            let opts = splitbrain_node::wal::WalOptions {
                torn_tail_any_damage: true,
                ..Default::default()
            };
            let (_, got) = splitbrain_node::wal::Wal::open_with(dir.path(), opts).unwrap();
            assert!(
                got.entries.len() < 5,
                "seed {seed}: the old rules keep everything?"
            );
        }
        assert!(
            aimed >= 10 && random >= 10,
            "aimed {aimed}, random {random}"
        );
        // `corrupt-length` aims every flip.
        for seed in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            node_wal(dir.path());
            let mut rng = StdRng::seed_from_u64(seed);
            let d = damage(dir.path(), Mode::LengthFlip, &frames, &mut rng).unwrap();
            assert!(d.length_field_of.is_some(), "seed {seed}: {d:?}");
        }
        let nodes: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
        let kind = CorruptKind {
            length_fields: true,
        };
        let f = kind.plan(&nodes, &mut StdRng::seed_from_u64(1)).describe();
        assert_eq!(f["mode"], "length-flip", "{f}");
    }

    #[test]
    fn a_truncation_cuts_the_file_at_the_recorded_offset_and_replays_the_same() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wal.log"), vec![7u8; 1000]).unwrap();
        let d = damage(
            dir.path(),
            Mode::Truncate,
            &no_frames,
            &mut StdRng::seed_from_u64(9),
        )
        .unwrap();
        assert_eq!(d.file, "wal.log");
        assert_eq!(d.bit, None);
        let len = std::fs::metadata(dir.path().join("wal.log")).unwrap().len();
        assert_eq!(len, d.offset);
        assert!(len < 1000);
        let again = tempfile::tempdir().unwrap();
        std::fs::write(again.path().join("wal.log"), vec![7u8; 1000]).unwrap();
        let d2 = damage(
            again.path(),
            Mode::Truncate,
            &no_frames,
            &mut StdRng::seed_from_u64(9),
        )
        .unwrap();
        assert_eq!(d, d2);
    }

    #[test]
    fn a_data_dir_without_files_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = damage(
            dir.path(),
            Mode::BitFlip,
            &no_frames,
            &mut StdRng::seed_from_u64(1),
        )
        .unwrap_err();
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
            let f = CorruptKind {
                length_fields: false,
            }
            .plan(&nodes, &mut rng)
            .describe();
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
