//! Pack files: one immutable file per compile result. See `docs/store.md`.
//!
//! ```text
//! offset 0   magic "ZCFSPAK1"
//!        8   format version u32
//!       12   header length u32 (bytes from 0 to the end of `meta`)
//!       16   entry count u32
//!       20   reserved u32
//!       24   stdout length u64
//!       32   stderr length u64
//!       40   meta length u32, reserved u32
//!       48   blake3 of the header with these 32 bytes zeroed
//!       80   entries: name_len u16, mode u32, size u64, offset u64, blake3 [32], name
//!            stdout, stderr, meta
//!            zero padding to 4096
//!            payloads, each at a 4096-aligned offset, zero-padded to a multiple of 4096
//! ```
//!
//! Payloads are aligned so they can be mapped and reflinked (FICLONERANGE needs aligned
//! ranges); the padding after each payload lets a clone cover whole blocks.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use crate::hash::Digest;
use crate::hashcache::FileStat;

pub const MAGIC: &[u8; 8] = b"ZCFSPAK1";
pub const FORMAT_VERSION: u32 = 1;
pub const ALIGN: u64 = 4096;
const FIXED: usize = 80;
const ENTRY_FIXED: usize = 2 + 4 + 8 + 8 + 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackEntry {
    /// File name relative to the out-dir.
    pub name: String,
    pub mode: u32,
    pub size: u64,
    pub offset: u64,
    pub digest: Digest,
}

impl PackEntry {
    /// The payload length rounded up to the alignment (the padding is zeros).
    pub fn padded_size(&self) -> u64 {
        round_up(self.size)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackHeader {
    pub entries: Vec<PackEntry>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Free-form metadata (JSON) describing the compile, for humans and tools.
    pub meta: Vec<u8>,
}

pub fn round_up(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("corrupt pack: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn corrupt(msg: impl Into<String>) -> PackError {
    PackError::Corrupt(msg.into())
}

impl PackHeader {
    fn encoded_len(&self) -> usize {
        FIXED
            + self
                .entries
                .iter()
                .map(|e| ENTRY_FIXED + e.name.len())
                .sum::<usize>()
            + self.stdout.len()
            + self.stderr.len()
            + self.meta.len()
    }

    /// Where payloads start.
    pub fn payload_start(&self) -> u64 {
        round_up(self.encoded_len() as u64)
    }

    /// Encodes the header and returns it with its digest (which is also the pack's id).
    pub fn encode(&self) -> (Vec<u8>, Digest) {
        let mut b = Vec::with_capacity(self.encoded_len());
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&(self.encoded_len() as u32).to_le_bytes());
        b.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(self.stdout.len() as u64).to_le_bytes());
        b.extend_from_slice(&(self.stderr.len() as u64).to_le_bytes());
        b.extend_from_slice(&(self.meta.len() as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&[0u8; 32]);
        for e in &self.entries {
            b.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            b.extend_from_slice(&e.mode.to_le_bytes());
            b.extend_from_slice(&e.size.to_le_bytes());
            b.extend_from_slice(&e.offset.to_le_bytes());
            b.extend_from_slice(&e.digest.0);
            b.extend_from_slice(e.name.as_bytes());
        }
        b.extend_from_slice(&self.stdout);
        b.extend_from_slice(&self.stderr);
        b.extend_from_slice(&self.meta);
        let digest = Digest::of(&b);
        b[48..80].copy_from_slice(&digest.0);
        (b, digest)
    }

    /// Decodes and checks a header: magic, version, digest, and that every entry lies inside
    /// a file of `file_len` bytes at an aligned offset.
    pub fn decode(bytes: &[u8], file_len: u64) -> Result<(PackHeader, Digest), PackError> {
        if bytes.len() < FIXED || &bytes[0..8] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        if u32_at(8) != FORMAT_VERSION {
            return Err(corrupt(format!("unknown format version {}", u32_at(8))));
        }
        let header_len = u32_at(12) as usize;
        if header_len > bytes.len() || header_len < FIXED {
            return Err(corrupt("header length out of range"));
        }
        let bytes = &bytes[..header_len];
        let mut check = bytes.to_vec();
        check[48..80].fill(0);
        let digest = Digest::of(&check);
        if bytes[48..80] != digest.0 {
            return Err(corrupt("header checksum mismatch"));
        }
        let count = u32_at(16) as usize;
        let stdout_len = u64_at(24) as usize;
        let stderr_len = u64_at(32) as usize;
        let meta_len = u32_at(40) as usize;
        let mut pos = FIXED;
        let mut entries = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            if pos + ENTRY_FIXED > bytes.len() {
                return Err(corrupt("entry table truncated"));
            }
            let name_len = u16::from_le_bytes(bytes[pos..pos + 2].try_into().unwrap()) as usize;
            let mode = u32::from_le_bytes(bytes[pos + 2..pos + 6].try_into().unwrap());
            let size = u64::from_le_bytes(bytes[pos + 6..pos + 14].try_into().unwrap());
            let offset = u64::from_le_bytes(bytes[pos + 14..pos + 22].try_into().unwrap());
            let digest = Digest(bytes[pos + 22..pos + 54].try_into().unwrap());
            pos += ENTRY_FIXED;
            if pos + name_len > bytes.len() {
                return Err(corrupt("entry name truncated"));
            }
            let name = std::str::from_utf8(&bytes[pos..pos + name_len])
                .map_err(|_| corrupt("entry name not UTF-8"))?
                .to_string();
            pos += name_len;
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(corrupt(format!("bad entry name {name:?}")));
            }
            if offset % ALIGN != 0
                || offset < round_up(header_len as u64)
                || offset
                    .checked_add(round_up(size))
                    .is_none_or(|end| end > file_len)
            {
                return Err(corrupt(format!("entry {name} out of bounds")));
            }
            entries.push(PackEntry {
                name,
                mode,
                size,
                offset,
                digest,
            });
        }
        if pos + stdout_len + stderr_len + meta_len != header_len {
            return Err(corrupt("header sections do not add up"));
        }
        let stdout = bytes[pos..pos + stdout_len].to_vec();
        pos += stdout_len;
        let stderr = bytes[pos..pos + stderr_len].to_vec();
        pos += stderr_len;
        let meta = bytes[pos..pos + meta_len].to_vec();
        Ok((
            PackHeader {
                entries,
                stdout,
                stderr,
                meta,
            },
            digest,
        ))
    }
}

/// A source file to put into a pack.
pub struct Source<'a> {
    pub name: String,
    pub file: &'a File,
}

/// What was written: the header, its id, and the stat of each source as copied.
pub struct Written {
    pub header: PackHeader,
    pub id: Digest,
    pub size: u64,
    pub source_stats: Vec<FileStat>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0} changed while it was being stored")]
    SourceChanged(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes a pack into `out` (an empty file). Each source is copied while it is hashed, and its
/// stat is compared before and after, so the stored digest is that of the stored bytes and
/// of a file that did not change meanwhile.
pub fn write(
    out: &File,
    sources: &[Source<'_>],
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    meta: Vec<u8>,
) -> Result<Written, WriteError> {
    let mut header = PackHeader {
        entries: Vec::with_capacity(sources.len()),
        stdout,
        stderr,
        meta,
    };
    let mut stats = Vec::with_capacity(sources.len());
    let mut metas = Vec::with_capacity(sources.len());
    for s in sources {
        let m = s.file.metadata()?;
        header.entries.push(PackEntry {
            name: s.name.clone(),
            mode: m.mode() & 0o7777,
            size: m.len(),
            offset: 0,
            digest: Digest::default(),
        });
        metas.push(FileStat::of(&m));
    }
    let mut offset = header.payload_start();
    let mut buf = vec![0u8; 1 << 20];
    for (i, s) in sources.iter().enumerate() {
        let entry = &mut header.entries[i];
        entry.offset = offset;
        let mut hasher = blake3::Hasher::new();
        let mut done = 0u64;
        while done < entry.size {
            let want = (entry.size - done).min(buf.len() as u64) as usize;
            let n = s.file.read_at(&mut buf[..want], done)?;
            if n == 0 {
                return Err(WriteError::SourceChanged(s.name.clone()));
            }
            hasher.update(&buf[..n]);
            out.write_all_at(&buf[..n], offset + done)?;
            done += n as u64;
        }
        let after = FileStat::of(&s.file.metadata()?);
        if after != metas[i] {
            return Err(WriteError::SourceChanged(s.name.clone()));
        }
        stats.push(after);
        entry.digest = hasher.finalize().into();
        offset += entry.padded_size();
    }
    // Size the file so the last payload's padding exists (reads of it give zeros).
    out.set_len(offset)?;
    let (bytes, id) = header.encode();
    out.write_all_at(&bytes, 0)?;
    Ok(Written {
        header,
        id,
        size: offset,
        source_stats: stats,
    })
}

/// Which needles occur in a pack being written (`file`, described by `header`): in the
/// payloads whose name passes `scan`, or in one of `extra`. Returns one flag per needle.
pub fn find_in_payloads(
    file: &File,
    header: &PackHeader,
    scan: impl Fn(&str) -> bool,
    extra: &[&[u8]],
    needles: &[&[u8]],
) -> io::Result<Vec<bool>> {
    let mut found = vec![false; needles.len()];
    let finders: Vec<memchr::memmem::Finder<'_>> =
        needles.iter().map(memchr::memmem::Finder::new).collect();
    let check = |hay: &[u8], found: &mut Vec<bool>| {
        for (i, f) in finders.iter().enumerate() {
            if !found[i] && f.find(hay).is_some() {
                found[i] = true;
            }
        }
    };
    for hay in extra {
        check(hay, &mut found);
    }
    if header.entries.iter().all(|e| e.size == 0 || !scan(&e.name)) {
        return Ok(found);
    }
    // SAFETY: the temp file is ours and not modified while mapped.
    let map = unsafe { memmap2::Mmap::map(file)? };
    for e in &header.entries {
        if found.iter().all(|f| *f) {
            break;
        }
        if scan(&e.name) {
            let end = (e.offset + e.size) as usize;
            let hay = map
                .get(e.offset as usize..end)
                .ok_or_else(|| io::Error::other("pack shorter than its header says"))?;
            check(hay, &mut found);
        }
    }
    Ok(found)
}

/// An open, mapped pack.
pub struct Pack {
    pub id: Digest,
    pub header: PackHeader,
    pub file: File,
    map: memmap2::Mmap,
}

impl std::fmt::Debug for Pack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pack").field("id", &self.id).finish()
    }
}

impl Pack {
    /// Opens and maps a pack, checking its header (not yet its payloads).
    pub fn open(path: &Path) -> Result<Pack, PackError> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len < FIXED as u64 {
            return Err(corrupt("file too short"));
        }
        // SAFETY: packs are immutable and never truncated (only unlinked), so the map stays
        // valid; see docs/store.md.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let (header, id) = PackHeader::decode(&map, len)?;
        Ok(Pack {
            id,
            header,
            file,
            map,
        })
    }

    pub fn payload(&self, i: usize) -> &[u8] {
        let e = &self.header.entries[i];
        &self.map[e.offset as usize..(e.offset + e.size) as usize]
    }

    /// Checks every payload against its blake3.
    pub fn verify(&self) -> Result<(), PackError> {
        for (i, e) in self.header.entries.iter().enumerate() {
            if Digest::of(self.payload(i)) != e.digest {
                return Err(corrupt(format!(
                    "payload {} does not match its digest",
                    e.name
                )));
            }
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.map.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample(dir: &Path) -> (std::path::PathBuf, Written) {
        let mut a = File::create(dir.join("a")).unwrap();
        a.write_all(b"hello rlib").unwrap();
        let mut b = File::create(dir.join("b")).unwrap();
        b.write_all(&vec![7u8; 5000]).unwrap();
        let a = File::open(dir.join("a")).unwrap();
        let b = File::open(dir.join("b")).unwrap();
        let out_path = dir.join("p.pack");
        let out = File::create(&out_path).unwrap();
        let w = write(
            &out,
            &[
                Source {
                    name: "libx.rlib".into(),
                    file: &a,
                },
                Source {
                    name: "x.d".into(),
                    file: &b,
                },
            ],
            b"out".to_vec(),
            b"{\"$message_type\":\"artifact\"}\n".to_vec(),
            b"{}".to_vec(),
        )
        .unwrap();
        (out_path, w)
    }

    #[test]
    fn round_trip_and_alignment() {
        let dir = tempfile::tempdir().unwrap();
        let (path, w) = sample(dir.path());
        let p = Pack::open(&path).unwrap();
        assert_eq!(p.id, w.id);
        assert_eq!(p.header, w.header);
        p.verify().unwrap();
        assert_eq!(p.payload(0), b"hello rlib");
        assert_eq!(p.payload(1), &vec![7u8; 5000][..]);
        for e in &p.header.entries {
            assert_eq!(e.offset % ALIGN, 0);
        }
        assert_eq!(p.size() % ALIGN, 0);
        assert_eq!(p.header.stdout, b"out");
    }

    #[test]
    fn corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (path, w) = sample(dir.path());
        // Flip a payload byte: header still fine, verify fails.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"J", w.header.entries[0].offset).unwrap();
        let p = Pack::open(&path).unwrap();
        assert!(matches!(p.verify(), Err(PackError::Corrupt(_))));
        // Flip a header byte: open fails.
        f.write_all_at(b"\xff", 90).unwrap();
        assert!(matches!(Pack::open(&path), Err(PackError::Corrupt(_))));
        // Truncate: open fails, never maps past the end.
        f.set_len(100).unwrap();
        assert!(matches!(Pack::open(&path), Err(PackError::Corrupt(_))));
        f.set_len(10).unwrap();
        assert!(matches!(Pack::open(&path), Err(PackError::Corrupt(_))));
    }

    #[test]
    fn header_decode_rejects_escaping_names() {
        let h = PackHeader {
            entries: vec![PackEntry {
                name: "../x".into(),
                mode: 0o644,
                size: 1,
                offset: ALIGN,
                digest: Digest::default(),
            }],
            stdout: vec![],
            stderr: vec![],
            meta: vec![],
        };
        let (bytes, _) = h.encode();
        assert!(PackHeader::decode(&bytes, 2 * ALIGN).is_err());
    }
}
