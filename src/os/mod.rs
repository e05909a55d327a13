//! The few operating-system facts the portable code needs, one implementation per OS family
//! (`unix.rs`, `windows.rs`): directory handles, opening without following links, the
//! identity and times of a file; `notify.rs`: directory change notifications.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

pub mod notify;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use self::windows::*;

use std::path::{Path, PathBuf};

/// A time as a file records it: nanoseconds since the Unix epoch.
pub type NanoTime = i128;

/// The identity, size and times of a file: what deciding "unchanged" needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: NanoTime,
    pub ctime: NanoTime,
}

impl FileStat {
    /// From metadata (on Windows without identity or change time: see `os::file_stat`).
    pub fn of(meta: &std::fs::Metadata) -> FileStat {
        file_stat(meta)
    }

    /// Of the file at `path` (following symlinks), with its identity and change time on
    /// every OS: what deciding "unchanged" needs. `meta`: its metadata if at hand (on
    /// Unix that is all it takes).
    pub fn of_path(path: &Path, meta: Option<&std::fs::Metadata>) -> std::io::Result<FileStat> {
        path_stat(path, meta)
    }

    /// Of an open file, as [`FileStat::of_path`].
    pub fn of_file(file: &std::fs::File, meta: &std::fs::Metadata) -> std::io::Result<FileStat> {
        handle_stat(file, meta)
    }
}

/// How a byte range was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMethod {
    Reflink,
    CopyFileRange,
    ReadWrite,
}

/// Whether a program name given to run is a path (has a separator) rather than a name to
/// look up on `PATH`.
pub fn names_a_path(program: &[u8]) -> bool {
    program.iter().any(|b| std::path::is_separator(*b as char))
}

/// The files a `PATH` lookup of `name` in `dir` tries, in order: `dir/name`, and on Windows,
/// for a name without an extension, the name with each extension of `PATHEXT`.
pub fn program_candidates(dir: &Path, name: &std::ffi::OsStr) -> Vec<PathBuf> {
    let plain = dir.join(name);
    if !cfg!(windows) || Path::new(name).extension().is_some() {
        return vec![plain];
    }
    let exts = std::env::var("PATHEXT").unwrap_or_else(|_| ".COM;.EXE;.BAT;.CMD".into());
    let mut v: Vec<PathBuf> = exts
        .split(';')
        .filter(|e| e.starts_with('.') && e.len() > 1)
        .map(|e| {
            let mut n = name.to_os_string();
            n.push(e.to_ascii_lowercase());
            dir.join(n)
        })
        .collect();
    v.push(plain);
    v
}

/// A program's name without the executable suffix Windows gives it (`gcc.exe` is `gcc`).
pub fn program_name(file_name: &std::ffi::OsStr) -> &std::ffi::OsStr {
    let p = Path::new(file_name);
    match (p.file_stem(), p.extension()) {
        (Some(stem), Some(ext)) if cfg!(windows) && ext.eq_ignore_ascii_case("exe") => stem,
        _ => file_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_lookup_follows_the_host_conventions() {
        assert!(names_a_path(b"./cc"));
        assert!(names_a_path(b"/usr/bin/gcc"));
        assert!(!names_a_path(b"gcc"));
        let c = program_candidates(Path::new("/bin"), std::ffi::OsStr::new("gcc"));
        assert_eq!(c.last().unwrap(), Path::new("/bin/gcc"));
        if cfg!(windows) {
            assert!(c.len() > 1);
        } else {
            assert_eq!(c.len(), 1);
            // A backslash is a name's byte on Unix, and `gcc.exe` is its own name.
            assert!(!names_a_path(br"dir\cc"));
            assert_eq!(program_name("gcc.exe".as_ref()), "gcc.exe");
        }
        assert_eq!(program_name("gcc".as_ref()), "gcc");
    }
}
