//! The namespace: lookups, creation of real entries (owned by the caller), removal,
//! hard links and renames of real and projected names, with the journal records that keep
//! projections where their names go.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, RenameFlags, Timespec, Timestamps};

use super::journal::{self, Record};
use super::table::{Content, DirNode, FileNode, Node, NodeKind, Table};
use super::*;

impl Vfs {
    // ----- lookup and forget ------------------------------------------------------------

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> VResult<EntryAttr> {
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

    /// The node for a real lower entry `name` in `parent` with stat `st`; creates it (and
    /// records the name) as needed.
    pub(super) fn real_node(
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
            NodeKind::Dir(DirNode {
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

    /// Restores mode bits our own umask stripped from a newly created lower entry.
    pub(super) fn fix_mode(&self, dirfd: &OwnedFd, name: &OsStr, mode: u32) -> VResult<()> {
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

    pub(super) fn new_entry(&self, t: &mut Table, parent: Ino, name: &OsStr) -> VResult<EntryAttr> {
        let fd = t.dir_fd(parent)?;
        let st = statat(&fd, name)?;
        let ino = self.real_node(t, parent, name, &st)?;
        t.get_mut(ino)?.nlookup += 1;
        Ok(EntryAttr {
            attr: attr_from_stat(ino, &st),
            cache: Cache::Long,
        })
    }

    pub fn mknod(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        rdev: u32,
        caller: Caller,
    ) -> VResult<EntryAttr> {
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
        self.own(&fd, name, caller, mode)?;
        self.new_entry(&mut t, parent, name)
    }

    pub fn mkdir(
        &self,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        caller: Caller,
    ) -> VResult<EntryAttr> {
        valid_name(name)?;
        let mut t = self.table.lock();
        if t.projected_child(parent, name)?.is_some() {
            return Err(Errno::EXIST);
        }
        let fd = t.dir_fd(parent)?;
        rustix::fs::mkdirat(&*fd, name, Mode::from_raw_mode(mode & 0o7777))?;
        self.fix_mode(&fd, name, mode)?;
        self.own(&fd, name, caller, mode | libc::S_IFDIR)?;
        self.new_entry(&mut t, parent, name)
    }

    pub fn symlink(
        &self,
        parent: Ino,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> VResult<EntryAttr> {
        valid_name(name)?;
        let mut t = self.table.lock();
        if t.projected_child(parent, name)?.is_some() {
            return Err(Errno::EXIST);
        }
        let fd = t.dir_fd(parent)?;
        rustix::fs::symlinkat(target, &*fd, name)?;
        self.own(&fd, name, caller, libc::S_IFLNK)?;
        self.new_entry(&mut t, parent, name)
    }

    /// Gives a new entry `name` in `dir` to `caller`, as a local filesystem would: its uid,
    /// and its gid unless the directory is setgid (then the entry keeps the directory's
    /// group, which the kernel gave it). `mode`: the entry's mode bits, re-applied if the
    /// change of owner cleared its setuid/setgid bits. Only a daemon running as root can
    /// give files away; otherwise they stay its user's (docs/mount.md).
    pub(super) fn own(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        caller: Caller,
        mode: u32,
    ) -> VResult<()> {
        if caller.uid == self.uid && caller.gid == self.gid {
            return Ok(());
        }
        if !rustix::process::geteuid().is_root() {
            return Ok(());
        }
        let setgid_dir = rustix::fs::fstat(dir)?.st_mode & libc::S_ISGID != 0;
        rustix::fs::chownat(
            dir,
            name,
            Some(rustix::process::Uid::from_raw(caller.uid)),
            (!setgid_dir).then(|| rustix::process::Gid::from_raw(caller.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        let kind = mode & libc::S_IFMT;
        if mode & 0o6000 != 0 && kind != libc::S_IFDIR && kind != libc::S_IFLNK {
            rustix::fs::chmodat(
                dir,
                name,
                Mode::from_raw_mode(mode & 0o7777),
                AtFlags::empty(),
            )?;
        }
        Ok(())
    }

    /// A directory's entries changed without its lower directory changing (a projected name
    /// came, went or moved): stamp its mtime and ctime as the kernel would.
    pub(super) fn touch_dir(t: &Table, dir: Ino) {
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
    pub(super) fn remove_projected_name(
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
            p.meta.ctime = now;
        }
        self.journal_after(
            t,
            Record::RemoveName {
                path: journal::path_bytes(&path),
            },
        );
        t.maybe_free(ino);
        Ok(())
    }

    /// Bookkeeping after a real lower name was removed (unlink, rename over).
    pub(super) fn real_name_removed(
        &self,
        t: &mut Table,
        parent: Ino,
        name: &OsStr,
        st: &rustix::fs::Stat,
    ) {
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
                if is_dir(st) {
                    t.forget_dir_fd(ino);
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

    pub fn link(&self, ino: Ino, newparent: Ino, newname: &OsStr) -> VResult<EntryAttr> {
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
                    p.meta.ctime = now;
                }
                node.nlookup += 1;
                self.journal_after(
                    &t,
                    Record::AddName {
                        id,
                        path: journal::path_bytes(&path),
                    },
                );
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
    pub(super) fn resolve(t: &Table, parent: Ino, name: &OsStr) -> VResult<Target> {
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
            p.meta.ctime = now;
        }
        self.journal_after(
            t,
            Record::Rename {
                from: journal::path_bytes(&from_path),
                to: journal::path_bytes(&to_path),
            },
        );
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
                    self.journal_after(
                        t,
                        Record::RenameDir {
                            from: journal::path_bytes(&fp),
                            to: journal::path_bytes(&tp),
                        },
                    );
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
                    self.notifier().inval_inode_later(moved);
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
                    self.journal_swap_dirs(t, &apath, &bpath);
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
    fn journal_swap_dirs(&self, t: &Table, a: &Path, b: &Path) {
        let tmp = PathBuf::from(format!("{}.zcfs-exchange", a.display()));
        let rec = |from: &Path, to: &Path| Record::RenameDir {
            from: journal::path_bytes(from),
            to: journal::path_bytes(to),
        };
        self.journal_after(t, rec(a, &tmp));
        self.journal_after(t, rec(b, a));
        self.journal_after(t, rec(&tmp, b));
    }
}
