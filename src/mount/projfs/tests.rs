//! The ProjFS provider driven through a model of ProjFS (`fake.rs`), in the sequences cargo
//! and rustc produce in a target directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::api::{DataSink, FileInfo, Notification, ProjFs, Status};
use super::fake::{Fake, FsErr, Kind, Open};
use super::provider::Provider;
use super::{ProjFsChannel, ProviderSlot};
use crate::hash::Digest;
use crate::mount::contract::{AttachSpec, Channel, MountCore, PathTarget};
use crate::os::FileStat;
use crate::projection::{KeptReal, ProjectItem};
use crate::store::pack::PackSource;
use crate::store::pack::{self, Pack};

/// The daemon is this process (the provider refuses callbacks it triggers).
fn daemon() -> u32 {
    std::process::id()
}
const CARGO: u32 = 2_000_000_000;
const READER: u32 = 2_000_000_001;
const T0: i128 = 1_700_000_000_000_000_000;

#[derive(Default)]
struct Packs(Mutex<HashMap<Digest, Arc<Pack>>>);

impl PackSource for Packs {
    fn open(&self, id: &Digest) -> Option<Arc<Pack>> {
        self.0.lock().get(id).cloned()
    }
}

struct Fx {
    dir: tempfile::TempDir,
    fake: Arc<Fake>,
    backend: ProjFsChannel,
    packs: Packs,
    root: PathBuf,
}

fn make_pack(dir: &Path, files: &[(&str, &[u8])]) -> Arc<Pack> {
    pack::write_test_pack(dir, files)
}

/// Bytes long enough to need several aligned chunks.
fn big(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::new(daemon());
        let f2 = fake.clone();
        let backend = ProjFsChannel::with_starter(Box::new(move |_root, _guid, slot| {
            f2.start(slot);
            Ok(f2.clone() as Arc<dyn ProjFs>)
        }));
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        Fx {
            root: dir.path().join("target"),
            dir,
            fake,
            backend,
            packs: Packs::default(),
        }
    }

    fn attach(&self) -> Arc<Provider> {
        let a = self
            .backend
            .attach(
                &AttachSpec {
                    dir: &self.root,
                    state: &self.dir.path().join("state"),
                    source: "zcfs@test".into(),
                    allow_other: false,
                },
                &self.packs,
            )
            .unwrap();
        let _ = a.report;
        self.backend.provider(&self.root).unwrap()
    }

    fn pack(&self, files: &[(&str, &[u8])]) -> Arc<Pack> {
        let p = make_pack(self.dir.path(), files);
        self.packs.0.lock().insert(p.id, p.clone());
        p
    }

    fn item(path: &str, pack: &Arc<Pack>, index: usize, mtime: i128) -> ProjectItem {
        ProjectItem {
            path: PathBuf::from(path),
            pack: pack.clone(),
            index,
            perm: 0o644,
            mtime,
        }
    }

    fn journal_names(&self) -> Vec<String> {
        let (st, _) =
            crate::projection::journal::read(&self.dir.path().join("state/journal")).unwrap();
        let mut v: Vec<String> = st
            .projections
            .values()
            .flat_map(|p| {
                p.names
                    .iter()
                    .map(|n| String::from_utf8(n.clone()).unwrap())
            })
            .collect();
        v.sort();
        v
    }
}

#[test]
fn a_hit_appears_in_a_directory_cargo_already_listed() {
    let fx = Fx::new();
    let p = fx.attach();
    // cargo made target/debug/deps (a full directory) and wrote a real file in it.
    fx.fake.mkdir("debug");
    fx.fake.mkdir("debug/deps");
    fx.fake
        .write_file("debug/deps/libold.rlib", CARGO, b"old", T0)
        .unwrap();
    assert_eq!(fx.fake.list("debug/deps", CARGO).unwrap(), ["libold.rlib"]);
    // rustc probed the name before the hit: absent, and remembered as absent.
    assert_eq!(
        fx.fake.stat("debug/deps/libfoo.rlib", CARGO),
        Err(FsErr::NotFound)
    );
    let rlib = big(1, 3 * 4096 + 100);
    let pk = fx.pack(&[("libfoo.rlib", &rlib), ("foo.d", b"dep-info")]);
    p.project(&[
        Fx::item("debug/deps/libfoo.rlib", &pk, 0, T0 + 5),
        Fx::item("debug/deps/foo.d", &pk, 1, T0 + 5),
    ])
    .unwrap();
    // The directory is now a placeholder: listings merge projections with real files,
    // in ProjFS's order, across several enumeration buffers.
    assert!(matches!(
        fx.fake.kind("debug/deps"),
        Some(Kind::Dir { placeholder: true })
    ));
    assert_eq!(
        fx.fake.list("debug/deps", CARGO).unwrap(),
        ["foo.d", "libfoo.rlib", "libold.rlib"]
    );
    // The earlier "absent" answer is forgotten; stat shows the synthesized mtime and size.
    assert_eq!(
        fx.fake.stat("DEBUG/deps/LIBFOO.RLIB", CARGO),
        Ok((rlib.len() as u64, T0 + 5)),
        "names are case-insensitive"
    );
    assert_eq!(
        fx.fake.read_file("debug/deps/libfoo.rlib", CARGO).unwrap(),
        rlib
    );
    assert!(matches!(
        fx.fake.kind("debug/deps/libfoo.rlib"),
        Some(Kind::Hydrated { .. })
    ));
    // Streamed in aligned chunks from the pack's map; the last one ends the file.
    let writes = fx.fake.data_writes.lock().clone();
    assert!(
        writes.iter().all(|(o, _)| o.is_multiple_of(4096)),
        "{writes:?}"
    );
    assert_eq!(writes.iter().map(|w| w.1).sum::<usize>(), rlib.len());
    assert_eq!(p.usage().projections, 2);
    assert_eq!(p.usage().bytes_served, rlib.len() as u64);
    p.persist();
    assert_eq!(
        fx.journal_names(),
        ["debug/deps/foo.d", "debug/deps/libfoo.rlib"]
    );
}

#[test]
fn writing_a_projection_makes_it_a_real_file_and_leaves_the_pack_alone() {
    let fx = Fx::new();
    let p = fx.attach();
    fx.fake.mkdir("debug");
    let pk = fx.pack(&[("a.rmeta", b"metadata bytes")]);
    p.project(&[Fx::item("debug/a.rmeta", &pk, 0, T0)]).unwrap();
    // Opened for writing without truncation: hydrated, then converted to full.
    let h = fx
        .fake
        .open(
            "debug/a.rmeta",
            CARGO,
            Open {
                write: true,
                share_delete: true,
                ..Open::default()
            },
        )
        .unwrap();
    assert_eq!(fx.fake.read_all(h).unwrap(), b"metadata bytes");
    fx.fake.write(h, b"changed by a tool", T0 + 9).unwrap();
    fx.fake.close(h);
    let order: Vec<Notification> = fx.fake.sent.lock().iter().map(|s| s.1.clone()).collect();
    assert_eq!(
        order,
        [Notification::PreConvertToFull, Notification::ClosedModified]
    );
    p.sync();
    assert_eq!(p.usage().projections, 0);
    assert_eq!(p.usage().copy_ups, 1);
    assert!(matches!(
        p.path_target(Path::new("debug/a.rmeta")).unwrap(),
        PathTarget::Real { .. }
    ));
    assert_eq!(pk.payload(0), b"metadata bytes", "the pack is untouched");
    assert_eq!(
        fx.fake.read_file("debug/a.rmeta", READER).unwrap(),
        b"changed by a tool"
    );
    p.persist();
    assert!(fx.journal_names().is_empty());
    // Truncation (rustc rewriting an output) converts without reading.
    let pk2 = fx.pack(&[("b.o", &big(2, 10_000))]);
    p.project(&[Fx::item("debug/b.o", &pk2, 0, T0)]).unwrap();
    let before = fx.fake.data_writes.lock().len();
    fx.fake
        .write_file("debug/b.o", CARGO, b"new", T0 + 1)
        .unwrap();
    assert_eq!(fx.fake.data_writes.lock().len(), before, "not hydrated");
    p.sync();
    assert_eq!(p.usage().projections, 0);
}

#[test]
fn renamed_and_deleted_projections_follow_in_the_model() {
    let fx = Fx::new();
    let p = fx.attach();
    fx.fake.mkdir("deps");
    let body = big(3, 9000);
    let pk = fx.pack(&[("x", &body), ("y", b"yy")]);
    p.project(&[
        Fx::item("deps/libx-tmp.rlib", &pk, 0, T0),
        Fx::item("deps/y", &pk, 1, T0),
    ])
    .unwrap();
    // A tool renames a placeholder it never read: ProjFS asks for its bytes by content id.
    fx.fake.stat("deps/libx-tmp.rlib", CARGO).unwrap();
    fx.fake
        .rename("deps/libx-tmp.rlib", "deps/libx.rlib", CARGO)
        .unwrap();
    p.sync();
    assert_eq!(fx.fake.read_file("deps/libx.rlib", CARGO).unwrap(), body);
    assert_eq!(
        fx.fake.list("deps", CARGO).unwrap(),
        ["libx.rlib", "y"],
        "the old name is a tombstone"
    );
    assert!(matches!(
        p.path_target(Path::new("deps/libx.rlib")).unwrap(),
        PathTarget::Projected { .. }
    ));
    assert!(p.path_target(Path::new("deps/libx-tmp.rlib")).is_err());
    // Deleted: gone from the model and the listing.
    fx.fake.delete("deps/y", CARGO).unwrap();
    p.sync();
    assert_eq!(fx.fake.list("deps", CARGO).unwrap(), ["libx.rlib"]);
    assert_eq!(p.usage().projections, 1);
    p.persist();
    assert_eq!(fx.journal_names(), ["deps/libx.rlib"]);
    // A name that is a tombstone can be projected again.
    p.project(&[Fx::item("deps/y", &pk, 1, T0 + 1)]).unwrap();
    assert_eq!(fx.fake.read_file("deps/y", CARGO).unwrap(), b"yy");
    // A file renamed over a projection replaces it.
    fx.fake.write_file("deps/new", CARGO, b"real", T0).unwrap();
    fx.fake.rename("deps/new", "deps/y", CARGO).unwrap();
    p.sync();
    assert!(matches!(
        p.path_target(Path::new("deps/y")).unwrap(),
        PathTarget::Real { .. }
    ));
    assert_eq!(fx.fake.read_file("deps/y", CARGO).unwrap(), b"real");
}

#[test]
fn a_projection_replaced_under_a_reader_keeps_the_readers_bytes() {
    let fx = Fx::new();
    let p = fx.attach();
    fx.fake.mkdir("deps");
    let old = big(4, 20_000);
    let new = big(5, 7000);
    let pk1 = fx.pack(&[("lib", &old)]);
    let pk2 = fx.pack(&[("lib", &new)]);
    p.project(&[Fx::item("deps/lib.rlib", &pk1, 0, T0)])
        .unwrap();
    // A reader with delete sharing (as Rust's std opens files) holds the old placeholder,
    // not yet read.
    let h = fx
        .fake
        .open(
            "deps/lib.rlib",
            READER,
            Open {
                share_delete: true,
                ..Open::default()
            },
        )
        .unwrap();
    p.project(&[Fx::item("deps/lib.rlib", &pk2, 0, T0 + 1)])
        .unwrap();
    assert_eq!(fx.fake.read_all(h).unwrap(), old, "served by content id");
    assert_eq!(fx.fake.read_file("deps/lib.rlib", CARGO).unwrap(), new);
    fx.fake.close(h);
    // A reader without delete sharing keeps the file: the projection fails and the old
    // one stays in the model (no process sees a file the model does not describe).
    let h = fx
        .fake
        .open("deps/lib.rlib", READER, Open::default())
        .unwrap();
    let pk3 = fx.pack(&[("lib", b"third")]);
    let err = p
        .project(&[Fx::item("deps/lib.rlib", &pk3, 0, T0 + 2)])
        .unwrap_err();
    assert!(err.to_string().contains("open"), "{err}");
    assert_eq!(p.projected_bytes(Path::new("deps/lib.rlib")).unwrap(), new);
    fx.fake.close(h);
    // Packs handed out stay in use for the store while placeholders may need them.
    let used = p.packs_in_use();
    assert!(used.contains(&pk1.id) && used.contains(&pk2.id));
}

#[test]
fn unmount_removes_or_hydrates_placeholders_and_leaves_a_plain_directory() {
    let fx = Fx::new();
    let p = fx.attach();
    fx.fake.mkdir("debug");
    fx.fake.mkdir("debug/deps");
    let pk = fx.pack(&[("a", b"aaaa"), ("b", b"bbbb")]);
    p.project(&[
        Fx::item("debug/deps/a", &pk, 0, T0),
        Fx::item("debug/deps/b", &pk, 1, T0 + 1),
    ])
    .unwrap();
    fx.fake.read_file("debug/deps/a", CARGO).unwrap();
    fx.fake.stat("debug/deps/b", CARGO).unwrap();
    drop(p);
    // Plain unmount: every placeholder goes (the journal keeps the projections), every
    // marked directory becomes ordinary, and the tree is usable with no provider.
    fx.backend.release(&fx.root, false).unwrap();
    assert_eq!(
        fx.fake.list("debug/deps", CARGO).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(fx.fake.list("", CARGO).unwrap(), ["debug"]);
    assert!(matches!(
        fx.fake.kind(""),
        Some(Kind::Dir { placeholder: false })
    ));
    assert_eq!(fx.journal_names(), ["debug/deps/a", "debug/deps/b"]);
    // Mounted again: the journal's projections are back.
    let p = fx.attach();
    assert_eq!(p.usage().projections, 2);
    assert_eq!(fx.fake.read_file("debug/deps/b", CARGO).unwrap(), b"bbbb");
    // Unmount with materialization: real files with the projections' bytes and mtimes.
    assert_eq!(p.materialize_all().unwrap(), 2);
    drop(p);
    fx.backend.release(&fx.root, false).unwrap();
    assert_eq!(fx.fake.read_file("debug/deps/a", READER).unwrap(), b"aaaa");
    assert_eq!(fx.fake.stat("debug/deps/b", READER).unwrap(), (4, T0 + 1));
    assert!(matches!(
        fx.fake.kind("debug/deps/a"),
        Some(Kind::Full { .. })
    ));
    assert!(fx.journal_names().is_empty());
}

#[test]
fn a_restart_reconciles_what_changed_while_no_provider_ran() {
    let fx = Fx::new();
    let p = fx.attach();
    fx.fake.mkdir("d");
    fx.fake.mkdir("gone");
    let pk = fx.pack(&[("a", b"A"), ("b", b"B"), ("c", b"C"), ("e", b"E")]);
    p.project(&[
        Fx::item("d/a", &pk, 0, T0),
        Fx::item("d/b", &pk, 1, T0),
        Fx::item("gone/c", &pk, 2, T0),
        Fx::item("d/e", &pk, 3, T0),
    ])
    .unwrap();
    drop(p);
    fx.backend.release(&fx.root, false).unwrap();
    // While stopped: a tool writes a real file at a projected name, and removes a
    // directory.
    fx.fake.write_file("d/b", CARGO, b"tool's", T0).unwrap();
    fx.fake.delete("gone", CARGO).unwrap();
    let p = fx.attach();
    assert_eq!(p.usage().projections, 2, "d/a and d/e");
    assert_eq!(fx.fake.read_file("d/b", CARGO).unwrap(), b"tool's");
    assert_eq!(fx.fake.read_file("d/a", CARGO).unwrap(), b"A");
    // A crash: the provider dies with placeholders on disk, and one of them holds other
    // content than the journal says (projected anew, the record lost).
    let pk2 = fx.pack(&[("a2", b"A2")]);
    p.project(&[Fx::item("d/a", &pk2, 0, T0 + 1)]).unwrap();
    fx.fake.stat("d/a", CARGO).unwrap();
    fx.fake.stat("d/e", CARGO).unwrap();
    p.persist();
    // Forge the lost record: the journal says d/a is still the first pack's entry.
    {
        use crate::projection::journal::{Journal, Record};
        let (mut j, _) = Journal::open(&fx.dir.path().join("state/journal")).unwrap();
        j.append(&Record::RemoveName {
            path: b"d/a".to_vec(),
        })
        .unwrap();
        j.append(&Record::Put {
            id: 999,
            path: b"d/a".to_vec(),
            pack: pk.id,
            index: 0,
            size: 1,
            meta: crate::projection::Meta {
                perm: 0o644,
                uid: 0,
                gid: 0,
                atime: T0,
                mtime: T0,
                ctime: T0,
            },
        })
        .unwrap();
    }
    fx.fake.crash();
    drop(p);
    fx.backend.live.lock().clear();
    assert_eq!(fx.fake.read_file("d/e", CARGO), Err(FsErr::Unavailable));
    let p = fx.attach();
    assert_eq!(
        fx.fake.read_file("d/a", CARGO).unwrap(),
        b"A",
        "the stale placeholder was replaced"
    );
    assert_eq!(fx.fake.read_file("d/e", CARGO).unwrap(), b"E");
    assert_eq!(p.usage().projections, 2);
}

#[test]
fn the_daemons_own_accesses_are_refused_and_do_not_stick() {
    let fx = Fx::new();
    let p = fx.attach();
    fx.fake.mkdir("d");
    let pk = fx.pack(&[("f", b"ff")]);
    p.project(&[Fx::item("d/f", &pk, 0, T0)]).unwrap();
    assert_eq!(fx.fake.stat("d/f", daemon()), Err(FsErr::NotFound));
    assert_eq!(fx.fake.list("d", daemon()).unwrap(), Vec::<String>::new());
    assert!(p.usage().requests["own_access_refused"] >= 2);
    // The refusal was cached as absent; the next projection clears it.
    p.project(&[Fx::item("d/g", &pk, 0, T0)]).unwrap();
    assert_eq!(fx.fake.read_file("d/f", CARGO).unwrap(), b"ff");
    // The daemon reads through the model.
    assert_eq!(p.projected_bytes(Path::new("d/f")).unwrap(), b"ff");
    let mut names = p.list_dir(Path::new("d")).unwrap();
    names.sort();
    assert_eq!(names, ["f", "g"]);
}

#[test]
fn a_miss_output_becomes_a_projection_unless_open_or_changed() {
    let fx = Fx::new();
    let p = fx.attach();
    fx.fake.mkdir("deps");
    // rustc wrote its output as a real file; the pack holds the same bytes.
    fx.fake
        .write_file("deps/libq.rlib", CARGO, b"compiled", T0 + 3)
        .unwrap();
    let pk = fx.pack(&[("libq.rlib", b"compiled")]);
    let stat = FileStat {
        dev: 0,
        ino: 0,
        size: 8,
        mtime: T0 + 3,
        ctime: T0 + 3,
    };
    // Open without delete sharing: kept real.
    let h = fx
        .fake
        .open("deps/libq.rlib", READER, Open::default())
        .unwrap();
    assert_eq!(
        p.convert_to_projection(Path::new("deps/libq.rlib"), pk.clone(), 0, &stat)
            .unwrap(),
        Err(KeptReal::Open)
    );
    fx.fake.close(h);
    let changed = FileStat { size: 9, ..stat };
    assert_eq!(
        p.convert_to_projection(Path::new("deps/libq.rlib"), pk.clone(), 0, &changed)
            .unwrap(),
        Err(KeptReal::Changed)
    );
    p.convert_to_projection(Path::new("deps/libq.rlib"), pk.clone(), 0, &stat)
        .unwrap()
        .unwrap();
    assert!(
        fx.fake.kind("deps/libq.rlib").is_none(),
        "the real file is gone"
    );
    assert_eq!(fx.fake.stat("deps/libq.rlib", CARGO).unwrap(), (8, T0 + 3));
    assert_eq!(
        fx.fake.read_file("deps/libq.rlib", CARGO).unwrap(),
        b"compiled"
    );
    assert_eq!(fx.fake.real_bytes(), 8, "only the hydrated copy");
}

#[test]
fn put_real_and_materialize_pack_write_files_in_place_of_projections() {
    let fx = Fx::new();
    let p = fx.attach();
    fx.fake.mkdir("o");
    let pk = fx.pack(&[("a", b"one"), ("b", b"two")]);
    p.project(&[Fx::item("o/a", &pk, 0, T0), Fx::item("o/b", &pk, 1, T0)])
        .unwrap();
    p.put_real(Path::new("o/a"), b"rewritten dep-info", 0o644, T0 + 7)
        .unwrap();
    assert_eq!(
        fx.fake.read_file("o/a", CARGO).unwrap(),
        b"rewritten dep-info"
    );
    assert_eq!(fx.fake.stat("o/a", CARGO).unwrap().1, T0 + 7);
    assert_eq!(p.materialize_pack(&pk.id).unwrap(), 1);
    assert!(!p.packs_in_use().contains(&pk.id));
    assert!(matches!(fx.fake.kind("o/b"), Some(Kind::Full { .. })));
    assert_eq!(fx.fake.read_file("o/b", CARGO).unwrap(), b"two");
    // Projection into something that is not a directory is refused.
    assert!(p.project(&[Fx::item("o/a/x", &pk, 0, T0)]).is_err());
    assert!(p.project(&[Fx::item("../x", &pk, 0, T0)]).is_err());
    assert!(p.project(&[Fx::item("o/c", &pk, 9, T0)]).is_err());
}

struct Sink(Vec<u8>);
impl DataSink for Sink {
    fn alignment(&self) -> usize {
        512
    }
    fn write(&mut self, _: u64, b: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(b);
        Ok(())
    }
}

#[test]
fn hostile_data_requests_are_refused() {
    let fx = Fx::new();
    let p = fx.attach();
    fx.fake.mkdir("d");
    let pk = fx.pack(&[("f", b"0123456789")]);
    p.project(&[Fx::item("d/f", &pk, 0, T0)]).unwrap();
    let ph = p.cb_placeholder_info(r"d\f", CARGO).unwrap();
    let mut s = Sink(Vec::new());
    p.cb_file_data(&ph.content_id, 2, 5, CARGO, &mut s).unwrap();
    assert_eq!(s.0, b"23456");
    for (cid, off, len) in [
        (vec![1u8; 45], 0, 1),
        (vec![], 0, 1),
        (ph.content_id.clone(), 8, 5),
        (ph.content_id.clone(), u64::MAX, 2),
    ] {
        let r = p.cb_file_data(&cid, off, len, CARGO, &mut Sink(Vec::new()));
        assert!(matches!(r, Err(Status::Invalid | Status::Io)), "{r:?}");
    }
    // An id naming another entry size than the pack's is refused.
    let mut forged = super::content::ContentId::decode(&ph.content_id).unwrap();
    forged.size = 11;
    assert_eq!(
        p.cb_file_data(&forged.encode(), 0, 11, CARGO, &mut Sink(Vec::new())),
        Err(Status::Invalid)
    );
    assert_eq!(p.cb_placeholder_info(r"..\x", CARGO), Err(Status::NotFound));
    let _ = FileInfo {
        size: 0,
        mtime: 0,
        read_only: false,
    };
    let _: &dyn ProviderSlot = &super::Slot::default();
}

#[test]
fn a_directory_rename_moves_projections_whatever_the_spelling() {
    // ProjFS refuses to rename placeholder directories, so this comes only from a
    // notification; its spelling may differ in case (and in UTF-8 length: `ı` folds to `I`).
    let fx = Fx::new();
    let p = fx.attach();
    fx.fake.mkdir("ıdir");
    let pk = fx.pack(&[("a", b"A")]);
    p.project(&[Fx::item("ıdir/a", &pk, 0, T0)]).unwrap();
    p.cb_notify(
        r"IDIR",
        Notification::Renamed(crate::projection::relpath::RelPath::parse("moved").unwrap()),
        true,
        CARGO,
    );
    p.sync();
    assert_eq!(p.projected_bytes(Path::new("moved/a")).unwrap(), b"A");
    assert!(p.projected_bytes(Path::new("ıdir/a")).is_none());
    assert!(
        fx.fake.rename("ıdir", "other", CARGO).is_err(),
        "a placeholder directory cannot be renamed"
    );
}
