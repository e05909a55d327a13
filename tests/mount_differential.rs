//! Differential test: seeded random sequences of file operations applied to a zcfs mount and
//! to a plain directory on the same ext4, comparing every result (errno included) and the
//! whole tree (names, types, sizes, modes, link counts, hard-link groups, contents, symlink
//! targets, explicitly set mtimes). Projections on the mount are mirrored by plain files with
//! the same content, mode and mtime on the reference side.
//!
//! `ZCFS_DIFF_OPS` (default 2500) ops per seed; `ZCFS_DIFF_SEEDS` (default 2) seeds.

mod common;

use common::Env;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, Timespec, Timestamps};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A small deterministic PRNG (xorshift64*), so a failing seed can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max as u64 + 1) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const DIRS: &[&str] = &["", "d0", "d1", "d0/e"];
const NAMES: &[&str] = &["f0", "f1", "f2", "f3", "d0", "d1", "e", "l0"];

fn path(r: &mut Rng) -> String {
    let d = r.pick(DIRS);
    let n = r.pick(NAMES);
    if d.is_empty() {
        n.to_string()
    } else {
        format!("{d}/{n}")
    }
}

/// File content; prints as its length in op logs.
#[derive(Clone, PartialEq, Eq)]
struct Data(Vec<u8>);
impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}
impl std::ops::Deref for Data {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        p: String,
        data: Data,
        excl: bool,
        mode: u32,
    },
    Write {
        p: String,
        off: u64,
        data: Data,
        append: bool,
    },
    Truncate {
        p: String,
        len: u64,
    },
    Read {
        p: String,
    },
    Unlink {
        p: String,
    },
    Mkdir {
        p: String,
    },
    Rmdir {
        p: String,
    },
    Rename {
        a: String,
        b: String,
        flags: u32,
    },
    Link {
        a: String,
        b: String,
    },
    Symlink {
        p: String,
        target: String,
    },
    Chmod {
        p: String,
        mode: u32,
    },
    Utime {
        p: String,
        ns: i64,
    },
    MmapWrite {
        p: String,
        off: usize,
        data: Data,
    },
    Fallocate {
        p: String,
        len: u64,
    },
    Project {
        p: String,
        data: Data,
        mode: u32,
        ns: i64,
    },
}

fn random_op(r: &mut Rng) -> Op {
    match r.below(100) {
        0..=11 => Op::Create {
            p: path(r),
            data: Data(r.bytes(9000)),
            excl: r.below(2) == 0,
            mode: *r.pick(&[0o644, 0o600, 0o755]),
        },
        12..=21 => Op::Write {
            p: path(r),
            off: r.below(10_000),
            data: Data(r.bytes(5000)),
            append: r.below(4) == 0,
        },
        22..=26 => Op::Truncate {
            p: path(r),
            len: r.below(12_000),
        },
        27..=33 => Op::Read { p: path(r) },
        34..=40 => Op::Unlink { p: path(r) },
        41..=45 => Op::Mkdir { p: path(r) },
        46..=49 => Op::Rmdir { p: path(r) },
        50..=61 => Op::Rename {
            a: path(r),
            b: path(r),
            flags: *r.pick(&[
                0,
                0,
                0,
                RenameFlags::NOREPLACE.bits(),
                RenameFlags::EXCHANGE.bits(),
            ]),
        },
        62..=67 => Op::Link {
            a: path(r),
            b: path(r),
        },
        68..=70 => Op::Symlink {
            p: path(r),
            target: path(r),
        },
        71..=74 => Op::Chmod {
            p: path(r),
            mode: *r.pick(&[0o600, 0o640, 0o755, 0o444]),
        },
        75..=78 => Op::Utime {
            p: path(r),
            ns: 1_600_000_000_000_000_000 + r.below(1 << 40) as i64,
        },
        79..=83 => Op::MmapWrite {
            p: path(r),
            off: r.below(9000) as usize,
            data: Data(r.bytes(200)),
        },
        84..=86 => Op::Fallocate {
            p: path(r),
            len: r.below(20_000),
        },
        _ => Op::Project {
            p: path(r),
            data: Data(r.bytes(20_000)),
            mode: *r.pick(&[0o644, 0o755, 0o600]),
            ns: 1_650_000_000_000_000_000 + r.below(1 << 40) as i64,
        },
    }
}

/// The outcome of one operation on one side.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Ok,
    Data(Data),
    Err(i32),
    /// Not comparable (the reference cannot mirror the mount's refusal).
    Skip,
}

fn err(e: std::io::Error) -> Out {
    Out::Err(e.raw_os_error().unwrap_or(-1))
}

fn rerr(e: rustix::io::Errno) -> Out {
    Out::Err(e.raw_os_error())
}

struct Side<'a> {
    root: PathBuf,
    env: Option<&'a Env>,
}

impl Side<'_> {
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn apply(&self, op: &Op) -> Out {
        match op {
            Op::Create {
                p,
                data,
                excl,
                mode,
            } => {
                let mut flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC;
                flags |= if *excl { OFlags::EXCL } else { OFlags::TRUNC };
                match rustix::fs::open(self.p(p), flags, Mode::from_raw_mode(*mode)) {
                    Ok(fd) => match rustix::io::write(&fd, data) {
                        Ok(_) => Out::Ok,
                        Err(e) => rerr(e),
                    },
                    Err(e) => rerr(e),
                }
            }
            Op::Write {
                p,
                off,
                data,
                append,
            } => {
                let mut flags = OFlags::WRONLY | OFlags::CLOEXEC;
                if *append {
                    flags |= OFlags::APPEND;
                }
                match rustix::fs::open(self.p(p), flags, Mode::empty()) {
                    Ok(fd) => {
                        let r = if *append {
                            rustix::io::write(&fd, data)
                        } else {
                            rustix::io::pwrite(&fd, data, *off)
                        };
                        match r {
                            Ok(_) => Out::Ok,
                            Err(e) => rerr(e),
                        }
                    }
                    Err(e) => rerr(e),
                }
            }
            Op::Truncate { p, len } => {
                match rustix::fs::open(self.p(p), OFlags::WRONLY, Mode::empty()) {
                    Ok(fd) => match rustix::fs::ftruncate(&fd, *len) {
                        Ok(()) => Out::Ok,
                        Err(e) => rerr(e),
                    },
                    Err(e) => rerr(e),
                }
            }
            Op::Read { p } => match std::fs::read(self.p(p)) {
                Ok(d) => Out::Data(Data(d)),
                Err(e) => err(e),
            },
            Op::Unlink { p } => match std::fs::remove_file(self.p(p)) {
                Ok(()) => Out::Ok,
                Err(e) => err(e),
            },
            Op::Mkdir { p } => match std::fs::create_dir(self.p(p)) {
                Ok(()) => Out::Ok,
                Err(e) => err(e),
            },
            Op::Rmdir { p } => match std::fs::remove_dir(self.p(p)) {
                Ok(()) => Out::Ok,
                Err(e) => err(e),
            },
            Op::Rename { a, b, flags } => match rustix::fs::renameat_with(
                rustix::fs::CWD,
                self.p(a),
                rustix::fs::CWD,
                self.p(b),
                RenameFlags::from_bits_retain(*flags),
            ) {
                Ok(()) => Out::Ok,
                Err(e) => rerr(e),
            },
            Op::Link { a, b } => match std::fs::hard_link(self.p(a), self.p(b)) {
                Ok(()) => Out::Ok,
                Err(e) => err(e),
            },
            Op::Symlink { p, target } => match std::os::unix::fs::symlink(target, self.p(p)) {
                Ok(()) => Out::Ok,
                Err(e) => err(e),
            },
            Op::Chmod { p, mode } => {
                match rustix::fs::chmodat(
                    rustix::fs::CWD,
                    self.p(p),
                    Mode::from_raw_mode(*mode),
                    AtFlags::empty(),
                ) {
                    Ok(()) => Out::Ok,
                    Err(e) => rerr(e),
                }
            }
            Op::Utime { p, ns } => {
                let t = Timespec {
                    tv_sec: ns / 1_000_000_000,
                    tv_nsec: (ns % 1_000_000_000) as _,
                };
                match rustix::fs::utimensat(
                    rustix::fs::CWD,
                    self.p(p),
                    &Timestamps {
                        last_access: t,
                        last_modification: t,
                    },
                    AtFlags::SYMLINK_NOFOLLOW,
                ) {
                    Ok(()) => Out::Ok,
                    Err(e) => rerr(e),
                }
            }
            Op::MmapWrite { p, off, data } => {
                let f = match std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.p(p))
                {
                    Ok(f) => f,
                    Err(e) => return err(e),
                };
                let len = f.metadata().map(|m| m.len()).unwrap_or(0) as usize;
                if len == 0 || off + data.len() > len {
                    return Out::Skip;
                }
                let mut map = match unsafe { memmap2::MmapMut::map_mut(&f) } {
                    Ok(m) => m,
                    Err(e) => return err(e),
                };
                map[*off..off + data.len()].copy_from_slice(data);
                map.flush().unwrap();
                Out::Ok
            }
            Op::Fallocate { p, len } => {
                match rustix::fs::open(self.p(p), OFlags::WRONLY, Mode::empty()) {
                    Ok(fd) => match rustix::fs::fallocate(
                        &fd,
                        rustix::fs::FallocateFlags::empty(),
                        0,
                        *len,
                    ) {
                        Ok(()) => Out::Ok,
                        Err(e) => rerr(e),
                    },
                    Err(e) => rerr(e),
                }
            }
            Op::Project { p, data, mode, ns } => self.project(p, data, *mode, *ns),
        }
    }

    fn project(&self, p: &str, data: &Data, mode: u32, ns: i64) -> Out {
        let target = self.p(p);
        // The mount refuses to project onto a directory or under a non-directory; the
        // reference mirrors only what the mount does.
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => return Out::Skip,
            _ => {}
        }
        let parent_ok = std::fs::symlink_metadata(target.parent().unwrap())
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if !parent_ok {
            return Out::Skip;
        }
        match self.env {
            Some(env) => {
                let src = env.tmp.path().join("projsrc");
                std::fs::write(&src, &data.0).unwrap();
                let out = env.zcfs(&[
                    "project",
                    self.root.to_str().unwrap(),
                    p,
                    src.to_str().unwrap(),
                    "--mode",
                    &format!("{mode:o}"),
                    &format!("--mtime-ns={ns}"),
                ]);
                assert!(
                    out.status.success(),
                    "project {p}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => {
                let tmp = target.with_extension("projtmp");
                std::fs::write(&tmp, &data.0).unwrap();
                std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .unwrap();
                let t = filetime::FileTime::from_unix_time(
                    ns / 1_000_000_000,
                    (ns % 1_000_000_000) as u32,
                );
                filetime::set_file_times(&tmp, t, t).unwrap();
                std::fs::rename(&tmp, &target).unwrap();
            }
        }
        Out::Ok
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    size: u64,
    mode: u32,
    nlink: u64,
    content: Vec<u8>,
    mtime: Option<(i64, i64)>,
}

/// The whole tree: path → node, plus the hard-link groups (sets of paths sharing an inode).
fn snapshot(
    root: &Path,
    explicit_times: &BTreeMap<String, ()>,
) -> (BTreeMap<String, Node>, Vec<Vec<String>>) {
    let mut nodes = BTreeMap::new();
    let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(&rel))
            .unwrap()
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let r = rel.join(e.file_name());
            let key = r.display().to_string();
            let m = std::fs::symlink_metadata(root.join(&r)).unwrap();
            let kind = if m.is_dir() {
                stack.push(r.clone());
                "dir"
            } else if m.file_type().is_symlink() {
                "symlink"
            } else {
                "file"
            };
            let content = match kind {
                "file" => std::fs::read(root.join(&r)).unwrap(),
                "symlink" => std::fs::read_link(root.join(&r))
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
                _ => vec![],
            };
            if kind != "dir" {
                by_ino.entry(m.ino()).or_default().push(key.clone());
            }
            nodes.insert(
                key.clone(),
                Node {
                    kind,
                    size: if kind == "dir" { 0 } else { m.len() },
                    mode: m.mode() & 0o7777,
                    nlink: m.nlink(),
                    content,
                    mtime: explicit_times
                        .contains_key(&key)
                        .then(|| (m.mtime(), m.mtime_nsec())),
                },
            );
        }
    }
    let mut groups: Vec<Vec<String>> = by_ino.into_values().filter(|g| g.len() > 1).collect();
    for g in &mut groups {
        g.sort();
    }
    groups.sort();
    (nodes, groups)
}

fn run_seed(seed: u64, ops: usize) {
    let env = Env::new();
    let mnt = env.tmp.path().join("mnt");
    let reference = env.tmp.path().join("ref");
    std::fs::create_dir_all(&reference).unwrap();
    let _m = env.mount(&mnt);
    let sides = [
        Side {
            root: mnt.clone(),
            env: Some(&env),
        },
        Side {
            root: reference.clone(),
            env: None,
        },
    ];
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    // Paths whose mtime was set explicitly (utimensat, projection): compared exactly.
    let mut explicit: BTreeMap<String, ()> = BTreeMap::new();
    let mut log: Vec<String> = Vec::new();
    for i in 0..ops {
        let op = random_op(&mut r);
        let a = sides[0].apply(&op);
        let b = sides[1].apply(&op);
        log.push(format!("{i}: {op:?} -> {a:?}"));
        if a == Out::Skip || b == Out::Skip {
            continue;
        }
        if a != b {
            dump_log(seed, &log);
            let tail = log[log.len().saturating_sub(15)..].join("\n");
            panic!("seed {seed} op {i}: mount {a:?} vs ext4 {b:?}\nlast ops:\n{tail}");
        }
        // Times are compared only where they were set explicitly and nothing else touched
        // the file since.
        match &op {
            Op::Utime { p, .. } | Op::Project { p, .. } if a == Out::Ok => {
                explicit.insert(p.clone(), ());
            }
            _ => {
                for p in op_paths(&op) {
                    explicit.remove(&p);
                }
                if matches!(
                    op,
                    Op::Rename { .. } | Op::Link { .. } | Op::Rmdir { .. } | Op::Unlink { .. }
                ) {
                    explicit.clear();
                }
            }
        }
        if i % 25 == 24 || i + 1 == ops {
            let sa = snapshot(&mnt, &explicit);
            let sb = snapshot(&reference, &explicit);
            if sa != sb {
                for (k, v) in &sa.0 {
                    if sb.0.get(k) != Some(v) {
                        eprintln!("differs at {k}: mount {v:?}\n  ext4 {:?}", sb.0.get(k));
                    }
                }
                for k in sb.0.keys() {
                    if !sa.0.contains_key(k) {
                        eprintln!("missing on the mount: {k}");
                    }
                }
                dump_log(seed, &log);
                let tail = log[log.len().saturating_sub(25)..].join("\n");
                panic!(
                    "seed {seed}: trees differ after op {i}\nlinks {:?} vs {:?}\n{tail}",
                    sa.1, sb.1
                );
            }
        }
    }
}

/// Writes the whole op log of a failing seed next to the test's temp dirs.
fn dump_log(seed: u64, log: &[String]) {
    let p = std::env::temp_dir().join(format!("zcfs-differential-seed{seed}.log"));
    let _ = std::fs::write(&p, log.join("\n"));
    eprintln!("full op log: {}", p.display());
}

fn op_paths(op: &Op) -> Vec<String> {
    match op {
        Op::Create { p, .. }
        | Op::Write { p, .. }
        | Op::Truncate { p, .. }
        | Op::Read { p }
        | Op::Unlink { p }
        | Op::Mkdir { p }
        | Op::Rmdir { p }
        | Op::Symlink { p, .. }
        | Op::Chmod { p, .. }
        | Op::Utime { p, .. }
        | Op::MmapWrite { p, .. }
        | Op::Fallocate { p, .. }
        | Op::Project { p, .. } => vec![p.clone()],
        Op::Rename { a, b, .. } | Op::Link { a, b } => vec![a.clone(), b.clone()],
    }
}

#[test]
fn random_operations_match_ext4() {
    let ops: usize = std::env::var("ZCFS_DIFF_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2500);
    let seeds: u64 = std::env::var("ZCFS_DIFF_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let first: u64 = std::env::var("ZCFS_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for seed in first..first + seeds {
        run_seed(seed, ops);
    }
}
