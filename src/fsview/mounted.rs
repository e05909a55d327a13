//! The engine's view of files: through the mount's core for paths under one of the daemon's
//! mounts, plain paths elsewhere (see `crate::fsview`).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsutil::NanoTime;
use crate::fsview::hashcache::{HashCache, HashError};
use crate::fsview::{FileMeta, FsView, Listing};
use crate::hash::Digest;
use crate::mount::{LiveMount, Mounts, PathTarget};
use crate::os::FileStat;

pub use crate::fsview::fsclock::PROJECTED_DEV;

pub struct MountedFs<'a> {
    pub mounts: &'a Mounts,
    pub hashes: &'a HashCache,
    /// Paths that lead into a mount through a symlink outside it: (as given, resolved).
    /// See [`Mounts::alias`].
    pub aliases: Vec<(PathBuf, PathBuf)>,
}

fn projected_stat(id: u64, size: u64, mtime: NanoTime, ctime: NanoTime) -> FileStat {
    FileStat {
        dev: PROJECTED_DEV,
        ino: id,
        size,
        mtime,
        ctime,
    }
}

impl MountedFs<'_> {
    /// The mount a path lies in (also through an alias), with the path relative to it.
    pub fn locate(&self, path: &Path) -> Option<(Arc<LiveMount>, PathBuf)> {
        for (from, to) in &self.aliases {
            if let Ok(rest) = path.strip_prefix(from) {
                return self.mounts.find(&to.join(rest));
            }
        }
        self.mounts.find(path)
    }

    /// [`FsView::meta`]; `need_stat`: the caller uses a regular file's stat (a host path's
    /// answer may then not come from the watcher, see [`crate::fsview::watch`]).
    fn meta_for(&self, path: &Path, need_stat: bool) -> io::Result<Option<FileMeta>> {
        let Some((m, rel)) = self.locate(path) else {
            return self.hashes.meta(path, need_stat);
        };
        if rel.as_os_str().is_empty() {
            return Ok(Some(FileMeta {
                is_file: false,
                is_dir: true,
                stat: FileStat::default(),
            }));
        }
        match m.core.path_target(&rel) {
            Ok(PathTarget::Projected {
                id,
                size,
                mtime,
                ctime,
                ..
            }) => Ok(Some(FileMeta {
                is_file: true,
                is_dir: false,
                stat: projected_stat(id, size, mtime, ctime),
            })),
            Ok(PathTarget::Real { at, .. }) => {
                let (is_file, is_dir, stat) = at.stat()?;
                Ok(Some(FileMeta {
                    is_file,
                    is_dir,
                    stat,
                }))
            }
            Ok(PathTarget::Dir) => Ok(Some(FileMeta {
                is_file: false,
                is_dir: true,
                stat: FileStat::default(),
            })),
            Err(e) if crate::os::is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn digest_once(&self, path: &Path) -> Result<(Digest, FileStat), HashError> {
        let Some((m, rel)) = self.locate(path) else {
            return self.hashes.digest(path);
        };

        match m.core.path_target(&rel) {
            Ok(PathTarget::Projected {
                id,
                size,
                mtime,
                ctime,
                digest,
            }) => Ok((digest, projected_stat(id, size, mtime, ctime))),
            Ok(PathTarget::Real { at, is_file: true }) => {
                let file = at
                    .open()
                    .map_err(|e| HashError::Io(path.to_path_buf(), e))?;
                self.hashes.digest_open(path, &file, || at.dir_handle())
            }
            Ok(_) => Err(HashError::NotAFile(path.to_path_buf())),
            Err(e) => Err(HashError::Io(path.to_path_buf(), e)),
        }
    }
}

impl FsView for MountedFs<'_> {
    fn in_mount(&self, path: &Path) -> bool {
        self.locate(path).is_some()
    }

    fn digest(&self, path: &Path) -> Result<(Digest, FileStat), HashError> {
        // A real file that becomes a projection while it is hashed (a miss's output being
        // converted) looks changed: its name was unlinked. Look again.
        let mut tries = 0;
        loop {
            match self.digest_once(path) {
                Err(HashError::Changed(_)) if tries < 2 => tries += 1,
                r => return r,
            }
        }
    }

    fn meta(&self, path: &Path) -> io::Result<Option<FileMeta>> {
        self.meta_for(path, true)
    }

    fn kind(&self, path: &Path) -> io::Result<Option<FileMeta>> {
        self.meta_for(path, false)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        let Some((m, rel)) = self.locate(path) else {
            return File::open(path);
        };
        match m.core.path_target(&rel)? {
            PathTarget::Real { at, is_file: true } => at.open(),
            PathTarget::Projected { .. } => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a projected file has no file of its own",
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "not a regular file",
            )),
        }
    }

    fn clocks(&self) -> &crate::fsview::fsclock::FsClocks {
        &self.hashes.clocks
    }

    fn dir_device(&self, dir: &Path) -> Option<u64> {
        let fd = match self.locate(dir) {
            Some((m, rel)) => m.core.dir_handle(&rel).ok()?,
            None => crate::fsview::open_dir_path(dir)?,
        };
        crate::fsview::learn_dir(&self.hashes.clocks, fd)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Listing> {
        let Some((m, rel)) = self.locate(path) else {
            return self.hashes.list_dir(path);
        };
        Ok(Arc::new(m.core.list_dir(&rel)?.into_iter().collect()))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if let Some((m, rel)) = self.locate(path)
            && let Some(bytes) = m.core.projected_bytes(&rel)
        {
            return Ok(bytes);
        }
        use std::io::Read;
        let mut v = Vec::new();
        self.open(path)?.read_to_end(&mut v)?;
        Ok(v)
    }
}
