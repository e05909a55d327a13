//! What the daemon knows of host paths between requests, kept valid by directory watches
//! (inotify), so a hit's checks are table reads instead of a path walk per input.
//!
//! **Facts.** For a path it looked at, the watcher remembers whether something is there and
//! what (a regular file or a directory, with its stat), a directory's listing, and in
//! [`WatchMode::Files`] a file's digest. A fact about `/a/b/c` depends on the entries `a`
//! in `/`, `b` in `/a` and `c` in `/a/b`; every directory on the way is watched (before
//! the fact is taken, so a change after it is reported), and an event for one of those
//! entries drops the fact. A `..` is taken lexically after a real directory (no symlink
//! on the way), the fact then also depending on that directory's entry. A directory's own
//! times depend on all its entries; its listing is kept up to date name by name (each
//! name an event reported is looked at again before the next answer).
//!
//! **When events may be missing, nothing is trusted.** Each request first takes the queued
//! events ([`Watch::sync`]): the kernel queues an event before the call that made the change
//! returns, so every change made before the request was sent is seen. A lost event
//! (queue overflow), a change to the mount table, or a failed read drops every fact and
//! every watch. Paths the watcher cannot follow name by name are never cached: relative
//! paths, a symlink anywhere on the way (its target's changes are reported elsewhere),
//! directories on filesystems whose changes may not pass through this kernel (network
//! filesystems, FUSE) or whose names fold case ([`crate::os::notify::watchable_dir`]), and
//! directories that cannot be watched (the watch limit).
//!
//! **Modes.** A change of a file's *content* is reported when it is made by `write`,
//! `truncate`, `copy_file_range` and the like, but not when it is made through a shared
//! writable memory mapping. So by default ([`WatchMode::Names`]) the watcher answers what is
//! there and what a directory holds, and a file's stat is still taken for every use of its
//! content. [`WatchMode::Files`] (opt-in, docs/config.md) also trusts a file's stat and
//! digest until an event says otherwise; each such file is watched itself, so what is
//! written through another name (a hard link elsewhere) is seen too.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

pub use crate::config::WatchMode;
use crate::fsview::{FileMeta, Listing};
use crate::hash::Digest;
use crate::os::FileStat;
use crate::os::notify::{Notifier, NotifyEvent, open_entry, watchable_dir};
use crate::util::FastBuild;
use std::sync::Arc;

/// Beyond these, everything is dropped and learned again.
const MAX_FACTS: usize = 200_000;
const MAX_DIRS: usize = 100_000;

/// A directory on the way to facts.
struct Dir {
    /// Its watch, or `None` when its filesystem's changes may not pass through this kernel.
    wd: Option<i32>,
    /// Facts that depend on the entry of this name.
    by_name: HashMap<OsString, HashSet<PathBuf, FastBuild>, FastBuild>,
    /// Facts that depend on every entry (the directory's listing, its own times).
    whole: HashSet<PathBuf, FastBuild>,
    /// Names of directories below that are in the table.
    subdirs: HashSet<OsString, FastBuild>,
}

#[derive(Clone, Default)]
struct Fact {
    /// What `stat` says; `None`: nothing there.
    meta: Option<FileMeta>,
    /// The file's own watch (mode [`WatchMode::Files`]): its stat may be trusted.
    file_wd: Option<i32>,
    digest: Option<Digest>,
    /// Which fill made it (a digest is attached only to the fact it was computed for).
    id: u64,
}

/// A directory's names, and the names events reported since (looked at again before the
/// next answer).
struct Listed {
    names: Listing,
    dirty: Vec<OsString>,
}

/// Beyond this many changed names, a listing is read again.
const MAX_DIRTY: usize = 256;

#[derive(Default)]
struct Tree {
    dirs: HashMap<PathBuf, Dir, FastBuild>,
    wds: HashMap<i32, Vec<PathBuf>, FastBuild>,
    /// The facts each file watch keeps.
    file_wds: HashMap<i32, Vec<PathBuf>, FastBuild>,
    facts: HashMap<PathBuf, Fact, FastBuild>,
    /// Listings of directories in the table (by their path without `..`).
    listings: HashMap<PathBuf, Listed, FastBuild>,
    /// Watches to remove once the events are read.
    unwatch: Vec<i32>,
    /// The entry being put in the table, and whether an event named it meanwhile.
    adding: Option<(PathBuf, OsString)>,
    adding_changed: bool,
    next_id: u64,
}

struct State {
    notifier: Option<Notifier>,
    tree: Tree,
}

/// Counters for `zcfs stats`.
#[derive(Default)]
pub struct WatchCounters {
    /// Answers given from a fact.
    pub answered: AtomicU64,
    /// Facts taken.
    pub learned: AtomicU64,
    /// Questions about paths the watcher cannot follow (asked of the filesystem).
    pub unwatchable: AtomicU64,
    /// Events read.
    pub events: AtomicU64,
    /// Everything dropped: events lost, mount table changed, a limit reached.
    pub resets: AtomicU64,
}

/// A snapshot of the watcher for `zcfs stats`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct WatchReport {
    pub mode: String,
    pub active: bool,
    pub dirs: u64,
    pub facts: u64,
    pub answered: u64,
    pub learned: u64,
    pub unwatchable: u64,
    pub events: u64,
    pub resets: u64,
}

/// The watcher (shared with its background reader, see [`Watch::new`]).
pub struct Watch(Arc<WatchInner>);

/// What [`Watch`] holds.
pub struct WatchInner {
    mode: WatchMode,
    state: Mutex<State>,
    pub counters: WatchCounters,
}

impl std::ops::Deref for Watch {
    type Target = WatchInner;
    fn deref(&self) -> &WatchInner {
        &self.0
    }
}

/// How often queued events are read while no request comes (so that a burst of changes
/// by other programs between builds does not overflow the kernel's queue).
const IDLE_READ: std::time::Duration = std::time::Duration::from_millis(50);

impl Default for Watch {
    fn default() -> Watch {
        Watch::new(WatchMode::Off)
    }
}

/// The entries a fact depends on: (directory in the table, name in it).
type Deps = Vec<(PathBuf, OsString)>;

/// How a path resolves from the table's point of view.
enum Walk {
    /// Every directory on the way is in the table (`..` taken from the one before it, a
    /// real directory); the last component is an entry of the last one (the path without
    /// `..`: `resolved`).
    Entry { deps: Deps, resolved: PathBuf },
    /// Nothing is there: the entries walked lead to a name that does not exist (or is not
    /// a directory).
    Missing(Deps),
    /// Not a path the watcher can answer for.
    Unwatchable,
}

impl Tree {
    fn forget_fact(&mut self, path: &Path) {
        if let Some(f) = self.facts.remove(path)
            && let Some(wd) = f.file_wd
            && let Some(paths) = self.file_wds.get_mut(&wd)
        {
            paths.retain(|p| p != path);
            if paths.is_empty() {
                self.file_wds.remove(&wd);
                self.unwatch.push(wd);
            }
        }
    }

    /// Drops a directory, what depends on it and everything below it.
    fn remove_dir(&mut self, path: &Path) {
        let Some(d) = self.dirs.remove(path) else {
            return;
        };
        self.listings.remove(path);
        for p in d.by_name.values().flatten().chain(d.whole.iter()) {
            self.forget_fact(p);
        }
        for s in &d.subdirs {
            self.remove_dir(&path.join(s));
        }
        if let Some(wd) = d.wd
            && let Some(paths) = self.wds.get_mut(&wd)
        {
            paths.retain(|p| p != path);
            if paths.is_empty() {
                self.wds.remove(&wd);
                self.unwatch.push(wd);
            }
        }
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name())
            && let Some(p) = self.dirs.get_mut(parent)
        {
            p.subdirs.remove(name);
        }
    }

    fn on_event(&mut self, e: NotifyEvent<'_>) -> bool {
        match e {
            NotifyEvent::Overflow => return false,
            NotifyEvent::Child { wd, name } => {
                let name = crate::os::os_str(name);
                let name: &OsStr = &name;
                for p in self.wds.get(&wd).cloned().unwrap_or_default() {
                    let Some(d) = self.dirs.get_mut(&p) else {
                        continue;
                    };
                    if self
                        .adding
                        .as_ref()
                        .is_some_and(|(dir, n)| *dir == p && n == name)
                    {
                        self.adding_changed = true;
                    }
                    if let Some(l) = self.listings.get_mut(&p) {
                        if l.dirty.len() < MAX_DIRTY {
                            l.dirty.push(name.to_os_string());
                        } else {
                            self.listings.remove(&p);
                        }
                    }
                    let mut drop: Vec<PathBuf> = d.whole.drain().collect();
                    if let Some(set) = d.by_name.remove(name) {
                        drop.extend(set);
                    }
                    let sub = d.subdirs.contains(name);
                    for f in drop {
                        self.forget_fact(&f);
                    }
                    if sub {
                        self.remove_dir(&p.join(name));
                    }
                }
            }
            NotifyEvent::Dir { wd, gone } if self.file_wds.contains_key(&wd) => {
                // A watched file changed (written through any name, given another name,
                // its attributes, removed).
                for p in self.file_wds.get(&wd).cloned().unwrap_or_default() {
                    self.forget_fact(&p);
                }
                if gone {
                    self.file_wds.remove(&wd);
                    self.unwatch.retain(|&w| w != wd);
                }
            }
            NotifyEvent::Dir { wd, gone } => {
                let paths = if gone {
                    self.wds.remove(&wd).unwrap_or_default()
                } else {
                    self.wds.get(&wd).cloned().unwrap_or_default()
                };
                for p in paths {
                    if gone && let Some(d) = self.dirs.get_mut(&p) {
                        // The watch is gone already: nothing to remove.
                        d.wd = None;
                    }
                    self.remove_dir(&p);
                }
            }
        }
        true
    }

    /// Records that the fact about `path` depends on the entries `deps`, and on every entry
    /// of `whole` (a directory in the table).
    fn depend(&mut self, path: &Path, deps: &Deps, whole: Option<&Path>) {
        for (dir, name) in deps {
            if let Some(d) = self.dirs.get_mut(dir) {
                d.by_name
                    .entry(name.clone())
                    .or_default()
                    .insert(path.to_path_buf());
            }
        }
        if let Some(w) = whole
            && let Some(d) = self.dirs.get_mut(w)
        {
            d.whole.insert(path.to_path_buf());
        }
    }

    /// Whether every directory of `deps` is still in the table (events read while the fact
    /// was taken may have dropped one).
    fn deps_present(&self, deps: &Deps, whole: Option<&Path>) -> bool {
        // Every directory on the way, also those a `..` climbed out of (all entries but
        // the last were walked into).
        deps.iter().all(|(d, _)| self.dirs.contains_key(d))
            && deps
                .iter()
                .rev()
                .skip(1)
                .all(|(d, n)| self.dirs.contains_key(&d.join(n)))
            && whole.is_none_or(|w| self.dirs.contains_key(w))
    }
}

impl Watch {
    /// A watcher in `mode`; without notifications on this machine (or mode off), one that
    /// answers nothing.
    pub fn new(mode: WatchMode) -> Watch {
        let notifier = match mode {
            WatchMode::Off => None,
            _ => match Notifier::new() {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::info!("no directory watcher ({e}): every check asks the filesystem");
                    None
                }
            },
        };
        let active = notifier.is_some();
        let inner = Arc::new(WatchInner {
            mode: if active { mode } else { WatchMode::Off },
            state: Mutex::new(State {
                notifier,
                tree: Tree::default(),
            }),
            counters: WatchCounters::default(),
        });
        if active {
            // Reads queued events while the daemon is idle; ends with the watcher.
            let weak = Arc::downgrade(&inner);
            let spawned = std::thread::Builder::new()
                .name("zcfs-watch".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(IDLE_READ);
                        let Some(w) = weak.upgrade() else { break };
                        w.sync();
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!("no background reader for the watcher: {e}");
            }
        }
        Watch(inner)
    }
}

impl WatchInner {
    pub fn mode(&self) -> WatchMode {
        self.mode
    }

    /// Takes every change reported so far. Call at the start of each request, before any
    /// answer is used: what was changed before the request was sent is then seen.
    pub fn sync(&self) {
        if self.mode == WatchMode::Off {
            return;
        }
        let mut st = self.state.lock();
        self.drain(&mut st);
    }

    fn drain(&self, st: &mut State) {
        let State { notifier, tree } = st;
        let Some(n) = notifier else {
            return;
        };
        let mounts = n.mounts_changed();
        let mut intact = !mounts;
        let mut count = 0u64;
        if intact {
            n.drain(|e| {
                count += 1;
                intact &= tree.on_event(e);
            });
        }
        for wd in tree.unwatch.drain(..) {
            n.unwatch(wd);
        }
        self.counters.events.fetch_add(count, Ordering::Relaxed);
        if !intact {
            self.reset(
                st,
                if mounts {
                    "the mount table changed"
                } else {
                    "events were lost"
                },
            );
        }
    }

    /// Drops every fact and every watch (a new inotify instance).
    fn reset(&self, st: &mut State, why: &str) {
        self.counters.resets.fetch_add(1, Ordering::Relaxed);
        tracing::info!("watcher: everything dropped ({why})");
        // Fill numbers go on (a digest taken for a fact before the reset must not attach
        // to one learned after it).
        st.tree = Tree {
            next_id: st.tree.next_id,
            ..Tree::default()
        };
        st.notifier = None;
        match Notifier::new() {
            Ok(n) => st.notifier = Some(n),
            Err(e) => {
                tracing::warn!("directory watcher lost ({e}): every check asks the filesystem")
            }
        }
    }

    /// Puts the directory `parent/name` in the table (watched first, then looked at).
    /// `Ok(false)`: nothing there, or not a directory.
    fn add_dir(&self, st: &mut State, parent: &Path, name: &OsStr) -> Result<bool, ()> {
        let child = parent.join(name);
        if !st.tree.dirs.contains_key(parent) || st.tree.dirs.len() >= MAX_DIRS {
            return Err(());
        }
        st.tree.adding = Some((parent.to_path_buf(), name.to_os_string()));
        st.tree.adding_changed = false;
        let r = self.add_dir_now(st, parent, name, child);
        st.tree.adding = None;
        r
    }

    fn add_dir_now(
        &self,
        st: &mut State,
        parent: &Path,
        name: &OsStr,
        child: PathBuf,
    ) -> Result<bool, ()> {
        match std::fs::symlink_metadata(&child) {
            Err(e) if crate::os::is_not_found(&e) => return Ok(false),
            Err(_) => return Err(()),
            Ok(m) if m.file_type().is_symlink() => return Err(()),
            Ok(m) if !m.is_dir() => return Ok(false),
            Ok(_) => {}
        }
        let wd = if watchable_dir(&child) {
            let n = st.notifier.as_ref().ok_or(())?;
            Some(n.watch_dir(&child).map_err(|_| ())?)
        } else {
            None
        };
        let dir = Dir {
            wd,
            by_name: HashMap::default(),
            whole: HashSet::default(),
            subdirs: HashSet::default(),
        };
        if let Some(wd) = wd {
            st.tree.wds.entry(wd).or_default().push(child.clone());
        }
        st.tree.dirs.insert(child.clone(), dir);
        // A change of the entry between the look and the watch is an event of the parent.
        self.drain(st);
        let still = st.tree.dirs.contains_key(&child) && !st.tree.adding_changed;
        match st.tree.dirs.get_mut(parent) {
            Some(p) if still => {
                p.subdirs.insert(name.to_os_string());
                Ok(true)
            }
            _ => {
                st.tree.remove_dir(&child);
                self.drain(st);
                Err(())
            }
        }
    }

    /// Walks `path` through the table, adding the directories on the way.
    fn walk(&self, st: &mut State, path: &Path) -> Walk {
        // A trailing `/` asks for a directory: left to the filesystem.
        if !path.is_absolute()
            || st.notifier.is_none()
            || (path.as_os_str().len() > 1 && path.as_os_str().as_encoded_bytes().ends_with(b"/"))
        {
            return Walk::Unwatchable;
        }
        let root = Path::new("/");
        if !st.tree.dirs.contains_key(root) {
            let Some(n) = st.notifier.as_ref() else {
                return Walk::Unwatchable;
            };
            if !watchable_dir(root) {
                return Walk::Unwatchable;
            }
            let Ok(wd) = n.watch_dir(root) else {
                return Walk::Unwatchable;
            };
            st.tree.wds.entry(wd).or_default().push(root.to_path_buf());
            st.tree.dirs.insert(
                root.to_path_buf(),
                Dir {
                    wd: Some(wd),
                    by_name: HashMap::default(),
                    whole: HashSet::default(),
                    subdirs: HashSet::default(),
                },
            );
        }
        let comps: Vec<Component> = path.components().skip(1).collect();
        let Some((Component::Normal(last), on_the_way)) = comps.split_last() else {
            return Walk::Unwatchable;
        };
        let watched =
            |st: &State, dir: &Path| st.tree.dirs.get(dir).is_some_and(|d| d.wd.is_some());
        let mut dir = root.to_path_buf();
        let mut deps = Deps::new();
        for c in on_the_way {
            match c {
                Component::Normal(name) => {
                    if !watched(st, &dir) {
                        return Walk::Unwatchable;
                    }
                    deps.push((dir.clone(), name.to_os_string()));
                    let child = dir.join(name);
                    if !st.tree.dirs.contains_key(&child) {
                        match self.add_dir(st, &dir, name) {
                            Ok(true) => {}
                            Ok(false) => return Walk::Missing(deps),
                            Err(()) => return Walk::Unwatchable,
                        }
                    }
                    dir = child;
                }
                // `dir` is a real directory (no symlink on the way): its `..` is the one
                // before it (across mount points too).
                Component::ParentDir => {
                    if let Some(p) = dir.parent() {
                        dir = p.to_path_buf();
                    }
                }
                Component::CurDir => {}
                _ => return Walk::Unwatchable,
            }
        }
        if !watched(st, &dir) {
            return Walk::Unwatchable;
        }
        deps.push((dir.clone(), last.to_os_string()));
        Walk::Entry {
            resolved: dir.join(last),
            deps,
        }
    }

    /// The fact about `path`, taken now if not known. `None`: ask the filesystem.
    fn fact(&self, st: &mut State, path: &Path) -> Option<Fact> {
        if let Some(f) = st.tree.facts.get(path) {
            self.counters.answered.fetch_add(1, Ordering::Relaxed);
            return Some(f.clone());
        }
        let (meta, deps, whole, file_wd) = match self.walk(st, path) {
            Walk::Unwatchable => {
                self.counters.unwatchable.fetch_add(1, Ordering::Relaxed);
                tracing::trace!("not watchable: {}", path.display());
                return None;
            }
            // Not kept (a directory on the way went while it was taken): then the answer
            // is not trusted either (it was taken on the path without `..`).
            Walk::Missing(deps) => {
                return self.insert(st, path, &deps, None, None, None);
            }
            Walk::Entry { deps, resolved } => {
                let (parent, name) = deps.last().cloned()?;
                let at = resolved.as_path();
                // A directory is watched before it is looked at (its times change with its
                // entries).
                if !st.tree.dirs.contains_key(at)
                    && std::fs::symlink_metadata(at).is_ok_and(|m| m.is_dir())
                    && self.add_dir(st, &parent, &name).is_err()
                {
                    self.counters.unwatchable.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                // In files mode a regular file is watched itself (by the inode looked at).
                let entry = if self.mode == WatchMode::Files {
                    open_entry(at).and_then(|f| Ok((f.metadata()?, Some(f))))
                } else {
                    std::fs::symlink_metadata(at).map(|m| (m, None))
                };
                match entry {
                    Err(e) if crate::os::is_not_found(&e) => (None, deps, None, None),
                    Err(_) => return None,
                    Ok((m, _)) if m.file_type().is_symlink() => {
                        self.counters.unwatchable.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    Ok((m, file)) => {
                        let is_dir = m.is_dir();
                        if is_dir && st.tree.dirs.get(at).is_none_or(|d| d.wd.is_none()) {
                            self.counters.unwatchable.fetch_add(1, Ordering::Relaxed);
                            return None;
                        }
                        // The file's own watch first, then the stat that is kept: a change
                        // in between is reported.
                        let (file_wd, m) = match (&file, &st.notifier) {
                            (Some(f), Some(n)) if m.is_file() => match n.watch_file(f) {
                                Ok(wd) => match f.metadata() {
                                    Ok(again) => (Some(wd), again),
                                    Err(_) => return None,
                                },
                                Err(_) => (None, m),
                            },
                            _ => (None, m),
                        };
                        (
                            Some(FileMeta {
                                is_file: m.is_file(),
                                is_dir,
                                stat: FileStat::of(&m),
                            }),
                            deps,
                            is_dir.then(|| at.to_path_buf()),
                            file_wd,
                        )
                    }
                }
            }
        };
        self.insert(st, path, &deps, meta, whole.as_deref(), file_wd)
    }

    /// Caches a fact (if its directories are still in the table after the events read
    /// while it was taken).
    fn insert(
        &self,
        st: &mut State,
        path: &Path,
        deps: &Deps,
        meta: Option<FileMeta>,
        whole: Option<&Path>,
        file_wd: Option<i32>,
    ) -> Option<Fact> {
        if !st.tree.deps_present(deps, whole) {
            if let Some(wd) = file_wd
                && !st.tree.file_wds.contains_key(&wd)
                && let Some(n) = &st.notifier
            {
                n.unwatch(wd);
            }
            return None;
        }
        if st.tree.facts.len() >= MAX_FACTS {
            self.reset(st, "too many facts");
            return None;
        }
        st.tree.next_id += 1;
        // An earlier fact about this path (another fill) goes first, with its watch.
        st.tree.forget_fact(path);
        if let Some(wd) = file_wd {
            st.tree
                .file_wds
                .entry(wd)
                .or_default()
                .push(path.to_path_buf());
            st.tree.unwatch.retain(|&w| w != wd);
        }
        let fact = Fact {
            meta,
            file_wd,
            digest: None,
            id: st.tree.next_id,
        };
        st.tree.depend(path, deps, whole);
        st.tree.facts.insert(path.to_path_buf(), fact.clone());
        self.counters.learned.fetch_add(1, Ordering::Relaxed);
        Some(fact)
    }

    /// What is at `path` (following nothing: a symlink is not answered). `need_stat`: the
    /// caller uses a regular file's stat (its content's stand-in), answered only in
    /// [`WatchMode::Files`]. `None`: ask the filesystem.
    pub fn meta(&self, path: &Path, need_stat: bool) -> Option<io::Result<Option<FileMeta>>> {
        if self.mode == WatchMode::Off {
            return None;
        }
        let mut st = self.state.lock();
        let f = self.fact(&mut st, path)?;
        match f.meta {
            Some(m) if m.is_file && need_stat && f.file_wd.is_none() => None,
            Some(m) if !m.is_file && !m.is_dir && need_stat => None,
            m => Some(Ok(m)),
        }
    }

    /// The names in directory `path`. `None`: ask the filesystem.
    pub fn list(&self, path: &Path) -> Option<io::Result<Listing>> {
        if self.mode == WatchMode::Off {
            return None;
        }
        let mut st = self.state.lock();
        let (parent, name, dir) = match self.walk(&mut st, path) {
            Walk::Entry { mut deps, resolved } => {
                let (parent, name) = deps.pop()?;
                (parent, name, resolved)
            }
            Walk::Missing(_) => return Some(Err(io::ErrorKind::NotFound.into())),
            Walk::Unwatchable => {
                self.counters.unwatchable.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        // The directory is in the table (watched) before it is read.
        if !st.tree.dirs.contains_key(&dir) {
            match self.add_dir(&mut st, &parent, &name) {
                Ok(true) => {}
                Ok(false) => return Some(Err(io::ErrorKind::NotFound.into())),
                Err(()) => return None,
            }
        }
        if st.tree.dirs.get(&dir).is_none_or(|d| d.wd.is_none()) {
            return None;
        }
        if let Some(l) = st.tree.listings.get_mut(&dir) {
            // Entries named by events since: looked at again, one by one.
            for n in std::mem::take(&mut l.dirty) {
                match std::fs::symlink_metadata(dir.join(&n)) {
                    Ok(_) => {
                        Arc::make_mut(&mut l.names).insert(n);
                    }
                    Err(e) if crate::os::is_not_found(&e) => {
                        Arc::make_mut(&mut l.names).remove(&n);
                    }
                    Err(_) => {
                        st.tree.listings.remove(&dir);
                        return None;
                    }
                }
            }
            self.counters.answered.fetch_add(1, Ordering::Relaxed);
            return Some(Ok(l.names.clone()));
        }
        let Ok(names) = crate::fsview::host_list_dir(&dir) else {
            return None;
        };
        self.counters.learned.fetch_add(1, Ordering::Relaxed);
        st.tree.listings.insert(
            dir,
            Listed {
                names: names.clone(),
                dirty: Vec::new(),
            },
        );
        Some(Ok(names))
    }

    /// A regular file's digest and stat ([`WatchMode::Files`] only), with `hash` (the hash
    /// cache) asked when not known. `None`: not answered here.
    pub fn digest<E>(
        &self,
        path: &Path,
        hash: impl FnOnce(&Path) -> Result<(Digest, FileStat), E>,
    ) -> Option<Result<(Digest, FileStat), E>> {
        if self.mode != WatchMode::Files {
            return None;
        }
        let f = {
            let mut st = self.state.lock();
            let f = self.fact(&mut st, path)?;
            match (f.meta, f.digest) {
                (Some(m), Some(d)) if f.file_wd.is_some() => {
                    return Some(Ok((d, m.stat)));
                }
                (Some(m), None) if f.file_wd.is_some() => (f.id, m.stat),
                _ => return None,
            }
        };
        // Hashed without the lock; kept only for the fact it was taken for.
        let r = hash(path);
        if let Ok((d, stat)) = &r
            && *stat == f.1
        {
            let mut st = self.state.lock();
            if let Some(cur) = st.tree.facts.get_mut(path)
                && cur.id == f.0
                && cur.meta.is_some_and(|m| m.stat == *stat)
            {
                cur.digest = Some(*d);
            }
        }
        Some(r)
    }

    pub fn report(&self) -> WatchReport {
        let st = self.state.lock();
        let c = &self.counters;
        WatchReport {
            mode: self.mode.name().to_string(),
            active: st.notifier.is_some(),
            dirs: st.tree.dirs.len() as u64,
            facts: st.tree.facts.len() as u64,
            answered: c.answered.load(Ordering::Relaxed),
            learned: c.learned.load(Ordering::Relaxed),
            unwatchable: c.unwatchable.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
        }
    }

    /// Drops everything as if events had been lost (tests).
    pub fn simulate_overflow(&self) {
        let mut st = self.state.lock();
        self.reset(&mut st, "asked to");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::fsview::{host_list_dir, host_meta};
    use std::fs;

    /// The watcher with the filesystem behind it (what the hash cache does with it).
    struct HashCache {
        watch: Watch,
    }

    fn hash_now(p: &Path) -> io::Result<(Digest, FileStat)> {
        let m = fs::metadata(p)?;
        Ok((Digest::of(&fs::read(p)?), FileStat::of(&m)))
    }

    impl HashCache {
        fn watching(mode: WatchMode) -> HashCache {
            HashCache {
                watch: Watch::new(mode),
            }
        }
        fn meta(&self, p: &Path, need_stat: bool) -> io::Result<Option<FileMeta>> {
            self.watch
                .meta(p, need_stat)
                .unwrap_or_else(|| host_meta(p))
        }
        fn list_dir(&self, p: &Path) -> io::Result<Listing> {
            self.watch.list(p).unwrap_or_else(|| host_list_dir(p))
        }
        fn digest(&self, p: &Path) -> io::Result<(Digest, FileStat)> {
            self.watch
                .digest(p, hash_now)
                .unwrap_or_else(|| hash_now(p))
        }
    }

    fn kind(h: &HashCache, p: &Path) -> Option<bool> {
        h.meta(p, false).unwrap().map(|m| m.is_dir)
    }

    #[test]
    fn a_created_removed_or_renamed_name_is_seen_after_sync() {
        let t = tempfile::tempdir().unwrap();
        let h = HashCache::watching(WatchMode::Names);
        let a = t.path().join("a");
        let x = a.join("b/x.h");
        assert_eq!(kind(&h, &x), None);
        assert_eq!(kind(&h, &x), None);
        let answered = h.watch.report().answered;
        assert!(
            answered >= 1,
            "the second question is answered from the table"
        );
        fs::create_dir_all(a.join("b")).unwrap();
        fs::write(&x, b"1").unwrap();
        h.watch.sync();
        assert_eq!(kind(&h, &x), Some(false), "created");
        // A directory on the way renamed: the old path is gone, the new one is there.
        fs::rename(&a, t.path().join("c")).unwrap();
        h.watch.sync();
        assert_eq!(kind(&h, &x), None, "renamed away");
        assert_eq!(kind(&h, &t.path().join("c/b/x.h")), Some(false));
        // Replaced by a file: nothing below it.
        fs::write(&a, b"file").unwrap();
        h.watch.sync();
        assert_eq!(kind(&h, &x), None);
        assert_eq!(kind(&h, &a), Some(false));
        fs::remove_file(&a).unwrap();
        h.watch.sync();
        assert_eq!(kind(&h, &a), None, "removed");
        assert!(h.watch.report().events > 0);
    }

    #[test]
    fn listings_and_directory_times_follow_their_entries() {
        let t = tempfile::tempdir().unwrap();
        let h = HashCache::watching(WatchMode::Names);
        let d = t.path().join("d");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("one"), b"").unwrap();
        let list = |h: &HashCache| {
            let mut v: Vec<OsString> = h.list_dir(&d).unwrap().iter().cloned().collect();
            v.sort();
            v
        };
        assert_eq!(list(&h), vec![OsString::from("one")]);
        let before = h.meta(&d, true).unwrap().unwrap().stat;
        std::thread::sleep(std::time::Duration::from_millis(5));
        fs::write(d.join("two"), b"").unwrap();
        h.watch.sync();
        assert_eq!(list(&h), vec![OsString::from("one"), OsString::from("two")]);
        let after = h.meta(&d, true).unwrap().unwrap().stat;
        assert_ne!(
            before.mtime, after.mtime,
            "a directory's times are not kept stale"
        );
        assert_eq!(after, crate::os::FileStat::of(&fs::metadata(&d).unwrap()));
        // Kept up to date name by name: the same as a fresh read after each change.
        let fresh = || {
            let mut v: Vec<OsString> = fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let learned = h.watch.report().learned;
        fs::remove_file(d.join("one")).unwrap();
        h.watch.sync();
        assert_eq!(list(&h), fresh());
        fs::rename(d.join("two"), d.join("three")).unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("three"), b"x").unwrap();
        h.watch.sync();
        assert_eq!(list(&h), fresh());
        for i in 0..(MAX_DIRTY + 10) {
            fs::write(d.join(format!("n{i}")), b"").unwrap();
        }
        h.watch.sync();
        assert_eq!(list(&h), fresh());
        assert!(
            h.watch.report().learned <= learned + 1,
            "updated, read again once at most"
        );
    }

    #[test]
    fn file_content_is_trusted_only_in_files_mode_and_seen_through_any_name() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f.h");
        fs::write(&f, b"one").unwrap();
        let names = HashCache::watching(WatchMode::Names);
        assert!(
            names.watch.meta(&f, true).is_none(),
            "names mode: stat asked"
        );
        assert!(names.watch.meta(&f, false).is_some());
        assert!(names.watch.digest(&f, |p| names.digest(p)).is_none());

        let files = HashCache::watching(WatchMode::Files);
        let (d1, _) = files.digest(&f).unwrap();
        let learned = files.watch.report().learned;
        assert_eq!(files.digest(&f).unwrap().0, d1);
        assert_eq!(
            files.watch.report().learned,
            learned,
            "answered, not learned again"
        );
        // Same size, written within the same tick: the event tells.
        fs::write(&f, b"two").unwrap();
        files.watch.sync();
        assert_eq!(files.digest(&f).unwrap().0, Digest::of(b"two"));
        // Truncated through an open file.
        fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .unwrap()
            .set_len(1)
            .unwrap();
        files.watch.sync();
        assert_eq!(files.digest(&f).unwrap().0, Digest::of(b"t"));
        // A second name elsewhere: what is written through it is seen too (the file is
        // watched itself, not only its directory).
        let other = tempfile::tempdir().unwrap();
        fs::hard_link(&f, other.path().join("g.h")).unwrap();
        files.watch.sync();
        assert_eq!(files.digest(&f).unwrap().0, Digest::of(b"t"));
        fs::write(other.path().join("g.h"), b"new").unwrap();
        files.watch.sync();
        assert_eq!(files.digest(&f).unwrap().0, Digest::of(b"new"));
    }

    #[test]
    fn symlinks_and_relative_paths_are_asked_of_the_filesystem() {
        let t = tempfile::tempdir().unwrap();
        let h = HashCache::watching(WatchMode::Files);
        fs::create_dir(t.path().join("real")).unwrap();
        fs::write(t.path().join("real/x.h"), b"x").unwrap();
        std::os::unix::fs::symlink("real", t.path().join("link")).unwrap();
        std::os::unix::fs::symlink("real/x.h", t.path().join("y.h")).unwrap();
        for p in [
            t.path().join("link/x.h"),
            t.path().join("y.h"),
            t.path().join("link/../real/x.h"),
            PathBuf::from("real/x.h"),
            PathBuf::from(format!("{}/", t.path().join("real/x.h").display())),
        ] {
            assert!(h.watch.meta(&p, false).is_none(), "{}", p.display());
        }
        // Through the cache, the answer is still the filesystem's.
        assert!(h.meta(&t.path().join("link/x.h"), false).unwrap().is_some());
        fs::remove_file(t.path().join("real/x.h")).unwrap();
        h.watch.sync();
        assert!(h.meta(&t.path().join("link/x.h"), false).unwrap().is_none());
        assert!(h.watch.report().unwatchable > 0);
    }

    #[test]
    fn dot_dot_after_a_real_directory_depends_on_it() {
        let t = tempfile::tempdir().unwrap();
        let h = HashCache::watching(WatchMode::Names);
        fs::create_dir(t.path().join("sub")).unwrap();
        fs::write(t.path().join("x.h"), b"x").unwrap();
        let p = t.path().join("sub/../x.h");
        let q = t.path().join("sub/../y.h");
        assert_eq!(kind(&h, &p), Some(false));
        assert_eq!(kind(&h, &q), None);
        assert!(h.watch.meta(&p, false).is_some(), "answered by the watcher");
        fs::write(t.path().join("y.h"), b"y").unwrap();
        h.watch.sync();
        assert_eq!(kind(&h, &q), Some(false), "created next to it");
        // A directory climbed out of, removed while another path through it is learned
        // (its event read in the middle, when a new directory is put in the table): the
        // answer is the filesystem's, not one taken without the `..`.
        fs::create_dir(t.path().join("e")).unwrap();
        fs::write(t.path().join("e/x.h"), b"x").unwrap();
        h.watch.sync();
        fs::remove_dir(t.path().join("sub")).unwrap();
        let through = t.path().join("sub/../e/x.h");
        assert_eq!(kind(&h, &through), None);
        fs::create_dir(t.path().join("sub")).unwrap();
        // Without `sub`, `sub/..` leads nowhere.
        fs::remove_dir(t.path().join("sub")).unwrap();
        h.watch.sync();
        assert_eq!(kind(&h, &p), None);
        assert_eq!(
            fs::metadata(&p)
                .map_err(|e| crate::os::is_not_found(&e))
                .err(),
            Some(true)
        );
    }

    #[test]
    fn lost_events_drop_everything() {
        let t = tempfile::tempdir().unwrap();
        let h = HashCache::watching(WatchMode::Files);
        let f = t.path().join("f.h");
        fs::write(&f, b"one").unwrap();
        let spam = t.path().join("spam");
        fs::create_dir(&spam).unwrap();
        assert_eq!(h.digest(&f).unwrap().0, Digest::of(b"one"));
        // (A first fill may be spoiled by an event in the parent meanwhile: ask until the
        // answer comes from the table, `spam` watched.)
        for _ in 0..5 {
            h.watch.sync();
            let answered = h.watch.report().answered;
            assert_eq!(kind(&h, &spam.join("a")), None);
            assert_eq!(kind(&h, &spam.join("a")), None);
            if h.watch.report().answered > answered {
                break;
            }
        }
        assert_eq!(h.digest(&f).unwrap().0, Digest::of(b"one"));
        // More events than the kernel queues (alternating names are not merged), then a
        // change: its event is lost in the overflow.
        let max: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16384);
        let names = [spam.join("a"), spam.join("b")];
        for n in &names {
            fs::write(n, b"").unwrap();
        }
        // The background reader empties the queue every 50 ms: three queues' worth as fast
        // as the kernel takes them overflows it in between (tried again if not).
        let resets = h.watch.report().resets;
        let now = filetime::FileTime::now();
        for _ in 0..5 {
            for i in 0..3 * max {
                filetime::set_file_mtime(&names[i % 2], now).unwrap();
            }
            fs::write(&f, b"two").unwrap();
            h.watch.sync();
            if h.watch.report().resets > resets {
                break;
            }
        }
        assert!(
            h.watch.report().resets > resets,
            "the overflow is noticed: {:?}",
            h.watch.report()
        );
        assert_eq!(h.digest(&f).unwrap().0, Digest::of(b"two"));
        assert_eq!(kind(&h, &spam.join("a")), Some(false));
        // A reset by hand (as after a mount-table change) is the same.
        h.watch.simulate_overflow();
        assert_eq!(h.watch.report().facts, 0);
        assert_eq!(h.digest(&f).unwrap().0, Digest::of(b"two"));
    }

    #[test]
    fn off_answers_nothing() {
        let t = tempfile::tempdir().unwrap();
        let h = HashCache::watching(WatchMode::Off);
        assert!(h.watch.meta(t.path(), false).is_none());
        assert!(h.watch.list(t.path()).is_none());
        assert_eq!(h.watch.report().mode, "off");
        assert_eq!(WatchMode::parse("files"), Ok(WatchMode::Files));
        assert!(WatchMode::parse("sometimes").is_err());
    }
}
