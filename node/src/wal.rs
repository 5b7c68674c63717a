//! The node's durable storage: a write-ahead log of Raft hard state and entries, and one
//! snapshot file.
//!
//! # Layout of a data directory
//! - `wal.log`: a sequence of records, each framed as
//!   `len: u32 LE | crc32: u32 LE | hcrc: u32 LE | payload` (`crc32` of the payload, `hcrc` of
//!   the 8 bytes before it, `crc32fast`). A payload is a tag byte and its body:
//!   - `1` hard state: `term u64 | commit u64 | vote_len u16 | vote bytes` (`vote_len` =
//!     `u16::MAX` for no vote);
//!   - `2` entries: `count u32`, then per entry `term u64 | index u64 | len u32 | data`;
//!   - `3` base: `index u64 | term u64`, the snapshot a rotated log continues (its first
//!     record).
//!
//!   Replaying the records in order rebuilds the log: an entries record whose first index is at
//!   or below the last index replaces the suffix from that index (Raft truncation), the last
//!   hard-state record wins.
//! - `snapshot.bin`: one framed record `index u64 | term u64 | data`, written to
//!   `snapshot.bin.tmp`, fsynced, renamed, and the directory fsynced.
//!
//! # Guarantees
//! - [`Wal::append`] only buffers; [`Wal::sync`] writes the buffer and `fdatasync`s it. The
//!   caller syncs once per Raft `Ready` (group commit) before sending or answering anything.
//! - Recovery drops a torn tail, which is only the last record cut short or zero-filled (see
//!   `replay`), and truncates the file to the last good record.
//! - Any other damage is refused with [`WalError::Corrupt`], whose message reads
//!   `refused data: FILE@OFFSET: reason`: serving from a log with a hole would be wrong. The
//!   header checksum is what tells a damaged length field from a torn write.
//! - After a snapshot at index `i` the log is rotated: a new `wal.log.tmp` holding a base
//!   record `(i, term)`, the current hard state and the entries after `i` is synced and renamed
//!   over `wal.log` (directory fsynced). A crash between the snapshot and the rotation leaves
//!   the old log: its entries after `i` are kept only if it holds entry `i` with the
//!   snapshot's term (Raft §7), otherwise the snapshot alone counts.
//! - A data directory created by [`Wal::open`] has its parent directories fsynced.
//!
//! Why not an embedded store: the checksummed frames, the torn-tail rule and group commit are
//! the part of a Raft node that a test harness most needs to trust, so they are written here,
//! small enough to read, and tested directly.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::raft::{Entry, HardState, Index, Snapshot, Term};

const TAG_HARD_STATE: u8 = 1;
const TAG_ENTRIES: u8 = 2;
const TAG_BASE: u8 = 3;
/// Largest payload a record may claim; anything larger is damage (or a torn length field).
const MAX_RECORD: u32 = 1 << 30;
const NO_VOTE: u16 = u16::MAX;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refused data: {}@{offset}: {reason} (damage before the tail; not starting)", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("entries out of order: got index {got} after last index {last}")]
    Gap { got: Index, last: Index },
}

type Result<T> = std::result::Result<T, WalError>;

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|source| WalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// What the data directory held at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// Bytes dropped from a torn tail (0 if the log ended cleanly).
    pub torn_bytes: u64,
}

/// How the log behaves; the default is the correct node.
#[derive(Clone, Debug, Default)]
pub struct WalOptions {
    /// `--bug no-fsync`: [`Wal::sync`] writes the records to the file but never
    /// `fdatasync`s them (a power loss may forget acknowledged writes). Snapshots and the
    /// log rotation after them are still synced.
    pub no_fsync: bool,
    /// `--bug torn-tail-any-damage`: recovery ignores the header checksum and uses the old
    /// rules, which take a damaged length field anywhere for a torn tail and truncate the log
    /// there (silently losing everything after it).
    pub torn_tail_any_damage: bool,
}

/// The open write-ahead log of one node.
pub struct Wal {
    opts: WalOptions,
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Encoded records not yet written and synced.
    buf: Vec<u8>,
    /// The last hard state appended (for rotation).
    hard_state: HardState,
    /// Index of the last snapshot (0 if none); `entries[0].index == snap_index + 1`.
    snap_index: Index,
    snap_term: Term,
    /// The log after the snapshot, mirrored so that rotation can rewrite it. Bounded by the
    /// snapshot interval.
    entries: Vec<Entry>,
    /// `fdatasync`s done by [`Wal::sync`].
    syncs: u64,
}

impl Wal {
    /// Opens (creating if needed) the data directory and recovers its contents.
    pub fn open(dir: &Path) -> Result<(Wal, Recovered)> {
        Self::open_with(dir, WalOptions::default())
    }

    /// [`Wal::open`] with options (the bugs on demand).
    pub fn open_with(dir: &Path, opts: WalOptions) -> Result<(Wal, Recovered)> {
        if !dir.exists() {
            // The first ancestor that exists: every directory created below it needs its
            // entry made durable by an fsync of its parent.
            let mut top = dir.parent();
            while let Some(p) = top {
                if p.as_os_str().is_empty() || p.exists() {
                    break;
                }
                top = p.parent();
            }
            io(dir, std::fs::create_dir_all(dir))?;
            let mut p = dir.parent();
            while let Some(parent) = p {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                fsync_dir(parent)?;
                if Some(parent) == top || top.is_none() || parent == Path::new(".") {
                    break;
                }
                p = parent.parent();
            }
        }
        let path = dir.join("wal.log");
        let snap_path = dir.join("snapshot.bin");
        let snapshot = if snap_path.exists() {
            Some(read_snapshot(&snap_path)?)
        } else {
            None
        };
        let _ = std::fs::remove_file(dir.join("wal.log.tmp"));
        let _ = std::fs::remove_file(dir.join("snapshot.bin.tmp"));

        let mut bytes = Vec::new();
        if path.exists() {
            let mut f = io(&path, File::open(&path))?;
            io(&path, f.read_to_end(&mut bytes))?;
        }
        let (snap_index, snap_term) = snapshot.as_ref().map_or((0, 0), |s| (s.index, s.term));
        let mut hard_state = HardState::default();
        // The log as the file tells it: the base written at the last rotation (the snapshot
        // the file was rotated after), and the contiguous entries after it.
        let mut base: Option<(Index, Term)> = None;
        let mut log: Vec<Entry> = Vec::new();
        let good = replay(&path, &bytes, opts.torn_tail_any_damage, |rec| {
            match rec {
                Record::HardState(hs) => hard_state = hs,
                Record::Base { index, term } => {
                    base = Some((index, term));
                    log.clear();
                }
                Record::Entries(es) => {
                    for e in es {
                        match log.first().map(|f| f.index) {
                            Some(first) if e.index >= first => {
                                let pos = (e.index - first) as usize;
                                if pos > log.len() {
                                    // A hole: only a snapshot installed without a rotation can
                                    // leave one; what came before it is unusable.
                                    log.clear();
                                }
                                log.truncate(pos);
                                log.push(e);
                            }
                            _ => {
                                log.clear();
                                log.push(e);
                            }
                        }
                    }
                }
            }
            Ok(())
        })?;
        let torn_bytes = bytes.len() as u64 - good;
        let file = io(
            &path,
            OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path),
        )?;
        if torn_bytes > 0 {
            io(&path, file.set_len(good))?;
            io(&path, file.sync_all())?;
            tracing::warn!(file = %path.display(), offset = good, bytes = torn_bytes, "dropped a torn tail of the write-ahead log");
        }
        fsync_dir(dir)?;
        let base_index = base.map_or(0, |b| b.0);
        if base_index > snap_index {
            // The log was rotated after a snapshot that is not here: the entries up to the
            // base are gone.
            return Err(WalError::Corrupt {
                path: path.clone(),
                offset: 0,
                reason: format!(
                    "the log starts after index {base_index} but {} holds index {snap_index}",
                    snap_path.display()
                ),
            });
        }
        // The entries after the snapshot count only if the log continues it: it was rotated
        // at this snapshot, or (a crash between writing the snapshot and rotating) it holds
        // the snapshot's last entry with the snapshot's term (Raft §7: keep what follows).
        let continues = if base == Some((snap_index, snap_term)) || snap_index == 0 {
            true
        } else {
            log.iter()
                .any(|e| e.index == snap_index && e.term == snap_term)
        };
        let mut entries: Vec<Entry> = if continues {
            log.into_iter().filter(|e| e.index > snap_index).collect()
        } else {
            Vec::new()
        };
        if entries.first().is_some_and(|e| e.index != snap_index + 1) {
            entries.clear();
        }
        let wal = Wal {
            opts,
            dir: dir.to_path_buf(),
            path,
            file,
            buf: Vec::new(),
            hard_state: hard_state.clone(),
            snap_index,
            snap_term,
            entries: entries.clone(),
            syncs: 0,
        };
        Ok((
            wal,
            Recovered {
                hard_state,
                snapshot,
                entries,
                torn_bytes,
            },
        ))
    }

    /// Buffers a hard state and/or entries; durable only after [`Wal::sync`].
    /// Entries at or below the snapshot index are covered by it (committed) and skipped; an
    /// entry beyond the last index + 1 is [`WalError::Gap`].
    pub fn append(&mut self, hard_state: Option<&HardState>, entries: &[Entry]) -> Result<()> {
        let skip = entries
            .iter()
            .take_while(|e| e.index <= self.snap_index)
            .count();
        let entries = &entries[skip..];
        if let Some(first) = entries.first() {
            let last = self.last_index();
            if first.index > last + 1 {
                return Err(WalError::Gap {
                    got: first.index,
                    last,
                });
            }
            let pos = (first.index - self.snap_index - 1) as usize;
            self.entries.truncate(pos);
            self.entries.extend_from_slice(entries);
            encode_record(&mut self.buf, |p| encode_entries(p, entries));
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
            encode_record(&mut self.buf, |p| encode_hard_state(p, hs));
        }
        Ok(())
    }

    /// Writes the buffered records and `fdatasync`s the log (one sync per call).
    pub fn sync(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        io(&self.path, self.file.write_all(&self.buf))?;
        if !self.opts.no_fsync {
            io(&self.path, self.file.sync_data())?;
            self.syncs += 1;
        }
        self.buf.clear();
        Ok(())
    }

    /// How many `fdatasync`s of the log [`Wal::sync`] has done (for tests of `no-fsync`).
    pub fn data_syncs(&self) -> u64 {
        self.syncs
    }

    /// The last index in the log (or the snapshot's).
    pub fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snap_index, |e| e.index)
    }

    /// Term of the entry at `index`, if it is in the log (or is the snapshot's).
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snap_index {
            return Some(self.snap_term);
        }
        if index < self.snap_index {
            return None;
        }
        self.entries
            .get((index - self.snap_index - 1) as usize)
            .map(|e| e.term)
    }

    /// The stored entries in `[from, to]` (clamped to what is held).
    pub fn entries(&self, from: Index, to: Index) -> &[Entry] {
        let base = self.snap_index + 1;
        let lo = from.max(base);
        let hi = to.min(self.last_index());
        if lo > hi {
            return &[];
        }
        &self.entries[(lo - base) as usize..=(hi - base) as usize]
    }

    pub fn snapshot_index(&self) -> Index {
        self.snap_index
    }

    /// Durably stores `snap` (temp file, fsync, rename, directory fsync), then rotates the log
    /// to hold only the current hard state and the entries after the snapshot. `keep_suffix`:
    /// keep the entries after the snapshot if the log agrees with it at its index (a snapshot
    /// of our own state machine); a snapshot received from a leader replaces the whole log
    /// (the core's contract) and passes `false`.
    pub fn save_snapshot(&mut self, snap: &Snapshot, keep_suffix: bool) -> Result<()> {
        self.sync()?;
        let tmp = self.dir.join("snapshot.bin.tmp");
        let path = self.dir.join("snapshot.bin");
        let mut rec = Vec::with_capacity(snap.data.len() + 32);
        encode_record(&mut rec, |p| {
            p.extend_from_slice(&snap.index.to_le_bytes());
            p.extend_from_slice(&snap.term.to_le_bytes());
            p.extend_from_slice(&snap.data);
        });
        write_synced(&tmp, &rec)?;
        io(&path, std::fs::rename(&tmp, &path))?;
        fsync_dir(&self.dir)?;

        let keep = keep_suffix && self.term_at(snap.index) == Some(snap.term);
        let rest: Vec<Entry> = if keep {
            self.entries
                .iter()
                .filter(|e| e.index > snap.index)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        self.snap_index = snap.index;
        self.snap_term = snap.term;
        self.entries = rest;

        let mut log = Vec::new();
        let hs = self.hard_state.clone();
        let (bi, bt) = (snap.index, snap.term);
        encode_record(&mut log, |p| {
            p.push(TAG_BASE);
            p.extend_from_slice(&bi.to_le_bytes());
            p.extend_from_slice(&bt.to_le_bytes());
        });
        encode_record(&mut log, |p| encode_hard_state(p, &hs));
        for chunk in self.entries.chunks(1024) {
            encode_record(&mut log, |p| encode_entries(p, chunk));
        }
        let wal_tmp = self.dir.join("wal.log.tmp");
        write_synced(&wal_tmp, &log)?;
        io(&self.path, std::fs::rename(&wal_tmp, &self.path))?;
        fsync_dir(&self.dir)?;
        self.file = io(
            &self.path,
            OpenOptions::new().append(true).read(true).open(&self.path),
        )?;
        Ok(())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = io(path, File::create(path))?;
    io(path, f.write_all(bytes))?;
    io(path, f.sync_all())
}

fn fsync_dir(dir: &Path) -> Result<()> {
    let d = io(dir, File::open(dir))?;
    io(dir, d.sync_all())
}

enum Record {
    HardState(HardState),
    Entries(Vec<Entry>),
    /// First record of a rotated log: the snapshot (index, term) the entries continue.
    Base {
        index: Index,
        term: Term,
    },
}

/// Bytes of a record header: `len u32 | crc u32 | hcrc u32`.
pub const HEADER: usize = 12;

/// The header of a record of `len` payload bytes whose payload checksum is `crc`: the
/// length and checksum, then a checksum of those 8 bytes (so a damaged length is told apart
/// from a torn write). Public for tests that forge torn records.
pub fn record_header(len: u32, crc: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    let hcrc = crc32fast::hash(&h[0..8]);
    h[8..12].copy_from_slice(&hcrc.to_le_bytes());
    h
}

fn encode_record(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    body(out);
    let payload = &out[start + HEADER..];
    let h = record_header(payload.len() as u32, crc32fast::hash(payload));
    out[start..start + HEADER].copy_from_slice(&h);
}

fn encode_hard_state(p: &mut Vec<u8>, hs: &HardState) {
    p.push(TAG_HARD_STATE);
    p.extend_from_slice(&hs.term.to_le_bytes());
    p.extend_from_slice(&hs.commit.to_le_bytes());
    match &hs.vote {
        Some(v) => {
            // Node ids are short; a vote longer than the tag allows is cut, which cannot
            // happen with ids given on the command line (checked in cli).
            let b = &v.as_bytes()[..v.len().min(NO_VOTE as usize - 1)];
            p.extend_from_slice(&(b.len() as u16).to_le_bytes());
            p.extend_from_slice(b);
        }
        None => p.extend_from_slice(&NO_VOTE.to_le_bytes()),
    }
}

fn encode_entries(p: &mut Vec<u8>, entries: &[Entry]) {
    p.push(TAG_ENTRIES);
    p.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        p.extend_from_slice(&e.term.to_le_bytes());
        p.extend_from_slice(&e.index.to_le_bytes());
        p.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        p.extend_from_slice(&e.data);
    }
}

/// A cursor over a payload that reports what was missing.
struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.b.len() - self.at < n {
            return Err(format!("payload ends early at payload byte {}", self.at));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        // The slice has exactly 8 bytes (take checked it).
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u16(&mut self) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
}

fn decode(payload: &[u8]) -> std::result::Result<Record, String> {
    let mut c = Cur { b: payload, at: 0 };
    let tag = c.take(1)?[0];
    let rec = match tag {
        TAG_HARD_STATE => {
            let term = c.u64()?;
            let commit = c.u64()?;
            let n = c.u16()?;
            let vote = if n == NO_VOTE {
                None
            } else {
                let b = c.take(n as usize)?;
                Some(String::from_utf8(b.to_vec()).map_err(|_| "vote is not UTF-8".to_string())?)
            };
            Record::HardState(HardState { term, vote, commit })
        }
        TAG_ENTRIES => {
            let n = c.u32()?;
            let mut es = Vec::with_capacity((n as usize).min(4096));
            for _ in 0..n {
                let term = c.u64()?;
                let index = c.u64()?;
                let len = c.u32()? as usize;
                let data = c.take(len)?.to_vec();
                es.push(Entry { term, index, data });
            }
            Record::Entries(es)
        }
        TAG_BASE => Record::Base {
            index: c.u64()?,
            term: c.u64()?,
        },
        t => return Err(format!("unknown record tag {t}")),
    };
    if c.at != payload.len() {
        return Err(format!(
            "{} bytes left over after the record",
            payload.len() - c.at
        ));
    }
    Ok(rec)
}

/// Replays records; returns the offset just after the last good record.
///
/// A torn tail is only the last record cut short or zero-filled: fewer bytes than a header,
/// a header (with a good header checksum) promising more bytes than the file has, a last
/// record whose payload checksum fails with nothing but zeros after it, or zeros to the end
/// of the file. Anything else — a bad header checksum, an impossible length, a bad payload
/// checksum or an undecodable payload with data after it — is [`WalError::Corrupt`] at the
/// record's offset. `any_damage` (`--bug torn-tail-any-damage`) restores the old rules,
/// which ignore the header checksum.
fn replay(
    path: &Path,
    bytes: &[u8],
    any_damage: bool,
    mut f: impl FnMut(Record) -> Result<()>,
) -> Result<u64> {
    if any_damage {
        return replay_any_damage(path, bytes, f);
    }
    let mut off = 0usize;
    let n = bytes.len();
    let zeros = |from: usize| bytes[from.min(n)..].iter().all(|&b| b == 0);
    while off < n {
        let corrupt = |reason: String| WalError::Corrupt {
            path: path.to_path_buf(),
            offset: off as u64,
            reason,
        };
        if n - off < HEADER {
            return Ok(off as u64); // a header cut short: the last record is incomplete
        }
        if zeros(off) {
            return Ok(off as u64); // a zero-filled tail
        }
        // 4-byte slices of a HEADER-byte window checked above.
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
        let crc = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().unwrap());
        let hcrc = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap());
        if crc32fast::hash(&bytes[off..off + 8]) != hcrc {
            if zeros(off + HEADER) {
                // Only the header has data and it is not whole: a torn last write.
                return Ok(off as u64);
            }
            return Err(corrupt(format!(
                "header checksum mismatch (length field {len}) with {} more bytes after it",
                n - off - HEADER
            )));
        }
        if len == 0 || len > MAX_RECORD {
            return Err(corrupt(format!("impossible record length {len}")));
        }
        let end = off + HEADER + len as usize;
        if end > n {
            return Ok(off as u64); // the last record, cut short
        }
        let payload = &bytes[off + HEADER..end];
        if crc32fast::hash(payload) != crc {
            if zeros(end) {
                return Ok(off as u64); // the last record, not wholly written
            }
            return Err(corrupt(format!(
                "payload checksum mismatch in a {len}-byte record followed by {} more bytes",
                n - end
            )));
        }
        let rec = decode(payload).map_err(corrupt)?;
        f(rec)?;
        off = end;
    }
    Ok(off as u64)
}

/// The framing rules before issue 12 (`--bug torn-tail-any-damage`): the header checksum is
/// not looked at, so a damaged length that runs past the end of the file, or a bad checksum
/// of a record that then seems to end at the end of the file, is taken for a torn tail.
fn replay_any_damage(
    path: &Path,
    bytes: &[u8],
    mut f: impl FnMut(Record) -> Result<()>,
) -> Result<u64> {
    let mut off = 0usize;
    let n = bytes.len();
    let torn = |from: usize| bytes[from..].iter().all(|&b| b == 0);
    while off < n {
        if n - off < HEADER {
            return Ok(off as u64);
        }
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
        let crc = u32::from_le_bytes(bytes[off + 4..off + 8].try_into().unwrap());
        let corrupt = |reason: String| WalError::Corrupt {
            path: path.to_path_buf(),
            offset: off as u64,
            reason,
        };
        if len == 0 || len > MAX_RECORD {
            if torn(off) {
                return Ok(off as u64);
            }
            return Err(corrupt(format!("impossible record length {len}")));
        }
        let end = off + HEADER + len as usize;
        if end > n {
            return Ok(off as u64);
        }
        let payload = &bytes[off + HEADER..end];
        if crc32fast::hash(payload) != crc {
            if end == n || torn(end) {
                return Ok(off as u64);
            }
            return Err(corrupt(format!(
                "checksum mismatch in a {len}-byte record followed by {} more bytes",
                n - end
            )));
        }
        let rec = decode(payload).map_err(corrupt)?;
        f(rec)?;
        off = end;
    }
    Ok(off as u64)
}

/// Where the records of a WAL file start: `(offset, payload length)` of every whole record
/// whose header checksum holds, in order, up to the first one that does not (or runs past the
/// end). Pure, for tools that aim damage at a record's framing (the harness's `corrupt` fault
/// flips a bit of a length field that is not the last).
pub fn record_frames(bytes: &[u8]) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while bytes.len() - off >= HEADER {
        let h = &bytes[off..off + HEADER];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let hcrc = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        if len == 0 || crc32fast::hash(&h[..8]) != hcrc {
            break;
        }
        let end = off + HEADER + len as usize;
        if end > bytes.len() {
            break;
        }
        out.push((off as u64, len));
        off = end;
    }
    out
}

fn read_snapshot(path: &Path) -> Result<Snapshot> {
    let bytes = io(path, std::fs::read(path))?;
    let corrupt = |reason: &str| WalError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.to_string(),
    };
    if bytes.len() < HEADER + 16 {
        return Err(corrupt("snapshot file too short"));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    let hcrc = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    if crc32fast::hash(&bytes[0..8]) != hcrc {
        return Err(corrupt("snapshot header checksum mismatch"));
    }
    if HEADER + len != bytes.len() || len < 16 {
        return Err(corrupt("snapshot length does not match the file"));
    }
    let payload = &bytes[HEADER..];
    if crc32fast::hash(payload) != crc {
        return Err(corrupt("snapshot checksum mismatch"));
    }
    Ok(Snapshot {
        index: u64::from_le_bytes(payload[0..8].try_into().unwrap()),
        term: u64::from_le_bytes(payload[8..16].try_into().unwrap()),
        data: payload[16..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(term: Term, index: Index, s: &str) -> Entry {
        Entry {
            term,
            index,
            data: s.as_bytes().to_vec(),
        }
    }

    fn hs(term: Term, vote: Option<&str>, commit: Index) -> HardState {
        HardState {
            term,
            vote: vote.map(str::to_string),
            commit,
        }
    }

    #[test]
    fn round_trips_hard_state_and_entries_with_truncation() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, rec) = Wal::open(dir.path()).unwrap();
            assert_eq!(rec, Recovered::default());
            w.append(
                Some(&hs(1, Some("n1"), 0)),
                &[e(1, 1, "a"), e(1, 2, "b"), e(1, 3, "c")],
            )
            .unwrap();
            w.sync().unwrap();
            // A new leader overwrites index 2..: truncate then append.
            w.append(Some(&hs(2, None, 1)), &[e(2, 2, "B")]).unwrap();
            w.sync().unwrap();
        }
        let (w, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.hard_state, hs(2, None, 1));
        assert_eq!(rec.entries, vec![e(1, 1, "a"), e(2, 2, "B")]);
        assert_eq!(rec.torn_bytes, 0);
        assert_eq!(w.last_index(), 2);
        assert_eq!(w.term_at(2), Some(2));
    }

    #[test]
    fn unsynced_appends_are_not_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(None, &[e(1, 1, "a")]).unwrap();
            w.sync().unwrap();
            w.append(None, &[e(1, 2, "b")]).unwrap();
        }
        let (_, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries, vec![e(1, 1, "a")]);
    }

    fn wal_with_three_records(dir: &Path) -> u64 {
        let (mut w, _) = Wal::open(dir).unwrap();
        w.append(None, &[e(1, 1, "first")]).unwrap();
        w.sync().unwrap();
        w.append(None, &[e(1, 2, "second")]).unwrap();
        w.sync().unwrap();
        w.append(None, &[e(1, 3, "third")]).unwrap();
        w.sync().unwrap();
        std::fs::metadata(dir.join("wal.log")).unwrap().len()
    }

    #[test]
    fn the_no_fsync_bug_writes_records_without_syncing_them() {
        // Observable without a power cut: the records are in the file (readable after reopen)
        // and sync_data was never called, which the sync counter shows.
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            no_fsync: true,
            ..WalOptions::default()
        };
        let (mut w, _) = Wal::open_with(dir.path(), opts).unwrap();
        w.append(Some(&hs(1, Some("n1"), 0)), &[e(1, 1, "a")])
            .unwrap();
        w.sync().unwrap();
        assert_eq!(w.data_syncs(), 0);
        drop(w);
        let (mut w, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries, vec![e(1, 1, "a")]);
        w.append(None, &[e(1, 2, "b")]).unwrap();
        w.sync().unwrap();
        assert_eq!(w.data_syncs(), 1);
    }

    #[test]
    fn drops_a_torn_tail_record_and_keeps_appending_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let len = wal_with_three_records(dir.path());
        let path = dir.path().join("wal.log");
        // Cut the last record in the middle.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        drop(f);
        {
            let (mut w, rec) = Wal::open(dir.path()).unwrap();
            assert_eq!(rec.entries, vec![e(1, 1, "first"), e(1, 2, "second")]);
            assert!(rec.torn_bytes > 0);
            w.append(None, &[e(2, 3, "again")]).unwrap();
            w.sync().unwrap();
        }
        let (_, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            rec.entries,
            vec![e(1, 1, "first"), e(1, 2, "second"), e(2, 3, "again")]
        );
        assert_eq!(rec.torn_bytes, 0);
    }

    #[test]
    fn drops_a_last_record_with_a_bad_checksum_and_trailing_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let len = wal_with_three_records(dir.path());
        let path = dir.path().join("wal.log");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff; // flip a byte of the last record's payload
        bytes.extend_from_slice(&[0u8; 100]); // and preallocated zeros after it
        std::fs::write(&path, &bytes).unwrap();
        let (_, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 2);
        // The third record (42 bytes) and the zeros are dropped.
        assert_eq!(rec.torn_bytes, 42 + 100);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len - 42);
    }

    #[test]
    fn refuses_damage_before_the_tail_naming_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        wal_with_three_records(dir.path());
        let path = dir.path().join("wal.log");
        let mut bytes = std::fs::read(&path).unwrap();
        // Damage the second record's payload (first record: 12 + 1 + 4 + 20 + 5 = 42 bytes).
        bytes[42 + 12 + 3] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let err = Wal::open(dir.path()).err().expect("must refuse");
        let msg = err.to_string();
        assert!(matches!(err, WalError::Corrupt { offset: 42, .. }), "{msg}");
        assert!(
            msg.contains("refused data: ") && msg.contains("wal.log@42: "),
            "{msg}"
        );
    }

    /// Records of a small log and the offset where each starts (and the end).
    fn small_log() -> (Vec<u8>, Vec<usize>) {
        let mut b = Vec::new();
        let mut bounds = vec![0];
        encode_record(&mut b, |p| encode_hard_state(p, &hs(3, Some("n2"), 1)));
        bounds.push(b.len());
        for i in 1..=3u64 {
            let es = [e(3, i, "value")];
            encode_record(&mut b, |p| encode_entries(p, &es));
            bounds.push(b.len());
        }
        (b, bounds)
    }

    fn replay_bytes(b: &[u8], any_damage: bool) -> Result<(u64, usize)> {
        let mut n = 0;
        let good = replay(Path::new("wal.log"), b, any_damage, |_| {
            n += 1;
            Ok(())
        })?;
        Ok((good, n))
    }

    #[test]
    fn every_bit_flip_in_every_record_but_the_last_is_refused_at_that_record() {
        let (b, bounds) = small_log();
        assert_eq!(replay_bytes(&b, false).unwrap(), (b.len() as u64, 4));
        let last = bounds[bounds.len() - 2];
        for pos in 0..last {
            let rec_start = *bounds.iter().take_while(|&&o| o <= pos).last().unwrap();
            for bit in 0..8 {
                let mut d = b.clone();
                d[pos] ^= 1 << bit;
                match replay_bytes(&d, false) {
                    Err(WalError::Corrupt { offset, .. }) => {
                        assert_eq!(offset, rec_start as u64, "byte {pos} bit {bit}")
                    }
                    other => panic!(
                        "byte {pos} bit {bit} (length field included) not refused: {other:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn every_flipped_byte_before_the_last_record_stops_the_node_naming_file_and_offset() {
        // The same through files and Wal::open: the error a node log shows.
        let dir = tempfile::tempdir().unwrap();
        let (b, bounds) = small_log();
        let p = dir.path().join("wal.log");
        let last = bounds[bounds.len() - 2];
        for pos in 0..last {
            let rec_start = *bounds.iter().take_while(|&&o| o <= pos).last().unwrap();
            let mut d = b.clone();
            d[pos] ^= 1 << (pos % 8);
            std::fs::write(&p, &d).unwrap();
            let msg = match Wal::open(dir.path()) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("byte {pos}: opened a damaged log"),
            };
            let want = format!("refused data: {}@{rec_start}: ", p.display());
            assert!(msg.starts_with(&want), "byte {pos}: {msg}");
            assert_eq!(
                std::fs::read(&p).unwrap(),
                d,
                "a refused log must not be truncated"
            );
        }
    }

    #[test]
    fn a_torn_or_zero_filled_last_record_is_dropped() {
        let (b, bounds) = small_log();
        let last = bounds[bounds.len() - 2];
        // Cut anywhere inside the last record: dropped, the others kept.
        for cut in last..b.len() {
            assert_eq!(
                replay_bytes(&b[..cut], false).unwrap(),
                (last as u64, 3),
                "cut {cut}"
            );
        }
        // The last record zero-filled from any point (a preallocated or unwritten block).
        for from in last..b.len() {
            let mut d = b.clone();
            d[from..].iter_mut().for_each(|x| *x = 0);
            assert_eq!(
                replay_bytes(&d, false).unwrap(),
                (last as u64, 3),
                "zeros from {from}"
            );
        }
        // Zeros after a whole log.
        let mut d = b.clone();
        d.extend_from_slice(&[0; 4096]);
        assert_eq!(replay_bytes(&d, false).unwrap(), (b.len() as u64, 4));
    }

    #[test]
    fn the_torn_tail_any_damage_bug_drops_the_log_after_a_damaged_length() {
        let (b, bounds) = small_log();
        // Record #2's length field grows past the end of the file.
        let mut d = b.clone();
        d[bounds[1] + 2] ^= 0x01;
        assert!(matches!(
            replay_bytes(&d, false),
            Err(WalError::Corrupt { offset, .. }) if offset == bounds[1] as u64
        ));
        // The old rules take it for a torn tail: three records silently lost.
        assert_eq!(replay_bytes(&d, true).unwrap(), (bounds[1] as u64, 1));
        // Through Wal::open: the bug mode truncates and forgets the hard state's entries.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wal.log"), &d).unwrap();
        let opts = WalOptions {
            torn_tail_any_damage: true,
            ..WalOptions::default()
        };
        let (_, rec) = Wal::open_with(dir.path(), opts).unwrap();
        assert!(rec.entries.is_empty());
        assert_eq!(rec.torn_bytes, (b.len() - bounds[1]) as u64);
        assert!(
            Wal::open(dir.path()).is_ok(),
            "after truncation the loss is silent"
        );
    }

    #[test]
    fn record_frames_lists_every_whole_record_and_stops_at_damage() {
        let (b, bounds) = small_log();
        let frames = record_frames(&b);
        let starts: Vec<u64> = frames.iter().map(|f| f.0).collect();
        let want: Vec<u64> = bounds[..bounds.len() - 1]
            .iter()
            .map(|&o| o as u64)
            .collect();
        assert_eq!(starts, want);
        for (i, (off, len)) in frames.iter().enumerate() {
            assert_eq!(*off as usize + HEADER + *len as usize, bounds[i + 1]);
        }
        let mut d = b.clone();
        d[bounds[2] + 1] ^= 0x10;
        assert_eq!(record_frames(&d).len(), 2, "stops at the damaged header");
        assert_eq!(
            record_frames(&b[..bounds[3] + 5]).len(),
            3,
            "a torn tail is not a record"
        );
    }

    #[test]
    fn snapshot_rotates_the_log_and_recovers_with_entries_after_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            let es: Vec<Entry> = (1..=10).map(|i| e(1, i, "x")).collect();
            w.append(Some(&hs(1, Some("n2"), 10)), &es).unwrap();
            w.sync().unwrap();
            let before = std::fs::metadata(dir.path().join("wal.log")).unwrap().len();
            w.save_snapshot(
                &Snapshot {
                    index: 7,
                    term: 1,
                    data: b"state@7".to_vec(),
                },
                true,
            )
            .unwrap();
            let after = std::fs::metadata(dir.path().join("wal.log")).unwrap().len();
            assert!(after < before, "log not rotated: {after} >= {before}");
            w.append(None, &[e(2, 11, "y")]).unwrap();
            w.sync().unwrap();
        }
        let (w, rec) = Wal::open(dir.path()).unwrap();
        let snap = rec.snapshot.unwrap();
        assert_eq!(
            (snap.index, snap.term, &snap.data[..]),
            (7, 1, &b"state@7"[..])
        );
        assert_eq!(
            rec.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![8, 9, 10, 11]
        );
        assert_eq!(rec.hard_state, hs(1, Some("n2"), 10));
        assert_eq!(w.snapshot_index(), 7);
        assert!(!dir.path().join("snapshot.bin.tmp").exists());
    }

    #[test]
    fn a_crash_between_a_leaders_snapshot_and_the_rotation_keeps_no_conflicting_entries() {
        // The old log (entries 1..=5 of term 1) beside a snapshot at 3 of term 2 from a new
        // leader, as if the node crashed after renaming snapshot.bin and before rotating.
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            let es: Vec<Entry> = (1..=5).map(|i| e(1, i, "old")).collect();
            w.append(Some(&hs(2, None, 2)), &es).unwrap();
            w.sync().unwrap();
        }
        let other = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(other.path()).unwrap();
            let snap = Snapshot {
                index: 3,
                term: 2,
                data: b"s".to_vec(),
            };
            w.save_snapshot(&snap, false).unwrap();
        }
        std::fs::copy(
            other.path().join("snapshot.bin"),
            dir.path().join("snapshot.bin"),
        )
        .unwrap();
        let (w, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.snapshot.unwrap().index, 3);
        assert!(rec.entries.is_empty(), "kept {:?}", rec.entries);
        assert_eq!(w.last_index(), 3);
        // A snapshot that agrees with the log at its index keeps the entries after it.
        let snap_same = Snapshot {
            index: 3,
            term: 1,
            data: b"s".to_vec(),
        };
        let third = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(third.path()).unwrap();
            w.save_snapshot(&snap_same, false).unwrap();
        }
        std::fs::copy(
            third.path().join("snapshot.bin"),
            dir.path().join("snapshot.bin"),
        )
        .unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir2.path()).unwrap();
            let es: Vec<Entry> = (1..=5).map(|i| e(1, i, "old")).collect();
            w.append(None, &es).unwrap();
            w.sync().unwrap();
        }
        std::fs::copy(
            third.path().join("snapshot.bin"),
            dir2.path().join("snapshot.bin"),
        )
        .unwrap();
        let (_, rec) = Wal::open(dir2.path()).unwrap();
        assert_eq!(
            rec.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![4, 5]
        );
    }

    #[test]
    fn a_log_rotated_past_a_missing_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(None, &[e(1, 1, "a"), e(1, 2, "b")]).unwrap();
            w.save_snapshot(
                &Snapshot {
                    index: 2,
                    term: 1,
                    data: vec![],
                },
                true,
            )
            .unwrap();
        }
        std::fs::remove_file(dir.path().join("snapshot.bin")).unwrap();
        let msg = Wal::open(dir.path())
            .err()
            .expect("must refuse")
            .to_string();
        assert!(
            msg.contains("wal.log@0") && msg.contains("index 2"),
            "{msg}"
        );
    }

    #[test]
    fn creating_a_nested_data_dir_works() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b/c");
        let (mut w, _) = Wal::open(&d).unwrap();
        w.append(None, &[e(1, 1, "a")]).unwrap();
        w.sync().unwrap();
        assert!(d.join("wal.log").exists());
    }

    #[test]
    fn snapshot_from_a_leader_that_disagrees_discards_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Wal::open(dir.path()).unwrap();
        w.append(None, &[e(1, 1, "a"), e(1, 2, "b"), e(1, 3, "c")])
            .unwrap();
        w.save_snapshot(
            &Snapshot {
                index: 2,
                term: 3,
                data: vec![],
            },
            true,
        )
        .unwrap();
        assert_eq!(w.last_index(), 2);
        drop(w);
        let (_, rec) = Wal::open(dir.path()).unwrap();
        assert!(rec.entries.is_empty());
    }

    #[test]
    fn a_snapshot_from_the_leader_replaces_the_whole_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Wal::open(dir.path()).unwrap();
        w.append(None, &[e(1, 1, "a"), e(1, 2, "b"), e(1, 3, "c")])
            .unwrap();
        let snap = Snapshot {
            index: 2,
            term: 1,
            data: vec![],
        };
        w.save_snapshot(&snap, false).unwrap();
        assert_eq!(w.last_index(), 2);
        w.append(None, &[e(2, 3, "C")]).unwrap();
        w.sync().unwrap();
        drop(w);
        let (_, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries, vec![e(2, 3, "C")]);
    }

    #[test]
    fn refuses_a_gap_and_skips_entries_covered_by_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Wal::open(dir.path()).unwrap();
        w.append(None, &[e(1, 1, "a"), e(1, 2, "b")]).unwrap();
        assert!(matches!(
            w.append(None, &[e(1, 4, "d")]),
            Err(WalError::Gap { got: 4, last: 2 })
        ));
        let snap = Snapshot {
            index: 2,
            term: 1,
            data: vec![],
        };
        w.save_snapshot(&snap, true).unwrap();
        w.append(None, &[e(1, 2, "b"), e(1, 3, "c")]).unwrap();
        w.sync().unwrap();
        drop(w);
        let (_, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries, vec![e(1, 3, "c")]);
    }

    #[test]
    fn refuses_a_damaged_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Wal::open(dir.path()).unwrap();
        w.save_snapshot(
            &Snapshot {
                index: 0,
                term: 0,
                data: b"abc".to_vec(),
            },
            true,
        )
        .unwrap();
        drop(w);
        let p = dir.path().join("snapshot.bin");
        let mut b = std::fs::read(&p).unwrap();
        let l = b.len() - 1;
        b[l] ^= 1;
        std::fs::write(&p, b).unwrap();
        let msg = Wal::open(dir.path()).err().unwrap().to_string();
        assert!(
            msg.contains("snapshot.bin") && msg.contains("checksum"),
            "{msg}"
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Appends of (first index relative to the last + 1, count, term), each synced alone so
        /// that every sync writes exactly one record.
        fn ops() -> impl Strategy<Value = Vec<(u64, usize, u64)>> {
            proptest::collection::vec((0u64..4, 1usize..5, 1u64..4), 1..12)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Any cut of the file (a crash mid-write) recovers exactly the log as of the last
            /// whole record before the cut, and is never refused.
            #[test]
            fn every_cut_recovers_the_last_whole_record(ops in ops(), cut_frac in 0.0f64..1.0) {
                let dir = tempfile::tempdir().unwrap();
                let (mut w, _) = Wal::open(dir.path()).unwrap();
                let mut model: Vec<Entry> = Vec::new();
                let mut states = vec![(0u64, Vec::new())];
                for (back, count, term) in ops {
                    let first = (model.len() as u64 + 1).saturating_sub(back).max(1);
                    let es: Vec<Entry> = (0..count as u64)
                        .map(|k| e(term, first + k, "v"))
                        .collect();
                    w.append(None, &es).unwrap();
                    w.sync().unwrap();
                    model.truncate((first - 1) as usize);
                    model.extend(es);
                    let len = std::fs::metadata(dir.path().join("wal.log")).unwrap().len();
                    states.push((len, model.clone()));
                }
                drop(w);
                let total = states.last().unwrap().0;
                let cut = (total as f64 * cut_frac) as u64;
                let f = OpenOptions::new().write(true).open(dir.path().join("wal.log")).unwrap();
                f.set_len(cut).unwrap();
                drop(f);
                let want = states.iter().rev().find(|(l, _)| *l <= cut).unwrap().1.clone();
                let (_, rec) = Wal::open(dir.path()).unwrap();
                prop_assert_eq!(rec.entries, want);
            }

            /// A flipped byte in any record but the last is refused, naming that record's offset.
            #[test]
            fn a_flipped_byte_before_the_last_record_is_refused(n in 2usize..6, pick in 0usize..100, at in 0usize..100) {
                let dir = tempfile::tempdir().unwrap();
                let (mut w, _) = Wal::open(dir.path()).unwrap();
                let mut bounds = vec![0u64];
                for i in 1..=n as u64 {
                    w.append(None, &[e(1, i, "payload")]).unwrap();
                    w.sync().unwrap();
                    bounds.push(std::fs::metadata(dir.path().join("wal.log")).unwrap().len());
                }
                drop(w);
                let r = pick % (n - 1); // not the last record
                let (lo, hi) = (bounds[r], bounds[r + 1]);
                let pos = lo + (at as u64 % (hi - lo)); // header (length field) or payload
                let p = dir.path().join("wal.log");
                let mut bytes = std::fs::read(&p).unwrap();
                bytes[pos as usize] ^= 0x5a;
                std::fs::write(&p, &bytes).unwrap();
                match Wal::open(dir.path()) {
                    Err(WalError::Corrupt { offset, .. }) => prop_assert_eq!(offset, lo),
                    other => prop_assert!(false, "not refused: {:?}", other.map(|(_, r)| r.entries.len())),
                }
            }
        }
    }
}
