//! The narrow interface between the ProjFS provider and Windows: the ProjFS calls the provider
//! makes (`PrjMarkDirectoryAsPlaceholder`, `PrjDeleteFile`, `PrjClearNegativePathCache`,
//! `PrjGetOnDiskFileState`, `PrjFileNameCompare`, `PrjFileNameMatch`) and the few plain file
//! operations it does in the virtualization root. `platform/projfs/sys.rs` implements it
//! with the `windows` crate; the tests implement it with a model of ProjFS (`fake.rs`). The
//! calls the other way, from ProjFS to the provider, are the `cb_*` methods of `Provider`.

use std::cmp::Ordering;
use std::io;

use crate::fsutil::NanoTime;
use crate::projection::relpath::RelPath;

/// A virtualization instance id (a GUID's 16 bytes).
pub type Guid = [u8; 16];

/// What ProjFS shows of a projected file before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub size: u64,
    /// Last write and change time (Unix ns; converted to FILETIME at the boundary).
    pub mtime: NanoTime,
    pub read_only: bool,
}

/// A placeholder as the provider describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// The projection's own spelling of its name (the last component): ProjFS gives the
    /// placeholder the case the provider writes, not the case of the request.
    pub name: String,
    pub info: FileInfo,
    /// `PRJ_PLACEHOLDER_VERSION_INFO.ContentID`: which bytes the file holds (see
    /// `content.rs`); at most 128 bytes.
    pub content_id: Vec<u8>,
}

/// What is on disk at a path (`PrjGetOnDiskFileState` plus the directory case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnDisk {
    /// Nothing: the name is virtual (only the provider knows it) or does not exist.
    Missing,
    /// A placeholder whose bytes were not read yet.
    Placeholder {
        content_id: Vec<u8>,
    },
    /// A placeholder whose bytes were read: readable without the provider.
    Hydrated {
        content_id: Vec<u8>,
    },
    /// A file of its own (written, or converted on write): never touched by the provider.
    Full,
    /// A deleted name ProjFS remembers so the provider's name stays hidden.
    Tombstone,
    Dir {
        placeholder: bool,
    },
}

/// `PRJ_UPDATE_TYPES`: what a delete may remove besides a clean placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpdateFlags {
    pub allow_dirty_metadata: bool,
    pub allow_dirty_data: bool,
    pub allow_tombstone: bool,
    pub allow_read_only: bool,
}

impl UpdateFlags {
    /// Remove whatever is there.
    pub const ANY: UpdateFlags = UpdateFlags {
        allow_dirty_metadata: true,
        allow_dirty_data: true,
        allow_tombstone: true,
        allow_read_only: true,
    };
}

/// Why `PrjDeleteFile` refused.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// A handle without delete sharing holds the file (`ERROR_SHARING_VIOLATION`).
    #[error("the file is open")]
    InUse,
    /// The flags did not allow what is there (`PRJ_UPDATE_FAILURE_CAUSES`).
    #[error("refused: the file is {0}")]
    Refused(&'static str),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The result of a callback, mapped to an HRESULT by `platform/projfs/sys.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `ERROR_FILE_NOT_FOUND`.
    NotFound,
    /// `ERROR_INVALID_PARAMETER`: a request zcfs will not answer (a bad content id, a range
    /// outside the file).
    Invalid,
    /// `ERROR_INSUFFICIENT_BUFFER`: not even one directory entry fitted.
    BufferTooSmall,
    /// `ERROR_IO_DEVICE`: zcfs could not read what it projected (a pack gone).
    Io,
}

/// Notifications the provider registers for (`PRJ_NOTIFICATION`). Pre-notifications come
/// before the operation, the others after it; ProjFS cannot be asked to order them across
/// threads, so the provider applies them on one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `FILE_PRE_CONVERT_TO_FULL`: a placeholder is about to become a full file (opened for
    /// writing): its bytes are its own from now on.
    PreConvertToFull,
    /// `FILE_OVERWRITTEN`: opened with truncation or superseded.
    Overwritten,
    /// `FILE_HANDLE_CLOSED_FILE_MODIFIED`.
    ClosedModified,
    /// `FILE_HANDLE_CLOSED_FILE_DELETED`.
    Deleted,
    /// `FILE_RENAMED` to the given path.
    Renamed(RelPath),
    /// `NEW_FILE_CREATED`.
    Created,
    /// `HARDLINK_CREATED` at the given path.
    Linked(RelPath),
}

/// Where a `GetFileData` callback sends bytes (`PrjAllocateAlignedBuffer` and
/// `PrjWriteFileData` on Windows).
pub trait DataSink {
    /// Every write but the last must start and end on a multiple of this.
    fn alignment(&self) -> usize;
    fn write(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
}

/// Where a `GetDirectoryEnumeration` callback sends entries (`PrjFillDirEntryBuffer`).
pub trait DirSink {
    /// False when the buffer is full (the entry was not added).
    fn add(&mut self, name: &str, info: &FileInfo) -> bool;
}

/// The calls the provider makes into ProjFS and the directory it virtualizes. Paths are
/// relative to the virtualization root.
pub trait ProjFs: Send + Sync {
    /// `PrjMarkDirectoryAsPlaceholder`: the provider is asked about this directory's names
    /// from now on (a directory created by a tool is "full", and ProjFS never asks about
    /// a full directory).
    fn mark_dir(&self, dir: &RelPath) -> io::Result<()>;
    /// Makes a placeholder directory an ordinary one again, so that it stays usable with no
    /// provider running (unmount). The root too.
    fn unmark_dir(&self, dir: &RelPath) -> io::Result<()>;
    /// `PrjDeleteFile`: removes what is on disk at `path` so that the next access asks the
    /// provider again. Nothing there is success.
    fn delete_file(&self, path: &RelPath, flags: UpdateFlags) -> Result<(), DeleteError>;
    /// `PrjClearNegativePathCache`.
    fn clear_negative_path_cache(&self) -> io::Result<()>;
    /// `PrjGetOnDiskFileState`, and whether a directory is there.
    fn on_disk(&self, path: &RelPath) -> io::Result<OnDisk>;
    /// The names on disk in a directory (placeholders, full files, directories; not
    /// tombstones), read without asking the provider.
    fn list_on_disk(&self, dir: &RelPath) -> io::Result<Vec<String>>;
    /// Size and mtime of what is on disk at `path` (not asking the provider).
    fn stat_on_disk(&self, path: &RelPath) -> io::Result<Option<FileInfo>>;
    /// Writes a full file (a temp file renamed into place) with these bytes and times.
    fn write_full(&self, path: &RelPath, bytes: &[u8], info: &FileInfo) -> io::Result<()>;
    /// Bytes of the full and hydrated files under the root.
    fn real_bytes(&self) -> u64;
    /// `PrjFileNameCompare`: the order ProjFS wants enumerations in.
    fn compare_names(&self, a: &str, b: &str) -> Ordering;
    /// `PrjFileNameMatch`: whether a name matches a search expression (`*`, `?`, DOS forms).
    fn name_matches(&self, name: &str, pattern: &str) -> bool;
    /// `PrjStopVirtualizing`.
    fn stop(&self);
}
