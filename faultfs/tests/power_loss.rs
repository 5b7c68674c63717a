//! The durability model through a real FUSE mount: what survives a power loss and what not.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use splitbrain_faultfs::{mount, FaultMount};

fn setup() -> (tempfile::TempDir, FaultMount) {
    let dir = tempfile::tempdir().unwrap();
    let m = mount(dir.path().join("backing"), dir.path().join("mnt")).unwrap();
    (dir, m)
}

fn fsync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

fn write_synced(p: &Path, data: &[u8]) {
    let mut f = File::create(p).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn written_but_unsynced_data_is_gone_after_a_power_loss() {
    let (_d, m) = setup();
    let p = m.mount_point().join("wal");
    write_synced(&p, b"synced;");
    fsync_dir(m.mount_point());
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"not synced").unwrap();
    drop(f); // close does not sync
    assert_eq!(
        fs::read(&p).unwrap(),
        b"synced;not synced",
        "reads see unsynced writes"
    );
    let r = m.power_loss(None);
    assert_eq!(fs::read(&p).unwrap(), b"synced;");
    assert_eq!(r.bytes_lost, 10);
    assert_eq!(r.sizes_changed, vec![("/wal".to_string(), 17, 7)]);
    assert!(r.paths_lost.is_empty(), "{r:?}");
}

#[test]
fn fsynced_data_survives_a_power_loss_and_a_remount() {
    let dir = tempfile::tempdir().unwrap();
    let (b, mp) = (dir.path().join("backing"), dir.path().join("mnt"));
    let m = mount(&b, &mp).unwrap();
    let p = mp.join("data");
    let mut f = File::create(&p).unwrap();
    f.write_all(&vec![7u8; 300_000]).unwrap();
    f.write_all_at(b"middle", 100_000).unwrap();
    f.sync_data().unwrap();
    drop(f);
    fsync_dir(&mp);
    let r = m.power_loss(None);
    assert_eq!(r.bytes_lost, 0, "{r:?}");
    let got = fs::read(&p).unwrap();
    assert_eq!(got.len(), 300_000);
    assert_eq!(&got[100_000..100_006], b"middle");
    m.unmount().unwrap();
    let m = mount(&b, &mp).unwrap();
    assert_eq!(fs::read(m.mount_point().join("data")).unwrap(), got);
}

#[test]
fn a_create_without_a_directory_fsync_is_lost_and_with_one_it_stays() {
    let (_d, m) = setup();
    let mp = m.mount_point();
    fs::create_dir(mp.join("sub")).unwrap();
    fsync_dir(mp);
    write_synced(&mp.join("sub/kept"), b"k");
    fsync_dir(&mp.join("sub"));
    write_synced(&mp.join("sub/lost"), b"l"); // data fsynced, name not
    let r = m.power_loss(None);
    assert_eq!(fs::read(mp.join("sub/kept")).unwrap(), b"k");
    assert!(!mp.join("sub/lost").exists());
    assert_eq!(r.paths_lost, vec!["/sub/lost".to_string()]);
    assert_eq!(r.files_lost, 1);
}

#[test]
fn a_directory_made_without_fsync_of_its_parent_is_lost_with_its_files() {
    let (_d, m) = setup();
    let mp = m.mount_point();
    fs::create_dir(mp.join("d")).unwrap();
    write_synced(&mp.join("d/f"), b"x");
    fsync_dir(&mp.join("d"));
    m.power_loss(None);
    assert!(!mp.join("d").exists());
}

#[test]
fn a_rename_over_a_file_without_a_directory_fsync_is_undone_and_with_one_it_stays() {
    let (_d, m) = setup();
    let mp = m.mount_point();
    write_synced(&mp.join("snap"), b"old");
    fsync_dir(mp);
    // snapshot pattern without the directory fsync
    write_synced(&mp.join("snap.tmp"), b"new");
    fs::rename(mp.join("snap.tmp"), mp.join("snap")).unwrap();
    assert_eq!(fs::read(mp.join("snap")).unwrap(), b"new");
    let r = m.power_loss(None);
    assert_eq!(fs::read(mp.join("snap")).unwrap(), b"old");
    assert_eq!(r.paths_reverted, vec!["/snap".to_string()], "{r:?}");
    // ... and with it
    write_synced(&mp.join("snap.tmp"), b"new");
    fs::rename(mp.join("snap.tmp"), mp.join("snap")).unwrap();
    fsync_dir(mp);
    m.power_loss(None);
    assert_eq!(fs::read(mp.join("snap")).unwrap(), b"new");
    assert!(!mp.join("snap.tmp").exists());
}

#[test]
fn an_unlink_without_a_directory_fsync_comes_back() {
    let (_d, m) = setup();
    let mp = m.mount_point();
    write_synced(&mp.join("f"), b"still here");
    fsync_dir(mp);
    fs::remove_file(mp.join("f")).unwrap();
    let r = m.power_loss(None);
    assert_eq!(fs::read(mp.join("f")).unwrap(), b"still here");
    assert_eq!(r.paths_reappeared, vec!["/f".to_string()]);
}

#[test]
fn a_durable_name_without_fsynced_data_survives_empty() {
    let (_d, m) = setup();
    let mp = m.mount_point();
    fs::write(mp.join("f"), b"never synced").unwrap();
    fsync_dir(mp);
    m.power_loss(None);
    assert_eq!(fs::read(mp.join("f")).unwrap(), b"");
}

#[test]
fn a_torn_write_keeps_a_prefix_drawn_from_the_seed() {
    let mut kept = Vec::new();
    for seed in [1u64, 1, 2] {
        let (_d, m) = setup();
        let p = m.mount_point().join("wal");
        write_synced(&p, b"head");
        fsync_dir(m.mount_point());
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&[b'a'; 100], 4).unwrap();
        let last: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
        f.write_all_at(&last, 4).unwrap(); // the newest write, covering the first
        drop(f);
        let r = m.power_loss(Some(seed));
        let t = r.torn.clone().expect("a torn write");
        assert_eq!((t.path.as_str(), t.offset, t.len), ("/wal", 4, 1000));
        assert!(t.kept < t.len);
        let got = fs::read(&p).unwrap();
        assert_eq!(got.len() as u64, 4 + t.kept);
        assert_eq!(&got[..4], b"head");
        assert_eq!(
            &got[4..],
            &last[..t.kept as usize],
            "the torn write keeps a prefix"
        );
        assert_eq!(r.bytes_lost, 1000 - t.kept, "{r:?}");
        kept.push(t.kept);
    }
    assert_eq!(kept[0], kept[1], "same seed, same tear");
    assert_ne!(
        kept[0], kept[2],
        "another seed, another tear (for these seeds)"
    );
}

#[test]
fn a_torn_append_keeps_the_unsynced_appends_before_it_and_no_zero_hole() {
    let (_d, m) = setup();
    let p = m.mount_point().join("log");
    write_synced(&p, b"head");
    fsync_dir(m.mount_point());
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"AAAA").unwrap();
    f.write_all(b"BBBBBBBBBBBBBBBB").unwrap();
    drop(f);
    let r = m.power_loss(Some(3));
    let t = r.torn.expect("torn");
    assert_eq!((t.offset, t.len, t.kept_from), (8, 16, 4));
    let got = fs::read(&p).unwrap();
    let volatile = b"headAAAABBBBBBBBBBBBBBBB";
    assert_eq!(got, &volatile[..(8 + t.kept) as usize]);
    assert_eq!(r.bytes_lost, 16 - t.kept);
}

#[test]
fn posix_basics_work_for_a_database() {
    let (_d, m) = setup();
    let mp = m.mount_point();
    // create, write at offsets, read at offsets, append
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(mp.join("a"))
        .unwrap();
    f.write_all(b"0123456789").unwrap();
    f.write_all_at(b"XY", 4).unwrap();
    let mut buf = [0u8; 4];
    f.read_exact_at(&mut buf, 3).unwrap();
    assert_eq!(&buf, b"3XY6");
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(b"!").unwrap();
    // ftruncate down and up
    f.set_len(5).unwrap();
    f.set_len(7).unwrap();
    let mut all = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"0123X\0\0");
    assert_eq!(f.metadata().unwrap().len(), 7);
    drop(f);
    let mut ap = OpenOptions::new().append(true).open(mp.join("a")).unwrap();
    ap.write_all(b"end").unwrap();
    drop(ap);
    assert_eq!(fs::read(mp.join("a")).unwrap(), b"0123X\0\0end");
    // mkdir, readdir, rename into a directory, rename over an existing file, unlink, rmdir
    fs::create_dir(mp.join("d")).unwrap();
    fs::write(mp.join("b"), b"b").unwrap();
    fs::rename(mp.join("b"), mp.join("d/b")).unwrap();
    fs::write(mp.join("c"), b"c").unwrap();
    fs::rename(mp.join("c"), mp.join("a")).unwrap();
    assert_eq!(fs::read(mp.join("a")).unwrap(), b"c");
    let mut names: Vec<String> = fs::read_dir(mp)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "d"]);
    assert!(
        fs::remove_dir(mp.join("d")).is_err(),
        "rmdir of a non-empty directory"
    );
    fs::remove_file(mp.join("d/b")).unwrap();
    fs::remove_dir(mp.join("d")).unwrap();
    assert!(
        File::create_new(mp.join("a")).is_err(),
        "O_EXCL on an existing file"
    );
    // an unlinked file stays readable while open
    let mut keep = File::open(mp.join("a")).unwrap();
    fs::remove_file(mp.join("a")).unwrap();
    let mut s = String::new();
    keep.read_to_string(&mut s).unwrap();
    assert_eq!(s, "c");
    // statfs answers
    let c = std::ffi::CString::new(mp.to_str().unwrap()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    assert!(st.f_blocks > 0);
    // chmod
    use std::os::unix::fs::PermissionsExt;
    fs::write(mp.join("m"), b"").unwrap();
    fs::set_permissions(mp.join("m"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        fs::metadata(mp.join("m")).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn in_journal_mode_any_fsync_makes_every_pending_metadata_change_durable() {
    use splitbrain_faultfs::{mount_with, Metadata, Options};
    let dir = tempfile::tempdir().unwrap();
    let m = mount_with(
        dir.path().join("b"),
        dir.path().join("m"),
        Options {
            metadata: Metadata::Journal,
        },
    )
    .unwrap();
    let mp = m.mount_point();
    fs::create_dir(mp.join("d")).unwrap();
    fs::write(mp.join("d/never-synced"), b"data").unwrap();
    fs::write(mp.join("gone"), b"").unwrap();
    // no directory fsync at all: one file fsync commits every directory change before it
    write_synced(&mp.join("other"), b"o");
    fs::write(mp.join("after"), b"").unwrap(); // after the last commit: lost
    let r = m.power_loss(None);
    assert!(mp.join("d").is_dir());
    assert_eq!(
        fs::read(mp.join("d/never-synced")).unwrap(),
        b"",
        "its data was never fsynced"
    );
    assert_eq!(fs::read(mp.join("other")).unwrap(), b"o");
    assert!(mp.join("gone").exists());
    assert!(!mp.join("after").exists());
    assert_eq!(r.paths_lost, vec!["/after".to_string()], "{r:?}");
}
