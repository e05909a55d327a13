//! The ProjFS provider: the path-keyed model of projections of one virtualization root,
//! answering ProjFS's callbacks (`cb_*`) and the engine's requests ([`MountCore`]).
//!
//! - Names are looked up case-insensitively ([`RelPath::fold`]); a projection keeps the
//!   spelling it was projected or renamed with.
//! - Bytes are served by content id (`content.rs`), never by path: ProjFS asks for a renamed
//!   placeholder's bytes under its old path, and a reader may hold a placeholder whose path
//!   was projected anew. Every pack a placeholder was handed out for stays open (and in use
//!   for the store) until the mount ends or the pack is materialized.
//! - Notifications (a placeholder converted to a full file, renames, deletes) change the
//!   model after the fact. They are queued and applied in order by one thread; every engine
//!   request first waits until what was queued before it is applied (EdenFS's marker).
//! - The daemon's own accesses in the root are refused (`NotFound`, empty listings): the
//!   engine reads the model, and a callback that waited for the daemon could deadlock.
//! - No ProjFS call is made under the model lock.

mod callbacks;

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};
use tracing::{debug, info, warn};

use super::api::{
    DataSink, DeleteError, DirSink, FileInfo, Guid, Notification, OnDisk, Placeholder, ProjFs,
    Status, UpdateFlags,
};
use super::content::ContentId;
use crate::fsutil::NanoTime;
use crate::hash::Digest;
use crate::mount::contract::{LoadReport, MountCore, PathTarget, RealAt, Usage};
use crate::os::FileStat;
use crate::projection::journal::{self, Journal, Record};
use crate::projection::relpath::RelPath;
use crate::projection::{KeptReal, Meta, ProjectError, ProjectItem, Projection};
use crate::store::pack::Pack;
use crate::store::pack::PackSource;

/// Bytes per `PrjWriteFileData` (a multiple of any sector size).
pub const DATA_CHUNK: usize = 1 << 20;

#[derive(Debug, Clone)]
struct Projected {
    path: RelPath,
    proj: Projection,
}

impl Projected {
    fn content_id(&self) -> ContentId {
        ContentId {
            pack: self.proj.pack.id,
            index: self.proj.index as u32,
            size: self.proj.size,
        }
    }

    fn info(&self) -> FileInfo {
        FileInfo {
            size: self.proj.size,
            mtime: self.proj.meta.mtime,
            read_only: self.proj.meta.perm & 0o200 == 0,
        }
    }
}

struct Enumeration {
    dir: RelPath,
    entries: Vec<(String, FileInfo)>,
    next: usize,
    pattern: Option<String>,
}

#[derive(Default)]
struct Model {
    /// Folded directory → folded name → projection.
    dirs: HashMap<String, HashMap<String, Projected>>,
    /// Directories marked as placeholders, by folded path (persisted in `dirs`).
    marked: BTreeSet<String>,
    marked_paths: HashMap<String, RelPath>,
    /// Packs placeholders were handed out for, by id.
    handed: HashMap<Digest, Arc<Pack>>,
}

impl Model {
    fn get(&self, p: &RelPath) -> Option<&Projected> {
        let dir = p.parent()?.fold();
        self.dirs
            .get(&dir)?
            .get(&RelPath::root().join(p.name()).ok()?.fold())
    }

    fn insert(&mut self, e: Projected) -> Option<Projected> {
        let dir = e.path.parent().unwrap_or_default().fold();
        let name = super::fold(e.path.name());
        self.dirs.entry(dir).or_default().insert(name, e)
    }

    fn remove(&mut self, p: &RelPath) -> Option<Projected> {
        let dir = p.parent()?.fold();
        let m = self.dirs.get_mut(&dir)?;
        let e = m.remove(&super::fold(p.name()));
        if m.is_empty() {
            self.dirs.remove(&dir);
        }
        e
    }

    /// Every projection at or under `dir`.
    fn under(&self, dir: &RelPath) -> Vec<RelPath> {
        self.dirs
            .values()
            .flat_map(|m| m.values())
            .filter(|e| e.path.starts_with_folded(dir))
            .map(|e| e.path.clone())
            .collect()
    }

    fn all(&self) -> impl Iterator<Item = &Projected> {
        self.dirs.values().flat_map(|m| m.values())
    }
}

#[derive(Default)]
struct Counters {
    placeholders: AtomicU64,
    data_requests: AtomicU64,
    enumerations: AtomicU64,
    notifications: AtomicU64,
    own_refused: AtomicU64,
    copy_ups: AtomicU64,
    bytes_served: AtomicU64,
}

/// Notifications waiting to be applied, in arrival order.
#[derive(Default)]
struct Queue {
    items: std::collections::VecDeque<(RelPath, Notification, bool)>,
    /// Notifications ever queued and ever applied (the marker compares them).
    queued: u64,
    applied: u64,
    stop: bool,
}

pub struct Provider {
    api: Arc<dyn ProjFs>,
    root: PathBuf,
    own_pid: u32,
    model: Mutex<Model>,
    /// Directory enumerations in progress, apart from the model: ProjFS enumerates for the
    /// daemon's own listings too, and those must not wait for the model's lock.
    enums: Mutex<HashMap<Guid, Enumeration>>,
    journal: Mutex<Option<Journal>>,
    dirs_file: Option<PathBuf>,
    queue: Mutex<Queue>,
    queue_cv: Condvar,
    next_id: AtomicU64,
    counters: Counters,
}

fn io_other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn now_ns() -> NanoTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as NanoTime)
        .unwrap_or(0)
}

impl Provider {
    /// A provider for the root `root`, journaling in `state` (none: nothing persisted),
    /// serving callbacks that `own_pid` triggers with nothing. Replays the journal and
    /// reconciles it with what is on disk (files change while no provider runs); call
    /// [`Provider::start_queue`] once ProjFS runs.
    pub fn new(
        api: Arc<dyn ProjFs>,
        root: &Path,
        state: Option<&Path>,
        own_pid: u32,
        packs: &dyn PackSource,
    ) -> io::Result<(Arc<Provider>, LoadReport)> {
        let (journal, jstate) = match state {
            Some(s) => {
                let (j, st) = Journal::open(&s.join("journal"))?;
                (Some(j), st)
            }
            None => (None, journal::State::default()),
        };
        let p = Arc::new(Provider {
            api,
            root: root.to_path_buf(),
            own_pid,
            model: Mutex::new(Model::default()),
            enums: Mutex::new(HashMap::new()),
            journal: Mutex::new(journal),
            dirs_file: state.map(|s| s.join("placeholder-dirs")),
            queue: Mutex::new(Queue::default()),
            queue_cv: Condvar::new(),
            next_id: AtomicU64::new(jstate.max_id() + 1),
            counters: Counters::default(),
        });
        let report = p.reconcile(&jstate, packs);
        p.compact();
        Ok((p, report))
    }

    /// Starts the thread that applies notifications in order.
    pub fn start_queue(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("zcfs-projfs-notes".into())
            .spawn(move || {
                loop {
                    let Some(p) = me.upgrade() else { return };
                    let next = {
                        let mut q = p.queue.lock();
                        while q.items.is_empty() && !q.stop {
                            p.queue_cv
                                .wait_for(&mut q, std::time::Duration::from_millis(500));
                            if Arc::strong_count(&p) == 1 {
                                return;
                            }
                        }
                        if q.stop && q.items.is_empty() {
                            return;
                        }
                        q.items.pop_front()
                    };
                    if let Some((path, n, is_dir)) = next {
                        p.apply(&path, &n, is_dir);
                        let mut q = p.queue.lock();
                        q.applied += 1;
                        p.queue_cv.notify_all();
                    }
                }
            });
    }

    /// Waits until every notification queued before this call is applied.
    pub fn sync(&self) {
        let mut q = self.queue.lock();
        let target = q.queued;
        while q.applied < target && !q.stop {
            self.queue_cv.notify_all();
            self.queue_cv
                .wait_for(&mut q, std::time::Duration::from_millis(100));
        }
    }

    fn journal(&self, r: Record) {
        if let Some(j) = self.journal.lock().as_mut()
            && let Err(e) = j.append(&r)
        {
            warn!("projection journal: {e}");
        }
    }

    fn compact(&self) {
        let snapshot: Vec<Record> = {
            let m = self.model.lock();
            m.all().map(Self::put_record).collect()
        };
        if let Some(j) = self.journal.lock().as_mut()
            && let Err(e) = j.compact(snapshot)
        {
            warn!("projection journal compaction: {e}");
        }
        self.save_dirs();
    }

    fn save_dirs(&self) {
        let Some(f) = &self.dirs_file else { return };
        let text: String = {
            let m = self.model.lock();
            m.marked_paths.values().map(|p| format!("{p}\n")).collect()
        };
        if let Err(e) = crate::fsutil::write_replacing(f, text.as_bytes(), false) {
            warn!("{}: {e}", f.display());
        }
    }

    fn load_dirs(&self) -> Vec<RelPath> {
        let Some(f) = &self.dirs_file else {
            return Vec::new();
        };
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| RelPath::parse(l).ok())
            .filter(|p| !p.is_root())
            .collect()
    }

    // ----- start: replay and reconciliation ------------------------------------------------

    /// Restores the journal's projections that still hold on disk, and removes what a
    /// previous provider left that the model does not know.
    fn reconcile(&self, state: &journal::State, packs: &dyn PackSource) -> LoadReport {
        let mut report = LoadReport::default();
        let mut stale_placeholders = Vec::new();
        let mut restored = Vec::new();
        for (id, p) in &state.projections {
            let Some(first) = p.names.first() else {
                report.dropped_no_name += 1;
                continue;
            };
            let Some(path) = std::str::from_utf8(first)
                .ok()
                .and_then(|s| RelPath::parse(s).ok())
                .filter(|p| !p.is_root())
            else {
                report.dropped_names += 1;
                continue;
            };
            let Some(pack) = packs.open(&p.pack) else {
                report.dropped_pack_gone += 1;
                continue;
            };
            if p.index as usize >= pack.header.entries.len()
                || pack.header.entries[p.index as usize].size != p.size
            {
                report.dropped_pack_gone += 1;
                continue;
            }
            let parent = path.parent().unwrap_or_default();
            if !matches!(self.api.on_disk(&parent), Ok(OnDisk::Dir { .. })) {
                report.dropped_names += 1;
                continue;
            }
            let entry = Projected {
                path: path.clone(),
                proj: Projection {
                    id: *id,
                    pack,
                    index: p.index as usize,
                    size: p.size,
                    meta: p.meta,
                },
            };
            let ours = entry.content_id();
            match self.api.on_disk(&path) {
                Ok(OnDisk::Missing) => {}
                Ok(OnDisk::Placeholder { content_id } | OnDisk::Hydrated { content_id }) => {
                    if ContentId::decode(&content_id) != Some(ours) {
                        stale_placeholders.push(path.clone());
                    }
                }
                // Written, deleted or replaced by a directory while no provider ran: what
                // is on disk wins.
                Ok(_) | Err(_) => {
                    report.dropped_names += 1;
                    continue;
                }
            }
            restored.push(entry);
        }
        {
            let mut m = self.model.lock();
            for e in restored {
                m.handed.insert(e.proj.pack.id, e.proj.pack.clone());
                m.insert(e);
                report.restored += 1;
            }
        }
        // Placeholders the model does not hold (a crash lost their journal records, or
        // they were projected anew), in the directories a provider marked.
        let mut dirs = self.load_dirs();
        dirs.push(RelPath::root());
        for d in &dirs {
            for name in self.api.list_on_disk(d).unwrap_or_default() {
                let Ok(p) = d.join(&name) else { continue };
                if matches!(
                    self.api.on_disk(&p),
                    Ok(OnDisk::Placeholder { .. } | OnDisk::Hydrated { .. })
                ) && self.model.lock().get(&p).is_none()
                {
                    stale_placeholders.push(p);
                }
            }
        }
        for p in stale_placeholders {
            if let Err(e) = self.api.delete_file(&p, UpdateFlags::ANY) {
                warn!("removing the stale placeholder {p}: {e}");
            }
        }
        // Directories a provider left marked (a crash) are unmarked at the next unmount;
        // those that hold projections are marked (again: an unmount unmarked them).
        for d in dirs.into_iter().filter(|d| !d.is_root()) {
            if matches!(self.api.on_disk(&d), Ok(OnDisk::Dir { placeholder: true })) {
                self.remember_marked(&d);
            }
        }
        let parents: BTreeSet<RelPath> = self
            .model
            .lock()
            .all()
            .filter_map(|e| e.path.parent())
            .collect();
        for d in parents {
            if let Err(e) = self.ensure_marked(&d) {
                warn!("marking {d} as a placeholder directory: {e}");
            }
        }
        report
    }

    fn remember_marked(&self, d: &RelPath) {
        let mut m = self.model.lock();
        m.marked.insert(d.fold());
        m.marked_paths.insert(d.fold(), d.clone());
    }

    // ----- the engine's side -------------------------------------------------------------------

    /// Marks `dir` and its parents (top down) as placeholders, so ProjFS asks about their
    /// names.
    fn ensure_marked(&self, dir: &RelPath) -> io::Result<()> {
        let mut chain = Vec::new();
        let mut cur = Some(dir.clone());
        while let Some(d) = cur {
            if d.is_root() || self.model.lock().marked.contains(&d.fold()) {
                break;
            }
            cur = d.parent();
            chain.push(d);
        }
        let mut changed = false;
        for d in chain.into_iter().rev() {
            match self.api.on_disk(&d)? {
                OnDisk::Dir { placeholder: true } => {}
                OnDisk::Dir { placeholder: false } => self.api.mark_dir(&d)?,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{d} is not a directory"),
                    ));
                }
            }
            self.remember_marked(&d);
            changed = true;
        }
        if changed {
            self.save_dirs();
        }
        Ok(())
    }

    fn entry_for(&self, path: RelPath, pack: Arc<Pack>, index: usize, meta: Meta) -> Projected {
        let size = pack.header.entries[index].size;
        Projected {
            path,
            proj: Projection {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                pack,
                index,
                size,
                meta,
            },
        }
    }

    fn put_record(e: &Projected) -> Record {
        Record::Put {
            id: e.proj.id,
            path: e.path.as_str().as_bytes().to_vec(),
            pack: e.proj.pack.id,
            index: e.proj.index as u32,
            size: e.proj.size,
            meta: e.proj.meta,
        }
    }

    fn rel(p: &Path) -> Result<RelPath, ProjectError> {
        match RelPath::from_path(p) {
            Ok(r) if !r.is_root() => Ok(r),
            Ok(_) => Err(ProjectError::BadPath(p.to_path_buf(), "is empty")),
            Err(e) => Err(ProjectError::BadPath(
                p.to_path_buf(),
                match e {
                    crate::projection::relpath::BadRelPath::Absolute => "is absolute",
                    crate::projection::relpath::BadRelPath::Dots => "has a `.` or `..` component",
                    crate::projection::relpath::BadRelPath::NotUnicode => "is not Unicode",
                    crate::projection::relpath::BadRelPath::TooLong => "name too long",
                    crate::projection::relpath::BadRelPath::BadChar => "has a bad character",
                },
            )),
        }
    }

    /// Puts one projection in the model and removes what is on disk at its path; on
    /// failure the model is as before.
    fn project_one(&self, it: &ProjectItem) -> Result<(), ProjectError> {
        let path = Self::rel(&it.path)?;
        if it.index >= it.pack.header.entries.len() {
            return Err(ProjectError::BadEntry(it.path.clone(), it.index));
        }
        let io = |e: io::Error| ProjectError::Io(it.path.clone(), e);
        let parent = path.parent().unwrap_or_default();
        self.ensure_marked(&parent).map_err(io)?;
        if matches!(self.api.on_disk(&path).map_err(io)?, OnDisk::Dir { .. }) {
            return Err(ProjectError::BadPath(it.path.clone(), "is a directory"));
        }
        let meta = Meta {
            perm: it.perm,
            uid: 0,
            gid: 0,
            atime: it.mtime,
            mtime: it.mtime,
            ctime: it.mtime,
        };
        let e = self.entry_for(path.clone(), it.pack.clone(), it.index, meta);
        let record = Self::put_record(&e);
        let old = {
            let mut m = self.model.lock();
            m.handed.insert(e.proj.pack.id, e.proj.pack.clone());
            m.insert(e)
        };
        // What is on disk goes, so the next access asks for the new projection. A holder
        // with delete sharing keeps reading what it opened (by content id); one without it
        // keeps the file, and the projection must not count.
        if let Err(err) = self.api.delete_file(&path, UpdateFlags::ANY) {
            let mut m = self.model.lock();
            m.remove(&path);
            if let Some(old) = old {
                m.insert(old);
            }
            return Err(io(io_other(err)));
        }
        self.journal(record);
        Ok(())
    }

    /// Writes a real file for `path` (replacing a projection) with these bytes and times.
    fn write_real(&self, path: &RelPath, bytes: &[u8], info: &FileInfo) -> io::Result<()> {
        self.ensure_marked(&path.parent().unwrap_or_default())?;
        let old = self.model.lock().remove(path);
        let done = self
            .api
            .delete_file(path, UpdateFlags::ANY)
            .map_err(io_other)
            .and_then(|()| self.api.write_full(path, bytes, info));
        match (done, old) {
            (Ok(()), Some(old)) => {
                self.journal(Record::Drop { id: old.proj.id });
                Ok(())
            }
            (Ok(()), None) => Ok(()),
            (Err(e), Some(old)) => {
                self.model.lock().insert(old);
                Err(e)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Writes every projection that `which` selects as a real file; returns how many.
    fn materialize(&self, which: impl Fn(&Projected) -> bool) -> io::Result<u64> {
        self.sync();
        let chosen: Vec<Projected> = self
            .model
            .lock()
            .all()
            .filter(|e| which(e))
            .cloned()
            .collect();
        for e in &chosen {
            self.write_real(&e.path, e.proj.bytes(), &e.info())?;
        }
        Ok(chosen.len() as u64)
    }

    /// Ends the mount: waits for the queue, removes the placeholders of projections (the
    /// journal keeps them for the next start), stops ProjFS and makes marked directories
    /// ordinary again, so the directory stays usable with no provider.
    pub fn shutdown(&self) {
        self.sync();
        {
            let mut q = self.queue.lock();
            q.stop = true;
            self.queue_cv.notify_all();
        }
        self.compact();
        if let Some(j) = self.journal.lock().as_ref() {
            let _ = j.sync();
        }
        let paths: Vec<RelPath> = self.model.lock().all().map(|e| e.path.clone()).collect();
        for p in paths {
            if let Err(e) = self.api.delete_file(&p, UpdateFlags::ANY) {
                warn!("removing the placeholder {p} at unmount: {e}");
            }
        }
        // ProjFS stops before the directories lose their reparse points: its filter is not
        // asked to let go of a root it still serves.
        self.api.stop();
        let mut dirs: Vec<RelPath> = self.model.lock().marked_paths.values().cloned().collect();
        // Deepest first, the root last.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        dirs.push(RelPath::root());
        for d in dirs {
            if let Err(e) = self.api.unmark_dir(&d) {
                debug!("unmarking {d}: {e}");
            }
        }
        info!("stopped virtualizing {}", self.root.display());
    }

    /// Counts of callbacks, for `zcfs status --json`.
    fn requests(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let c = &self.counters;
        [
            ("placeholder_info", &c.placeholders),
            ("file_data", &c.data_requests),
            ("enumerate", &c.enumerations),
            ("notification", &c.notifications),
            ("own_access_refused", &c.own_refused),
        ]
        .into_iter()
        .filter_map(|(k, v)| {
            let n = v.load(Ordering::Relaxed);
            (n > 0).then_some((k, n))
        })
        .collect()
    }
}

impl MountCore for Provider {
    fn now(&self) -> io::Result<NanoTime> {
        Ok(now_ns())
    }

    fn project(&self, items: &[ProjectItem]) -> Result<(), ProjectError> {
        self.sync();
        let mut result = Ok(());
        for it in items {
            if let Err(e) = self.project_one(it) {
                result = Err(e);
                break;
            }
        }
        // Names looked up before they were projected were remembered as absent.
        if let Err(e) = self.api.clear_negative_path_cache() {
            return Err(ProjectError::Kernel(format!(
                "clearing ProjFS's negative path cache: {e}"
            )));
        }
        result
    }

    fn put_real(
        &self,
        rel: &Path,
        bytes: &[u8],
        perm: u16,
        mtime: NanoTime,
    ) -> Result<(), ProjectError> {
        self.sync();
        let path = Self::rel(rel)?;
        let info = FileInfo {
            size: bytes.len() as u64,
            mtime,
            read_only: perm & 0o200 == 0,
        };
        self.write_real(&path, bytes, &info)
            .map_err(|e| ProjectError::Io(rel.to_path_buf(), e))
    }

    fn convert_to_projection(
        &self,
        rel: &Path,
        pack: Arc<Pack>,
        index: usize,
        expect: &FileStat,
    ) -> Result<Result<(), KeptReal>, ProjectError> {
        self.sync();
        let path = Self::rel(rel)?;
        let entry = pack
            .header
            .entries
            .get(index)
            .ok_or_else(|| ProjectError::BadEntry(rel.to_path_buf(), index))?;
        let io = |e: io::Error| ProjectError::Io(rel.to_path_buf(), e);
        if self.model.lock().get(&path).is_some()
            || self.api.on_disk(&path).map_err(io)? != OnDisk::Full
        {
            return Ok(Err(KeptReal::NotRealFile));
        }
        match self.api.stat_on_disk(&path).map_err(io)? {
            Some(st) if st.size == expect.size && st.mtime == expect.mtime => {}
            Some(_) => return Ok(Err(KeptReal::Changed)),
            None => return Ok(Err(KeptReal::NotRealFile)),
        }
        self.ensure_marked(&path.parent().unwrap_or_default())
            .map_err(io)?;
        let meta = Meta {
            perm: (entry.mode & 0o7777) as u16,
            uid: 0,
            gid: 0,
            atime: expect.mtime,
            mtime: expect.mtime,
            ctime: expect.ctime,
        };
        let e = self.entry_for(path.clone(), pack, index, meta);
        let record = Self::put_record(&e);
        {
            let mut m = self.model.lock();
            m.handed.insert(e.proj.pack.id, e.proj.pack.clone());
            m.insert(e);
        }
        match self.api.delete_file(&path, UpdateFlags::ANY) {
            Ok(()) => {}
            Err(err) => {
                self.model.lock().remove(&path);
                return match err {
                    DeleteError::InUse => Ok(Err(KeptReal::Open)),
                    other => Err(io(io_other(other))),
                };
            }
        }
        self.journal(record);
        let _ = self.api.clear_negative_path_cache();
        Ok(Ok(()))
    }

    fn path_target(&self, rel: &Path) -> io::Result<PathTarget> {
        self.sync();
        let path =
            RelPath::from_path(rel).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if path.is_root() {
            return Ok(PathTarget::Dir);
        }
        if let Some(e) = self.model.lock().get(&path) {
            return Ok(PathTarget::Projected {
                id: e.proj.id,
                size: e.proj.size,
                mtime: e.proj.meta.mtime,
                ctime: e.proj.meta.ctime,
                digest: e.proj.digest(),
            });
        }
        match self.api.on_disk(&path)? {
            OnDisk::Dir { .. } => Ok(PathTarget::Dir),
            OnDisk::Missing | OnDisk::Tombstone => Err(io::ErrorKind::NotFound.into()),
            _ => Ok(PathTarget::Real {
                at: RealAt::Path(path.under(&self.root)),
                is_file: true,
            }),
        }
    }

    fn dir_handle(&self, rel: &Path) -> io::Result<crate::os::DirHandle> {
        crate::os::open_dir(&self.root.join(rel))
    }

    fn list_dir(&self, rel: &Path) -> io::Result<Vec<OsString>> {
        self.sync();
        let dir =
            RelPath::from_path(rel).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let on_disk = self.api.list_on_disk(&dir)?;
        let projected: Vec<String> = self.listing(&dir).into_iter().map(|(n, _)| n).collect();
        for n in projected.into_iter().chain(on_disk) {
            if seen.insert(super::fold(&n)) {
                out.push(OsString::from(n));
            }
        }
        Ok(out)
    }

    fn projected_bytes(&self, rel: &Path) -> Option<Vec<u8>> {
        self.sync();
        let path = RelPath::from_path(rel).ok()?;
        self.model
            .lock()
            .get(&path)
            .map(|e| e.proj.bytes().to_vec())
    }

    fn packs_in_use(&self) -> Vec<Digest> {
        let m = self.model.lock();
        let mut v: Vec<Digest> = m
            .all()
            .map(|e| e.proj.pack.id)
            .chain(m.handed.keys().copied())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn materialize_pack(&self, id: &Digest) -> io::Result<u64> {
        let n = self.materialize(|e| e.proj.pack.id == *id)?;
        self.model.lock().handed.remove(id);
        Ok(n)
    }

    fn materialize_all(&self) -> io::Result<u64> {
        let n = self.materialize(|_| true)?;
        self.compact();
        Ok(n)
    }

    fn tend(&self) {
        let long = self
            .journal
            .lock()
            .as_ref()
            .is_some_and(|j| j.appended() > 1 << 20);
        if long {
            self.compact();
        }
    }

    fn persist(&self) {
        self.compact();
        if let Some(j) = self.journal.lock().as_ref() {
            let _ = j.sync();
        }
    }

    fn usage(&self) -> Usage {
        let m = self.model.lock();
        let (mut projections, mut projected_bytes) = (0, 0);
        for e in m.all() {
            projections += 1;
            projected_bytes += e.proj.size;
        }
        Usage {
            projections,
            projected_bytes,
            nodes: projections + m.marked.len() as u64,
            copy_ups: self.counters.copy_ups.load(Ordering::Relaxed),
            bytes_served: self.counters.bytes_served.load(Ordering::Relaxed),
            requests: self.requests(),
            ..Usage::default()
        }
    }

    fn real_bytes(&self) -> u64 {
        self.api.real_bytes()
    }
}
