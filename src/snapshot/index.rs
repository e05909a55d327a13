//! The daemon's record of cargo's units for one build dir (docs/snapshot.md): for each
//! unit (`<profile>/<package>-<16 hex>`), the last few records stored after builds, each
//! with the files cargo wrote for the unit (by pack reference), the inputs its freshness
//! depends on (by content), and the records of its dependencies it was built against.
//!
//! One file per (build dir, workspace root, `CARGO_HOME`) under `<cache>/snapshots/`: a
//! record is bound to those absolute paths, because cargo's records and the unit's outputs
//! name them. The file is the daemon's own, but it is read as hostile bytes anyway: a
//! capped read, a checked decode (anything wrong reads as an empty index), and every
//! relative path checked again when it is projected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hash::Digest;

const MAGIC: &[u8; 8] = b"ZCFSSNP3";
/// The largest index file read.
pub const MAX_BYTES: u64 = 256 << 20;
/// Records kept per unit (newest first): a few branches' worth.
pub const RECORDS_PER_UNIT: usize = 4;
/// Units kept per index.
pub const MAX_UNITS: usize = 100_000;

/// A file of the unit, as cargo left it in the build dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapFile {
    /// Relative to the build dir.
    pub rel: String,
    pub pack: Digest,
    pub index: u32,
    pub perm: u16,
    pub digest: Digest,
}

/// An input of the unit outside the build dir, by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInput {
    /// Absolute.
    pub path: Vec<u8>,
    /// A directory named by `rerun-if-changed` (cargo scans it): the digest of its tree.
    pub dir: bool,
    pub digest: Digest,
}

/// One record of one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRecord {
    /// Digest of the unit's hash files and its files' contents.
    pub identity: Digest,
    /// The unit's fingerprint hashes by target (`lib-util`, ...).
    pub hashes: Vec<(String, u64)>,
    pub files: Vec<SnapFile>,
    /// Directories to create (relative to the build dir), parents first.
    pub dirs: Vec<String>,
    pub inputs: Vec<HostInput>,
    /// Paths that must not exist (a compile's module or header alternatives), by
    /// directory: (absolute directory, names in it).
    pub absent: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    /// The digest of the tools the build ran that cargo does not track by content (the
    /// default linker and C compilers).
    pub tools: Digest,
    /// Inputs inside the build dir (a build script's generated sources): relative path and
    /// digest, to be supplied by the records of the units that wrote them.
    pub build_inputs: Vec<(String, Digest)>,
    /// The records of the units it was built against: key and identity.
    pub deps: Vec<(String, Digest)>,
    /// Variables the unit read or declared and their values (`None`: unset). cargo checks
    /// them too; a record built with other values is not the one to offer.
    pub env: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Unix seconds.
    pub recorded: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// By unit key, newest record first.
    pub units: BTreeMap<String, Vec<UnitRecord>>,
}

/// Where a build dir's index lives: `<cache>/snapshots/<key>`.
pub fn index_path(
    cache_dir: &Path,
    build_dir: &[u8],
    workspace: &[u8],
    cargo_home: &[u8],
) -> PathBuf {
    let mut h = blake3::Hasher::new();
    for part in [build_dir, workspace, cargo_home] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    cache_dir
        .join("snapshots")
        .join(h.finalize().to_hex().as_str())
}

impl Index {
    pub fn decode(bytes: &[u8]) -> Option<Index> {
        let body = bytes.strip_prefix(MAGIC.as_slice())?;
        let index: Index = postcard::from_bytes(body).ok()?;
        (index.units.len() <= MAX_UNITS).then_some(index)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    /// The index at `path`; empty if there is none or it does not read.
    pub fn load(path: &Path) -> Index {
        match crate::util::read_capped(path, MAX_BYTES) {
            Ok(Some(b)) => Index::decode(&b).unwrap_or_else(|| {
                tracing::warn!("snapshot index {} does not read; ignored", path.display());
                Index::default()
            }),
            _ => Index::default(),
        }
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::fsutil::write_atomic(path, &self.encode())
    }

    /// Whether a record of `key` with this identity is kept.
    pub fn has(&self, key: &str, identity: &Digest) -> bool {
        self.units
            .get(key)
            .is_some_and(|v| v.iter().any(|r| &r.identity == identity))
    }

    /// Adds a record as the unit's newest, dropping an older one of the same identity and
    /// the oldest beyond [`RECORDS_PER_UNIT`]. A new unit beyond [`MAX_UNITS`] is not kept.
    pub fn add(&mut self, key: &str, record: UnitRecord) -> bool {
        if !self.units.contains_key(key) && self.units.len() >= MAX_UNITS {
            return false;
        }
        let v = self.units.entry(key.to_string()).or_default();
        v.retain(|r| r.identity != record.identity);
        v.insert(0, record);
        v.truncate(RECORDS_PER_UNIT);
        true
    }
}

impl Index {
    /// Drops the records that name a pack `have` says is gone (the store evicted it: the
    /// record could not be projected any more), and units left with none. Returns how many
    /// records went. This is what keeps an index from growing without bound as units come
    /// and go (dependency upgrades, other branches): their packs age out of the store.
    pub fn prune(&mut self, mut have: impl FnMut(&Digest) -> bool) -> usize {
        let mut known: std::collections::HashMap<Digest, bool> = Default::default();
        let mut dropped = 0;
        self.units.retain(|_, records| {
            records.retain(|r| {
                let ok = r
                    .files
                    .iter()
                    .all(|f| *known.entry(f.pack).or_insert_with(|| have(&f.pack)));
                dropped += usize::from(!ok);
                ok
            });
            !records.is_empty()
        });
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> UnitRecord {
        UnitRecord {
            identity: Digest([n; 32]),
            hashes: vec![("lib-x".into(), n as u64)],
            files: vec![SnapFile {
                rel: "debug/deps/libx-0123456789abcdef.rlib".into(),
                pack: Digest([9; 32]),
                index: 0,
                perm: 0o644,
                digest: Digest([n; 32]),
            }],
            dirs: vec!["debug".into()],
            inputs: vec![],
            absent: vec![],
            tools: Digest::default(),
            build_inputs: vec![],
            deps: vec![],
            env: vec![],
            recorded: 1,
        }
    }

    #[test]
    fn round_trips_and_refuses_other_bytes() {
        let mut i = Index::default();
        assert!(i.add("debug/x-0123456789abcdef", record(1)));
        let b = i.encode();
        assert_eq!(Index::decode(&b), Some(i));
        assert_eq!(Index::decode(&b[..b.len() - 1]), None);
        assert_eq!(Index::decode(b"ZCFSSNP2"), None);
        assert_eq!(Index::decode(b""), None);
        // No panic on any truncation or flipped byte.
        for n in 0..b.len() {
            let _ = Index::decode(&b[..n]);
            let mut c = b.clone();
            c[n] ^= 0xff;
            let _ = Index::decode(&c);
        }
    }

    #[test]
    fn records_whose_packs_are_gone_are_pruned() {
        let mut i = Index::default();
        i.add("a", record(1));
        let mut gone = record(2);
        gone.files[0].pack = Digest([7; 32]);
        i.add("a", gone.clone());
        i.add("b", gone);
        assert_eq!(i.prune(|p| *p != Digest([7; 32])), 2);
        assert_eq!(i.units.len(), 1);
        assert_eq!(i.units["a"].len(), 1);
        assert_eq!(i.units["a"][0].identity, Digest([1; 32]));
    }

    #[test]
    fn keeps_the_newest_records_of_a_unit() {
        let mut i = Index::default();
        for n in 0..6 {
            i.add("k", record(n));
        }
        i.add("k", record(3));
        let ids: Vec<u8> = i.units["k"].iter().map(|r| r.identity.0[0]).collect();
        assert_eq!(ids, vec![3, 5, 4, 2]);
        assert!(i.has("k", &Digest([4; 32])));
        assert!(!i.has("k", &Digest([0; 32])));
    }
}
