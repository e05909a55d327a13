//! The POSIX mount model (Linux): an overlay of real files (in the lower dir, reached
//! beneath its root fd) and projected entries (slices of packs). Its channel
//! (`platform/fuse`) translates FUSE requests into calls here.
//!
//! Invariants: `docs/mount.md`. Locking: one table lock, held for namespace operations (a
//! few metadata syscalls on the lower dir), never while file data is read, copied or
//! written, nor while a directory is read, nor while the kernel is notified. The journal
//! lock is only taken under the table lock.
//!
//! Rooms: `model` (what a projection is, shared by both mount models) and `journal` (its
//! persistence by path) stand apart from the POSIX overlay: `table` (inodes), `attr`
//! (attributes), `namespace` (names, links, renames), `io` (handles and file I/O), `dir`
//! (directory listings), `copyup` (projected → real), `persist` (journal replay and
//! compaction from the table), `project` (the daemon's side: projections, conversions).

mod attr;
mod copyup;
mod core;
mod dir;
mod io;
mod namespace;
mod persist;
mod project;
pub mod table;
pub mod types;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rustix::fs::{AtFlags, Mode, OFlags};

use crate::fsutil::{KernelClock, NanoTime};
use crate::hash::Digest;
pub use crate::mount::contract::{LoadReport, Usage};
pub use crate::projection::{
    KeptReal, Meta, ProjectError, ProjectItem, Projection, journal, model,
};
use crate::store::pack::{Pack, PackSource};
use journal::Journal;
use table::{LowerId, Table};
pub use types::*;

/// An invalidation of the kernel's cached view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inval {
    /// A name in a directory (positive or negative dentry).
    Entry(Ino, OsString),
    /// An inode's attributes.
    Inode(Ino),
}

/// How the core tells the kernel that something changed behind its back. Implemented by
/// the adapter; calls are never made under the table lock.
pub trait Notify: Send + Sync {
    /// Sends invalidations and waits until the kernel processed every one. An error means
    /// the kernel refused one or did not answer in time: its caches may still show the old
    /// state, and the caller must not report success for what depended on them.
    fn invalidate(&self, invals: Vec<Inval>) -> Result<(), String>;
    /// Queues an invalidation of an inode's attributes without waiting (best effort: for
    /// changes the kernel would otherwise only see when its attribute TTL ends).
    fn inval_inode_later(&self, ino: Ino);
}

/// A [`Notify`] for when no kernel is attached (before mounting, tests).
pub struct NoNotify;
impl Notify for NoNotify {
    fn invalidate(&self, _: Vec<Inval>) -> Result<(), String> {
        Ok(())
    }
    fn inval_inode_later(&self, _: Ino) {}
}

/// Who asked for a change: new files and directories belong to the caller, as on a local
/// filesystem (matters on mounts shared with other users, `--allow-other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug)]
enum HandleState {
    Projected(Arc<Pack>, usize),
    Real(Arc<File>),
    Dir(Vec<DirEntry>),
}

#[derive(Debug)]
struct Handle {
    ino: Ino,
    passthrough: bool,
    /// Opened for writing: on release, the kernel's cached attributes of the inode are
    /// dropped (writes through a passthrough mmap change mtime behind its back).
    write: bool,
    state: Mutex<HandleState>,
}

#[derive(Default)]
struct Counters {
    requests: [AtomicU64; RequestKind::ALL.len()],
    opens_passthrough: AtomicU64,
    opens_cached: AtomicU64,
    copy_ups: AtomicU64,
    bytes_served: AtomicU64,
}

/// The journal and whether it lags behind the table (an append failed and no compaction
/// has succeeded since).
struct JournalState {
    journal: Option<Journal>,
    broken: bool,
    last_heal: Option<std::time::Instant>,
}

pub struct Vfs {
    table: Mutex<Table>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    journal: Mutex<JournalState>,
    next_proj: AtomicU64,
    clock: KernelClock,
    notify: Mutex<Arc<dyn Notify>>,
    root_fd: Arc<OwnedFd>,
    uid: u32,
    gid: u32,
    counters: Counters,
    /// Set by the adapter when the kernel accepted passthrough.
    pub passthrough_enabled: std::sync::atomic::AtomicBool,
    /// This process's umask: the kernel already applied the caller's umask to modes it
    /// sends; bits ours would strip are restored with chmod.
    umask: u32,
    /// Test hook: runs while copy-up copies (without the table lock).
    #[cfg(test)]
    copy_hook: Mutex<Option<Box<dyn Fn() + Send>>>,
}

fn to_errno(e: std::io::Error) -> Errno {
    Errno::from_io_error(&e).unwrap_or(Errno::IO)
}

fn ns(sec: i64, nsec: u64) -> NanoTime {
    sec as i128 * 1_000_000_000 + nsec as i128
}

fn attr_from_stat(ino: Ino, st: &rustix::fs::Stat) -> Attr {
    Attr {
        ino,
        kind: FileKind::from_mode(st.st_mode),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: ns(st.st_atime, st.st_atime_nsec),
        mtime: ns(st.st_mtime, st.st_mtime_nsec),
        ctime: ns(st.st_ctime, st.st_ctime_nsec),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
    }
}

fn lower_id(st: &rustix::fs::Stat) -> LowerId {
    (st.st_dev, st.st_ino)
}

fn is_dir(st: &rustix::fs::Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn statat(dirfd: &OwnedFd, name: &OsStr) -> VResult<rustix::fs::Stat> {
    rustix::fs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW)
}

/// `/proc/self/fd/N` for an fd (lets chmod, chown, utimensat reach an `O_PATH` directory).
fn proc_fd(fd: &impl std::os::fd::AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn valid_name(name: &OsStr) -> VResult<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(Errno::INVAL);
    }
    if b.len() > 255 {
        return Err(Errno::NAMETOOLONG);
    }
    Ok(())
}

/// This process's umask, read without changing it (`umask(2)` would, for every thread).
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// How many directory fds a mount may keep open: a sixteenth of the open-file limit
/// (the daemon raises it to the hard limit at start), within [16, 1024].
fn dir_fd_cap() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20);
    (limit / 16).clamp(16, 1024) as usize
}

/// A new unnamed file in the directory `dir` (`O_TMPFILE`; a hidden named file where the
/// filesystem has no unnamed ones). Linked in with [`TempFile::link_at`].
struct TempFile {
    file: File,
    /// The temporary name, for filesystems without `O_TMPFILE`.
    name: Option<OsString>,
    dir: Arc<OwnedFd>,
}

impl TempFile {
    fn create(dir: Arc<OwnedFd>, tag: &str, counter: &AtomicU64) -> VResult<TempFile> {
        Self::make(dir, tag, counter, false)
    }

    /// A temp file with a (hidden) name, so that it can replace a file by a rename.
    fn create_named(dir: Arc<OwnedFd>, tag: &str, counter: &AtomicU64) -> VResult<TempFile> {
        Self::make(dir, tag, counter, true)
    }

    fn make(dir: Arc<OwnedFd>, tag: &str, counter: &AtomicU64, named: bool) -> VResult<TempFile> {
        if named {
            return Self::make_named(dir, tag, counter);
        }
        match rustix::fs::openat(
            &*dir,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => {
                return Ok(TempFile {
                    file: File::from(fd),
                    name: None,
                    dir,
                });
            }
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
        Self::make_named(dir, tag, counter)
    }

    fn make_named(dir: Arc<OwnedFd>, tag: &str, counter: &AtomicU64) -> VResult<TempFile> {
        let name = OsString::from(format!(
            ".zcfs-{tag}-{}-{}",
            std::process::id(),
            counter.fetch_add(1, Ordering::Relaxed)
        ));
        let fd = rustix::fs::openat(
            &*dir,
            &name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(TempFile {
            file: File::from(fd),
            name: Some(name),
            dir,
        })
    }

    /// Gives the file the name `name` in `dir`, which must not exist (`replace`: or replaces
    /// it, for a named temp only).
    fn link_at(&self, dir: &OwnedFd, name: &OsStr, replace: bool) -> VResult<()> {
        match &self.name {
            None => rustix::fs::linkat(
                rustix::fs::CWD,
                proc_fd(&self.file),
                dir,
                name,
                AtFlags::SYMLINK_FOLLOW,
            ),
            Some(tmp) => {
                if replace {
                    rustix::fs::renameat(&*self.dir, tmp, dir, name)
                } else {
                    rustix::fs::renameat_with(
                        &*self.dir,
                        tmp,
                        dir,
                        name,
                        rustix::fs::RenameFlags::NOREPLACE,
                    )
                }
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(n) = &self.name {
            // Only still there if it was not linked in.
            let _ = rustix::fs::unlinkat(&*self.dir, n, AtFlags::empty());
        }
    }
}

impl Vfs {
    /// A core over the lower directory `root` (opened before mounting), journaling to
    /// `journal` and stamping times with `clock`. Replays the journal: projections whose pack
    /// is gone, whose directory is gone, or whose name is taken by a real file are dropped,
    /// and the journal is rewritten from what was restored.
    pub fn new(
        root: OwnedFd,
        journal_path: Option<&std::path::Path>,
        clock: KernelClock,
        packs: &dyn PackSource,
    ) -> std::io::Result<(Vfs, LoadReport)> {
        let st = rustix::fs::fstat(&root)?;
        let root = Arc::new(root);
        let table = Table::new(root.clone(), lower_id(&st), dir_fd_cap());
        let vfs = Vfs {
            table: Mutex::new(table),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            journal: Mutex::new(JournalState {
                journal: None,
                broken: false,
                last_heal: None,
            }),
            next_proj: AtomicU64::new(1),
            clock,
            notify: Mutex::new(Arc::new(NoNotify)),
            root_fd: root,
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            counters: Counters::default(),
            passthrough_enabled: Default::default(),
            umask: current_umask(),
            #[cfg(test)]
            copy_hook: Mutex::new(None),
        };
        let mut report = LoadReport::default();
        if let Some(p) = journal_path {
            let (j, state) = Journal::open(p)?;
            report = vfs.replay(&state, packs);
            // What replay dropped is still on disk: until the table is written over it,
            // the journal lags (and is emptied if it cannot be rewritten).
            {
                let mut js = vfs.journal.lock();
                js.journal = Some(j);
                js.broken = true;
            }
            vfs.compact_journal();
        }
        Ok((vfs, report))
    }

    pub fn set_notify(&self, n: Arc<dyn Notify>) {
        *self.notify.lock() = n;
    }

    fn notifier(&self) -> Arc<dyn Notify> {
        self.notify.lock().clone()
    }

    /// The kernel's file clock, now (spec M4).
    pub fn now(&self) -> NanoTime {
        self.clock.now().unwrap_or(0)
    }

    /// The kernel file clock, or why it cannot be read.
    pub fn try_now(&self) -> std::io::Result<NanoTime> {
        self.clock.now()
    }

    /// Counts one request of the adapter (see `zcfs status --json`).
    pub fn count_request(&self, kind: RequestKind) {
        self.counters.requests[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn usage(&self) -> Usage {
        let t = self.table.lock();
        let c = &self.counters;
        let requests = RequestKind::ALL
            .iter()
            .filter_map(|k| {
                let n = c.requests[*k as usize].load(Ordering::Relaxed);
                (n > 0).then_some((k.name(), n))
            })
            .collect();
        let mut u = Usage {
            nodes: t.nodes.len() as u64,
            dir_fds: t.open_dir_fds() as u64,
            opens_passthrough: c.opens_passthrough.load(Ordering::Relaxed),
            opens_cached: c.opens_cached.load(Ordering::Relaxed),
            copy_ups: c.copy_ups.load(Ordering::Relaxed),
            bytes_served: c.bytes_served.load(Ordering::Relaxed),
            requests,
            ..Usage::default()
        };
        for n in t.nodes.values() {
            if let table::NodeKind::File(f) = &n.kind
                && let Some(p) = f.projection()
                && !f.names.is_empty()
            {
                u.projections += 1;
                u.projected_bytes += p.size;
            }
        }
        u
    }

    /// Disk space of the real files under the mount (hard links counted once), read
    /// through the lower root fd.
    pub fn real_bytes(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let mut seen = std::collections::HashSet::new();
        let mut total = 0u64;
        let mut stack = vec![proc_fd(&*self.root_fd)];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(m) = e.metadata() else { continue };
                if m.is_dir() {
                    stack.push(e.path());
                } else if (m.nlink() == 1 || seen.insert((m.dev(), m.ino()))) && m.is_file() {
                    total += m.blocks() * 512;
                }
            }
        }
        total
    }

    /// Packs that projections use.
    pub fn packs_in_use(&self) -> Vec<Digest> {
        let t = self.table.lock();
        let mut v: Vec<Digest> = t
            .nodes
            .values()
            .filter_map(|n| match &n.kind {
                table::NodeKind::File(f) => f.projection().map(|p| p.pack.id),
                _ => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn statfs(&self) -> VResult<StatFs> {
        let s = rustix::fs::fstatvfs(&*self.root_fd)?;
        Ok(StatFs {
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: s.f_bsize as u32,
            namelen: s.f_namemax as u32,
            frsize: s.f_frsize as u32,
        })
    }

    /// Tells the kernel, and waits until it knows. An error if it did not confirm.
    fn send_invals(&self, invals: Vec<Inval>) -> Result<(), String> {
        if invals.is_empty() {
            return Ok(());
        }
        self.notifier().invalidate(invals)
    }

    #[cfg(test)]
    fn set_copy_hook(&self, f: impl Fn() + Send + 'static) {
        *self.copy_hook.lock() = Some(Box::new(f));
    }
}

/// What a name refers to.
enum Target {
    Projected(Ino),
    Real(Box<rustix::fs::Stat>),
    Missing,
}

impl Target {
    fn same_as(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::Projected(a), Target::Projected(b)) => a == b,
            (Target::Real(a), Target::Real(b)) => lower_id(a) == lower_id(b),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
