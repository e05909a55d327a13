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

/// Where a unit's file is now.
enum Src {
    Projected(crate::projection::Projection),
    /// A real file (opened again when stored: a build's units may own more files than
    /// the daemon may hold open), with its permissions.
    Real(u16),
}

struct FileNow {
    rel: String,
    digest: Digest,
    src: Src,
}

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

    pub(super) fn snapshot_record(
        &self,
        at: SnapshotAt,
        units: Vec<SnapUnit>,
        refused: Vec<(String, String)>,
    ) -> Result<serde_json::Value> {
        let t0 = std::time::Instant::now();
        // Outputs of misses become projections once stored: reference those, never copy.
        self.wait_published(Duration::from_secs(10));
        let (build_dir, m, inner) = self.snapshot_mount(&at)?;
        let core = &*m.core;
        let path = index_path(self, &at);
        let compiles = self.compiles.load(std::sync::atomic::Ordering::SeqCst);
        let mut idx = Index::load(&path);
        let t_load = t0.elapsed();
        let mut unrecorded: BTreeMap<String, u64> = BTreeMap::new();
        for (_, r) in &refused {
            *unrecorded.entry(r.clone()).or_default() += 1;
        }

        // Every unit's files and identity, new or not: dependents name their dependencies'.
        // Files are read through the core only for units whose stats changed since the
        // daemon last did (or that turn out to be new, below).
        let mut now: HashMap<String, (Digest, Vec<FileNow>)> = HashMap::new();
        let mut seen_stats = StatsCache::new();
        {
            let cache = self.snapshot_stats.lock();
            for u in &units {
                if let Some(v) = cache.get(&(path.clone(), u.key.clone())) {
                    seen_stats.insert((path.clone(), u.key.clone()), *v);
                }
            }
        }
        for u in &units {
            let cache_key = (path.clone(), u.key.clone());
            if let Some((sd, own)) = seen_stats.get(&cache_key)
                && *sd == u.stats_digest
            {
                now.insert(u.key.clone(), (*own, Vec::new()));
                continue;
            }
            match unit_files(core, &inner, u) {
                Ok(files) => {
                    let id = identity(u, &files);
                    seen_stats.insert(cache_key, (u.stats_digest, id));
                    now.insert(u.key.clone(), (id, files));
                }
                Err(e) => {
                    debug!("snapshot: {} not recorded: {e}", u.key);
                    *unrecorded
                        .entry("unit files unreadable".into())
                        .or_default() += 1;
                }
            }
        }
        let own_ids: HashMap<String, Digest> =
            now.iter().map(|(k, (id, _))| (k.clone(), *id)).collect();
        // A unit's identity covers the identities of the units it was built against: the
        // same files built against other dependencies are another record.
        let by_key: HashMap<&str, &SnapUnit> = units.iter().map(|u| (u.key.as_str(), u)).collect();
        let mut full: HashMap<String, Option<Digest>> = HashMap::new();
        for u in &units {
            full_identity(&u.key, &by_key, &now, &mut full, &mut HashSet::new());
        }
        for (k, id) in &full {
            match (id, now.get_mut(k)) {
                (Some(id), Some(entry)) => entry.0 = *id,
                (None, Some(_)) => {
                    now.remove(k);
                }
                _ => {}
            }
        }
        {
            let mut cache = self.snapshot_stats.lock();
            if cache.len() + seen_stats.len() > STATS_CACHE_MAX {
                cache.clear();
            }
            cache.extend(seen_stats);
        }
        let t_ids = t0.elapsed();
        let tools = self.tools_digest(&at).map_err(anyhow::Error::msg)?;
        let produced = self.produced.lock().clone();
        let mut need = Vec::new();
        let mut known = 0u64;
        let mut new: Vec<(&SnapUnit, UnitRecord)> = Vec::new();
        let fs = self.fs();
        for u in &units {
            let Some(id) = now.get(&u.key).map(|(id, _)| *id) else {
                continue;
            };
            let id = &id;
            if idx.has(&u.key, id) {
                known += 1;
                continue;
            }
            let Some(inputs) = &u.inputs else {
                need.push(u.key.clone());
                continue;
            };
            let deps: Option<Vec<(String, Digest)>> = u
                .deps
                .iter()
                .map(|d| now.get(d).map(|(i, _)| (d.clone(), *i)))
                .collect();
            let Some(deps) = deps else {
                *unrecorded
                    .entry("depends on a unit left to cargo".into())
                    .or_default() += 1;
                continue;
            };
            if now[&u.key].1.is_empty() && !u.files.is_empty() {
                // Known by its stats but new to this index: read its files now.
                match unit_files(core, &inner, u) {
                    Ok(files) if identity(u, &files) == own_ids[&u.key] => {
                        if let Some(e) = now.get_mut(&u.key) {
                            e.1 = files;
                        }
                    }
                    r => {
                        debug!("snapshot: {} changed while recorded ({:?})", u.key, r.err());
                        *unrecorded
                            .entry("changed while recorded".into())
                            .or_default() += 1;
                        continue;
                    }
                }
            }
            let entries = match entry_inputs(&now[&u.key].1, &produced, &build_dir) {
                Ok(e) => e,
                Err(reason) => {
                    debug!("snapshot: {} not recorded: {reason}", u.key);
                    *unrecorded.entry(reason.into()).or_default() += 1;
                    continue;
                }
            };
            match record_inputs(&fs, core, &inner, inputs, u.started) {
                Ok((mut host, build)) => {
                    let (files, absent) = entries;
                    host.extend(files);
                    host.sort_by(|a, b| a.path.cmp(&b.path));
                    host.dedup_by(|a, b| a.path == b.path);
                    let record = UnitRecord {
                        identity: *id,
                        hashes: u.hashes.clone(),
                        files: Vec::new(),
                        dirs: u.dirs.clone(),
                        inputs: host,
                        absent,
                        tools,
                        build_inputs: build,
                        deps,
                        env: u
                            .env
                            .iter()
                            .map(|(k, v)| (k.0.clone(), v.as_ref().map(|v| v.0.clone())))
                            .collect(),
                        recorded: crate::util::unix_now(),
                    };
                    debug!(
                        "snapshot: {} recorded with {} inputs, {} in the build dir",
                        u.key,
                        record.inputs.len(),
                        record.build_inputs.len()
                    );
                    new.push((u, record));
                }
                Err(reason) => {
                    debug!("snapshot: {} not recorded: {reason}", u.key);
                    *unrecorded.entry(reason).or_default() += 1;
                }
            }
        }
        let mut recorded = 0u64;
        if !new.is_empty() {
            // Real files go into packs; projections are referenced.
            let mut reals: Vec<(String, Digest)> = Vec::new();
            for (u, _) in &new {
                for f in &now[&u.key].1 {
                    if matches!(f.src, Src::Real(_)) {
                        reals.push((f.rel.clone(), f.digest));
                    }
                }
            }
            let mut stored: HashMap<String, (Digest, u32)> = HashMap::new();
            for batch in reals.chunks(PACK_BATCH) {
                let pack = self.snapshot_pack(core, &inner, batch)?;
                for (i, (rel, _)) in batch.iter().enumerate() {
                    stored.insert(rel.clone(), (pack, i as u32));
                }
            }
            for (u, mut record) in new {
                for f in &now[&u.key].1 {
                    let (pack, index, perm) = match &f.src {
                        Src::Projected(p) => (p.pack.id, p.index as u32, p.meta.perm),
                        Src::Real(perm) => {
                            let (pack, index) = stored[f.rel.as_str()];
                            (pack, index, *perm)
                        }
                    };
                    record.files.push(SnapFile {
                        rel: f.rel.clone(),
                        pack,
                        index,
                        perm,
                        digest: f.digest,
                    });
                }
                if idx.add(&u.key, record) && !is_extra(&u.key) {
                    recorded += 1;
                }
            }
            let pruned = idx.prune(|p| self.store.has_pack(p));
            if pruned > 0 {
                debug!("snapshot: {pruned} records dropped, their packs are gone");
            }
            idx.save(&path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if need.is_empty() {
            // Everything found is recorded (or refused for good): the next build that
            // compiles nothing need not look again.
            self.snapshot_recorded_at
                .lock()
                .insert(path.clone(), compiles);
        }
        self.stats.update(|d| {
            d.snapshot.recorded += recorded;
            for (r, n) in &unrecorded {
                *d.snapshot.unrecorded.entry(r.clone()).or_default() += n;
            }
        });
        debug!(
            "snapshot record: index loaded at {t_load:?}, identities at {t_ids:?}, done at {:?}",
            t0.elapsed()
        );
        if recorded > 0 {
            info!(
                "snapshot of {}: {recorded} units recorded, {known} known",
                build_dir.display()
            );
        }
        Ok(serde_json::json!({
            "recorded": recorded,
            "known": known,
            "need_inputs": need,
            "unrecorded": unrecorded,
        }))
    }

    /// Stores real files of new records as one pack; checks that each was stored with
    /// the digest its record's identity was computed from. Returns the pack's id.
    fn snapshot_pack(
        &self,
        core: &dyn MountCore,
        inner: &Path,
        files: &[(String, Digest)],
    ) -> Result<Digest> {
        let mut open: Vec<(String, File)> = Vec::with_capacity(files.len());
        for (rel, _) in files {
            let p = inner.join(checked_rel(rel).map_err(anyhow::Error::msg)?);
            let file = match core.path_target(&p)? {
                PathTarget::Real { at, is_file: true } => at.open()?,
                _ => anyhow::bail!("{rel} changed while it was recorded"),
            };
            open.push((rel.rsplit('/').next().unwrap_or("file").to_string(), file));
        }
        let sources: Vec<pack::Source<'_>> = open
            .iter()
            .map(|(name, file)| pack::Source {
                name: name.clone(),
                file,
            })
            .collect();
        let temp = self.store.pack_temp()?;
        let w = pack::write(
            temp.as_file(),
            &sources,
            vec![],
            vec![],
            b"{\"compiler\":\"zcfs snapshot\"}".to_vec(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (e, (rel, digest)) in w.header.entries.iter().zip(files) {
            if e.digest != *digest {
                anyhow::bail!("{rel} changed while it was recorded");
            }
        }
        self.store.publish(temp, &w)?;
        Ok(w.id)
    }

    pub(super) fn snapshot_project(
        &self,
        at: SnapshotAt,
        env: Vec<(crate::proto::Bytes, crate::proto::Bytes)>,
    ) -> Result<serde_json::Value> {
        let env: HashMap<Vec<u8>, Vec<u8>> = env.into_iter().map(|(k, v)| (k.0, v.0)).collect();
        let (build_dir, m, inner) = self.snapshot_mount(&at)?;
        let core = &*m.core;
        // The stamp, before anything is looked at.
        let stamp = core.now()?;
        let t0 = std::time::Instant::now();
        let idx = Index::load(&index_path(self, &at));
        let mut left: BTreeMap<&'static str, u64> = BTreeMap::new();
        if idx.units.is_empty() {
            return Ok(serde_json::json!({ "projected": 0, "snapshot": false }));
        }

        // Units cargo already has, and the fingerprints those depend on.
        let mut present: HashSet<&str> = HashSet::new();
        let mut real_deps: HashSet<u64> = HashSet::new();
        let profiles: HashSet<&str> = idx
            .units
            .keys()
            .filter_map(|k| k.rsplit_once('/').map(|(p, _)| p))
            .collect();
        for p in profiles {
            let fp = inner.join(p).join(".fingerprint");
            let Ok(names) = core.list_dir(&fp) else {
                continue;
            };
            for n in names {
                let dir = fp.join(&n);
                let Ok(files) = core.list_dir(&dir) else {
                    continue;
                };
                if files.is_empty() {
                    continue;
                }
                if let Some(k) = idx
                    .units
                    .get_key_value(&format!("{p}/{}", n.to_string_lossy()))
                    .map(|(k, _)| k.as_str())
                {
                    present.insert(k);
                }
                for f in files {
                    if f.to_string_lossy().ends_with(".json")
                        && let Some(b) = read_core_file(core, &dir.join(&f), 16 << 20)
                    {
                        match crate::snapshot::fingerprint_json::parse(&b) {
                            Ok(j) => real_deps.extend(j.deps.iter().map(|d| d.hash)),
                            // A unit whose dependencies cannot be told: project nothing.
                            Err(_) => {
                                return Ok(serde_json::json!({
                                    "projected": 0,
                                    "left": { "a record cargo has is not understood": idx.units.len() },
                                }));
                            }
                        }
                    }
                }
            }
        }

        // Each absent unit's newest record that verifies now, with the records of its
        // dependencies it was built against.
        let tools = self.tools_digest(&at);
        let fs = self.fs();
        let mut cx = Resolve {
            idx: &idx,
            present: &present,
            fs: &fs,
            env: &env,
            tools: tools.ok(),
            stamp,
            checked: HashMap::new(),
            packs: HashMap::new(),
            listings: HashMap::new(),
            state: HashMap::new(),
            visiting: HashSet::new(),
        };
        for key in idx.units.keys() {
            if is_extra(key) {
                // Not a unit: projected only where cargo has none (it checks it itself).
                let rel = inner.join(checked_rel(key).map_err(anyhow::Error::msg)?);
                if core.path_target(&rel).is_ok() {
                    continue;
                }
            }
            if !present.contains(key.as_str()) {
                self.resolve(&mut cx, key);
            }
        }
        let packs = std::mem::take(&mut cx.packs);
        let t_verify = t0.elapsed();
        let checked_inputs = cx.checked.len();
        let mut chosen: HashMap<&str, (&UnitRecord, NanoTime)> = HashMap::new();
        for (k, st) in cx.state {
            match st {
                Ok(c) => {
                    chosen.insert(k, c);
                }
                Err(why) => *left.entry(why).or_default() += 1,
            }
        }
        // Never under a unit cargo already has (it would look older than its dependency),
        // and then not above anything dropped.
        loop {
            let mut drop: Vec<(&str, &'static str)> = Vec::new();
            for (key, (r, _)) in &chosen {
                if r.hashes.iter().any(|(_, h)| real_deps.contains(h)) {
                    drop.push((key, "a unit cargo has depends on it"));
                } else if !r.deps.iter().all(|(k, _)| chosen.contains_key(k.as_str())) {
                    drop.push((key, "depends on a unit left to cargo"));
                }
            }
            if drop.is_empty() {
                break;
            }
            for (k, w) in drop {
                chosen.remove(k);
                *left.entry(w).or_default() += 1;
            }
        }
        if chosen.is_empty() {
            self.count_snapshot(0, 0, &left);
            return Ok(serde_json::json!({ "projected": 0, "left": left }));
        }
        // One time for everything projected: the newest input, older than the stamp.
        let t = chosen.values().map(|(_, t)| *t).max().unwrap_or(0);

        // Directories the mount lacks are made by the client (through the mount, so the
        // kernel learns of them), which then asks again.
        let mut dirs: Vec<&str> = chosen
            .values()
            .flat_map(|(r, _)| r.dirs.iter().map(String::as_str))
            .collect();
        dirs.sort();
        dirs.dedup();
        let mut need: Vec<&str> = Vec::new();
        for d in dirs {
            let rel = checked_rel(d).map_err(anyhow::Error::msg)?;
            match core.path_target(&inner.join(rel)) {
                Ok(PathTarget::Dir) => {}
                Err(e) if crate::os::is_not_found(&e) => need.push(d),
                _ => anyhow::bail!("{d} in the build dir is not a directory"),
            }
        }
        if !need.is_empty() {
            let rels: Vec<PathBuf> = need.iter().map(|d| inner.join(d)).collect();
            if let Err(e) = core.make_dirs(&rels) {
                // Made by the client through the mount instead, which then asks again.
                debug!("snapshot: directories left to the client: {e}");
                return Ok(serde_json::json!({ "projected": 0, "need_dirs": need }));
            }
        }

        let mut items = Vec::new();
        let mut bytes = 0u64;
        for (r, _) in chosen.values() {
            for f in &r.files {
                let pack = packs
                    .get(&f.pack)
                    .cloned()
                    .flatten()
                    .context("a verified pack is gone")?;
                bytes += pack
                    .header
                    .entries
                    .get(f.index as usize)
                    .map_or(0, |e| e.size);
                items.push(ProjectItem {
                    path: inner.join(checked_rel(&f.rel).map_err(anyhow::Error::msg)?),
                    pack,
                    index: f.index as usize,
                    perm: f.perm,
                    mtime: t,
                });
            }
        }
        let t1 = std::time::Instant::now();
        core.project(&items)
            .map_err(|e| anyhow::anyhow!("projecting the snapshot: {e}"))?;
        debug!(
            "snapshot: {checked_inputs} inputs verified in {t_verify:?}, {} files projected in {:?}",
            items.len(),
            t1.elapsed()
        );
        for id in packs.keys() {
            self.store.touch(id);
        }
        let n = chosen.keys().filter(|k| !is_extra(k)).count() as u64;
        self.count_snapshot(n, items.len() as u64, &left);
        info!(
            "snapshot of {}: {n} units projected ({} files, {bytes} bytes) at {t}, stamp {stamp}",
            build_dir.display(),
            items.len()
        );
        Ok(serde_json::json!({
            "projected": n,
            "files": items.len(),
            "bytes": bytes,
            "present": present.len(),
            "left": left,
        }))
    }

    /// Chooses the record of `key` to project: the newest that verifies and whose
    /// dependencies resolve to the records it was built against (their identity), with its
    /// generated inputs supplied by them. Returns the chosen identity.
    fn resolve<'a>(&self, cx: &mut Resolve<'a, '_>, key: &'a str) -> Option<Digest> {
        if let Some(st) = cx.state.get(key) {
            return st.as_ref().ok().map(|(r, _)| r.identity);
        }
        if cx.present.contains(key) || !cx.visiting.insert(key) {
            return None;
        }
        let idx = cx.idx;
        let mut why = "no record";
        let mut pick = None;
        let records = idx.units.get(key).map(Vec::as_slice).unwrap_or(&[]);
        // Records whose variables all agree with the client's first (a variable it lacks
        // agrees with one recorded unset); then those it cannot tell apart.
        let agrees = |r: &UnitRecord| r.env.iter().all(|(k, v)| cx.env.get(k) == v.as_ref());
        let order: Vec<&UnitRecord> = records
            .iter()
            .filter(|r| agrees(r))
            .chain(records.iter().filter(|r| !agrees(r)))
            .collect();
        'records: for r in order {
            if cx.tools != Some(r.tools) {
                why = "a compiler or linker changed";
                continue;
            }
            // cargo checks these itself (with its `[env]` config, which this process does
            // not see): a variable the client has decides between records, one it lacks
            // is cargo's to judge.
            if r.env
                .iter()
                .any(|(k, v)| cx.env.get(k).is_some_and(|now| v.as_ref() != Some(now)))
            {
                why = "variable changed";
                continue;
            }
            let t = match self.verify_record(
                cx.fs,
                r,
                cx.stamp,
                &mut cx.checked,
                &mut cx.packs,
                &mut cx.listings,
            ) {
                Ok(t) => t,
                Err(w) => {
                    why = w;
                    continue;
                }
            };
            let mut supplied: HashMap<&str, Digest> = HashMap::new();
            for (k, id) in &r.deps {
                let dep = idx.units.get_key_value(k).map(|(k, _)| k.as_str());
                let got = dep.and_then(|d| self.resolve(cx, d));
                if got != Some(*id) {
                    debug!(
                        "snapshot: a record of {key} needs {k} {} (have {:?})",
                        id.short(),
                        got.map(|g| g.short())
                    );
                    why = "depends on a unit left to cargo";
                    continue 'records;
                }
                if let Some(Ok((d, _))) = dep.and_then(|d| cx.state.get(d)) {
                    supplied.extend(d.files.iter().map(|f| (f.rel.as_str(), f.digest)));
                }
            }
            if !r
                .build_inputs
                .iter()
                .all(|(rel, d)| supplied.get(rel.as_str()) == Some(d))
            {
                why = "generated input not supplied";
                continue;
            }
            pick = Some((r, t));
            break;
        }
        cx.visiting.remove(key);
        let id = pick.map(|(r, _)| r.identity);
        cx.state.insert(key, pick.ok_or(why));
        id
    }

    fn count_snapshot(&self, units: u64, files: u64, left: &BTreeMap<&'static str, u64>) {
        self.stats.update(|d| {
            d.snapshot.projected += units;
            d.snapshot.files_projected += files;
            for (r, n) in left {
                *d.snapshot.left.entry(r.to_string()).or_default() += n;
            }
        });
    }

    /// Whether a record holds now: every input as recorded and older than the stamp, every
    /// pack there. Returns its newest input's mtime.
    fn verify_record(
        &self,
        fs: &dyn FsView,
        r: &UnitRecord,
        stamp: NanoTime,
        checked: &mut HashMap<Vec<u8>, InputState>,
        packs: &mut HashMap<Digest, Option<Arc<Pack>>>,
        listings: &mut Listings,
    ) -> Result<NanoTime, &'static str> {
        let mut newest: NanoTime = 0;
        for i in &r.inputs {
            let state = checked
                .entry(i.path.clone())
                .or_insert_with(|| input_state(fs, &os_path(&i.path)));
            let state = (*state)?;
            let (digest, dir, mtime) = state;
            if digest != i.digest || dir != i.dir {
                return Err("input changed");
            }
            if mtime >= stamp {
                return Err("input newer than the build's start");
            }
            newest = newest.max(mtime);
        }
        for (dir, names) in &r.absent {
            if !absent_in(fs, &os_path(dir), names, listings) {
                debug!(
                    "snapshot: a name that must stay absent is in {}",
                    os_path(dir).display()
                );
                return Err("a path that must stay absent exists");
            }
        }
        for f in &r.files {
            checked_rel(&f.rel).map_err(|_| "record not understood")?;
            let pack = packs
                .entry(f.pack)
                .or_insert_with(|| self.store.open_pack(&f.pack).ok())
                .as_ref()
                .ok_or("pack gone")?;
            match pack.header.entries.get(f.index as usize) {
                Some(e) if e.digest == f.digest => {}
                _ => return Err("record not understood"),
            }
        }
        for d in &r.dirs {
            checked_rel(d).map_err(|_| "record not understood")?;
        }
        Ok(newest)
    }
}

/// What a projection's choice of records carries along.
struct Resolve<'a, 'f> {
    idx: &'a Index,
    present: &'a HashSet<&'a str>,
    fs: &'f dyn FsView,
    env: &'a HashMap<Vec<u8>, Vec<u8>>,
    /// The tools' digest now (`None`: unreadable, nothing holds).
    tools: Option<Digest>,
    stamp: NanoTime,
    checked: HashMap<Vec<u8>, InputState>,
    packs: HashMap<Digest, Option<Arc<Pack>>>,
    listings: Listings,
    /// Per unit: the record chosen and its newest input, or why none was.
    state: HashMap<&'a str, Result<(&'a UnitRecord, NanoTime), &'static str>>,
    visiting: HashSet<&'a str>,
}

/// The inputs and must-stay-absent paths of the compile entries whose packs a unit's
/// projected files come from (those outside the build dir: the units' own files are
/// checked by their records). A projected file whose entry is unknown refuses the unit.
fn entry_inputs(
    files: &[FileNow],
    produced: &HashMap<Digest, Arc<Produced>>,
    build_dir: &Path,
) -> Result<(Vec<HostInput>, AbsentGroups), &'static str> {
    let inside = |p: &[u8]| Path::new(&*crate::os::os_str(p)).starts_with(build_dir);
    let mut host = Vec::new();
    let mut absent = Vec::new();
    let mut seen = HashSet::new();
    for f in files {
        let Src::Projected(p) = &f.src else {
            if compiler_output(&f.rel) {
                // Not served or stored by zcfs: a compile zcfs does not cache (a compiler
                // script, clippy-driver), which only a real compile may produce.
                return Err("compile not cached");
            }
            continue;
        };
        if !seen.insert(p.pack.id) {
            continue;
        }
        let e = produced.get(&p.pack.id).ok_or("compile entry unknown")?;
        for (path, digest) in &e.files {
            if !inside(path) {
                host.push(HostInput {
                    path: path.clone(),
                    dir: false,
                    digest: *digest,
                });
            }
        }
        absent.extend(e.absent.iter().filter(|a| !inside(a)).cloned());
    }
    Ok((host, group_by_dir(absent)))
}

/// Whether a unit's file (relative to the build dir) is written by rustc: its files in
/// `deps/` and `examples/` and a build script's binary, dependency files aside (zcfs may
/// write those as real files when it rewrites their paths).
fn compiler_output(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.ends_with(".d") {
        return false;
    }
    let parts: Vec<&str> = rel.split('/').collect();
    let dir = parts.len().checked_sub(2).map(|i| parts[i]);
    matches!(dir, Some("deps" | "examples"))
        || (parts.contains(&"build")
            && (name == "build-script-build" || name.starts_with("build_script_build-")))
}

/// A unit's identity with its dependencies' (memoized in `full`; `None`: a dependency is
/// missing or the graph has a cycle).
fn full_identity(
    key: &str,
    units: &HashMap<&str, &SnapUnit>,
    own: &HashMap<String, (Digest, Vec<FileNow>)>,
    full: &mut HashMap<String, Option<Digest>>,
    visiting: &mut HashSet<String>,
) -> Option<Digest> {
    if let Some(d) = full.get(key) {
        return *d;
    }
    if !visiting.insert(key.to_string()) {
        return None;
    }
    let result = (|| {
        let u = units.get(key)?;
        let (mine, _) = own.get(key)?;
        let mut h = crate::hash::KeyHasher::new("zcfs snapshot unit with deps");
        h.digest("own", mine);
        for d in &u.deps {
            let id = full_identity(d, units, own, full, visiting)?;
            h.field("dep", d.as_bytes());
            h.digest("id", &id);
        }
        Some(h.finish())
    })();
    visiting.remove(key);
    full.insert(key.to_string(), result);
    result
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

/// Whether none of `names` is in `dir`, known for sure: from the directory's listing, or
/// because the directory is not there; otherwise (a listing the view will not give, such as
/// a path through `..`) name by name. An error is no answer: this fails closed.
fn absent_in(fs: &dyn FsView, dir: &Path, names: &[Vec<u8>], listings: &mut Listings) -> bool {
    use crate::os::OsStrExt;
    let key = dir.as_os_str().as_bytes().to_vec();
    if !listings.contains_key(&key) {
        let l = match fs.list_dir(dir) {
            Ok(l) => Some(l),
            Err(_) if fs.absent(dir) => None,
            Err(_) => {
                return names
                    .iter()
                    .all(|n| fs.absent(&dir.join(&*crate::os::os_str(n))));
            }
        };
        listings.insert(key.clone(), l);
    }
    match &listings[&key] {
        None => true,
        Some(l) => names.iter().all(|n| !l.contains(&*crate::os::os_str(n))),
    }
}

/// Whether a key names a file of the build dir kept with the units rather than a unit
/// (cargo's `.rustc_info.json`): not counted as a unit.
fn is_extra(key: &str) -> bool {
    key == crate::snapshot::survey::RUSTC_INFO
}

/// The digest of a unit's identity: its fingerprint hashes and its files' contents.
fn identity(u: &SnapUnit, files: &[FileNow]) -> Digest {
    let mut h = crate::hash::KeyHasher::new("zcfs snapshot unit");
    h.field("key", u.key.as_bytes());
    for (t, hash) in &u.hashes {
        h.field("target", t.as_bytes());
        h.field("hash", &hash.to_le_bytes());
    }
    for f in files {
        h.field("file", f.rel.as_bytes());
        h.digest("digest", &f.digest);
    }
    h.finish()
}

/// The unit's files as they are in the mount now (the daemon reads them through the core).
fn unit_files(core: &dyn MountCore, inner: &Path, u: &SnapUnit) -> Result<Vec<FileNow>, String> {
    let mut out = Vec::with_capacity(u.files.len());
    for rel in &u.files {
        let p = inner.join(checked_rel(rel)?);
        let (digest, src) = file_now(core, &p)?;
        out.push(FileNow {
            rel: rel.clone(),
            digest,
            src,
        });
    }
    Ok(out)
}

fn file_now(core: &dyn MountCore, p: &Path) -> Result<(Digest, Src), String> {
    match core
        .path_target(p)
        .map_err(|e| format!("{}: {e}", p.display()))?
    {
        PathTarget::Projected { .. } => {
            let proj = core
                .projection_at(p)
                .ok_or_else(|| format!("{}: projection not readable", p.display()))?;
            Ok((proj.digest(), Src::Projected(proj)))
        }
        PathTarget::Real { at, is_file: true } => {
            let file = at.open().map_err(|e| format!("{}: {e}", p.display()))?;
            let meta = file.metadata().map_err(|e| e.to_string())?;
            if !meta.is_file() {
                return Err(format!("{}: not a regular file", p.display()));
            }
            let d = crate::hash::hash_file(&file, meta.len()).map_err(|e| e.to_string())?;
            let perm = (crate::os::file_mode(&meta) & 0o7777) as u16;
            Ok((d, Src::Real(perm)))
        }
        _ => Err(format!("{}: not a regular file", p.display())),
    }
}

/// The inputs of a new record, by content; none may have changed after cargo started the
/// unit (it would then not be the content the unit was built from).
fn record_inputs(
    fs: &dyn FsView,
    core: &dyn MountCore,
    inner: &Path,
    inputs: &[SnapInput],
    started: NanoTime,
) -> Result<RecordedInputs, String> {
    let mut host = Vec::new();
    let mut build = Vec::new();
    for i in inputs {
        match i {
            SnapInput::Host(b) => {
                let p = os_path(&b.0);
                if !p.is_absolute() {
                    return Err("record not understood".into());
                }
                let (digest, dir, mtime) = input_state(fs, &p).map_err(str::to_string)?;
                if mtime > started {
                    return Err("input changed during the build".into());
                }
                host.push(HostInput {
                    path: b.0.clone(),
                    dir,
                    digest,
                });
            }
            SnapInput::Build(rel) => {
                let (digest, _) = file_now(core, &inner.join(checked_rel(rel)?))
                    .map_err(|_| "generated input unreadable".to_string())?;
                build.push((rel.clone(), digest));
            }
        }
    }
    Ok((host, build))
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

/// A small file in the mount, read through the core (capped).
fn read_core_file(core: &dyn MountCore, p: &Path, max: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    match core.path_target(p).ok()? {
        PathTarget::Projected { size, .. } if size <= max => core.projected_bytes(p),
        PathTarget::Real { at, is_file: true } => {
            let mut v = Vec::new();
            at.open().ok()?.take(max + 1).read_to_end(&mut v).ok()?;
            (v.len() as u64 <= max).then_some(v)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_names_are_checked_by_listing_and_fail_closed() {
        use crate::os::OsStrExt;
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("src");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("lib.rs"), "").unwrap();
        let hashes = crate::fsview::hashcache::HashCache::new();
        let fs = crate::fsview::HostFs { hashes: &hashes };
        let names = |v: &[&str]| v.iter().map(|n| n.as_bytes().to_vec()).collect::<Vec<_>>();
        let mut l = Listings::new();
        assert!(absent_in(&fs, &d, &names(&["foo.rs", "mod.rs"]), &mut l));
        assert!(!absent_in(&fs, &d, &names(&["foo.rs", "lib.rs"]), &mut l));
        // A directory that is not there holds nothing.
        assert!(absent_in(&fs, &d.join("foo"), &names(&["mod.rs"]), &mut l));
        // Through `..` (a path the kernel resolves through `foo`).
        std::fs::create_dir(d.join("foo")).unwrap();
        let up = d.join("foo/..");
        assert!(!absent_in(
            &fs,
            &up,
            &names(&["lib.rs"]),
            &mut Listings::new()
        ));
        // A file where a directory is expected: nothing can be under it.
        assert!(absent_in(
            &fs,
            &d.join("lib.rs"),
            &names(&["x"]),
            &mut Listings::new()
        ));
        // Grouping.
        let g = group_by_dir(vec![
            d.join("a.h").as_os_str().as_bytes().to_vec(),
            d.join("b.h").as_os_str().as_bytes().to_vec(),
            t.path().join("c.h").as_os_str().as_bytes().to_vec(),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(g.iter().map(|(_, n)| n.len()).sum::<usize>(), 3);
    }

    #[test]
    fn compiler_outputs_are_told_from_cargos_own_files() {
        assert!(compiler_output("debug/deps/libutil-0123456789abcdef.rlib"));
        assert!(compiler_output("debug/deps/app-0123456789abcdef"));
        assert!(compiler_output(
            "x86_64-unknown-linux-gnu/release/examples/ex-0123456789abcdef"
        ));
        assert!(compiler_output(
            "debug/build/zt-0123456789abcdef/build_script_build-0123456789abcdef"
        ));
        assert!(compiler_output(
            "debug/build/zt-0123456789abcdef/build-script-build"
        ));
        assert!(!compiler_output("debug/deps/util-0123456789abcdef.d"));
        assert!(!compiler_output(
            "debug/.fingerprint/util-0123456789abcdef/lib-util"
        ));
        assert!(!compiler_output("debug/build/zt-0123456789abcdef/output"));
        assert!(!compiler_output(
            "debug/build/zt-0123456789abcdef/out/gen.rs"
        ));
    }
}
