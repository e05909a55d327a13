//! Paths relative to a mount's root, as the path-keyed model of projections names them:
//! `/`-separated, checked components, no `.`, `..`, root or drive prefix. A backend whose
//! filesystem ignores case (ProjFS on NTFS) looks names up by [`RelPath::fold`].

use std::path::{Component, Path, PathBuf};

/// Longest name, in UTF-16 units (NTFS) or bytes (most Unix filesystems).
pub const MAX_NAME: usize = 255;

/// A checked path relative to a mount's root; the empty path is the root itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RelPath(String);

/// Why a relative path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRelPath {
    #[error("is absolute or has a drive prefix")]
    Absolute,
    #[error("has a `.` or `..` component")]
    Dots,
    #[error("is not valid Unicode")]
    NotUnicode,
    #[error("has a name that is too long")]
    TooLong,
    #[error("has a character no name may hold")]
    BadChar,
}

fn check_name(name: &str) -> Result<(), BadRelPath> {
    if name == "." || name == ".." {
        return Err(BadRelPath::Dots);
    }
    if name.encode_utf16().count() > MAX_NAME || name.len() > 4 * MAX_NAME {
        return Err(BadRelPath::TooLong);
    }
    if name.chars().any(|c| c == '\0' || c == '/' || c == '\\') {
        return Err(BadRelPath::BadChar);
    }
    Ok(())
}

impl RelPath {
    /// The root.
    pub fn root() -> RelPath {
        RelPath(String::new())
    }

    /// From a platform path relative to the root (its separators, no prefix).
    pub fn from_path(p: &Path) -> Result<RelPath, BadRelPath> {
        let mut parts = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(n) => {
                    let n = n.to_str().ok_or(BadRelPath::NotUnicode)?;
                    check_name(n)?;
                    parts.push(n);
                }
                Component::CurDir | Component::ParentDir => return Err(BadRelPath::Dots),
                Component::RootDir | Component::Prefix(_) => return Err(BadRelPath::Absolute),
            }
        }
        Ok(RelPath(parts.join("/")))
    }

    /// From a string with either separator (`\` as ProjFS sends paths, `/` as journals
    /// store them). Empty components (`a\\b`, a trailing separator) are skipped.
    pub fn parse(s: &str) -> Result<RelPath, BadRelPath> {
        if s.starts_with(['/', '\\']) || s.as_bytes().get(1) == Some(&b':') {
            return Err(BadRelPath::Absolute);
        }
        let mut parts = Vec::new();
        for n in s.split(['/', '\\']).filter(|n| !n.is_empty()) {
            check_name(n)?;
            parts.push(n);
        }
        Ok(RelPath(parts.join("/")))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component (empty for the root).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The directory that holds this path (`None` for the root).
    pub fn parent(&self) -> Option<RelPath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => RelPath(self.0[..i].to_string()),
            None => RelPath::root(),
        })
    }

    /// A child of this directory (`name` is checked).
    pub fn join(&self, name: &str) -> Result<RelPath, BadRelPath> {
        check_name(name)?;
        Ok(if self.is_root() {
            RelPath(name.to_string())
        } else {
            RelPath(format!("{}/{name}", self.0))
        })
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// Whether `self` is `dir` or lies beneath it.
    pub fn starts_with_folded(&self, dir: &RelPath) -> bool {
        let (me, d) = (self.fold(), dir.fold());
        d.is_empty() || me == d || (me.starts_with(&d) && me.as_bytes().get(d.len()) == Some(&b'/'))
    }

    /// The case-insensitive key: every character upper-cased where it has a one-character
    /// upper case (as NTFS's upcase table does; `ß` stays `ß`).
    pub fn fold(&self) -> String {
        fold_name(&self.0)
    }

    /// The path under `root`, with the platform's separator.
    pub fn under(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for c in self.components() {
            p.push(c);
        }
        p
    }

    /// The platform path relative to the root.
    pub fn to_path(&self) -> PathBuf {
        self.components().collect()
    }
}

/// Case-folds a name or path the way [`RelPath::fold`] does.
pub fn fold_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_either_separator_and_refuses_escapes() {
        let p = RelPath::parse(r"debug\deps/libfoo.rlib").unwrap();
        assert_eq!(p.as_str(), "debug/deps/libfoo.rlib");
        assert_eq!(p.name(), "libfoo.rlib");
        assert_eq!(p.parent().unwrap().as_str(), "debug/deps");
        assert_eq!(RelPath::parse("a").unwrap().parent(), Some(RelPath::root()));
        assert_eq!(RelPath::root().parent(), None);
        assert_eq!(RelPath::parse(r"a\\b\").unwrap().as_str(), "a/b");
        assert_eq!(RelPath::parse(r"..\x"), Err(BadRelPath::Dots));
        assert_eq!(RelPath::parse(r"a\.\x"), Err(BadRelPath::Dots));
        assert_eq!(RelPath::parse(r"\x"), Err(BadRelPath::Absolute));
        assert_eq!(RelPath::parse(r"C:\x"), Err(BadRelPath::Absolute));
        assert_eq!(RelPath::parse("C:x"), Err(BadRelPath::Absolute));
        assert_eq!(RelPath::parse("a\0b"), Err(BadRelPath::BadChar));
        assert_eq!(RelPath::parse(&"n".repeat(256)), Err(BadRelPath::TooLong));
        assert!(RelPath::parse(&"é".repeat(255)).is_ok(), "255 UTF-16 units");
        assert!(RelPath::from_path(Path::new("/abs")).is_err());
        assert!(RelPath::from_path(Path::new("a/../b")).is_err());
        assert_eq!(
            RelPath::from_path(Path::new("a/b")).unwrap(),
            RelPath::parse("a/b").unwrap()
        );
    }

    #[test]
    fn folds_case_like_ntfs() {
        let a = RelPath::parse("Debug/Deps/LibFoo.RLIB").unwrap();
        let b = RelPath::parse("debug/deps/libfoo.rlib").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.fold(), b.fold());
        assert_eq!(fold_name("straße"), "STRAßE", "no one-to-many mappings");
        assert_eq!(fold_name("émile"), "ÉMILE");
        assert!(b.starts_with_folded(&RelPath::parse("DEBUG").unwrap()));
        assert!(!b.starts_with_folded(&RelPath::parse("deb").unwrap()));
        assert!(b.starts_with_folded(&RelPath::root()));
    }

    #[test]
    fn joins_and_places_under_a_root() {
        let d = RelPath::parse("target/debug").unwrap();
        let f = d.join("a.d").unwrap();
        assert_eq!(f.as_str(), "target/debug/a.d");
        assert!(d.join("x/y").is_err());
        assert_eq!(RelPath::root().join("x").unwrap().as_str(), "x");
        assert_eq!(f.under(Path::new("/r")), Path::new("/r/target/debug/a.d"));
        assert_eq!(f.to_path(), Path::new("target/debug/a.d"));
    }
}
