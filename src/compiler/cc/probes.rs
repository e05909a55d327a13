//! What a compiler finds by looking at directories (its sub-programs and `specs` file on its
//! program path, the GCC installation clang picks, which `-I` directories exist) is learned
//! once per daemon by running it, and holds while those directories are unchanged. A
//! [`Probes`] set records the state of each path the fact came from; [`Probes::hold`] says
//! whether every one is still the same (a few `stat`s), else the fact is learned again.

use std::path::{Path, PathBuf};

use crate::os::FileStat;

/// A directory changed this recently (ns) may change again within the same timestamp tick
/// unseen: its stamp is not trusted yet.
const SETTLE_NS: i128 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// A directory with this inode (its contents do not matter).
    Dir(u64),
    /// Nothing there (or something `stat` cannot reach).
    Absent,
    /// Something there that is not a directory.
    NotDir,
    /// A directory with this inode, mtime and ctime: no entry was added, removed or
    /// renamed in it. `None`: changed too recently to be trusted.
    Listing(Option<(u64, i128, i128)>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probes(Vec<(PathBuf, State)>);

/// What is at a path: whether it is a directory, and its stat (`None`: nothing there).
pub type StatFn<'a> = &'a dyn Fn(&Path) -> Option<(bool, FileStat)>;

fn stat(path: &Path) -> Option<(bool, FileStat)> {
    let m = std::fs::metadata(path).ok()?;
    let s = FileStat::of_path(path, Some(&m)).ok()?;
    Some((m.is_dir(), s))
}

fn state_now(path: &Path, kind: &State, stat: StatFn) -> State {
    match (kind, stat(path)) {
        (_, None) => State::Absent,
        (State::Dir(_), Some((true, s))) => State::Dir(s.ino),
        (State::Listing(_), Some((true, s))) => {
            let now = crate::util::realtime_ns();
            let settled = now - s.mtime.max(s.ctime) > SETTLE_NS;
            State::Listing(settled.then_some((s.ino, s.mtime, s.ctime)))
        }
        (_, Some((true, _))) => State::Dir(0),
        (_, Some((false, _))) => State::NotDir,
    }
}

impl Probes {
    pub fn new() -> Probes {
        Probes::default()
    }

    fn add(&mut self, path: PathBuf, kind: State) {
        if self.0.iter().any(|(p, _)| *p == path) {
            return;
        }
        let state = state_now(&path, &kind, &stat);
        self.0.push((path, state));
    }

    /// Records whether `path` is a directory, and which (or what else it is).
    pub fn entry(&mut self, path: &Path) {
        self.add(path.to_path_buf(), State::Dir(0));
    }

    /// Records the listing of `path` if it is a directory, else of the nearest existing
    /// directory above it (where it would appear): a name added anywhere on the way shows.
    pub fn listing(&mut self, path: &Path) {
        let mut p = path.to_path_buf();
        loop {
            if matches!(stat(&p), Some((true, _))) {
                self.add(p, State::Listing(None));
                return;
            }
            if !p.pop() || p.as_os_str().is_empty() {
                return;
            }
        }
    }

    /// Whether every recorded path is as it was.
    pub fn hold(&self) -> bool {
        self.hold_with(&stat)
    }

    /// [`Probes::hold`], asking `stat` (the daemon's watched view of the files).
    pub fn hold_with(&self, stat: StatFn) -> bool {
        self.0
            .iter()
            .all(|(p, s)| !matches!(s, State::Listing(None)) && state_now(p, s, stat) == *s)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The directories of a `PATH`-like list (`:`-separated, `;` on Windows), as given.
pub fn path_list(value: &std::ffi::OsStr) -> Vec<PathBuf> {
    std::env::split_paths(value)
        .filter(|p| !p.as_os_str().is_empty())
        .collect()
}

/// The directories of a `-print-search-dirs` line (`programs: =a:b:c`).
pub fn search_dirs_line(text: &str, label: &str) -> Vec<PathBuf> {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|rest| {
            let rest = rest.trim_start().trim_start_matches('=');
            std::env::split_paths(rest)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle(p: &Path) {
        // Backdate the directory so that its stamp is trusted at once.
        let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        filetime::set_file_mtime(p, old).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }

    #[test]
    fn probes_see_names_appear_and_kinds_change() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("bin")).unwrap();
        std::fs::write(d.join("file"), "").unwrap();
        settle(&d.join("bin"));
        let mut p = Probes::new();
        p.listing(&d.join("bin"));
        p.listing(&d.join("missing/deeper"));
        p.entry(&d.join("file"));
        assert!(p.hold());
        // A program appears in a listed directory.
        std::fs::write(d.join("bin/as"), "").unwrap();
        assert!(!p.hold());

        let mut p = Probes::new();
        p.entry(&d.join("file"));
        p.entry(&d.join("gone"));
        assert!(p.hold());
        std::fs::remove_file(d.join("file")).unwrap();
        std::fs::create_dir(d.join("file")).unwrap();
        assert!(!p.hold(), "a file that became a directory");
    }

    #[test]
    fn a_fresh_listing_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Probes::new();
        std::fs::create_dir(dir.path().join("new")).unwrap();
        p.listing(&dir.path().join("new"));
        assert!(!p.hold());
    }

    #[test]
    fn search_dirs_lines() {
        let text = "install: /x/\nprograms: =/a/:/b\nlibraries: =/c\n";
        assert_eq!(
            search_dirs_line(text, "programs:"),
            vec![PathBuf::from("/a/"), PathBuf::from("/b")]
        );
        assert_eq!(
            search_dirs_line(text, "libraries:"),
            vec![PathBuf::from("/c")]
        );
        assert!(search_dirs_line(text, "nothing:").is_empty());
    }
}
