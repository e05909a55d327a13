//! The protocol-neutral core of the mount: an overlay of real files (in the lower dir,
//! reached through directory fds) and projected entries (slices of packs). Protocol
//! adapters (`platform/fuse`) translate requests into calls here.
//!
//! Invariants: `docs/mount.md`. Locking: one table lock, held for namespace operations and
//! never while file data is read or written, nor while the kernel is notified.

pub mod journal;
mod project;
pub mod table;
pub mod types;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, Timespec, Timestamps};
use tracing::{debug, warn};

use crate::fsutil::{KernelClock, NanoTime, clone_or_copy, timespec};
use crate::hash::Digest;
use crate::store::pack::Pack;
use journal::{Journal, Meta, Record};
pub use project::{KeptReal, PathTarget, ProjectError, ProjectItem};
use table::{Content, DirNode, FileNode, LowerId, Node, NodeKind, Projection, Table};
pub use types::*;

/// Where the core gets packs from (the store, in the daemon).
pub trait PackSource: Send + Sync {
    fn open(&self, id: &Digest) -> Option<Arc<Pack>>;
}

/// How the core tells the kernel that something changed behind its back. Implemented by
/// the adapter with a queue and a thread; calls never block on the kernel.
pub trait Notify: Send + Sync {
    fn inval_entry(&self, parent: Ino, name: &OsStr);
    fn inval_inode(&self, ino: Ino);
    /// Waits until everything queued before this call reached the kernel.
    fn sync(&self);
}

/// A [`Notify`] for when no kernel is attached (before mounting, tests).
pub struct NoNotify;
impl Notify for NoNotify {
    fn inval_entry(&self, _: Ino, _: &OsStr) {}
    fn inval_inode(&self, _: Ino) {}
    fn sync(&self) {}
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

/// Counts of what a mount holds and how its files were opened.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Usage {
    pub projections: u64,
    pub projected_bytes: u64,
    pub nodes: u64,
    pub opens_passthrough: u64,
    pub opens_cached: u64,
    pub copy_ups: u64,
    /// Bytes the daemon itself read or wrote for cached opens.
    pub bytes_served: u64,
    /// Requests received, by kind (kinds never seen are left out).
    pub requests: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct Counters {
    requests: [AtomicU64; RequestKind::ALL.len()],
    opens_passthrough: AtomicU64,
    opens_cached: AtomicU64,
    copy_ups: AtomicU64,
    bytes_served: AtomicU64,
}

pub struct Vfs {
    table: Mutex<Table>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    journal: Mutex<Option<Journal>>,
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

fn open_dir_path(parent: &OwnedFd, name: &OsStr) -> VResult<OwnedFd> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// `/proc/self/fd/N` for an fd (lets chmod, chown, utimensat reach an `O_PATH` directory).
fn proc_fd(fd: &OwnedFd) -> PathBuf {
    use std::os::fd::AsRawFd;
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

impl Vfs {
    /// A core over the lower directory `root` (opened before mounting), journaling to
    /// `journal` and stamping times with `clock`. Replays the journal: projections whose pack
    /// is gone, whose directory is gone, or whose name is taken by a real file are dropped.
    pub fn new(
        root: OwnedFd,
        journal_path: Option<&Path>,
        clock: KernelClock,
        packs: &dyn PackSource,
    ) -> std::io::Result<(Vfs, LoadReport)> {
        let st = rustix::fs::fstat(&root)?;
        let root = Arc::new(root);
        let table = Table::new(DirNode {
            fd: root.clone(),
            parent: ROOT,
            name: OsString::new(),
            lower: lower_id(&st),
            projected: Default::default(),
            removed: false,
        });
        let mask = rustix::process::umask(Mode::empty());
        rustix::process::umask(mask);
        let vfs = Vfs {
            table: Mutex::new(table),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            journal: Mutex::new(None),
            next_proj: AtomicU64::new(1),
            clock,
            notify: Mutex::new(Arc::new(NoNotify)),
            root_fd: root,
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            counters: Counters::default(),
            passthrough_enabled: Default::default(),
            umask: mask.bits(),
        };
        let mut report = LoadReport::default();
        if let Some(p) = journal_path {
            let j = Journal::open(p)?;
            report = vfs.replay(&j.state, packs);
            *vfs.journal.lock() = Some(j);
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

    fn journal(&self, r: Record) {
        if let Some(j) = self.journal.lock().as_mut()
            && let Err(e) = j.append(r)
        {
            warn!("journal append failed: {e}");
        }
    }

    /// Rewrites the journal as a snapshot.
    pub fn compact_journal(&self) {
        if let Some(j) = self.journal.lock().as_mut()
            && let Err(e) = j.compact()
        {
            warn!("journal compaction failed: {e}");
        }
    }

    /// The kernel's file clock, now (spec M4).
    pub fn now(&self) -> NanoTime {
        self.clock.now().unwrap_or(0)
    }

    /// The kernel file clock, or why it cannot be read.
    pub fn try_now(&self) -> std::io::Result<NanoTime> {
        self.clock.now()
    }

    // ----- attributes -------------------------------------------------------------------

    fn proj_attr(ino: Ino, f: &FileNode, p: &Projection) -> Attr {
        Attr {
            ino,
            kind: FileKind::Regular,
            size: p.size,
            blocks: p.size.div_ceil(512),
            atime: p.atime,
            mtime: p.mtime,
            ctime: p.ctime,
            perm: p.perm,
            nlink: f.names.len() as u32,
            uid: p.uid,
            gid: p.gid,
            rdev: 0,
            blksize: 4096,
        }
    }

    fn node_attr(&self, t: &Table, ino: Ino) -> VResult<Entry> {
        let node = t.get(ino)?;
        match &node.kind {
            NodeKind::Dir(d) => Ok(Entry {
                attr: attr_from_stat(ino, &rustix::fs::fstat(&*d.fd)?),
                cache: Cache::Long,
            }),
            NodeKind::File(f) => match &f.content {
                Content::Projected(p) => Ok(Entry {
                    attr: Self::proj_attr(ino, f, p),
                    cache: Cache::Long,
                }),
                Content::Real => {
                    if let Some((parent, name)) = f.names.first() {
                        let fd = t.dir_fd(*parent)?;
                        let st = statat(&fd, name)?;
                        return Ok(Entry {
                            attr: attr_from_stat(ino, &st),
                            cache: Cache::Long,
                        });
                    }
                    // No name left: an open handle still reaches the file.
                    if let Some(file) = self.any_real_handle(ino) {
                        let st = rustix::fs::fstat(&*file)?;
                        return Ok(Entry {
                            attr: attr_from_stat(ino, &st),
                            cache: Cache::Short,
                        });
                    }
                    f.last_attr
                        .map(|attr| Entry {
                            attr,
                            cache: Cache::Short,
                        })
                        .ok_or(Errno::STALE)
                }
            },
        }
    }

    fn any_real_handle(&self, ino: Ino) -> Option<Arc<File>> {
        let handles = self.handles.lock();
        handles
            .values()
            .filter(|h| h.ino == ino)
            .find_map(|h| match &*h.state.lock() {
                HandleState::Real(f) => Some(f.clone()),
                _ => None,
            })
    }

    /// The node for a real lower entry `name` in `parent` with stat `st`; creates it (and
    /// records the name) as needed.
    fn real_node(
        &self,
        t: &mut Table,
        parent: Ino,
        name: &OsStr,
        st: &rustix::fs::Stat,
    ) -> VResult<Ino> {
        let id = lower_id(st);
        let ino = t.ino_for_lower(id);
        if let Some(node) = t.nodes.get_mut(&ino) {
            match &mut node.kind {
                NodeKind::File(f) => {
                    if !f.names.iter().any(|(p, n)| *p == parent && n == name) {
                        f.names.push((parent, name.to_os_string()));
                    }
                    f.lower = Some(id);
                }
                NodeKind::Dir(d) => {
                    d.parent = parent;
                    d.name = name.to_os_string();
                }
            }
            return Ok(ino);
        }
        let kind = if is_dir(st) {
            let pfd = t.dir_fd(parent)?;
            NodeKind::Dir(DirNode {
                fd: Arc::new(open_dir_path(&pfd, name)?),
                parent,
                name: name.to_os_string(),
                lower: id,
                projected: Default::default(),
                removed: false,
            })
        } else {
            NodeKind::File(FileNode {
                names: vec![(parent, name.to_os_string())],
                content: Content::Real,
                lower: Some(id),
                kind: FileKind::from_mode(st.st_mode),
                cached_opens: 0,
                passthrough_opens: 0,
                last_attr: None,
            })
        };
        t.nodes.insert(ino, Node { kind, nlookup: 0 });
        Ok(ino)
    }

    // ----- lookup, forget, getattr, setattr ----------------------------------------------

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> VResult<Entry> {
        valid_name(name)?;
        let mut t = self.table.lock();
        let Some(ino) = t.projected_child(parent, name)? else {
            // A real name: one stat gives both its node and its attributes.
            return self.new_entry(&mut t, parent, name);
        };
        let e = self.node_attr(&t, ino)?;
        t.get_mut(ino)?.nlookup += 1;
        Ok(e)
    }

    pub fn forget(&self, ino: Ino, n: u64) {
        let mut t = self.table.lock();
        if let Some(node) = t.nodes.get_mut(&ino) {
            node.nlookup = node.nlookup.saturating_sub(n);
        }
        t.maybe_free(ino);
    }

    pub fn getattr(&self, ino: Ino) -> VResult<Entry> {
        let t = self.table.lock();
        self.node_attr(&t, ino)
    }

    pub fn setattr(&self, ino: Ino, s: SetAttr) -> VResult<Entry> {
        let mut t = self.table.lock();
        if let Some(size) = s.size {
            let node = t.get(ino)?;
            if node.is_dir() {
                return Err(Errno::ISDIR);
            }
            if matches!(node.file()?.content, Content::Projected(_)) {
                self.copy_up(&mut t, ino, size == 0)?;
            }
        }
        let now = self.now();
        let time = |ts: Option<TimeSet>| -> Option<NanoTime> {
            ts.map(|t| match t {
                TimeSet::Now => now,
                TimeSet::At(v) => v,
            })
        };
        let node = t.get(ino)?;
        match &node.kind {
            NodeKind::File(f) if matches!(f.content, Content::Projected(_)) => {
                let node = t.get_mut(ino)?;
                let f = node.file_mut()?;
                let Content::Projected(p) = &mut f.content else {
                    unreachable!()
                };
                if let Some(m) = s.mode {
                    p.perm = (m & 0o7777) as u16;
                }
                if let Some(u) = s.uid {
                    p.uid = u;
                }
                if let Some(g) = s.gid {
                    p.gid = g;
                    if s.uid.is_none() && p.perm & 0o6000 != 0 {
                        p.perm &= !0o6000;
                    }
                }
                if let Some(a) = time(s.atime) {
                    p.atime = a;
                }
                if let Some(m) = time(s.mtime) {
                    p.mtime = m;
                }
                p.ctime = now;
                let (id, meta) = (
                    p.id,
                    Meta {
                        perm: p.perm,
                        uid: p.uid,
                        gid: p.gid,
                        atime: p.atime,
                        mtime: p.mtime,
                        ctime: p.ctime,
                    },
                );
                self.journal(Record::SetMeta { id, meta });
            }
            NodeKind::File(f) => {
                let handle_file = s.fh.and_then(|fh| self.handle_real_file(fh));
                let (dirfd, name) = match f.names.first() {
                    Some((p, n)) => (Some(t.dir_fd(*p)?), n.clone()),
                    None => (None, OsString::new()),
                };
                if let Some(size) = s.size {
                    match (&handle_file, &dirfd) {
                        (Some(file), _) => rustix::fs::ftruncate(&**file, size)?,
                        (None, Some(d)) => {
                            let fd = rustix::fs::openat(
                                &**d,
                                &name,
                                OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                                Mode::empty(),
                            )?;
                            rustix::fs::ftruncate(&fd, size)?;
                        }
                        (None, None) => return Err(Errno::STALE),
                    }
                }
                if let Some(d) = &dirfd {
                    Self::real_setattr_at(&**d, &name, &s, f.kind == FileKind::Symlink, false)?;
                } else if let Some(file) = &handle_file {
                    Self::real_setattr_fd(file, &s)?;
                } else if s.mode.is_some() || s.uid.is_some() || s.gid.is_some() {
                    return Err(Errno::STALE);
                }
            }
            NodeKind::Dir(d) => {
                let p = proc_fd(&d.fd);
                Self::real_setattr_at(rustix::fs::CWD, p.as_os_str(), &s, false, true)?;
            }
        }
        self.node_attr(&t, ino)
    }

    fn handle_real_file(&self, fh: u64) -> Option<Arc<File>> {
        let h = self.handles.lock().get(&fh).cloned()?;
        match &*h.state.lock() {
            HandleState::Real(f) => Some(f.clone()),
            _ => None,
        }
    }

    fn timestamps(s: &SetAttr) -> Option<Timestamps> {
        if s.atime.is_none() && s.mtime.is_none() {
            return None;
        }
        let conv = |t: Option<TimeSet>| match t {
            None => Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            Some(TimeSet::Now) => Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            },
            Some(TimeSet::At(v)) => timespec(v),
        };
        Some(Timestamps {
            last_access: conv(s.atime),
            last_modification: conv(s.mtime),
        })
    }

    /// chown/chmod/utimens of `name` in `dirfd`. `follow`: the name is a
    /// `/proc/self/fd/N` link to follow (directories); otherwise a symlink itself is changed.
    fn real_setattr_at(
        dirfd: impl AsFd,
        name: &OsStr,
        s: &SetAttr,
        symlink: bool,
        follow: bool,
    ) -> VResult<()> {
        let dirfd = dirfd.as_fd();
        let at = if follow {
            AtFlags::empty()
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        if s.uid.is_some() || s.gid.is_some() {
            rustix::fs::chownat(
                dirfd,
                name,
                s.uid.map(rustix::process::Uid::from_raw),
                s.gid.map(rustix::process::Gid::from_raw),
                at,
            )?;
        }
        if let Some(m) = s.mode
            && !symlink
        {
            rustix::fs::chmodat(
                dirfd,
                name,
                Mode::from_raw_mode(m & 0o7777),
                AtFlags::empty(),
            )?;
        }
        if let Some(ts) = Self::timestamps(s) {
            rustix::fs::utimensat(dirfd, name, &ts, at)?;
        }
        Ok(())
    }

    fn real_setattr_fd(file: &File, s: &SetAttr) -> VResult<()> {
        if s.uid.is_some() || s.gid.is_some() {
            rustix::fs::fchown(
                file,
                s.uid.map(rustix::process::Uid::from_raw),
                s.gid.map(rustix::process::Gid::from_raw),
            )?;
        }
        if let Some(m) = s.mode {
            rustix::fs::fchmod(file, Mode::from_raw_mode(m & 0o7777))?;
        }
        if let Some(ts) = Self::timestamps(s) {
            rustix::fs::futimens(file, &ts)?;
        }
        Ok(())
    }

    pub fn readlink(&self, ino: Ino) -> VResult<Vec<u8>> {
        let t = self.table.lock();
        let f = t.get(ino)?.file()?;
        let (p, n) = f.names.first().ok_or(Errno::STALE)?;
        let fd = t.dir_fd(*p)?;
        Ok(rustix::fs::readlinkat(&*fd, n, Vec::new())?.into_bytes())
    }

    // ----- namespace --------------------------------------------------------------------

    /// Restores mode bits our own umask stripped from a newly created lower entry.
    fn fix_mode(&self, dirfd: &OwnedFd, name: &OsStr, mode: u32) -> VResult<()> {
        if mode & self.umask & 0o7777 != 0 {
            rustix::fs::chmodat(
                dirfd,
                name,
                Mode::from_raw_mode(mode & 0o7777),
                AtFlags::empty(),
            )?;
        }
        Ok(())
    }

    fn new_entry(&self, t: &mut Table, parent: Ino, name: &OsStr) -> VResult<Entry> {
        let fd = t.dir_fd(parent)?;
        let st = statat(&fd, name)?;
        let ino = self.real_node(t, parent, name, &st)?;
        t.get_mut(ino)?.nlookup += 1;
        Ok(Entry {
            attr: attr_from_stat(ino, &st),
            cache: Cache::Long,
        })
    }

    pub fn mknod(&self, parent: Ino, name: &OsStr, mode: u32, rdev: u32) -> VResult<Entry> {
        valid_name(name)?;
        let mut t = self.table.lock();
        if t.projected_child(parent, name)?.is_some() {
            return Err(Errno::EXIST);
        }
        let fd = t.dir_fd(parent)?;
        let kind = rustix::fs::FileType::from_raw_mode(mode);
        rustix::fs::mknodat(
            &*fd,
            name,
            kind,
            Mode::from_raw_mode(mode & 0o7777),
            rdev as u64,
        )?;
        self.fix_mode(&fd, name, mode)?;
        self.new_entry(&mut t, parent, name)
    }

    pub fn mkdir(&self, parent: Ino, name: &OsStr, mode: u32) -> VResult<Entry> {
        valid_name(name)?;
        let mut t = self.table.lock();
        if t.projected_child(parent, name)?.is_some() {
            return Err(Errno::EXIST);
        }
        let fd = t.dir_fd(parent)?;
        rustix::fs::mkdirat(&*fd, name, Mode::from_raw_mode(mode & 0o7777))?;
        self.fix_mode(&fd, name, mode)?;
        self.new_entry(&mut t, parent, name)
    }

    pub fn symlink(&self, parent: Ino, name: &OsStr, target: &Path) -> VResult<Entry> {
        valid_name(name)?;
        let mut t = self.table.lock();
        if t.projected_child(parent, name)?.is_some() {
            return Err(Errno::EXIST);
        }
        let fd = t.dir_fd(parent)?;
        rustix::fs::symlinkat(target, &*fd, name)?;
        self.new_entry(&mut t, parent, name)
    }

    /// A directory's entries changed without its lower directory changing (a projected name
    /// came, went or moved): stamp its mtime and ctime as the kernel would.
    fn touch_dir(t: &Table, dir: Ino) {
        let Ok(fd) = t.dir_fd(dir) else { return };
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        let omit = Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        };
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            proc_fd(&fd),
            &Timestamps {
                last_access: omit,
                last_modification: now,
            },
            AtFlags::empty(),
        );
    }

    /// Removes a projected name (the projection lives on while it has names or handles).
    fn remove_projected_name(
        &self,
        t: &mut Table,
        parent: Ino,
        name: &OsStr,
        ino: Ino,
    ) -> VResult<()> {
        let path = t.dir_path(parent)?.join(name);
        t.get_mut(parent)?.dir_mut()?.projected.remove(name);
        Self::touch_dir(t, parent);
        let now = self.now();
        let node = t.get_mut(ino)?;
        let f = node.file_mut()?;
        f.names.retain(|(p, n)| !(*p == parent && n == name));
        if let Content::Projected(p) = &mut f.content {
            p.ctime = now;
        }
        self.journal(Record::RemoveName {
            path: journal::path_bytes(&path),
        });
        t.maybe_free(ino);
        Ok(())
    }

    /// Bookkeeping after a real lower name was removed (unlink, rename over).
    fn real_name_removed(&self, t: &mut Table, parent: Ino, name: &OsStr, st: &rustix::fs::Stat) {
        let id = lower_id(st);
        if let Some(&ino) = t.by_lower.get(&id) {
            if let Some(node) = t.nodes.get_mut(&ino) {
                match &mut node.kind {
                    NodeKind::File(f) => {
                        f.names.retain(|(p, n)| !(*p == parent && n == name));
                        let mut attr = attr_from_stat(ino, st);
                        attr.nlink = attr.nlink.saturating_sub(1);
                        f.last_attr = Some(attr);
                    }
                    NodeKind::Dir(d) => d.removed = true,
                }
            }
            if st.st_nlink <= 1 || is_dir(st) {
                t.lower_gone(id);
            }
            t.maybe_free(ino);
        }
    }

    pub fn unlink(&self, parent: Ino, name: &OsStr) -> VResult<()> {
        valid_name(name)?;
        let mut t = self.table.lock();
        if let Some(ino) = t.projected_child(parent, name)? {
            return self.remove_projected_name(&mut t, parent, name, ino);
        }
        let fd = t.dir_fd(parent)?;
        let st = statat(&fd, name)?;
        if is_dir(&st) {
            return Err(Errno::ISDIR);
        }
        rustix::fs::unlinkat(&*fd, name, AtFlags::empty())?;
        self.real_name_removed(&mut t, parent, name, &st);
        Ok(())
    }

    /// Whether a directory (by lower stat) has projected children.
    fn has_projected_children(t: &Table, st: &rustix::fs::Stat) -> bool {
        t.by_lower
            .get(&lower_id(st))
            .and_then(|ino| t.nodes.get(ino))
            .and_then(|n| n.dir().ok())
            .is_some_and(|d| !d.projected.is_empty())
    }

    pub fn rmdir(&self, parent: Ino, name: &OsStr) -> VResult<()> {
        valid_name(name)?;
        let mut t = self.table.lock();
        if t.projected_child(parent, name)?.is_some() {
            return Err(Errno::NOTDIR);
        }
        let fd = t.dir_fd(parent)?;
        let st = statat(&fd, name)?;
        if !is_dir(&st) {
            return Err(Errno::NOTDIR);
        }
        if Self::has_projected_children(&t, &st) {
            return Err(Errno::NOTEMPTY);
        }
        rustix::fs::unlinkat(&*fd, name, AtFlags::REMOVEDIR)?;
        self.real_name_removed(&mut t, parent, name, &st);
        Ok(())
    }

    pub fn link(&self, ino: Ino, newparent: Ino, newname: &OsStr) -> VResult<Entry> {
        valid_name(newname)?;
        let mut t = self.table.lock();
        let newfd = t.dir_fd(newparent)?;
        if t.projected_child(newparent, newname)?.is_some() {
            return Err(Errno::EXIST);
        }
        let node = t.get(ino)?;
        let f = node.file().map_err(|_| Errno::PERM)?;
        match &f.content {
            Content::Projected(p) => {
                if statat(&newfd, newname).is_ok() {
                    return Err(Errno::EXIST);
                }
                let id = p.id;
                let path = t.dir_path(newparent)?.join(newname);
                t.get_mut(newparent)?
                    .dir_mut()?
                    .projected
                    .insert(newname.to_os_string(), ino);
                Self::touch_dir(&t, newparent);
                let now = self.now();
                let node = t.get_mut(ino)?;
                let f = node.file_mut()?;
                f.names.push((newparent, newname.to_os_string()));
                if let Content::Projected(p) = &mut f.content {
                    p.ctime = now;
                }
                node.nlookup += 1;
                self.journal(Record::AddName {
                    id,
                    path: journal::path_bytes(&path),
                });
                self.node_attr(&t, ino)
            }
            Content::Real => {
                let (p, n) = f.names.first().cloned().ok_or(Errno::NOENT)?;
                let oldfd = t.dir_fd(p)?;
                rustix::fs::linkat(&*oldfd, &n, &*newfd, newname, AtFlags::empty())?;
                self.new_entry(&mut t, newparent, newname)
            }
        }
    }

    /// What a name in a directory is right now.
    fn resolve(t: &Table, parent: Ino, name: &OsStr) -> VResult<Target> {
        if let Some(ino) = t.projected_child(parent, name)? {
            return Ok(Target::Projected(ino));
        }
        let fd = t.dir_fd(parent)?;
        match statat(&fd, name) {
            Ok(st) => Ok(Target::Real(Box::new(st))),
            Err(Errno::NOENT) => Ok(Target::Missing),
            Err(e) => Err(e),
        }
    }

    /// Moves a projected name (metadata only).
    fn move_projected(
        &self,
        t: &mut Table,
        ino: Ino,
        from: (Ino, &OsStr),
        to: (Ino, &OsStr),
    ) -> VResult<()> {
        let from_path = t.dir_path(from.0)?.join(from.1);
        let to_path = t.dir_path(to.0)?.join(to.1);
        t.get_mut(from.0)?.dir_mut()?.projected.remove(from.1);
        t.get_mut(to.0)?
            .dir_mut()?
            .projected
            .insert(to.1.to_os_string(), ino);
        Self::touch_dir(t, from.0);
        if to.0 != from.0 {
            Self::touch_dir(t, to.0);
        }
        let now = self.now();
        let f = t.get_mut(ino)?.file_mut()?;
        for n in &mut f.names {
            if n.0 == from.0 && n.1 == from.1 {
                *n = (to.0, to.1.to_os_string());
            }
        }
        if let Content::Projected(p) = &mut f.content {
            p.ctime = now;
        }
        self.journal(Record::Rename {
            from: journal::path_bytes(&from_path),
            to: journal::path_bytes(&to_path),
        });
        Ok(())
    }

    /// Bookkeeping after a real entry moved in the lower dir.
    fn real_moved(
        &self,
        t: &mut Table,
        st: &rustix::fs::Stat,
        from: (Ino, &OsStr),
        to: (Ino, &OsStr),
        from_path: Option<PathBuf>,
    ) -> VResult<()> {
        let Some(&ino) = t.by_lower.get(&lower_id(st)) else {
            return Ok(());
        };
        let Some(node) = t.nodes.get_mut(&ino) else {
            return Ok(());
        };
        match &mut node.kind {
            NodeKind::File(f) => {
                for n in &mut f.names {
                    if n.0 == from.0 && n.1 == from.1 {
                        *n = (to.0, to.1.to_os_string());
                    }
                }
            }
            NodeKind::Dir(d) => {
                d.parent = to.0;
                d.name = to.1.to_os_string();
                if let Some(fp) = from_path {
                    let tp = t.dir_path(ino)?;
                    self.journal(Record::RenameDir {
                        from: journal::path_bytes(&fp),
                        to: journal::path_bytes(&tp),
                    });
                }
            }
        }
        Ok(())
    }

    pub fn rename(
        &self,
        parent: Ino,
        name: &OsStr,
        newparent: Ino,
        newname: &OsStr,
        flags: u32,
    ) -> VResult<()> {
        valid_name(name)?;
        valid_name(newname)?;
        let flags = RenameFlags::from_bits_retain(flags);
        if flags.contains(RenameFlags::WHITEOUT)
            || flags.contains(RenameFlags::EXCHANGE | RenameFlags::NOREPLACE)
        {
            return Err(Errno::INVAL);
        }
        let mut t = self.table.lock();
        let src = Self::resolve(&t, parent, name)?;
        let dst = Self::resolve(&t, newparent, newname)?;
        if matches!(src, Target::Missing) {
            return Err(Errno::NOENT);
        }
        if flags.contains(RenameFlags::EXCHANGE) {
            if matches!(dst, Target::Missing) {
                return Err(Errno::NOENT);
            }
            return self.exchange(&mut t, (parent, name), src, (newparent, newname), dst);
        }
        if flags.contains(RenameFlags::NOREPLACE) && !matches!(dst, Target::Missing) {
            return Err(Errno::EXIST);
        }
        // Renaming a name onto another name of the same file does nothing.
        if src.same_as(&dst) {
            return Ok(());
        }
        let pfd = t.dir_fd(parent)?;
        let nfd = t.dir_fd(newparent)?;
        match (&src, &dst) {
            (Target::Projected(ino), Target::Missing) => {
                self.move_projected(&mut t, *ino, (parent, name), (newparent, newname))
            }
            (Target::Projected(ino), Target::Projected(old)) => {
                let old = *old;
                self.remove_projected_name(&mut t, newparent, newname, old)?;
                self.move_projected(&mut t, *ino, (parent, name), (newparent, newname))
            }
            (Target::Projected(ino), Target::Real(st)) => {
                if is_dir(st) {
                    return Err(Errno::ISDIR);
                }
                rustix::fs::unlinkat(&*nfd, newname, AtFlags::empty())?;
                self.real_name_removed(&mut t, newparent, newname, st);
                self.move_projected(&mut t, *ino, (parent, name), (newparent, newname))
            }
            (Target::Real(st), Target::Projected(old)) => {
                if is_dir(st) {
                    return Err(Errno::NOTDIR);
                }
                let old = *old;
                let from_path = t.dir_path(parent).ok().map(|p| p.join(name));
                rustix::fs::renameat_with(&*pfd, name, &*nfd, newname, RenameFlags::NOREPLACE)?;
                self.remove_projected_name(&mut t, newparent, newname, old)?;
                self.real_moved(&mut t, st, (parent, name), (newparent, newname), from_path)
            }
            (Target::Real(st), dst) => {
                if let Target::Real(dst_st) = dst
                    && is_dir(st)
                    && is_dir(dst_st)
                    && Self::has_projected_children(&t, dst_st)
                {
                    return Err(Errno::NOTEMPTY);
                }
                let from_path = if is_dir(st) {
                    Some(t.dir_path(parent)?.join(name))
                } else {
                    None
                };
                rustix::fs::renameat(&*pfd, name, &*nfd, newname)?;
                if let Target::Real(dst_st) = dst {
                    self.real_name_removed(&mut t, newparent, newname, dst_st);
                }
                if !is_dir(st)
                    && let Some(&moved) = t.by_lower.get(&lower_id(st))
                {
                    // A linker may have written it through a mapping: refresh its times.
                    self.notifier().inval_inode(moved);
                }
                self.real_moved(&mut t, st, (parent, name), (newparent, newname), from_path)
            }
            (Target::Missing, _) => Err(Errno::NOENT),
        }
    }

    fn exchange(
        &self,
        t: &mut Table,
        a: (Ino, &OsStr),
        at: Target,
        b: (Ino, &OsStr),
        bt: Target,
    ) -> VResult<()> {
        let afd = t.dir_fd(a.0)?;
        let bfd = t.dir_fd(b.0)?;
        match (&at, &bt) {
            (Target::Real(ast), Target::Real(bst)) => {
                let (apath, bpath) = (t.dir_path(a.0)?.join(a.1), t.dir_path(b.0)?.join(b.1));
                rustix::fs::renameat_with(&*afd, a.1, &*bfd, b.1, RenameFlags::EXCHANGE)?;
                // Two directories swap their journal paths through a temporary name: two
                // plain records (a→b, b→a) would merge both subtrees under a. A directory
                // swapped with a file is one plain move.
                let both_dirs = is_dir(ast) && is_dir(bst);
                let journal_path = |st: &rustix::fs::Stat, p: &PathBuf| {
                    (is_dir(st) && !both_dirs).then(|| p.clone())
                };
                self.real_moved(t, ast, a, b, journal_path(ast, &apath))?;
                self.real_moved(t, bst, b, a, journal_path(bst, &bpath))?;
                if both_dirs {
                    self.journal_swap_dirs(&apath, &bpath);
                }
                Ok(())
            }
            (Target::Projected(ai), Target::Projected(bi)) => {
                let (ai, bi) = (*ai, *bi);
                if ai == bi {
                    return Ok(());
                }
                let tmp = OsString::from(format!(".zcfs-exchange-{ai}"));
                self.move_projected(t, ai, a, (a.0, &tmp))?;
                self.move_projected(t, bi, b, a)?;
                self.move_projected(t, ai, (a.0, &tmp), b)?;
                Ok(())
            }
            (Target::Real(st), Target::Projected(pi)) => {
                let pi = *pi;
                let from_path = is_dir(st)
                    .then(|| t.dir_path(a.0).map(|p| p.join(a.1)))
                    .transpose()?;
                let tmp = OsString::from(format!(".zcfs-exchange-{pi}"));
                self.move_projected(t, pi, b, (b.0, &tmp))?;
                if let Err(e) =
                    rustix::fs::renameat_with(&*afd, a.1, &*bfd, b.1, RenameFlags::NOREPLACE)
                {
                    self.move_projected(t, pi, (b.0, &tmp), b)?;
                    return Err(e);
                }
                self.real_moved(t, st, a, b, from_path)?;
                self.move_projected(t, pi, (b.0, &tmp), a)
            }
            (Target::Projected(_), Target::Real(_)) => self.exchange(t, b, bt, a, at),
            _ => Err(Errno::NOENT),
        }
    }

    /// Journals two directories swapping places (a→tmp, b→a, tmp→b).
    fn journal_swap_dirs(&self, a: &Path, b: &Path) {
        let tmp = PathBuf::from(format!("{}.zcfs-exchange", a.display()));
        let rec = |from: &Path, to: &Path| Record::RenameDir {
            from: journal::path_bytes(from),
            to: journal::path_bytes(to),
        };
        self.journal(rec(a, &tmp));
        self.journal(rec(b, a));
        self.journal(rec(&tmp, b));
    }

    // ----- open, create, I/O ------------------------------------------------------------

    fn add_handle(&self, ino: Ino, passthrough: bool, write: bool, state: HandleState) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(
            fh,
            Arc::new(Handle {
                ino,
                passthrough,
                write,
                state: Mutex::new(state),
            }),
        );
        fh
    }

    /// Opens a file. `passthrough_ok`: the adapter can do passthrough for this open.
    pub fn open(&self, ino: Ino, flags: i32, passthrough_ok: bool) -> VResult<Opened> {
        let mut t = self.table.lock();
        self.open_locked(&mut t, ino, flags, passthrough_ok)
    }

    fn open_locked(
        &self,
        t: &mut Table,
        ino: Ino,
        flags: i32,
        passthrough_ok: bool,
    ) -> VResult<Opened> {
        let acc = flags & libc::O_ACCMODE;
        let write = acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let node = t.get(ino)?;
        let f = node.file()?;
        if let Content::Projected(p) = &f.content {
            if !write {
                let (pack, index) = (p.pack.clone(), p.index);
                t.get_mut(ino)?.file_mut()?.cached_opens += 1;
                self.counters.opens_cached.fetch_add(1, Ordering::Relaxed);
                let fh = self.add_handle(ino, false, false, HandleState::Projected(pack, index));
                return Ok(Opened {
                    fh,
                    mode: OpenMode::Cached { keep_cache: true },
                });
            }
            self.copy_up(t, ino, flags & libc::O_TRUNC != 0)?;
        }
        let f = t.get(ino)?.file()?;
        let (p, n) = f.names.first().cloned().ok_or(Errno::STALE)?;
        let fd = t.dir_fd(p)?;
        let oflags = OFlags::from_bits_retain(
            (flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY)) as u32,
        ) | OFlags::CLOEXEC
            | OFlags::NOFOLLOW;
        let file = File::from(rustix::fs::openat(&*fd, &n, oflags, Mode::empty())?);
        self.opened_real(t, ino, Arc::new(file), passthrough_ok, write)
    }

    fn opened_real(
        &self,
        t: &mut Table,
        ino: Ino,
        file: Arc<File>,
        passthrough_ok: bool,
        write: bool,
    ) -> VResult<Opened> {
        let f = t.get_mut(ino)?.file_mut()?;
        // An inode is either in passthrough or in cached mode while it is open (kernel rule).
        let passthrough = passthrough_ok && f.cached_opens == 0;
        if passthrough {
            f.passthrough_opens += 1;
            self.counters
                .opens_passthrough
                .fetch_add(1, Ordering::Relaxed);
        } else {
            f.cached_opens += 1;
            self.counters.opens_cached.fetch_add(1, Ordering::Relaxed);
        }
        let fh = self.add_handle(ino, passthrough, write, HandleState::Real(file.clone()));
        Ok(Opened {
            fh,
            mode: if passthrough {
                OpenMode::Passthrough(file)
            } else {
                OpenMode::Cached { keep_cache: false }
            },
        })
    }

    /// The adapter could not set up passthrough for an open it asked for: serve it cached.
    pub fn passthrough_failed(&self, fh: u64) {
        let Some(h) = self.handles.lock().get(&fh).cloned() else {
            return;
        };
        let mut t = self.table.lock();
        if let Ok(f) = t.get_mut(h.ino).and_then(|n| n.file_mut()) {
            f.passthrough_opens = f.passthrough_opens.saturating_sub(1);
            f.cached_opens += 1;
        }
        self.counters
            .opens_passthrough
            .fetch_sub(1, Ordering::Relaxed);
        self.counters.opens_cached.fetch_add(1, Ordering::Relaxed);
        let mut handles = self.handles.lock();
        if let Some(old) = handles.remove(&fh) {
            let state = std::mem::replace(&mut *old.state.lock(), HandleState::Dir(vec![]));
            handles.insert(
                fh,
                Arc::new(Handle {
                    ino: old.ino,
                    passthrough: false,
                    write: old.write,
                    state: Mutex::new(state),
                }),
            );
        }
    }

    pub fn create(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        flags: i32,
        passthrough_ok: bool,
    ) -> VResult<(Entry, Opened)> {
        valid_name(name)?;
        let mut t = self.table.lock();
        if let Some(ino) = t.projected_child(parent, name)? {
            if flags & libc::O_EXCL != 0 {
                return Err(Errno::EXIST);
            }
            let opened = self.open_locked(&mut t, ino, flags, passthrough_ok)?;
            let e = self.node_attr(&t, ino)?;
            t.get_mut(ino)?.nlookup += 1;
            return Ok((e, opened));
        }
        let fd = t.dir_fd(parent)?;
        let oflags = OFlags::from_bits_retain((flags & !libc::O_NOCTTY) as u32)
            | OFlags::CREATE
            | OFlags::CLOEXEC
            | OFlags::NOFOLLOW;
        let file = File::from(rustix::fs::openat(
            &*fd,
            name,
            oflags,
            Mode::from_raw_mode(mode & 0o7777),
        )?);
        if mode & self.umask & 0o7777 != 0 {
            // Only if we created it: an existing file keeps its mode.
            let st = rustix::fs::fstat(&file)?;
            if st.st_uid == self.uid && (st.st_mode & 0o7777) == (mode & 0o7777 & !self.umask) {
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode & 0o7777))?;
            }
        }
        let st = rustix::fs::fstat(&file)?;
        let ino = self.real_node(&mut t, parent, name, &st)?;
        t.get_mut(ino)?.nlookup += 1;
        let opened = self.opened_real(&mut t, ino, Arc::new(file), passthrough_ok, true)?;
        Ok((
            Entry {
                attr: attr_from_stat(ino, &st),
                cache: Cache::Long,
            },
            opened,
        ))
    }

    fn handle(&self, fh: u64) -> VResult<Arc<Handle>> {
        self.handles.lock().get(&fh).cloned().ok_or(Errno::BADF)
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> VResult<Vec<u8>> {
        let h = self.handle(fh)?;
        let state = h.state.lock();
        match &*state {
            HandleState::Projected(pack, index) => {
                let bytes = pack.payload(*index);
                let start = (offset as usize).min(bytes.len());
                let end = start.saturating_add(size as usize).min(bytes.len());
                Ok(bytes[start..end].to_vec())
            }
            HandleState::Real(file) => {
                let mut buf = vec![0u8; size as usize];
                let mut done = 0;
                while done < buf.len() {
                    match file.read_at(&mut buf[done..], offset + done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(to_errno(e)),
                    }
                }
                buf.truncate(done);
                self.counters
                    .bytes_served
                    .fetch_add(done as u64, Ordering::Relaxed);
                Ok(buf)
            }
            HandleState::Dir(_) => Err(Errno::ISDIR),
        }
    }

    /// Calls `f` with the bytes of a projected handle without copying them, if it is one.
    pub fn with_projected_slice<R>(
        &self,
        fh: u64,
        offset: u64,
        size: u32,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let h = self.handle(fh).ok()?;
        let state = h.state.lock();
        match &*state {
            HandleState::Projected(pack, index) => {
                let bytes = pack.payload(*index);
                let start = (offset as usize).min(bytes.len());
                let end = start.saturating_add(size as usize).min(bytes.len());
                self.counters
                    .bytes_served
                    .fetch_add((end - start) as u64, Ordering::Relaxed);
                Some(f(&bytes[start..end]))
            }
            _ => None,
        }
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> VResult<u32> {
        let h = self.handle(fh)?;
        let file = match &*h.state.lock() {
            HandleState::Real(f) => f.clone(),
            HandleState::Projected(..) => return Err(Errno::BADF),
            HandleState::Dir(_) => return Err(Errno::ISDIR),
        };
        file.write_all_at(data, offset).map_err(to_errno)?;
        self.counters
            .bytes_served
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data.len() as u32)
    }

    pub fn fsync(&self, fh: u64, datasync: bool) -> VResult<()> {
        let h = self.handle(fh)?;
        let file = match &*h.state.lock() {
            HandleState::Real(f) => f.clone(),
            _ => return Ok(()),
        };
        if datasync {
            rustix::fs::fdatasync(&*file)
        } else {
            rustix::fs::fsync(&*file)
        }
    }

    pub fn fallocate(&self, fh: u64, offset: u64, len: u64, mode: i32) -> VResult<()> {
        let h = self.handle(fh)?;
        if matches!(&*h.state.lock(), HandleState::Projected(..)) {
            let mut t = self.table.lock();
            self.copy_up(&mut t, h.ino, false)?;
        }
        let file = match &*h.state.lock() {
            HandleState::Real(f) => f.clone(),
            _ => return Err(Errno::BADF),
        };
        rustix::fs::fallocate(
            &*file,
            rustix::fs::FallocateFlags::from_bits_retain(mode as u32),
            offset,
            len,
        )
    }

    pub fn release(&self, fh: u64) {
        let Some(h) = self.handles.lock().remove(&fh) else {
            return;
        };
        if h.write {
            self.notifier().inval_inode(h.ino);
        }
        let mut t = self.table.lock();
        if let Ok(f) = t.get_mut(h.ino).and_then(|n| n.file_mut()) {
            if h.passthrough {
                f.passthrough_opens = f.passthrough_opens.saturating_sub(1);
            } else {
                f.cached_opens = f.cached_opens.saturating_sub(1);
            }
        }
        t.maybe_free(h.ino);
    }

    // ----- directories ------------------------------------------------------------------

    pub fn opendir(&self, ino: Ino) -> VResult<u64> {
        let mut t = self.table.lock();
        let d = t.dir(ino)?;
        if d.removed {
            return Err(Errno::NOENT);
        }
        let parent = d.parent;
        let dev = d.lower.0;
        let fd = rustix::fs::openat(
            &*d.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let projected: Vec<(OsString, Ino)> =
            d.projected.iter().map(|(n, i)| (n.clone(), *i)).collect();
        let mut entries = vec![
            DirEntry {
                ino,
                kind: FileKind::Dir,
                name: ".".into(),
            },
            DirEntry {
                ino: parent,
                kind: FileKind::Dir,
                name: "..".into(),
            },
        ];
        let mut dir = rustix::fs::Dir::read_from(&fd)?;
        while let Some(e) = dir.read() {
            let e = e?;
            let name = OsStr::from_bytes(e.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match e.file_type() {
                rustix::fs::FileType::Directory => FileKind::Dir,
                rustix::fs::FileType::Symlink => FileKind::Symlink,
                rustix::fs::FileType::Fifo => FileKind::Fifo,
                rustix::fs::FileType::Socket => FileKind::Socket,
                rustix::fs::FileType::CharacterDevice => FileKind::CharDev,
                rustix::fs::FileType::BlockDevice => FileKind::BlockDev,
                _ => FileKind::Regular,
            };
            let eino = t.ino_for_lower((dev, e.ino()));
            entries.push(DirEntry {
                ino: eino,
                kind,
                name: name.to_os_string(),
            });
        }
        for (name, pino) in projected {
            entries.push(DirEntry {
                ino: pino,
                kind: FileKind::Regular,
                name,
            });
        }
        Ok(self.add_handle(ino, false, false, HandleState::Dir(entries)))
    }

    /// Entries from `offset` on; entry `i` has offset `i + 1`.
    pub fn readdir(&self, fh: u64, offset: u64) -> VResult<Vec<(u64, DirEntry)>> {
        let h = self.handle(fh)?;
        let state = h.state.lock();
        let HandleState::Dir(entries) = &*state else {
            return Err(Errno::NOTDIR);
        };
        Ok(entries
            .iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, e)| (i as u64 + 1, e.clone()))
            .collect())
    }

    pub fn releasedir(&self, fh: u64) {
        self.handles.lock().remove(&fh);
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

    // ----- copy-up ----------------------------------------------------------------------

    /// Turns a projected file into a real file for all its names (see docs/mount.md).
    fn copy_up(&self, t: &mut Table, ino: Ino, truncate: bool) -> VResult<()> {
        let f = t.get(ino)?.file()?;
        let Content::Projected(p) = &f.content else {
            return Ok(());
        };
        let p = p.clone();
        let names = f.names.clone();
        let (p0, n0) = names.first().cloned().ok_or(Errno::STALE)?;
        let d0 = t.dir_fd(p0)?;
        let tmp = OsString::from(format!(".zcfs-copyup-{ino}-{}", std::process::id()));
        let file = File::from(rustix::fs::openat(
            &*d0,
            &tmp,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?);
        let cleanup = |e: Errno| {
            let _ = rustix::fs::unlinkat(&*d0, &tmp, AtFlags::empty());
            e
        };
        if !truncate {
            let entry = &p.pack.header.entries[p.index];
            clone_or_copy(
                &p.pack.file,
                entry.offset,
                entry.size,
                entry.padded_size(),
                &file,
            )
            .map_err(|e| cleanup(to_errno(e)))?;
        }
        rustix::fs::fchmod(&file, Mode::from_raw_mode(p.perm as u32)).map_err(cleanup)?;
        if p.uid != self.uid || p.gid != self.gid {
            let _ = rustix::fs::fchown(
                &file,
                Some(rustix::process::Uid::from_raw(p.uid)),
                Some(rustix::process::Gid::from_raw(p.gid)),
            );
        }
        if !truncate {
            rustix::fs::futimens(
                &file,
                &Timestamps {
                    last_access: timespec(p.atime),
                    last_modification: timespec(p.mtime),
                },
            )
            .map_err(cleanup)?;
        }
        rustix::fs::renameat_with(&*d0, &tmp, &*d0, &n0, RenameFlags::NOREPLACE)
            .map_err(cleanup)?;
        for (pi, ni) in &names[1..] {
            let di = t.dir_fd(*pi)?;
            if let Err(e) = rustix::fs::linkat(&*d0, &n0, &*di, ni, AtFlags::empty()) {
                warn!("copy-up of {ino}: cannot link {ni:?}: {e}");
            }
        }
        let st = rustix::fs::fstat(&file)?;
        for (pi, ni) in &names {
            if let Ok(d) = t.get_mut(*pi).and_then(|n| n.dir_mut()) {
                d.projected.remove(ni);
            }
        }
        t.by_lower.insert(lower_id(&st), ino);
        let node = t.get_mut(ino)?.file_mut()?;
        node.content = Content::Real;
        node.lower = Some(lower_id(&st));
        self.journal(Record::Drop { id: p.id });
        // Handles opened while projected now read the real file.
        let reader = Arc::new(file);
        for h in self.handles.lock().values() {
            if h.ino == ino {
                let mut s = h.state.lock();
                if matches!(&*s, HandleState::Projected(..)) {
                    *s = HandleState::Real(reader.clone());
                }
            }
        }
        self.counters.copy_ups.fetch_add(1, Ordering::Relaxed);
        debug!("copied up inode {ino} ({n0:?})");
        self.notifier().inval_inode(ino);
        Ok(())
    }

    fn maybe_compact(&self) {
        let big = self
            .journal
            .lock()
            .as_ref()
            .is_some_and(|j| j.appended() > 100_000);
        if big {
            self.compact_journal();
        }
    }

    fn replay(&self, state: &journal::State, packs: &dyn PackSource) -> LoadReport {
        let mut report = LoadReport::default();
        let mut t = self.table.lock();
        let mut max_id = 0;
        for (id, proj) in &state.projections {
            max_id = max_id.max(*id);
            let Some(pack) = packs.open(&proj.pack) else {
                report.dropped_pack_gone += 1;
                continue;
            };
            let index = proj.index as usize;
            if index >= pack.header.entries.len() || pack.header.entries[index].size != proj.size {
                report.dropped_pack_gone += 1;
                continue;
            }
            let ino = t.alloc();
            let p = Projection {
                id: *id,
                pack,
                index,
                size: proj.size,
                perm: proj.meta.perm,
                uid: proj.meta.uid,
                gid: proj.meta.gid,
                atime: proj.meta.atime,
                mtime: proj.meta.mtime,
                ctime: proj.meta.ctime,
            };
            let mut names = Vec::new();
            for name in &proj.names {
                let path = PathBuf::from(OsStr::from_bytes(name));
                let Ok((parts, base)) = Self::split(&path) else {
                    report.dropped_names += 1;
                    continue;
                };
                let Ok(parent) = self.walk_dirs(&mut t, &parts, &path) else {
                    report.dropped_names += 1;
                    continue;
                };
                let taken = !matches!(Self::resolve(&t, parent, &base), Ok(Target::Missing));
                if taken {
                    report.dropped_names += 1;
                    continue;
                }
                if let Ok(d) = t.get_mut(parent).and_then(|n| n.dir_mut()) {
                    d.projected.insert(base.clone(), ino);
                    names.push((parent, base));
                }
            }
            if names.is_empty() {
                report.dropped_no_name += 1;
                continue;
            }
            report.restored += 1;
            t.nodes.insert(
                ino,
                Node {
                    kind: NodeKind::File(FileNode {
                        names,
                        content: Content::Projected(p),
                        lower: None,
                        kind: FileKind::Regular,
                        cached_opens: 0,
                        passthrough_opens: 0,
                        last_attr: None,
                    }),
                    nlookup: 0,
                },
            );
        }
        self.next_proj.store(max_id + 1, Ordering::Relaxed);
        report
    }

    /// Every projection turned into a real file with its mtime (for `unmount --materialize`).
    pub fn materialize_all(&self) -> VResult<u64> {
        let mut t = self.table.lock();
        let inos: Vec<Ino> = t
            .nodes
            .iter()
            .filter_map(|(i, n)| match &n.kind {
                NodeKind::File(f)
                    if matches!(f.content, Content::Projected(_)) && !f.names.is_empty() =>
                {
                    Some(*i)
                }
                _ => None,
            })
            .collect();
        for ino in &inos {
            self.copy_up(&mut t, *ino, false)?;
        }
        drop(t);
        self.compact_journal();
        Ok(inos.len() as u64)
    }

    /// Copies up every projection of one pack (the store must let it go). Returns how
    /// many were copied up.
    pub fn materialize_pack(&self, id: &Digest) -> VResult<u64> {
        let mut t = self.table.lock();
        let inos: Vec<Ino> = t
            .nodes
            .iter()
            .filter_map(|(i, n)| match &n.kind {
                NodeKind::File(f) if !f.names.is_empty() => match &f.content {
                    Content::Projected(p) if p.pack.id == *id => Some(*i),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        for ino in &inos {
            self.copy_up(&mut t, *ino, false)?;
        }
        Ok(inos.len() as u64)
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
            opens_passthrough: c.opens_passthrough.load(Ordering::Relaxed),
            opens_cached: c.opens_cached.load(Ordering::Relaxed),
            copy_ups: c.copy_ups.load(Ordering::Relaxed),
            bytes_served: c.bytes_served.load(Ordering::Relaxed),
            requests,
            ..Usage::default()
        };
        for n in t.nodes.values() {
            if let NodeKind::File(FileNode {
                content: Content::Projected(p),
                names,
                ..
            }) = &n.kind
                && !names.is_empty()
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
        let mut stack = vec![proc_fd(&self.root_fd)];
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
                NodeKind::File(FileNode {
                    content: Content::Projected(p),
                    ..
                }) => Some(p.pack.id),
                _ => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Flushes the journal to disk (for unmount).
    pub fn sync_journal(&self) {
        if let Some(j) = self.journal.lock().as_ref() {
            let _ = j.sync();
        }
    }
}

fn meta_of(p: &Projection) -> Meta {
    Meta {
        perm: p.perm,
        uid: p.uid,
        gid: p.gid,
        atime: p.atime,
        mtime: p.mtime,
        ctime: p.ctime,
    }
}

enum Inval {
    Entry(Ino, OsString),
    Inode(Ino),
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

/// What a journal replay restored and dropped.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LoadReport {
    pub restored: u64,
    pub dropped_pack_gone: u64,
    pub dropped_names: u64,
    pub dropped_no_name: u64,
}

#[cfg(test)]
mod tests;
