//! The inode table: every node the kernel knows or that carries a projection.
//! Invariants are in `docs/mount.md` ("Inodes").

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::fsutil::NanoTime;
use crate::store::pack::Pack;

use super::types::{Attr, Errno, FileKind, Ino, ROOT, VResult};

/// A lower inode: (st_dev, st_ino).
pub type LowerId = (u64, u64);

/// A projected file: a slice of a pack with its own metadata.
#[derive(Debug, Clone)]
pub struct Projection {
    /// Identity in the journal.
    pub id: u64,
    pub pack: Arc<Pack>,
    /// Entry index in the pack.
    pub index: usize,
    pub size: u64,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub atime: NanoTime,
    pub mtime: NanoTime,
    pub ctime: NanoTime,
}

impl Projection {
    pub fn bytes(&self) -> &[u8] {
        self.pack.payload(self.index)
    }
}

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

#[derive(Debug)]
pub struct DirNode {
    /// `O_PATH` fd on the lower directory (follows it across renames).
    pub fd: Arc<OwnedFd>,
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

#[derive(Debug, Default)]
pub struct Table {
    pub nodes: HashMap<Ino, Node>,
    /// Lower inodes seen, with the number they got (also for entries only listed by
    /// readdir, which have no node yet).
    pub by_lower: HashMap<LowerId, Ino>,
    next_ino: Ino,
}

impl Table {
    pub fn new(root: DirNode) -> Table {
        let mut t = Table {
            nodes: HashMap::new(),
            by_lower: HashMap::new(),
            next_ino: ROOT + 1,
        };
        t.by_lower.insert(root.lower, ROOT);
        t.nodes.insert(
            ROOT,
            Node {
                kind: NodeKind::Dir(root),
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

    pub fn dir_fd(&self, ino: Ino) -> VResult<Arc<OwnedFd>> {
        let d = self.dir(ino)?;
        if d.removed {
            return Err(Errno::NOENT);
        }
        Ok(d.fd.clone())
    }

    /// The projected child `name` of directory `parent`, if any.
    pub fn projected_child(&self, parent: Ino, name: &OsStr) -> VResult<Option<Ino>> {
        Ok(self.dir(parent)?.projected.get(name).copied())
    }

    /// The path of a directory relative to the root (`""` for the root).
    pub fn dir_path(&self, mut ino: Ino) -> VResult<std::path::PathBuf> {
        let mut parts = Vec::new();
        while ino != ROOT {
            let d = self.dir(ino)?;
            if d.removed {
                return Err(Errno::NOENT);
            }
            parts.push(d.name.clone());
            ino = d.parent;
        }
        let mut p = std::path::PathBuf::new();
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
                NodeKind::Dir(d) => Some(d.lower),
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
}
