//! The FUSE side: kernel requests → calls on the model in `state.rs`, one lock per request.
//!
//! Entries and attributes are given with a zero TTL and files are opened without
//! `FOPEN_KEEP_CACHE`, so that after a power loss the kernel asks again instead of serving names,
//! sizes or pages that were forgotten.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::state::{Ino, Kind, Node, Owner, State};

const TTL: Duration = Duration::ZERO;

pub(crate) struct FaultFs {
    pub state: Arc<Mutex<State>>,
}

pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves the model as it was at the panic; keep serving.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

fn attr(ino: Ino, n: &Node) -> FileAttr {
    let (kind, size, nlink) = match &n.kind {
        Kind::File(f) => (FileType::RegularFile, f.size, n.nlink),
        // 1: "not counted" (as btrfs does), so tools do not infer a number of subdirectories.
        Kind::Dir(_) => (FileType::Directory, 4096, 1),
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: n.atime,
        mtime: n.mtime,
        ctime: n.ctime,
        crtime: n.ctime,
        kind,
        perm: (n.owner.mode & 0o7777) as u16,
        nlink,
        uid: n.owner.uid,
        gid: n.owner.gid,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

fn owner(req: &Request, mode: u32, umask: u32) -> Owner {
    Owner {
        mode: mode & !umask & 0o7777,
        uid: req.uid(),
        gid: req.gid(),
    }
}

impl FaultFs {
    fn entry(&self, st: &State, ino: Ino, reply: ReplyEntry) {
        match st.get(ino) {
            Ok(n) => reply.entry(&TTL, &attr(ino, n), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl Filesystem for FaultFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let st = lock(&self.state);
        match st.lookup(parent.0, name) {
            Ok(ino) => self.entry(&st, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = lock(&self.state);
        match st.get(ino.0) {
            Ok(n) => reply.attr(&TTL, &attr(ino.0, n)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = lock(&self.state);
        let ino = ino.0;
        if let Some(size) = size {
            if let Err(e) = st.set_size(ino, size) {
                return reply.error(errno(e));
            }
        }
        let Some(n) = st.nodes.get_mut(&ino) else {
            return reply.error(errno(libc::ENOENT));
        };
        let now = SystemTime::now();
        if let Some(m) = mode {
            n.owner.mode = m & 0o7777;
            n.ctime = now;
        }
        if let Some(u) = uid {
            n.owner.uid = u;
            n.ctime = now;
        }
        if let Some(g) = gid {
            n.owner.gid = g;
            n.ctime = now;
        }
        let t = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => now,
        };
        if let Some(a) = atime {
            n.atime = t(a);
        }
        if let Some(m) = mtime {
            n.mtime = t(m);
        }
        reply.attr(&TTL, &attr(ino, n));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = lock(&self.state);
        match st.mkdir(parent.0, name, owner(req, mode, umask)) {
            Ok(ino) => self.entry(&st, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match lock(&self.state).unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match lock(&self.state).rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return reply.error(errno(libc::EINVAL));
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        match lock(&self.state).rename(parent.0, name, newparent.0, newname, noreplace) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut st = lock(&self.state);
        if let Err(e) = st.get(ino.0).map(|_| ()).and_then(|_| st.opened(ino.0)) {
            return reply.error(errno(e));
        }
        reply.opened(FileHandle(ino.0), FopenFlags::empty());
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = lock(&self.state);
        let ino = match st.lookup(parent.0, name) {
            Ok(_) if flags & libc::O_EXCL != 0 => return reply.error(errno(libc::EEXIST)),
            Ok(ino) => {
                if flags & libc::O_TRUNC != 0 {
                    if let Err(e) = st.set_size(ino, 0) {
                        return reply.error(errno(e));
                    }
                }
                ino
            }
            Err(_) => match st.create(parent.0, name, owner(req, mode, umask)) {
                Ok(ino) => ino,
                Err(e) => return reply.error(errno(e)),
            },
        };
        if let Err(e) = st.opened(ino) {
            return reply.error(errno(e));
        }
        match st.get(ino) {
            Ok(n) => reply.created(
                &TTL,
                &attr(ino, n),
                Generation(0),
                FileHandle(ino),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match lock(&self.state).read(ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match lock(&self.state).write(ino.0, offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// `close` (flush) does not sync: data stays volatile until fsync.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.state).released(ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = lock(&self.state);
        let r = match st.get(ino.0).map(|n| matches!(n.kind, Kind::Dir(_))) {
            Ok(true) => st.sync_dir(ino.0),
            Ok(false) => st.sync_file(ino.0),
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match lock(&self.state).get(ino.0).map(|n| &n.kind) {
            Ok(Kind::Dir(_)) => reply.opened(FileHandle(ino.0), FopenFlags::empty()),
            Ok(Kind::File(_)) => reply.error(errno(libc::ENOTDIR)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let list = match lock(&self.state).list(ino.0) {
            Ok(l) => l,
            Err(e) => return reply.error(errno(e)),
        };
        for (i, (child, is_dir, name)) in list.into_iter().enumerate().skip(offset as usize) {
            let kind = if is_dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match lock(&self.state).sync_dir(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let backing = lock(&self.state).backing().to_path_buf();
        match statvfs(&backing) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                255,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// Mode 0 extends the volatile size (zeros, durable with the next fsync);
    /// `FALLOC_FL_KEEP_SIZE` is accepted and does nothing (space is not reserved); other modes
    /// (punch hole, collapse, zero range) are refused with `EOPNOTSUPP`.
    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut st = lock(&self.state);
        let r = if mode == libc::FALLOC_FL_KEEP_SIZE {
            st.get(ino.0).map(|_| ())
        } else if mode == 0 {
            let size = match st.get(ino.0).map(|n| &n.kind) {
                Ok(Kind::File(f)) => f.size,
                Ok(Kind::Dir(_)) => return reply.error(errno(libc::EISDIR)),
                Err(e) => return reply.error(errno(e)),
            };
            if offset + length > size {
                st.set_size(ino.0, offset + length)
            } else {
                Ok(())
            }
        } else {
            Err(libc::EOPNOTSUPP)
        };
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

fn statvfs(path: &std::path::Path) -> Result<libc::statvfs, i32> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)?;
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) == 0 {
            Ok(s)
        } else {
            Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO))
        }
    }
}
