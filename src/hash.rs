//! blake3 digests and the hashing of files.

use crate::os::FileAt;
use std::fmt;
use std::fs::File;
use std::io;

use serde::{Deserialize, Serialize};

/// A blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
    pub fn from_hex(s: &str) -> Option<Digest> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(hex, 16).ok()?;
        }
        Some(Digest(out))
    }
    /// The first 12 hex digits, for logs.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<blake3::Hash> for Digest {
    fn from(h: blake3::Hash) -> Digest {
        Digest(*h.as_bytes())
    }
}

/// Read size for hashing files.
const CHUNK: u64 = 1 << 20;

/// Hashes an open file from its start to `len` bytes with `pread`. Files the daemon does not
/// own are never memory-mapped: another process can truncate them under the map, and a
/// read of the vanished pages raises SIGBUS, which would kill the daemon and every mount it
/// serves. A file shorter than `len` (truncated meanwhile) is an `UnexpectedEof` error.
pub fn hash_file(file: &File, len: u64) -> io::Result<Digest> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; len.clamp(1, CHUNK) as usize];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        match file.read_at(&mut buf[..want], done) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than its size (truncated while read)",
                ));
            }
            Ok(n) => {
                hasher.update(&buf[..n]);
                done += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher.finalize().into())
}

/// A builder for keys: feeds length-prefixed, tagged fields into blake3 so that no two
/// different field sequences collide by concatenation.
pub struct KeyHasher(blake3::Hasher);

impl KeyHasher {
    pub fn new(domain: &str) -> KeyHasher {
        let mut h = KeyHasher(blake3::Hasher::new());
        h.field("domain", domain.as_bytes());
        h
    }
    pub fn field(&mut self, tag: &str, value: &[u8]) -> &mut Self {
        self.0.update(&(tag.len() as u32).to_le_bytes());
        self.0.update(tag.as_bytes());
        self.0.update(&(value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }
    pub fn digest(&mut self, tag: &str, d: &Digest) -> &mut Self {
        self.field(tag, &d.0)
    }
    pub fn finish(&self) -> Digest {
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn hex_round_trip() {
        let d = Digest::of(b"abc");
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex("zz"), None);
        assert_eq!(d.short().len(), 12);
    }

    #[test]
    fn file_hash_matches_memory_hash_small_and_large() {
        for size in [0usize, 10, 300 * 1024, 2 * 1024 * 1024 + 7] {
            let mut f = tempfile::tempfile().unwrap();
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            f.write_all(&data).unwrap();
            assert_eq!(hash_file(&f, size as u64).unwrap(), Digest::of(&data));
        }
    }

    #[test]
    fn a_file_shorter_than_its_stat_is_an_error_not_a_crash() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[1u8; 4096]).unwrap();
        // As if truncated between the stat and the read.
        let e = hash_file(&f, 3 * 1024 * 1024).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn key_fields_do_not_collide_by_concatenation() {
        let a = KeyHasher::new("t")
            .field("x", b"ab")
            .field("x", b"c")
            .finish();
        let b = KeyHasher::new("t")
            .field("x", b"a")
            .field("x", b"bc")
            .finish();
        assert_ne!(a, b);
    }
}
