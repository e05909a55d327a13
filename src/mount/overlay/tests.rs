//! Tests of the core without a kernel: the calls a FUSE adapter would make, checked
//! against the lower directory.

use super::table::{Content, FileNode, NodeKind};
use super::*;
use rustix::fs::RenameFlags;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::store::pack;

struct Packs(HashMap<Digest, Arc<Pack>>);

impl PackSource for Packs {
    fn open(&self, id: &Digest) -> Option<Arc<Pack>> {
        self.0.get(id).cloned()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    vfs: Vfs,
    packs: Packs,
}

fn lower(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("lower")
}

/// Writes a pack holding `files` and returns it.
fn make_pack(dir: &Path, files: &[(&str, &[u8])]) -> Arc<Pack> {
    pack::write_test_pack(dir, files)
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(lower(&dir).join("deps")).unwrap();
        let packs = Packs(HashMap::new());
        let vfs = Self::open_vfs(&dir, &packs);
        Fixture { dir, vfs, packs }
    }

    fn open_vfs(dir: &tempfile::TempDir, packs: &Packs) -> Vfs {
        Self::open_vfs_with(dir, packs, &dir.path().join("journal")).0
    }

    /// A core over the fixture's lower dir, journaling to `journal`.
    fn open_vfs_with(dir: &tempfile::TempDir, packs: &Packs, journal: &Path) -> (Vfs, LoadReport) {
        let root = rustix::fs::open(
            lower(dir),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let clock = KernelClock::open(&dir.path().join("clock")).unwrap();
        Vfs::new(root, Some(journal), clock, packs).unwrap()
    }

    fn reopen(&mut self) -> LoadReport {
        let (vfs, report) =
            Self::open_vfs_with(&self.dir, &self.packs, &self.dir.path().join("journal"));
        self.vfs = vfs;
        report
    }

    fn pack(&mut self, files: &[(&str, &[u8])]) -> Arc<Pack> {
        let p = make_pack(self.dir.path(), files);
        self.packs.0.insert(p.id, p.clone());
        p
    }

    fn project(&mut self, path: &str, bytes: &[u8], perm: u16, mtime: NanoTime) -> Ino {
        let p = self.pack(&[("x", bytes)]);
        self.vfs
            .project(&[ProjectItem {
                path: path.into(),
                pack: p,
                index: 0,
                perm,
                mtime,
            }])
            .unwrap()[0]
    }

    fn ino(&self, path: &str) -> VResult<Ino> {
        let mut cur = ROOT;
        for part in Path::new(path).iter() {
            cur = self.vfs.lookup(cur, part)?.attr.ino;
        }
        Ok(cur)
    }

    fn read_all(&self, ino: Ino) -> Vec<u8> {
        let o = self.vfs.open(ino, libc::O_RDONLY, false).unwrap();
        let data = self.vfs.read(o.fh, 0, 1 << 24).unwrap();
        self.vfs.release(o.fh);
        data
    }

    fn lower_path(&self, rel: &str) -> PathBuf {
        lower(&self.dir).join(rel)
    }
}

/// The daemon's own user, as a caller.
fn me() -> Caller {
    Caller {
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
    }
}

const T: NanoTime = 1_700_000_000_123_456_789;

#[test]
fn projected_file_has_its_attributes_and_bytes() {
    let mut f = Fixture::new();
    let ino = f.project("deps/libx.rlib", b"rlib bytes", 0o644, T);
    let deps = f.ino("deps").unwrap();
    let e = f.vfs.lookup(deps, OsStr::new("libx.rlib")).unwrap();
    assert_eq!(e.attr.ino, ino);
    assert_eq!(e.cache, Cache::Long);
    assert_eq!(e.attr.size, 10);
    assert_eq!(e.attr.perm, 0o644);
    assert_eq!(e.attr.mtime, T);
    assert_eq!(e.attr.nlink, 1);
    assert_eq!(f.read_all(ino), b"rlib bytes");
    // Nothing was written to the lower dir.
    assert!(!f.lower_path("deps/libx.rlib").exists());
    // readdir lists it.
    let fh = f.vfs.opendir(deps).unwrap();
    let names: Vec<OsString> = f
        .vfs
        .readdir(fh, 0)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.name)
        .collect();
    assert!(names.contains(&OsString::from("libx.rlib")));
}

#[test]
fn projecting_over_a_real_file_replaces_it() {
    let mut f = Fixture::new();
    std::fs::write(f.lower_path("deps/a"), b"real").unwrap();
    let real = f.ino("deps/a").unwrap();
    let proj = f.project("deps/a", b"projected", 0o755, T);
    assert_ne!(real, proj);
    assert!(!f.lower_path("deps/a").exists());
    assert_eq!(f.ino("deps/a").unwrap(), proj);
    assert_eq!(f.read_all(proj), b"projected");
}

#[test]
fn bad_projection_paths_are_refused() {
    let mut f = Fixture::new();
    let p = f.pack(&[("x", b"1")]);
    std::fs::write(f.lower_path("file"), b"").unwrap();
    std::os::unix::fs::symlink("/tmp", f.lower_path("link")).unwrap();
    for bad in [
        "../escape",
        "/abs/path",
        "a/./b",
        "",
        "file/child",
        "link/x",
        "deps",
    ] {
        let r = f.vfs.project(&[ProjectItem {
            path: bad.into(),
            pack: p.clone(),
            index: 0,
            perm: 0o644,
            mtime: T,
        }]);
        assert!(r.is_err(), "{bad:?} must be refused");
    }
    let r = f.vfs.project(&[ProjectItem {
        path: "ok".into(),
        pack: p,
        index: 5,
        perm: 0o644,
        mtime: T,
    }]);
    assert!(matches!(r, Err(ProjectError::BadEntry(..))));
}

#[test]
fn write_open_copies_up_for_all_names_keeping_the_inode() {
    let mut f = Fixture::new();
    let ino = f.project("deps/app-1", b"binary!", 0o755, T);
    let deps = f.ino("deps").unwrap();
    std::fs::create_dir_all(f.lower_path("debug")).unwrap();
    let debug = f.ino("debug").unwrap();
    f.vfs.link(ino, debug, OsStr::new("app")).unwrap();
    assert_eq!(f.vfs.getattr(ino).unwrap().attr.nlink, 2);
    // A reader opened before the copy-up.
    let r = f.vfs.open(ino, libc::O_RDONLY, false).unwrap();
    let w = f.vfs.open(ino, libc::O_RDWR, false).unwrap();
    f.vfs.write(w.fh, 0, b"B").unwrap();
    f.vfs.release(w.fh);
    // Real now, both names, same content, the recorded mode and mtime survive the copy.
    let a = std::fs::metadata(f.lower_path("deps/app-1")).unwrap();
    let b = std::fs::metadata(f.lower_path("debug/app")).unwrap();
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
    assert_eq!(a.nlink(), 2);
    assert_eq!(a.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        std::fs::read(f.lower_path("debug/app")).unwrap(),
        b"Binary!"
    );
    assert_eq!(
        f.vfs.lookup(deps, OsStr::new("app-1")).unwrap().attr.ino,
        ino
    );
    assert_eq!(
        f.vfs.read(r.fh, 0, 100).unwrap(),
        b"Binary!",
        "old reader sees the write"
    );
    f.vfs.release(r.fh);
    // The pack was not touched.
    assert_eq!(f.packs.0.values().next().unwrap().payload(0), b"binary!");
}

#[test]
fn truncating_open_does_not_copy() {
    let mut f = Fixture::new();
    let ino = f.project("deps/x", b"old content", 0o644, T);
    let o = f
        .vfs
        .open(ino, libc::O_WRONLY | libc::O_TRUNC, false)
        .unwrap();
    f.vfs.write(o.fh, 0, b"new").unwrap();
    f.vfs.release(o.fh);
    assert_eq!(std::fs::read(f.lower_path("deps/x")).unwrap(), b"new");
}

#[test]
fn chmod_and_utimens_on_projections_are_metadata_only_and_persist() {
    let mut f = Fixture::new();
    let ino = f.project("deps/x", b"abc", 0o644, T);
    let s = SetAttr {
        mode: Some(0o600),
        mtime: Some(TimeSet::At(T + 5)),
        ..SetAttr::default()
    };
    let e = f.vfs.setattr(ino, s).unwrap();
    assert_eq!(e.attr.perm, 0o600);
    assert_eq!(e.attr.mtime, T + 5);
    assert!(!f.lower_path("deps/x").exists(), "still projected");
    let report = f.reopen();
    assert_eq!(report.restored, 1);
    let ino = f.ino("deps/x").unwrap();
    let a = f.vfs.getattr(ino).unwrap().attr;
    assert_eq!((a.perm, a.mtime, a.size), (0o600, T + 5, 3));
    assert_eq!(f.read_all(ino), b"abc");
}

#[test]
fn rename_and_unlink_of_projections_touch_only_metadata() {
    let mut f = Fixture::new();
    let ino = f.project("deps/a", b"AAA", 0o644, T);
    let deps = f.ino("deps").unwrap();
    f.vfs
        .rename(deps, OsStr::new("a"), deps, OsStr::new("b"), 0)
        .unwrap();
    assert_eq!(
        f.vfs.lookup(deps, OsStr::new("a")).unwrap_err(),
        Errno::NOENT
    );
    assert_eq!(f.ino("deps/b").unwrap(), ino);
    // Over an existing real file.
    std::fs::write(f.lower_path("deps/c"), b"real").unwrap();
    f.vfs
        .rename(deps, OsStr::new("b"), deps, OsStr::new("c"), 0)
        .unwrap();
    assert!(!f.lower_path("deps/c").exists());
    assert_eq!(f.read_all(f.ino("deps/c").unwrap()), b"AAA");
    // NOREPLACE and EXCHANGE.
    std::fs::write(f.lower_path("deps/r"), b"real").unwrap();
    assert_eq!(
        f.vfs
            .rename(
                deps,
                OsStr::new("c"),
                deps,
                OsStr::new("r"),
                RenameFlags::NOREPLACE.bits()
            )
            .unwrap_err(),
        Errno::EXIST
    );
    f.vfs
        .rename(
            deps,
            OsStr::new("c"),
            deps,
            OsStr::new("r"),
            RenameFlags::EXCHANGE.bits(),
        )
        .unwrap();
    assert_eq!(std::fs::read(f.lower_path("deps/c")).unwrap(), b"real");
    assert_eq!(f.read_all(f.ino("deps/r").unwrap()), b"AAA");
    f.vfs.unlink(deps, OsStr::new("r")).unwrap();
    assert_eq!(f.ino("deps/r").unwrap_err(), Errno::NOENT);
    assert_eq!(f.reopen().restored, 0, "the journal agrees");
}

#[test]
fn directories_with_projections_are_not_empty_and_move_with_them() {
    let mut f = Fixture::new();
    std::fs::create_dir_all(f.lower_path("build/x")).unwrap();
    f.project("build/x/out.o", b"obj", 0o644, T);
    let build = f.ino("build").unwrap();
    assert_eq!(
        f.vfs.rmdir(build, OsStr::new("x")).unwrap_err(),
        Errno::NOTEMPTY
    );
    f.vfs
        .rename(build, OsStr::new("x"), ROOT, OsStr::new("moved"), 0)
        .unwrap();
    assert_eq!(f.read_all(f.ino("moved/out.o").unwrap()), b"obj");
    assert_eq!(f.reopen().restored, 1);
    assert_eq!(f.read_all(f.ino("moved/out.o").unwrap()), b"obj");
}

#[test]
fn exchanging_two_directories_keeps_their_projections_apart() {
    let mut f = Fixture::new();
    std::fs::create_dir_all(f.lower_path("a")).unwrap();
    std::fs::create_dir_all(f.lower_path("b")).unwrap();
    f.project("a/in-a", b"A", 0o644, T);
    f.project("b/in-b", b"B", 0o644, T);
    f.vfs
        .rename(
            ROOT,
            OsStr::new("a"),
            ROOT,
            OsStr::new("b"),
            RenameFlags::EXCHANGE.bits(),
        )
        .unwrap();
    let check = |f: &Fixture| {
        assert_eq!(f.read_all(f.ino("b/in-a").unwrap()), b"A");
        assert_eq!(f.read_all(f.ino("a/in-b").unwrap()), b"B");
        assert_eq!(f.ino("a/in-a").unwrap_err(), Errno::NOENT);
        assert_eq!(f.ino("b/in-b").unwrap_err(), Errno::NOENT);
    };
    check(&f);
    // The journal says the same after a remount.
    assert_eq!(f.reopen().restored, 2);
    check(&f);
}

#[test]
fn replay_drops_projections_whose_pack_or_place_is_gone() {
    let mut f = Fixture::new();
    f.project("deps/keep", b"1", 0o644, T);
    f.project("deps/taken", b"2", 0o644, T);
    std::fs::create_dir_all(f.lower_path("gone")).unwrap();
    f.project("gone/x", b"3", 0o644, T);
    let p = f.project("deps/nopack", b"4", 0o644, T);
    let pack_of_nopack = {
        let t = f.vfs.table.lock();
        match &t.nodes[&p].kind {
            NodeKind::File(FileNode {
                content: Content::Projected(pr),
                ..
            }) => pr.pack.id,
            _ => unreachable!(),
        }
    };
    f.packs.0.remove(&pack_of_nopack);
    // While unmounted: a real file takes a name, a directory vanishes.
    std::fs::write(f.lower_path("deps/taken"), b"real").unwrap();
    std::fs::remove_dir(f.lower_path("gone")).unwrap();
    let r = f.reopen();
    assert_eq!(r.restored, 1, "{r:?}");
    assert_eq!(r.dropped_pack_gone, 1);
    assert_eq!(r.dropped_names, 2);
    assert_eq!(std::fs::read(f.lower_path("deps/taken")).unwrap(), b"real");
}

#[test]
fn real_files_hard_links_and_inode_numbers() {
    let f = Fixture::new();
    let deps = f.ino("deps").unwrap();
    let (e, o) = f
        .vfs
        .create(
            deps,
            OsStr::new("a"),
            0o644,
            libc::O_WRONLY | libc::O_EXCL,
            false,
            me(),
        )
        .unwrap();
    f.vfs.write(o.fh, 0, b"hello").unwrap();
    f.vfs.release(o.fh);
    let l = f.vfs.link(e.attr.ino, ROOT, OsStr::new("a2")).unwrap();
    assert_eq!(l.attr.ino, e.attr.ino, "hard links share the inode");
    assert_eq!(l.attr.nlink, 2);
    f.vfs.unlink(deps, OsStr::new("a")).unwrap();
    assert_eq!(f.vfs.getattr(e.attr.ino).unwrap().attr.nlink, 1);
    // A new file never gets an old number.
    f.vfs.unlink(ROOT, OsStr::new("a2")).unwrap();
    f.vfs.forget(e.attr.ino, 2);
    let (e2, o2) = f
        .vfs
        .create(deps, OsStr::new("b"), 0o644, libc::O_WRONLY, false, me())
        .unwrap();
    f.vfs.release(o2.fh);
    assert!(e2.attr.ino > e.attr.ino);
    // Creating where a projection is: O_EXCL fails.
    let mut f = f;
    f.project("deps/p", b"x", 0o644, T);
    assert_eq!(
        f.vfs
            .create(
                deps,
                OsStr::new("p"),
                0o644,
                libc::O_WRONLY | libc::O_EXCL,
                false,
                me()
            )
            .unwrap_err(),
        Errno::EXIST
    );
}

#[test]
fn passthrough_only_when_no_cached_open() {
    let mut f = Fixture::new();
    let ino = f.project("deps/x", b"abc", 0o644, T);
    let r = f.vfs.open(ino, libc::O_RDONLY, true).unwrap();
    assert!(matches!(r.mode, OpenMode::Cached { keep_cache: true }));
    // Copy-up while a cached open is live: the writer is served cached too.
    let w = f.vfs.open(ino, libc::O_RDWR, true).unwrap();
    assert!(matches!(w.mode, OpenMode::Cached { keep_cache: false }));
    f.vfs.release(r.fh);
    f.vfs.release(w.fh);
    // No cached open left: passthrough.
    let p = f.vfs.open(ino, libc::O_RDWR, true).unwrap();
    assert!(matches!(p.mode, OpenMode::Passthrough(_)));
    f.vfs.release(p.fh);
}

#[test]
fn materialize_writes_projections_with_their_mtime() {
    let mut f = Fixture::new();
    f.project("deps/a", b"aaa", 0o755, T);
    assert_eq!(f.vfs.materialize_all().unwrap(), 1);
    let m = std::fs::metadata(f.lower_path("deps/a")).unwrap();
    assert_eq!(crate::fsutil::mtime_ns(&m), T);
    assert_eq!(m.permissions().mode() & 0o777, 0o755);
    assert_eq!(f.vfs.usage().projections, 0);
}

/// The stat the engine records for a lower file.
fn lower_stat(p: &Path) -> crate::os::FileStat {
    crate::os::FileStat::of(&std::fs::metadata(p).unwrap())
}

#[test]
fn a_stored_real_file_becomes_a_projection_with_the_same_inode_and_times() {
    let mut f = Fixture::new();
    let deps = f.ino("deps").unwrap();
    let (e, o) = f
        .vfs
        .create(
            deps,
            OsStr::new("libx.rlib"),
            0o644,
            libc::O_WRONLY,
            false,
            me(),
        )
        .unwrap();
    f.vfs.write(o.fh, 0, b"rlib bytes").unwrap();
    f.vfs.release(o.fh);
    // cargo's uplift: a hard link in another directory.
    f.vfs.link(e.attr.ino, ROOT, OsStr::new("x")).unwrap();
    let before = f.vfs.getattr(e.attr.ino).unwrap().attr;
    let dir_mtime = crate::fsutil::mtime_ns(&std::fs::metadata(f.lower_path("deps")).unwrap());
    let stat = lower_stat(&f.lower_path("deps/libx.rlib"));
    let pack = f.pack(&[("libx.rlib", b"rlib bytes")]);

    // Open: it stays real for now.
    let o = f.vfs.open(e.attr.ino, libc::O_RDONLY, true).unwrap();
    let r = f
        .vfs
        .convert_to_projection(Path::new("deps/libx.rlib"), pack.clone(), 0, &stat)
        .unwrap();
    assert_eq!(r, Err(KeptReal::Open));
    f.vfs.release(o.fh);

    let r = f
        .vfs
        .convert_to_projection(Path::new("deps/libx.rlib"), pack.clone(), 0, &stat)
        .unwrap();
    assert_eq!(r, Ok(e.attr.ino));
    // Both names are gone from the lower dir, whose mtime did not move.
    assert!(!f.lower_path("deps/libx.rlib").exists());
    assert!(!f.lower_path("x").exists());
    assert_eq!(
        crate::fsutil::mtime_ns(&std::fs::metadata(f.lower_path("deps")).unwrap()),
        dir_mtime
    );
    let after = f.vfs.getattr(e.attr.ino).unwrap().attr;
    assert_eq!(
        (after.ino, after.size, after.mtime),
        (before.ino, 10, before.mtime)
    );
    assert_eq!((after.perm, after.nlink), (before.perm, 2));
    assert_eq!(f.ino("x").unwrap(), e.attr.ino);
    assert_eq!(f.read_all(e.attr.ino), b"rlib bytes");
    assert_eq!(f.vfs.usage().projections, 1);
    // It survives a restart, with both names.
    let report = f.reopen();
    assert_eq!(report.restored, 1);
    assert_eq!(f.read_all(f.ino("x").unwrap()), b"rlib bytes");
    assert_eq!(
        f.vfs
            .getattr(f.ino("deps/libx.rlib").unwrap())
            .unwrap()
            .attr
            .mtime,
        before.mtime
    );
}

#[test]
fn a_changed_or_unknown_file_stays_real() {
    let mut f = Fixture::new();
    let deps = f.ino("deps").unwrap();
    let (_, o) = f
        .vfs
        .create(deps, OsStr::new("a"), 0o644, libc::O_WRONLY, false, me())
        .unwrap();
    f.vfs.write(o.fh, 0, b"one").unwrap();
    f.vfs.release(o.fh);
    let stat = lower_stat(&f.lower_path("deps/a"));
    let pack = f.pack(&[("a", b"one")]);
    // Written again after it was stored (same size).
    let o = f
        .vfs
        .open(f.ino("deps/a").unwrap(), libc::O_WRONLY, false)
        .unwrap();
    f.vfs.write(o.fh, 0, b"two").unwrap();
    f.vfs.release(o.fh);
    let r = f
        .vfs
        .convert_to_projection(Path::new("deps/a"), pack.clone(), 0, &stat)
        .unwrap();
    assert_eq!(r, Err(KeptReal::Changed));
    assert_eq!(std::fs::read(f.lower_path("deps/a")).unwrap(), b"two");

    // A hard link made behind the mount's back: its names are not all known.
    std::fs::write(f.lower_path("deps/b"), b"one").unwrap();
    std::fs::hard_link(f.lower_path("deps/b"), f.lower_path("b2")).unwrap();
    let stat = lower_stat(&f.lower_path("deps/b"));
    let r = f
        .vfs
        .convert_to_projection(Path::new("deps/b"), pack.clone(), 0, &stat)
        .unwrap();
    assert_eq!(r, Err(KeptReal::UnknownNames));
    assert!(f.lower_path("deps/b").exists());
    // Nothing there.
    let r = f
        .vfs
        .convert_to_projection(Path::new("deps/none"), pack, 0, &stat)
        .unwrap();
    assert_eq!(r, Err(KeptReal::NotRealFile));
}

#[test]
fn put_real_replaces_a_projection_with_a_real_file() {
    let mut f = Fixture::new();
    let old = f.project("deps/x.d", b"old", 0o644, T);
    f.vfs
        .put_real(Path::new("deps/x.d"), b"new text", 0o640, T + 5)
        .unwrap();
    let m = std::fs::metadata(f.lower_path("deps/x.d")).unwrap();
    assert_eq!(
        std::fs::read(f.lower_path("deps/x.d")).unwrap(),
        b"new text"
    );
    assert_eq!(m.permissions().mode() & 0o777, 0o640);
    assert_eq!(crate::fsutil::mtime_ns(&m), T + 5);
    let now = f.ino("deps/x.d").unwrap();
    assert_ne!(now, old);
    assert_eq!(f.read_all(now), b"new text");
    assert_eq!(f.vfs.usage().projections, 0);
    // And over a real file.
    f.vfs
        .put_real(Path::new("deps/x.d"), b"third", 0o644, T)
        .unwrap();
    assert_eq!(std::fs::read(f.lower_path("deps/x.d")).unwrap(), b"third");
    // No temp file is left.
    assert_eq!(std::fs::read_dir(f.lower_path("deps")).unwrap().count(), 1);
}

#[test]
fn materialize_pack_copies_up_only_that_pack() {
    let mut f = Fixture::new();
    let a = f.pack(&[("a", b"aaa")]);
    let b = f.pack(&[("b", b"bbb")]);
    for (path, p) in [("deps/a", &a), ("deps/b", &b)] {
        f.vfs
            .project(&[ProjectItem {
                path: path.into(),
                pack: p.clone(),
                index: 0,
                perm: 0o644,
                mtime: T,
            }])
            .unwrap();
    }
    assert_eq!(f.vfs.packs_in_use().len(), 2);
    assert_eq!(f.vfs.materialize_pack(&a.id).unwrap(), 1);
    assert_eq!(f.vfs.packs_in_use(), vec![b.id]);
    assert_eq!(std::fs::read(f.lower_path("deps/a")).unwrap(), b"aaa");
    assert!(!f.lower_path("deps/b").exists());
}

/// A kernel that refuses invalidations (as when the connection is gone or wedged).
struct RefusingKernel;
impl Notify for RefusingKernel {
    fn invalidate(&self, _: Vec<Inval>) -> Result<(), String> {
        Err("refused".into())
    }
    fn inval_inode_later(&self, _: Ino) {}
}

#[test]
fn a_projection_the_kernel_did_not_confirm_is_an_error() {
    let mut f = Fixture::new();
    let p = f.pack(&[("x", b"bytes")]);
    f.vfs.set_notify(Arc::new(RefusingKernel));
    let item = |path: &str| ProjectItem {
        path: path.into(),
        pack: p.clone(),
        index: 0,
        perm: 0o644,
        mtime: T,
    };
    let r = f.vfs.project(&[item("deps/a")]);
    assert!(matches!(r, Err(ProjectError::Kernel(_))), "{r:?}");
    let r = f.vfs.put_real(Path::new("deps/b.d"), b"d", 0o644, T);
    assert!(matches!(r, Err(ProjectError::Kernel(_))), "{r:?}");
    // A failing item still invalidates what the call changed before it.
    f.vfs.set_notify(Arc::new(NoNotify));
    let r = f.vfs.project(&[item("deps/c"), item("nodir/d")]);
    assert!(matches!(r, Err(ProjectError::Io(..))), "{r:?}");
}

#[test]
fn copy_up_copies_without_the_table_lock() {
    let mut f = Fixture::new();
    let ino = f.project("deps/big", &vec![7u8; 1 << 20], 0o644, T);
    let deps = f.ino("deps").unwrap();
    let vfs = Arc::new(std::mem::replace(
        &mut f.vfs,
        Fixture::open_vfs(&f.dir, &f.packs),
    ));
    // While the copy runs, another request must get through the namespace.
    let (in_copy, release) = (
        Arc::new(std::sync::Barrier::new(2)),
        Arc::new(std::sync::Barrier::new(2)),
    );
    {
        let (a, b) = (in_copy.clone(), release.clone());
        vfs.set_copy_hook(move || {
            a.wait();
            b.wait();
        });
    }
    let writer = {
        let vfs = vfs.clone();
        std::thread::spawn(move || vfs.open(ino, libc::O_RDWR, false).map(|o| o.fh))
    };
    in_copy.wait();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let vfs = vfs.clone();
        std::thread::spawn(move || {
            let _ = tx.send(vfs.lookup(deps, OsStr::new("big")).map(|e| e.attr.ino));
        });
    }
    let looked_up = rx.recv_timeout(std::time::Duration::from_secs(5));
    release.wait();
    assert_eq!(
        looked_up.expect("a lookup during a copy-up must not wait for it"),
        Ok(ino)
    );
    let fh = writer.join().unwrap().unwrap();
    vfs.release(fh);
    assert_eq!(
        std::fs::read(lower(&f.dir).join("deps/big")).unwrap(),
        vec![7u8; 1 << 20]
    );
}

#[test]
fn the_journal_is_compacted_from_the_table() {
    // A projection dropped at replay (its name taken by a real file) must not come back
    // once the real file goes: the journal is rewritten from what was restored.
    let mut f = Fixture::new();
    f.project("deps/shadowed", b"old", 0o644, T);
    f.vfs.sync_journal();
    std::fs::write(f.lower_path("deps/shadowed"), b"real").unwrap();
    let r = f.reopen();
    assert_eq!(r.dropped_names, 1);
    std::fs::remove_file(f.lower_path("deps/shadowed")).unwrap();
    let r = f.reopen();
    assert_eq!(r.restored, 0, "{r:?}");
    let deps = f.ino("deps").unwrap();
    assert_eq!(
        f.vfs.lookup(deps, OsStr::new("shadowed")).unwrap_err(),
        Errno::NOENT
    );
}

/// Mounts a small tmpfs at `dir` (root only); unmounted on drop.
struct SmallFs(PathBuf);
impl SmallFs {
    fn mount(dir: &Path, size: &str) -> SmallFs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs as root");
        SmallFs(dir.to_path_buf())
    }
}
impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The projected names a journal file describes (what a new mount would restore).
fn journal_names(path: &Path) -> Vec<Vec<u8>> {
    let (state, _) = journal::read(path).unwrap();
    state
        .projections
        .values()
        .flat_map(|p| p.names.clone())
        .collect()
}

#[test]
fn a_full_disk_never_brings_a_removed_projection_back() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to mount a small filesystem for the journal");
        return;
    }
    let mut f = Fixture::new();
    // The journal on a filesystem of its own, which is then filled.
    let jdir = f.dir.path().join("jfs");
    let _fs = SmallFs::mount(&jdir, "64k");
    let journal = jdir.join("journal");
    f.vfs = Fixture::open_vfs_with(&f.dir, &f.packs, &journal).0;
    f.project("deps/a", b"1", 0o644, T);
    f.project("deps/b", b"2", 0o644, T);
    // Fill the filesystem.
    let filler = jdir.join("filler");
    let mut out = File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while out.write_all(&chunk).is_ok() {}
    drop(out);
    let deps = f.ino("deps").unwrap();
    // Appends fail now; the removal must not be lost to a later mount.
    for i in 0..64 {
        let name = format!("n{i}");
        f.project(&format!("deps/{name}"), b"x", 0o644, T);
        f.vfs.unlink(deps, OsStr::new(&name)).unwrap();
    }
    f.vfs.unlink(deps, OsStr::new("a")).unwrap();
    assert!(f.vfs.journal_lags(), "a full disk makes the journal lag");
    // The daemon dies here: a new mount sees what the journal holds.
    let names = journal_names(&journal);
    assert!(!names.contains(&b"deps/a".to_vec()), "{names:?}");
    // Space comes back: the next housekeeping rewrites it from the table.
    std::fs::remove_file(&filler).unwrap();
    f.vfs.tend_journal();
    assert!(!f.vfs.journal_lags());
    let names = journal_names(&journal);
    assert_eq!(names, vec![b"deps/b".to_vec()]);
}

#[test]
fn new_entries_belong_to_the_caller() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: only root can give files to another user");
        return;
    }
    let f = Fixture::new();
    let deps = f.ino("deps").unwrap();
    let other = Caller {
        uid: 4321,
        gid: 8765,
    };
    let (e, o) = f
        .vfs
        .create(
            deps,
            OsStr::new("theirs"),
            0o4755,
            libc::O_WRONLY,
            false,
            other,
        )
        .unwrap();
    f.vfs.release(o.fh);
    assert_eq!((e.attr.uid, e.attr.gid), (4321, 8765));
    let m = std::fs::metadata(f.lower_path("deps/theirs")).unwrap();
    assert_eq!((m.uid(), m.gid()), (4321, 8765));
    assert_eq!(m.permissions().mode() & 0o7777, 0o4755, "setuid kept");
    let d = f
        .vfs
        .mkdir(deps, OsStr::new("shared"), 0o2775, other)
        .unwrap();
    assert_eq!((d.attr.uid, d.attr.gid), (4321, 8765));
    // In a setgid directory the group is the directory's, as on ext4.
    std::os::unix::fs::chown(f.lower_path("deps/shared"), None, Some(777)).unwrap();
    std::fs::set_permissions(
        f.lower_path("deps/shared"),
        std::fs::Permissions::from_mode(0o2775),
    )
    .unwrap();
    let shared = f.ino("deps/shared").unwrap();
    let s = f
        .vfs
        .mknod(shared, OsStr::new("fifo"), libc::S_IFIFO | 0o644, 0, other)
        .unwrap();
    assert_eq!((s.attr.uid, s.attr.gid), (4321, 777));
    let l = f
        .vfs
        .symlink(shared, OsStr::new("ln"), Path::new("fifo"), other)
        .unwrap();
    assert_eq!((l.attr.uid, l.attr.gid), (4321, 777));
    // The daemon's own user: nothing changes.
    let (mine, o) = f
        .vfs
        .create(deps, OsStr::new("mine"), 0o644, libc::O_WRONLY, false, me())
        .unwrap();
    f.vfs.release(o.fh);
    assert_eq!(mine.attr.uid, rustix::process::getuid().as_raw());
}

#[test]
fn the_daemons_own_path_lookups_climb_out_of_real_directories_only() {
    use crate::mount::PathTarget;
    let mut f = Fixture::new();
    std::fs::create_dir_all(f.lower_path("src/arch")).unwrap();
    std::fs::write(f.lower_path("src/local.h"), b"h").unwrap();
    std::os::unix::fs::symlink("arch", f.lower_path("src/link")).unwrap();
    f.project("deps/p.o", b"obj", 0o644, T);
    let real = |r: PathTarget| matches!(r, PathTarget::Real { is_file: true, .. });
    // A header named from the directory of another, as compilers print it.
    assert!(real(
        f.vfs.path_target(Path::new("src/arch/../local.h")).unwrap()
    ));
    assert!(real(f.vfs.path_target(Path::new("src/./local.h")).unwrap()));
    assert!(matches!(
        f.vfs.path_target(Path::new("deps/../deps/p.o")).unwrap(),
        PathTarget::Projected { .. }
    ));
    // Not through a symlink, a missing directory, a file, or above the root.
    for bad in [
        "src/link/../local.h",
        "src/gone/../local.h",
        "src/local.h/../local.h",
        "deps/p.o/../p.o",
        "../lower/src/local.h",
    ] {
        assert!(f.vfs.path_target(Path::new(bad)).is_err(), "{bad}");
    }
}

/// A kernel that records the invalidations it is sent.
#[derive(Default)]
struct RecordingKernel(parking_lot::Mutex<Vec<Inval>>);
impl Notify for RecordingKernel {
    fn invalidate(&self, v: Vec<Inval>) -> Result<(), String> {
        self.0.lock().extend(v);
        Ok(())
    }
    fn inval_inode_later(&self, _: Ino) {}
}

#[test]
fn directories_made_for_the_daemon_are_real_and_the_kernel_forgets_their_absence() {
    let f = Fixture::new();
    // A lookup that failed: the kernel may keep that answer until told otherwise.
    assert_eq!(f.ino("debug").err(), Some(Errno::NOENT));
    let k = Arc::new(RecordingKernel::default());
    f.vfs.set_notify(k.clone());
    let rels: Vec<PathBuf> = [
        "debug",
        "debug/.fingerprint",
        "debug/.fingerprint/u-1",
        "deps",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    f.vfs.make_dirs(&rels).unwrap();
    assert!(f.lower_path("debug/.fingerprint/u-1").is_dir());
    let sent = k.0.lock();
    assert!(
        sent.iter()
            .any(|i| matches!(i, Inval::Entry(p, n) if *p == ROOT && n == "debug")),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|i| matches!(i, Inval::Inode(p) if *p == ROOT))
    );
    // `deps` was there: nothing to say about it.
    assert!(
        !sent
            .iter()
            .any(|i| matches!(i, Inval::Entry(_, n) if n == "deps"))
    );
    drop(sent);
    assert!(f.ino("debug/.fingerprint/u-1").is_ok());
    // A file in the way, or a parent missing, is an error.
    std::fs::write(f.lower_path("file"), b"x").unwrap();
    assert!(f.vfs.make_dirs(&[PathBuf::from("file")]).is_err());
    assert!(f.vfs.make_dirs(&[PathBuf::from("no/such")]).is_err());
    assert!(f.vfs.make_dirs(&[PathBuf::from("../up")]).is_err());
}
