//! The inode table: every node the kernel knows or that carries a projection.
//! Invariants are in `docs/mount.md` ("Inodes").
//!
//! Directory nodes do not hold file descriptors: a directory is reached through the lower
//! root fd and its path in the table (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`,
//! then checked against the node's lower inode), and a bounded LRU cache keeps the fds of
//! the directories in use. A cached fd follows its directory across renames; the path is
//! what the table says, which every rename through the mount keeps up to date.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::model::Projection;
use super::types::{Attr, Errno, FileKind, Ino, ROOT, VResult};

/// A lower inode: (st_dev, st_ino).
pub type LowerId = (u64, u64);

#[derive(Debug)]
pub enum Content {
    /// A real file in the lower dir; its attributes come from there.
    Real,
    Projected(Projection),
}

#[derive(Debug)]
pub struct FileNode {
    /// Every known name: (parent directory, name).
    pub names: Vec<(Ino, OsString)>,
    pub content: Content,
    /// The lower inode, for real files.
    pub lower: Option<LowerId>,
    pub kind: FileKind,
    /// Opens served by the daemon (cached mode) and by the kernel (passthrough).
    pub cached_opens: u32,
    pub passthrough_opens: u32,
    /// Last attributes seen, for a real file that lost all its names while still open.
    pub last_attr: Option<Attr>,
}

impl FileNode {
    /// The projection, if the file is projected.
    pub fn projection(&self) -> Option<&Projection> {
        match &self.content {
            Content::Projected(p) => Some(p),
            Content::Real => None,
        }
    }
}

#[derive(Debug)]
pub struct DirNode {
    pub parent: Ino,
    pub name: OsString,
    pub lower: LowerId,
    /// Projected children, by name.
    pub projected: BTreeMap<OsString, Ino>,
    pub removed: bool,
}

#[derive(Debug)]
pub enum NodeKind {
    Dir(DirNode),
    File(FileNode),
}

#[derive(Debug)]
pub struct Node {
    pub kind: NodeKind,
    /// Lookups the kernel holds (decremented by FORGET).
    pub nlookup: u64,
}

impl Node {
    /// A projected file with these names, not looked up by the kernel yet.
    pub fn projected(names: Vec<(Ino, OsString)>, p: Projection) -> Node {
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
        }
    }

    pub fn dir(&self) -> VResult<&DirNode> {
        match &self.kind {
            NodeKind::Dir(d) => Ok(d),
            NodeKind::File(_) => Err(Errno::NOTDIR),
        }
    }
    pub fn dir_mut(&mut self) -> VResult<&mut DirNode> {
        match &mut self.kind {
            NodeKind::Dir(d) => Ok(d),
            NodeKind::File(_) => Err(Errno::NOTDIR),
        }
    }
    pub fn file(&self) -> VResult<&FileNode> {
        match &self.kind {
            NodeKind::File(f) => Ok(f),
            NodeKind::Dir(_) => Err(Errno::ISDIR),
        }
    }
    pub fn file_mut(&mut self) -> VResult<&mut FileNode> {
        match &mut self.kind {
            NodeKind::File(f) => Ok(f),
            NodeKind::Dir(_) => Err(Errno::ISDIR),
        }
    }
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir(_))
    }
}

/// The fds of directories in use, least recently used first out.
#[derive(Debug)]
struct DirFds {
    map: HashMap<Ino, (Arc<OwnedFd>, u64)>,
    tick: u64,
    cap: usize,
}

#[derive(Debug)]
pub struct Table {
    pub nodes: HashMap<Ino, Node>,
    /// Lower inodes seen, with the number they got (also for entries only listed by
    /// readdir, which have no node yet).
    pub by_lower: HashMap<LowerId, Ino>,
    next_ino: Ino,
    root_fd: Arc<OwnedFd>,
    fds: RefCell<DirFds>,
}

impl Table {
    /// A table whose root is the lower directory `root_fd` (with lower id `root_lower`),
    /// keeping at most `fd_cap` directory fds open besides the root's.
    pub fn new(root_fd: Arc<OwnedFd>, root_lower: LowerId, fd_cap: usize) -> Table {
        let mut t = Table {
            nodes: HashMap::new(),
            by_lower: HashMap::new(),
            next_ino: ROOT + 1,
            root_fd,
            fds: RefCell::new(DirFds {
                map: HashMap::new(),
                tick: 0,
                cap: fd_cap.max(1),
            }),
        };
        t.by_lower.insert(root_lower, ROOT);
        t.nodes.insert(
            ROOT,
            Node {
                kind: NodeKind::Dir(DirNode {
                    parent: ROOT,
                    name: OsString::new(),
                    lower: root_lower,
                    projected: Default::default(),
                    removed: false,
                }),
                nlookup: 1,
            },
        );
        t
    }

    pub fn alloc(&mut self) -> Ino {
        let i = self.next_ino;
        self.next_ino += 1;
        i
    }

    /// The number of a lower inode, allocating one if it has none.
    pub fn ino_for_lower(&mut self, id: LowerId) -> Ino {
        if let Some(i) = self.by_lower.get(&id) {
            return *i;
        }
        let i = self.alloc();
        self.by_lower.insert(id, i);
        i
    }

    pub fn get(&self, ino: Ino) -> VResult<&Node> {
        self.nodes.get(&ino).ok_or(Errno::STALE)
    }

    pub fn get_mut(&mut self, ino: Ino) -> VResult<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::STALE)
    }

    pub fn dir(&self, ino: Ino) -> VResult<&DirNode> {
        self.get(ino)?.dir()
    }

    /// An fd of a directory's lower directory: cached, or opened beneath the root by its
    /// path and checked to be the same lower inode.
    pub fn dir_fd(&self, ino: Ino) -> VResult<Arc<OwnedFd>> {
        if ino == ROOT {
            return Ok(self.root_fd.clone());
        }
        let d = self.dir(ino)?;
        if d.removed {
            return Err(Errno::NOENT);
        }
        {
            let mut fds = self.fds.borrow_mut();
            fds.tick += 1;
            let tick = fds.tick;
            if let Some((fd, used)) = fds.map.get_mut(&ino) {
                *used = tick;
                return Ok(fd.clone());
            }
        }
        let path = self.dir_path(ino)?;
        let fd = open_beneath(&self.root_fd, &path)?;
        let st = rustix::fs::fstat(&fd)?;
        if (st.st_dev, st.st_ino) != d.lower {
            // Changed behind the mount's back: not the directory the table knows.
            return Err(Errno::STALE);
        }
        let fd = Arc::new(fd);
        let mut fds = self.fds.borrow_mut();
        if fds.map.len() >= fds.cap {
            // Drop the least recently used quarter at once.
            let mut ages: Vec<(u64, Ino)> = fds.map.iter().map(|(i, (_, u))| (*u, *i)).collect();
            ages.sort_unstable();
            let drop = (fds.cap / 4).max(1);
            for (_, i) in ages.into_iter().take(drop) {
                fds.map.remove(&i);
            }
        }
        let tick = fds.tick;
        fds.map.insert(ino, (fd.clone(), tick));
        Ok(fd)
    }

    /// Directory fds held open now (besides the root's).
    pub fn open_dir_fds(&self) -> usize {
        self.fds.borrow().map.len()
    }

    /// Forgets a directory's cached fd (it was removed or its node freed).
    pub fn forget_dir_fd(&self, ino: Ino) {
        self.fds.borrow_mut().map.remove(&ino);
    }

    /// The projected child `name` of directory `parent`, if any.
    pub fn projected_child(&self, parent: Ino, name: &OsStr) -> VResult<Option<Ino>> {
        Ok(self.dir(parent)?.projected.get(name).copied())
    }

    /// The path of a directory relative to the root (`""` for the root).
    pub fn dir_path(&self, mut ino: Ino) -> VResult<PathBuf> {
        let mut parts = Vec::new();
        while ino != ROOT {
            let d = self.dir(ino)?;
            if d.removed {
                return Err(Errno::NOENT);
            }
            parts.push(d.name.clone());
            ino = d.parent;
            if parts.len() > 4096 {
                return Err(Errno::LOOP);
            }
        }
        let mut p = PathBuf::new();
        for part in parts.iter().rev() {
            p.push(part);
        }
        Ok(p)
    }

    /// Drops a node that nobody can reach or hold any more.
    pub fn maybe_free(&mut self, ino: Ino) {
        if ino == ROOT {
            return;
        }
        let Some(node) = self.nodes.get(&ino) else {
            return;
        };
        let free = match &node.kind {
            NodeKind::File(f) => {
                node.nlookup == 0
                    && f.names.is_empty()
                    && f.cached_opens == 0
                    && f.passthrough_opens == 0
            }
            NodeKind::Dir(d) => node.nlookup == 0 && d.removed,
        };
        if free && let Some(node) = self.nodes.remove(&ino) {
            let lower = match &node.kind {
                NodeKind::File(f) => f.lower,
                NodeKind::Dir(d) => {
                    self.forget_dir_fd(ino);
                    Some(d.lower)
                }
            };
            if let Some(l) = lower
                && self.by_lower.get(&l) == Some(&ino)
            {
                self.by_lower.remove(&l);
            }
        }
    }

    /// Forgets the number of a lower inode whose last name is gone, so that a new file that
    /// reuses the lower number gets a new one.
    pub fn lower_gone(&mut self, id: LowerId) {
        if let Some(ino) = self.by_lower.remove(&id)
            && let Some(Node {
                kind: NodeKind::File(f),
                ..
            }) = self.nodes.get_mut(&ino)
        {
            f.lower = None;
        }
    }

    /// Every projected file with a name: (inode, projection, names as paths from the root).
    /// The journal is compacted from this (the table is the truth).
    pub fn projections(&self) -> Vec<(Ino, &Projection, Vec<PathBuf>)> {
        let mut out = Vec::new();
        for (ino, n) in &self.nodes {
            let NodeKind::File(f) = &n.kind else { continue };
            let Some(p) = f.projection() else { continue };
            let names: Vec<PathBuf> = f
                .names
                .iter()
                .filter_map(|(parent, name)| self.dir_path(*parent).ok().map(|d| d.join(name)))
                .collect();
            if !names.is_empty() {
                out.push((*ino, p, names));
            }
        }
        out.sort_by_key(|(_, p, _)| p.id);
        out
    }
}

/// Opens the directory at `path` beneath `root` without following symlinks or leaving it.
fn open_beneath(root: &OwnedFd, path: &std::path::Path) -> VResult<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat2(
        root,
        path,
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        Err(Errno::NOSYS) => {
            // Kernels before 5.6: one component at a time, none a symlink.
            let mut cur = rustix::fs::openat(root, ".", flags, Mode::empty())?;
            for c in path.components() {
                cur = rustix::fs::openat(&cur, c.as_os_str(), flags, Mode::empty())?;
            }
            Ok(cur)
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_root(p: &std::path::Path) -> (Arc<OwnedFd>, LowerId) {
        let fd = rustix::fs::open(p, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let st = rustix::fs::fstat(&fd).unwrap();
        (Arc::new(fd), (st.st_dev, st.st_ino))
    }

    fn add_dir(t: &mut Table, parent: Ino, name: &str, lower: &std::path::Path) -> Ino {
        let st = rustix::fs::stat(lower).unwrap();
        let ino = t.ino_for_lower((st.st_dev, st.st_ino));
        t.nodes.insert(
            ino,
            Node {
                kind: NodeKind::Dir(DirNode {
                    parent,
                    name: name.into(),
                    lower: (st.st_dev, st.st_ino),
                    projected: Default::default(),
                    removed: false,
                }),
                nlookup: 1,
            },
        );
        ino
    }

    #[test]
    fn directory_fds_are_bounded_reopened_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (root, lower) = open_root(dir.path());
        let mut t = Table::new(root, lower, 8);
        let mut inos = Vec::new();
        for i in 0..40 {
            let name = format!("d{i}");
            std::fs::create_dir(dir.path().join(&name)).unwrap();
            inos.push(add_dir(&mut t, ROOT, &name, &dir.path().join(&name)));
        }
        for ino in &inos {
            t.dir_fd(*ino).unwrap();
            assert!(t.open_dir_fds() <= 8);
        }
        // A directory whose cached fd was dropped is reopened by its path.
        let fd = t.dir_fd(inos[0]).unwrap();
        let st = rustix::fs::fstat(&*fd).unwrap();
        assert_eq!((st.st_dev, st.st_ino), t.dir(inos[0]).unwrap().lower);
        // Replaced behind the table's back: refused, not confused with the new one.
        t.forget_dir_fd(inos[1]);
        std::fs::rename(dir.path().join("d1"), dir.path().join("moved")).unwrap();
        std::fs::rename(dir.path().join("d39"), dir.path().join("d1")).unwrap();
        assert_eq!(t.dir_fd(inos[1]).unwrap_err(), Errno::STALE);
        // A symlink in its place is never followed out of the root.
        t.forget_dir_fd(inos[2]);
        std::fs::remove_dir(dir.path().join("d2")).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("d2")).unwrap();
        assert!(t.dir_fd(inos[2]).is_err());
    }
}
