//! The daemon's file-hash cache: a file whose (dev, ino, size, mtime, ctime) is unchanged
//! since it was hashed is not hashed again (spec D2).
//!
//! The racy guard: a record is trusted only if it was taken more than [`RACY_WINDOW_NS`] plus
//! the file's filesystem's timestamp slack ([`crate::fsview::fsclock`]: its granularity, and a margin
//! for network filesystems) after the file's mtime and ctime, because a write within the
//! same tick of the kernel's coarse file clock, or within one granule of a coarse
//! filesystem, may leave both unchanged. Records of files that the daemon itself wrote
//! (restored outputs) or copied into a pack with an unchanged stat before and after are
//! trusted at once: their bytes are known exactly.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use dashmap::DashMap;

use crate::fsutil::NanoTime;
use crate::fsview::fsclock::FsClocks;
use crate::fsview::watch::{Watch, WatchMode};
use crate::fsview::{FileMeta, Listing, host_list_dir, host_meta};
use crate::hash::{Digest, hash_file};
use crate::os::FileStat;

/// Twice a 250 Hz tick and then some; see the module docs.
pub const RACY_WINDOW_NS: NanoTime = 20_000_000;
/// Upper bound on remembered files; beyond it the cache is cleared and refilled.
const MAX_ENTRIES: usize = 500_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    stat: FileStat,
    digest: Digest,
    /// When the record was taken (realtime ns), or `None` for trusted records.
    taken: Option<NanoTime>,
}

#[derive(Default)]
pub struct HashCache {
    map: DashMap<PathBuf, Record>,
    /// Timestamp facts of the filesystems the files live on.
    pub clocks: FsClocks,
    /// What is known of host paths between requests (off unless made with [`HashCache::watching`]).
    pub watch: Watch,
}

/// An `O_PATH` fd of the directory that holds `path` (to measure its filesystem).
fn parent_dir(path: &Path) -> Option<crate::os::DirHandle> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    crate::os::open_dir(parent).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
    #[error("{0} changed while it was being hashed")]
    Changed(PathBuf),
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
}

impl HashCache {
    pub fn new() -> HashCache {
        HashCache::default()
    }

    /// A hash cache whose host paths are answered by a directory watcher in `mode`.
    pub fn watching(mode: WatchMode) -> HashCache {
        HashCache {
            watch: Watch::new(mode),
            ..HashCache::default()
        }
    }

    /// What is at a host path (following symlinks); `need_stat`: the caller uses a
    /// regular file's stat.
    pub fn meta(&self, path: &Path, need_stat: bool) -> io::Result<Option<FileMeta>> {
        self.watch
            .meta(path, need_stat)
            .unwrap_or_else(|| host_meta(path))
    }

    /// The names in a host directory.
    pub fn list_dir(&self, path: &Path) -> io::Result<Listing> {
        self.watch.list(path).unwrap_or_else(|| host_list_dir(path))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The digest of the file at `path` (following symlinks), with its stat.
    pub fn digest(&self, path: &Path) -> Result<(Digest, FileStat), HashError> {
        self.watch
            .digest(path, |p| self.digest_now(p))
            .unwrap_or_else(|| self.digest_now(path))
    }

    /// [`HashCache::digest`] from a fresh stat.
    fn digest_now(&self, path: &Path) -> Result<(Digest, FileStat), HashError> {
        let meta = fs::metadata(path).map_err(|e| HashError::Io(path.to_path_buf(), e))?;
        if !meta.is_file() {
            return Err(HashError::NotAFile(path.to_path_buf()));
        }
        let stat = FileStat::of_path(path, Some(&meta))
            .map_err(|e| HashError::Io(path.to_path_buf(), e))?;
        self.clocks.learn(stat.dev, || parent_dir(path));
        if let Some(d) = self.cached(path, &stat) {
            return Ok((d, stat));
        }
        let file = File::open(path).map_err(|e| HashError::Io(path.to_path_buf(), e))?;
        self.digest_open(path, &file, || None)
    }

    /// The digest of an open file, remembered under `key` (its path as the caller names it).
    /// `dir`: a directory on the file's filesystem, if it may not be measured yet.
    pub fn digest_open(
        &self,
        key: &Path,
        file: &File,
        dir: impl FnOnce() -> Option<crate::os::DirHandle>,
    ) -> Result<(Digest, FileStat), HashError> {
        let io = |e| HashError::Io(key.to_path_buf(), e);
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(HashError::NotAFile(key.to_path_buf()));
        }
        let before = FileStat::of_file(file, &meta).map_err(io)?;
        self.clocks.learn(before.dev, dir);
        if let Some(d) = self.cached(key, &before) {
            return Ok((d, before));
        }
        let digest = match hash_file(file, before.size) {
            Ok(d) => d,
            // Truncated while it was read.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(HashError::Changed(key.to_path_buf()));
            }
            Err(e) => return Err(io(e)),
        };
        let after = FileStat::of_file(file, &file.metadata().map_err(io)?).map_err(io)?;
        if before != after {
            return Err(HashError::Changed(key.to_path_buf()));
        }
        self.insert(
            key,
            Record {
                stat: after,
                digest,
                taken: Some(crate::util::realtime_ns()),
            },
        );
        Ok((digest, after))
    }

    fn cached(&self, key: &Path, stat: &FileStat) -> Option<Digest> {
        let rec = self.map.get(key)?;
        (rec.stat == *stat && self.trustworthy(&rec)).then_some(rec.digest)
    }

    /// Only the digest, for callers that do not need the stat.
    pub fn digest_only(&self, path: &Path) -> Result<Digest, HashError> {
        self.digest(path).map(|(d, _)| d)
    }

    /// Records a file whose bytes the daemon knows exactly (it wrote them, or copied them
    /// with an unchanged stat before and after).
    pub fn record_trusted(&self, path: &Path, stat: FileStat, digest: Digest) {
        self.insert(
            path,
            Record {
                stat,
                digest,
                taken: None,
            },
        );
    }

    pub fn forget(&self, path: &Path) {
        self.map.remove(path);
    }

    fn trustworthy(&self, rec: &Record) -> bool {
        match rec.taken {
            None => true,
            Some(taken) => {
                let window = RACY_WINDOW_NS + self.clocks.slack(rec.stat.dev);
                taken - rec.stat.mtime.max(rec.stat.ctime) > window
            }
        }
    }

    fn insert(&self, path: &Path, rec: Record) {
        if self.map.len() >= MAX_ENTRIES {
            self.map.clear();
        }
        self.map.insert(path.to_path_buf(), rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detects_changes_and_reuses_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"one").unwrap();
        let cache = HashCache::new();
        let (d1, _) = cache.digest(&p).unwrap();
        assert_eq!(d1, Digest::of(b"one"));

        // Same size, new content, same mtime forced back: ctime still changes.
        let old = fs::metadata(&p).unwrap();
        fs::write(&p, b"two").unwrap();
        filetime::set_file_mtime(&p, filetime::FileTime::from_last_modification_time(&old))
            .unwrap();
        assert_eq!(cache.digest(&p).unwrap().0, Digest::of(b"two"));
    }

    #[test]
    fn fresh_records_are_not_trusted_within_the_racy_window() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"aaaa").unwrap();
        let cache = HashCache::new();
        cache.digest(&p).unwrap();
        // Overwrite in place, then put every stat field back as it was: the racy guard is
        // what makes the cache re-hash (the record is younger than the window).
        let meta = fs::metadata(&p).unwrap();
        let mut f = fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all(b"bbbb").unwrap();
        drop(f);
        filetime::set_file_mtime(&p, filetime::FileTime::from_last_modification_time(&meta))
            .unwrap();
        let rec = *cache.map.get(&p).unwrap();
        let mut forged = rec;
        forged.stat = FileStat::of(&fs::metadata(&p).unwrap());
        cache.map.insert(p.clone(), forged);
        assert_eq!(cache.digest(&p).unwrap().0, Digest::of(b"bbbb"));
    }

    #[test]
    fn records_of_coarse_filesystems_wait_a_granule_longer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"aaaa").unwrap();
        let cache = HashCache::new();
        cache.digest(&p).unwrap();
        // A record taken 0.5 s after the file's times: trusted on this (fine) filesystem,
        // not on one that keeps whole seconds (as if the device were unmeasured: 2 s).
        let mut rec = *cache.map.get(&p).unwrap();
        rec.taken = Some(rec.stat.mtime.max(rec.stat.ctime) + 500_000_000);
        assert!(cache.trustworthy(&rec));
        rec.stat.dev = u64::MAX - 3;
        assert!(!cache.trustworthy(&rec));
    }

    #[test]
    fn trusted_records_skip_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"real").unwrap();
        let cache = HashCache::new();
        let stat = FileStat::of(&fs::metadata(&p).unwrap());
        let fake = Digest::of(b"recorded");
        cache.record_trusted(&p, stat, fake);
        assert_eq!(cache.digest(&p).unwrap().0, fake, "trusted record used");
        fs::write(&p, b"changed!").unwrap();
        assert_eq!(cache.digest(&p).unwrap().0, Digest::of(b"changed!"));
    }

    #[test]
    fn missing_and_directories_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HashCache::new();
        assert!(matches!(
            cache.digest(&dir.path().join("nope")),
            Err(HashError::Io(..))
        ));
        assert!(matches!(
            cache.digest(dir.path()),
            Err(HashError::NotAFile(..))
        ));
    }
}
