//! `splitbrain-faultfs`: a FUSE filesystem over a backing directory that forgets, on a simulated
//! power loss, everything that was written but not made durable — the fault `kill -9` cannot
//! give, because the kernel's page cache survives a killed process.
//!
//! # Layout
//! - `lib.rs` (this file): the public API — [`mount`], [`mount_with`] + [`Options`]
//!   ([`Metadata`]), [`FaultMount`] (`power_loss`, `stats`, `durable_paths`, `unmount`, unmount
//!   on drop), [`LossReport`] + [`TornWrite`], [`Stats`], [`cleanup_leftovers`], [`Error`].
//! - `state.rs`: the pure model (inode table with a volatile and a durable view, what fsync
//!   makes durable, what a power loss keeps). No FUSE.
//! - `fuse.rs`: the `fuser::Filesystem` that turns kernel requests into calls on the model.
//! - `mounts.rs`: `/proc/self/mountinfo` parsing and lazy unmounts (leftovers of a killed run).
//! - `bin/faultfs-mount.rs`: mounts one backing directory until killed or stdin closes;
//!   `power-loss [SEED]` and `stats` on stdin answer with JSON (tests, scripts, manual use).
//! - `examples/bench.rs`: 3 nodes on fault mounts vs plain directories, 16 clients, writes/s.
//!
//! # The durability model (what is implemented, exactly)
//! It is the POSIX minimum, close to ext4 `data=ordered` without its journal's side effects:
//! 1. `write` (at any offset, appends, `pwrite`), `truncate`/`ftruncate`, `fallocate` (mode 0)
//!    change the file in the filesystem's memory only; reads see them at once (like the page
//!    cache). `close` does **not** sync.
//! 2. `fsync` or `fdatasync` of a file makes its data, size, mode and owner durable (both calls
//!    do the same). Its *name* does not become durable with it.
//! 3. Metadata operations — create, mkdir, rename (also over an existing file), unlink, rmdir —
//!    change the volatile directory; `fsync` of the directory makes *that directory's* entries
//!    durable (all of them at once, as they are at the fsync). A rename between two directories
//!    needs both fsynced. A directory that is durably named but never fsynced itself is durable
//!    and empty.
//! 4. A file whose name became durable but whose data was never fsynced survives with its
//!    durable data (empty if it never had any). A file fsynced but never durably named is lost.
//! 5. [`FaultMount::power_loss`] discards every volatile change: file contents and sizes go back
//!    to what was last fsynced, directories to what was last fsynced, and inodes that are not
//!    reachable from the root through durable entries are deleted. With `tear: Some(seed)` the
//!    newest unsynced write to a file that survives is torn first: a prefix of `0..len` bytes
//!    (drawn from `StdRng::seed_from_u64(seed)`) becomes durable, the rest is lost. When that
//!    write starts past the file's durable end, the file's volatile bytes from the durable end
//!    up to the write are kept as well: as under data=ordered, a file never grows over bytes
//!    that were not written (no zero holes). So a tear of an append-only log keeps every
//!    unsynced append before the newest one; use `tear: None` to lose them all.
//!
//! With [`Options`] `{ metadata: Metadata::Journal }`, rule 3 is ext4's instead: *any* fsync
//! (of a file or a directory) makes every directory's entries durable, as ext4's journal commit
//! carries all metadata changes made before it. etcd 3.4 needs this mode: it never fsyncs the
//! directory in which it creates `member/` (see `tests/etcd.rs`).
//!
//! Deliberately not modelled: ext4's 5 s journal commit interval, `auto_da_alloc`, hard links, symlinks,
//! xattrs, `sync_file_range` (not a FUSE request; a process relying on it loses data, as it may
//! on a real power loss), `O_DIRECT`/`O_SYNC` (the kernel turns `O_SYNC` writes into write + fsync
//! requests). "Durable" means written to the backing directory; the backing directory itself is
//! not fsynced (the host does not lose power; that keeps fsync cheap). Known imprecision: a
//! directory renamed from one directory to another with only the destination fsynced is, after a
//! power loss, reachable from both (a real filesystem would show it in one of them). The root
//! directory (the mount point) always exists, so a data directory that *is* the mount point
//! never disappears; its entries do, unless it is fsynced.
//!
//! # Contract for the harness (power-loss nemesis)
//! 1. At start, call [`cleanup_leftovers`] on the directory that holds the mount points (a
//!    harness killed with SIGKILL cannot unmount; its mounts are dead, `ENOTCONN`).
//! 2. Per member: create an empty backing directory (outside the mount point) and [`mount`] it
//!    on the member's data directory; start the member with that data directory. The session
//!    runs on its own thread.
//! 3. Power loss: SIGKILL the member and wait for it to exit, call
//!    [`FaultMount::power_loss`]`(tear)`, record the [`LossReport`] (it is `Serialize`), restart
//!    the member on the same data directory. Calling `power_loss` while the member runs is
//!    allowed but is not a power loss of that member (its open files go on writing).
//! 4. At the end, stop the members, then [`FaultMount::unmount`] (or drop the handle). An
//!    unmount with files still open in the mount detaches and aborts it (`MNT_DETACH|MNT_FORCE`).
//! 5. Choices per target: `Splitbrain` nodes fsync their directory, so [`Metadata::Posix`] (the
//!    default) is fair to them; etcd 3.4 only keeps data with [`Metadata::Journal`] (under Posix
//!    it loses `member/`, a finding to report, not a harness bug). To catch a node that skips
//!    `fdatasync`, prefer `tear: None` or alternate: a tear keeps the unsynced appends before
//!    the torn one (rule 5), which hides most of what such a node loses.
//!
//! The filesystem needs `/dev/fuse`; as root it mounts with `mount(2)` directly, otherwise
//! through `fusermount3` (Debian package `fuse3`).

mod fuse;
mod mounts;
mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use mounts::cleanup_leftovers;

/// The name in the `source` and `fstype` (`fuse.splitbrain-faultfs`) columns of mountinfo, by
/// which [`cleanup_leftovers`] recognizes mounts of this crate.
pub const FS_NAME: &str = "splitbrain-faultfs";

/// When metadata operations (create, mkdir, rename, unlink, rmdir) become durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum Metadata {
    /// The POSIX minimum: with an fsync of the directory they are in, only.
    #[default]
    Posix,
    /// ext4's journal: with any fsync (of a file or a directory), all of them at once, in
    /// every directory (a journal commit carries every metadata change made before it).
    Journal,
}

/// Mount options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub metadata: Metadata,
}

/// Errors of this crate (misuse or I/O on the backing directory); a power loss is not an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("backing directory {path}: {source}")]
    Backing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Namespace { path: PathBuf, message: String },
    #[error("mount point {path}: {message}")]
    MountPoint { path: PathBuf, message: String },
    #[error("mounting {path}: {source} (needs /dev/fuse, and root or fusermount3)")]
    Mount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unmounting {path}: {message}")]
    Unmount { path: PathBuf, message: String },
    #[error("reading {path}: {source}")]
    MountInfo {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a power loss destroyed. Paths are relative to the mount point, starting with `/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LossReport {
    /// Unsynced bytes written that were discarded (the bytes of every unsynced write, minus the
    /// torn prefix that was kept).
    pub bytes_lost: u64,
    /// Files (inodes) that did not survive: never durably named, or only durably unnamed.
    pub files_lost: u64,
    /// Paths that existed before and do not exist after (creates and renames not fsynced).
    pub paths_lost: Vec<String>,
    /// Paths that did not exist before and are back (unlinks and renames not fsynced).
    pub paths_reappeared: Vec<String>,
    /// Paths that exist before and after but name a different file (a rename over it undone).
    pub paths_reverted: Vec<String>,
    /// Files whose size changed: (path, size before, size after).
    pub sizes_changed: Vec<(String, u64, u64)>,
    /// The torn write, when a tear was asked for and there was an unsynced write to a file that
    /// survives.
    pub torn: Option<TornWrite>,
}

/// Counters since the mount (for reports and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// `write` requests and their bytes.
    pub writes: u64,
    pub bytes_written: u64,
    /// `fsync`/`fdatasync` of files, `fsync` of directories.
    pub file_syncs: u64,
    pub dir_syncs: u64,
    pub power_losses: u64,
}

/// A write that was half made durable by a torn power loss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornWrite {
    pub path: String,
    pub offset: u64,
    pub len: u64,
    /// Bytes `offset..offset+kept` of the write were kept (`kept < len`).
    pub kept: u64,
    /// Everything from here to `offset + kept` became durable: `offset`, or the file's durable
    /// end when the write started past it (the unsynced bytes before it are kept too).
    pub kept_from: u64,
}

/// A mounted fault filesystem. Unmounts on drop.
pub struct FaultMount {
    state: Arc<Mutex<state::State>>,
    mount_point: PathBuf,
    backing: PathBuf,
    /// The FUSE session thread; `None` once unmounted.
    session: Option<fuser::BackgroundSession>,
    notifier: fuser::Notifier,
}

/// Mounts a fault filesystem over `backing` (created if missing; empty, or one this crate used
/// before) at `mount_point` (created if missing; must not be inside `backing`), with the
/// default [`Options`] ([`Metadata::Posix`]).
pub fn mount(
    backing: impl AsRef<Path>,
    mount_point: impl AsRef<Path>,
) -> Result<FaultMount, Error> {
    mount_with(backing, mount_point, Options::default())
}

/// [`mount`] with options.
pub fn mount_with(
    backing: impl AsRef<Path>,
    mount_point: impl AsRef<Path>,
    options: Options,
) -> Result<FaultMount, Error> {
    let backing = backing.as_ref();
    let mp = mount_point.as_ref();
    std::fs::create_dir_all(backing).map_err(|e| Error::Backing {
        path: backing.to_path_buf(),
        source: e,
    })?;
    std::fs::create_dir_all(mp).map_err(|e| Error::MountPoint {
        path: mp.to_path_buf(),
        message: e.to_string(),
    })?;
    let backing = backing.canonicalize().map_err(|e| Error::Backing {
        path: backing.to_path_buf(),
        source: e,
    })?;
    let mp = mp.canonicalize().map_err(|e| Error::MountPoint {
        path: mp.to_path_buf(),
        message: e.to_string(),
    })?;
    if mp.starts_with(&backing) || backing.starts_with(&mp) {
        return Err(Error::MountPoint {
            path: mp,
            message: format!(
                "must not contain or be inside the backing directory {}",
                backing.display()
            ),
        });
    }
    let mut st = state::State::open(&backing)?;
    st.journal = options.metadata == Metadata::Journal;
    let state = Arc::new(Mutex::new(st));
    let fs = fuse::FaultFs {
        state: state.clone(),
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(FS_NAME.into()),
        fuser::MountOption::Subtype(FS_NAME.into()),
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    let session = fuser::spawn_mount(fs, &mp, &config).map_err(|e| Error::Mount {
        path: mp.clone(),
        source: e,
    })?;
    mounts::register(&mp);
    let notifier = session.notifier();
    Ok(FaultMount {
        state,
        mount_point: mp,
        backing,
        session: Some(session),
        notifier,
    })
}

impl FaultMount {
    /// The (canonical) mount point.
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The (canonical) backing directory.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Simulates a power loss: forgets everything not durable (see the crate docs for the
    /// model). `tear: Some(seed)` first keeps a random prefix of the newest unsynced write.
    /// Kill the processes using the mount first.
    pub fn power_loss(&self, tear: Option<u64>) -> LossReport {
        let (report, inodes) = {
            let mut st = fuse::lock(&self.state);
            let r = st.power_loss(tear);
            (r, st.inodes())
        };
        // Best effort: drop cached pages of surviving files (opens without KEEP_CACHE do too).
        for ino in inodes {
            let _ = self.notifier.inval_inode(fuser::INodeNo(ino), 0, 0);
        }
        report
    }

    /// The durable tree as a new mount (or a power loss) would see it: path → size (`None` for
    /// a directory).
    pub fn durable_paths(&self) -> std::collections::BTreeMap<String, Option<u64>> {
        fuse::lock(&self.state).durable_paths()
    }

    /// Counters since the mount.
    pub fn stats(&self) -> Stats {
        fuse::lock(&self.state).stats
    }

    /// Unmounts and waits (≤ 5 s) for the session thread to end. Volatile data is discarded
    /// (the backing directory holds exactly what was durable).
    pub fn unmount(mut self) -> Result<(), Error> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), Error> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let r = mounts::unmount(&self.mount_point);
        mounts::unregister(&self.mount_point);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !session.guard.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let finished = session.guard.is_finished();
        if finished {
            let _ = session.join();
        } // else: dropping the handle detaches the thread; the connection was aborted.
        r?;
        if !finished {
            return Err(Error::Unmount {
                path: self.mount_point.clone(),
                message: "the FUSE session thread did not end within 5 s".into(),
            });
        }
        Ok(())
    }
}

impl Drop for FaultMount {
    fn drop(&mut self) {
        let _ = self.unmount_inner();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_mount_handle_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<super::FaultMount>();
        send_sync::<super::LossReport>();
    }
}
