//! Projections: the daemon's side of the core. Entries are projected (or, for rewritten
//! files, written as real files) at paths relative to the mount root; the daemon reads
//! paths through the lower directory fds, never through its own mount.

use std::ffi::OsString;
use std::path::{Component, Path};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use tracing::warn;

use crate::os::timespec;
use rustix::io::Errno;

use super::journal::{self, Record};
use super::table::{Content, Node, Table};
use super::*;

use crate::mount::contract::{PathTarget, RealAt};

impl Vfs {
    // ----- projections ------------------------------------------------------------------

    /// Checks a relative path and splits it into parent components and a file name.
    pub(super) fn split(path: &Path) -> Result<(Vec<OsString>, OsString), ProjectError> {
        let bad = |why| ProjectError::BadPath(path.to_path_buf(), why);
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(n) => parts.push(n.to_os_string()),
                Component::CurDir => return Err(bad("has a `.` component")),
                Component::ParentDir => return Err(bad("has a `..` component")),
                Component::RootDir | Component::Prefix(_) => return Err(bad("is absolute")),
            }
        }
        let name = parts.pop().ok_or_else(|| bad("is empty"))?;
        if name.as_bytes().len() > 255 {
            return Err(bad("name too long"));
        }
        Ok((parts, name))
    }

    /// The directory node for parent components, walking real directories only.
    pub(super) fn walk_dirs(
        &self,
        t: &mut Table,
        parts: &[OsString],
        path: &Path,
    ) -> Result<Ino, ProjectError> {
        let mut cur = ROOT;
        for part in parts {
            let io = |e: Errno| ProjectError::Io(path.to_path_buf(), e.into());
            if t.projected_child(cur, part).map_err(io)?.is_some() {
                return Err(ProjectError::BadPath(
                    path.to_path_buf(),
                    "a parent is a file",
                ));
            }
            let fd = t.dir_fd(cur).map_err(io)?;
            let st = statat(&fd, part).map_err(io)?;
            if !is_dir(&st) {
                return Err(ProjectError::BadPath(
                    path.to_path_buf(),
                    "a parent is not a directory (symlinks are not followed)",
                ));
            }
            cur = self.real_node(t, cur, part, &st).map_err(io)?;
        }
        Ok(cur)
    }

    /// What a path relative to the mount root is, resolved through the lower directory
    /// fds (for the daemon itself, which never goes through its own mount).
    pub fn path_target(&self, rel: &Path) -> VResult<PathTarget> {
        let mut t = self.table.lock();
        let folded = self.fold_dot_dot(&mut t, rel)?;
        let rel = folded.as_path();
        let (parts, name) = Self::split(rel).map_err(|_| Errno::INVAL)?;
        let parent = self.walk_dirs(&mut t, &parts, rel).map_err(|e| match e {
            ProjectError::Io(_, e) => to_errno(e),
            _ => Errno::NOTDIR,
        })?;
        match Self::resolve(&t, parent, &name)? {
            Target::Projected(ino) => {
                let e = self.node_attr(&t, ino)?;
                let f = t.get(ino)?.file()?;
                let Content::Projected(p) = &f.content else {
                    return Err(Errno::IO);
                };
                Ok(PathTarget::Projected {
                    id: e.attr.ino,
                    size: e.attr.size,
                    mtime: e.attr.mtime,
                    ctime: e.attr.ctime,
                    digest: p.digest(),
                })
            }
            Target::Real(st) if is_dir(&st) => Ok(PathTarget::Dir),
            Target::Real(st) => Ok(PathTarget::Real {
                at: RealAt::Beneath {
                    dirfd: t.dir_fd(parent)?,
                    name,
                },
                is_file: st.st_mode & libc::S_IFMT == libc::S_IFREG,
            }),
            Target::Missing => Err(Errno::NOENT),
        }
    }

    /// `rel` without `.` and `..` components (a compiler names `dir/../x.h` when an include
    /// climbs out of a header's directory). Each component a `..` climbs out of must be a
    /// real directory (no symlink is followed, so the lexical parent is the real one); a
    /// `..` above the mount's root is refused.
    fn fold_dot_dot(&self, t: &mut Table, rel: &Path) -> VResult<PathBuf> {
        if !rel
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Ok(rel.to_path_buf());
        }
        let mut parts: Vec<OsString> = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => parts.push(n.to_os_string()),
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.is_empty() {
                        return Err(Errno::INVAL);
                    }
                    // What is climbed out of must be a real directory.
                    self.walk_dirs(t, &parts, rel).map_err(|e| match e {
                        ProjectError::Io(_, e) => to_errno(e),
                        _ => Errno::NOTDIR,
                    })?;
                    parts.pop();
                }
                Component::RootDir | Component::Prefix(_) => return Err(Errno::INVAL),
            }
        }
        Ok(parts.iter().collect())
    }

    /// The node of the real directory at `rel` (`""`: the root).
    fn dir_at(&self, t: &mut Table, rel: &Path) -> VResult<Ino> {
        if rel.as_os_str().is_empty() {
            return Ok(ROOT);
        }
        let (parts, name) = Self::split(rel).map_err(|_| Errno::INVAL)?;
        let parent = self.walk_dirs(t, &parts, rel).map_err(|e| match e {
            ProjectError::Io(_, e) => to_errno(e),
            _ => Errno::NOTDIR,
        })?;
        match Self::resolve(t, parent, &name)? {
            Target::Real(st) if is_dir(&st) => self.real_node(t, parent, &name, &st),
            Target::Missing => Err(Errno::NOENT),
            _ => Err(Errno::NOTDIR),
        }
    }

    /// A fd of the lower directory at `rel` (`""`: the root).
    pub fn lower_dir_fd(&self, rel: &Path) -> VResult<Arc<OwnedFd>> {
        let mut t = self.table.lock();
        let ino = self.dir_at(&mut t, rel)?;
        t.dir_fd(ino)
    }

    /// The names in the directory at `rel` (`""`: the root), real and projected, read
    /// through the lower directory fds.
    pub fn list_dir(&self, rel: &Path) -> VResult<Vec<OsString>> {
        let (fd, projected) = {
            let mut t = self.table.lock();
            let ino = self.dir_at(&mut t, rel)?;
            let d = t.dir(ino)?;
            let names: Vec<OsString> = d.projected.keys().cloned().collect();
            (t.dir_fd(ino)?, names)
        };
        // Read the lower directory without the table lock.
        let fd = rustix::fs::openat(
            &*fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut out = projected;
        let mut dir = rustix::fs::Dir::read_from(&fd)?;
        while let Some(e) = dir.read() {
            let name = e?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                out.push(OsString::from(std::ffi::OsStr::from_bytes(&name)));
            }
        }
        Ok(out)
    }

    /// The bytes of a projected file at `rel`, or `None` if it is not projected.
    pub fn projected_bytes(&self, rel: &Path) -> Option<Vec<u8>> {
        self.projection_at(rel).map(|p| p.bytes().to_vec())
    }

    /// The projection at `rel` (its pack entry and metadata), `None` if it is not projected.
    pub fn projection_at(&self, rel: &Path) -> Option<Projection> {
        let (parts, name) = Self::split(rel).ok()?;
        let mut t = self.table.lock();
        let parent = self.walk_dirs(&mut t, &parts, rel).ok()?;
        let ino = t.projected_child(parent, &name).ok()??;
        match &t.get(ino).ok()?.file().ok()?.content {
            Content::Projected(p) => Some(p.clone()),
            Content::Real => None,
        }
    }

    /// Makes the real directories `rels` (parents first; each parent must exist or come
    /// earlier in the list), as a process's `mkdir` through the mount would, and returns
    /// once every process sees them. A directory already there is left as it is.
    pub fn make_dirs(&self, rels: &[std::path::PathBuf]) -> Result<(), ProjectError> {
        let mut invals = Vec::new();
        let mut failed = None;
        {
            let mut t = self.table.lock();
            for rel in rels {
                let io = |e: Errno| ProjectError::Io(rel.clone(), e.into());
                let r = (|| {
                    let (parts, name) = Self::split(rel)?;
                    let parent = self.walk_dirs(&mut t, &parts, rel)?;
                    match Self::resolve(&t, parent, &name).map_err(io)? {
                        Target::Real(st) if is_dir(&st) => return Ok(()),
                        Target::Missing => {}
                        _ => return Err(ProjectError::BadPath(rel.clone(), "not a directory")),
                    }
                    let fd = t.dir_fd(parent).map_err(io)?;
                    match rustix::fs::mkdirat(&*fd, &name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(io(e)),
                    }
                    // The kernel may hold a negative entry for the name, and the parent's
                    // attributes (link count, times) changed.
                    invals.push(Inval::Entry(parent, name));
                    invals.push(Inval::Inode(parent));
                    Ok(())
                })();
                if let Err(e) = r {
                    failed = Some(e);
                    break;
                }
            }
        }
        let sent = self.send_invals(invals);
        if let Some(e) = failed {
            return Err(e);
        }
        sent.map_err(ProjectError::Kernel)
    }

    /// Projects entries, replacing whatever was at their paths, and returns once every
    /// process can see them (spec M9). All-or-nothing per item; items are applied in order.
    pub fn project(&self, items: &[ProjectItem]) -> Result<Vec<Ino>, ProjectError> {
        let mut plans = Vec::with_capacity(items.len());
        for it in items {
            let (parts, name) = Self::split(&it.path)?;
            if it.index >= it.pack.header.entries.len() {
                return Err(ProjectError::BadEntry(it.path.clone(), it.index));
            }
            plans.push((parts, name));
        }
        let mut inos = Vec::with_capacity(items.len());
        let mut invals = Vec::new();
        let mut touched: Vec<Ino> = Vec::new();
        let mut failed = None;
        {
            let mut t = self.table.lock();
            let now = self.now();
            for (it, (parts, name)) in items.iter().zip(&plans) {
                match self.project_one(&mut t, it, parts, name, now, &mut invals, &mut touched) {
                    Ok(ino) => inos.push(ino),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        // What changed is invalidated even if an item failed.
        invals.extend(touched.into_iter().map(Inval::Inode));
        let sent = self.send_invals(invals);
        self.maybe_compact();
        if let Some(e) = failed {
            return Err(e);
        }
        sent.map_err(ProjectError::Kernel)?;
        Ok(inos)
    }

    /// One item of [`Vfs::project`], under the lock.
    #[allow(clippy::too_many_arguments)]
    fn project_one(
        &self,
        t: &mut Table,
        it: &ProjectItem,
        parts: &[OsString],
        name: &OsString,
        now: NanoTime,
        invals: &mut Vec<Inval>,
        touched: &mut Vec<Ino>,
    ) -> Result<Ino, ProjectError> {
        let io = |e: Errno| ProjectError::Io(it.path.clone(), e.into());
        let parent = self.walk_dirs(t, parts, &it.path)?;
        match Self::resolve(t, parent, name).map_err(io)? {
            Target::Projected(old) => {
                self.remove_projected_name(t, parent, name, old)
                    .map_err(io)?;
                invals.push(Inval::Inode(old));
            }
            Target::Real(st) => {
                if is_dir(&st) {
                    return Err(ProjectError::BadPath(it.path.clone(), "is a directory"));
                }
                let fd = t.dir_fd(parent).map_err(io)?;
                rustix::fs::unlinkat(&*fd, name, AtFlags::empty()).map_err(io)?;
                // The file may live on under other names: its link count changed
                // behind the kernel's back.
                if let Some(&old) = t.by_lower.get(&lower_id(&st)) {
                    invals.push(Inval::Inode(old));
                }
                self.real_name_removed(t, parent, name, &st);
            }
            Target::Missing => {}
        }
        let ino = t.alloc();
        let id = self.next_proj.fetch_add(1, Ordering::Relaxed);
        let size = it.pack.header.entries[it.index].size;
        let p = Projection {
            id,
            pack: it.pack.clone(),
            index: it.index,
            size,
            meta: Meta {
                perm: it.perm & 0o7777,
                uid: self.uid,
                gid: self.gid,
                atime: it.mtime,
                mtime: it.mtime,
                ctime: now,
            },
        };
        let put = Record::Put {
            id,
            path: journal::path_bytes(&it.path),
            pack: p.pack.id,
            index: it.index as u32,
            size,
            meta: p.meta,
        };
        t.nodes
            .insert(ino, Node::projected(vec![(parent, name.clone())], p));
        t.get_mut(parent)
            .and_then(|n| n.dir_mut())
            .map_err(io)?
            .projected
            .insert(name.clone(), ino);
        self.journal_after(t, put);
        // Once per directory: an entry's outputs share one.
        if !touched.contains(&parent) {
            Self::touch_dir(t, parent);
            touched.push(parent);
        }
        invals.push(Inval::Entry(parent, name.clone()));
        Ok(ino)
    }

    /// Writes a real file with the given bytes, mode and mtime at `rel`, replacing whatever
    /// file or projection was there, and returns once every process sees it. Used for
    /// outputs whose bytes differ from their pack (a rewritten dep-info file).
    pub fn put_real(
        &self,
        rel: &Path,
        bytes: &[u8],
        perm: u16,
        mtime: NanoTime,
    ) -> Result<(), ProjectError> {
        let (parts, name) = Self::split(rel)?;
        let io = |e: Errno| ProjectError::Io(rel.to_path_buf(), e.into());
        // The bytes are written without the table lock, into a named temp file (a rename
        // replaces a real file atomically), then renamed into place under the lock.
        let dir = {
            let mut t = self.table.lock();
            let parent = self.walk_dirs(&mut t, &parts, rel)?;
            t.dir_fd(parent).map_err(io)?
        };
        let tmp = TempFile::create_named(dir, "put", &self.next_fh).map_err(io)?;
        (|| {
            use std::io::Write;
            (&tmp.file).write_all(bytes).map_err(to_errno)?;
            rustix::fs::fchmod(&tmp.file, Mode::from_raw_mode(perm as u32 & 0o7777))?;
            rustix::fs::futimens(
                &tmp.file,
                &Timestamps {
                    last_access: timespec(mtime),
                    last_modification: timespec(mtime),
                },
            )
        })()
        .map_err(io)?;
        let mut invals = Vec::new();
        {
            let mut t = self.table.lock();
            let parent = self.walk_dirs(&mut t, &parts, rel)?;
            let fd = t.dir_fd(parent).map_err(io)?;
            match Self::resolve(&t, parent, &name).map_err(io)? {
                Target::Projected(old) => {
                    self.remove_projected_name(&mut t, parent, &name, old)
                        .map_err(io)?;
                    invals.push(Inval::Inode(old));
                }
                Target::Real(st) => {
                    if is_dir(&st) {
                        return Err(ProjectError::BadPath(rel.to_path_buf(), "is a directory"));
                    }
                    if let Some(&old) = t.by_lower.get(&lower_id(&st)) {
                        invals.push(Inval::Inode(old));
                    }
                    self.real_name_removed(&mut t, parent, &name, &st);
                }
                Target::Missing => {}
            }
            tmp.link_at(&fd, &name, true).map_err(io)?;
            Self::touch_dir(&t, parent);
            invals.push(Inval::Entry(parent, name.clone()));
            invals.push(Inval::Inode(parent));
        }
        self.send_invals(invals).map_err(ProjectError::Kernel)
    }

    /// Turns the real file at `rel` into a projection of `pack`'s entry `index` with the
    /// same inode number, mode and times, for all its names (a miss's output once it is
    /// stored). The caller checked that the file holds the entry's bytes when it had the
    /// stat `expect`; if anything differs now, or the file is open, it stays real.
    pub fn convert_to_projection(
        &self,
        rel: &Path,
        pack: Arc<Pack>,
        index: usize,
        expect: &crate::os::FileStat,
    ) -> Result<Result<Ino, KeptReal>, ProjectError> {
        let (parts, name) = Self::split(rel)?;
        let io = |e: Errno| ProjectError::Io(rel.to_path_buf(), e.into());
        let entry = pack
            .header
            .entries
            .get(index)
            .ok_or_else(|| ProjectError::BadEntry(rel.to_path_buf(), index))?;
        let size = entry.size;
        let mut t = self.table.lock();
        let parent = self.walk_dirs(&mut t, &parts, rel)?;
        let st = match Self::resolve(&t, parent, &name).map_err(io)? {
            Target::Real(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => st,
            _ => return Ok(Err(KeptReal::NotRealFile)),
        };
        let id = lower_id(&st);
        let same = id == (expect.dev, expect.ino)
            && st.st_size as u64 == expect.size
            && size == expect.size
            && ns(st.st_mtime, st.st_mtime_nsec) == expect.mtime
            && ns(st.st_ctime, st.st_ctime_nsec) == expect.ctime;
        if !same {
            return Ok(Err(KeptReal::Changed));
        }
        let ino = self.real_node(&mut t, parent, &name, &st).map_err(io)?;
        let f = t.get(ino).and_then(|n| n.file()).map_err(io)?;
        if f.cached_opens > 0 || f.passthrough_opens > 0 {
            return Ok(Err(KeptReal::Open));
        }
        let names = f.names.clone();
        if names.len() as u64 != st.st_nlink {
            return Ok(Err(KeptReal::UnknownNames));
        }
        // Every known name must still be this lower file.
        let mut dirs = Vec::with_capacity(names.len());
        for (p, n) in &names {
            let fd = t.dir_fd(*p).map_err(io)?;
            match statat(&fd, n) {
                Ok(s) if lower_id(&s) == id => {}
                _ => return Ok(Err(KeptReal::UnknownNames)),
            }
            let dst = rustix::fs::fstat(&*fd).map_err(io)?;
            dirs.push((fd, dst));
        }

        let pid = self.next_proj.fetch_add(1, Ordering::Relaxed);
        let p = Projection {
            id: pid,
            pack,
            index,
            size,
            meta: Meta {
                perm: (st.st_mode & 0o7777) as u16,
                uid: st.st_uid,
                gid: st.st_gid,
                atime: ns(st.st_atime, st.st_atime_nsec),
                mtime: expect.mtime,
                ctime: expect.ctime,
            },
        };
        // Journal first: a crash before the unlinks leaves the real names, which win over
        // the journal's at replay. A journal that cannot take the records keeps it real.
        for (i, (p_ino, n)) in names.iter().enumerate() {
            let path = t.dir_path(*p_ino).map_err(io)?.join(n);
            let r = if i == 0 {
                Record::Put {
                    id: pid,
                    path: journal::path_bytes(&path),
                    pack: p.pack.id,
                    index: index as u32,
                    size,
                    meta: p.meta,
                }
            } else {
                Record::AddName {
                    id: pid,
                    path: journal::path_bytes(&path),
                }
            };
            if self.journal_before(&r).is_err() {
                if i > 0 {
                    let _ = self.journal_before(&Record::Drop { id: pid });
                }
                return Ok(Err(KeptReal::Journal));
            }
        }
        let mut kept = Vec::new();
        for (i, ((p_ino, n), (fd, dst))) in names.iter().zip(&dirs).enumerate() {
            if let Err(e) = rustix::fs::unlinkat(&**fd, n, AtFlags::empty()) {
                warn!("converting {rel:?}: cannot unlink {n:?}: {e}");
                if i == 0 {
                    let _ = self.journal_before(&Record::Drop { id: pid });
                    return Err(io(e));
                }
                // The journal's name is shadowed by the real file at replay.
                kept.push((*p_ino, n.clone()));
                continue;
            }
            // The directory did not change for anyone looking: keep its mtime.
            let _ = rustix::fs::utimensat(
                rustix::fs::CWD,
                proc_fd(fd),
                &Timestamps {
                    last_access: Timespec {
                        tv_sec: 0,
                        tv_nsec: rustix::fs::UTIME_OMIT,
                    },
                    last_modification: Timespec {
                        tv_sec: dst.st_mtime,
                        tv_nsec: dst.st_mtime_nsec as _,
                    },
                },
                AtFlags::empty(),
            );
            if let Ok(d) = t.get_mut(*p_ino).and_then(|n| n.dir_mut()) {
                d.projected.insert(n.clone(), ino);
            }
        }
        if kept.is_empty() {
            t.lower_gone(id);
        } else {
            // The names that could not be unlinked stay a real file of their own.
            t.by_lower.remove(&id);
            for (p_ino, n) in &kept {
                let dfd = t.dir_fd(*p_ino).map_err(io)?;
                let st = statat(&dfd, n).map_err(io)?;
                self.real_node(&mut t, *p_ino, n, &st).map_err(io)?;
            }
        }
        let f = t.get_mut(ino).and_then(|n| n.file_mut()).map_err(io)?;
        f.names.retain(|x| !kept.contains(x));
        f.content = Content::Projected(p);
        f.lower = None;
        f.last_attr = None;
        Ok(Ok(ino))
    }
}
