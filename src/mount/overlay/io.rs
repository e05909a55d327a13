//! Handles and file I/O: opens (projected files are read from their pack's map; real files
//! through FUSE passthrough when the kernel allows), creation of real files, reads and
//! writes served by the daemon, release.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use rustix::fs::{Mode, OFlags};

use super::table::Table;
use super::*;

impl Vfs {
    pub(super) fn add_handle(
        &self,
        ino: Ino,
        passthrough: bool,
        write: bool,
        state: HandleState,
    ) -> u64 {
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
        loop {
            let mut t = self.table.lock();
            match self.open_locked(&mut t, ino, flags, passthrough_ok)? {
                Ok(opened) => return Ok(opened),
                // Opened for writing while projected: copy up without the lock, then open.
                Err(truncate) => {
                    drop(t);
                    self.copy_up(ino, truncate)?;
                }
            }
        }
    }

    /// Opens under the table lock, or says that the file must be copied up first (and
    /// whether the open truncates, so nothing need be copied).
    fn open_locked(
        &self,
        t: &mut Table,
        ino: Ino,
        flags: i32,
        passthrough_ok: bool,
    ) -> VResult<Result<Opened, bool>> {
        let acc = flags & libc::O_ACCMODE;
        let write = acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let node = t.get(ino)?;
        let f = node.file()?;
        if let Some(p) = f.projection() {
            if write {
                return Ok(Err(flags & libc::O_TRUNC != 0));
            }
            let (pack, index) = (p.pack.clone(), p.index);
            t.get_mut(ino)?.file_mut()?.cached_opens += 1;
            self.counters.opens_cached.fetch_add(1, Ordering::Relaxed);
            let fh = self.add_handle(ino, false, false, HandleState::Projected(pack, index));
            return Ok(Ok(Opened {
                fh,
                mode: OpenMode::Cached { keep_cache: true },
            }));
        }
        let (p, n) = f.names.first().cloned().ok_or(Errno::STALE)?;
        let fd = t.dir_fd(p)?;
        let oflags = OFlags::from_bits_retain(
            (flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY)) as u32,
        ) | OFlags::CLOEXEC
            | OFlags::NOFOLLOW;
        let file = File::from(rustix::fs::openat(&*fd, &n, oflags, Mode::empty())?);
        self.opened_real(t, ino, Arc::new(file), passthrough_ok, write)
            .map(Ok)
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
        caller: Caller,
    ) -> VResult<(EntryAttr, Opened)> {
        valid_name(name)?;
        loop {
            let mut t = self.table.lock();
            if let Some(ino) = t.projected_child(parent, name)? {
                if flags & libc::O_EXCL != 0 {
                    return Err(Errno::EXIST);
                }
                match self.open_locked(&mut t, ino, flags, passthrough_ok)? {
                    Ok(opened) => {
                        let e = self.node_attr(&t, ino)?;
                        t.get_mut(ino)?.nlookup += 1;
                        return Ok((e, opened));
                    }
                    Err(truncate) => {
                        drop(t);
                        self.copy_up(ino, truncate)?;
                        continue;
                    }
                }
            }
            return self.create_real(&mut t, parent, name, mode, flags, passthrough_ok, caller);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_real(
        &self,
        t: &mut Table,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        flags: i32,
        passthrough_ok: bool,
        caller: Caller,
    ) -> VResult<(EntryAttr, Opened)> {
        let fd = t.dir_fd(parent)?;
        let base = OFlags::from_bits_retain((flags & !(libc::O_NOCTTY | libc::O_CREAT)) as u32)
            | OFlags::CLOEXEC
            | OFlags::NOFOLLOW;
        // Exclusive first, to know whether this call made the file (only then does it get
        // the caller's owner and the mode asked for).
        let perm = Mode::from_raw_mode(mode & 0o7777);
        let (file, created) =
            match rustix::fs::openat(&*fd, name, base | OFlags::CREATE | OFlags::EXCL, perm) {
                Ok(f) => (f, true),
                Err(Errno::EXIST) if flags & libc::O_EXCL == 0 => {
                    (rustix::fs::openat(&*fd, name, base, Mode::empty())?, false)
                }
                Err(e) => return Err(e),
            };
        let file = File::from(file);
        if created {
            if mode & self.umask & 0o7777 != 0 {
                rustix::fs::fchmod(&file, perm)?;
            }
            self.own(&fd, name, caller, mode | libc::S_IFREG)?;
        }
        let st = rustix::fs::fstat(&file)?;
        let ino = self.real_node(t, parent, name, &st)?;
        t.get_mut(ino)?.nlookup += 1;
        let opened = self.opened_real(t, ino, Arc::new(file), passthrough_ok, true)?;
        Ok((
            EntryAttr {
                attr: attr_from_stat(ino, &st),
                cache: Cache::Long,
            },
            opened,
        ))
    }

    pub(super) fn handle(&self, fh: u64) -> VResult<Arc<Handle>> {
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
        let projected = matches!(&*h.state.lock(), HandleState::Projected(..));
        if projected {
            self.copy_up(h.ino, false)?;
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
            self.notifier().inval_inode_later(h.ino);
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
}
