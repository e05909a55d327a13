//! Running a compiler to learn about it (its messages read in the C locale), and what it
//! is made of beyond its executable: the compiler libraries it loads, and whether it takes
//! the time macros from `SOURCE_DATE_EPOCH`. Shared by gcc, clang and emcc's clang.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// Runs `program` with `args` in `cwd`: (success, stdout, stderr).
pub(super) fn run(
    program: &Path,
    args: &[&str],
    env: &HashMap<OsString, OsString>,
    cwd: &Path,
) -> Result<(bool, String, String)> {
    let mut cmd = Command::new(program);
    // What zcfs reads of the compiler's messages is in English whatever the caller's
    // locale (gcc translates "ignoring nonexistent directory" and the search list's
    // headings); nothing these runs learn depends on it.
    cmd.args(args)
        .env_clear()
        .envs(env)
        .env_remove("LANGUAGE")
        .env("LC_ALL", "C");
    let out = crate::masquerade::guard(&mut cmd, program.as_os_str())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Whether the compiler takes `__TIME__` from `SOURCE_DATE_EPOCH`.
pub fn honours_sde(compiler: &Path, env: &HashMap<OsString, OsString>) -> bool {
    let mut env = env.clone();
    env.insert("SOURCE_DATE_EPOCH".into(), "0".into());
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(_) => return false,
    };
    let probe = dir.path().join("sde.c");
    if std::fs::write(&probe, "__TIME__\n").is_err() {
        return false;
    }
    let Some(p) = probe.to_str() else {
        return false;
    };
    match run(compiler, &["-E", "-P", "-x", "c", p], &env, Path::new("/")) {
        Ok((true, out, _)) => out.contains("\"00:00:00\""),
        _ => false,
    }
}

/// Shared libraries whose code is the compiler's (not the C runtime's), by file name.
fn is_compiler_library(name: &str) -> bool {
    [
        "libLLVM", "libclang", "liblld", "libPolly", "libisl", "libmpc", "libmpfr", "libgmp",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// The compiler libraries `program` loads, as the dynamic loader resolves them (`ldd`),
/// canonical. A static program, or no `ldd`, gives none.
pub fn compiler_libraries(program: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd")
        .arg(program)
        .env_clear()
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => parse_ldd(&String::from_utf8_lossy(&o.stdout)),
        _ => Vec::new(),
    }
}

/// `\tlibLLVM-14.so.1 => /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1 (0x...)` lines: the
/// resolved paths of compiler libraries.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.trim().split_once(" => ") else {
            continue;
        };
        if !is_compiler_library(name) {
            continue;
        }
        let path = rest.rsplit_once(" (").map_or(rest, |(p, _)| p).trim();
        if !path.starts_with('/') {
            continue;
        }
        if let Ok(c) = Path::new(path).canonicalize()
            && !libs.contains(&c)
        {
            libs.push(c);
        }
    }
    libs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_the_compiler_libraries() {
        let dir = tempfile::tempdir().unwrap();
        let llvm = dir.path().join("libLLVM-14.so.1");
        std::fs::write(&llvm, "").unwrap();
        let text = format!(
            "\tlinux-vdso.so.1 (0x00007ffd)\n\
             \tlibclang-cpp.so.14 => not found\n\
             \tlibLLVM-14.so.1 => {} (0x00007f1)\n\
             \tlibstdc++.so.6 => /usr/lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f2)\n\
             \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3)\n\
             \t/lib64/ld-linux-x86-64.so.2 (0x00007f4)\n",
            llvm.display()
        );
        assert_eq!(parse_ldd(&text), vec![llvm.canonicalize().unwrap()]);
        assert!(parse_ldd("\tstatically linked\n").is_empty());
    }

    #[test]
    fn clangs_libraries_are_part_of_what_runs() {
        // Debian's clang is a driver over libclang-cpp and libLLVM (installed by
        // scripts/install-deps.sh).
        let clang = crate::masquerade::resolve_program(
            Path::new("clang"),
            &std::env::vars_os().collect(),
            Path::new("/"),
        )
        .expect("clang on PATH");
        let libs = compiler_libraries(&clang.canonicalize().unwrap());
        assert!(
            libs.iter().any(|l| l.to_string_lossy().contains("libLLVM")),
            "{libs:?}"
        );
    }
}
