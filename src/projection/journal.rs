//! The projection journal of a mount: an append-only log of changes to projections,
//! replayed at mount and compacted into a snapshot. See `docs/mount.md` ("Persistence").
//!
//! File format: `"ZCFSJNL1"`, then records, each `len u32 | check u32 | postcard(Record)`
//! where `check` is the first 4 bytes of the record's blake3. Replay stops at the first
//! torn or corrupt record (a crash mid-append) and the file is cut there.
//!
//! The journal holds no state of its own: the mount's table is the truth, and compaction
//! writes a snapshot of the table. An append that fails (a full disk) is cut off again, so
//! the file never holds a torn record; the caller then compacts from the table or, if that
//! fails too, empties the journal (see `Vfs::journal_after`).

use crate::os::OsStrExt;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use super::model::Meta;
use crate::hash::Digest;

const MAGIC: &[u8; 8] = b"ZCFSJNL1";
/// Larger journal files are not read (a compacted journal of a million projections is
/// about 150 MB); the mount then starts without projections.
pub const MAX_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// A new projection with its first name.
    Put {
        id: u64,
        path: Vec<u8>,
        pack: Digest,
        index: u32,
        size: u64,
        meta: Meta,
    },
    /// Another name (hard link) for a projection.
    AddName {
        id: u64,
        path: Vec<u8>,
    },
    /// A name goes away; a projection without names is gone.
    RemoveName {
        path: Vec<u8>,
    },
    /// A projected name moves.
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    /// A directory moves: every projected name under `from/` moves under `to/`.
    RenameDir {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    SetMeta {
        id: u64,
        meta: Meta,
    },
    /// The projection became a real file (copy-up): it and all its names are gone.
    Drop {
        id: u64,
    },
}

/// The state a journal describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proj {
    pub pack: Digest,
    pub index: u32,
    pub size: u64,
    pub meta: Meta,
    pub names: Vec<Vec<u8>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct State {
    pub projections: BTreeMap<u64, Proj>,
}

impl State {
    pub fn apply(&mut self, r: &Record) {
        match r {
            Record::Put {
                id,
                path,
                pack,
                index,
                size,
                meta,
            } => {
                self.remove_name(path);
                self.projections.insert(
                    *id,
                    Proj {
                        pack: *pack,
                        index: *index,
                        size: *size,
                        meta: *meta,
                        names: vec![path.clone()],
                    },
                );
            }
            Record::AddName { id, path } => {
                self.remove_name(path);
                if let Some(p) = self.projections.get_mut(id) {
                    p.names.push(path.clone());
                }
            }
            Record::RemoveName { path } => self.remove_name(path),
            Record::Rename { from, to } => {
                if from == to {
                    return;
                }
                self.remove_name(to);
                for p in self.projections.values_mut() {
                    for n in &mut p.names {
                        if n == from {
                            *n = to.clone();
                        }
                    }
                }
            }
            Record::RenameDir { from, to } => {
                let mut prefix = from.clone();
                prefix.push(b'/');
                for p in self.projections.values_mut() {
                    for n in &mut p.names {
                        if n.starts_with(&prefix) {
                            let mut new = to.clone();
                            new.extend_from_slice(&n[from.len()..]);
                            *n = new;
                        }
                    }
                }
            }
            Record::SetMeta { id, meta } => {
                if let Some(p) = self.projections.get_mut(id) {
                    p.meta = *meta;
                }
            }
            Record::Drop { id } => {
                self.projections.remove(id);
            }
        }
    }

    fn remove_name(&mut self, path: &[u8]) {
        self.projections.retain(|_, p| {
            p.names.retain(|n| n != path);
            !p.names.is_empty()
        });
    }

    /// Records that rebuild this state from nothing.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for (id, p) in &self.projections {
            let mut names = p.names.iter();
            let Some(first) = names.next() else { continue };
            out.push(Record::Put {
                id: *id,
                path: first.clone(),
                pack: p.pack,
                index: p.index,
                size: p.size,
                meta: p.meta,
            });
            for n in names {
                out.push(Record::AddName {
                    id: *id,
                    path: n.clone(),
                });
            }
        }
        out
    }

    pub fn max_id(&self) -> u64 {
        self.projections.keys().next_back().copied().unwrap_or(0)
    }
}

fn encode(r: &Record) -> Vec<u8> {
    let body = postcard::to_stdvec(r).expect("journal records encode");
    let hash = blake3::hash(&body);
    let check = &hash.as_bytes()[..4];
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(check);
    out.extend_from_slice(&body);
    out
}

/// Replays journal bytes into a state; returns the state and the length of the valid
/// prefix (0 if the bytes are not a journal). Never panics, whatever the bytes.
pub fn parse(bytes: &[u8]) -> (State, u64) {
    let mut state = State::default();
    if !bytes.starts_with(MAGIC) {
        return (state, 0);
    }
    let mut pos = MAGIC.len();
    while let Some(head) = bytes.get(pos..pos + 8) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(body) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if blake3::hash(body).as_bytes()[..4] != head[4..8] {
            break;
        }
        let Ok(r) = postcard::from_bytes::<Record>(body) else {
            break;
        };
        state.apply(&r);
        pos += 8 + len;
    }
    (state, pos as u64)
}

/// Reads a journal file into a state; returns the state and the length of the valid prefix.
pub fn read(path: &Path) -> io::Result<(State, u64)> {
    match crate::util::read_capped(path, MAX_BYTES) {
        Ok(Some(bytes)) => Ok(parse(&bytes)),
        Ok(None) => Ok((State::default(), 0)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((State::default(), 0)),
        Err(e) => Err(e),
    }
}

/// An open journal being appended to.
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Length of the file up to its last complete record.
    len: u64,
    appended: u64,
}

impl Journal {
    /// Opens (creating) a journal, replays it, and cuts off a torn tail. Returns the state
    /// it described.
    pub fn open(path: &Path) -> io::Result<(Journal, State)> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let (state, valid) = read(path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = if valid == 0 {
            file.set_len(0)?;
            file.write_all(MAGIC)?;
            MAGIC.len() as u64
        } else {
            file.set_len(valid)?;
            valid
        };
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(len))?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                len,
                appended: 0,
            },
            state,
        ))
    }

    /// Appends a record (no fsync: the journal survives the daemon's death, not a power
    /// loss). On failure the file is cut back to its last complete record.
    pub fn append(&mut self, r: &Record) -> io::Result<()> {
        let bytes = encode(r);
        use crate::os::FileAt;
        if let Err(e) = self.file.write_all_at(&bytes, self.len) {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.appended += 1;
        Ok(())
    }

    /// Records appended since the last compaction.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Rewrites the journal as the given snapshot (temp + fsync + rename).
    pub fn compact(&mut self, snapshot: impl IntoIterator<Item = Record>) -> io::Result<()> {
        let mut bytes = MAGIC.to_vec();
        for r in snapshot {
            bytes.extend(encode(&r));
        }
        crate::fsutil::write_atomic(&self.path, &bytes)?;
        self.file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        self.len = bytes.len() as u64;
        self.appended = 0;
        Ok(())
    }

    /// Empties the journal in place (needs no free space): a later mount finds no
    /// projections, which makes cargo rebuild those units, never see a stale one.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(MAGIC.len() as u64)?;
        self.len = MAGIC.len() as u64;
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// A relative path as journal bytes.
pub fn path_bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(t: i128) -> Meta {
        Meta {
            perm: 0o644,
            uid: 0,
            gid: 0,
            atime: t,
            mtime: t,
            ctime: t,
        }
    }

    fn put(id: u64, path: &str) -> Record {
        Record::Put {
            id,
            path: path.as_bytes().to_vec(),
            pack: Digest([id as u8; 32]),
            index: 0,
            size: 10,
            meta: meta(id as i128),
        }
    }

    #[test]
    fn replay_renames_links_and_drops() {
        let mut s = State::default();
        s.apply(&put(1, "deps/a"));
        s.apply(&put(2, "deps/b"));
        s.apply(&Record::AddName {
            id: 1,
            path: b"debug/a".to_vec(),
        });
        s.apply(&Record::Rename {
            from: b"deps/b".to_vec(),
            to: b"deps/c".to_vec(),
        });
        s.apply(&Record::RenameDir {
            from: b"deps".to_vec(),
            to: b"old".to_vec(),
        });
        assert_eq!(
            s.projections[&1].names,
            vec![b"old/a".to_vec(), b"debug/a".to_vec()]
        );
        assert_eq!(s.projections[&2].names, vec![b"old/c".to_vec()]);
        // A put onto an existing name replaces that name.
        s.apply(&put(3, "old/c"));
        assert!(!s.projections.contains_key(&2));
        s.apply(&Record::RemoveName {
            path: b"old/a".to_vec(),
        });
        assert_eq!(s.projections[&1].names.len(), 1);
        s.apply(&Record::SetMeta {
            id: 1,
            meta: meta(99),
        });
        assert_eq!(s.projections[&1].meta.mtime, 99);
        s.apply(&Record::Drop { id: 1 });
        assert_eq!(s.projections.len(), 1);
        assert_eq!(s.max_id(), 3);
    }

    #[test]
    fn file_round_trip_torn_tail_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        {
            let (mut j, _) = Journal::open(&p).unwrap();
            j.append(&put(1, "a")).unwrap();
            j.append(&put(2, "b")).unwrap();
            j.append(&Record::RemoveName {
                path: b"a".to_vec(),
            })
            .unwrap();
        }
        // A torn append at the end is ignored and cut off.
        let mut bytes = std::fs::read(&p).unwrap();
        let whole = bytes.len();
        bytes.extend_from_slice(&encode(&put(3, "c"))[..7]);
        std::fs::write(&p, &bytes).unwrap();
        let (s, valid) = read(&p).unwrap();
        assert_eq!(valid as usize, whole);
        assert_eq!(s.projections.len(), 1);
        let (mut j, mut state) = Journal::open(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len() as usize, whole);
        j.append(&put(4, "d")).unwrap();
        state.apply(&put(4, "d"));
        j.compact(state.snapshot()).unwrap();
        let (s2, _) = read(&p).unwrap();
        assert_eq!(s2, state);
        assert_eq!(s2.projections.len(), 2);
        j.clear().unwrap();
        assert_eq!(read(&p).unwrap().0, State::default());
        // Garbage is an empty journal, not an error.
        std::fs::write(&p, b"not a journal").unwrap();
        assert_eq!(read(&p).unwrap().0, State::default());
    }
}
