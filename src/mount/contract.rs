//! The interface between the portable mount code and a kernel protocol. A backend mounts a
//! directory ([`Backend`]); what it mounted answers the engine through [`MountCore`]:
//! projections in, files read back without going through the mount itself. FUSE's POSIX
//! overlay (`crate::mount::overlay` with `platform/fuse`, Linux) and the ProjFS provider
//! (`platform/projfs`, Windows) implement both; this module names neither.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsutil::NanoTime;
use crate::hash::Digest;
use crate::os::FileStat;
use crate::projection::{KeptReal, ProjectError, ProjectItem};
use crate::store::pack::Pack;
use crate::store::pack::PackSource;

/// What a path in a mount is, for the daemon (which never goes through its own mount).
#[derive(Debug)]
pub enum PathTarget {
    /// A projection: its identity (stable while it lives), size, times and digest.
    Projected {
        id: u64,
        size: u64,
        mtime: NanoTime,
        ctime: NanoTime,
        digest: Digest,
    },
    /// A real entry, reached without the mount (`RealAt`).
    Real {
        at: RealAt,
        is_file: bool,
    },
    Dir,
}

/// Where a real entry of a mount is, for the daemon.
#[derive(Debug)]
pub enum RealAt {
    /// Beneath a directory fd opened before the mount covered it (FUSE over-mount).
    #[cfg(unix)]
    Beneath {
        dirfd: Arc<std::os::fd::OwnedFd>,
        name: OsString,
    },
    /// At its own path (ProjFS: real files sit in the directory itself).
    Path(PathBuf),
}

impl RealAt {
    /// Opens the entry for reading, not following a symlink.
    pub fn open(&self) -> io::Result<File> {
        match self {
            #[cfg(unix)]
            RealAt::Beneath { dirfd, name } => {
                use rustix::fs::{Mode, OFlags};
                Ok(File::from(rustix::fs::openat(
                    &**dirfd,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?))
            }
            RealAt::Path(p) => crate::os::open_nofollow(p),
        }
    }

    /// The entry's metadata, not following a symlink: (is a file, is a dir, stat).
    pub fn stat(&self) -> io::Result<(bool, bool, FileStat)> {
        match self {
            #[cfg(unix)]
            RealAt::Beneath { dirfd, name } => {
                let st = rustix::fs::statat(&**dirfd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
                let kind = st.st_mode & libc::S_IFMT;
                Ok((
                    kind == libc::S_IFREG,
                    kind == libc::S_IFDIR,
                    FileStat {
                        dev: st.st_dev,
                        ino: st.st_ino,
                        size: st.st_size as u64,
                        mtime: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
                        ctime: st.st_ctime as i128 * 1_000_000_000 + st.st_ctime_nsec as i128,
                    },
                ))
            }
            RealAt::Path(p) => {
                let m = std::fs::symlink_metadata(p)?;
                Ok((m.is_file(), m.is_dir(), crate::os::link_stat(p, &m)?))
            }
        }
    }

    /// A handle of the directory that holds the entry (to learn its filesystem's clock).
    pub fn dir_handle(&self) -> Option<crate::os::DirHandle> {
        match self {
            #[cfg(unix)]
            RealAt::Beneath { dirfd, .. } => dirfd.try_clone().ok(),
            RealAt::Path(p) => crate::os::open_dir(p.parent()?).ok(),
        }
    }
}

/// Counts of what a mount holds and how its files were opened.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Usage {
    pub projections: u64,
    pub projected_bytes: u64,
    pub nodes: u64,
    /// Directory handles held open.
    pub dir_fds: u64,
    pub opens_passthrough: u64,
    pub opens_cached: u64,
    pub copy_ups: u64,
    /// Bytes the daemon itself read or wrote for its callers' opens and reads.
    pub bytes_served: u64,
    /// Requests received, by kind (kinds never seen are left out).
    pub requests: std::collections::BTreeMap<&'static str, u64>,
}

/// One mounted directory, as the engine and the mount registry use it. Paths are relative
/// to the mount's root. No method goes through the mount itself.
pub trait MountCore: Send + Sync {
    /// The mount's file clock now (the time a file written now would get).
    fn now(&self) -> io::Result<NanoTime>;
    /// Projects entries, replacing whatever was at their paths, and returns once every
    /// process can see them.
    fn project(&self, items: &[ProjectItem]) -> Result<(), ProjectError>;
    /// Makes real directories (relative to the root, parents first), visible to every
    /// process when it returns. A backend that cannot says so: the caller then has them
    /// made through the mount.
    fn make_dirs(&self, rels: &[PathBuf]) -> Result<(), ProjectError> {
        Err(ProjectError::Io(
            rels.first().cloned().unwrap_or_default(),
            io::Error::new(io::ErrorKind::Unsupported, "not supported by this backend"),
        ))
    }
    /// Writes a real file at `rel` (replacing a file or projection there), visible to every
    /// process when it returns.
    fn put_real(
        &self,
        rel: &Path,
        bytes: &[u8],
        perm: u16,
        mtime: NanoTime,
    ) -> Result<(), ProjectError>;
    /// Turns the real file at `rel` into a projection of `pack`'s entry `index`, keeping its
    /// times, if it still is the file that had the stat `expect` and nothing holds it open.
    fn convert_to_projection(
        &self,
        rel: &Path,
        pack: Arc<Pack>,
        index: usize,
        expect: &FileStat,
    ) -> Result<Result<(), KeptReal>, ProjectError>;
    /// What `rel` is.
    fn path_target(&self, rel: &Path) -> io::Result<PathTarget>;
    /// A handle of the real directory at `rel` (`""`: the root).
    fn dir_handle(&self, rel: &Path) -> io::Result<crate::os::DirHandle>;
    /// The names in the directory at `rel`, real and projected, in no particular order.
    fn list_dir(&self, rel: &Path) -> io::Result<Vec<OsString>>;
    /// The bytes of the projection at `rel`, `None` if it is not projected.
    fn projected_bytes(&self, rel: &Path) -> Option<Vec<u8>>;
    /// The projection at `rel` (pack entry and metadata), `None` if it is not projected or
    /// the backend cannot tell (its bytes are then read like a real file's).
    fn projection_at(&self, _rel: &Path) -> Option<crate::projection::Projection> {
        None
    }
    /// Packs that projections use.
    fn packs_in_use(&self) -> Vec<Digest>;
    /// Turns every projection of one pack into a real file; returns how many.
    fn materialize_pack(&self, id: &Digest) -> io::Result<u64>;
    /// Turns every projection into a real file (unmount `--materialize`); returns how many.
    fn materialize_all(&self) -> io::Result<u64>;
    /// Periodic housekeeping (a lagging or long journal is rewritten).
    fn tend(&self);
    /// Writes the journal in full and to disk (unmount, daemon exit).
    fn persist(&self);
    fn usage(&self) -> Usage;
    /// Disk space of the real files in the mount (hard links once).
    fn real_bytes(&self) -> u64;
    /// The kernel accepted FUSE passthrough (always false elsewhere).
    fn passthrough(&self) -> bool {
        false
    }
}

/// What a journal replay at mount restored and dropped.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LoadReport {
    pub restored: u64,
    pub dropped_pack_gone: u64,
    pub dropped_names: u64,
    pub dropped_no_name: u64,
}

/// A mounted directory as a backend hands it over: the core, and the session serving it.
pub struct Attached {
    pub core: Arc<dyn MountCore>,
    pub session: Box<dyn Session>,
    pub report: LoadReport,
}

/// The protocol session of one mount.
pub trait Session: Send {
    /// Whether the kernel still serves the mount from us.
    fn running(&self) -> bool;
    /// Waits (at most `max`) for the session to end after the directory was released;
    /// false if it did not.
    fn join(self: Box<Self>, max: std::time::Duration) -> bool;
}

/// How the caller wants a directory mounted.
#[derive(Debug, Clone)]
pub struct AttachSpec<'a> {
    pub dir: &'a Path,
    /// The mount's private state directory (journal, clock file, identity).
    pub state: &'a Path,
    /// Names the daemon that serves the mount (its socket), for `zcfs unmount` elsewhere.
    pub source: String,
    pub allow_other: bool,
}

/// Why a release of a mounted directory did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("busy")]
    Busy,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Another zcfs daemon's mount found at a directory.
#[derive(Debug, Clone)]
pub struct ForeignMount {
    /// The socket of the daemon that serves it, when known.
    pub socket: Option<PathBuf>,
    /// Made by this user.
    pub mine: bool,
}

/// A kernel protocol that can present a directory's projections.
pub trait Channel: Send + Sync {
    /// The protocol's name (`fuse`, `projfs`), for messages.
    fn name(&self) -> &'static str;
    /// Removes what a dead session left at `dir`; returns how many were removed.
    fn clean_stale(&self, dir: &Path) -> io::Result<usize>;
    /// Whether our session at `dir` died while the directory is still held.
    fn is_stale(&self, dir: &Path) -> bool;
    /// zcfs mounts at `dir` that other daemons (or dead ones) hold.
    fn zcfs_mounts_at(&self, dir: &Path) -> Vec<ForeignMount>;
    /// Every zcfs mount of this user on the machine, by directory.
    fn my_mounts(&self) -> Vec<(PathBuf, ForeignMount)>;
    /// Starts serving `spec.dir`: replays its journal from `spec.state`.
    fn attach(&self, spec: &AttachSpec<'_>, packs: &dyn PackSource) -> anyhow::Result<Attached>;
    /// Lets go of `dir` (`lazy`: even while processes use it).
    fn release(&self, dir: &Path, lazy: bool) -> Result<(), ReleaseError>;
    /// Processes that hold `dir` busy, as "pid (command): what", for messages.
    fn holders(&self, dir: &Path) -> Vec<String>;
    /// What a mount of another daemon, at `socket`, is called (`source` in `AttachSpec`).
    fn source_for(&self, socket: &Path) -> String;
}

/// A backend for machines that have no mount protocol zcfs can use: every mount request
/// fails with the reason, and hits are restored as real files.
pub struct NoChannel(pub &'static str);

impl Channel for NoChannel {
    fn name(&self) -> &'static str {
        "none"
    }
    fn clean_stale(&self, _: &Path) -> io::Result<usize> {
        Ok(0)
    }
    fn is_stale(&self, _: &Path) -> bool {
        false
    }
    fn zcfs_mounts_at(&self, _: &Path) -> Vec<ForeignMount> {
        Vec::new()
    }
    fn my_mounts(&self) -> Vec<(PathBuf, ForeignMount)> {
        Vec::new()
    }
    fn attach(&self, _: &AttachSpec<'_>, _: &dyn PackSource) -> anyhow::Result<Attached> {
        anyhow::bail!("{}", self.0)
    }
    fn release(&self, _: &Path, _: bool) -> Result<(), ReleaseError> {
        Err(ReleaseError::Io(io::Error::other(self.0)))
    }
    fn holders(&self, _: &Path) -> Vec<String> {
        Vec::new()
    }
    fn source_for(&self, _: &Path) -> String {
        String::new()
    }
}
