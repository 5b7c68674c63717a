//! The node's durable storage: a write-ahead log of Raft hard state and entries, and one
//! snapshot file.
//!
//! # Layout of a data directory
//! - `wal.log`: a sequence of records, each framed as `len: u32 LE | crc32: u32 LE | payload`
//!   (`crc32` of the payload, `crc32fast`). A payload is a tag byte and its body:
//!   - `1` hard state: `term u64 | commit u64 | vote_len u16 | vote bytes` (`vote_len` =
//!     `u16::MAX` for no vote);
//!   - `2` entries: `count u32`, then per entry `term u64 | index u64 | len u32 | data`.
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
//! - Recovery drops a torn tail: a last record that is incomplete, fails its checksum and ends
//!   at the end of the file, or trailing zero bytes. The file is truncated to the last good
//!   record so that new records follow valid data.
//! - Damage before the tail (a bad record followed by more data) is refused with
//!   [`WalError::Corrupt`], naming the file and the byte offset: serving from a log with a hole
//!   would be wrong.
//! - After a snapshot at index `i` the log is rotated: a new `wal.log.tmp` holding the current
//!   hard state and the entries after `i` is synced and renamed over `wal.log` (directory
//!   fsynced). A crash at any point leaves either the old or the new log, both valid with the
//!   snapshot (entries at or below the snapshot index are ignored on recovery).
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
    #[error("{}: damaged record at byte offset {offset}: {reason} (refusing to start; the log before the tail is corrupt)", path.display())]
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
        io(dir, std::fs::create_dir_all(dir))?;
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
        let mut entries: Vec<Entry> = Vec::new();
        let good = replay(&path, &bytes, |rec| {
            match rec {
                Record::HardState(hs) => hard_state = hs,
                Record::Entries(es) => {
                    for e in es {
                        if e.index <= snap_index {
                            continue;
                        }
                        let first = entries.first().map_or(snap_index + 1, |f| f.index);
                        if e.index < first {
                            continue;
                        }
                        let pos = (e.index - first) as usize;
                        if pos > entries.len() {
                            // A hole can only follow from a snapshot installed without a
                            // rotation; entries beyond a gap are unusable.
                            entries.clear();
                            if e.index != snap_index + 1 {
                                continue;
                            }
                        }
                        entries.truncate(pos);
                        entries.push(e);
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
        // Entries must continue the snapshot; if they do not (a log older than the snapshot),
        // only the snapshot counts.
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
}

fn encode_record(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    body(out);
    let payload = &out[start + 8..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
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

/// Replays records; returns the offset just after the last good record. A bad record that
/// reaches the end of the file (or is followed only by zeros) is a torn tail; any other bad
/// record is [`WalError::Corrupt`].
fn replay(path: &Path, bytes: &[u8], mut f: impl FnMut(Record) -> Result<()>) -> Result<u64> {
    let mut off = 0usize;
    let n = bytes.len();
    let torn = |from: usize| bytes[from..].iter().all(|&b| b == 0);
    while off < n {
        if n - off < 8 {
            return Ok(off as u64); // torn header
        }
        // 4-byte slices of an 8-byte-checked window.
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
        let end = off + 8 + len as usize;
        if end > n {
            return Ok(off as u64); // torn: the record runs past the end of the file
        }
        let payload = &bytes[off + 8..end];
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

fn read_snapshot(path: &Path) -> Result<Snapshot> {
    let bytes = io(path, std::fs::read(path))?;
    let corrupt = |reason: &str| WalError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.to_string(),
    };
    if bytes.len() < 8 + 16 {
        return Err(corrupt("snapshot file too short"));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    if 8 + len != bytes.len() || len < 16 {
        return Err(corrupt("snapshot length does not match the file"));
    }
    let payload = &bytes[8..];
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
        let opts = WalOptions { no_fsync: true };
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
        // The third record (38 bytes) and the zeros are dropped.
        assert_eq!(rec.torn_bytes, 38 + 100);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len - 38);
    }

    #[test]
    fn refuses_damage_before_the_tail_naming_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        wal_with_three_records(dir.path());
        let path = dir.path().join("wal.log");
        let mut bytes = std::fs::read(&path).unwrap();
        // Damage the second record's payload (first record: 8 + 1 + 4 + 20 + 5 = 38 bytes).
        bytes[38 + 8 + 3] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let err = Wal::open(dir.path()).err().expect("must refuse");
        let msg = err.to_string();
        assert!(matches!(err, WalError::Corrupt { offset: 38, .. }), "{msg}");
        assert!(
            msg.contains("wal.log") && msg.contains("offset 38"),
            "{msg}"
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
                let pos = lo + 8 + (at as u64 % (hi - lo - 8)); // inside the payload
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
