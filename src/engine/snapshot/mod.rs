//! Snapshots of cargo's unit records, the daemon's side (docs/snapshot.md): recording the
//! units `zcfs cargo` found after a build, and projecting, before the next one, the records
//! whose inputs verify by content, with mtimes by the rule of
//! ../shared/research/snapshot-projection.md:
//!
//! - a stamp S is taken first, on the mount's file clock;
//! - every input of every projected unit is hashed and must match its record, and must be
//!   older than S (an input changed after S would otherwise look no newer than the records);
//! - every projected file gets T = the newest of those inputs' mtimes (< S), so cargo finds
//!   no input newer than its unit, and anything written from now on is newer than T;
//! - a unit is projected only with the very records of the units it was built against
//!   (same identity: their outputs' bytes), only where cargo has no record of it yet, and
//!   never under a unit cargo already has that depends on it.
//!
//! Everything else is cargo's to judge: it hashes flags, features, the toolchain and
//! tracked variables, and rebuilds a projected unit that does not match through the
//! wrapper, as any unit.
//!
//! Here: what both sides share (the compile entries' check data, the untracked tools, input
//! states); `record.rs` records after a build, `project.rs` verifies and projects before
//! one.

mod project;
mod record;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{debug, info};

use super::Engine;
use crate::fsutil::NanoTime;
use crate::fsview::FsView;
use crate::hash::Digest;
use crate::mount::contract::{MountCore, PathTarget};
use crate::os::OsStringExt;
use crate::projection::ProjectItem;
use crate::projection::relpath::RelPath;
use crate::proto::{SnapInput, SnapUnit, SnapshotAt};
use crate::snapshot::index::{self, HostInput, Index, SnapFile, UnitRecord};
use crate::store::pack::{self, Pack};

/// What a compile entry was checked against, resolved to absolute paths: a unit whose
/// outputs are this pack's is recorded with these as inputs too, so that a projected unit
/// meets the bar of a hit (the files the compile read, the linker's inputs, the names that
/// must stay absent).
pub(super) struct Produced {
    files: Vec<(Vec<u8>, Digest)>,
    absent: Vec<Vec<u8>>,
}

/// Packs remembered in [`Produced`] at most (the map is emptied beyond).
const PRODUCED_MAX: usize = 200_000;

/// An input's state now: content digest, whether a directory, newest mtime; or why not.
type InputState = Result<(Digest, bool, NanoTime), &'static str>;

/// A new record's inputs: outside the build dir, and inside it (relative path, digest).
type RecordedInputs = (Vec<HostInput>, Vec<(String, Digest)>);

/// Paths that must stay absent, by directory: (directory, names in it).
type AbsentGroups = Vec<(Vec<u8>, Vec<Vec<u8>>)>;

/// Directory listings read during one projection (`None`: the directory is not there).
type Listings = HashMap<Vec<u8>, Option<crate::fsview::Listing>>;

/// Per (index file, unit key): the client's stats digest and the unit's own identity.
pub(super) type StatsCache = HashMap<(PathBuf, String), (Digest, Digest)>;

/// Units whose stats digest the daemon remembers at most.
const STATS_CACHE_MAX: usize = 100_000;

/// Real files per snapshot pack (each is held open while the pack is written).
const PACK_BATCH: usize = 128;

/// The most entries hashed for one directory input (cargo scans it whole).
const MAX_TREE: usize = 20_000;

fn os_path(b: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(b.to_vec()))
}

fn index_path(engine: &Engine, at: &SnapshotAt) -> PathBuf {
    index::index_path(
        &engine.paths.cache_dir,
        &at.build_dir.0,
        &at.workspace.0,
        &at.cargo_home.0,
    )
}

/// A relative path that stays inside the build dir.
fn checked_rel(rel: &str) -> Result<PathBuf, String> {
    RelPath::parse(rel)
        .map(|r| r.to_path())
        .map_err(|e| format!("bad path {rel:?}: {e:?}"))
}

impl Engine {
    /// Remembers what a pack's entry was checked against (a hit served without rebasing, or
    /// a miss stored), for the snapshot records of the units it belongs to. Only compiles
    /// that cargo runs (rustc, and build scripts' C compiles) are remembered: only they
    /// belong to units.
    pub(super) fn note_produced(
        &self,
        pack: Digest,
        inputs: &crate::store::manifest::Inputs,
        cwd: &Path,
    ) {
        use crate::os::OsStrExt;
        let abs = |p: &[u8]| cwd.join(os_path(p)).as_os_str().as_bytes().to_vec();
        // By directory: a projection checks a directory's listing once.
        let mut absent: Vec<Vec<u8>> = inputs.absent.iter().map(|a| abs(a)).collect();
        for g in &inputs.absent_under {
            let dir = cwd.join(os_path(&g.dir));
            absent.extend(
                g.names
                    .iter()
                    .map(|n| dir.join(os_path(n)).as_os_str().as_bytes().to_vec()),
            );
        }
        let p = Produced {
            files: inputs
                .files
                .iter()
                .map(|f| (abs(&f.path), f.digest))
                .collect(),
            absent,
        };
        let mut m = self.produced.lock();
        if m.len() >= PRODUCED_MAX {
            m.clear();
        }
        m.insert(pack, Arc::new(p));
    }

    /// The digest of the tools a build runs without cargo tracking their contents (the
    /// default linker and C compilers, as the client resolved them).
    fn tools_digest(&self, at: &SnapshotAt) -> Result<Digest, &'static str> {
        let fs = self.fs();
        let mut h = crate::hash::KeyHasher::new("zcfs snapshot tools");
        for (name, path) in &at.tools {
            h.field("tool", name.as_bytes());
            h.field("path", &path.0);
            let d = match fs.digest(&os_path(&path.0)) {
                Ok((d, _)) => d,
                Err(_) => return Err("a compiler or linker is unreadable"),
            };
            h.digest("digest", &d);
        }
        Ok(h.finish())
    }

    /// The build dir, its mount and its path inside the mount.
    fn snapshot_mount(
        &self,
        at: &SnapshotAt,
    ) -> Result<(PathBuf, Arc<crate::mount::LiveMount>, PathBuf)> {
        let build_dir = os_path(&at.build_dir.0);
        let (m, inner) = self
            .mounts
            .find(&build_dir)
            .with_context(|| format!("{} is not under a zcfs mount", build_dir.display()))?;
        Ok((build_dir, m, inner))
    }

    /// Whether no compile reached this daemon since `since` (the count the projection
    /// before the build reported) nor since the build dir was last recorded in full: the
    /// build dir then holds nothing a record lacks.
    pub(super) fn snapshot_unchanged(&self, at: &SnapshotAt, since: Option<u64>) -> bool {
        let now = self.compiles.load(std::sync::atomic::Ordering::SeqCst);
        since == Some(now)
            && self.snapshot_recorded_at.lock().get(&index_path(self, at)) == Some(&now)
    }
}

/// Absolute paths grouped by their directory.
fn group_by_dir(paths: Vec<Vec<u8>>) -> AbsentGroups {
    use crate::os::OsStrExt;
    let mut by: BTreeMap<Vec<u8>, std::collections::BTreeSet<Vec<u8>>> = BTreeMap::new();
    for p in paths {
        let p = os_path(&p);
        let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
            continue;
        };
        by.entry(dir.as_os_str().as_bytes().to_vec())
            .or_default()
            .insert(name.as_bytes().to_vec());
    }
    by.into_iter()
        .map(|(d, n)| (d, n.into_iter().collect()))
        .collect()
}

/// Whether a key names a file of the build dir kept with the units rather than a unit
/// (cargo's `.rustc_info.json`): not counted as a unit.
fn is_extra(key: &str) -> bool {
    key == crate::snapshot::survey::RUSTC_INFO
}

/// An input's content digest, whether it is a directory, and its newest mtime (for a
/// directory, of everything in it, as cargo scans it).
fn input_state(fs: &dyn FsView, p: &Path) -> InputState {
    match fs.meta(p) {
        Ok(Some(m)) if m.is_file => {
            let (d, st) = fs.digest(p).map_err(|_| "input unreadable")?;
            Ok((d, false, st.mtime))
        }
        Ok(Some(m)) if m.is_dir => {
            let mut h = crate::hash::KeyHasher::new("zcfs snapshot tree");
            let mut newest = m.stat.mtime;
            let mut count = 0usize;
            tree(fs, p, Path::new(""), &mut h, &mut newest, &mut count)?;
            Ok((h.finish(), true, newest))
        }
        Ok(Some(_)) => Err("input unreadable"),
        Ok(None) => Err("input missing"),
        Err(_) => Err("input unreadable"),
    }
}

fn tree(
    fs: &dyn FsView,
    root: &Path,
    rel: &Path,
    h: &mut crate::hash::KeyHasher,
    newest: &mut NanoTime,
    count: &mut usize,
) -> Result<(), &'static str> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs
        .list_dir(&dir)
        .map_err(|_| "input unreadable")?
        .iter()
        .cloned()
        .collect();
    names.sort();
    for n in names {
        *count += 1;
        if *count > MAX_TREE {
            return Err("input directory too large");
        }
        let child = rel.join(&n);
        let p = root.join(&child);
        let m = fs
            .meta(&p)
            .map_err(|_| "input unreadable")?
            .ok_or("input changed")?;
        *newest = (*newest).max(m.stat.mtime);
        h.field("name", child.as_os_str().as_encoded_bytes());
        if m.is_dir {
            h.field("kind", b"dir");
            tree(fs, root, &child, h, newest, count)?;
        } else if m.is_file {
            let (d, st) = fs.digest(&p).map_err(|_| "input unreadable")?;
            *newest = (*newest).max(st.mtime);
            h.digest("file", &d);
        } else {
            h.field("kind", b"other");
        }
    }
    Ok(())
}
