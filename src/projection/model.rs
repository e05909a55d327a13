//! The model of projections that every mount backend shares: what a projected file is (a
//! slice of an immutable pack with metadata of its own), apart from how a kernel protocol
//! names it (inodes and handles for FUSE, paths and placeholders for ProjFS). The journal
//! (`journal.rs`) persists this model by path; `table.rs` maps it onto inodes for FUSE.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::fsutil::NanoTime;
use crate::hash::Digest;
use crate::store::pack::Pack;

/// Metadata of a projection that can change without its bytes changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub atime: NanoTime,
    pub mtime: NanoTime,
    pub ctime: NanoTime,
}

/// A projected file: entry `index` of `pack`, with its own metadata.
#[derive(Debug, Clone)]
pub struct Projection {
    /// Identity in the journal (never reused by a mount).
    pub id: u64,
    pub pack: Arc<Pack>,
    pub index: usize,
    pub size: u64,
    pub meta: Meta,
}

impl Projection {
    /// The file's bytes (a slice of the pack's map).
    pub fn bytes(&self) -> &[u8] {
        self.pack.payload(self.index)
    }

    /// The blake3 of the file's bytes, as the pack records it.
    pub fn digest(&self) -> Digest {
        self.pack
            .header
            .entries
            .get(self.index)
            .map(|e| e.digest)
            .unwrap_or_default()
    }
}
