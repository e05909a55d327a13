//! Windows path spelling, as strings, so that it is tested on any host: the forms a
//! compiler, cargo or a dependency file may use for the same file (`C:\x`, `c:/x`,
//! `\\?\C:\x`, `\\server\share\x`, `\\?\UNC\server\share\x`) reduced to one, and
//! case-insensitive prefix tests for key placeholders (the working directory, the target
//! dir, `CARGO_HOME` under it). Windows compares names without case (NTFS's simple
//! upper-casing, `projection::relpath::fold_name`).

use crate::projection::relpath::fold_name;

/// What a Windows path starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefix {
    /// `C:\` (the letter upper-cased).
    Disk(char),
    /// `\\server\share\`.
    Unc { server: String, share: String },
    /// `\\.\name\` or `\\?\name\` other than a disk or UNC (devices, volume GUIDs): kept as
    /// is.
    Device(String),
    /// `\x`: the root of the current drive.
    CurrentDrive,
    /// `C:x`: relative to the current directory of drive C.
    DriveRelative(char),
    /// A relative path.
    Relative,
}

/// A Windows path split into its prefix and components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinPath {
    pub prefix: Prefix,
    pub components: Vec<String>,
}

fn drive(s: &str) -> Option<char> {
    let b = s.as_bytes();
    (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
        .then(|| (b[0] as char).to_ascii_uppercase())
}

impl WinPath {
    /// Parses a path in any of its spellings. `.` components go; `..` components are
    /// applied lexically except in a verbatim (`\\?\`) path, where they are names (and kept).
    pub fn parse(s: &str) -> WinPath {
        let verbatim = s.starts_with(r"\\?\");
        let (prefix, rest): (Prefix, &str) = if verbatim {
            let r = &s[4..];
            if let Some(d) = drive(r) {
                (Prefix::Disk(d), &r[2..])
            } else if r.len() >= 4 && r[..4].eq_ignore_ascii_case(r"UNC\") {
                unc(&r[4..])
            } else {
                let (dev, tail) = r.split_once('\\').unwrap_or((r, ""));
                (Prefix::Device(format!(r"\\?\{dev}")), tail)
            }
        } else if s.starts_with(r"\\.\") || s.starts_with("//./") {
            let r = &s[4..];
            let (dev, tail) = r.split_once(['\\', '/']).unwrap_or((r, ""));
            (Prefix::Device(format!(r"\\.\{dev}")), tail)
        } else if s.starts_with(r"\\") || s.starts_with("//") {
            unc(&s[2..])
        } else if let Some(d) = drive(s) {
            let r = &s[2..];
            if r.starts_with(['\\', '/']) {
                (Prefix::Disk(d), r)
            } else {
                (Prefix::DriveRelative(d), r)
            }
        } else if s.starts_with(['\\', '/']) {
            (Prefix::CurrentDrive, s)
        } else {
            (Prefix::Relative, s)
        };
        let seps: &[char] = if verbatim { &['\\'] } else { &['\\', '/'] };
        let mut components: Vec<String> = Vec::new();
        for c in rest.split(seps).filter(|c| !c.is_empty()) {
            match c {
                "." if !verbatim => {}
                ".." if !verbatim && !matches!(prefix, Prefix::Relative) => {
                    components.pop();
                }
                ".." if !verbatim && components.last().is_some_and(|l| l != "..") => {
                    components.pop();
                }
                _ => components.push(c.to_string()),
            }
        }
        WinPath { prefix, components }
    }

    pub fn is_absolute(&self) -> bool {
        matches!(
            self.prefix,
            Prefix::Disk(_) | Prefix::Unc { .. } | Prefix::Device(_)
        )
    }

    /// The one spelling: `C:\a\b`, `\\server\share\a`, backslashes, no verbatim prefix.
    pub fn to_canonical(&self) -> String {
        let head = match &self.prefix {
            Prefix::Disk(d) => format!("{d}:\\"),
            Prefix::Unc { server, share } => format!(r"\\{server}\{share}\"),
            Prefix::Device(d) => format!("{d}\\"),
            Prefix::CurrentDrive => "\\".to_string(),
            Prefix::DriveRelative(d) => format!("{d}:"),
            Prefix::Relative => String::new(),
        };
        head + &self.components.join("\\")
    }

    /// The path's components below `base`, compared without case; `None` if it is not
    /// beneath it (or is not on the same volume).
    pub fn strip_prefix(&self, base: &WinPath) -> Option<Vec<String>> {
        let same_prefix = match (&self.prefix, &base.prefix) {
            (
                Prefix::Unc {
                    server: a,
                    share: b,
                },
                Prefix::Unc {
                    server: c,
                    share: d,
                },
            ) => fold_name(a) == fold_name(c) && fold_name(b) == fold_name(d),
            (Prefix::Device(a), Prefix::Device(b)) => fold_name(a) == fold_name(b),
            (a, b) => a == b,
        };
        if !same_prefix || base.components.len() > self.components.len() {
            return None;
        }
        let under = self
            .components
            .iter()
            .zip(&base.components)
            .all(|(a, b)| fold_name(a) == fold_name(b));
        under.then(|| self.components[base.components.len()..].to_vec())
    }
}

fn unc(r: &str) -> (Prefix, &str) {
    let mut it = r.splitn(3, ['\\', '/']);
    let server = it.next().unwrap_or("").to_string();
    let share = it.next().unwrap_or("").to_string();
    let tail = it.next().unwrap_or("");
    (Prefix::Unc { server, share }, tail)
}

/// Whether two spellings name the same path (without touching the filesystem).
pub fn same_path(a: &str, b: &str) -> bool {
    let (a, b) = (WinPath::parse(a), WinPath::parse(b));
    a.strip_prefix(&b).is_some_and(|rest| rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_letters_and_separators_reduce_to_one_spelling() {
        for s in [
            r"C:\Users\dev\proj\target",
            "c:/Users/dev/proj/target",
            r"C:\Users\dev\.\proj\x\..\target\",
            r"\\?\C:\Users\dev\proj\target",
        ] {
            assert_eq!(
                WinPath::parse(s).to_canonical(),
                r"C:\Users\dev\proj\target",
                "{s}"
            );
        }
        assert!(WinPath::parse(r"c:\x").is_absolute());
        assert_eq!(WinPath::parse("C:x").prefix, Prefix::DriveRelative('C'));
        assert!(!WinPath::parse("C:x").is_absolute());
        assert_eq!(WinPath::parse(r"\x").prefix, Prefix::CurrentDrive);
        assert!(!WinPath::parse(r"src\lib.rs").is_absolute());
        assert_eq!(WinPath::parse(r"..\..\a").to_canonical(), r"..\..\a");
        assert_eq!(
            WinPath::parse(r"C:\..\a").to_canonical(),
            r"C:\a",
            "no escape"
        );
    }

    #[test]
    fn unc_and_verbatim_unc_are_one_path() {
        let want = r"\\build01\cache\zcfs\p";
        for s in [
            r"\\build01\cache\zcfs\p",
            "//build01/cache/zcfs/p",
            r"\\?\UNC\build01\cache\zcfs\p",
            r"\\?\unc\build01\cache\zcfs\p",
        ] {
            assert_eq!(WinPath::parse(s).to_canonical(), want, "{s}");
        }
        assert!(same_path(r"\\BUILD01\Cache\zcfs\P", want));
        assert!(!same_path(r"\\build02\cache\zcfs\p", want));
    }

    #[test]
    fn verbatim_paths_keep_dots_and_forward_slashes_as_names() {
        let p = WinPath::parse(r"\\?\C:\a\..\b/c");
        assert_eq!(p.components, ["a", "..", "b/c"]);
        let d = WinPath::parse(r"\\?\Volume{1234}\x");
        assert_eq!(d.prefix, Prefix::Device(r"\\?\Volume{1234}".into()));
        assert_eq!(
            WinPath::parse(r"\\.\pipe\zcfs-1").prefix,
            Prefix::Device(r"\\.\pipe".into())
        );
    }

    #[test]
    fn prefixes_compare_without_case() {
        let cwd = WinPath::parse(r"C:\Users\Dev\Proj");
        let dep = WinPath::parse(r"\\?\c:\users\dev\proj\src\Lib.rs");
        assert_eq!(dep.strip_prefix(&cwd).unwrap(), ["src", "Lib.rs"]);
        assert_eq!(
            WinPath::parse(r"C:\Users\Dev\Proj")
                .strip_prefix(&cwd)
                .unwrap(),
            Vec::<String>::new()
        );
        assert!(
            WinPath::parse(r"C:\Users\Dev\Project\x")
                .strip_prefix(&cwd)
                .is_none(),
            "a name that only starts the same"
        );
        assert!(
            WinPath::parse(r"D:\Users\Dev\Proj\x")
                .strip_prefix(&cwd)
                .is_none()
        );
        assert!(same_path(r"C:\STRASSE", r"c:\strasse"));
        assert!(
            !same_path(r"C:\straße", r"C:\STRASSE"),
            "no one-to-many folding"
        );
        assert!(same_path(r"C:\ÉCOLE", r"c:\école"));
    }
}
