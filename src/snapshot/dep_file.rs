//! cargo's own record of a unit's inputs: the binary `dep-<kind>-<name>` file in the unit's
//! fingerprint directory (cargo's `EncodedDepInfo`, `fingerprint/dep_info.rs`, stable since
//! 1.80s and unchanged in 1.95). cargo reads it on every build to decide whether the unit is
//! Fresh: each file it lists must be no newer than the dep file itself, and each variable it
//! lists must still have the recorded value (../shared research, snapshot-projection.md §3).
//!
//! Layout (integers little-endian; `str` is a u32 length and the bytes):
//!
//! ```text
//! u32 1, u8 0xFF                 marker: older cargos read "1 file of an invalid type" and stop
//! u8 1                           version
//! u32 n, n × file:               u8 base (0: package root, 1: build root, absolute kept as is)
//!                                str path, u8 has_checksum, [u64 length, str "blake3=<hex>"]
//! u32 m, m × variable:           str name, u8 0 (unset) | 1 + str value
//! ```
//!
//! Every byte is untrusted: counts are checked against what is left before anything is
//! allocated, and anything cargo would not have written (another version, a base or flag
//! other than 0/1, bytes after the end) is an error, never a guess.

use std::path::{Path, PathBuf};

/// What a recorded path is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The package's root (the directory of its `Cargo.toml`).
    Package,
    /// The build root (`build.build-dir`, `target/` by default: not `target/debug`). An
    /// absolute path outside both roots is recorded with this base and kept absolute.
    BuildRoot,
}

/// One file the unit read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepFileEntry {
    pub base: Base,
    /// As recorded (raw bytes: cargo writes a Unix path's bytes unchanged).
    pub path: Vec<u8>,
    /// `-Zchecksum-freshness` only: (file length, `blake3=<hex>`).
    pub checksum: Option<(u64, Vec<u8>)>,
}

impl DepFileEntry {
    /// The file's path for a package at `package_root` built under `build_root`. A path
    /// recorded absolute stays what it is.
    pub fn resolve(&self, package_root: &Path, build_root: &Path) -> PathBuf {
        let rel = crate::os::os_str(&self.path);
        match self.base {
            Base::Package => package_root.join(&*rel),
            Base::BuildRoot => build_root.join(&*rel),
        }
    }
}

/// A parsed `dep-` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepFile {
    pub files: Vec<DepFileEntry>,
    /// The variables the unit read (`env!`, `option_env!`, tracked ones): name, value when
    /// the build ran (`None`: unset).
    pub env: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The largest dep file read (a unit with a million inputs would still fit).
pub const MAX_SIZE: u64 = 256 << 20;

const MARKER: [u8; 5] = [1, 0, 0, 0, 0xFF];
const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepFileError {
    #[error("not a cargo dep file of the current format (no marker)")]
    NoMarker,
    #[error("cargo dep file version {0}, not {VERSION}")]
    Version(u8),
    #[error("cargo dep file cut short at byte {0}")]
    Truncated(usize),
    #[error("cargo dep file: {what} {value} at byte {at}")]
    Invalid {
        what: &'static str,
        value: u8,
        at: usize,
    },
    #[error("cargo dep file: {0} bytes after its end")]
    Trailing(usize),
    #[error("cargo dep file larger than {MAX_SIZE} bytes")]
    TooLarge,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DepFileError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(DepFileError::Truncated(self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DepFileError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DepFileError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DepFileError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn str(&mut self) -> Result<Vec<u8>, DepFileError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, DepFileError> {
        let at = self.at;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DepFileError::Invalid { what, value, at }),
        }
    }

    /// A count of items of at least `min_size` bytes each: never more than what is left
    /// could hold, so a hostile count cannot make a large allocation.
    fn count(&mut self, min_size: usize) -> Result<usize, DepFileError> {
        let at = self.at;
        let n = self.u32()? as usize;
        let left = self.bytes.len() - self.at;
        if n.checked_mul(min_size).is_none_or(|need| need > left) {
            return Err(DepFileError::Truncated(at));
        }
        Ok(n)
    }
}

/// Parses a `dep-` file's bytes.
pub fn parse(bytes: &[u8]) -> Result<DepFile, DepFileError> {
    if bytes.len() as u64 > MAX_SIZE {
        return Err(DepFileError::TooLarge);
    }
    let mut r = Reader { bytes, at: 0 };
    if r.take(MARKER.len()).ok() != Some(&MARKER[..]) {
        return Err(DepFileError::NoMarker);
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(DepFileError::Version(version));
    }
    // A file is at least: base, path length, has_checksum.
    let nfiles = r.count(1 + 4 + 1)?;
    // The count is bounded by the bytes left, not by what each entry takes in memory.
    let mut files = Vec::with_capacity(nfiles.min(1024));
    for _ in 0..nfiles {
        let at = r.at;
        let base = match r.u8()? {
            0 => Base::Package,
            1 => Base::BuildRoot,
            value => {
                return Err(DepFileError::Invalid {
                    what: "path base",
                    value,
                    at,
                });
            }
        };
        let path = r.str()?;
        let checksum = if r.flag("checksum flag")? {
            let len = r.u64()?;
            Some((len, r.str()?))
        } else {
            None
        };
        files.push(DepFileEntry {
            base,
            path,
            checksum,
        });
    }
    // A variable is at least: name length, set flag.
    let nenv = r.count(4 + 1)?;
    let mut env = Vec::with_capacity(nenv.min(1024));
    for _ in 0..nenv {
        let name = r.str()?;
        let value = if r.flag("variable flag")? {
            Some(r.str()?)
        } else {
            None
        };
        env.push((name, value));
    }
    if r.at != bytes.len() {
        return Err(DepFileError::Trailing(bytes.len() - r.at));
    }
    Ok(DepFile { files, env })
}

/// The bytes cargo would write for `dep` (`parse` undoes it exactly).
pub fn encode(dep: &DepFile) -> Vec<u8> {
    fn str(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }
    let mut out = MARKER.to_vec();
    out.push(VERSION);
    out.extend_from_slice(&(dep.files.len() as u32).to_le_bytes());
    for f in &dep.files {
        out.push(match f.base {
            Base::Package => 0,
            Base::BuildRoot => 1,
        });
        str(&mut out, &f.path);
        match &f.checksum {
            None => out.push(0),
            Some((len, sum)) => {
                out.push(1);
                out.extend_from_slice(&len.to_le_bytes());
                str(&mut out, sum);
            }
        }
    }
    out.extend_from_slice(&(dep.env.len() as u32).to_le_bytes());
    for (name, value) in &dep.env {
        str(&mut out, name);
        match value {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                str(&mut out, v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by cargo 1.95 for a library whose only source is `src/lib.rs` and which reads
    /// `option_env!("DQ_X")` (unset).
    const CARGO_195: &[u8] = &[
        0x01, 0x00, 0x00, 0x00, 0xff, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00,
        b's', b'r', b'c', b'/', b'l', b'i', b'b', b'.', b'r', b's', 0x00, 0x01, 0x00, 0x00, 0x00,
        0x04, 0x00, 0x00, 0x00, b'D', b'Q', b'_', b'X', 0x00,
    ];

    #[test]
    fn reads_what_cargo_wrote_and_writes_it_back_byte_for_byte() {
        let d = parse(CARGO_195).unwrap();
        assert_eq!(
            d.files,
            vec![DepFileEntry {
                base: Base::Package,
                path: b"src/lib.rs".to_vec(),
                checksum: None,
            }]
        );
        assert_eq!(d.env, vec![(b"DQ_X".to_vec(), None)]);
        assert_eq!(encode(&d), CARGO_195);
        assert_eq!(
            d.files[0].resolve(Path::new("/ws/dq"), Path::new("/ws/target")),
            PathBuf::from("/ws/dq/src/lib.rs")
        );
    }

    #[test]
    fn every_field_round_trips() {
        let d = DepFile {
            files: vec![
                DepFileEntry {
                    base: Base::BuildRoot,
                    path: b"debug/build/util-9ee6/out/gen.rs".to_vec(),
                    checksum: Some((42, b"blake3=00ff".to_vec())),
                },
                DepFileEntry {
                    base: Base::BuildRoot,
                    path: b"/usr/include/zlib.h".to_vec(),
                    checksum: None,
                },
            ],
            env: vec![
                (b"A".to_vec(), Some(b"1".to_vec())),
                (b"B".to_vec(), Some(Vec::new())),
                (b"C".to_vec(), None),
            ],
        };
        assert_eq!(parse(&encode(&d)).unwrap(), d);
        let (pkg, build) = (Path::new("/p"), Path::new("/t"));
        assert_eq!(
            d.files[0].resolve(pkg, build),
            PathBuf::from("/t/debug/build/util-9ee6/out/gen.rs")
        );
        // Recorded absolute: kept.
        assert_eq!(
            d.files[1].resolve(pkg, build),
            PathBuf::from("/usr/include/zlib.h")
        );
        assert_eq!(
            parse(&encode(&DepFile::default())).unwrap(),
            DepFile::default()
        );
    }

    #[test]
    fn refuses_what_cargo_would_not_write() {
        assert_eq!(parse(b""), Err(DepFileError::NoMarker));
        // An old cargo's format: a file count, no marker.
        assert_eq!(parse(&[2, 0, 0, 0, 0]), Err(DepFileError::NoMarker));
        let mut v = CARGO_195.to_vec();
        v[5] = 2;
        assert_eq!(parse(&v), Err(DepFileError::Version(2)));
        let mut v = CARGO_195.to_vec();
        v[10] = 7;
        assert!(matches!(
            parse(&v),
            Err(DepFileError::Invalid { value: 7, .. })
        ));
        let mut v = CARGO_195.to_vec();
        v.push(0);
        assert_eq!(parse(&v), Err(DepFileError::Trailing(1)));
        // Every cut is an error, never a panic or a shorter record.
        for n in 0..CARGO_195.len() {
            assert!(parse(&CARGO_195[..n]).is_err(), "cut at {n}");
        }
        // A count no file could hold allocates nothing.
        let mut v = MARKER.to_vec();
        v.push(VERSION);
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&v), Err(DepFileError::Truncated(6)));
        // A path length past the end.
        let mut v = MARKER.to_vec();
        v.push(VERSION);
        v.extend_from_slice(&1u32.to_le_bytes());
        v.push(0);
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        v.push(0);
        assert!(matches!(parse(&v), Err(DepFileError::Truncated(_))));
    }
}
