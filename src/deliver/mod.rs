//! Delivering a hit's outputs into the out-dir. One interface, two implementations: real
//! files (reflink or copy, [`restore`]) and, under a zcfs mount, projections of the pack.
//!
//! Contract of [`Deliver::deliver`] (spec M4, M5, M9, M10):
//! - when it returns `Ok`, every output exists at its final path with its full content,
//!   visible to every process;
//! - every output carries the recorded mode, or the one its [`Placed`] gives;
//! - every output's mtime comes from the kernel's file clock at delivery time, raised to at
//!   least `mtime_floor` (the newest extern input), and all outputs of one delivery share it;
//! - on `Err`, no output of this delivery is left half-written.

pub mod project;
pub mod restore;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsutil::NanoTime;
use crate::hash::Digest;
use crate::os::FileStat;
use crate::store::pack::Pack;

pub struct Delivery<'a> {
    pub pack: &'a Arc<Pack>,
    /// Which pack entry goes where. Paths are absolute for [`restore`], relative to the
    /// mount's root for [`project`].
    pub outputs: Vec<Placed>,
    pub mtime_floor: NanoTime,
}

/// One pack entry at its destination.
#[derive(Debug, Clone)]
pub struct Placed {
    pub index: usize,
    pub path: PathBuf,
    /// Bytes that differ from the pack's here: a dependency file rewritten for another
    /// target dir (spec X2).
    pub bytes: Option<Vec<u8>>,
    /// The permission bits to give it, if not the recorded ones (a C compile's outputs
    /// get what the compiler would give them under the caller's umask).
    pub mode: Option<u32>,
}

impl<'a> Delivery<'a> {
    /// Every entry of the pack into `dir` under its own name, `replaced` entries with the
    /// given bytes (rustc's outputs: one out-dir).
    pub fn in_dir(
        pack: &'a Arc<Pack>,
        dir: &Path,
        mtime_floor: NanoTime,
        replaced: &[(usize, Vec<u8>)],
    ) -> Delivery<'a> {
        let outputs = pack
            .header
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| Placed {
                index: i,
                path: dir.join(&e.name),
                bytes: replaced
                    .iter()
                    .find(|(r, _)| *r == i)
                    .map(|(_, b)| b.clone()),
                mode: None,
            })
            .collect();
        Delivery {
            pack,
            outputs,
            mtime_floor,
        }
    }
}

/// One delivered file, so the daemon can record its hash without reading it again.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub path: PathBuf,
    pub stat: FileStat,
    pub digest: Digest,
}

#[derive(Debug, Default)]
pub struct Report {
    /// Files delivered as real files, with their stat (for the hash cache).
    pub files: Vec<Delivered>,
    /// Artifact bytes delivered (projected or written).
    pub bytes: u64,
    /// Bytes that were reflinked rather than copied.
    pub reflinked_bytes: u64,
    /// The outputs were projected: only `written_bytes` were written (rewritten files).
    pub projected: bool,
    pub written_bytes: u64,
}

pub trait Deliver: Send + Sync {
    fn deliver(&self, d: &Delivery<'_>) -> std::io::Result<Report>;
    fn name(&self) -> &'static str;
}
