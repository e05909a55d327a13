//! The store: packs (one per compile result), manifests (one per direct-mode key), and the
//! LRU bookkeeping that keeps the packs under the size cap. See `docs/store.md`.
//!
//! Only the daemon writes the store. Packs are immutable: published by temp + fsync +
//! rename, never modified, removed only by unlink (an unlinked pack that is still mapped or
//! open stays readable, so eviction can never make a reader fail or read short).

pub mod manifest;
pub mod pack;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::util::{read_capped, unix_now};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::fsutil::{fsync_dir, write_atomic};
use crate::hash::Digest;
use crate::paths::Paths;
use manifest::{Entry, Manifest};
use pack::{Pack, PackError, Written};

/// Open packs kept mapped.
const OPEN_PACKS: usize = 512;
/// Manifests kept in memory.
const CACHED_MANIFESTS: usize = 100_000;
/// After eviction the store holds at most this share of the cap.
const EVICT_TO: f64 = 0.9;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct PackInfo {
    size: u64,
    last_used: u64,
}

#[derive(Default)]
struct Lru {
    packs: HashMap<Digest, PackInfo>,
    total: u64,
    dirty: bool,
}

struct OpenPacks {
    map: HashMap<Digest, Arc<Pack>>,
    verified: HashSet<Digest>,
}

/// Outcome of opening a pack for a hit.
#[derive(Debug)]
pub enum OpenError {
    Missing,
    Corrupt(String),
    Io(io::Error),
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct EvictReport {
    pub evicted_packs: u64,
    pub evicted_bytes: u64,
    pub skipped_in_use: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct GcReport {
    pub evicted_packs: u64,
    pub evicted_bytes: u64,
    pub corrupt_packs: u64,
    pub stale_manifest_entries: u64,
    pub removed_manifests: u64,
    pub removed_temp_files: u64,
    pub size_after: u64,
    pub packs_after: u64,
}

pub struct Store {
    paths: Paths,
    max_size: AtomicU64,
    manifests: DashMap<Digest, Arc<Manifest>>,
    manifest_write: Mutex<()>,
    open: Mutex<OpenPacks>,
    lru: Mutex<Lru>,
    scanned: AtomicBool,
    /// Packs that must not be evicted (referenced by live projections), with counts.
    pins: Mutex<HashMap<Digest, usize>>,
}

impl Store {
    /// Opens the store, creating its directories if it can. A read-only cache dir still
    /// gives a usable store: lookups work, stores fail and are counted.
    pub fn open(paths: &Paths, max_size: u64) -> Store {
        for d in [paths.packs_dir(), paths.manifests_dir(), paths.tmp_dir()] {
            if let Err(e) = fs::create_dir_all(&d) {
                warn!("cannot create {}: {e}", d.display());
            }
        }
        Store {
            paths: paths.clone(),
            max_size: AtomicU64::new(max_size),
            manifests: DashMap::new(),
            manifest_write: Mutex::new(()),
            open: Mutex::new(OpenPacks {
                map: HashMap::new(),
                verified: HashSet::new(),
            }),
            lru: Mutex::new(Lru::default()),
            scanned: AtomicBool::new(false),
            pins: Mutex::new(HashMap::new()),
        }
    }

    pub fn max_size(&self) -> u64 {
        self.max_size.load(Ordering::Relaxed)
    }

    pub fn pack_path(&self, id: &Digest) -> PathBuf {
        let hex = id.to_hex();
        self.paths
            .packs_dir()
            .join(&hex[..2])
            .join(format!("{hex}.pack"))
    }

    fn manifest_path(&self, key: &Digest) -> PathBuf {
        let hex = key.to_hex();
        self.paths.manifests_dir().join(&hex[..2]).join(hex)
    }

    /// Learns the packs on disk and their sizes; merges the persisted LRU times. Run once,
    /// in the background, at daemon start. Eviction waits for it.
    pub fn scan(&self) {
        let persisted: HashMap<Digest, u64> = fs::read(self.paths.lru_file())
            .ok()
            .and_then(|b| postcard::from_bytes::<Vec<(Digest, u64)>>(&b).ok())
            .map(|v| v.into_iter().collect())
            .unwrap_or_default();
        let mut found = HashMap::new();
        if let Ok(shards) = fs::read_dir(self.paths.packs_dir()) {
            for shard in shards.flatten() {
                let Ok(files) = fs::read_dir(shard.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let name = f.file_name();
                    let Some(id) = name
                        .to_str()
                        .and_then(|n| n.strip_suffix(".pack"))
                        .and_then(Digest::from_hex)
                    else {
                        continue;
                    };
                    let Ok(meta) = f.metadata() else { continue };
                    let mtime = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    let last_used = persisted.get(&id).copied().unwrap_or(mtime);
                    found.insert(
                        id,
                        PackInfo {
                            size: meta.len(),
                            last_used,
                        },
                    );
                }
            }
        }
        {
            let mut lru = self.lru.lock();
            // Packs published while scanning are already in the map; keep their info.
            for (id, info) in found {
                lru.packs.entry(id).or_insert(info);
            }
            lru.total = lru.packs.values().map(|p| p.size).sum();
            info!("store: {} packs, {} bytes", lru.packs.len(), lru.total);
        }
        self.scanned.store(true, Ordering::Release);
        self.remove_stale_temps(3600);
    }

    fn remove_stale_temps(&self, older_than_secs: u64) -> u64 {
        let mut n = 0;
        if let Ok(rd) = fs::read_dir(self.paths.tmp_dir()) {
            let now = SystemTime::now();
            for e in rd.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age.as_secs() >= older_than_secs);
                if old && fs::remove_file(e.path()).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// The manifest for a key, from memory or disk.
    pub fn manifest(&self, key: &Digest) -> Option<Arc<Manifest>> {
        if let Some(m) = self.manifests.get(key) {
            return Some(m.clone());
        }
        let bytes = read_capped(&self.manifest_path(key), manifest::MAX_BYTES).ok()?;
        let m = match bytes.as_deref().and_then(Manifest::decode) {
            Some(m) => Arc::new(m),
            None => {
                warn!("removing undecodable manifest {}", key.short());
                let _ = fs::remove_file(self.manifest_path(key));
                return None;
            }
        };
        if self.manifests.len() >= CACHED_MANIFESTS {
            self.manifests.clear();
        }
        self.manifests.insert(*key, m.clone());
        Some(m)
    }

    /// Adds an entry to a key's manifest (newest first) and writes it durably.
    pub fn add_entry(&self, key: &Digest, entry: Entry) -> io::Result<()> {
        let _guard = self.manifest_write.lock();
        let mut m = self.manifest(key).map(|m| (*m).clone()).unwrap_or_default();
        m.add(entry);
        write_atomic(&self.manifest_path(key), &m.encode())?;
        self.manifests.insert(*key, Arc::new(m));
        Ok(())
    }

    /// Drops entries of a key whose pack is gone.
    pub fn drop_entries_for_pack(&self, key: &Digest, pack: &Digest) {
        let _guard = self.manifest_write.lock();
        let Some(m) = self.manifest(key) else { return };
        let mut m = (*m).clone();
        let before = m.entries.len();
        m.entries.retain(|e| e.pack != *pack);
        if m.entries.len() == before {
            return;
        }
        let path = self.manifest_path(key);
        let r = if m.entries.is_empty() {
            fs::remove_file(&path)
        } else {
            write_atomic(&path, &m.encode())
        };
        if let Err(e) = r {
            warn!("cannot update manifest {}: {e}", key.short());
        }
        if m.entries.is_empty() {
            self.manifests.remove(key);
        } else {
            self.manifests.insert(*key, Arc::new(m));
        }
    }

    /// Opens a pack for reading; verifies its payloads the first time this daemon reads it.
    /// A corrupt pack is removed.
    pub fn open_pack(&self, id: &Digest) -> Result<Arc<Pack>, OpenError> {
        {
            let open = self.open.lock();
            if let Some(p) = open.map.get(id) {
                return Ok(p.clone());
            }
        }
        let path = self.pack_path(id);
        let pack = match Pack::open(&path) {
            Ok(p) => p,
            Err(PackError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                return Err(OpenError::Missing);
            }
            Err(PackError::Io(e)) => return Err(OpenError::Io(e)),
            Err(PackError::Corrupt(msg)) => {
                self.remove_corrupt(id, &msg);
                return Err(OpenError::Corrupt(msg));
            }
        };
        let verify = pack.id != *id || !self.open.lock().verified.contains(id);
        if verify {
            let check = if pack.id != *id {
                Err(PackError::Corrupt("pack id does not match its name".into()))
            } else {
                pack.verify()
            };
            if let Err(e) = check {
                let msg = e.to_string();
                self.remove_corrupt(id, &msg);
                return Err(OpenError::Corrupt(msg));
            }
        }
        let pack = Arc::new(pack);
        let mut open = self.open.lock();
        open.verified.insert(*id);
        if open.map.len() >= OPEN_PACKS {
            open.map.retain(|_, p| Arc::strong_count(p) > 1);
        }
        let entry = open.map.entry(*id).or_insert_with(|| pack.clone());
        Ok(entry.clone())
    }

    fn remove_corrupt(&self, id: &Digest, msg: &str) {
        warn!("pack {} is corrupt ({msg}); removing it", id.short());
        let path = self.pack_path(id);
        let _ = fs::remove_file(&path);
        let mut lru = self.lru.lock();
        if let Some(info) = lru.packs.remove(id) {
            lru.total -= info.size;
            lru.dirty = true;
        }
        self.open.lock().verified.remove(id);
    }

    /// Marks a pack as used now (LRU).
    pub fn touch(&self, id: &Digest) {
        let mut lru = self.lru.lock();
        let now = unix_now();
        if let Some(info) = lru.packs.get_mut(id)
            && info.last_used != now
        {
            info.last_used = now;
            lru.dirty = true;
        }
    }

    /// A new, empty temp file for a pack.
    pub fn pack_temp(&self) -> io::Result<tempfile::NamedTempFile> {
        fs::create_dir_all(self.paths.tmp_dir())?;
        tempfile::Builder::new()
            .prefix("pack-")
            .tempfile_in(self.paths.tmp_dir())
    }

    /// Publishes a written pack: fsync, rename into place, fsync the directory.
    pub fn publish(&self, temp: tempfile::NamedTempFile, written: &Written) -> io::Result<()> {
        self.install(temp, &written.id, written.size, true)
    }

    /// Publishes a pack downloaded from a remote store into `temp`, after checking every
    /// byte of it against `id` (header digest, payload digests, canonical layout), unless
    /// `streamed`: a [`pack::StreamCheck`] checked the bytes as they were written. A pack
    /// that fails is discarded: `Err(OpenError::Corrupt)`.
    pub fn adopt(
        &self,
        temp: tempfile::NamedTempFile,
        id: &Digest,
        streamed: bool,
    ) -> Result<u64, OpenError> {
        let pack = match Pack::open(temp.path()) {
            Ok(p) => p,
            Err(PackError::Corrupt(m)) => return Err(OpenError::Corrupt(m)),
            Err(PackError::Io(e)) => return Err(OpenError::Io(e)),
        };
        if pack.id != *id {
            return Err(OpenError::Corrupt("not the pack asked for".into()));
        }
        if !streamed && let Err(e) = pack.verify().and_then(|()| pack.check_layout()) {
            return Err(OpenError::Corrupt(e.to_string()));
        }
        let size = pack.size();
        drop(pack);
        // Not synced: a download torn by a crash is found by the verification of the first
        // open after a restart (every daemon verifies a pack before its first use), removed,
        // and downloaded again. (Own results are synced: they exist nowhere else.)
        self.install(temp, id, size, false).map_err(OpenError::Io)?;
        Ok(size)
    }

    fn install(
        &self,
        temp: tempfile::NamedTempFile,
        id: &Digest,
        size: u64,
        durable: bool,
    ) -> io::Result<()> {
        if durable {
            temp.as_file().sync_all()?;
        }
        let dest = self.pack_path(id);
        let dir = dest.parent().expect("pack path has a parent");
        fs::create_dir_all(dir)?;
        if dest.exists() {
            // Same content already stored (identical result of another key).
            debug!("pack {} already present", id.short());
        } else {
            temp.persist(&dest).map_err(|e| e.error)?;
            if durable {
                fsync_dir(dir)?;
            }
        }
        // The bytes were verified as they were copied in.
        self.open.lock().verified.insert(*id);
        let mut lru = self.lru.lock();
        if !lru.packs.contains_key(id) {
            lru.total += size;
        }
        lru.packs.insert(
            *id,
            PackInfo {
                size,
                last_used: unix_now(),
            },
        );
        lru.dirty = true;
        Ok(())
    }

    /// Whether a pack is in the store.
    pub fn has_pack(&self, id: &Digest) -> bool {
        self.lru.lock().packs.contains_key(id) || self.pack_path(id).exists()
    }

    /// Adds entries learnt elsewhere (a remote store) after the local ones, keeping the
    /// limit; returns those that were new.
    pub fn merge_entries(&self, key: &Digest, entries: Vec<Entry>) -> io::Result<Vec<Entry>> {
        let _guard = self.manifest_write.lock();
        let mut m = self.manifest(key).map(|m| (*m).clone()).unwrap_or_default();
        let new: Vec<Entry> = entries
            .into_iter()
            .filter(|e| !m.entries.iter().any(|l| l.inputs == e.inputs))
            .collect();
        if new.is_empty() {
            return Ok(new);
        }
        m.entries.extend(new.iter().cloned());
        m.entries.truncate(manifest::MAX_ENTRIES);
        // Not synced: entries the remote has can be learnt again; a torn manifest does not
        // decode and is removed when read.
        crate::fsutil::write_replacing(&self.manifest_path(key), &m.encode(), false)?;
        self.manifests.insert(*key, Arc::new(m));
        Ok(new)
    }

    /// Every key with a manifest on disk (for `zcfs remote push`).
    pub fn manifest_keys(&self) -> Vec<Digest> {
        let mut keys = Vec::new();
        if let Ok(shards) = fs::read_dir(self.paths.manifests_dir()) {
            for shard in shards.flatten() {
                if let Ok(files) = fs::read_dir(shard.path()) {
                    keys.extend(
                        files
                            .flatten()
                            .filter_map(|f| f.file_name().to_str().and_then(Digest::from_hex)),
                    );
                }
            }
        }
        keys
    }

    /// Total size and count of packs.
    pub fn usage(&self) -> (u64, u64) {
        let lru = self.lru.lock();
        (lru.total, lru.packs.len() as u64)
    }

    pub fn pin(&self, id: &Digest) {
        *self.pins.lock().entry(*id).or_insert(0) += 1;
    }

    pub fn unpin(&self, id: &Digest) {
        let mut pins = self.pins.lock();
        if let Some(n) = pins.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                pins.remove(id);
            }
        }
    }

    /// Evicts least recently used packs until the store is under `EVICT_TO` of the cap, if
    /// it is over the cap. Packs that are open for reading or pinned are skipped.
    pub fn evict_if_needed(&self) -> EvictReport {
        if !self.scanned.load(Ordering::Acquire) {
            return EvictReport::default();
        }
        let max = self.max_size();
        if self.usage().0 <= max {
            return EvictReport::default();
        }
        self.evict_to(self.evict_target())
    }

    /// The size eviction brings the store down to.
    pub fn evict_target(&self) -> u64 {
        (self.max_size() as f64 * EVICT_TO) as u64
    }

    /// Packs with their sizes, least recently used first.
    pub fn lru_order(&self) -> Vec<(Digest, u64)> {
        let mut order: Vec<(u64, Digest, u64)> = {
            let lru = self.lru.lock();
            lru.packs
                .iter()
                .map(|(id, i)| (i.last_used, *id, i.size))
                .collect()
        };
        order.sort();
        order.into_iter().map(|(_, id, size)| (id, size)).collect()
    }

    fn evict_to(&self, target: u64) -> EvictReport {
        let mut report = EvictReport::default();
        for (id, size) in self.lru_order() {
            if self.usage().0 <= target {
                break;
            }
            if self.pins.lock().contains_key(&id) {
                report.skipped_in_use += 1;
                continue;
            }
            {
                let mut open = self.open.lock();
                if let Some(p) = open.map.get(&id)
                    && Arc::strong_count(p) > 1
                {
                    report.skipped_in_use += 1;
                    continue;
                }
                open.map.remove(&id);
                open.verified.remove(&id);
            }
            match fs::remove_file(self.pack_path(&id)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!("cannot evict pack {}: {e}", id.short());
                    continue;
                }
            }
            let mut lru = self.lru.lock();
            if lru.packs.remove(&id).is_some() {
                lru.total -= size;
                lru.dirty = true;
                report.evicted_packs += 1;
                report.evicted_bytes += size;
            }
        }
        if report.evicted_packs > 0 {
            info!(
                "evicted {} packs ({} bytes)",
                report.evicted_packs, report.evicted_bytes
            );
        }
        report
    }

    /// Writes the LRU times if they changed.
    pub fn flush(&self) {
        let snapshot: Option<Vec<(Digest, u64)>> = {
            let mut lru = self.lru.lock();
            if !lru.dirty {
                None
            } else {
                lru.dirty = false;
                Some(lru.packs.iter().map(|(k, v)| (*k, v.last_used)).collect())
            }
        };
        if let Some(v) = snapshot {
            let bytes = postcard::to_stdvec(&v).expect("lru encodes");
            if let Err(e) = write_atomic(&self.paths.lru_file(), &bytes) {
                warn!("cannot write {}: {e}", self.paths.lru_file().display());
                self.lru.lock().dirty = true;
            }
        }
    }

    /// `zcfs gc`: evict to the cap, verify every pack, drop manifest entries whose pack is
    /// gone, remove stale temp files.
    pub fn gc(&self) -> GcReport {
        if !self.scanned.load(Ordering::Acquire) {
            self.scan();
        }
        let mut report = GcReport::default();
        let ev = self.evict_if_needed();
        report.evicted_packs = ev.evicted_packs;
        report.evicted_bytes = ev.evicted_bytes;

        let ids: Vec<Digest> = self.lru.lock().packs.keys().copied().collect();
        for id in &ids {
            if let Err(OpenError::Corrupt(_)) = self.open_pack(id) {
                report.corrupt_packs += 1;
            }
        }
        let live: HashSet<Digest> = self.lru.lock().packs.keys().copied().collect();

        let _guard = self.manifest_write.lock();
        if let Ok(shards) = fs::read_dir(self.paths.manifests_dir()) {
            for shard in shards.flatten() {
                let Ok(files) = fs::read_dir(shard.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let path = f.path();
                    let key = f.file_name().to_str().and_then(Digest::from_hex);
                    let m = read_capped(&path, manifest::MAX_BYTES)
                        .ok()
                        .flatten()
                        .and_then(|b| Manifest::decode(&b));
                    let (Some(key), Some(mut m)) = (key, m) else {
                        if fs::remove_file(&path).is_ok() {
                            report.removed_manifests += 1;
                        }
                        continue;
                    };
                    let before = m.entries.len();
                    m.entries.retain(|e| live.contains(&e.pack));
                    report.stale_manifest_entries += (before - m.entries.len()) as u64;
                    if m.entries.is_empty() {
                        if fs::remove_file(&path).is_ok() {
                            report.removed_manifests += 1;
                        }
                        self.manifests.remove(&key);
                    } else if m.entries.len() != before {
                        let _ = write_atomic(&path, &m.encode());
                        self.manifests.insert(key, Arc::new(m));
                    }
                }
            }
        }
        report.removed_temp_files = self.remove_stale_temps(600);
        let (size, count) = self.usage();
        report.size_after = size;
        report.packs_after = count;
        self.flush();
        report
    }

    /// `zcfs clear`: removes every pack (except pinned ones) and every manifest.
    pub fn clear(&self) -> GcReport {
        if !self.scanned.load(Ordering::Acquire) {
            self.scan();
        }
        let ev = self.evict_to(0);
        let _guard = self.manifest_write.lock();
        self.manifests.clear();
        let mut removed = 0;
        if let Ok(shards) = fs::read_dir(self.paths.manifests_dir()) {
            for shard in shards.flatten() {
                if let Ok(files) = fs::read_dir(shard.path()) {
                    for f in files.flatten() {
                        if fs::remove_file(f.path()).is_ok() {
                            removed += 1;
                        }
                    }
                }
            }
        }
        let (size, count) = self.usage();
        self.flush();
        GcReport {
            evicted_packs: ev.evicted_packs,
            evicted_bytes: ev.evicted_bytes,
            removed_manifests: removed,
            removed_temp_files: self.remove_stale_temps(0),
            size_after: size,
            packs_after: count,
            ..GcReport::default()
        }
    }

    #[cfg(test)]
    pub fn set_max_size(&self, max: u64) {
        self.max_size.store(max, Ordering::Relaxed);
    }
}

impl pack::PackSource for Store {
    fn open(&self, id: &Digest) -> Option<Arc<pack::Pack>> {
        self.open_pack(id).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::fs::File;
    use std::io::Write;
    use std::path::Path;

    fn store(dir: &Path) -> Store {
        let mut c = Config::load_from(&|k: &str| (k == "HOME").then(|| "/h".to_string())).unwrap();
        c.cache_dir = dir.join("cache");
        c.runtime_dir = dir.join("run");
        let s = Store::open(&Paths::new(&c), 1 << 30);
        s.scan();
        s
    }

    fn put(s: &Store, dir: &Path, content: &[u8]) -> Digest {
        let src = dir.join("src");
        File::create(&src).unwrap().write_all(content).unwrap();
        let f = File::open(&src).unwrap();
        let tmp = s.pack_temp().unwrap();
        let w = pack::write(
            tmp.as_file(),
            &[pack::Source {
                name: "out".into(),
                file: &f,
            }],
            vec![],
            vec![],
            vec![],
        )
        .unwrap();
        s.publish(tmp, &w).unwrap();
        w.id
    }

    #[test]
    fn lru_eviction_skips_packs_in_use_and_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let a = put(&s, dir.path(), &vec![1u8; 10000]);
        let b = put(&s, dir.path(), &vec![2u8; 10000]);
        let c = put(&s, dir.path(), &vec![3u8; 10000]);
        let per = s.usage().0 / 3;
        // a is oldest; hold it open. b is pinned. Only c can go.
        s.lru.lock().packs.get_mut(&a).unwrap().last_used = 1;
        s.lru.lock().packs.get_mut(&b).unwrap().last_used = 2;
        s.lru.lock().packs.get_mut(&c).unwrap().last_used = 3;
        let held = s.open_pack(&a).unwrap();
        s.pin(&b);
        s.set_max_size(per);
        let r = s.evict_if_needed();
        assert_eq!(r.evicted_packs, 1);
        assert!(!s.pack_path(&c).exists());
        assert!(s.pack_path(&a).exists() && s.pack_path(&b).exists());
        assert_eq!(held.payload(0), &vec![1u8; 10000][..]);
        // Released and unpinned: now they go, oldest first.
        drop(held);
        s.unpin(&b);
        let r = s.evict_if_needed();
        assert_eq!(r.evicted_packs, 2);
        assert_eq!(s.usage(), (0, 0));
    }

    #[test]
    fn corrupt_pack_is_removed_on_first_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let id = put(&s, dir.path(), b"payload bytes");
        // A fresh store (new daemon) has not verified it yet.
        let s2 = store(dir.path());
        let path = s2.pack_path(&id);
        let bytes = fs::read(&path).unwrap();
        let mut bad = bytes.clone();
        let off = pack::Pack::open(&path).unwrap().header.entries[0].offset as usize;
        bad[off] ^= 0xff;
        fs::write(&path, &bad).unwrap();
        assert!(matches!(s2.open_pack(&id), Err(OpenError::Corrupt(_))));
        assert!(!path.exists());
        assert!(matches!(s2.open_pack(&id), Err(OpenError::Missing)));
    }

    #[test]
    fn adopted_packs_are_checked_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let donor = store(&dir.path().join("donor"));
        let id = put(&donor, dir.path(), &vec![5u8; 6000]);
        let good = fs::read(donor.pack_path(&id)).unwrap();
        let temp_with = |bytes: &[u8]| {
            let t = s.pack_temp().unwrap();
            fs::write(t.path(), bytes).unwrap();
            t
        };
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] = 1; // padding after the payload
        let mut longer = good.clone();
        longer.extend_from_slice(&[0; 4096]);
        let mut payload = good.clone();
        payload[4096] ^= 1;
        for (bad, what) in [
            (&flipped, "padding"),
            (&longer, "trailing bytes"),
            (&payload, "payload"),
            (&good[..100].to_vec(), "truncated"),
        ] {
            let r = s.adopt(temp_with(bad), &id, false);
            assert!(matches!(r, Err(OpenError::Corrupt(_))), "{what}: {r:?}");
            assert!(!s.has_pack(&id), "{what}");
        }
        let other = Digest::of(b"another id");
        assert!(matches!(
            s.adopt(temp_with(&good), &other, false),
            Err(OpenError::Corrupt(_))
        ));
        assert_eq!(
            s.adopt(temp_with(&good), &id, false).unwrap(),
            good.len() as u64
        );
        assert!(s.has_pack(&id));
        assert_eq!(s.open_pack(&id).unwrap().payload(0), &vec![5u8; 6000][..]);
        assert_eq!(s.usage(), (good.len() as u64, 1));
    }

    #[test]
    fn manifests_persist_and_gc_drops_stale_entries() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let id = put(&s, dir.path(), b"x");
        let key = Digest::of(b"key");
        let entry = |pack| Entry {
            inputs: Default::default(),
            pack,
            created: 1,
        };
        s.add_entry(&key, entry(id)).unwrap();
        s.add_entry(
            &key,
            Entry {
                inputs: manifest::Inputs {
                    absent: vec![b"x".to_vec()],
                    absent_under: vec![],
                    ..Default::default()
                },
                ..entry(Digest::of(b"gone"))
            },
        )
        .unwrap();
        let s2 = store(dir.path());
        assert_eq!(s2.manifest(&key).unwrap().entries.len(), 2);
        let r = s2.gc();
        assert_eq!(r.stale_manifest_entries, 1);
        assert_eq!(s2.manifest(&key).unwrap().entries.len(), 1);
        let r = s2.clear();
        assert_eq!(r.packs_after, 0);
        assert!(store(dir.path()).manifest(&key).is_none());
    }
}
