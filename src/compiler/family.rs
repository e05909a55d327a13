//! The interface every compiler family implements, and the only one the engine uses
//! (docs/architecture.md, "Adding a compiler family").
//!
//! A [`Family`] recognises its programs and turns an invocation into a [`Compile`]: its key
//! and everything the engine's one pipeline asks of it afterwards. For a hit: whether a
//! manifest entry's recorded inputs hold for this caller ([`Compile::fit`]) and, with the
//! pack open, where each stored output goes and what the compiler would have printed
//! ([`Fit::serve`]). For a miss: what to add to the command line ([`Compile::start_miss`]),
//! then the outputs to store and the inputs to record ([`Compile::collect`]).
//!
//! The engine does the rest for every family alike: the manifest lookup, the remote tier,
//! opening and verifying packs, delivery (projection or real files), writing the pack,
//! publishing, turning outputs in a mount into projections, and the stats.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{KeyError, Language, Uncacheable};
use crate::deliver::Placed;
use crate::fsutil::NanoTime;
use crate::fsview::FsView;
use crate::fsview::fsclock::CompileStart;
use crate::fsview::hashcache::HashCache;
use crate::hash::Digest;
use crate::proto::OnWriteError;
use crate::store::manifest::Inputs;
use crate::store::pack::{Pack, Written};
use crate::util::FastBuild;

/// A compile as its caller asked for it, as the compiler would see it.
pub struct Invocation<'a> {
    /// The command line; `argv[0]` is the compiler.
    pub argv: &'a [OsString],
    /// Absolute.
    pub cwd: &'a Path,
    pub env: &'a HashMap<OsString, OsString>,
    pub stderr_tty: bool,
    pub umask: u32,
    /// When the request arrived (realtime ns), before the daemon read the changes reported
    /// so far: what it learns of the files during the request is at least this recent.
    pub arrived: NanoTime,
}

/// The engine's files, as a family may ask for them while it computes a key.
pub trait Views {
    /// If `path` reaches one of the daemon's mounts only through a symlink: the pair
    /// (`path`, where it leads).
    fn alias(&self, path: &Path) -> Option<(PathBuf, PathBuf)>;
    /// The files as the engine sees them (inside its mounts through their cores), with
    /// paths under the aliases' first halves read where they lead.
    fn view(&self, aliases: Vec<(PathBuf, PathBuf)>) -> Box<dyn FsView + '_>;
}

/// What every key computation may use besides the caller.
pub struct KeyContext<'a> {
    /// Host files: the toolchain.
    pub hashes: &'a HashCache,
    /// The relaxations in force: they change what an entry may serve, so they are keyed.
    pub sloppiness: crate::config::Sloppiness,
    pub views: &'a dyn Views,
}

/// A compiler family: one folder under `compiler/`, one line in [`super::families`].
pub trait Family: Send + Sync {
    /// Whether `program` (argv\[0\]) is one of this family's compilers, and the language
    /// its stats count under until the arguments decide.
    fn language_of(&self, program: &Path) -> Option<Language>;
    /// Parses and keys an invocation. An uncacheable one runs the compiler, its reason
    /// counted.
    fn prepare(
        &self,
        caller: &Invocation<'_>,
        ctx: &KeyContext<'_>,
    ) -> Result<Box<dyn Compile>, KeyError>;
}

/// What the engine adds to a miss's command line and how the wrapper runs it.
#[derive(Debug, Default)]
pub struct MissPlan {
    pub extra_args: Vec<Vec<u8>>,
    /// Where in the command line (after the compiler) they go; `None`: at the end.
    pub insert_at: Option<usize>,
    /// Hold stderr until the compiler exits.
    pub buffer_stderr: bool,
    /// A failed compile whose stderr holds this is run again without `extra_args`.
    pub rerun_if_failed_with: Option<Vec<u8>>,
    /// Strip colours from what the compiler prints (they were forced for storage).
    pub strip_colour: bool,
}

/// A successful miss, as the engine hands it to [`Compile::collect`].
pub struct Done<'a> {
    pub fs: &'a dyn FsView,
    pub start: &'a CompileStart,
    /// The file [`Compile::scratch_suffix`] asked for.
    pub scratch: Option<&'a Path>,
    pub stderr: &'a [u8],
}

/// What a successful miss leaves to store.
pub struct ToStore {
    /// (pack entry name, absolute path), in pack order.
    pub outputs: Vec<(String, PathBuf)>,
    pub inputs: Inputs,
    /// The pack's description (the engine adds `created`).
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// The diagnostics to store when not the ones the compiler printed.
    pub stderr: Option<Vec<u8>>,
}

/// A keyed compile in flight.
pub trait Compile: Send {
    fn key(&self) -> Digest;
    /// The language its stats count under.
    fn language(&self) -> Language;
    /// For the log.
    fn describe(&self) -> String;
    /// Paths that reach a mount through a symlink (see [`Views::alias`]): the engine reads
    /// and delivers through them for this compile.
    fn aliases(&self) -> &[(PathBuf, PathBuf)];
    /// The compiler fails when a directory it writes into is missing; a hit must not hide
    /// that. The reason is counted, the detail is what the wrapper is told.
    fn check_dirs(&self, fs: &dyn FsView) -> Result<(), Uncacheable>;
    /// Directories whose filesystems' clocks the miss's start is stamped on (the
    /// checkout's, the outputs').
    fn stamp_dirs(&self) -> Vec<PathBuf>;
    /// Whether an entry's recorded inputs hold for this caller now: what serves it.
    fn fit<'a>(
        &'a self,
        caller: &Invocation<'_>,
        fs: &dyn FsView,
        inputs: &Inputs,
    ) -> Option<Box<dyn Fit + 'a>>;
    /// A private file the miss needs (named `<token>.<suffix>` in the scratch dir).
    fn scratch_suffix(&self) -> Option<&'static str> {
        None
    }
    /// The compiler is about to run: what to add to its command line.
    fn start_miss(&mut self, scratch: Option<&Path>) -> MissPlan;
    /// After a successful miss: the outputs to store and the inputs to record.
    fn collect(&self, done: &Done<'_>) -> Result<ToStore, Uncacheable>;
    /// With the pack written (`file`, `written`): complete the entry's inputs from what the
    /// outputs hold (rustc: the paths the entry is bound to).
    fn bind(
        &self,
        _file: &File,
        _written: &Written,
        _inputs: &mut Inputs,
        _sloppiness: crate::config::Sloppiness,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

/// An entry that holds for a caller.
pub trait Fit {
    /// Where the pack's outputs go and what to replay; `None` when the pack does not hold
    /// the outputs this compile expects.
    fn serve(&self, pack: &Arc<Pack>, fs: &dyn FsView) -> Option<Serve>;
}

/// A hit, ready to deliver.
pub struct Serve {
    pub outputs: Vec<Placed>,
    /// The outputs' mtimes are at least this (the newest input's).
    pub mtime_floor: NanoTime,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// What the compiler does when writing its diagnostics fails.
    pub on_write_error: OnWriteError,
    /// Served under other paths than it was stored with.
    pub rebased: bool,
}

/// The file name of a program, without `.exe`.
pub fn program_name(program: &Path) -> &str {
    let name = program
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.strip_suffix(".exe").unwrap_or(name)
}

/// Whether the paths an entry needs absent are still absent. `here` maps a recorded path
/// to the current one.
pub fn absent_holds(
    fs: &dyn FsView,
    here: &dyn Fn(&[u8]) -> PathBuf,
    inputs: &Inputs,
    memo: Option<(&AbsentMemo, NanoTime)>,
) -> bool {
    let arrived = memo.map_or(0, |(_, t)| t);
    let memo = memo.map(|(m, _)| m);
    if !inputs.absent.iter().all(|p| fs.absent(&here(p))) {
        return false;
    }
    for group in &inputs.absent_under {
        let dir = here(&group.dir);
        let now = match fs.meta(&dir) {
            Ok(Some(m)) if m.is_dir => Some(m.stat),
            _ => None,
        };
        let stamp_now = now.map(|s| (s.ino, s.mtime, s.ctime));
        if group.stamp.is_some() && group.stamp == stamp_now {
            continue;
        }
        // Verified since with the directory as it is now (a stored stamp that no longer
        // holds, refreshed in memory).
        let memo = memo.filter(|_| group.memo_id != 0);
        if let (Some(m), Some(s)) = (memo, stamp_now)
            && m.0.lock().get(&group.memo_id) == Some(&(dir.clone(), s))
        {
            continue;
        }
        let Some(by_dir_alone) = names_absent_how(fs, &dir, &group.names) else {
            return false;
        };
        if let (Some(m), Some(s)) = (memo, now)
            && by_dir_alone
            && !fs.in_mount(&dir)
            && settled(&s, fs, arrived)
        {
            let mut map = m.0.lock();
            if map.len() >= AbsentMemo::MAX {
                map.clear();
            }
            map.insert(group.memo_id, (dir, (s.ino, s.mtime, s.ctime)));
        }
    }
    true
}

/// Whether a directory's times are old enough that any change since `before` (the
/// request's arrival, before the changes reported so far were read) would have changed
/// them: the stamp and the listing checked against it may come from different moments of
/// the request (a stamp read fresh, a listing as of the last events read), so the stamp
/// must predate both by more than a timestamp granule.
fn settled(s: &crate::os::FileStat, fs: &dyn FsView, before: NanoTime) -> bool {
    before - s.mtime.max(s.ctime)
        > crate::fsview::hashcache::RACY_WINDOW_NS + fs.clocks().slack(s.dev)
}

/// Groups of absent names verified in this daemon, with the directory they were looked up
/// in and the stamp (inode, mtime, ctime) it had then: what a stored stamp says, for groups
/// whose stored stamp no longer holds (the directory changed after the entry was stored).
/// Keyed by the group's number among decoded manifests (`AbsentUnder::memo_id`).
#[derive(Default)]
pub struct AbsentMemo(Mutex<HashMap<u64, (PathBuf, DirStamp), FastBuild>>);

/// A directory's inode, mtime and ctime.
type DirStamp = (u64, NanoTime, NanoTime);

impl AbsentMemo {
    const MAX: usize = 100_000;
}

/// Whether none of `names` (relative paths) exists under `dir`. Many names are checked
/// against one listing of `dir` (the directory a compile writes its object into changes on
/// every compile, so its stamp rarely holds): only names whose first component is listed
/// need a lookup of their own.
#[cfg(test)]
fn names_absent(fs: &dyn FsView, dir: &Path, names: &[Vec<u8>]) -> bool {
    names_absent_how(fs, dir, names).is_some()
}

/// [`names_absent`], and how: `None` if one exists; `Some(true)` if the directory's own
/// entries vouch for every name (none starts with an entry of it), so that while the
/// directory is unchanged they all stay absent; `Some(false)` if some name lies below an
/// entry (a change there does not change the directory).
fn names_absent_how(fs: &dyn FsView, dir: &Path, names: &[Vec<u8>]) -> Option<bool> {
    const LIST_ABOVE: usize = 8;
    // Anything but a sure absence (an error too) counts as there.
    let exists = |n: &[u8]| !fs.absent(&dir.join(crate::os::os_str(n)));
    let components = |n: &'_ [u8]| -> Vec<Vec<u8>> {
        n.split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(<[u8]>::to_vec)
            .collect()
    };
    let listed = if names.len() <= LIST_ABOVE {
        None
    } else {
        fs.list_dir(dir).ok()
    };
    let Some(listed) = listed else {
        // Few names, or a directory gone or unreadable (nothing below it that a lookup
        // would find): each looked up.
        if names.iter().any(|n| exists(n)) {
            return None;
        }
        return Some(names.iter().all(|n| {
            let c = components(n);
            c.len() == 1 && c[0] != b".."
        }));
    };
    let mut by_dir_alone = true;
    for n in names {
        let below_an_entry = match components(n).first() {
            Some(f) if f.as_slice() != b".." => listed.contains(&*crate::os::os_str(f)),
            _ => true,
        };
        if below_an_entry {
            by_dir_alone = false;
            if exists(n) {
                return None;
            }
        }
    }
    Some(by_dir_alone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsview::HostFs;

    #[test]
    fn absent_names_checked_by_listing_and_by_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let hashes = HashCache::new();
        let fs = HostFs { hashes: &hashes };
        let many: Vec<Vec<u8>> = (0..20)
            .map(|i| format!("sub{i}/h{i}.h").into_bytes())
            .chain([b"./top.h".to_vec(), b"a.h.gch".to_vec()])
            .collect();
        for names in [&many[..], &many[18..]] {
            assert!(names_absent(&fs, dir.path(), names));
        }
        // A file appears under a listed first component, and at the top.
        std::fs::create_dir(dir.path().join("sub19")).unwrap();
        assert!(
            names_absent(&fs, dir.path(), &many),
            "the dir alone is not the name"
        );
        std::fs::write(dir.path().join("sub19/h19.h"), "").unwrap();
        assert!(!names_absent(&fs, dir.path(), &many));
        assert!(!names_absent(&fs, dir.path(), &many[18..]));
        std::fs::remove_file(dir.path().join("sub19/h19.h")).unwrap();
        std::fs::write(dir.path().join("top.h"), "").unwrap();
        assert!(!names_absent(&fs, dir.path(), &many));
        // A directory that is gone holds nothing.
        assert!(names_absent(&fs, &dir.path().join("gone"), &many));
    }

    #[test]
    fn a_group_verified_since_is_trusted_while_its_directory_is_unchanged() {
        use crate::store::manifest::AbsentUnder;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("inc");
        std::fs::create_dir(&d).unwrap();
        let hashes = HashCache::new();
        let fs = HostFs { hashes: &hashes };
        fs.dir_device(&d);
        let inputs = Inputs {
            absent_under: vec![AbsentUnder {
                dir: b"inc".to_vec(),
                // Stored when the directory was otherwise: no longer holds.
                stamp: Some((1, 2, 3)),
                names: (0..12).map(|i| format!("h{i}.h").into_bytes()).collect(),
                memo_id: 7,
            }],
            ..Inputs::default()
        };
        let here = |p: &[u8]| dir.path().join(crate::os::os_str(p));
        let memo = AbsentMemo::default();
        let now = crate::util::realtime_ns;
        // Too fresh a directory is checked but not remembered.
        assert!(absent_holds(&fs, &here, &inputs, Some((&memo, now()))));
        assert!(memo.0.lock().is_empty());
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(absent_holds(&fs, &here, &inputs, Some((&memo, now()))));
        assert_eq!(memo.0.lock().len(), 1, "verified and remembered");
        assert!(absent_holds(&fs, &here, &inputs, Some((&memo, now()))));
        // A directory changed after the request arrived (its stamp may then be newer than
        // what a listing read before says) is checked but not remembered.
        let mut other = inputs.clone();
        other.absent_under[0].memo_id = 9;
        let arrived = now();
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::write(d.join("unrelated"), "").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(absent_holds(&fs, &here, &other, Some((&memo, arrived))));
        assert!(
            !memo.0.lock().contains_key(&9),
            "stamp newer than the request"
        );
        // A name appears: the directory's stamp changes, the names are checked again.
        std::fs::write(d.join("h7.h"), "").unwrap();
        assert!(!absent_holds(&fs, &here, &inputs, Some((&memo, now()))));
        std::fs::remove_file(d.join("h7.h")).unwrap();
        assert!(absent_holds(&fs, &here, &inputs, Some((&memo, now()))));
        // A name below an entry of the directory: a file created there leaves the
        // directory's stamp as it was, so such a group is checked each time.
        std::fs::create_dir(d.join("sub")).unwrap();
        let mut deeper = inputs.clone();
        deeper.absent_under[0].names.push(b"sub/x.h".to_vec());
        deeper.absent_under[0].memo_id = 8;
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
        let t = filetime::FileTime::from_system_time(old);
        filetime::set_file_times(&d, t, t).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(absent_holds(&fs, &here, &deeper, Some((&memo, now()))));
        assert!(
            !memo.0.lock().contains_key(&8),
            "not vouched for by the directory alone"
        );
        std::fs::write(d.join("sub/x.h"), "").unwrap();
        assert!(!absent_holds(&fs, &here, &deeper, Some((&memo, now()))));
    }
}
