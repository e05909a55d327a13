use std::fs::File;
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::hashcache::FileStat;

/// A handle of a directory (opened with `FILE_FLAG_BACKUP_SEMANTICS`).
pub type DirHandle = File;

const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;
const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
/// Seconds between 1601-01-01 (FILETIME) and 1970-01-01.
const EPOCH_DIFF_100NS: i128 = 116_444_736_000_000_000;

pub fn open_dir(path: &Path) -> io::Result<DirHandle> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)
}

/// Opens a file for reading without following a symlink or junction at its last component.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
}

/// A FILETIME (100 ns since 1601) as Unix ns.
pub fn filetime_to_ns(ft: u64) -> i128 {
    (ft as i128 - EPOCH_DIFF_100NS) * 100
}

/// Unix ns as a FILETIME.
pub fn ns_to_filetime(ns: i128) -> u64 {
    (ns / 100 + EPOCH_DIFF_100NS).max(0) as u64
}

/// The size and times of a file. Windows has no inode number in `std`'s stable metadata:
/// `dev` and `ino` are 0, and the creation time stands in for the change time (a file
/// replaced by another gets a new one).
pub fn file_stat(meta: &std::fs::Metadata) -> FileStat {
    FileStat {
        dev: 0,
        ino: 0,
        size: meta.file_size(),
        mtime: filetime_to_ns(meta.last_write_time()),
        ctime: filetime_to_ns(meta.creation_time()),
    }
}

/// Windows has no device numbers in `std`: every directory counts as device 0.
pub fn dir_device(_dir: &DirHandle) -> Option<u64> {
    Some(0)
}

/// Whether an error means that the path (or a parent of it) does not exist.
pub fn is_not_found(e: &io::Error) -> bool {
    // ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND
    e.kind() == io::ErrorKind::NotFound || matches!(e.raw_os_error(), Some(2) | Some(3))
}
