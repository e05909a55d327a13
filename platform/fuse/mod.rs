//! The FUSE channel (Linux): a thin translation from fuser's requests to the POSIX mount
//! model ([`crate::mount::overlay::Vfs`]), plus the pieces that only exist in FUSE: the
//! kernel notifier thread, passthrough backing ids, the session and its mount options.
//!
//! Compiled into the `zcfs` crate from `platform/fuse/` (see docs/decisions.md, D-1).

mod channel;
pub mod mountinfo;
pub use channel::FuseChannel;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackingId, Errno as FErrno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, SessionACL, TimeOrNow, WriteFlags,
};
use parking_lot::Mutex;
use tracing::{debug, warn};

use crate::fsutil::NanoTime;
use crate::mount::overlay::{
    self, Attr, Cache, EntryAttr, FileKind, Ino, Notify, OpenMode, RequestKind, SetAttr, TimeSet,
    Vfs,
};

/// TTL of answers about projected entries (invalidated explicitly).
const LONG_TTL: Duration = Duration::from_secs(3600);
/// TTL of answers about real files and directories.
const SHORT_TTL: Duration = Duration::from_secs(1);

fn errno(e: overlay::Errno) -> FErrno {
    FErrno::from_i32(e.raw_os_error())
}

fn ttl(c: Cache) -> Duration {
    match c {
        Cache::Long => LONG_TTL,
        Cache::Short => SHORT_TTL,
    }
}

fn system_time(t: NanoTime) -> SystemTime {
    if t >= 0 {
        UNIX_EPOCH + Duration::from_nanos(t as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos((-t) as u64)
    }
}

fn nano(t: SystemTime) -> NanoTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as NanoTime,
        Err(e) => -(e.duration().as_nanos() as NanoTime),
    }
}

fn kind(k: FileKind) -> FileType {
    match k {
        FileKind::Regular => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.ctime),
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

fn reply_entry(reply: ReplyEntry, r: Result<EntryAttr, overlay::Errno>) {
    match r {
        Ok(e) => reply.entry_with_ttls(
            &ttl(e.cache),
            &ttl(e.cache),
            &file_attr(&e.attr),
            Generation(0),
        ),
        Err(e) => reply.error(errno(e)),
    }
}

fn caller(req: &Request) -> overlay::Caller {
    overlay::Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn time_set(t: Option<TimeOrNow>) -> Option<TimeSet> {
    t.map(|t| match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(s) => TimeSet::At(nano(s)),
    })
}

/// Passthrough backing ids: one per inode while it has passthrough opens (kernel rule),
/// held by each open handle.
#[derive(Default)]
struct Backing {
    by_ino: HashMap<Ino, Weak<BackingId>>,
    by_fh: HashMap<u64, Arc<BackingId>>,
}

pub struct FuseFs {
    vfs: Arc<Vfs>,
    passthrough: AtomicBool,
    want_passthrough: bool,
    backing: Mutex<Backing>,
}

impl FuseFs {
    pub fn new(vfs: Arc<Vfs>, want_passthrough: bool) -> FuseFs {
        FuseFs {
            vfs,
            passthrough: AtomicBool::new(false),
            want_passthrough,
            backing: Mutex::new(Backing::default()),
        }
    }

    /// Gets or creates the inode's backing id and registers it for the handle.
    fn backing_for(
        &self,
        ino: Ino,
        fh: u64,
        create: impl FnOnce() -> io::Result<BackingId>,
    ) -> io::Result<Arc<BackingId>> {
        let mut b = self.backing.lock();
        let id = match b.by_ino.get(&ino).and_then(Weak::upgrade) {
            Some(id) => id,
            None => {
                let id = Arc::new(create()?);
                b.by_ino.insert(ino, Arc::downgrade(&id));
                id
            }
        };
        b.by_fh.insert(fh, id.clone());
        Ok(id)
    }

    fn drop_backing(&self, fh: u64) {
        let mut b = self.backing.lock();
        if b.by_fh.remove(&fh).is_some() {
            b.by_ino.retain(|_, w| w.strong_count() > 0);
        }
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        for cap in [
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_CACHE_SYMLINKS,
        ] {
            let _ = config.add_capabilities(cap);
        }
        if self.want_passthrough
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
            self.vfs.passthrough_enabled.store(true, Ordering::Relaxed);
        }
        let _ = config.set_max_background(256);
        let _ = config.set_congestion_threshold(192);
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        debug!(
            "FUSE init: passthrough {}",
            self.passthrough.load(Ordering::Relaxed)
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.vfs.count_request(RequestKind::Lookup);
        match self.vfs.lookup(parent.0, name) {
            // A cached negative entry (inode 0): every name zcfs creates itself is
            // invalidated explicitly, and the kernel sees all other creations.
            Err(e) if e == overlay::Errno::NOENT => {
                let mut none = file_attr(&Attr {
                    ino: 0,
                    kind: FileKind::Regular,
                    size: 0,
                    blocks: 0,
                    atime: 0,
                    mtime: 0,
                    ctime: 0,
                    perm: 0,
                    nlink: 0,
                    uid: 0,
                    gid: 0,
                    rdev: 0,
                    blksize: 0,
                });
                none.ino = INodeNo(0);
                reply.entry_with_ttls(&Duration::ZERO, &LONG_TTL, &none, Generation(0));
            }
            r => reply_entry(reply, r),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.vfs.count_request(RequestKind::Forget);
        self.vfs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.vfs.count_request(RequestKind::Getattr);
        match self.vfs.getattr(ino.0) {
            Ok(e) => reply.attr(&ttl(e.cache), &file_attr(&e.attr)),
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
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.vfs.count_request(RequestKind::Setattr);
        let s = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: time_set(atime),
            mtime: time_set(mtime),
            fh: fh.map(|f| f.0),
        };
        match self.vfs.setattr(ino.0, s) {
            Ok(e) => reply.attr(&ttl(e.cache), &file_attr(&e.attr)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.vfs.count_request(RequestKind::Readlink);
        match self.vfs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.vfs.count_request(RequestKind::Mknod);
        reply_entry(
            reply,
            self.vfs.mknod(parent.0, name, mode, rdev, caller(req)),
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.vfs.count_request(RequestKind::Mkdir);
        reply_entry(reply, self.vfs.mkdir(parent.0, name, mode, caller(req)));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.vfs.count_request(RequestKind::Unlink);
        match self.vfs.unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.vfs.count_request(RequestKind::Rmdir);
        match self.vfs.rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.vfs.count_request(RequestKind::Symlink);
        reply_entry(
            reply,
            self.vfs.symlink(parent.0, link_name, target, caller(req)),
        );
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
        self.vfs.count_request(RequestKind::Rename);
        match self
            .vfs
            .rename(parent.0, name, newparent.0, newname, flags.bits())
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.vfs.count_request(RequestKind::Link);
        reply_entry(reply, self.vfs.link(ino.0, newparent.0, newname));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.vfs.count_request(RequestKind::Open);
        let pt = self.passthrough.load(Ordering::Relaxed);
        match self.vfs.open(ino.0, flags.0, pt) {
            Ok(o) => match o.mode {
                OpenMode::Cached { keep_cache } => {
                    let f = if keep_cache {
                        FopenFlags::FOPEN_KEEP_CACHE
                    } else {
                        FopenFlags::empty()
                    };
                    reply.opened(FileHandle(o.fh), f);
                }
                OpenMode::Passthrough(file) => {
                    match self.backing_for(ino.0, o.fh, || reply.open_backing(&*file)) {
                        Ok(id) => {
                            reply.opened_passthrough(FileHandle(o.fh), FopenFlags::empty(), &id)
                        }
                        Err(e) => {
                            warn!("passthrough refused for inode {}: {e}; serving it", ino.0);
                            self.vfs.passthrough_failed(o.fh);
                            reply.opened(FileHandle(o.fh), FopenFlags::empty());
                        }
                    }
                }
            },
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.vfs.count_request(RequestKind::Create);
        let pt = self.passthrough.load(Ordering::Relaxed);
        match self
            .vfs
            .create(parent.0, name, mode, flags, pt, caller(req))
        {
            Ok((e, o)) => {
                let attr = file_attr(&e.attr);
                match o.mode {
                    OpenMode::Cached { keep_cache } => {
                        let f = if keep_cache {
                            FopenFlags::FOPEN_KEEP_CACHE
                        } else {
                            FopenFlags::empty()
                        };
                        reply.created(&ttl(e.cache), &attr, Generation(0), FileHandle(o.fh), f);
                    }
                    OpenMode::Passthrough(file) => {
                        match self.backing_for(e.attr.ino, o.fh, || reply.open_backing(&*file)) {
                            Ok(id) => reply.created_passthrough(
                                &ttl(e.cache),
                                &attr,
                                Generation(0),
                                FileHandle(o.fh),
                                FopenFlags::empty(),
                                &id,
                            ),
                            Err(err) => {
                                warn!("passthrough refused for a new file: {err}; serving it");
                                self.vfs.passthrough_failed(o.fh);
                                reply.created(
                                    &ttl(e.cache),
                                    &attr,
                                    Generation(0),
                                    FileHandle(o.fh),
                                    FopenFlags::empty(),
                                );
                            }
                        }
                    }
                }
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.vfs.count_request(RequestKind::Read);
        // Projected bytes go from the pack's map straight into the reply.
        let mut reply = Some(reply);
        let served = self.vfs.with_projected_slice(fh.0, offset, size, |bytes| {
            reply.take().expect("reply once").data(bytes);
        });
        if served.is_some() {
            return;
        }
        let reply = reply.expect("reply not used");
        match self.vfs.read(fh.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.vfs.count_request(RequestKind::Write);
        match self.vfs.write(fh.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.vfs.count_request(RequestKind::Flush);
        // Nothing to flush (writes are synchronous or passthrough). ENOSYS makes the kernel
        // stop sending FLUSH on every close().
        reply.error(FErrno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.vfs.count_request(RequestKind::Release);
        self.vfs.release(fh.0);
        self.drop_backing(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.vfs.count_request(RequestKind::Fsync);
        match self.vfs.fsync(fh.0, datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.vfs.count_request(RequestKind::Opendir);
        match self.vfs.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.vfs.count_request(RequestKind::Readdir);
        match self.vfs.readdir(fh.0, offset) {
            Ok(entries) => {
                for (off, e) in entries {
                    if reply.add(INodeNo(e.ino), off, kind(e.kind), &e.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.vfs.count_request(RequestKind::Releasedir);
        self.vfs.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.vfs.count_request(RequestKind::Fsync);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.vfs.count_request(RequestKind::Statfs);
        match self.vfs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    // Extended attributes are not stored: answer like a filesystem that has none.
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        // ENOSYS: the kernel remembers that xattrs are unsupported and answers EOPNOTSUPP
        // itself from then on, instead of asking for `security.capability` on every write
        // (190 round trips in a warm ripgrep build).
        self.vfs.count_request(RequestKind::Xattr);
        reply.error(FErrno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        self.vfs.count_request(RequestKind::Xattr);
        reply.error(FErrno::ENOSYS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.vfs.count_request(RequestKind::Xattr);
        reply.error(FErrno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        self.vfs.count_request(RequestKind::Xattr);
        reply.error(FErrno::ENOSYS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.vfs.count_request(RequestKind::Fallocate);
        match self.vfs.fallocate(fh.0, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

/// The kernel notifier on its own thread: invalidations are sent from here, never from a
/// request handler (which could deadlock against the kernel), and a batch is answered with
/// whether the kernel took every one of it.
pub struct KernelNotifier {
    tx: Mutex<mpsc::Sender<Note>>,
}

enum Note {
    Batch(Vec<overlay::Inval>, mpsc::Sender<Result<(), String>>),
    Later(Ino),
}

/// How long a batch may take before the caller stops waiting and fails.
const CONFIRM_WITHIN: Duration = Duration::from_secs(10);

fn send_one(n: &fuser::Notifier, i: &overlay::Inval) -> io::Result<()> {
    // ENOENT (nothing cached) counts as done: fuser maps it to Ok.
    match i {
        overlay::Inval::Entry(p, name) => n.inval_entry(INodeNo(*p), name),
        // Offset -1: attributes only; the bytes did not change.
        overlay::Inval::Inode(ino) => n.inval_inode(INodeNo(*ino), -1, 0),
    }
}

impl KernelNotifier {
    pub fn start(n: fuser::Notifier) -> Arc<KernelNotifier> {
        let (tx, rx) = mpsc::channel::<Note>();
        std::thread::Builder::new()
            .name("zcfs-notify".into())
            .spawn(move || {
                for note in rx {
                    match note {
                        Note::Batch(invals, done) => {
                            let mut result = Ok(());
                            for i in &invals {
                                if let Err(e) = send_one(&n, i) {
                                    warn!("invalidation {i:?} refused: {e}");
                                    result = Err(format!("{i:?}: {e}"));
                                }
                            }
                            let _ = done.send(result);
                        }
                        Note::Later(ino) => {
                            if let Err(e) = send_one(&n, &overlay::Inval::Inode(ino)) {
                                debug!("inval_inode({ino}): {e}");
                            }
                        }
                    }
                }
            })
            .expect("notifier thread");
        Arc::new(KernelNotifier { tx: Mutex::new(tx) })
    }
}

impl Notify for KernelNotifier {
    fn invalidate(&self, invals: Vec<overlay::Inval>) -> Result<(), String> {
        let (done, wait) = mpsc::channel();
        self.tx
            .lock()
            .send(Note::Batch(invals, done))
            .map_err(|_| "the notifier thread is gone".to_string())?;
        match wait.recv_timeout(CONFIRM_WITHIN) {
            Ok(r) => r,
            Err(_) => Err(format!(
                "the kernel did not take the invalidations within {} s",
                CONFIRM_WITHIN.as_secs()
            )),
        }
    }

    fn inval_inode_later(&self, ino: Ino) {
        let _ = self.tx.lock().send(Note::Later(ino));
    }
}

/// Mount options of a zcfs mount.
pub struct MountSpec {
    /// The mount's source (`fsname`): who serves it (`zcfs@<socket>`).
    pub source: String,
    pub allow_other: bool,
    pub threads: usize,
    pub passthrough: bool,
}

/// A live FUSE session.
pub struct FuseSession {
    pub bg: fuser::BackgroundSession,
    pub notifier: Arc<KernelNotifier>,
}

impl FuseSession {
    /// Whether the session still runs (it ends when the kernel drops the connection, e.g.
    /// after an unmount that did not go through this daemon).
    pub fn running(&self) -> bool {
        !self.bg.guard.is_finished()
    }
}

/// Mounts `vfs` over `dir` and starts serving it.
pub fn mount(vfs: Arc<Vfs>, dir: &Path, spec: &MountSpec) -> io::Result<FuseSession> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName(spec.source.clone()),
        MountOption::Subtype("zcfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::Exec,
        MountOption::RW,
    ];
    config.acl = if spec.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(spec.threads.max(1));
    config.clone_fd = true;
    let fs = FuseFs::new(vfs.clone(), spec.passthrough);
    let session = fuser::Session::new(fs, dir, &config)?;
    let notifier = KernelNotifier::start(session.notifier());
    vfs.set_notify(notifier.clone());
    let bg = session.spawn()?;
    Ok(FuseSession { bg, notifier })
}
