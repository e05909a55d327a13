//! The protocol-neutral model of projections, shared by every mount backend: what a
//! projected file is (`model`), how projections are persisted by path (`journal`), and the
//! requests the engine makes of a mount (`ProjectItem`, its errors, why a real file stays
//! real). Nothing here names inodes, handles or a kernel protocol: FUSE's POSIX overlay
//! (`crate::mount::overlay`, Linux) and the ProjFS provider (`platform/projfs`) both build on it.

pub mod journal;
pub mod model;
pub mod relpath;

use std::path::PathBuf;
use std::sync::Arc;

use crate::fsutil::NanoTime;
use crate::store::pack::Pack;
pub use model::{Meta, Projection};

/// One projection request item.
#[derive(Debug, Clone)]
pub struct ProjectItem {
    /// Relative to the mount root.
    pub path: PathBuf,
    pub pack: Arc<Pack>,
    pub index: usize,
    pub perm: u16,
    pub mtime: NanoTime,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("invalid path {0:?}: {1}")]
    BadPath(PathBuf, &'static str),
    #[error("{0:?}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("pack entry {1} out of range for {0:?}")]
    BadEntry(PathBuf, usize),
    /// The change was made, but the kernel did not confirm that its caches dropped the old
    /// state: a process may still see it, so the delivery must not count.
    #[error("the kernel did not confirm the invalidation: {0}")]
    Kernel(String),
}

/// Why a real file was left real instead of becoming a projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptReal {
    /// The file changed since it was stored (or is not the file that was stored).
    Changed,
    /// The file is open: its handles read the lower file, and an open file may be written.
    Open,
    /// The lower file has names the mount does not know of (hard links made elsewhere).
    UnknownNames,
    /// Nothing (or a directory, a projection) is at the path.
    NotRealFile,
    /// The journal could not record the projection (a full disk).
    Journal,
}

impl KeptReal {
    /// The reason as `zcfs stats` shows it.
    pub fn reason(self) -> &'static str {
        match self {
            KeptReal::Changed => "changed",
            KeptReal::Open => "open",
            KeptReal::UnknownNames => "unknown hard links",
            KeptReal::NotRealFile => "gone",
            KeptReal::Journal => "journal full",
        }
    }
}
