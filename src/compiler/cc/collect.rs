//! After a successful C or C++ compile: its outputs, and what its manifest entry records so
//! that a later hit is exactly this compile (docs/c.md, "The manifest entry"):
//!
//! - every file the preprocessor read, by content, and every file a lookup found without
//!   reading it (a `__has_include`, a second `#include` of a `#pragma once` file);
//! - every place a header would have been found before the one used, which must stay
//!   without a file (includes.rs), grouped under the directories that vouch for them;
//! - the "same file" classes of `#pragma once` files, which the compilers judge by
//!   identity, not content;
//! - the date for `__DATE__`, in the caller's time zone.
//!
//! Anything it cannot model (computed `__has_include`, `.incbin`, `#pragma GCC dependency`,
//! time macros pasted from pieces) makes the result unstorable, with the reason.

use crate::os::OsStringExt;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::args::Lang;
use super::identity::{CcFacts, Driver};
use super::includes;
use super::scan::{self, Scan};
use super::{CcJob, DATE_VAR, date_value};
use crate::compiler::{Uncacheable, depinfo};
use crate::fsutil::resolve;
use crate::fsview::FsView;
use crate::fsview::fsclock::CompileStart;
use crate::hash::Digest;
use crate::os::FileStat;
use crate::store::manifest::{AbsentUnder, Check, FileDep, Inputs};

/// Scans of file contents by digest: headers are shared by many compiles.
#[derive(Default)]
pub struct ScanCache(Mutex<HashMap<Digest, std::sync::Arc<Scan>>>);

impl ScanCache {
    fn get(
        &self,
        d: &Digest,
        read: impl FnOnce() -> std::io::Result<Vec<u8>>,
    ) -> std::io::Result<std::sync::Arc<Scan>> {
        if let Some(s) = self.0.lock().get(d) {
            return Ok(s.clone());
        }
        let s = std::sync::Arc::new(scan::scan(&read()?));
        let mut m = self.0.lock();
        if m.len() > 200_000 {
            m.clear();
        }
        m.insert(*d, s.clone());
        Ok(s)
    }
}

/// What a successful miss leaves to store.
pub struct Collected {
    pub inputs: Inputs,
    /// (role, path as the compile sees it), in pack order.
    pub outputs: Vec<(&'static str, PathBuf)>,
}

/// The files an entry records, with what was learned of each.
#[derive(Default)]
struct Files {
    deps: Vec<FileDep>,
    scans: Vec<Scan>,
    stats: Vec<FileStat>,
}

impl Files {
    /// Records a file (regular, the same for every reader) by content.
    fn add(
        &mut self,
        fs: &dyn FsView,
        scans: &ScanCache,
        start: &CompileStart,
        spelled: &str,
        abs: &Path,
    ) -> Result<(), Uncacheable> {
        fs.check_shared(abs)
            .map_err(|e| Uncacheable::new("not a regular file", e))?;
        let (digest, stat) = fs
            .digest(abs)
            .map_err(|e| Uncacheable::new("unreadable input", e.to_string()))?;
        let too_new = |t| start.too_new(t, stat.dev, fs.clocks());
        if too_new(stat.mtime) || too_new(stat.ctime) {
            return Err(Uncacheable::new(
                "input modified during compile",
                format!("{} is newer than the compile's start", abs.display()),
            ));
        }
        let s = scans
            .get(&digest, || fs.read(abs))
            .map_err(|e| Uncacheable::new("unreadable input", format!("{}: {e}", abs.display())))?;
        self.deps.push(FileDep {
            path: spelled.as_bytes().to_vec(),
            size: stat.size,
            digest,
        });
        self.scans.push((*s).clone());
        self.stats.push(stat);
        Ok(())
    }
}

/// After a successful compile: the outputs to store and the inputs the entry records.
/// `private_dep` is the dependency file zcfs asked for (when the user asked for none).
pub fn collect(
    job: &CcJob,
    fs: &dyn FsView,
    start: &CompileStart,
    private_dep: &Path,
    facts: &CcFacts,
    scans: &ScanCache,
) -> Result<Collected, Uncacheable> {
    let cwd = &job.cwd;
    let at = |p: &Path| resolve(cwd, p);
    let t0 = std::time::Instant::now();

    // The dependency list: the source and everything the preprocessor read.
    let deps: Vec<String> = if !job.lang.preprocessed() {
        vec![job.args.input.to_string_lossy().into_owned()]
    } else {
        let dep_path = if job.needs_dependency_pass() {
            dependency_pass(job, private_dep)?;
            private_dep.to_path_buf()
        } else if job.args.dep.is_some() {
            at(&job.args.dep_file().expect("dep options give a dep file"))
        } else {
            private_dep.to_path_buf()
        };
        let text = fs.read(&dep_path).map_err(|e| {
            Uncacheable::new("missing output", format!("{}: {e}", dep_path.display()))
        })?;
        let text = String::from_utf8(text)
            .map_err(|_| Uncacheable::new("non-utf8 dep-info", dep_path.display().to_string()))?;
        depinfo::parse(&text, depinfo::Dialect::Make).deps
    };
    if deps.is_empty() {
        return Err(Uncacheable::new("empty dependency list", job.describe()));
    }
    if let Some(p) = deps
        .iter()
        .find(|d| d.ends_with(".gch") || d.ends_with(".pch") || d.ends_with(".pcm"))
    {
        return Err(Uncacheable::new("precompiled header", p.clone()));
    }

    let mut files = Files::default();
    for d in &deps {
        files.add(fs, scans, start, d, &at(Path::new(d)))?;
    }
    check_scans(job, fs, &mut files, &deps)?;
    let env = dates(job, &files.scans)?;

    let t_files = t0.elapsed();
    let mut absent = Vec::new();
    let mut absent_under = Vec::new();
    let mut checks = Vec::new();
    if job.lang.preprocessed() {
        let search = facts
            .search_list(
                &job.compiler,
                job.search_key,
                &job.preprocessor_args(),
                job.lang.name(),
                &job.run_env(),
                cwd,
            )
            .map_err(|e| Uncacheable::new("include search list", format!("{e:#}")))?;
        if search.header_map {
            return Err(Uncacheable::new(
                "header map",
                "an -I names a clang header map",
            ));
        }
        for m in &search.missing {
            // clang says "nonexistent" of a file too: while it stays one, it is skipped.
            match fs.meta(&at(Path::new(m))) {
                Ok(Some(meta)) if !meta.is_dir => {
                    files.add(fs, scans, start, m, &at(Path::new(m)))?
                }
                _ => absent.push(m.as_bytes().to_vec()),
            }
        }
        // A search path that is a file: skipped with a warning while it stays one.
        for f in &search.not_dirs {
            files.add(fs, scans, start, f, &at(Path::new(f)))?;
        }
        let forced: Vec<String> = job
            .args
            .forced_includes
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        let includes::Candidates {
            all: mut cands,
            preceding,
        } = includes::candidates(&deps, &files.scans[..deps.len()], &search, &forced);
        if job.identity.family == Driver::Gcc {
            // gcc tries `<path>.gch` before every header path it looks at, and a header
            // read from a precompiled one is missing from the dependency list: each such
            // name must be absent now (else pass) and stay absent for a hit (CU5).
            let gch: Vec<String> = deps
                .iter()
                .skip(1)
                .chain(cands.iter())
                .map(|p| format!("{p}.gch"))
                .collect();
            cands.extend(gch);
        } else {
            // clang uses `<file>.pch` or `<file>.gch` for a forced include (`-include`),
            // wherever the search found it.
            let forced: Vec<&OsStr> = job
                .args
                .forced_includes
                .iter()
                .filter_map(|f| f.file_name())
                .collect();
            let pch: Vec<String> = deps
                .iter()
                .skip(1)
                .filter(|d| {
                    Path::new(d)
                        .file_name()
                        .is_some_and(|n| forced.contains(&n))
                })
                .flat_map(|d| [format!("{d}.pch"), format!("{d}.gch")])
                .collect();
            cands.extend(pch);
        }
        let mut place = Placement {
            fs,
            cwd,
            listing: Listings::default(),
            per_dir: HashMap::new(),
            groups: Default::default(),
        };
        // A file a lookup found but the compile did not read matters when a `__has_include`
        // asked for it, or when `#pragma once` may have skipped it (another name of a file
        // read); other such files are named in branches not taken.
        let once = files.scans.iter().any(|s| s.once || s.imports);
        let asked: Vec<String> = files
            .scans
            .iter()
            .flat_map(|s| s.has_include_names.iter().map(|n| format!("/{n}")))
            .collect();
        let matters = |c: &str| {
            once || preceding.contains(c)
                || asked
                    .iter()
                    .any(|n| c.ends_with(n.as_str()) || c == &n[1..])
        };
        // Precompiled headers first: one that exists is the reason not to store.
        let mut cands: Vec<String> = cands.into_iter().collect();
        cands.sort_by_key(|c| !(c.ends_with(".gch") || c.ends_with(".pch")));
        for c in cands {
            match place.candidate(&c)? {
                Candidate::Absent => {}
                Candidate::Single => absent.push(c.into_bytes()),
                Candidate::Directory => checks.push(Check::NoFile(c.into_bytes())),
                Candidate::File(_) if matters(&c) => {
                    // Found by a lookup but not read (a `__has_include`, a `#pragma once`
                    // file included again under another name), or where a lookup passed
                    // before finding what it read: its content counts.
                    files.add(fs, scans, start, &c, &at(Path::new(&c)))?;
                }
                Candidate::File(m) => {
                    // Named in a branch not taken: it does not count, unless it is new
                    // (then it may have appeared while a lookup ran).
                    if start.too_new(m.stat.mtime, m.stat.dev, fs.clocks())
                        || start.too_new(m.stat.ctime, m.stat.dev, fs.clocks())
                    {
                        return Err(Uncacheable::new(
                            "input modified during compile",
                            format!("{c} appeared during the compile"),
                        ));
                    }
                }
            }
        }
        for (dir, names) in place.groups {
            let abs = at(&dir);
            let stamp = match fs.meta(&abs) {
                Ok(Some(m))
                    if m.is_dir
                        && !fs.in_mount(&abs)
                        && !start.too_new(m.stat.mtime, m.stat.dev, fs.clocks())
                        && !start.too_new(m.stat.ctime, m.stat.dev, fs.clocks()) =>
                {
                    Some((m.stat.ino, m.stat.mtime, m.stat.ctime))
                }
                _ => None,
            };
            absent_under.push(AbsentUnder {
                dir: dir.into_os_string().into_vec(),
                stamp,
                names,
                memo_id: 0,
            });
        }
    }
    if let Some(c) = same_files(job.identity.family, &files) {
        checks.push(c);
    }

    tracing::trace!(
        "collect {}: files {t_files:?}, absent {:?}",
        job.describe(),
        t0.elapsed()
    );

    Ok(Collected {
        inputs: Inputs {
            files: files.deps,
            env,
            absent,
            absent_under,
            bindings: Vec::new(),
            checks,
        },
        outputs: outputs(job, fs, start)?,
    })
}

/// What the files' text asks for that zcfs cannot model, and the lookups through
/// `__has_include` wrapper macros.
fn check_scans(
    job: &CcJob,
    fs: &dyn FsView,
    files: &mut Files,
    deps: &[String],
) -> Result<(), Uncacheable> {
    let assembly = matches!(job.lang, Lang::Asm | Lang::AsmCpp);
    for (d, s) in deps.iter().zip(&files.scans) {
        if (assembly && s.asm_reads) || (!assembly && s.c_reads) {
            return Err(Uncacheable::new(
                "unsupported code directive",
                format!("{d}: .incbin, .include or #embed"),
            ));
        }
        if s.timestamp {
            return Err(Uncacheable::new(
                "time macros",
                format!("{d}: __TIMESTAMP__"),
            ));
        }
        if s.pragma_dependency {
            return Err(Uncacheable::new(
                "pragma GCC dependency",
                format!("{d}: its warning depends on file times"),
            ));
        }
        if s.computed_has_include {
            return Err(Uncacheable::new(
                "computed include",
                format!("{d}: __has_include of a computed name"),
            ));
        }
    }
    let scans = &files.scans;
    let mut pasted_time = false;
    if scans.iter().any(|s| s.pastes) && !scans.iter().any(|s| s.time) {
        // A time macro may be pasted together from pieces: if it can be, ask the
        // preprocessor whether the output depends on the time.
        let pieces: HashSet<&str> = scans
            .iter()
            .flat_map(|s| s.date_pieces.iter().map(String::as_str))
            .collect();
        let formable: Vec<&str> = scan::TIME_MACRO_NAMES
            .into_iter()
            .filter(|n| scan::pasteable(n, &pieces))
            .collect();
        if !formable.is_empty() && job.lang.preprocessed() && depends_on_time(job)? {
            if formable.contains(&"__TIMESTAMP__") {
                return Err(Uncacheable::new(
                    "time macros",
                    "a time macro pasted together from pieces",
                ));
            }
            pasted_time = true;
        }
    }
    if pasted_time {
        // As if it used `__TIME__` (and `__DATE__`).
        files.scans[0].time = true;
        files.scans[0].date = true;
    }
    let scans = &files.scans;
    // Uses of macros that wrap `__has_include` are lookups too; a macro that passes its
    // parameter to a wrapper is one in turn.
    let mut wrappers: Vec<String> = scans
        .iter()
        .flat_map(|s| s.has_include_wrappers.iter().cloned())
        .collect();
    if wrappers.is_empty() {
        return Ok(());
    }
    let texts: Vec<Vec<u8>> = deps
        .iter()
        .map(|d| fs.read(&resolve(&job.cwd, Path::new(d))))
        .collect::<Result<_, _>>()
        .map_err(|e| Uncacheable::new("unreadable input", e.to_string()))?;
    // The same bytes as were hashed and scanned.
    if let Some((d, _)) = deps
        .iter()
        .zip(&texts)
        .zip(&files.deps)
        .find(|((_, t), f)| Digest::of(t) != f.digest)
        .map(|(dt, _)| dt)
    {
        return Err(Uncacheable::new(
            "input modified during compile",
            format!("{d} changed while it was read"),
        ));
    }
    for _ in 0..8 {
        let uses: Vec<scan::WrapperUses> = texts
            .iter()
            .map(|t| scan::wrapper_uses(t, &wrappers))
            .collect();
        let new: Vec<String> = uses.iter().flat_map(|u| u.new_wrappers.clone()).collect();
        if new.is_empty() {
            for (i, u) in uses.into_iter().enumerate() {
                if u.computed {
                    return Err(Uncacheable::new(
                        "computed include",
                        format!("{}: __has_include of a computed name", deps[i]),
                    ));
                }
                files.scans[i].quote.extend(u.quote);
                files.scans[i].quote_anywhere.extend(u.quote_anywhere);
                files.scans[i].bracket.extend(u.bracket);
                files.scans[i].has_include_names.extend(u.names);
            }
            return Ok(());
        }
        wrappers.extend(new);
    }
    Err(Uncacheable::new(
        "computed include",
        "__has_include wrapped too deeply",
    ))
}

/// Whether the preprocessed text differs between two time zones 26 hours apart (so that
/// both the date and the time of day differ), `SOURCE_DATE_EPOCH` unset.
fn depends_on_time(job: &CcJob) -> Result<bool, Uncacheable> {
    let run = |tz: &str| -> Result<Vec<u8>, Uncacheable> {
        let mut cmd = std::process::Command::new(&job.compiler);
        cmd.args(job.preprocessor_args())
            .args(["-x", job.lang.name()])
            .arg(&job.args.input)
            .args(["-E", "-o", "-"])
            .env_clear()
            .envs(job.run_env().iter())
            .env("TZ", tz)
            .env_remove("SOURCE_DATE_EPOCH")
            .current_dir(&job.cwd)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        crate::masquerade::guard(&mut cmd, job.compiler.as_os_str());
        match cmd.output() {
            Ok(o) if o.status.success() => Ok(o.stdout),
            Ok(o) => Err(Uncacheable::new(
                "time macros",
                format!("the preprocessor check failed: {}", o.status),
            )),
            Err(e) => Err(Uncacheable::new("time macros", e.to_string())),
        }
    };
    Ok(run("UTC-14")? != run("UTC+12")?)
}

/// What the time macros depend on: `SOURCE_DATE_EPOCH` where the compiler takes them from
/// it, else the date in the caller's time zone (`__DATE__`, holds for the day); `__TIME__`
/// without it is never the same twice (CK10).
fn dates(job: &CcJob, scans: &[Scan]) -> Result<Vec<(String, Option<String>)>, Uncacheable> {
    let uses_date = scans.iter().any(|s| s.date);
    let uses_time = scans.iter().any(|s| s.time);
    let mut env = Vec::new();
    if !uses_date && !uses_time {
        return Ok(env);
    }
    let var = |k: &str| {
        job.env
            .get(OsStr::new(k))
            .map(|v| v.to_string_lossy().into_owned())
    };
    let sde = var("SOURCE_DATE_EPOCH").filter(|_| job.identity.honours_sde);
    match sde {
        Some(v) => env.push(("SOURCE_DATE_EPOCH".to_string(), Some(v))),
        None if uses_time => {
            return Err(Uncacheable::new(
                "time macros",
                if job.identity.honours_sde {
                    "__TIME__ without SOURCE_DATE_EPOCH"
                } else {
                    "__TIME__ (this compiler ignores SOURCE_DATE_EPOCH)"
                },
            ));
        }
        None => {
            // The daemon knows the date in its own time zone only; the compile saw the
            // date of its start.
            let tz = var("TZ");
            let now = date_value();
            if job.date_at_start.as_ref() != Some(&now) {
                return Err(Uncacheable::new(
                    "time macros",
                    "__DATE__: the date changed while the compile ran",
                ));
            }
            if job.env.get(OsStr::new("TZ")) != std::env::var_os("TZ").as_ref() {
                return Err(Uncacheable::new(
                    "time macros",
                    "__DATE__ in another time zone than the daemon's",
                ));
            }
            if job.identity.honours_sde {
                env.push(("SOURCE_DATE_EPOCH".to_string(), None));
            }
            env.push(("TZ".to_string(), tz));
            env.push((DATE_VAR.to_string(), Some(now)));
        }
    }
    Ok(env)
}

/// `#pragma once` (and `#import`) skip a file that is the same as one included before, by
/// inode (clang) or by mtime in seconds, size and content (gcc): the classes of those
/// files, so that a hit requires the same ones.
fn same_files(family: Driver, files: &Files) -> Option<Check> {
    let all = files.scans.iter().any(|s| s.imports);
    let members: Vec<u32> = (0..files.deps.len())
        .filter(|&i| all || files.scans[i].once)
        .map(|i| i as u32)
        .collect();
    if members.len() < 2 {
        return None;
    }
    let by_inode = family == Driver::Clang;
    let keys: Vec<(i128, i128, u64, Digest)> = members
        .iter()
        .map(|&i| {
            let (s, d) = (&files.stats[i as usize], files.deps[i as usize].digest);
            identity_key(by_inode, s, &d)
        })
        .collect();
    Some(Check::SameFiles {
        by_inode,
        files: members,
        classes: classes(&keys),
    })
}

/// What `#pragma once` compares files by.
pub fn identity_key(by_inode: bool, s: &FileStat, d: &Digest) -> (i128, i128, u64, Digest) {
    if by_inode {
        (s.dev as i128, s.ino as i128, 0, Digest([0; 32]))
    } else {
        (s.mtime.div_euclid(1_000_000_000), 0, s.size, *d)
    }
}

/// For each key, the first position with an equal key.
pub fn classes<K: Eq + std::hash::Hash>(keys: &[K]) -> Vec<u32> {
    let mut first: HashMap<&K, u32> = HashMap::with_capacity(keys.len());
    keys.iter()
        .enumerate()
        .map(|(i, k)| *first.entry(k).or_insert(i as u32))
        .collect()
}

/// The outputs: required ones must be there; optional ones only count if this compile
/// wrote them (not a stale file of an earlier compile).
fn outputs(
    job: &CcJob,
    fs: &dyn FsView,
    start: &CompileStart,
) -> Result<Vec<(&'static str, PathBuf)>, Uncacheable> {
    let at = |p: &Path| resolve(&job.cwd, p);
    let mut outputs = Vec::new();
    for o in job.outputs() {
        let p = at(&o.path);
        match fs.meta(&p) {
            Ok(Some(m)) if m.is_file => {
                if !o.required && !start.too_new(m.stat.mtime, m.stat.dev, fs.clocks()) {
                    continue;
                }
                if o.role == "o" && m.stat.size == 0 {
                    return Err(Uncacheable::new("empty output", p.display().to_string()));
                }
                outputs.push((o.role, o.path.clone()));
            }
            _ if !o.required => {}
            _ => {
                return Err(Uncacheable::new(
                    "missing output",
                    format!("{} was not written", p.display()),
                ));
            }
        }
    }
    if let Some(d) = outputs.iter().find(|(r, _)| *r == "d") {
        // The stored dependency file must start with the keyed target (CD4).
        let target = job.args.dep_target().unwrap_or_default();
        let text = fs.read(&at(&d.1)).unwrap_or_default();
        if !text.starts_with(format!("{target}:").as_bytes()) {
            return Err(Uncacheable::new(
                "dependency file",
                format!("{} does not start with {target}:", d.1.display()),
            ));
        }
    }
    Ok(outputs)
}

/// Runs the preprocessor for the complete dependency list (`-M`), after the compile.
fn dependency_pass(job: &CcJob, out: &Path) -> Result<(), Uncacheable> {
    let mut cmd = std::process::Command::new(&job.compiler);
    cmd.args(job.preprocessor_args())
        .args(["-x", job.lang.name()])
        .arg(&job.args.input)
        .args(["-M", "-MF"])
        .arg(out)
        .env_clear()
        .envs(job.run_env().iter())
        .current_dir(&job.cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    crate::masquerade::guard(&mut cmd, job.compiler.as_os_str());
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Uncacheable::new(
            "dependency pass",
            format!("-M run failed: {s}"),
        )),
        Err(e) => Err(Uncacheable::new("dependency pass", e.to_string())),
    }
}

/// What a header candidate is now.
enum Candidate {
    /// Nothing there; recorded under the deepest existing directory (see `groups`).
    Absent,
    /// Nothing there that a directory's stamp can vouch for (a dangling symlink, a path
    /// through a symlink or with `..`): checked by itself.
    Single,
    /// A directory, which a search skips: it must not become a file.
    Directory,
    /// A file the compile did not read.
    File(crate::fsview::FileMeta),
}

/// For a directory of include candidates: its listing (if it exists), and the deepest
/// existing directory at or above it with the path from there (`None`: not groupable).
type DirCandidates = (Option<Listed>, Option<(PathBuf, PathBuf)>);

/// What a directory that exists holds.
#[derive(Debug, Clone)]
enum Listed {
    Names(crate::fsview::Listing),
    /// It exists but cannot be listed.
    Unreadable,
}

struct Placement<'a> {
    fs: &'a dyn FsView,
    cwd: &'a Path,
    listing: Listings,
    per_dir: HashMap<String, DirCandidates>,
    /// Absent names by the deepest existing directory above them (as spelled).
    groups: std::collections::BTreeMap<PathBuf, Vec<Vec<u8>>>,
}

/// Whether a relative candidate has a `..` after its first other component (`a/../b.h`):
/// leading ones (`../inc/b.h`, also after `./`) climb out of the canonical cwd.
fn inner_dot_dot(c: &str) -> bool {
    c.split('/')
        .skip_while(|p| *p == ".." || *p == ".")
        .any(|p| p == "..")
}

impl Placement<'_> {
    fn candidate(&mut self, c: &str) -> Result<Candidate, Uncacheable> {
        let fs = self.fs;
        let spelled = Path::new(c);
        let abs = resolve(self.cwd, spelled);
        let is_pch = c.ends_with(".gch") || c.ends_with(".pch");
        let found = |m: Option<crate::fsview::FileMeta>| -> Result<Candidate, Uncacheable> {
            match m {
                Some(_) if is_pch => Err(Uncacheable::new(
                    "precompiled header",
                    format!("{c} exists"),
                )),
                Some(m) if m.is_dir => Ok(Candidate::Directory),
                Some(m) if m.is_file => Ok(Candidate::File(m)),
                Some(_) => Err(Uncacheable::new(
                    "not a regular file",
                    format!("{c}: an include candidate that is neither file nor directory"),
                )),
                // Listed but not reachable: a dangling symlink, whose target may appear.
                None => Ok(Candidate::Single),
            }
        };
        if inner_dot_dot(c) {
            // Not a prefix walk: asked of the filesystem, recorded as is. (Leading `..`
            // climb out of the cwd, which is canonical: its lexical parents are its real
            // ones, so such names are grouped like any other.)
            return match fs.meta(&abs).ok().flatten() {
                None => Ok(Candidate::Single),
                m => found(m),
            };
        }
        let (dir, name) = match c.rfind('/') {
            Some(0) => ("/", &c[1..]),
            Some(i) => (&c[..i], &c[i + 1..]),
            None => ("", c),
        };
        if !self.per_dir.contains_key(dir) {
            let dabs = resolve(self.cwd, Path::new(if dir.is_empty() { "." } else { dir }));
            let listed = self.listing.names_of(fs, &dabs).cloned();
            let group = self
                .listing
                .existing_ancestor(fs, spelled, self.cwd)
                .map(|(anc, rest)| {
                    (
                        anc,
                        rest.parent().map(Path::to_path_buf).unwrap_or_default(),
                    )
                });
            self.per_dir.insert(dir.to_string(), (listed, group));
        }
        let (listed, group) = &self.per_dir[dir];
        match listed {
            Some(Listed::Names(l)) if l.contains(OsStr::new(name)) => {
                return found(fs.meta(&abs).ok().flatten());
            }
            // A directory that cannot be listed: ask for the name itself.
            Some(Listed::Unreadable) => {
                if let Some(m) = fs.meta(&abs).ok().flatten() {
                    return found(Some(m));
                }
            }
            _ => {}
        }
        match group {
            Some((anc, rest_dir)) => {
                let rest = rest_dir.join(name).into_os_string().into_vec();
                self.groups.entry(anc.clone()).or_default().push(rest);
                Ok(Candidate::Absent)
            }
            None => Ok(Candidate::Single),
        }
    }
}

/// Directory listings read once per store, for the many absent-path candidates.
#[derive(Default)]
struct Listings {
    names: HashMap<PathBuf, Option<Listed>>,
    /// Whether a path is a directory, asked once.
    dirs: HashMap<PathBuf, bool>,
}

impl Listings {
    /// The listing of `dir`, `None` if it is not a directory.
    fn names_of(&mut self, fs: &dyn FsView, dir: &Path) -> Option<&Listed> {
        if !self.names.contains_key(dir) {
            let names = self.exists_dir(fs, dir).then(|| match fs.list_dir(dir) {
                Ok(v) => Listed::Names(v),
                Err(_) => Listed::Unreadable,
            });
            self.names.insert(dir.to_path_buf(), names);
        }
        self.names[dir].as_ref()
    }

    /// Whether `name` is an entry of the directory `dir` (whatever it is or points to); a
    /// directory that cannot be listed may hold anything.
    fn listed(&mut self, fs: &dyn FsView, dir: &Path, name: &OsStr) -> bool {
        match self.names_of(fs, dir) {
            Some(Listed::Names(n)) => n.contains(name),
            Some(Listed::Unreadable) => fs.exists(&dir.join(name)),
            None => false,
        }
    }

    fn exists(&mut self, fs: &dyn FsView, p: &Path) -> bool {
        let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
            return fs.exists(p);
        };
        // `..` and `.` components: ask the filesystem.
        if name == ".."
            || name == "."
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return fs.exists(p);
        }
        self.listed(fs, dir, name) && fs.exists(p)
    }

    /// For a path that does not exist: the deepest prefix of it (as spelled) that is an
    /// existing directory, and the rest. `None` for paths with `..` (not a prefix walk),
    /// and where the rest's first name is an entry of that directory (a symlink that
    /// leads nowhere yet, or to something else: what it points to can change without the
    /// directory changing).
    fn existing_ancestor(
        &mut self,
        fs: &dyn FsView,
        spelled: &Path,
        cwd: &Path,
    ) -> Option<(PathBuf, PathBuf)> {
        // A leading `./` names the cwd, as no prefix does (`components` drops inner ones).
        let comps: Vec<std::path::Component> = spelled
            .components()
            .skip_while(|c| matches!(c, std::path::Component::CurDir))
            .collect();
        // Leading `..` name the cwd's ancestors, which exist (the cwd is canonical, so they
        // are its real parents); a `..` further in is not a prefix walk.
        let lead = comps
            .iter()
            .take_while(|c| matches!(c, std::path::Component::ParentDir))
            .count();
        if comps[lead..]
            .iter()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return None;
        }
        for k in (lead..comps.len()).rev() {
            let prefix: PathBuf = comps[..k].iter().collect();
            let rest: PathBuf = comps[k..].iter().collect();
            let (anc, abs) = if prefix.as_os_str().is_empty() {
                (PathBuf::from("."), cwd.to_path_buf())
            } else {
                (prefix.clone(), resolve(cwd, &prefix))
            };
            if k == lead || self.exists_dir(fs, &abs) {
                // The name itself (the last component) is the caller's to judge.
                if k + 1 < comps.len() && self.listed(fs, &abs, comps[k].as_os_str()) {
                    return None;
                }
                return Some((anc, rest));
            }
        }
        None
    }

    fn exists_dir(&mut self, fs: &dyn FsView, dir: &Path) -> bool {
        if let Some(&known) = self.dirs.get(dir) {
            return known;
        }
        let is = match dir.parent() {
            Some(parent) if parent != dir && !parent.as_os_str().is_empty() => {
                self.exists(fs, dir) && fs.is_dir(dir)
            }
            _ => fs.is_dir(dir),
        };
        self.dirs.insert(dir.to_path_buf(), is);
        is
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_leading_dot_dots_keep_a_candidate_in_its_group() {
        for c in [
            "../inc/a.h",
            "../../x/a.h",
            "./../a.h",
            "inc/a.h",
            "a.h",
            "/usr/include/a.h",
        ] {
            assert!(!super::inner_dot_dot(c), "{c}");
        }
        for c in [
            "inc/../a.h",
            "../inc/../a.h",
            "/usr/include/../a.h",
            "./a/../b.h",
        ] {
            assert!(super::inner_dot_dot(c), "{c}");
        }
    }

    /// An out-of-tree build names the sources' search directories through `..`: those
    /// candidates are grouped under their deepest existing directory, as any other (one
    /// listing per hit instead of one lookup per name); a `..` further in is not.
    #[test]
    fn candidates_named_through_leading_dot_dots_are_grouped() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::create_dir_all(root.join("src/inc")).unwrap();
        let hashes = crate::fsview::hashcache::HashCache::new();
        let fs = crate::fsview::HostFs { hashes: &hashes };
        let cwd = root.join("build");
        let mut place = Placement {
            fs: &fs,
            cwd: &cwd,
            listing: Listings::default(),
            per_dir: HashMap::new(),
            groups: Default::default(),
        };
        for c in [
            "../src/inc/openssl/evp.h",
            "../src/openssl/evp.h",
            "../../none/x.h",
        ] {
            assert!(matches!(place.candidate(c), Ok(Candidate::Absent)), "{c}");
        }
        assert!(matches!(
            place.candidate("../src/inc/../x.h"),
            Ok(Candidate::Single)
        ));
        let groups: Vec<(String, Vec<String>)> = place
            .groups
            .iter()
            .map(|(d, n)| {
                (
                    d.display().to_string(),
                    n.iter()
                        .map(|b| String::from_utf8_lossy(b).into())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            vec![
                ("../..".to_string(), vec!["none/x.h".to_string()]),
                ("../src".to_string(), vec!["openssl/evp.h".to_string()]),
                ("../src/inc".to_string(), vec!["openssl/evp.h".to_string()]),
            ]
        );
    }

    #[test]
    fn same_file_classes() {
        assert_eq!(classes(&[1, 2, 1, 3, 2]), vec![0, 1, 0, 3, 1]);
        let s = |ino, mtime| FileStat {
            dev: 1,
            ino,
            size: 3,
            mtime,
            ctime: 0,
        };
        let d = Digest([7; 32]);
        // clang: by inode; gcc: by whole seconds of mtime, size and content.
        assert_eq!(
            identity_key(true, &s(5, 1), &d),
            identity_key(true, &s(5, 9), &d)
        );
        assert_ne!(
            identity_key(true, &s(5, 1), &d),
            identity_key(true, &s(6, 1), &d)
        );
        let g = |ino, mtime| identity_key(false, &s(ino, mtime), &d);
        assert_eq!(g(5, 1_000_000_001), g(6, 1_999_999_999));
        assert_ne!(g(5, 1_000_000_001), g(5, 2_000_000_000));
    }
}
