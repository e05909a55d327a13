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

use crate::os::FileAt;
use std::fs::File;
use std::io;
use std::path::Path;

use crate::hash::Digest;
use crate::os::FileStat;

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
    /// The payload length rounded up to the alignment (the padding is zeros). Entries of
    /// decoded headers are checked to end inside their file, so this does not overflow.
    pub fn padded_size(&self) -> u64 {
        round_up(self.size).unwrap_or(u64::MAX)
    }

    /// The payload's byte range in the pack file.
    fn range(&self) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(self.offset).ok()?;
        let end = usize::try_from(self.offset.checked_add(self.size)?).ok()?;
        Some(start..end)
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

/// `n` rounded up to the alignment; `None` if that does not fit in a u64.
pub fn round_up(n: u64) -> Option<u64> {
    n.div_ceil(ALIGN).checked_mul(ALIGN)
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
        (self.encoded_len() as u64).div_ceil(ALIGN) * ALIGN
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
    /// a file of `file_len` bytes at an aligned offset. The bytes come from disk (and may come
    /// from a remote store): every size and offset is checked before it is used.
    pub fn decode(bytes: &[u8], file_len: u64) -> Result<(PackHeader, Digest), PackError> {
        if bytes.len() < FIXED || &bytes[0..8] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        if u32_at(8) != FORMAT_VERSION {
            return Err(corrupt(format!("unknown format version {}", u32_at(8))));
        }
        let header_len = u32_at(12) as usize;
        if header_len > bytes.len() || header_len < FIXED {
            return Err(corrupt("header length out of range"));
        }
        let count = u32_at(16) as usize;
        let stdout_len = u64_at(24);
        let stderr_len = u64_at(32);
        let meta_len = u32_at(40) as u64;
        let bytes = &bytes[..header_len];
        let mut check = bytes.to_vec();
        check[48..80].fill(0);
        let digest = Digest::of(&check);
        if bytes[48..80] != digest.0 {
            return Err(corrupt("header checksum mismatch"));
        }
        let payload_start = (header_len as u64).div_ceil(ALIGN) * ALIGN;
        let mut r = Reader { bytes, pos: FIXED };
        let mut entries = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            let fixed = r
                .take(ENTRY_FIXED)
                .ok_or_else(|| corrupt("entry table truncated"))?;
            let name_len = u16::from_le_bytes([fixed[0], fixed[1]]) as usize;
            let mode = u32::from_le_bytes([fixed[2], fixed[3], fixed[4], fixed[5]]);
            let mut n8 = [0u8; 8];
            n8.copy_from_slice(&fixed[6..14]);
            let size = u64::from_le_bytes(n8);
            n8.copy_from_slice(&fixed[14..22]);
            let offset = u64::from_le_bytes(n8);
            let mut d = [0u8; 32];
            d.copy_from_slice(&fixed[22..54]);
            let name = r
                .take(name_len)
                .ok_or_else(|| corrupt("entry name truncated"))?;
            let name = std::str::from_utf8(name)
                .map_err(|_| corrupt("entry name not UTF-8"))?
                .to_string();
            if name.is_empty()
                || name.contains('/')
                || name.contains('\0')
                || name == "."
                || name == ".."
            {
                return Err(corrupt(format!("bad entry name {name:?}")));
            }
            let end = round_up(size).and_then(|padded| offset.checked_add(padded));
            if offset % ALIGN != 0 || offset < payload_start || end.is_none_or(|end| end > file_len)
            {
                return Err(corrupt(format!("entry {name} out of bounds")));
            }
            entries.push(PackEntry {
                name,
                mode,
                size,
                offset,
                digest: Digest(d),
            });
        }
        let rest = (r.bytes.len() - r.pos) as u64;
        if stdout_len
            .checked_add(stderr_len)
            .and_then(|n| n.checked_add(meta_len))
            != Some(rest)
        {
            return Err(corrupt("header sections do not add up"));
        }
        // Each length is at most `rest` now, so the conversions and takes succeed.
        let mut section = |len: u64| {
            r.take(len as usize)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| corrupt("header section truncated"))
        };
        let stdout = section(stdout_len)?;
        let stderr = section(stderr_len)?;
        let meta = section(meta_len)?;
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

/// Checks a pack as its bytes arrive (a download), so that no byte is read twice: the
/// header (its digest must be the id asked for: a wrong object is refused after its first
/// few KiB), every payload against its digest, and the canonical layout ([`write`]'s:
/// payloads in order from the first aligned offset after the header, zero padding,
/// nothing after the last payload). Bytes are passed on to `out` as they are checked.
pub struct StreamCheck<W> {
    out: W,
    want: Digest,
    /// Bytes before the header is complete.
    head: Vec<u8>,
    header: Option<PackHeader>,
    header_len: u64,
    /// Bytes seen so far.
    at: u64,
    /// The entry being received, its hasher, and whether its digest was checked.
    entry: usize,
    hasher: blake3::Hasher,
    checked: bool,
    /// Why the bytes were refused, once they were.
    refused: Option<String>,
}

impl<W: io::Write> StreamCheck<W> {
    /// Why the stream was refused, if it was (as opposed to failing to be written).
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    pub fn new(out: W, want: Digest) -> StreamCheck<W> {
        StreamCheck {
            out,
            want,
            head: Vec::new(),
            header: None,
            header_len: 0,
            at: 0,
            entry: 0,
            hasher: blake3::Hasher::new(),
            checked: false,
            refused: None,
        }
    }

    fn bad(msg: impl Into<String>) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("corrupt pack: {}", msg.into()),
        )
    }

    /// (payload end, padding end, digest, name) of the current entry.
    fn current(&self) -> Option<(u64, u64, Digest, String)> {
        let e = self.header.as_ref()?.entries.get(self.entry)?;
        Some((
            e.offset + e.size,
            e.offset + e.padded_size(),
            e.digest,
            e.name.clone(),
        ))
    }

    /// Checks the digest of a payload just completed, and moves past entries whose bytes
    /// are all in (empty payloads included).
    fn settle(&mut self) -> io::Result<()> {
        while let Some((end, padded, digest, name)) = self.current() {
            if self.at >= end && !self.checked {
                let got = Digest::from(std::mem::take(&mut self.hasher).finalize());
                if got != digest {
                    return Err(Self::bad(format!(
                        "payload {name} does not match its digest"
                    )));
                }
                self.checked = true;
            }
            if !(self.checked && self.at == padded) {
                break;
            }
            self.entry += 1;
            self.checked = false;
        }
        Ok(())
    }

    /// Checks `buf`, which starts at offset `self.at`, once the header is known.
    fn body(&mut self, mut buf: &[u8]) -> io::Result<()> {
        let first = round_up(self.header_len).ok_or_else(|| Self::bad("header length"))?;
        loop {
            self.settle()?;
            if buf.is_empty() {
                return Ok(());
            }
            let zeros_to = if self.at < first {
                Some(first)
            } else {
                let (end, padded, _, _) =
                    self.current().ok_or_else(|| Self::bad("trailing bytes"))?;
                if self.at < end {
                    let n = (end - self.at).min(buf.len() as u64) as usize;
                    self.hasher.update(&buf[..n]);
                    buf = &buf[n..];
                    self.at += n as u64;
                    None
                } else {
                    Some(padded)
                }
            };
            if let Some(to) = zeros_to {
                let n = (to - self.at).min(buf.len() as u64) as usize;
                if buf[..n].iter().any(|&b| b != 0) {
                    return Err(Self::bad("non-zero padding"));
                }
                buf = &buf[n..];
                self.at += n as u64;
            }
        }
    }

    /// The end of the stream: every payload complete. Returns `out`.
    pub fn finish(mut self) -> io::Result<W> {
        if self.header.is_none() {
            return Err(Self::bad("truncated header"));
        }
        self.settle()?;
        let entries = self.header.as_ref().map_or(0, |h| h.entries.len());
        if self.entry != entries || self.at < round_up(self.header_len).unwrap_or(u64::MAX) {
            return Err(Self::bad("truncated"));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: io::Write> io::Write for StreamCheck<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(why) = &self.refused {
            return Err(Self::bad(why.clone()));
        }
        self.out.write_all(buf)?;
        let r = self.check(buf);
        if let Err(e) = &r {
            self.refused = Some(e.to_string());
        }
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: io::Write> StreamCheck<W> {
    fn check(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.header.is_some() {
            self.body(buf)?;
            return Ok(buf.len());
        }
        self.head.extend_from_slice(buf);
        if self.header_len == 0 && self.head.len() >= 16 {
            self.header_len =
                u32::from_le_bytes([self.head[12], self.head[13], self.head[14], self.head[15]])
                    as u64;
            if self.header_len < FIXED as u64 || self.header_len > MAX_HEADER {
                return Err(Self::bad("header length out of range"));
            }
        }
        if self.header_len > 0 && self.head.len() as u64 >= self.header_len {
            let (header, id) =
                PackHeader::decode(&self.head, u64::MAX).map_err(|e| Self::bad(e.to_string()))?;
            if id != self.want {
                return Err(Self::bad("not the pack asked for"));
            }
            // Canonical layout: each payload right after the previous one's padding.
            let mut at = round_up(self.header_len).ok_or_else(|| Self::bad("header length"))?;
            for e in &header.entries {
                if e.offset != at {
                    return Err(Self::bad(format!("entry {} not where it belongs", e.name)));
                }
                at = e
                    .offset
                    .checked_add(e.padded_size())
                    .ok_or_else(|| Self::bad("entry out of range"))?;
            }
            let rest = self.head.split_off(self.header_len as usize);
            self.head = Vec::new();
            self.at = self.header_len;
            self.header = Some(header);
            self.body(&rest)?;
        }
        Ok(buf.len())
    }
}

/// Header bytes a stream may hold before it is decoded (names, stdout, stderr, metadata).
const MAX_HEADER: u64 = 64 << 20;

/// A cursor over header bytes whose every step is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
}

/// A source file to put into a pack.
pub struct Source<'a> {
    pub name: String,
    pub file: &'a File,
}

/// Where a pack comes from by its id (the store, in the daemon; a mount's journal replay
/// asks it for the packs its projections name).
pub trait PackSource: Send + Sync {
    fn open(&self, id: &Digest) -> Option<std::sync::Arc<Pack>>;
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
            mode: crate::os::file_mode(&m),
            size: m.len(),
            offset: 0,
            digest: Digest::default(),
        });
        metas.push(FileStat::of_file(s.file, &m)?);
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
        let after = FileStat::of_file(s.file, &s.file.metadata()?)?;
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

/// What a search of a pack's payloads found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// One flag per needle.
    pub found: Vec<bool>,
    /// A searched payload holds content a byte search cannot see (compressed sections,
    /// see [`crate::binfmt`]): what and where.
    pub hidden: Option<String>,
}

/// Which needles occur in a pack being written (`file`, described by `header`): in the
/// payloads whose name passes `scan`, or in one of `extra`; and whether a scanned payload
/// may hide bytes from the search.
pub fn find_in_payloads(
    file: &File,
    header: &PackHeader,
    scan: impl Fn(&str) -> bool,
    extra: &[&[u8]],
    needles: &[&[u8]],
) -> io::Result<Search> {
    let mut found = vec![false; needles.len()];
    let mut hidden = None;
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
        return Ok(Search { found, hidden });
    }
    // SAFETY: the temp file is ours and not modified while mapped.
    let map = unsafe { memmap2::Mmap::map(file)? };
    for e in &header.entries {
        if found.iter().all(|f| *f) {
            break;
        }
        if scan(&e.name) {
            let hay = e
                .range()
                .and_then(|r| map.get(r))
                .ok_or_else(|| io::Error::other("pack shorter than its header says"))?;
            if hidden.is_none() {
                hidden = crate::binfmt::hidden_content(hay).map(|why| format!("{}: {why}", e.name));
            }
            check(hay, &mut found);
        }
    }
    Ok(Search { found, hidden })
}

/// An open, mapped pack. It keeps no file descriptor (a mount may use thousands of packs):
/// the map stays valid after the file is closed, and copies that want a descriptor (a
/// reflink) reopen the file by its path.
pub struct Pack {
    pub id: Digest,
    pub header: PackHeader,
    pub path: std::path::PathBuf,
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
            path: path.to_path_buf(),
            map,
        })
    }

    /// Copies entry `i` into the start of the empty file `dst`: a reflink of the pack file
    /// if it is still there and the filesystem can, else a copy from the map.
    pub fn copy_entry_to(&self, i: usize, dst: &File) -> io::Result<crate::fsutil::CopyMethod> {
        let e = self
            .header
            .entries
            .get(i)
            .ok_or_else(|| io::Error::other("pack entry out of range"))?;
        if let Ok(src) = File::open(&self.path)
            && src.metadata().map(|m| m.len()).unwrap_or(0) == self.size()
        {
            return crate::fsutil::clone_or_copy(&src, e.offset, e.size, e.padded_size(), dst);
        }
        dst.write_all_at(self.payload(i), 0)?;
        Ok(crate::fsutil::CopyMethod::ReadWrite)
    }

    /// The bytes of entry `i` (checked at open to lie inside the map).
    pub fn payload(&self, i: usize) -> &[u8] {
        self.header
            .entries
            .get(i)
            .and_then(PackEntry::range)
            .and_then(|r| self.map.get(r))
            .unwrap_or(&[])
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

    /// The whole file (to send it to a remote store).
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Checks that the file is laid out exactly as [`write`] lays it out: payloads one
    /// after the other from the first aligned offset after the header, every byte outside
    /// the header and the payloads zero, nothing after the last padding. With [`Pack::verify`]
    /// and the id, every byte of the file is then accounted for (packs from a remote store).
    pub fn check_layout(&self) -> Result<(), PackError> {
        let header_len =
            u32::from_le_bytes([self.map[12], self.map[13], self.map[14], self.map[15]]) as u64;
        let mut at = round_up(header_len).ok_or_else(|| corrupt("header length"))?;
        let zero = |from: u64, to: u64| -> Result<(), PackError> {
            let r = self
                .map
                .get(from as usize..to as usize)
                .ok_or_else(|| corrupt("layout out of bounds"))?;
            if r.iter().any(|&b| b != 0) {
                return Err(corrupt("non-zero padding"));
            }
            Ok(())
        };
        zero(header_len, at.min(self.size()))?;
        for e in &self.header.entries {
            if e.offset != at {
                return Err(corrupt(format!("entry {} not where it belongs", e.name)));
            }
            let end = e.offset + e.size;
            at = e.offset + e.padded_size();
            zero(end, at)?;
        }
        if at != self.size() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use std::io::Write;

    /// A pack of the first `n` of payloads of `lens` bytes (each byte its index + 1), at
    /// `dir/p<n>`.
    fn sample(dir: &std::path::Path, lens: &[usize], n: usize) -> (std::path::PathBuf, Written) {
        let srcs: Vec<File> = lens
            .iter()
            .enumerate()
            .map(|(i, len)| {
                let p = dir.join(format!("s{i}"));
                File::create(&p)
                    .unwrap()
                    .write_all(&vec![i as u8 + 1; *len])
                    .unwrap();
                File::open(&p).unwrap()
            })
            .collect();
        let path = dir.join(format!("p{n}"));
        let out = File::create(&path).unwrap();
        let sources: Vec<Source<'_>> = srcs[..n]
            .iter()
            .enumerate()
            .map(|(i, f)| Source {
                name: format!("o{i}"),
                file: f,
            })
            .collect();
        let w = write(&out, &sources, b"out".to_vec(), vec![], b"{}".to_vec()).unwrap();
        (path, w)
    }

    /// Feeds `bytes` to a checker in chunks of `step`; the outcome of `finish`.
    fn stream(bytes: &[u8], want: Digest, step: usize) -> io::Result<Vec<u8>> {
        let mut c = StreamCheck::new(Vec::new(), want);
        for chunk in bytes.chunks(step.max(1)) {
            c.write_all(chunk)?;
        }
        c.finish()
    }

    #[test]
    fn streamed_packs_are_checked_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        for n in [0, 1, 2, 4] {
            let (path, w) = sample(dir.path(), &[5000, 0, 4096, 1], n);
            let good = std::fs::read(&path).unwrap();
            for step in [1, 7, 4096, 1 << 20] {
                assert_eq!(
                    stream(&good, w.id, step).unwrap(),
                    good,
                    "{n} entries, step {step}"
                );
            }
            assert!(
                stream(&good, Digest::of(b"other"), 4096).is_err(),
                "wrong id"
            );
            assert!(
                stream(&good[..good.len() - 1], w.id, 4096).is_err(),
                "truncated"
            );
            let mut longer = good.clone();
            longer.push(0);
            assert!(stream(&longer, w.id, 4096).is_err(), "trailing");
            // Every single flipped byte is caught (a sample of positions).
            for pos in (0..good.len()).step_by(97) {
                let mut bad = good.clone();
                bad[pos] ^= 0x20;
                assert!(stream(&bad, w.id, 1000).is_err(), "{n} entries, byte {pos}");
            }
        }
    }

    #[test]
    fn written_packs_have_the_canonical_layout_and_changes_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        for n in [0, 3] {
            let (path, _) = sample(dir.path(), &[5000, 0, 4096], n);
            let p = Pack::open(&path).unwrap();
            p.check_layout().unwrap();
            let bytes = std::fs::read(&path).unwrap();
            // A byte in the padding after the header, and one more byte at the end.
            let hl = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
            let mut bad = bytes.clone();
            bad[hl + 1] = 1;
            std::fs::write(&path, &bad).unwrap();
            assert!(Pack::open(&path).unwrap().check_layout().is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            std::fs::write(&path, &longer).unwrap();
            assert!(Pack::open(&path).unwrap().check_layout().is_err());
            if n == 3 {
                // The padding after the first payload (5000 bytes).
                let off = p.header.entries[0].offset as usize + 5000;
                let mut bad = bytes.clone();
                bad[off] = 9;
                std::fs::write(&path, &bad).unwrap();
                let q = Pack::open(&path).unwrap();
                assert!(q.verify().is_ok(), "payloads are intact");
                assert!(q.check_layout().is_err(), "the padding is not");
            }
        }
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

    /// Re-seals a patched header (recomputes its checksum), as a hostile writer would.
    fn reseal(mut b: Vec<u8>) -> Vec<u8> {
        let header_len = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
        b[48..80].fill(0);
        let d = Digest::of(&b[..header_len]);
        b[48..80].copy_from_slice(&d.0);
        b
    }

    #[test]
    fn hostile_sizes_and_offsets_are_refused_without_panicking() {
        let h = PackHeader {
            entries: vec![PackEntry {
                name: "x".into(),
                mode: 0o644,
                size: 10,
                offset: ALIGN,
                digest: Digest::default(),
            }],
            stdout: b"out".to_vec(),
            stderr: vec![],
            meta: vec![],
        };
        let (good, _) = h.encode();
        assert!(PackHeader::decode(&good, 2 * ALIGN).is_ok());
        let entry = FIXED;
        let patch = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            reseal(b)
        };
        let huge = u64::MAX.to_le_bytes();
        for (what, bytes) in [
            ("stdout length", patch(24, &huge)),
            ("stderr length", patch(32, &huge)),
            ("stdout+stderr wrap", {
                let b = patch(24, &(u64::MAX - 1).to_le_bytes());
                let mut b = b;
                b[32..40].copy_from_slice(&5u64.to_le_bytes());
                reseal(b)
            }),
            ("entry size", patch(entry + 6, &huge)),
            (
                "entry offset",
                patch(entry + 14, &(u64::MAX - 4095).to_le_bytes()),
            ),
            ("entry count", patch(16, &u32::MAX.to_le_bytes())),
            ("name length", patch(entry, &u16::MAX.to_le_bytes())),
            ("nul in name", patch(entry + ENTRY_FIXED, b"\0")),
        ] {
            assert!(
                PackHeader::decode(&bytes, 2 * ALIGN).is_err(),
                "{what} accepted"
            );
        }
        // A file length that does not cover the payload.
        assert!(PackHeader::decode(&good, ALIGN).is_err());
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

/// Writes a pack holding `files` (name, bytes) in `dir` and opens it (tests).
#[cfg(test)]
pub fn write_test_pack(dir: &Path, files: &[(&str, &[u8])]) -> std::sync::Arc<Pack> {
    use std::io::Write;
    let tag = crate::util::random_u64();
    let mut sources = Vec::new();
    for (i, (name, bytes)) in files.iter().enumerate() {
        let p = dir.join(format!("src-{tag}-{i}"));
        File::create(&p).unwrap().write_all(bytes).unwrap();
        sources.push((name.to_string(), File::open(&p).unwrap()));
    }
    let srcs: Vec<Source<'_>> = sources
        .iter()
        .map(|(n, f)| Source {
            name: n.clone(),
            file: f,
        })
        .collect();
    let path = dir.join(format!("p{tag}.pack"));
    let out = File::create(&path).unwrap();
    write(&out, &srcs, vec![], vec![], vec![]).unwrap();
    std::sync::Arc::new(Pack::open(&path).unwrap())
}
