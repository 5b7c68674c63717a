//! Member storage: each member's data dir as a fault-filesystem mount (`splitbrain-faultfs`),
//! for the storage faults (`power-loss`, `torn-power-loss`).
//!
//! # Contract
//! - A run mounts a fault filesystem on every member's data dir (`data/<id>`) when its plan asks
//!   for it ([`crate::plan::TestPlan::fault_fs`]: a fault kind that [`FaultKind::needs_fault_fs`], or
//!   `--fault-fs`). What is durable lives in `disks/<id>` of the run directory (the faultfs
//!   backing store: `namespace.json` and `objects/`); after the run it holds what survived.
//! - The metadata model follows the target ([`crate::sut::TargetKind::fault_fs_metadata`]):
//!   POSIX (a create/rename is durable only with an fsync of its directory) for our node, ext4's
//!   journal for etcd 3.4 (which never fsyncs the directory that holds `member/`).
//! - Nothing stays mounted: [`Disks`] unmounts on drop (after the cluster has killed its
//!   members); the second Ctrl-C detaches every live mount ([`detach_all`]) before exiting; a
//!   harness killed with SIGKILL leaves dead mounts, which the next run removes at its start
//!   ([`cleanup_leftovers`], on the whole results directory).
//!
//! [`FaultKind::needs_fault_fs`]: crate::nemesis::FaultKind::needs_fault_fs

use anyhow::Context;
use splitbrain_faultfs::{FaultMount, LossReport, Metadata, Options};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The fault-filesystem mounts of one cluster, by member id.
pub struct Disks {
    mounts: Mutex<BTreeMap<String, FaultMount>>,
}

/// Mount points of this process's live mounts (for [`detach_all`]).
fn live() -> &'static Mutex<Vec<PathBuf>> {
    static LIVE: OnceLock<Mutex<Vec<PathBuf>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

impl Disks {
    /// Mounts a fault filesystem on `data_dir` of every `(id, data_dir)`, backed by
    /// `run_dir/disks/<id>`. On an error the mounts made so far are unmounted.
    pub fn mount(
        run_dir: &Path,
        members: &[(String, PathBuf)],
        metadata: Metadata,
    ) -> anyhow::Result<Disks> {
        let disks = Disks {
            mounts: Mutex::new(BTreeMap::new()),
        };
        let owner = run_dir.join(OWNER_FILE);
        if let Some(parent) = owner.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&owner, std::process::id().to_string())
            .with_context(|| format!("writing {}", owner.display()))?;
        for (id, data_dir) in members {
            let backing = run_dir.join("disks").join(id);
            let m = splitbrain_faultfs::mount_with(&backing, data_dir, Options { metadata })
                .with_context(|| format!("mounting the fault filesystem of member {id}"))?;
            live()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(m.mount_point().to_path_buf());
            disks.lock().insert(id.clone(), m);
        }
        Ok(disks)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, FaultMount>> {
        self.mounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets everything member `id` wrote and did not make durable (kill it first).
    pub fn power_loss(&self, id: &str, tear: Option<u64>) -> anyhow::Result<LossReport> {
        let m = self.lock();
        let m = m
            .get(id)
            .with_context(|| format!("member {id} has no fault filesystem"))?;
        Ok(m.power_loss(tear))
    }

    /// Unmounts every member's filesystem; the first error, after trying all.
    pub fn unmount_all(&self) -> anyhow::Result<()> {
        let mounts = std::mem::take(&mut *self.lock());
        let mut first = None;
        for (id, m) in mounts {
            let mp = m.mount_point().to_path_buf();
            if let Err(e) = m.unmount() {
                first.get_or_insert(anyhow::anyhow!("unmounting member {id}'s data dir: {e}"));
            }
            live()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|p| p != &mp);
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        let _ = self.unmount_all();
    }
}

/// Lazily detaches every fault mount this process still has (for an exit that skips drops:
/// the second Ctrl-C). Best effort.
pub fn detach_all() {
    let live = live().lock().unwrap_or_else(|p| p.into_inner());
    for mp in live.iter() {
        if let Ok(c) = std::ffi::CString::new(mp.as_os_str().as_encoded_bytes()) {
            // SAFETY: `c` is a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::MNT_FORCE) };
        }
    }
}

/// The file in a run directory naming the pid of the harness that mounted its disks.
pub const OWNER_FILE: &str = "disks/harness.pid";

/// True if the run directory's owner (its [`OWNER_FILE`]) is a live process other than a
/// reused pid of something else: a harness running in parallel on the same results directory.
fn owner_alive(run_dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(run_dir.join(OWNER_FILE)) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return false;
    };
    // SAFETY: getpid has no preconditions.
    if pid == unsafe { libc::getpid() } as u32 {
        return true;
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
    let me = std::env::current_exe();
    matches!((exe, me), (Ok(a), Ok(b)) if a == b)
}

/// Removes the dead mounts a SIGKILLed harness left under `results` (warns, never fails).
/// Mounts of runs whose harness still runs (another test on the same results directory) are
/// left alone.
pub fn cleanup_leftovers(results: &Path) {
    let Ok(dir) = results.canonicalize() else {
        return;
    };
    let info = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(i) => i,
        Err(e) => {
            eprintln!("warning: reading /proc/self/mountinfo: {e}");
            return;
        }
    };
    let mut run_dirs: Vec<PathBuf> = info
        .lines()
        .filter(|l| l.contains(splitbrain_faultfs::FS_NAME))
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|mp| mp.starts_with(&dir))
        // <run dir>/data/<id>
        .filter_map(|mp| mp.parent().and_then(Path::parent).map(Path::to_path_buf))
        .collect();
    run_dirs.sort();
    run_dirs.dedup();
    for run in run_dirs {
        if owner_alive(&run) {
            continue;
        }
        match splitbrain_faultfs::cleanup_leftovers(run.join("data")) {
            Ok(gone) => {
                for mp in gone {
                    eprintln!(
                        "unmounted a leftover fault filesystem at {} (its run was killed)",
                        mp.display()
                    );
                }
            }
            Err(e) => eprintln!("warning: removing leftover fault filesystems: {e}"),
        }
    }
}

/// Why this machine cannot mount a fault filesystem, if it cannot (checked before a run).
pub fn unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing (FUSE is not available here)".into());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root
        && !std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("fusermount3").exists()))
    {
        return Some("not root and fusermount3 is not installed (Debian package fuse3)".into());
    }
    None
}

/// A one-line summary of a loss, for the summary's fault lines.
pub fn describe_loss(r: &LossReport) -> String {
    let mut s = format!("lost {} bytes", r.bytes_lost);
    if r.files_lost > 0 {
        s.push_str(&format!(", {} files", r.files_lost));
    }
    if let Some(t) = &r.torn {
        s.push_str(&format!(
            ", tore {}@{} (kept {} of {})",
            t.path, t.offset, t.kept, t.len
        ));
    }
    s
}
