//! After a rustc miss: which files the compile read (the entry's inputs, spec D1–D4, K5)
//! and which it wrote (the outputs to store, spec W10).

use crate::os::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::{RustcJob, digest_only};
use crate::compiler::{Uncacheable, depinfo};
use crate::fsutil::resolve;
use crate::fsview::FsView;
use crate::fsview::fsclock::CompileStart;
use crate::store::manifest::{FileDep, Inputs};

/// The path of the linker dependency file used for a miss.
pub fn link_depfile_args(path: &Path) -> Vec<Vec<u8>> {
    let mut arg = b"link-arg=-Wl,--dependency-file=".to_vec();
    arg.extend_from_slice(path.as_os_str().as_bytes());
    vec![b"-C".to_vec(), arg]
}

/// True if a path (from a linker dependency file) is one of rustc's own temporaries in the
/// out-dir: CGU objects and `rustcXXXXXX/` scratch dirs (spec W10, K5).
pub(super) fn is_rustc_temp(path: &Path, out_dir: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(out_dir) else {
        return false;
    };
    let mut comps = rel.components();
    let first = comps
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let nested = comps.next().is_some();
    match first {
        Some(f) if nested => {
            f.starts_with("rustc") || f.starts_with(".tmp") || f.starts_with("rmeta")
        }
        Some(f) => f.ends_with(".rcgu.o") || f.ends_with(".o") && f.contains(".rcgu"),
        None => false,
    }
}

/// After a successful compile: the inputs that the manifest entry records (spec D1–D4, K5).
///
/// `start` is when the compile began; any input modified at or after it (as its filesystem
/// keeps time, see [`crate::fsview::fsclock`]) makes the result unstorable ("too new", D3).
pub fn collect_inputs(
    job: &RustcJob,
    fs: &dyn FsView,
    start: &CompileStart,
    link_depfile: Option<&Path>,
) -> Result<Inputs, Uncacheable> {
    let a = &job.args;
    if !a.emit.dep_info {
        return Err(Uncacheable::new("no dep-info", "--emit has no dep-info"));
    }
    let d_path = job
        .out_dir
        .join(format!("{}{}.d", a.crate_name, a.extra_filename));
    let text = fs
        .read(&d_path)
        .map_err(|e| Uncacheable::new("missing output", format!("{}: {e}", d_path.display())))?;
    let text = String::from_utf8(text)
        .map_err(|_| Uncacheable::new("non-utf8 dep-info", d_path.display().to_string()))?;
    let info = depinfo::parse(&text, depinfo::Dialect::Rustc);

    let mut files = Vec::new();
    let mut absent = Vec::new();
    let crate_root = resolve(&job.cwd, &a.input);
    for dep in &info.deps {
        let spelled = PathBuf::from(dep);
        let abs = resolve(&job.cwd, &spelled);
        let f = record_file(fs, &spelled, &abs, start, true)?;
        files.push(f);
        if abs != crate_root
            && let Some(alt) = module_alternative(&spelled)
            && !fs.exists(&resolve(&job.cwd, &alt))
        {
            absent.push(alt.into_os_string().into_vec());
        }
    }

    if let Some(ld) = link_depfile {
        let text = std::fs::read_to_string(ld).map_err(|e| {
            Uncacheable::new("linker dependency file", format!("{}: {e}", ld.display()))
        })?;
        let outputs: Vec<PathBuf> = a
            .expected_outputs()
            .iter()
            .map(|n| job.out_dir.join(n))
            .collect();
        for dep in depinfo::linker_deps(&text) {
            let p = linker_dep_path(fs, &job.cwd, &dep)?;
            if is_rustc_temp(&p, &job.out_dir) || outputs.contains(&p) {
                continue;
            }
            // Build artifacts may be hard-linked by incremental sessions: check mtime only.
            let check_ctime = !p.starts_with(&job.out_dir);
            let f = record_file(fs, &p, &p, start, check_ctime)?;
            if !files.iter().any(|x: &FileDep| x.path == f.path) {
                files.push(f);
            }
        }
    }

    // Externs must still hold the bytes that were keyed (K4: compare content, not ctime).
    for (path, _stat, digest) in &job.externs {
        let now = digest_only(fs, path)
            .map_err(|e| Uncacheable::new("input modified during compile", e.to_string()))?;
        if now != *digest {
            return Err(Uncacheable::new(
                "input modified during compile",
                format!("{} changed", path.display()),
            ));
        }
    }

    if !a.runs_linker() {
        let (libs, not_there) = bundled_native_libs(job, fs, start)?;
        for f in libs {
            if !files.iter().any(|x: &FileDep| x.path == f.path) {
                files.push(f);
            }
        }
        absent.extend(not_there);
    }

    Ok(Inputs {
        files,
        env: info.env,
        absent,
        absent_under: Vec::new(),
        // Decided once the outputs are known: see `bindings`.
        bindings: Vec::new(),
        checks: Vec::new(),
    })
}

/// Static libraries bundled into an rlib or staticlib output without being named on the
/// command line: `#[link(name = "x", kind = "static")]` makes rustc search the `-L native=`
/// and `-L all=` dirs and copy the library's members into its archive, and rustc's dep-info
/// does not list the library. An output archive member that rustc did not make itself (not
/// `lib.rmeta`, not a `.rcgu.o`) came from such a library: every archive in the search dirs
/// that holds a member of that name is recorded as an input, and the same file name in the
/// dirs searched before it as an absent path (a library appearing there would be taken
/// instead). Libraries given with `-l static=` are keyed by content already.
fn bundled_native_libs(
    job: &RustcJob,
    fs: &dyn FsView,
    start: &CompileStart,
) -> Result<(Vec<FileDep>, Vec<Vec<u8>>), Uncacheable> {
    let unreadable = |p: &Path, e: &dyn std::fmt::Display| {
        Uncacheable::new("unreadable input", format!("{}: {e}", p.display()))
    };
    let mut foreign = std::collections::BTreeSet::new();
    for name in job.args.expected_outputs() {
        if !(name.ends_with(".rlib") || name.ends_with(".a")) {
            continue;
        }
        let path = job.out_dir.join(&name);
        let f = fs.open(&path).map_err(|e| unreadable(&path, &e))?;
        let members = crate::binfmt::ar_member_names(&f).map_err(|e| unreadable(&path, &e))?;
        for m in members.unwrap_or_default() {
            if m != b"lib.rmeta" && !m.ends_with(b".rcgu.o") {
                foreign.insert(m);
            }
        }
    }
    let mut files = Vec::new();
    let mut absent = Vec::new();
    if foreign.is_empty() {
        return Ok((files, absent));
    }
    let dirs: Vec<PathBuf> = job
        .args
        .search_paths
        .iter()
        .filter(|(kind, _)| kind == "native" || kind == "all")
        .map(|(_, d)| resolve(&job.cwd, d))
        .collect();
    for (k, dir) in dirs.iter().enumerate() {
        let Ok(names) = fs.list_dir(dir) else {
            continue;
        };
        for name in names.iter() {
            let path = dir.join(name);
            if !fs.is_file(&path) {
                continue;
            }
            let holds = match fs.open(&path) {
                Ok(f) => match crate::binfmt::ar_member_names(&f) {
                    Ok(Some(members)) => members.iter().any(|m| foreign.contains(m)),
                    Ok(None) => false,
                    // An archive that does not parse: counted in, to be safe.
                    Err(_) => true,
                },
                // A projection (no file of its own) or unreadable: counted in.
                Err(_) => true,
            };
            if !holds {
                continue;
            }
            files.push(record_file(fs, &path, &path, start, true)?);
            for earlier in &dirs[..k] {
                absent.push(earlier.join(name).into_os_string().into_vec());
            }
        }
    }
    Ok((files, absent))
}

/// The file a line of a linker's dependency file names: lld escapes like make, GNU ld does
/// not escape at all, so when the two readings differ the one that exists is taken (both
/// existing is ambiguous: not stored).
fn linker_dep_path(
    fs: &dyn FsView,
    cwd: &Path,
    dep: &depinfo::LinkerDep,
) -> Result<PathBuf, Uncacheable> {
    let raw = resolve(cwd, Path::new(&dep.raw));
    let Some(unescaped) = &dep.unescaped else {
        return Ok(raw);
    };
    let unescaped = resolve(cwd, Path::new(unescaped));
    match (fs.exists(&raw), fs.exists(&unescaped)) {
        (true, true) => Err(Uncacheable::new(
            "ambiguous linker dependency",
            format!("{} and {} both exist", raw.display(), unescaped.display()),
        )),
        (true, false) => Ok(raw),
        _ => Ok(unescaped),
    }
}

fn record_file(
    fs: &dyn FsView,
    spelled: &Path,
    abs: &Path,
    start: &CompileStart,
    check_ctime: bool,
) -> Result<FileDep, Uncacheable> {
    let (digest, stat) = fs
        .digest(abs)
        .map_err(|e| Uncacheable::new("unreadable input", e.to_string()))?;
    let too_new = |t| start.too_new(t, stat.dev, fs.clocks());
    if too_new(stat.mtime) || (check_ctime && too_new(stat.ctime)) {
        return Err(Uncacheable::new(
            "input modified during compile",
            format!("{} is newer than the compile's start", abs.display()),
        ));
    }
    Ok(FileDep {
        path: spelled.as_os_str().as_bytes().to_vec(),
        size: stat.size,
        digest,
    })
}

/// The other file that would define the same module: `a/b.rs` ↔ `a/b/mod.rs` (spec D4).
/// Creating it makes rustc fail with E0761, so a hit must not hide that.
pub fn module_alternative(p: &Path) -> Option<PathBuf> {
    if p.extension()? != "rs" {
        return None;
    }
    let name = p.file_name()?.to_str()?;
    let parent = p.parent()?;
    if name == "mod.rs" {
        let dir = parent.file_name()?;
        let mut alt = parent.parent()?.join(dir);
        alt.set_extension("rs");
        Some(alt)
    } else {
        let stem = p.file_stem()?;
        Some(parent.join(stem).join("mod.rs"))
    }
}

/// Paths of the `artifact` notifications in rustc's JSON stderr (spec R4).
pub fn artifact_paths(stderr: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in stderr.split(|b| *b == b'\n') {
        if !line.starts_with(b"{\"$message_type\":\"artifact\"") {
            continue;
        }
        #[derive(serde::Deserialize)]
        struct Artifact {
            artifact: PathBuf,
        }
        if let Ok(a) = serde_json::from_slice::<Artifact>(line) {
            out.push(a.artifact);
        }
    }
    out
}

/// The names (in the out-dir) of every output to store: the expected set plus artifacts
/// (spec W10). Errors if an output lies outside the out-dir or is missing.
pub fn output_names(
    job: &RustcJob,
    fs: &dyn FsView,
    stderr: &[u8],
    start: &CompileStart,
) -> Result<Vec<String>, Uncacheable> {
    let mut names = job.args.expected_outputs();
    for p in artifact_paths(stderr) {
        let p = resolve(&job.cwd, &p);
        let rel = p
            .strip_prefix(&job.out_dir)
            .map_err(|_| Uncacheable::new("output outside out-dir", p.display().to_string()))?;
        let name = rel
            .to_str()
            .filter(|n| !n.chars().any(std::path::is_separator))
            .ok_or_else(|| Uncacheable::new("output outside out-dir", p.display().to_string()))?
            .to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    // Debug info and import libraries beside a linked output (Windows), when this compile
    // wrote them: not older than its start (on the filesystem's own clock where it was
    // stamped). A leftover of an earlier compile is never stored; a companion whose time a
    // coarse filesystem truncated below the start is left out (the entry lacks it).
    let written_now =
        |m: &crate::fsview::FileMeta| match start.stamps.iter().find(|(d, _)| *d == m.stat.dev) {
            Some((_, stamp)) => m.stat.mtime >= *stamp,
            None => m.stat.mtime >= start.time,
        };
    for n in job.args.companion_outputs() {
        let fresh =
            matches!(fs.meta(&job.out_dir.join(&n)), Ok(Some(m)) if m.is_file && written_now(&m));
        if fresh && !names.contains(&n) {
            names.push(n);
        }
    }
    for n in &names {
        if !fs.is_file(&job.out_dir.join(n)) {
            return Err(Uncacheable::new(
                "missing output",
                format!("{} was not produced", job.out_dir.join(n).display()),
            ));
        }
    }
    Ok(names)
}
