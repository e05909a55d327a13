//! How the engine reads the files a compile involves. Paths outside any zcfs mount are read
//! as usual; paths under one of the daemon's own mounts are read through that mount's core
//! (its lower directory fds), never through the mount itself: the daemon must not make
//! requests to its own FUSE server, and a projected file's digest is already known.
//!
//! - `mod.rs`: the interface ([`FsView`]) and the host's files ([`HostFs`]);
//! - `mounted.rs`: the engine's view with its mounts ([`mounted::MountedFs`]);
//! - `hashcache.rs`: file digests by (dev, ino, size, mtime, ctime);
//! - `fsclock.rs`: each filesystem's timestamp granularity and stamps on it;
//! - `watch.rs`: what is known of host paths between requests, kept by directory watches.

pub mod fsclock;
pub mod hashcache;
pub mod mounted;
pub mod watch;

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use self::fsclock::FsClocks;
use self::hashcache::{HashCache, HashError};
use crate::hash::Digest;
use crate::os::FileStat;

/// The names in a directory, shared (the watcher keeps them).
pub type Listing = Arc<HashSet<std::ffi::OsString, crate::util::FastBuild>>;

/// What the engine needs to know about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub is_file: bool,
    pub is_dir: bool,
    pub stat: FileStat,
}

pub trait FsView: Send + Sync {
    /// The blake3 and stat of a regular file (symlinks followed outside mounts).
    fn digest(&self, path: &Path) -> Result<(Digest, FileStat), HashError>;
    /// Metadata, following symlinks outside mounts; `None` if the path does not exist.
    fn meta(&self, path: &Path) -> io::Result<Option<FileMeta>>;
    /// Opens a regular file for reading.
    fn open(&self, path: &Path) -> io::Result<File>;
    /// The names in a directory (without `.` and `..`).
    fn list_dir(&self, path: &Path) -> io::Result<Listing>;
    /// Timestamp facts of the filesystems files live on.
    fn clocks(&self) -> &FsClocks;
    /// The device of a directory, measured (see [`FsClocks::learn`]) if it was not yet.
    fn dir_device(&self, dir: &Path) -> Option<u64>;

    /// Whether the path lies in one of the daemon's mounts (whose directory times do not
    /// follow every change a projection makes).
    fn in_mount(&self, _path: &Path) -> bool {
        false
    }

    /// Refuses a path whose content depends on who reads it
    /// ([`crate::fsutil::check_shared_file`]).
    fn check_shared(&self, path: &Path) -> Result<(), String> {
        crate::fsutil::check_shared_file(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut v = Vec::new();
        self.open(path)?.read_to_end(&mut v)?;
        Ok(v)
    }
    /// [`FsView::meta`] for a caller that uses what is there but not a regular file's stat
    /// (which may then come from the daemon's watcher, see [`crate::fsview::watch`]).
    fn kind(&self, path: &Path) -> io::Result<Option<FileMeta>> {
        self.meta(path)
    }
    fn is_file(&self, path: &Path) -> bool {
        matches!(self.kind(path), Ok(Some(m)) if m.is_file)
    }
    fn is_dir(&self, path: &Path) -> bool {
        matches!(self.kind(path), Ok(Some(m)) if m.is_dir)
    }
    fn exists(&self, path: &Path) -> bool {
        matches!(self.kind(path), Ok(Some(_)))
    }
    /// Whether nothing is at `path`, known for sure (not found, or a parent is not a
    /// directory). An error is no answer: whoever relies on an absence fails closed.
    fn absent(&self, path: &Path) -> bool {
        matches!(self.kind(path), Ok(None))
    }
}

/// Plain paths, hashed through the hash cache.
pub struct HostFs<'a> {
    pub hashes: &'a HashCache,
}

impl FsView for HostFs<'_> {
    fn digest(&self, path: &Path) -> Result<(Digest, FileStat), HashError> {
        self.hashes.digest(path)
    }

    fn meta(&self, path: &Path) -> io::Result<Option<FileMeta>> {
        self.hashes.meta(path, true)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        File::open(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Listing> {
        self.hashes.list_dir(path)
    }

    fn kind(&self, path: &Path) -> io::Result<Option<FileMeta>> {
        self.hashes.meta(path, false)
    }

    fn clocks(&self) -> &FsClocks {
        &self.hashes.clocks
    }

    fn dir_device(&self, dir: &Path) -> Option<u64> {
        learn_dir(&self.hashes.clocks, open_dir_path(dir)?)
    }
}

/// An `O_PATH` fd of a directory.
pub fn open_dir_path(dir: &Path) -> Option<crate::os::DirHandle> {
    crate::os::open_dir(dir).ok()
}

/// Measures the filesystem of directory `fd` if needed; returns its device.
pub fn learn_dir(clocks: &FsClocks, fd: crate::os::DirHandle) -> Option<u64> {
    let dev = crate::os::dir_device(&fd)?;
    clocks.learn(dev, || Some(fd));
    Some(dev)
}

pub fn host_list_dir(path: &Path) -> io::Result<Listing> {
    std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map(Arc::new)
}

pub fn host_meta(path: &Path) -> io::Result<Option<FileMeta>> {
    match std::fs::metadata(path).and_then(|m| Ok((FileStat::of_path(path, Some(&m))?, m))) {
        Ok((stat, m)) => Ok(Some(FileMeta {
            is_file: m.is_file(),
            is_dir: m.is_dir(),
            stat,
        })),
        Err(e) if crate::os::is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}
