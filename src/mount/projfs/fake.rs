//! A model of ProjFS for the tests: the virtualization root's on-disk states (directories,
//! placeholders, hydrated placeholders, full files, tombstones), open handles with delete
//! sharing, the negative path cache, and when ProjFS calls the provider. Processes act
//! through the client methods (`open`, `read_all`, `rename`, `delete`, `list`...), which
//! call the provider's callbacks as ProjFS would; the provider acts through [`ProjFs`].
//!
//! Modelled after the ProjFS documentation and the notes of VFS for Git and EdenFS:
//! - a full directory (made by a tool) never consults the provider; a placeholder one does
//!   for names not on disk (unless the negative path cache has them) and for listings;
//! - reading a placeholder hydrates it (`GetFileData`, aligned chunks); opening one for
//!   writing hydrates it, sends `PRE_CONVERT_TO_FULL` and makes it full; truncating sends
//!   `FILE_OVERWRITTEN`; closing a written handle sends `CLOSED_FILE_MODIFIED`;
//! - deleting or renaming away a name in a placeholder directory leaves a tombstone;
//!   directory placeholders cannot be renamed;
//! - with no provider running, placeholders cannot be read and placeholder directories
//!   cannot be listed (`STATUS_FILE_SYSTEM_VIRTUALIZATION_UNAVAILABLE`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::ProviderSlot;
use super::api::{
    DataSink, DeleteError, DirSink, FileInfo, Notification, OnDisk, ProjFs, Status, UpdateFlags,
};
use crate::projection::relpath::{RelPath, fold_name};

/// What a process sees go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsErr {
    NotFound,
    /// `STATUS_FILE_SYSTEM_VIRTUALIZATION_UNAVAILABLE`.
    Unavailable,
    SharingViolation,
    InvalidOperation,
    /// The provider failed a callback.
    Provider(Status),
}

#[derive(Debug, Clone)]
pub enum Kind {
    Dir {
        placeholder: bool,
    },
    Placeholder {
        info: FileInfo,
        cid: Vec<u8>,
    },
    Hydrated {
        info: FileInfo,
        cid: Vec<u8>,
        bytes: Vec<u8>,
    },
    Full {
        bytes: Vec<u8>,
        mtime: i128,
    },
    Tombstone,
}

#[derive(Debug, Clone)]
struct Item {
    /// The path as spelled when created.
    path: RelPath,
    obj: u64,
    kind: Kind,
}

struct Handle {
    obj: u64,
    write: bool,
    share_delete: bool,
    modified: bool,
    pid: u32,
    path: RelPath,
}

#[derive(Default)]
struct Disk {
    items: BTreeMap<String, Item>,
    orphans: HashMap<u64, Item>,
    handles: HashMap<u64, Handle>,
    negative: HashSet<String>,
    running: bool,
    next: u64,
}

impl Disk {
    /// Puts a new object at `path` (replacing what the name held); returns its id.
    fn put(&mut self, path: &RelPath, kind: Kind) -> u64 {
        let obj = self.next;
        self.next += 1;
        self.items.insert(
            fold(path),
            Item {
                path: path.clone(),
                obj,
                kind,
            },
        );
        obj
    }
}

/// How a process opens a file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open {
    pub write: bool,
    pub truncate: bool,
    pub create: bool,
    /// `FILE_SHARE_DELETE` (Rust's std opens with it).
    pub share_delete: bool,
}

pub struct Fake {
    disk: Mutex<Disk>,
    slot: Mutex<Option<Arc<dyn ProviderSlot>>>,
    /// The daemon's process id (its own writes go through ProjFS like any other).
    pub daemon_pid: u32,
    pub alignment: usize,
    /// Directory entries one `GetDirectoryEnumeration` buffer holds.
    pub enum_capacity: usize,
    /// Every `GetFileData` write: (offset, len).
    pub data_writes: Mutex<Vec<(u64, usize)>>,
    pub negative_clears: Mutex<u64>,
    /// Notifications sent, in order: (path, notification).
    pub sent: Mutex<Vec<(String, Notification)>>,
}

fn fold(p: &RelPath) -> String {
    p.fold()
}

fn wire(p: &RelPath) -> String {
    p.as_str().replace('/', "\\")
}

struct Collect<'a> {
    align: usize,
    size: u64,
    out: Vec<u8>,
    log: &'a Mutex<Vec<(u64, usize)>>,
}

impl DataSink for Collect<'_> {
    fn alignment(&self) -> usize {
        self.align
    }
    fn write(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let end = offset + bytes.len() as u64;
        // ProjFS refuses unaligned writes but for the one that ends the file.
        let a = self.align as u64;
        if !offset.is_multiple_of(a) || (end != self.size && !end.is_multiple_of(a)) {
            return Err(io::Error::other("unaligned PrjWriteFileData"));
        }
        if self.out.len() < end as usize {
            self.out.resize(end as usize, 0);
        }
        self.out[offset as usize..end as usize].copy_from_slice(bytes);
        self.log.lock().push((offset, bytes.len()));
        Ok(())
    }
}

struct Entries {
    cap: usize,
    out: Vec<(String, FileInfo)>,
}

impl DirSink for Entries {
    fn add(&mut self, name: &str, info: &FileInfo) -> bool {
        if self.out.len() >= self.cap {
            return false;
        }
        self.out.push((name.to_string(), info.clone()));
        true
    }
}

impl Fake {
    pub fn new(daemon_pid: u32) -> Arc<Fake> {
        let mut d = Disk {
            running: true,
            ..Disk::default()
        };
        d.items.insert(
            String::new(),
            Item {
                path: RelPath::root(),
                obj: 0,
                kind: Kind::Dir { placeholder: false },
            },
        );
        d.next = 1;
        Arc::new(Fake {
            disk: Mutex::new(d),
            slot: Mutex::new(None),
            daemon_pid,
            alignment: 4096,
            enum_capacity: 2,
            data_writes: Mutex::new(Vec::new()),
            negative_clears: Mutex::new(0),
            sent: Mutex::new(Vec::new()),
        })
    }

    /// `PrjStartVirtualizing`: callbacks go to the provider in `slot`; the root is marked.
    pub fn start(&self, slot: Arc<dyn ProviderSlot>) {
        *self.slot.lock() = Some(slot);
        let mut d = self.disk.lock();
        d.running = true;
        d.negative.clear();
        if let Some(r) = d.items.get_mut("") {
            r.kind = Kind::Dir { placeholder: true };
        }
    }

    /// The provider dies without cleaning up.
    pub fn crash(&self) {
        self.disk.lock().running = false;
        *self.slot.lock() = None;
    }

    fn provider(&self) -> Option<Arc<super::provider::Provider>> {
        self.slot.lock().as_ref().and_then(|s| s.get())
    }

    fn notify(&self, path: &RelPath, n: Notification, is_dir: bool, pid: u32) {
        self.sent.lock().push((path.to_string(), n.clone()));
        if let Some(p) = self.provider() {
            p.cb_notify(&wire(path), n, is_dir, pid);
        }
    }

    fn p(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    /// What is on disk at `path`, without asking the provider (for assertions).
    pub fn kind(&self, path: &str) -> Option<Kind> {
        self.disk
            .lock()
            .items
            .get(&fold(&Self::p(path)))
            .map(|i| i.kind.clone())
    }

    /// Resolves a name as an open would: on disk, or asked of the provider.
    fn resolve(&self, path: &RelPath, pid: u32) -> Result<Option<Item>, FsErr> {
        {
            let d = self.disk.lock();
            if let Some(i) = d.items.get(&fold(path)) {
                return Ok(match i.kind {
                    Kind::Tombstone => None,
                    _ => Some(i.clone()),
                });
            }
            let parent = path.parent().ok_or(FsErr::NotFound)?;
            match d.items.get(&fold(&parent)).map(|i| &i.kind) {
                Some(Kind::Dir { placeholder: true }) => {}
                Some(Kind::Dir { placeholder: false }) => return Ok(None),
                _ => return Err(FsErr::NotFound),
            }
            if d.negative.contains(&fold(path)) {
                return Ok(None);
            }
            if !d.running {
                return Err(FsErr::Unavailable);
            }
        }
        let provider = self.provider().ok_or(FsErr::Unavailable)?;
        match provider.cb_placeholder_info(&wire(path), pid) {
            Ok(ph) => {
                let mut d = self.disk.lock();
                let obj = d.next;
                d.next += 1;
                let item = d.items.entry(fold(path)).or_insert(Item {
                    path: path.clone(),
                    obj,
                    kind: Kind::Placeholder {
                        info: ph.info,
                        cid: ph.content_id,
                    },
                });
                Ok(Some(item.clone()))
            }
            Err(Status::NotFound) => {
                self.disk.lock().negative.insert(fold(path));
                Ok(None)
            }
            Err(s) => Err(FsErr::Provider(s)),
        }
    }

    fn find_obj(d: &mut Disk, obj: u64) -> Option<&mut Item> {
        if let Some(k) = d
            .items
            .iter()
            .find(|(_, i)| i.obj == obj)
            .map(|(k, _)| k.clone())
        {
            return d.items.get_mut(&k);
        }
        d.orphans.get_mut(&obj)
    }

    /// Fills a placeholder's bytes from the provider.
    fn hydrate(&self, obj: u64, pid: u32) -> Result<(), FsErr> {
        let (info, cid, path) = {
            let mut d = self.disk.lock();
            let running = d.running;
            let i = Self::find_obj(&mut d, obj).ok_or(FsErr::NotFound)?;
            match &i.kind {
                Kind::Placeholder { info, cid } => {
                    if !running {
                        return Err(FsErr::Unavailable);
                    }
                    (info.clone(), cid.clone(), i.path.clone())
                }
                _ => return Ok(()),
            }
        };
        let provider = self.provider().ok_or(FsErr::Unavailable)?;
        let mut sink = Collect {
            align: self.alignment,
            size: info.size,
            out: Vec::new(),
            log: &self.data_writes,
        };
        let _ = path;
        provider
            .cb_file_data(&cid, 0, info.size, pid, &mut sink)
            .map_err(FsErr::Provider)?;
        if sink.out.len() as u64 != info.size {
            return Err(FsErr::Provider(Status::Io));
        }
        let mut d = self.disk.lock();
        if let Some(i) = Self::find_obj(&mut d, obj)
            && matches!(i.kind, Kind::Placeholder { .. })
        {
            i.kind = Kind::Hydrated {
                info,
                cid,
                bytes: sink.out,
            };
        }
        Ok(())
    }

    pub fn mkdir(&self, path: &str) {
        let p = Self::p(path);
        let mut d = self.disk.lock();
        d.put(&p, Kind::Dir { placeholder: false });
    }

    pub fn open(&self, path: &str, pid: u32, how: Open) -> Result<u64, FsErr> {
        let p = Self::p(path);
        let found = self.resolve(&p, pid)?;
        let obj = match found {
            None if !how.create => return Err(FsErr::NotFound),
            None => {
                let mut d = self.disk.lock();
                let obj = d.put(
                    &p,
                    Kind::Full {
                        bytes: Vec::new(),
                        mtime: 0,
                    },
                );
                drop(d);
                self.notify(&p, Notification::Created, false, pid);
                obj
            }
            Some(Item {
                kind: Kind::Dir { .. },
                ..
            }) => return Err(FsErr::InvalidOperation),
            Some(i) => {
                let projected = matches!(i.kind, Kind::Placeholder { .. } | Kind::Hydrated { .. });
                if how.write && projected {
                    if !how.truncate {
                        self.hydrate(i.obj, pid)?;
                        self.notify(&p, Notification::PreConvertToFull, false, pid);
                    }
                    let mut d = self.disk.lock();
                    if let Some(it) = Self::find_obj(&mut d, i.obj) {
                        let (bytes, mtime) = match &it.kind {
                            Kind::Hydrated { bytes, info, .. } if !how.truncate => {
                                (bytes.clone(), info.mtime)
                            }
                            Kind::Hydrated { info, .. } | Kind::Placeholder { info, .. } => {
                                (Vec::new(), info.mtime)
                            }
                            _ => (Vec::new(), 0),
                        };
                        it.kind = Kind::Full { bytes, mtime };
                    }
                    drop(d);
                    if how.truncate {
                        self.notify(&p, Notification::Overwritten, false, pid);
                    }
                } else if how.truncate
                    && let Kind::Full { .. } = i.kind
                {
                    let mut d = self.disk.lock();
                    if let Some(it) = Self::find_obj(&mut d, i.obj) {
                        it.kind = Kind::Full {
                            bytes: Vec::new(),
                            mtime: 0,
                        };
                    }
                }
                i.obj
            }
        };
        let mut d = self.disk.lock();
        let h = d.next;
        d.next += 1;
        d.handles.insert(
            h,
            Handle {
                obj,
                write: how.write,
                share_delete: how.share_delete,
                modified: false,
                pid,
                path: p,
            },
        );
        Ok(h)
    }

    pub fn read_all(&self, h: u64) -> Result<Vec<u8>, FsErr> {
        let (obj, pid) = {
            let d = self.disk.lock();
            let h = d.handles.get(&h).ok_or(FsErr::InvalidOperation)?;
            (h.obj, h.pid)
        };
        self.hydrate(obj, pid)?;
        let mut d = self.disk.lock();
        match &Self::find_obj(&mut d, obj).ok_or(FsErr::NotFound)?.kind {
            Kind::Hydrated { bytes, .. } | Kind::Full { bytes, .. } => Ok(bytes.clone()),
            _ => Err(FsErr::InvalidOperation),
        }
    }

    pub fn write(&self, h: u64, bytes: &[u8], now: i128) -> Result<(), FsErr> {
        let mut d = self.disk.lock();
        let hd = d.handles.get_mut(&h).ok_or(FsErr::InvalidOperation)?;
        if !hd.write {
            return Err(FsErr::InvalidOperation);
        }
        hd.modified = true;
        let obj = hd.obj;
        let it = Self::find_obj(&mut d, obj).ok_or(FsErr::NotFound)?;
        it.kind = Kind::Full {
            bytes: bytes.to_vec(),
            mtime: now,
        };
        Ok(())
    }

    pub fn close(&self, h: u64) {
        let hd = self.disk.lock().handles.remove(&h);
        if let Some(hd) = hd {
            let mut d = self.disk.lock();
            let still = d.handles.values().any(|o| o.obj == hd.obj);
            if !still {
                d.orphans.remove(&hd.obj);
            }
            drop(d);
            if hd.write && hd.modified {
                self.notify(&hd.path, Notification::ClosedModified, false, hd.pid);
            }
        }
    }

    /// Reads a whole file as a process would.
    pub fn read_file(&self, path: &str, pid: u32) -> Result<Vec<u8>, FsErr> {
        let h = self.open(
            path,
            pid,
            Open {
                share_delete: true,
                ..Open::default()
            },
        )?;
        let r = self.read_all(h);
        self.close(h);
        r
    }

    /// Writes a whole file (create or truncate) as a process would.
    pub fn write_file(&self, path: &str, pid: u32, bytes: &[u8], now: i128) -> Result<(), FsErr> {
        let h = self.open(
            path,
            pid,
            Open {
                write: true,
                truncate: true,
                create: true,
                share_delete: true,
            },
        )?;
        let r = self.write(h, bytes, now);
        self.close(h);
        r
    }

    /// (size, mtime) as a process's stat sees them.
    pub fn stat(&self, path: &str, pid: u32) -> Result<(u64, i128), FsErr> {
        match self
            .resolve(&Self::p(path), pid)?
            .ok_or(FsErr::NotFound)?
            .kind
        {
            Kind::Placeholder { info, .. } | Kind::Hydrated { info, .. } => {
                Ok((info.size, info.mtime))
            }
            Kind::Full { bytes, mtime } => Ok((bytes.len() as u64, mtime)),
            _ => Err(FsErr::InvalidOperation),
        }
    }

    fn check_sharing(d: &Disk, obj: u64) -> Result<bool, FsErr> {
        let open: Vec<&Handle> = d.handles.values().filter(|h| h.obj == obj).collect();
        if open.iter().any(|h| !h.share_delete) {
            return Err(FsErr::SharingViolation);
        }
        Ok(!open.is_empty())
    }

    fn parent_is_placeholder(d: &Disk, p: &RelPath) -> bool {
        p.parent().is_some_and(|pp| {
            matches!(
                d.items.get(&fold(&pp)).map(|i| &i.kind),
                Some(Kind::Dir { placeholder: true })
            )
        })
    }

    pub fn delete(&self, path: &str, pid: u32) -> Result<(), FsErr> {
        let p = Self::p(path);
        let item = self.resolve(&p, pid)?.ok_or(FsErr::NotFound)?;
        let is_dir = matches!(item.kind, Kind::Dir { .. });
        {
            let mut d = self.disk.lock();
            let prefix = format!("{}/", fold(&p));
            if is_dir
                && d.items
                    .iter()
                    .any(|(k, i)| k.starts_with(&prefix) && !matches!(i.kind, Kind::Tombstone))
            {
                return Err(FsErr::InvalidOperation);
            }
            let held = Self::check_sharing(&d, item.obj)?;
            let removed = d.items.remove(&fold(&p));
            d.items.retain(|k, _| !k.starts_with(&prefix));
            if held && let Some(r) = removed {
                d.orphans.insert(r.obj, r);
            }
            if Self::parent_is_placeholder(&d, &p) {
                d.put(&p, Kind::Tombstone);
            }
        }
        self.notify(&p, Notification::Deleted, is_dir, pid);
        Ok(())
    }

    pub fn rename(&self, from: &str, to: &str, pid: u32) -> Result<(), FsErr> {
        let (f, t) = (Self::p(from), Self::p(to));
        let item = self.resolve(&f, pid)?.ok_or(FsErr::NotFound)?;
        let is_dir = matches!(item.kind, Kind::Dir { .. });
        if matches!(item.kind, Kind::Dir { placeholder: true }) {
            return Err(FsErr::InvalidOperation);
        }
        let target = self.resolve(&t, pid)?;
        {
            let mut d = self.disk.lock();
            Self::check_sharing(&d, item.obj)?;
            if let Some(old) = &target {
                let held = Self::check_sharing(&d, old.obj)?;
                let removed = d.items.remove(&fold(&t));
                if held && let Some(r) = removed {
                    d.orphans.insert(r.obj, r);
                }
            }
            let mut moving = d.items.remove(&fold(&f)).ok_or(FsErr::NotFound)?;
            moving.path = t.clone();
            d.items.insert(fold(&t), moving);
            if is_dir {
                let prefix = format!("{}/", fold(&f));
                let kids: Vec<String> = d
                    .items
                    .keys()
                    .filter(|k| k.starts_with(&prefix))
                    .cloned()
                    .collect();
                for k in kids {
                    let mut it = d.items.remove(&k).unwrap();
                    let rest = &it.path.as_str()[f.as_str().len()..];
                    it.path = RelPath::parse(&format!("{}{rest}", t.as_str())).unwrap();
                    d.items.insert(fold(&it.path), it);
                }
            }
            if Self::parent_is_placeholder(&d, &f) {
                d.put(&f, Kind::Tombstone);
            }
        }
        self.notify(&f, Notification::Renamed(t), is_dir, pid);
        Ok(())
    }

    /// Lists a directory as a process would (names sorted case-insensitively).
    pub fn list(&self, dir: &str, pid: u32) -> Result<Vec<String>, FsErr> {
        let p = Self::p(dir);
        let (placeholder, running, on_disk) = {
            let d = self.disk.lock();
            let placeholder = match d.items.get(&fold(&p)).map(|i| &i.kind) {
                Some(Kind::Dir { placeholder }) => *placeholder,
                _ => return Err(FsErr::NotFound),
            };
            let prefix = if p.is_root() {
                String::new()
            } else {
                format!("{}/", fold(&p))
            };
            let kids: Vec<(String, bool)> = d
                .items
                .iter()
                .filter(|(k, _)| {
                    !k.is_empty() && k.starts_with(&prefix) && !k[prefix.len()..].contains('/')
                })
                .map(|(_, i)| (i.path.name().to_string(), matches!(i.kind, Kind::Tombstone)))
                .collect();
            (placeholder, d.running, kids)
        };
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        if placeholder {
            if !running {
                return Err(FsErr::Unavailable);
            }
            let provider = self.provider().ok_or(FsErr::Unavailable)?;
            let id = super::guid::random();
            provider
                .cb_start_enum(id, &wire(&p), pid)
                .map_err(FsErr::Provider)?;
            let mut first = true;
            loop {
                let mut sink = Entries {
                    cap: self.enum_capacity,
                    out: Vec::new(),
                };
                let pat = if first { Some("*") } else { None };
                provider
                    .cb_get_enum(id, pat, false, pid, &mut sink)
                    .map_err(FsErr::Provider)?;
                first = false;
                if sink.out.is_empty() {
                    break;
                }
                for (n, _) in sink.out {
                    names.insert(fold_name(&n), n);
                }
            }
            provider.cb_end_enum(id);
        }
        for (n, tomb) in on_disk {
            if tomb {
                names.remove(&fold_name(&n));
            } else {
                names.insert(fold_name(&n), n);
            }
        }
        Ok(names.into_values().collect())
    }
}

impl Fake {
    fn set_placeholder(&self, dir: &RelPath, to: bool) -> io::Result<()> {
        let mut d = self.disk.lock();
        match d.items.get_mut(&fold(dir)) {
            Some(Item {
                kind: Kind::Dir { placeholder },
                ..
            }) => {
                *placeholder = to;
                Ok(())
            }
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }
}

impl ProjFs for Fake {
    fn mark_dir(&self, dir: &RelPath) -> io::Result<()> {
        self.set_placeholder(dir, true)
    }

    fn unmark_dir(&self, dir: &RelPath) -> io::Result<()> {
        self.set_placeholder(dir, false)
    }

    fn delete_file(&self, path: &RelPath, flags: UpdateFlags) -> Result<(), DeleteError> {
        let mut d = self.disk.lock();
        let Some(item) = d.items.get(&fold(path)).cloned() else {
            return Ok(());
        };
        match item.kind {
            Kind::Tombstone if !flags.allow_tombstone => {
                return Err(DeleteError::Refused("a tombstone"));
            }
            Kind::Full { .. } if !flags.allow_dirty_data => {
                return Err(DeleteError::Refused("full"));
            }
            Kind::Dir { .. } => return Err(DeleteError::Refused("a directory")),
            _ => {}
        }
        let held = Self::check_sharing(&d, item.obj).map_err(|_| DeleteError::InUse)?;
        let removed = d.items.remove(&fold(path));
        if held && let Some(r) = removed {
            d.orphans.insert(r.obj, r);
        }
        Ok(())
    }

    fn clear_negative_path_cache(&self) -> io::Result<()> {
        self.disk.lock().negative.clear();
        *self.negative_clears.lock() += 1;
        Ok(())
    }

    fn on_disk(&self, path: &RelPath) -> io::Result<OnDisk> {
        let d = self.disk.lock();
        Ok(match d.items.get(&fold(path)).map(|i| &i.kind) {
            None => OnDisk::Missing,
            Some(Kind::Dir { placeholder }) => OnDisk::Dir {
                placeholder: *placeholder,
            },
            Some(Kind::Placeholder { cid, .. }) => OnDisk::Placeholder {
                content_id: cid.clone(),
            },
            Some(Kind::Hydrated { cid, .. }) => OnDisk::Hydrated {
                content_id: cid.clone(),
            },
            Some(Kind::Full { .. }) => OnDisk::Full,
            Some(Kind::Tombstone) => OnDisk::Tombstone,
        })
    }

    fn list_on_disk(&self, dir: &RelPath) -> io::Result<Vec<String>> {
        let d = self.disk.lock();
        let prefix = if dir.is_root() {
            String::new()
        } else {
            format!("{}/", fold(dir))
        };
        Ok(d.items
            .iter()
            .filter(|(k, i)| {
                !k.is_empty()
                    && k.starts_with(&prefix)
                    && !k[prefix.len()..].contains('/')
                    && !matches!(i.kind, Kind::Tombstone)
            })
            .map(|(_, i)| i.path.name().to_string())
            .collect())
    }

    fn stat_on_disk(&self, path: &RelPath) -> io::Result<Option<FileInfo>> {
        let d = self.disk.lock();
        Ok(match d.items.get(&fold(path)).map(|i| &i.kind) {
            Some(Kind::Full { bytes, mtime }) => Some(FileInfo {
                size: bytes.len() as u64,
                mtime: *mtime,
                read_only: false,
            }),
            Some(Kind::Placeholder { info, .. } | Kind::Hydrated { info, .. }) => {
                Some(info.clone())
            }
            _ => None,
        })
    }

    fn write_full(&self, path: &RelPath, bytes: &[u8], info: &FileInfo) -> io::Result<()> {
        // The daemon's own write: ProjFS asks the provider about the name first.
        let existing = self
            .resolve(path, self.daemon_pid)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        let mut d = self.disk.lock();
        if let Some(old) = existing {
            let held = Self::check_sharing(&d, old.obj)
                .map_err(|_| io::Error::other("sharing violation"))?;
            let removed = d.items.remove(&fold(path));
            if held && let Some(r) = removed {
                d.orphans.insert(r.obj, r);
            }
        }
        d.put(
            path,
            Kind::Full {
                bytes: bytes.to_vec(),
                mtime: info.mtime,
            },
        );
        Ok(())
    }

    fn real_bytes(&self) -> u64 {
        self.disk
            .lock()
            .items
            .values()
            .map(|i| match &i.kind {
                Kind::Full { bytes, .. } | Kind::Hydrated { bytes, .. } => bytes.len() as u64,
                _ => 0,
            })
            .sum()
    }

    fn compare_names(&self, a: &str, b: &str) -> Ordering {
        fold_name(a).cmp(&fold_name(b))
    }

    fn name_matches(&self, name: &str, pattern: &str) -> bool {
        fn m(n: &[char], p: &[char]) -> bool {
            match p.split_first() {
                None => n.is_empty(),
                Some(('*', rest)) => (0..=n.len()).any(|i| m(&n[i..], rest)),
                Some(('?', rest)) => !n.is_empty() && m(&n[1..], rest),
                Some((c, rest)) => n.first() == Some(c) && m(&n[1..], rest),
            }
        }
        let n: Vec<char> = fold_name(name).chars().collect();
        let p: Vec<char> = fold_name(pattern).chars().collect();
        m(&n, &p)
    }

    fn stop(&self) {
        self.disk.lock().running = false;
        *self.slot.lock() = None;
    }
}
