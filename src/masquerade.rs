//! Finding the real C compiler when zcfs stands in for it (spec CW1, CW2): as a link named
//! `gcc` (or `cc`, `clang++`...) pointing at zcfs in a directory early on `PATH`, or as
//! `zcfs gcc ...`. The real compiler is the first program of that name on `PATH` that is not
//! zcfs (after resolving links) and not a compiler a zcfs further up is running already:
//! each compiler zcfs runs gets `ZCFS_SKIP` (the canonical paths of the compilers above it),
//! so a compiler that is a script calling `gcc` again reaches the next real `gcc` instead of
//! looping, and that nested compile passes through uncounted.

use crate::os::OsStrExt;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The canonical paths of the compilers zcfs runs above this process, `:`-separated.
pub const SKIP_VAR: &str = "ZCFS_SKIP";

/// This process runs under a compiler zcfs started.
pub fn nested() -> bool {
    std::env::var_os(SKIP_VAR).is_some_and(|v| !v.is_empty())
}

fn skipped() -> Vec<PathBuf> {
    std::env::var_os(SKIP_VAR)
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default()
}

/// The canonical path of the running zcfs binary, computed once.
fn own_exe() -> Option<&'static Path> {
    static ME: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    ME.get_or_init(|| std::env::current_exe().and_then(|p| p.canonicalize()).ok())
        .as_deref()
}

/// True if `path` (after resolving links) is zcfs: this binary, or a program named `zcfs`
/// (another build of it, as a wrapper's link dir may name).
pub fn is_zcfs(path: &Path) -> bool {
    let Ok(c) = path.canonicalize() else {
        return false;
    };
    own_exe() == Some(c.as_path()) || named_zcfs(&c)
}

/// Whether a program's file is named `zcfs` (`zcfs.exe` on Windows).
pub fn named_zcfs(path: &Path) -> bool {
    path.file_name().map(crate::os::program_name) == Some(OsStr::new("zcfs"))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| crate::os::is_executable(&m))
}

/// The compiler to run for `program` (as invoked): itself if it is a path that is not zcfs,
/// else the first of its name on `PATH` that is neither zcfs nor skipped.
pub fn real_compiler(program: &OsStr) -> Result<PathBuf, String> {
    let path = Path::new(program);
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a program", path.display()))?;
    // A path that is not zcfs is the compiler; a missing one is left for the exec to report
    // as the shell would.
    if crate::os::names_a_path(program.as_bytes()) && !is_zcfs(path) {
        return Ok(path.to_path_buf());
    }
    let skip = skipped();
    let search = std::env::var_os("PATH").unwrap_or_default();
    let mut fallback = None;
    let candidates = std::env::split_paths(&search)
        .flat_map(|dir| crate::os::program_candidates(&dir, name).into_iter());
    for cand in candidates {
        if !is_executable(&cand) {
            continue;
        }
        let Ok(c) = cand.canonicalize() else { continue };
        if own_exe() == Some(c.as_path()) || named_zcfs(&c) {
            continue;
        }
        if skip.contains(&c) {
            fallback.get_or_insert(cand);
            continue;
        }
        return Ok(cand);
    }
    fallback.ok_or_else(|| {
        format!(
            "no {} other than zcfs found on PATH",
            name.to_string_lossy()
        )
    })
}

/// Marks a compiler's environment: compiles started under it pass through.
pub fn guard<'a>(cmd: &'a mut Command, program: &OsStr) -> &'a mut Command {
    let mut list = skipped();
    if let Ok(c) = Path::new(program).canonicalize() {
        list.push(c);
    }
    match std::env::join_paths(&list) {
        Ok(v) if !v.is_empty() => cmd.env(SKIP_VAR, v),
        _ => cmd.env(SKIP_VAR, OsString::from("-")),
    }
}

/// Resolves a program name through `PATH` as the wrapper's child would run it: zcfs standing
/// in for a compiler (a masquerade link) runs the next one on `PATH`, so it is skipped.
pub fn resolve_program(
    program: &Path,
    env: &HashMap<OsString, OsString>,
    cwd: &Path,
) -> Option<PathBuf> {
    which(program, env, cwd, true)
}

/// Resolves a program name through `PATH`, zcfs included.
pub fn which(
    program: &Path,
    env: &HashMap<OsString, OsString>,
    cwd: &Path,
    skip_zcfs: bool,
) -> Option<PathBuf> {
    which_by(program, env, cwd, skip_zcfs, &|p| {
        std::fs::metadata(p).is_ok_and(|m| crate::os::is_executable(&m))
    })
}

/// [`which`], asking `executable` whether a candidate is an executable file.
pub fn which_by(
    program: &Path,
    env: &HashMap<OsString, OsString>,
    cwd: &Path,
    skip_zcfs: bool,
    executable: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    use crate::os::OsStrExt;
    if crate::os::names_a_path(program.as_os_str().as_bytes()) {
        return Some(crate::fsutil::resolve(cwd, program));
    }
    let path = env.get(&OsString::from("PATH"))?;
    let mut seen: Vec<PathBuf> = Vec::new();
    for dir in std::env::split_paths(path) {
        // A directory listed twice answers the same twice.
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir.clone());
        for cand in crate::os::program_candidates(&dir, program.as_os_str()) {
            let cand = crate::fsutil::resolve(cwd, &cand);
            if executable(&cand) && !(skip_zcfs && is_zcfs(&cand)) {
                return Some(cand);
            }
        }
    }
    None
}
