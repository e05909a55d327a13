//! Attributes: what `getattr` reports for real and projected files, and `setattr`
//! (chmod, chown, truncate, utimens) on both. A projection's metadata changes in the table
//! and the journal only; truncating one copies it up first.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::AsFd;
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

use super::journal::Record;
use super::table::{Content, FileNode, NodeKind, Table};
use super::*;
use crate::os::timespec;

impl Vfs {
    pub(super) fn proj_attr(ino: Ino, f: &FileNode, p: &Projection) -> Attr {
        let m = &p.meta;
        Attr {
            ino,
            kind: FileKind::Regular,
            size: p.size,
            blocks: p.size.div_ceil(512),
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
            perm: m.perm,
            nlink: f.names.len() as u32,
            uid: m.uid,
            gid: m.gid,
            rdev: 0,
            blksize: 4096,
        }
    }

    pub(super) fn node_attr(&self, t: &Table, ino: Ino) -> VResult<EntryAttr> {
        let node = t.get(ino)?;
        match &node.kind {
            NodeKind::Dir(_) => Ok(EntryAttr {
                attr: attr_from_stat(ino, &rustix::fs::fstat(&*t.dir_fd(ino)?)?),
                cache: Cache::Long,
            }),
            NodeKind::File(f) => match &f.content {
                Content::Projected(p) => Ok(EntryAttr {
                    attr: Self::proj_attr(ino, f, p),
                    cache: Cache::Long,
                }),
                Content::Real => {
                    if let Some((parent, name)) = f.names.first() {
                        let fd = t.dir_fd(*parent)?;
                        let st = statat(&fd, name)?;
                        return Ok(EntryAttr {
                            attr: attr_from_stat(ino, &st),
                            cache: Cache::Long,
                        });
                    }
                    // No name left: an open handle still reaches the file.
                    if let Some(file) = self.any_real_handle(ino) {
                        let st = rustix::fs::fstat(&*file)?;
                        return Ok(EntryAttr {
                            attr: attr_from_stat(ino, &st),
                            cache: Cache::Short,
                        });
                    }
                    f.last_attr
                        .map(|attr| EntryAttr {
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

    pub fn getattr(&self, ino: Ino) -> VResult<EntryAttr> {
        let t = self.table.lock();
        self.node_attr(&t, ino)
    }

    pub fn setattr(&self, ino: Ino, s: SetAttr) -> VResult<EntryAttr> {
        if let Some(size) = s.size {
            // Truncating a projection: it becomes a real file first (copied without the
            // table lock).
            let projected = {
                let t = self.table.lock();
                let node = t.get(ino)?;
                if node.is_dir() {
                    return Err(Errno::ISDIR);
                }
                node.file()?.projection().is_some()
            };
            if projected {
                self.copy_up(ino, size == 0)?;
            }
        }
        let mut t = self.table.lock();
        let now = self.now();
        let time = |ts: Option<TimeSet>| -> Option<NanoTime> {
            ts.map(|t| match t {
                TimeSet::Now => now,
                TimeSet::At(v) => v,
            })
        };
        let node = t.get(ino)?;
        match &node.kind {
            NodeKind::File(f) if f.projection().is_some() => {
                let node = t.get_mut(ino)?;
                let f = node.file_mut()?;
                let Content::Projected(p) = &mut f.content else {
                    return Err(Errno::IO);
                };
                let m = &mut p.meta;
                if let Some(mode) = s.mode {
                    m.perm = (mode & 0o7777) as u16;
                }
                if let Some(u) = s.uid {
                    m.uid = u;
                }
                if let Some(g) = s.gid {
                    m.gid = g;
                    if s.uid.is_none() && m.perm & 0o6000 != 0 {
                        m.perm &= !0o6000;
                    }
                }
                if let Some(a) = time(s.atime) {
                    m.atime = a;
                }
                if let Some(mt) = time(s.mtime) {
                    m.mtime = mt;
                }
                m.ctime = now;
                let (id, meta) = (p.id, p.meta);
                self.journal_after(&t, Record::SetMeta { id, meta });
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
            NodeKind::Dir(_) => {
                let p = proc_fd(&*t.dir_fd(ino)?);
                Self::real_setattr_at(rustix::fs::CWD, p.as_os_str(), &s, false, true)?;
            }
        }
        self.node_attr(&t, ino)
    }

    pub(super) fn handle_real_file(&self, fh: u64) -> Option<Arc<File>> {
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
}
