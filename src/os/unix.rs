use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::hashcache::FileStat;

/// A handle of a directory, used for `*at` calls and to learn its filesystem.
pub type DirHandle = std::os::fd::OwnedFd;

/// Opens a directory as a handle (`O_PATH`: no read permission needed).
pub fn open_dir(path: &Path) -> io::Result<DirHandle> {
    Ok(rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}

/// Opens a file for reading without following a symlink at its last component.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// The identity, size and times of a file, from its metadata.
pub fn file_stat(meta: &std::fs::Metadata) -> FileStat {
    FileStat {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.len(),
        mtime: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        ctime: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
    }
}

/// The device a directory handle is on.
pub fn dir_device(dir: &DirHandle) -> Option<u64> {
    rustix::fs::fstat(dir).ok().map(|s| s.st_dev)
}

/// Whether an error means that the path (or a parent of it) does not exist.
pub fn is_not_found(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}
