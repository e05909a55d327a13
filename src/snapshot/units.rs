//! The units cargo keeps in a build dir, as cargo 1.95 lays them out: one fingerprint
//! directory per unit, `<build-root>/<profile>/.fingerprint/<package>-<16 hex>/`, holding
//! per target of the unit a hash file (`lib-util`, `test-bin-app`,
//! `run-build-script-build-script-build`, ...: the 16 hex digits of the unit's fingerprint
//! hash), its `dep-` file (rustc units; [`super::dep_file`]), its `.json` (read only to
//! explain a rebuild) and its `output-` message cache. `invoked.timestamp` is never read for
//! freshness (snapshot-projection.md §2).
//!
//! cargo's newer per-unit layout (`<profile>/build/<package>/<hash>/fingerprint/`, nightly
//! `-Zbuild-dir-new-layout` in 1.95) is recognised and reported as such, so that a caller
//! leaves such a build dir to cargo instead of misreading it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// How a profile directory (`target/debug`, or under `build.build-dir`) is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `.fingerprint/<package>-<hash>/`: what stable cargo writes.
    Legacy,
    /// `build/<package>/<hash>/fingerprint/`: not read.
    PerUnit,
    /// Nothing built there yet.
    Empty,
}

/// Which layout a profile directory has.
pub fn layout(profile_dir: &Path) -> io::Result<Layout> {
    let per_unit = || -> io::Result<bool> {
        let build = profile_dir.join("build");
        let Some(pkgs) = read_dir_if_any(&build)? else {
            return Ok(false);
        };
        for pkg in pkgs {
            let pkg = pkg?.path();
            if let Some(units) = read_dir_if_any(&pkg)? {
                for unit in units {
                    if unit?.path().join("fingerprint").is_dir() {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    };
    if per_unit()? {
        return Ok(Layout::PerUnit);
    }
    Ok(if profile_dir.join(".fingerprint").is_dir() {
        Layout::Legacy
    } else {
        Layout::Empty
    })
}

fn read_dir_if_any(dir: &Path) -> io::Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(r) => Ok(Some(r)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// One target's record in a unit's fingerprint directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRecord {
    /// The hash file's name (`lib-util`, `run-build-script-build-script-build`).
    pub name: String,
    /// Its content: the unit's fingerprint hash as 16 lowercase hex digits; `None` when cargo
    /// left it empty (it empties it before it rebuilds the unit: the build did not finish).
    pub hash: Option<u64>,
    /// `dep-<name>` is there (every rustc unit has one; a build-script run has none).
    pub dep_file: bool,
    /// `<name>.json` is there.
    pub json: bool,
    /// `output-<name>` is there (cached diagnostics, replayed for a Fresh unit).
    pub output: bool,
}

/// A unit's fingerprint directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitDir {
    pub path: PathBuf,
    /// The package name, as in the directory's name.
    pub package: String,
    /// The unit's 16 hex digits, as in the directory's name (also the suffix of its files in
    /// `deps/` and of its `build/` directory).
    pub unit_hash: String,
    pub targets: Vec<TargetRecord>,
    /// Names cargo 1.95 does not write there: a record with any is not understood.
    pub unknown: Vec<String>,
}

/// Why a fingerprint directory cannot be read as a unit.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error("{0}: not `<package>-<16 hex>`")]
    BadName(PathBuf),
    #[error("{0}: a hash file that is not 16 hex digits")]
    BadHash(PathBuf),
    #[error("{0}: a name that is not UTF-8")]
    NotUtf8(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
}

/// Splits `<package>-<16 hex>`.
fn split_unit_name(name: &str) -> Option<(&str, &str)> {
    let (pkg, hash) = name.rsplit_once('-')?;
    (!pkg.is_empty() && is_hex16(hash)).then_some((pkg, hash))
}

fn is_hex16(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The largest hash file read: cargo writes 16 bytes.
const HASH_FILE_MAX: u64 = 64;

/// The text of a regular file of at most [`HASH_FILE_MAX`] bytes; `None` for anything
/// else. Opened without following a symlink or waiting on a FIFO, checked on the open
/// file, read with a cap (the file may change between the listing and the read).
fn read_small_file(p: &Path) -> io::Result<Option<String>> {
    use std::io::Read;
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let f = match opts.open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
        Err(_) => return Ok(None),
    };
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() > HASH_FILE_MAX {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    f.take(HASH_FILE_MAX + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > HASH_FILE_MAX {
        return Ok(None);
    }
    Ok(String::from_utf8(bytes).ok())
}

/// Reads one unit's fingerprint directory.
pub fn read_unit(dir: &Path) -> Result<UnitDir, UnitError> {
    let io_err = |e| UnitError::Io(dir.to_path_buf(), e);
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| UnitError::NotUtf8(dir.to_path_buf()))?;
    let (package, unit_hash) =
        split_unit_name(name).ok_or_else(|| UnitError::BadName(dir.to_path_buf()))?;
    let mut names = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err)? {
        let e = e.map_err(io_err)?;
        let n = e
            .file_name()
            .into_string()
            .map_err(|_| UnitError::NotUtf8(e.path()))?;
        names.push(n);
    }
    names.sort();
    let has = |n: &str| names.iter().any(|x| x == n);
    let mut targets = Vec::new();
    let mut unknown = Vec::new();
    for n in &names {
        if n == "invoked.timestamp"
            || n.starts_with("dep-")
            || n.starts_with("output-")
            || n.ends_with(".json")
        {
            continue;
        }
        let p = dir.join(n);
        let Some(text) = read_small_file(&p).map_err(io_err)? else {
            unknown.push(n.clone());
            continue;
        };
        let hash = if text.is_empty() {
            None
        } else if is_hex16(&text) {
            // cargo writes the hex of the hash's little-endian bytes.
            let mut bytes = [0u8; 8];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                    .map_err(|_| UnitError::BadHash(p.clone()))?;
            }
            Some(u64::from_le_bytes(bytes))
        } else {
            return Err(UnitError::BadHash(p));
        };
        targets.push(TargetRecord {
            name: n.clone(),
            hash,
            dep_file: has(&format!("dep-{n}")),
            json: has(&format!("{n}.json")),
            output: has(&format!("output-{n}")),
        });
    }
    // A dep file, message cache or JSON without its hash file is not cargo's doing.
    for n in &names {
        let owner = n
            .strip_prefix("dep-")
            .or_else(|| n.strip_prefix("output-"))
            .or_else(|| n.strip_suffix(".json"));
        if let Some(o) = owner
            && !targets.iter().any(|t| t.name == o)
        {
            unknown.push(n.clone());
        }
    }
    Ok(UnitDir {
        path: dir.to_path_buf(),
        package: package.to_string(),
        unit_hash: unit_hash.to_string(),
        targets,
        unknown,
    })
}

/// Every unit of a profile directory in the legacy layout, sorted by directory name; a
/// directory that cannot be read as a unit is returned as its error, beside the others.
pub fn read_units(profile_dir: &Path) -> io::Result<Vec<Result<UnitDir, UnitError>>> {
    let fp = profile_dir.join(".fingerprint");
    let Some(entries) = read_dir_if_any(&fp)? else {
        return Ok(Vec::new());
    };
    let mut dirs = Vec::new();
    for e in entries {
        let e = e?;
        if e.file_type()?.is_dir() {
            dirs.push(e.path());
        }
    }
    dirs.sort();
    Ok(dirs.iter().map(|d| read_unit(d)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_and_hashes() {
        assert_eq!(
            split_unit_name("cfg-if-595cd1fd9b5b1165"),
            Some(("cfg-if", "595cd1fd9b5b1165"))
        );
        assert_eq!(split_unit_name("x-595CD1FD9B5B1165"), None);
        assert_eq!(split_unit_name("-595cd1fd9b5b1165"), None);
        assert_eq!(split_unit_name("x-595cd1fd9b5b116"), None);
        assert_eq!(split_unit_name("x"), None);
    }

    #[test]
    fn reads_a_unit_and_refuses_what_cargo_would_not_write() {
        let t = tempfile::tempdir().unwrap();
        let u = t.path().join("util-b881d5b3461a9762");
        fs::create_dir(&u).unwrap();
        // lib-util = 5833351829037043127 (checked against cargo's own JSON).
        fs::write(u.join("lib-util"), "b7cda003953af450").unwrap();
        fs::write(u.join("dep-lib-util"), b"").unwrap();
        fs::write(u.join("lib-util.json"), "{}").unwrap();
        fs::write(u.join("invoked.timestamp"), "").unwrap();
        fs::write(u.join("test-lib-util"), "").unwrap();
        let r = read_unit(&u).unwrap();
        assert_eq!(
            (r.package.as_str(), r.unit_hash.as_str()),
            ("util", "b881d5b3461a9762")
        );
        assert_eq!(
            r.targets,
            vec![
                TargetRecord {
                    name: "lib-util".into(),
                    hash: Some(5833351829037043127),
                    dep_file: true,
                    json: true,
                    output: false,
                },
                TargetRecord {
                    name: "test-lib-util".into(),
                    hash: None,
                    dep_file: false,
                    json: false,
                    output: false,
                },
            ]
        );
        assert!(r.unknown.is_empty());
        fs::write(u.join("output-bin-app"), "").unwrap();
        assert_eq!(read_unit(&u).unwrap().unknown, vec!["output-bin-app"]);
        fs::write(u.join("lib-util"), "b7cda003953af45\n").unwrap();
        assert!(matches!(read_unit(&u), Err(UnitError::BadHash(_))));
        let bad = t.path().join("util");
        fs::create_dir(&bad).unwrap();
        assert!(matches!(read_unit(&bad), Err(UnitError::BadName(_))));
    }

    #[test]
    fn layouts() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        assert_eq!(layout(p).unwrap(), Layout::Empty);
        fs::create_dir_all(p.join(".fingerprint")).unwrap();
        fs::create_dir_all(p.join("build/util-9ee6/out")).unwrap();
        assert_eq!(layout(p).unwrap(), Layout::Legacy);
        fs::create_dir_all(p.join("build/util/b881d5b3461a9762/fingerprint")).unwrap();
        assert_eq!(layout(p).unwrap(), Layout::PerUnit);
    }
}
