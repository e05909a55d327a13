//! Delivering a hit's outputs into the out-dir. One interface, two implementations: real
//! files (reflink or copy, [`restore`]) and, under a zcfs mount, projections of the pack.
//!
//! Contract of [`Deliver::deliver`] (spec M4, M5, M9, M10):
//! - when it returns `Ok`, every output exists at its final path with its full content,
//!   visible to every process;
//! - every output carries the recorded mode;
//! - every output's mtime comes from the kernel's file clock at delivery time, raised to at
//!   least `mtime_floor` (the newest extern input), and all outputs of one delivery share it;
//! - on `Err`, no output of this delivery is left half-written.

pub mod project;
pub mod restore;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsutil::NanoTime;
use crate::hash::Digest;
use crate::hashcache::FileStat;
use crate::store::pack::Pack;

pub struct Delivery<'a> {
    pub pack: &'a Arc<Pack>,
    pub out_dir: &'a Path,
    pub mtime_floor: NanoTime,
    /// Entries whose bytes here differ from the pack's, as (index, bytes): a dep-info file
    /// rewritten for another target dir (spec X2).
    pub replaced: &'a [(usize, Vec<u8>)],
}

impl Delivery<'_> {
    pub fn replacement(&self, index: usize) -> Option<&[u8]> {
        self.replaced
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b.as_slice())
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
