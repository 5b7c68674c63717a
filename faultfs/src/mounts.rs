//! Mount bookkeeping: this process's live mounts, unmounting, and the leftovers of a process
//! that died without unmounting (found in `/proc/self/mountinfo`).

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::{Error, FS_NAME};

/// Mount points mounted by this process and not yet unmounted: [`cleanup_leftovers`] skips them.
static LIVE: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

pub(crate) fn register(mp: &Path) {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.get_or_insert_with(HashSet::new)
        .insert(mp.to_path_buf());
}

pub(crate) fn unregister(mp: &Path) {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = live.as_mut() {
        s.remove(mp);
    }
}

fn is_live(mp: &Path) -> bool {
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.as_ref().is_some_and(|s| s.contains(mp))
}

fn umount2(mp: &Path, flags: i32) -> std::io::Result<()> {
    let c = CString::new(mp.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn fusermount_lazy(mp: &Path) -> Result<(), Error> {
    let out = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(mp)
        .output()
        .map_err(|e| Error::Unmount {
            path: mp.to_path_buf(),
            message: format!("not root and fusermount3 cannot run: {e}"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Unmount {
            path: mp.to_path_buf(),
            message: format!(
                "fusermount3 -u -z: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// Unmounts `mp`: a plain unmount; if busy, detached and with the FUSE connection aborted
/// (`MNT_DETACH | MNT_FORCE`); without root, `fusermount3 -u -z`. Not mounted: Ok.
pub(crate) fn unmount(mp: &Path) -> Result<(), Error> {
    match umount2(mp, 0) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()), // not a mount point
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            umount2(mp, libc::MNT_DETACH | libc::MNT_FORCE).map_err(|e| Error::Unmount {
                path: mp.to_path_buf(),
                message: format!("busy, and a forced lazy unmount failed: {e}"),
            })
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => fusermount_lazy(mp),
        Err(e) => Err(Error::Unmount {
            path: mp.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

/// One line of mountinfo, the fields this crate needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MountLine {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
}

/// Decodes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&out),
    ))
}

/// Parses `/proc/self/mountinfo` text (see proc(5)); malformed lines are an error naming the
/// line number.
pub(crate) fn parse_mountinfo(text: &str, file: &Path) -> Result<Vec<MountLine>, Error> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-");
        let (Some(sep), Some(mp)) = (sep, fields.get(4)) else {
            return Err(Error::MountInfo {
                path: file.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("line {}: no mount point or no ' - ' separator", n + 1),
                ),
            });
        };
        out.push(MountLine {
            mount_point: unescape(mp),
            fstype: fields.get(sep + 1).unwrap_or(&"").to_string(),
            source: fields.get(sep + 2).unwrap_or(&"").to_string(),
        });
    }
    Ok(out)
}

/// Unmounts (lazily) every fault-filesystem mount at or below `dir` that this process did not
/// mount — the leftovers of a harness that was SIGKILLed. Returns the mount points it removed,
/// deepest first. Call it before mounting; a missing `dir` has no leftovers.
pub fn cleanup_leftovers(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, Error> {
    let dir = dir.as_ref();
    let dir = match dir.canonicalize() {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        // A dead FUSE mount cannot be resolved (ENOTCONN); compare the path as given.
        Err(_) => std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
    };
    let file = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(file).map_err(|e| Error::MountInfo {
        path: file.to_path_buf(),
        source: e,
    })?;
    let mut stale: Vec<PathBuf> = parse_mountinfo(&text, file)?
        .into_iter()
        .filter(|m| m.fstype == format!("fuse.{FS_NAME}") || m.source == FS_NAME)
        .map(|m| m.mount_point)
        .filter(|mp| mp.starts_with(&dir) && !is_live(mp))
        .collect();
    stale.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    stale.dedup();
    for mp in &stale {
        match umount2(mp, libc::MNT_DETACH | libc::MNT_FORCE) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {} // already gone
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => fusermount_lazy(mp)?,
            Err(e) => {
                return Err(Error::Unmount {
                    path: mp.clone(),
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_give_mount_point_type_and_source_with_escapes_decoded() {
        let text = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - fuse.splitbrain-faultfs splitbrain-faultfs rw,user_id=0\n\
                    45 27 0:40 / /tmp/x rw,nosuid - ext4 /dev/sda1 rw\n";
        let m = parse_mountinfo(text, Path::new("t")).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[0].fstype, "fuse.splitbrain-faultfs");
        assert_eq!(m[0].source, "splitbrain-faultfs");
        assert_eq!(m[1].fstype, "ext4");
    }

    #[test]
    fn a_malformed_mountinfo_line_is_an_error_naming_the_line() {
        let err = parse_mountinfo("36 35 98:0 /mnt1 /x rw\n\ngarbage", Path::new("mi"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
