//! The content id a placeholder carries (`PRJ_PLACEHOLDER_VERSION_INFO.ContentID`, 128 bytes):
//! which pack entry holds its bytes. ProjFS asks for a file's bytes with the content id it
//! was created with, also after a rename and after the path was projected anew, so bytes are
//! always served by content id, never by path. The first byte is the layout version (as in
//! VFS for Git), so a later zcfs can tell ids it does not understand.
//!
//! Layout (version 1): `1 | pack id (32) | entry index u32 LE | size u64 LE` = 45 bytes.

use crate::hash::Digest;

pub const VERSION: u8 = 1;
const LEN: usize = 1 + 32 + 4 + 8;
/// `PRJ_PLACEHOLDER_ID_LENGTH`.
pub const MAX_LEN: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentId {
    pub pack: Digest,
    pub index: u32,
    pub size: u64,
}

impl ContentId {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(LEN);
        v.push(VERSION);
        v.extend_from_slice(&self.pack.0);
        v.extend_from_slice(&self.index.to_le_bytes());
        v.extend_from_slice(&self.size.to_le_bytes());
        v
    }

    /// `None` for anything but a version-1 id (ProjFS pads ids with zeros to 128 bytes).
    pub fn decode(b: &[u8]) -> Option<ContentId> {
        if b.len() < LEN || b.len() > MAX_LEN || b[0] != VERSION {
            return None;
        }
        if b[LEN..].iter().any(|&x| x != 0) {
            return None;
        }
        let pack = Digest(b[1..33].try_into().ok()?);
        let index = u32::from_le_bytes(b[33..37].try_into().ok()?);
        let size = u64::from_le_bytes(b[37..45].try_into().ok()?);
        Some(ContentId { pack, index, size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_does_not_know() {
        let c = ContentId {
            pack: Digest([7; 32]),
            index: 3,
            size: 1 << 40,
        };
        let mut b = c.encode();
        assert_eq!(ContentId::decode(&b), Some(c));
        b.resize(MAX_LEN, 0);
        assert_eq!(ContentId::decode(&b), Some(c), "zero padding is fine");
        b[100] = 1;
        assert_eq!(ContentId::decode(&b), None, "trailing garbage");
        let mut v2 = c.encode();
        v2[0] = 2;
        assert_eq!(ContentId::decode(&v2), None, "unknown version");
        assert_eq!(ContentId::decode(&c.encode()[..44]), None, "short");
        assert_eq!(ContentId::decode(&[0u8; 129]), None, "long");
        assert_eq!(ContentId::decode(&[]), None);
    }
}
