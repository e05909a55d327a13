//! The engine's view of files: through the mount's core for paths under one of the daemon's
//! mounts, plain paths elsewhere (see `crate::fsview`).

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};
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

/// Where a path is read: in one of the daemon's mounts (the mount, the path relative to
/// it), or on the host (the path, with any `..` that climbed out of a mount's root folded).
pub enum Place<'p> {
    Mount(Arc<LiveMount>, PathBuf),
    Host(Cow<'p, Path>),
}

/// `dir` (a mount's root: absolute and canonical) joined with `rel`, when `rel` climbs out
/// of it through `..` (`../src/x.h`, `sub/../../src/x.h`): folded lexically, which is sound
/// because the root is a real directory (its `..` is its parent; `/..` is `/`) and every
/// directory of the mount that a `..` climbs out of must be one too (`real_dir`, asked of
/// the mount's core, which follows no symlink). `None` if `rel` stays in the mount (the
/// core folds its `..`), or climbs out of something that is not a real directory.
fn climb_out(dir: &Path, rel: &Path, real_dir: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let mut kept: Vec<&std::ffi::OsStr> = Vec::new();
    let mut parts = rel.components().peekable();
    while let Some(c) = parts.next() {
        match c {
            Component::Normal(n) => kept.push(n),
            Component::CurDir => {}
            Component::ParentDir if kept.is_empty() => {
                // The root's ancestors are real directories too (it is canonical).
                let mut out = dir.to_path_buf();
                out.pop();
                while parts.next_if_eq(&Component::ParentDir).is_some() {
                    out.pop();
                }
                // What follows is a host path: its own `..` are the host walk's.
                out.extend(parts);
                return Some(out);
            }
            Component::ParentDir => {
                if !real_dir(&kept.iter().collect::<PathBuf>()) {
                    return None;
                }
                kept.pop();
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    None
}

impl MountedFs<'_> {
    /// Where `path` is read (also through an alias into a mount). A path that enters a
    /// mount and climbs out of its root (`BUILD/../src/x.h`, as an out-of-tree build names
    /// its sources) is a host path, or one in another mount: the daemon never looks a path
    /// up through its own mount.
    pub fn place<'p>(&self, path: &'p Path) -> Place<'p> {
        let found = self
            .aliases
            .iter()
            .find_map(|(from, to)| path.strip_prefix(from).ok().map(|rest| to.join(rest)))
            .map_or_else(|| self.mounts.find(path), |p| self.mounts.find(&p));
        match found {
            None => Place::Host(Cow::Borrowed(path)),
            Some((m, rel)) => match climb_out(&m.dir, &rel, |d| m.core.dir_handle(d).is_ok()) {
                Some(out) => match self.place(&out) {
                    Place::Mount(m, rel) => Place::Mount(m, rel),
                    Place::Host(Cow::Owned(p)) => Place::Host(Cow::Owned(p)),
                    Place::Host(Cow::Borrowed(_)) => Place::Host(Cow::Owned(out)),
                },
                None => Place::Mount(m, rel),
            },
        }
    }

    /// The mount a path lies in (also through an alias), with the path relative to it.
    pub fn locate(&self, path: &Path) -> Option<(Arc<LiveMount>, PathBuf)> {
        match self.place(path) {
            Place::Mount(m, rel) => Some((m, rel)),
            Place::Host(_) => None,
        }
    }

    /// [`FsView::meta`]; `need_stat`: the caller uses a regular file's stat (a host path's
    /// answer may then not come from the watcher, see [`crate::fsview::watch`]).
    fn meta_for(&self, path: &Path, need_stat: bool) -> io::Result<Option<FileMeta>> {
        let (m, rel) = match self.place(path) {
            Place::Mount(m, rel) => (m, rel),
            Place::Host(p) => return self.hashes.meta(&p, need_stat),
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
        let (m, rel) = match self.place(path) {
            Place::Mount(m, rel) => (m, rel),
            Place::Host(p) => return self.hashes.digest(&p),
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
        matches!(self.place(path), Place::Mount(..))
    }

    /// A path in a mount is the mount's file, the same for every reader (the core follows
    /// no symlink); it is never looked up through the mount.
    fn check_shared(&self, path: &Path) -> Result<(), String> {
        match self.place(path) {
            Place::Mount(..) => Ok(()),
            Place::Host(p) => crate::fsutil::check_shared_file(&p),
        }
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
        let (m, rel) = match self.place(path) {
            Place::Mount(m, rel) => (m, rel),
            Place::Host(p) => return File::open(p),
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
        let fd = match self.place(dir) {
            Place::Mount(m, rel) => m.core.dir_handle(&rel).ok()?,
            Place::Host(p) => crate::fsview::open_dir_path(&p)?,
        };
        crate::fsview::learn_dir(&self.hashes.clocks, fd)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Listing> {
        let (m, rel) = match self.place(path) {
            Place::Mount(m, rel) => (m, rel),
            Place::Host(p) => return self.hashes.list_dir(&p),
        };
        Ok(Arc::new(m.core.list_dir(&rel)?.into_iter().collect()))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if let Place::Mount(m, rel) = self.place(path)
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

#[cfg(test)]
mod tests {
    use super::climb_out;
    use std::path::{Path, PathBuf};

    #[test]
    fn climbing_out_of_a_mount_root_through_real_directories() {
        let root = Path::new("/w/build");
        let real = |_: &Path| true;
        let c = |rel: &str| climb_out(root, Path::new(rel), real);
        assert_eq!(c("../src/inc/a.h"), Some(PathBuf::from("/w/src/inc/a.h")));
        // From a subdirectory of the mount (a cwd below its root).
        assert_eq!(c("lib/../../src/a.h"), Some(PathBuf::from("/w/src/a.h")));
        assert_eq!(c("lib/./x/../../../a.h"), Some(PathBuf::from("/w/a.h")));
        // What follows the climb is a host path: its own `..` are left to the host walk.
        assert_eq!(c("../../x/../y.h"), Some(PathBuf::from("/x/../y.h")));
        assert_eq!(
            climb_out(Path::new("/b"), Path::new("../../../c"), real),
            Some(PathBuf::from("/c"))
        );
        // Staying in the mount: the core's to fold.
        assert_eq!(c("sub/../a.h"), None);
        assert_eq!(c("a.h"), None);
        assert_eq!(c(""), None);
        // Climbing out of something that is not a real directory (a symlink): not folded.
        let only_lib = |d: &Path| d == Path::new("lib");
        assert_eq!(
            climb_out(root, Path::new("lib/../../a.h"), only_lib),
            Some(PathBuf::from("/w/a.h"))
        );
        assert_eq!(climb_out(root, Path::new("link/../../a.h"), only_lib), None);
        assert_eq!(
            climb_out(root, Path::new("lib/x/../../../a.h"), only_lib),
            None
        );
    }
}
