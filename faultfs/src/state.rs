//! The pure model: an inode table with a volatile and a durable view of every file and
//! directory, and what a power loss keeps. No FUSE here: `fuse.rs` translates kernel requests
//! into these calls, so the model can be read (and is tested) on its own.
//!
//! Durable state lives in the backing directory:
//! - `objects/<ino>`: the durable bytes of regular file `<ino>` (its length is the durable size);
//! - `namespace.json`: the durable directory tree (every durably reachable inode, its durable
//!   mode/owner and, for a directory, its durable entries), rewritten (temp + rename) at every
//!   directory fsync.
//!
//! Volatile state (what the kernel and the processes above it see) is in memory only: per file a
//! volatile size, the prefix of the object that is still visible (`base_len`, lowered by
//! truncation), and the dirty extents written since the last fsync; per directory its volatile
//! entries. A power loss drops all of it and rebuilds the volatile view from the durable one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{Error, LossReport, TornWrite};

pub(crate) type Ino = u64;
pub(crate) const ROOT: Ino = 1;
/// An errno (positive), as FUSE replies carry it.
pub(crate) type Errno = i32;

const NAMESPACE: &str = "namespace.json";
const OBJECTS: &str = "objects";

#[derive(Debug)]
pub(crate) struct FileData {
    /// Volatile size (what `stat` shows).
    pub size: u64,
    /// Bytes `0..base_len` of the durable object are still part of the volatile content; beyond
    /// it (and outside dirty extents) the file reads as zeros. Lowered by truncation.
    base_len: u64,
    /// Unsynced writes: non-overlapping extents, keyed by offset.
    dirty: BTreeMap<u64, Vec<u8>>,
    /// The last unsynced write to this file: (sequence number, offset, length); a torn power
    /// loss keeps a prefix of the newest one among the files that survive.
    last_write: Option<(u64, u64, u64)>,
    /// Open handle on `objects/<ino>`, opened on first use.
    obj: Option<File>,
}

#[derive(Debug)]
pub(crate) struct DirData {
    /// Volatile entries.
    pub entries: BTreeMap<OsString, Ino>,
    /// Durable entries (what the last fsync of this directory recorded).
    durable: BTreeMap<OsString, Ino>,
    /// Volatile parent (for `..`).
    pub parent: Ino,
}

#[derive(Debug)]
pub(crate) enum Kind {
    File(FileData),
    Dir(DirData),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owner {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Volatile permission bits and owner.
    pub owner: Owner,
    /// Durable permission bits and owner: set at creation, then by an fsync of this inode.
    durable_owner: Owner,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    /// Open handles (files only); an unlinked file stays readable while open.
    open: u32,
    /// Volatile links (entries naming this inode).
    pub nlink: u32,
}

/// Serialized form of the durable tree (`namespace.json`).
#[derive(Serialize, Deserialize)]
struct DurableTree {
    next_ino: Ino,
    inodes: Vec<DurableInode>,
}

#[derive(Serialize, Deserialize)]
struct DurableInode {
    ino: Ino,
    dir: bool,
    owner: Owner,
    /// Directory entries (name → inode); empty for files.
    #[serde(default)]
    entries: BTreeMap<String, Ino>,
}

pub(crate) struct State {
    backing: PathBuf,
    pub nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    write_seq: u64,
    pub stats: crate::Stats,
    /// [`crate::Metadata::Journal`]: any fsync also makes every directory's entries durable.
    pub journal: bool,
    /// A directory changed since the last journal commit.
    ns_dirty: bool,
}

impl State {
    /// Opens (or initializes, when empty) a backing directory.
    pub fn open(backing: &Path) -> Result<State, Error> {
        let io = |what: &str, e: std::io::Error| Error::Backing {
            path: backing.join(what),
            source: e,
        };
        std::fs::create_dir_all(backing.join(OBJECTS)).map_err(|e| io(OBJECTS, e))?;
        let ns_path = backing.join(NAMESPACE);
        let now = SystemTime::now();
        let mut st = State {
            backing: backing.to_path_buf(),
            nodes: HashMap::new(),
            next_ino: ROOT + 1,
            write_seq: 0,
            stats: crate::Stats::default(),
            journal: false,
            ns_dirty: false,
        };
        let tree: Option<DurableTree> = match std::fs::read(&ns_path) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes).map_err(|e| Error::Namespace {
                    path: ns_path.clone(),
                    message: e.to_string(),
                })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let foreign = std::fs::read_dir(backing)
                    .map_err(|e| io("", e))?
                    .filter_map(|d| d.ok())
                    .any(|d| d.file_name() != OBJECTS);
                if foreign {
                    return Err(Error::Namespace {
                        path: ns_path,
                        message: "missing, and the backing directory holds other files: not a \
                                  faultfs backing directory (use an empty one)"
                            .into(),
                    });
                }
                None
            }
            Err(e) => return Err(io(NAMESPACE, e)),
        };
        let root_owner = Owner {
            mode: 0o755,
            uid: unsafe { libc::geteuid() },
            gid: unsafe { libc::getegid() },
        };
        match tree {
            None => {
                st.nodes.insert(ROOT, new_dir_node(ROOT, root_owner, now));
            }
            Some(tree) => {
                st.next_ino = tree.next_ino.max(ROOT + 1);
                for d in tree.inodes {
                    let node = if d.dir {
                        let entries: BTreeMap<OsString, Ino> = d
                            .entries
                            .into_iter()
                            .map(|(k, v)| (OsString::from(k), v))
                            .collect();
                        let mut n = new_dir_node(ROOT, d.owner, now);
                        if let Kind::Dir(dd) = &mut n.kind {
                            dd.durable = entries.clone();
                            dd.entries = entries;
                        }
                        n
                    } else {
                        let len = std::fs::metadata(st.object_path(d.ino))
                            .map(|m| m.len())
                            .unwrap_or(0);
                        let mut n = new_file_node(d.owner, now);
                        if let Kind::File(f) = &mut n.kind {
                            f.size = len;
                            f.base_len = len;
                        }
                        n
                    };
                    st.next_ino = st.next_ino.max(d.ino + 1);
                    st.nodes.insert(d.ino, node);
                }
                if !matches!(st.nodes.get(&ROOT).map(|n| &n.kind), Some(Kind::Dir(_))) {
                    return Err(Error::Namespace {
                        path: ns_path,
                        message: "no root directory (inode 1)".into(),
                    });
                }
                st.relink();
            }
        }
        st.collect_orphan_objects();
        Ok(st)
    }

    fn object_path(&self, ino: Ino) -> PathBuf {
        self.backing.join(OBJECTS).join(ino.to_string())
    }

    pub fn get(&self, ino: Ino) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn dir(&self, ino: Ino) -> Result<&DirData, Errno> {
        match &self.get(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut DirData, Errno> {
        match &mut self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut FileData, Errno> {
        match &mut self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?.kind {
            Kind::File(f) => Ok(f),
            Kind::Dir(_) => Err(libc::EISDIR),
        }
    }

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Ino, Errno> {
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or(libc::ENOENT)
    }

    /// Volatile entries of a directory, with `.` and `..` first.
    pub fn list(&self, ino: Ino) -> Result<Vec<(Ino, bool, OsString)>, Errno> {
        let d = self.dir(ino)?;
        let mut out = vec![(ino, true, ".".into()), (d.parent, true, "..".into())];
        for (name, &child) in &d.entries {
            let is_dir = matches!(self.nodes.get(&child).map(|n| &n.kind), Some(Kind::Dir(_)));
            out.push((child, is_dir, name.clone()));
        }
        Ok(out)
    }

    fn check_new_name(&self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        if name.to_str().is_none() {
            return Err(libc::EINVAL); // names are stored as UTF-8 in namespace.json
        }
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(libc::EEXIST);
        }
        Ok(())
    }

    /// Creates a regular file (volatile entry; durable once `parent` is fsynced).
    pub fn create(&mut self, parent: Ino, name: &OsStr, owner: Owner) -> Result<Ino, Errno> {
        self.check_new_name(parent, name)?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let mut node = new_file_node(owner, SystemTime::now());
        node.nlink = 1;
        self.nodes.insert(ino, node);
        self.dir_mut(parent)?.entries.insert(name.to_owned(), ino);
        self.touch_dir(parent);
        Ok(ino)
    }

    pub fn mkdir(&mut self, parent: Ino, name: &OsStr, owner: Owner) -> Result<Ino, Errno> {
        self.check_new_name(parent, name)?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let mut node = new_dir_node(parent, owner, SystemTime::now());
        node.nlink = 1;
        self.nodes.insert(ino, node);
        self.dir_mut(parent)?.entries.insert(name.to_owned(), ino);
        self.touch_dir(parent);
        Ok(ino)
    }

    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        if matches!(self.get(ino)?.kind, Kind::Dir(_)) {
            return Err(libc::EISDIR);
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.unlinked(ino);
        self.touch_dir(parent);
        Ok(())
    }

    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        if !self.dir(ino)?.entries.is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.unlinked(ino);
        self.touch_dir(parent);
        Ok(())
    }

    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        newparent: Ino,
        newname: &OsStr,
        noreplace: bool,
    ) -> Result<(), Errno> {
        let src = self.lookup(parent, name)?;
        if newname.to_str().is_none() {
            return Err(libc::EINVAL);
        }
        let src_is_dir = matches!(self.get(src)?.kind, Kind::Dir(_));
        let old = self.dir(newparent)?.entries.get(newname).copied();
        if let Some(dst) = old {
            if noreplace {
                return Err(libc::EEXIST);
            }
            if dst == src {
                return Ok(());
            }
            match (&self.get(dst)?.kind, src_is_dir) {
                (Kind::Dir(d), true) if !d.entries.is_empty() => return Err(libc::ENOTEMPTY),
                (Kind::Dir(_), false) => return Err(libc::EISDIR),
                (Kind::File(_), true) => return Err(libc::ENOTDIR),
                _ => {}
            }
        }
        if src_is_dir {
            // A directory cannot move below itself.
            let mut p = newparent;
            loop {
                if p == src {
                    return Err(libc::EINVAL);
                }
                if p == ROOT {
                    break;
                }
                p = self.dir(p)?.parent;
            }
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.dir_mut(newparent)?
            .entries
            .insert(newname.to_owned(), src);
        if src_is_dir {
            self.dir_mut(src)?.parent = newparent;
        }
        if let Some(dst) = old {
            self.unlinked(dst);
        }
        self.touch_dir(parent);
        self.touch_dir(newparent);
        Ok(())
    }

    fn touch_dir(&mut self, ino: Ino) {
        self.ns_dirty = true;
        if let Some(n) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
    }

    fn unlinked(&mut self, ino: Ino) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.nlink = n.nlink.saturating_sub(1);
            n.ctime = SystemTime::now();
        }
        self.maybe_free(&[ino]);
    }

    /// Frees inodes that nothing can reach any more: no volatile link, not open, not durably
    /// reachable from the root.
    fn maybe_free(&mut self, candidates: &[Ino]) {
        let unreferenced: Vec<Ino> = candidates
            .iter()
            .copied()
            .filter(|i| *i != ROOT)
            .filter(|i| {
                self.nodes
                    .get(i)
                    .is_some_and(|n| n.nlink == 0 && n.open == 0)
            })
            .collect();
        if unreferenced.is_empty() {
            return;
        }
        let durable = self.durably_reachable();
        for ino in unreferenced {
            if !durable.contains(&ino) {
                if let Some(Node {
                    kind: Kind::File(_),
                    ..
                }) = self.nodes.remove(&ino)
                {
                    let _ = std::fs::remove_file(self.object_path(ino));
                }
            }
        }
    }

    pub fn opened(&mut self, ino: Ino) -> Result<(), Errno> {
        let n = self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        n.open += 1;
        Ok(())
    }

    pub fn released(&mut self, ino: Ino) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.open = n.open.saturating_sub(1);
        }
        self.maybe_free(&[ino]);
    }

    fn obj(&mut self, ino: Ino) -> Result<&mut File, Errno> {
        let path = self.object_path(ino);
        let f = self.file_mut(ino)?;
        if f.obj.is_none() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
            f.obj = Some(file);
        }
        // The handle was just set if it was missing.
        Ok(f.obj.as_mut().expect("object handle"))
    }

    pub fn read(&mut self, ino: Ino, offset: u64, len: u32) -> Result<Vec<u8>, Errno> {
        let (size, base_len) = {
            let f = self.file_mut(ino)?;
            (f.size, f.base_len)
        };
        if offset >= size {
            return Ok(Vec::new());
        }
        let end = size.min(offset + len as u64);
        let mut buf = vec![0u8; (end - offset) as usize];
        if offset < base_len {
            let n = (base_len.min(end) - offset) as usize;
            let obj = self.obj(ino)?;
            let mut done = 0;
            while done < n {
                match obj.read_at(&mut buf[done..n], offset + done as u64) {
                    Ok(0) => break, // object shorter than expected: zeros
                    Ok(k) => done += k,
                    Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
                }
            }
        }
        let f = self.file_mut(ino)?;
        for (&s, data) in f.dirty.range(..end) {
            let e = s + data.len() as u64;
            if e <= offset {
                continue;
            }
            let from = s.max(offset);
            let to = e.min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&data[(from - s) as usize..(to - s) as usize]);
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.atime = SystemTime::now();
        }
        Ok(buf)
    }

    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<(), Errno> {
        self.write_seq += 1;
        self.stats.writes += 1;
        self.stats.bytes_written += data.len() as u64;
        let seq = self.write_seq;
        let f = self.file_mut(ino)?;
        insert_extent(&mut f.dirty, offset, data);
        let end = offset + data.len() as u64;
        f.size = f.size.max(end);
        f.last_write = Some((seq, offset, data.len() as u64));
        let n = self.nodes.get_mut(&ino).expect("file exists");
        let now = SystemTime::now();
        n.mtime = now;
        n.ctime = now;
        Ok(())
    }

    /// Sets the volatile size (truncate or extend with zeros).
    pub fn set_size(&mut self, ino: Ino, size: u64) -> Result<(), Errno> {
        let f = self.file_mut(ino)?;
        if size < f.size {
            // Drop or trim extents beyond the new end.
            let beyond: Vec<u64> = f.dirty.range(size..).map(|(&s, _)| s).collect();
            for s in beyond {
                f.dirty.remove(&s);
            }
            if let Some((&s, data)) = f.dirty.range_mut(..size).next_back() {
                let keep = (size - s) as usize;
                if data.len() > keep {
                    data.truncate(keep);
                }
            }
            f.base_len = f.base_len.min(size);
            if let Some((_, off, _)) = f.last_write {
                if off >= size {
                    f.last_write = None;
                }
            }
        }
        f.size = size;
        let n = self.nodes.get_mut(&ino).expect("file exists");
        let now = SystemTime::now();
        n.mtime = now;
        n.ctime = now;
        Ok(())
    }

    /// `fsync`/`fdatasync` of a file: its bytes, size, mode and owner become durable. Its name
    /// does not (that takes an fsync of the directory). For a directory, see [`Self::sync_dir`].
    pub fn sync_file(&mut self, ino: Ino) -> Result<(), Errno> {
        self.stats.file_syncs += 1;
        let (base_len, size, dirty) = {
            let f = self.file_mut(ino)?;
            (f.base_len, f.size, std::mem::take(&mut f.dirty))
        };
        let obj = self.obj(ino)?;
        let err = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
        let cur = obj.metadata().map_err(err)?.len();
        if base_len < cur {
            obj.set_len(base_len).map_err(err)?;
        }
        for (off, data) in &dirty {
            obj.write_all_at(data, *off).map_err(err)?;
        }
        obj.set_len(size).map_err(err)?;
        let n = self.nodes.get_mut(&ino).expect("file exists");
        n.durable_owner = n.owner;
        let f = self.file_mut(ino)?;
        f.base_len = size;
        f.last_write = None;
        if self.journal {
            self.commit_all_dirs()?;
        }
        Ok(())
    }

    /// Journal mode: every directory's volatile entries become durable at once (ext4's journal
    /// commit, which carries all metadata changes made before the fsync).
    fn commit_all_dirs(&mut self) -> Result<(), Errno> {
        if !self.ns_dirty {
            return Ok(());
        }
        let mut gone = Vec::new();
        for n in self.nodes.values_mut() {
            if let Kind::Dir(d) = &mut n.kind {
                let old = std::mem::replace(&mut d.durable, d.entries.clone());
                gone.extend(
                    old.into_values()
                        .filter(|i| !d.entries.values().any(|j| j == i)),
                );
                n.durable_owner = n.owner;
            }
        }
        self.persist_namespace()
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        self.ns_dirty = false;
        self.maybe_free(&gone);
        Ok(())
    }

    /// `fsync` of a directory: its entries (creates, renames, unlinks in it) and its own mode
    /// become durable; the durable tree is rewritten in the backing directory.
    pub fn sync_dir(&mut self, ino: Ino) -> Result<(), Errno> {
        self.stats.dir_syncs += 1;
        if self.journal {
            self.dir(ino)?;
            return self.commit_all_dirs();
        }
        let (old, new) = {
            let d = self.dir_mut(ino)?;
            let old = std::mem::replace(&mut d.durable, d.entries.clone());
            (old, d.entries.clone())
        };
        let n = self.nodes.get_mut(&ino).expect("dir exists");
        n.durable_owner = n.owner;
        self.persist_namespace()
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let gone: Vec<Ino> = old
            .values()
            .filter(|i| !new.values().any(|j| j == *i))
            .copied()
            .collect();
        self.maybe_free(&gone);
        Ok(())
    }

    /// Inodes reachable from the root through durable entries.
    fn durably_reachable(&self) -> HashSet<Ino> {
        let mut seen = HashSet::from([ROOT]);
        let mut stack = vec![ROOT];
        while let Some(i) = stack.pop() {
            if let Some(Node {
                kind: Kind::Dir(d), ..
            }) = self.nodes.get(&i)
            {
                for &c in d.durable.values() {
                    if self.nodes.contains_key(&c) && seen.insert(c) {
                        stack.push(c);
                    }
                }
            }
        }
        seen
    }

    fn persist_namespace(&self) -> std::io::Result<()> {
        let reach = self.durably_reachable();
        let mut inodes: Vec<DurableInode> = reach
            .iter()
            .filter_map(|&ino| {
                let n = self.nodes.get(&ino)?;
                let (dir, entries) = match &n.kind {
                    Kind::Dir(d) => (
                        true,
                        d.durable
                            .iter()
                            .filter(|(_, c)| reach.contains(c))
                            .map(|(k, &v)| (k.to_string_lossy().into_owned(), v))
                            .collect(),
                    ),
                    Kind::File(_) => (false, BTreeMap::new()),
                };
                Some(DurableInode {
                    ino,
                    dir,
                    owner: n.durable_owner,
                    entries,
                })
            })
            .collect();
        inodes.sort_by_key(|d| d.ino);
        let tree = DurableTree {
            next_ino: self.next_ino,
            inodes,
        };
        let tmp = self.backing.join("namespace.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(&tree).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, self.backing.join(NAMESPACE))
    }

    /// Deletes `objects/*` that no durable inode names (left by a power loss or a crash).
    fn collect_orphan_objects(&self) {
        let reach = self.durably_reachable();
        if let Ok(rd) = std::fs::read_dir(self.backing.join(OBJECTS)) {
            for e in rd.flatten() {
                let keep = e
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<Ino>().ok())
                    .is_some_and(|i| reach.contains(&i) && self.nodes.contains_key(&i));
                if !keep {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Recomputes volatile link counts and directory parents from the volatile entries.
    fn relink(&mut self) {
        let mut links: HashMap<Ino, u32> = HashMap::new();
        let mut parents: Vec<(Ino, Ino)> = Vec::new();
        for (&p, n) in &self.nodes {
            if let Kind::Dir(d) = &n.kind {
                for &c in d.entries.values() {
                    *links.entry(c).or_default() += 1;
                    parents.push((c, p));
                }
            }
        }
        for (&ino, n) in self.nodes.iter_mut() {
            n.nlink = links.get(&ino).copied().unwrap_or(0);
        }
        for (c, p) in parents {
            if let Some(Node {
                kind: Kind::Dir(d), ..
            }) = self.nodes.get_mut(&c)
            {
                d.parent = p;
            }
        }
    }

    /// Every volatile path → (inode, size; None for a directory).
    fn paths(&self, durable: bool) -> BTreeMap<String, (Ino, Option<u64>)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![(ROOT, String::new())];
        let mut seen = HashSet::from([ROOT]);
        while let Some((i, prefix)) = stack.pop() {
            let Some(Node {
                kind: Kind::Dir(d), ..
            }) = self.nodes.get(&i)
            else {
                continue;
            };
            let entries = if durable { &d.durable } else { &d.entries };
            for (name, &c) in entries {
                let Some(n) = self.nodes.get(&c) else {
                    continue;
                };
                let path = format!("{prefix}/{}", name.to_string_lossy());
                match &n.kind {
                    Kind::File(f) => {
                        out.insert(path, (c, Some(f.size)));
                    }
                    Kind::Dir(_) => {
                        out.insert(path.clone(), (c, None));
                        if seen.insert(c) {
                            stack.push((c, path));
                        }
                    }
                }
            }
        }
        out
    }

    /// Power loss: everything not durable is forgotten. With `tear`, the newest unsynced write
    /// to a file that survives keeps a random prefix (`0..len` bytes, drawn from `tear`), and
    /// when it starts past the file's durable end, the volatile bytes between that end and it
    /// are kept too (data=ordered: the size never covers data that was not written).
    pub fn power_loss(&mut self, tear: Option<u64>) -> LossReport {
        self.stats.power_losses += 1;
        let before = self.paths(false);
        let reach = self.durably_reachable();
        let mut report = LossReport::default();
        let mut torn_dirty = 0;
        let path_of: HashMap<Ino, String> =
            before.iter().map(|(p, (i, _))| (*i, p.clone())).collect();

        if let Some(seed) = tear {
            let newest = self
                .nodes
                .iter()
                .filter(|(i, _)| reach.contains(i))
                .filter_map(|(&i, n)| match &n.kind {
                    Kind::File(FileData {
                        last_write: Some(w),
                        ..
                    }) => Some((w.0, i, w.1, w.2)),
                    _ => None,
                })
                .max();
            if let Some((_, ino, off, len)) = newest {
                let kept = StdRng::seed_from_u64(seed).gen_range(0..len.max(1));
                // Under data=ordered the size only grows once the data before it is written:
                // a tear past the durable end keeps the file's volatile bytes from that end on.
                let durable_len = self.object_len(ino);
                let from = off.min(durable_len);
                let to = off + kept;
                let (ok, dirty_kept) = match self.tear_into_object(ino, from, to) {
                    Ok(d) => (true, d),
                    Err(_) => (false, 0),
                };
                torn_dirty = dirty_kept;
                report.torn = Some(TornWrite {
                    path: path_of
                        .get(&ino)
                        .cloned()
                        .unwrap_or_else(|| format!("#{ino}")),
                    offset: off,
                    len,
                    kept: if ok { kept } else { 0 },
                    kept_from: if ok { from } else { off },
                });
            }
        }

        for (ino, n) in &self.nodes {
            if let Kind::File(f) = &n.kind {
                let dirty: u64 = f.dirty.values().map(|d| d.len() as u64).sum();
                report.bytes_lost += dirty;
                if !reach.contains(ino) {
                    report.files_lost += 1;
                }
            }
        }
        report.bytes_lost = report.bytes_lost.saturating_sub(torn_dirty);

        // Drop what is not durably reachable, reset the rest to its durable state.
        let lost: Vec<Ino> = self
            .nodes
            .keys()
            .copied()
            .filter(|i| !reach.contains(i))
            .collect();
        for ino in lost {
            if let Some(Node {
                kind: Kind::File(_),
                ..
            }) = self.nodes.remove(&ino)
            {
                let _ = std::fs::remove_file(self.object_path(ino));
            }
        }
        let paths: Vec<(Ino, PathBuf)> = self
            .nodes
            .keys()
            .map(|&i| (i, self.object_path(i)))
            .collect();
        for (ino, obj_path) in paths {
            let n = self.nodes.get_mut(&ino).expect("listed");
            n.owner = n.durable_owner;
            n.open = 0;
            match &mut n.kind {
                Kind::File(f) => {
                    let len = match &f.obj {
                        Some(o) => o.metadata().map(|m| m.len()),
                        None => std::fs::metadata(&obj_path).map(|m| m.len()),
                    }
                    .unwrap_or(0);
                    f.size = len;
                    f.base_len = len;
                    f.dirty.clear();
                    f.last_write = None;
                }
                Kind::Dir(d) => {
                    d.entries = d.durable.clone();
                }
            }
        }
        // Entries may name inodes that were never durable: drop them.
        let alive: HashSet<Ino> = self.nodes.keys().copied().collect();
        for n in self.nodes.values_mut() {
            if let Kind::Dir(d) = &mut n.kind {
                d.entries.retain(|_, c| alive.contains(c));
                d.durable.retain(|_, c| alive.contains(c));
            }
        }
        self.relink();
        self.collect_orphan_objects();

        let after = self.paths(false);
        for (p, (ino, size)) in &before {
            match after.get(p) {
                None => report.paths_lost.push(p.clone()),
                Some((ino2, size2)) => {
                    if ino2 != ino {
                        report.paths_reverted.push(p.clone());
                    } else if let (Some(a), Some(b)) = (size, size2) {
                        if a != b {
                            report.sizes_changed.push((p.clone(), *a, *b));
                        }
                    }
                }
            }
        }
        for p in after.keys() {
            if !before.contains_key(p) {
                report.paths_reappeared.push(p.clone());
            }
        }
        report
    }

    /// Makes bytes `from..to` of the volatile content of `ino` durable (a torn write); returns
    /// how many of them were unsynced (dirty) bytes.
    fn tear_into_object(&mut self, ino: Ino, from: u64, to: u64) -> Result<u64, Errno> {
        if to <= from {
            return Ok(0);
        }
        let data = self.read(ino, from, (to - from) as u32)?;
        let dirty_kept = match &self.get(ino)?.kind {
            Kind::File(f) => f
                .dirty
                .range(..to)
                .map(|(&s, d)| (s.max(from), (s + d.len() as u64).min(to)))
                .filter(|(a, b)| b > a)
                .map(|(a, b)| b - a)
                .sum(),
            Kind::Dir(_) => 0,
        };
        let obj = self.obj(ino)?;
        obj.write_all_at(&data, from)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        Ok(dirty_kept)
    }

    /// Length of the durable object of `ino` (0 if it has none yet).
    fn object_len(&self, ino: Ino) -> u64 {
        match self.nodes.get(&ino).map(|n| &n.kind) {
            Some(Kind::File(FileData { obj: Some(o), .. })) => o.metadata().map(|m| m.len()),
            _ => std::fs::metadata(self.object_path(ino)).map(|m| m.len()),
        }
        .unwrap_or(0)
    }

    /// Every inode (for the kernel cache invalidation after a power loss).
    pub fn inodes(&self) -> Vec<Ino> {
        self.nodes.keys().copied().collect()
    }

    /// Durable paths (used by tests and reports): path → size (None for directories).
    pub fn durable_paths(&self) -> BTreeMap<String, Option<u64>> {
        self.paths(true)
            .into_iter()
            .map(|(p, (_, s))| (p, s))
            .collect()
    }

    pub fn backing(&self) -> &Path {
        &self.backing
    }
}

fn new_file_node(owner: Owner, now: SystemTime) -> Node {
    Node {
        kind: Kind::File(FileData {
            size: 0,
            base_len: 0,
            dirty: BTreeMap::new(),
            last_write: None,
            obj: None,
        }),
        owner,
        durable_owner: owner,
        atime: now,
        mtime: now,
        ctime: now,
        open: 0,
        nlink: 0,
    }
}

fn new_dir_node(parent: Ino, owner: Owner, now: SystemTime) -> Node {
    Node {
        kind: Kind::Dir(DirData {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
            parent,
        }),
        owner,
        durable_owner: owner,
        atime: now,
        mtime: now,
        ctime: now,
        open: 0,
        nlink: 0,
    }
}

/// Inserts `data` at `offset` into a set of non-overlapping extents, replacing what it covers.
/// An append right after an extent extends it in place (the write-ahead-log case).
fn insert_extent(dirty: &mut BTreeMap<u64, Vec<u8>>, offset: u64, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let end = offset + data.len() as u64;
    // Fast path: append to the extent that ends exactly at `offset`, nothing after it overlaps.
    if let Some((&s, prev)) = dirty.range_mut(..offset).next_back() {
        if s + prev.len() as u64 == offset && dirty.range(offset..end).next().is_none() {
            let prev = dirty.get_mut(&s).expect("just seen");
            prev.extend_from_slice(data);
            return;
        }
    }
    // General case: merge every overlapping extent into one.
    let mut start = offset;
    let mut stop = end;
    let overlapping: Vec<u64> = dirty
        .range(..end)
        .filter(|(&s, d)| s + d.len() as u64 > offset)
        .map(|(&s, _)| s)
        .collect();
    let mut parts = Vec::new();
    for s in overlapping {
        let d = dirty.remove(&s).expect("listed");
        start = start.min(s);
        stop = stop.max(s + d.len() as u64);
        parts.push((s, d));
    }
    let mut merged = vec![0u8; (stop - start) as usize];
    for (s, d) in parts {
        let at = (s - start) as usize;
        merged[at..at + d.len()].copy_from_slice(&d);
    }
    let at = (offset - start) as usize;
    merged[at..at + data.len()].copy_from_slice(data);
    dirty.insert(start, merged);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn overlapping_writes_read_back_as_the_last_one_wins() {
        let mut m = BTreeMap::new();
        insert_extent(&mut m, 10, b"aaaaa");
        insert_extent(&mut m, 15, b"bbb"); // append
        insert_extent(&mut m, 0, b"cc");
        insert_extent(&mut m, 12, b"XXXXXXXX"); // spans both
        assert_eq!(m.len(), 2);
        assert_eq!(m[&0], b"cc");
        assert_eq!(m[&10], b"aaXXXXXXXX");
    }

    #[test]
    fn a_truncate_then_extend_reads_zeros_not_old_durable_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = State::open(dir.path()).unwrap();
        let f = st.create(ROOT, OsStr::new("f"), owner()).unwrap();
        st.write(f, 0, b"hello world").unwrap();
        st.sync_file(f).unwrap();
        st.set_size(f, 2).unwrap();
        st.set_size(f, 8).unwrap();
        assert_eq!(st.read(f, 0, 100).unwrap(), b"he\0\0\0\0\0\0");
        st.sync_file(f).unwrap();
        assert_eq!(std::fs::read(st.object_path(f)).unwrap(), b"he\0\0\0\0\0\0");
    }

    #[test]
    fn a_durable_tree_is_reloaded_by_a_new_mount_and_unsynced_names_are_not() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut st = State::open(dir.path()).unwrap();
            let d = st.mkdir(ROOT, OsStr::new("d"), owner()).unwrap();
            let f = st.create(d, OsStr::new("f"), owner()).unwrap();
            st.write(f, 0, b"abc").unwrap();
            st.sync_file(f).unwrap();
            st.sync_dir(d).unwrap();
            st.sync_dir(ROOT).unwrap();
            st.create(ROOT, OsStr::new("volatile"), owner()).unwrap();
        }
        let st = State::open(dir.path()).unwrap();
        let paths = st.durable_paths();
        assert_eq!(paths.get("/d/f"), Some(&Some(3)), "{paths:?}");
        assert!(!paths.contains_key("/volatile"), "{paths:?}");
    }

    /// The extent bookkeeping checked against a dumb model (a volatile and a durable `Vec<u8>`)
    /// on random writes, truncates, syncs and power losses (seeded).
    #[test]
    fn random_file_operations_agree_with_a_byte_vector_model() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = State::open(dir.path()).unwrap();
        let f = st.create(ROOT, OsStr::new("f"), owner()).unwrap();
        st.sync_dir(ROOT).unwrap();
        let mut rng = StdRng::seed_from_u64(42);
        let (mut vol, mut dur): (Vec<u8>, Vec<u8>) = (Vec::new(), Vec::new());
        for step in 0..5000 {
            match rng.gen_range(0..100) {
                0..=59 => {
                    let off = rng.gen_range(0..3000u64);
                    let len = rng.gen_range(1..400usize);
                    let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                    st.write(f, off, &data).unwrap();
                    let end = off as usize + len;
                    if vol.len() < end {
                        vol.resize(end, 0);
                    }
                    vol[off as usize..end].copy_from_slice(&data);
                }
                60..=71 => {
                    let size = rng.gen_range(0..3500u64);
                    st.set_size(f, size).unwrap();
                    vol.resize(size as usize, 0);
                }
                72..=83 => {
                    st.sync_file(f).unwrap();
                    dur = vol.clone();
                }
                84..=89 => {
                    st.power_loss(None);
                    vol = dur.clone();
                }
                _ => {
                    let off = rng.gen_range(0..3600u64);
                    let len = rng.gen_range(0..800u32);
                    let got = st.read(f, off, len).unwrap();
                    let from = (off as usize).min(vol.len());
                    let to = (off as usize + len as usize).min(vol.len());
                    assert_eq!(got, &vol[from..to], "step {step}: read {off}+{len}");
                }
            }
        }
        st.sync_file(f).unwrap();
        assert_eq!(std::fs::read(st.object_path(f)).unwrap(), vol);
    }
}
