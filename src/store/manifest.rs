//! Direct-mode manifests (spec D1): for one key, the entries seen so far, each with the
//! inputs it was built from and the pack holding its result.

use serde::{Deserialize, Serialize};

use crate::hash::Digest;

pub const MAGIC: &[u8; 8] = b"ZCFSMAN4";
/// Entries kept per manifest; older ones are dropped first.
pub const MAX_ENTRIES: usize = 16;
/// Larger manifest files are not read (16 entries of a few thousand inputs fit easily).
pub const MAX_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDep {
    /// As spelled in the dep-info: relative to the compile's cwd, or absolute.
    pub path: Vec<u8>,
    pub size: u64,
    pub digest: Digest,
}

/// A path the entry was built under (spec X2). `strict`: the outputs or messages contain
/// it, so a hit needs the same value; otherwise it is recorded so that paths in the `.d`
/// and in `artifact` lines can be rewritten for another location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub name: String,
    pub value: Vec<u8>,
    pub strict: bool,
}

impl Binding {
    pub fn new(name: &str, value: &[u8], strict: bool) -> Binding {
        Binding {
            name: name.to_string(),
            value: value.to_vec(),
            strict,
        }
    }
}

/// What a compile read, recorded after it succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Inputs {
    pub files: Vec<FileDep>,
    /// Env vars read (`# env-dep`): `None` = unset, which differs from empty (spec K2).
    pub env: Vec<(String, Option<String>)>,
    /// Paths that must still not exist (spec D4).
    pub absent: Vec<Vec<u8>>,
    /// Paths that must still not exist, grouped under the directory that did (C headers:
    /// many candidates, few directories).
    pub absent_under: Vec<AbsentUnder>,
    pub bindings: Vec<Binding>,
    /// Further conditions (C and C++: see [`Check`]).
    pub checks: Vec<Check>,
}

/// A condition on the files around a C or C++ compile beyond their content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Check {
    /// Nothing but a directory (or nothing) at this path, as spelled: a header candidate
    /// where a directory was found, which the compilers skip in a search.
    NoFile(Vec<u8>),
    /// `#pragma once` decides by file identity: these files (indices into
    /// [`Inputs::files`]) must fall into the same classes of "the same file" as when the
    /// entry was made (`classes[i]`: the first position with the same identity). Identity
    /// is the inode (clang) or mtime in seconds, size and content (gcc).
    SameFiles {
        by_inode: bool,
        files: Vec<u32>,
        classes: Vec<u32>,
    },
}

/// Names that must not exist under a directory. While the directory keeps the recorded
/// inode, mtime and ctime, nothing was created in it, so none of them can exist (a name
/// with several components starts with one that did not exist); otherwise each is checked.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct AbsentUnder {
    /// As the compile spelled it (relative to its cwd, or absolute).
    pub dir: Vec<u8>,
    /// (ino, mtime ns, ctime ns) when it was recorded; `None`: not trusted (it changed
    /// during the compile, or lies in a mount), check every name.
    pub stamp: Option<(u64, i128, i128)>,
    pub names: Vec<Vec<u8>>,
    /// Which group this is among those decoded by this process (never stored; 0: none):
    /// lets the daemon remember that it verified the group since
    /// (`compiler::family::AbsentMemo`).
    #[serde(skip)]
    pub memo_id: u64,
}

/// The same group whatever its `memo_id`.
impl PartialEq for AbsentUnder {
    fn eq(&self, other: &AbsentUnder) -> bool {
        self.dir == other.dir && self.stamp == other.stamp && self.names == other.names
    }
}

impl Eq for AbsentUnder {}

/// Numbers decoded groups (see [`AbsentUnder::memo_id`]).
static NEXT_GROUP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub inputs: Inputs,
    pub pack: Digest,
    /// Unix seconds.
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    /// Newest first.
    pub entries: Vec<Entry>,
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend(postcard::to_stdvec(self).expect("manifest encodes"));
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Manifest> {
        let body = bytes.strip_prefix(MAGIC.as_slice())?;
        let mut m: Manifest = postcard::from_bytes(body).ok()?;
        for g in m
            .entries
            .iter_mut()
            .flat_map(|e| e.inputs.absent_under.iter_mut())
        {
            g.memo_id = NEXT_GROUP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Some(m)
    }

    /// Adds an entry in front, replacing an entry with identical inputs.
    pub fn add(&mut self, entry: Entry) {
        self.entries.retain(|e| e.inputs != entry.inputs);
        self.entries.insert(0, entry);
        self.entries.truncate(MAX_ENTRIES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> Entry {
        Entry {
            inputs: Inputs {
                files: vec![FileDep {
                    path: b"src/lib.rs".to_vec(),
                    size: 3,
                    digest: Digest([n; 32]),
                }],
                env: vec![("A".into(), None), ("B".into(), Some(String::new()))],
                absent: vec![b"src/lib/mod.rs".to_vec()],
                absent_under: vec![AbsentUnder {
                    dir: b"inc".to_vec(),
                    stamp: Some((1, 2, 3)),
                    names: vec![b"x.h".to_vec()],
                    memo_id: 0,
                }],
                bindings: vec![Binding::new("cwd", b"/w", true)],
                checks: vec![
                    Check::NoFile(b"inc/y.h".to_vec()),
                    Check::SameFiles {
                        by_inode: true,
                        files: vec![0, 3],
                        classes: vec![0, 0],
                    },
                ],
            },
            pack: Digest([n; 32]),
            created: n as u64,
        }
    }

    #[test]
    fn round_trip_and_replacement() {
        let mut m = Manifest::default();
        for n in 0..20 {
            m.add(entry(n));
        }
        assert_eq!(m.entries.len(), MAX_ENTRIES);
        assert_eq!(m.entries[0].created, 19);
        m.add(Entry {
            created: 99,
            ..entry(19)
        });
        assert_eq!(m.entries.len(), MAX_ENTRIES);
        assert_eq!(m.entries[0].created, 99);
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes), Some(m));
        assert_eq!(Manifest::decode(b"garbage"), None);
        assert_eq!(Manifest::decode(&bytes[..bytes.len() - 3]), None);
    }
}
