//! The engine's view of files: through the mount's core for paths under one of the daemon's
//! mounts, plain paths elsewhere (see `crate::fsview`).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags};

use super::{LiveMount, Mounts};
use crate::fsview::{FsView, Meta, host_meta};
use crate::hash::Digest;
use crate::hashcache::{FileStat, HashCache, HashError};
use crate::vfs::{Attr, PathTarget};

/// `st_dev` reported for projected files (they have no lower inode).
pub const PROJECTED_DEV: u64 = u64::MAX;

pub struct MountedFs<'a> {
    pub mounts: &'a Mounts,
    pub hashes: &'a HashCache,
    /// Paths that lead into a mount through a symlink outside it: (as given, resolved).
    /// See [`Mounts::alias`].
    pub aliases: Vec<(PathBuf, PathBuf)>,
}

fn projected_stat(a: &Attr) -> FileStat {
    FileStat {
        dev: PROJECTED_DEV,
        ino: a.ino,
        size: a.size,
        mtime: a.mtime,
        ctime: a.ctime,
    }
}

fn io_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
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

    fn digest_once(&self, path: &Path) -> Result<(Digest, FileStat), HashError> {
        let Some((m, rel)) = self.locate(path) else {
            return self.hashes.digest(path);
        };

        match m.vfs.path_target(&rel) {
            Ok(PathTarget::Projected { attr, digest }) => Ok((digest, projected_stat(&attr))),
            Ok(PathTarget::Real {
                dirfd,
                name,
                is_file: true,
            }) => {
                let fd = rustix::fs::openat(
                    &*dirfd,
                    &name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| HashError::Io(path.to_path_buf(), io_err(e)))?;
                self.hashes
                    .digest_open(path, &File::from(fd), || dirfd.try_clone().ok())
            }
            Ok(_) => Err(HashError::NotAFile(path.to_path_buf())),
            Err(e) => Err(HashError::Io(path.to_path_buf(), io_err(e))),
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

    fn meta(&self, path: &Path) -> io::Result<Option<Meta>> {
        let Some((m, rel)) = self.locate(path) else {
            return host_meta(path);
        };
        if rel.as_os_str().is_empty() {
            return Ok(Some(Meta {
                is_file: false,
                is_dir: true,
                stat: FileStat::default(),
            }));
        }
        match m.vfs.path_target(&rel) {
            Ok(PathTarget::Projected { attr, .. }) => Ok(Some(Meta {
                is_file: true,
                is_dir: false,
                stat: projected_stat(&attr),
            })),
            Ok(PathTarget::Real { dirfd, name, .. }) => {
                let st = rustix::fs::statat(&*dirfd, &name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err)?;
                let kind = st.st_mode & libc::S_IFMT;
                Ok(Some(Meta {
                    is_file: kind == libc::S_IFREG,
                    is_dir: kind == libc::S_IFDIR,
                    stat: FileStat {
                        dev: st.st_dev,
                        ino: st.st_ino,
                        size: st.st_size as u64,
                        mtime: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
                        ctime: st.st_ctime as i128 * 1_000_000_000 + st.st_ctime_nsec as i128,
                    },
                }))
            }
            Ok(PathTarget::Dir) => Ok(Some(Meta {
                is_file: false,
                is_dir: true,
                stat: FileStat::default(),
            })),
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        let Some((m, rel)) = self.locate(path) else {
            return File::open(path);
        };
        match m.vfs.path_target(&rel).map_err(io_err)? {
            PathTarget::Real {
                dirfd,
                name,
                is_file: true,
            } => Ok(File::from(
                rustix::fs::openat(
                    &*dirfd,
                    &name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io_err)?,
            )),
            PathTarget::Projected { .. } => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a projected file has no file of its own",
            )),
            _ => Err(io::Error::from_raw_os_error(libc::EISDIR)),
        }
    }

    fn clocks(&self) -> &crate::fsclock::FsClocks {
        &self.hashes.clocks
    }

    fn dir_device(&self, dir: &Path) -> Option<u64> {
        let fd = match self.locate(dir) {
            Some((m, rel)) => m.vfs.lower_dir_fd(&rel).ok()?.try_clone().ok()?,
            None => crate::fsview::open_dir_path(dir)?,
        };
        crate::fsview::learn_dir(&self.hashes.clocks, fd)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<std::ffi::OsString>> {
        let Some((m, rel)) = self.locate(path) else {
            return crate::fsview::host_list_dir(path);
        };
        m.vfs.list_dir(&rel).map_err(io_err)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if let Some((m, rel)) = self.locate(path)
            && let Some(bytes) = m.vfs.projected_bytes(&rel)
        {
            return Ok(bytes);
        }
        use std::io::Read;
        let mut v = Vec::new();
        self.open(path)?.read_to_end(&mut v)?;
        Ok(v)
    }
}
