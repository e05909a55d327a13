//! Routing a build's C and C++ compiles through zcfs with no hand configuration (spec CW1,
//! CW3–CW5), for `zcfs cargo` and `zcfs run`:
//!
//! - a directory of links named `cc`, `c++`, `gcc`, `g++`, `clang`, `clang++`, `emcc`,
//!   `em++` pointing at zcfs, put first on `PATH`: make's default `cc`, cc-rs's default `cc`/`c++`, and build
//!   systems that call a compiler by name reach zcfs, which runs the next real one;
//! - `CMAKE_C_COMPILER_LAUNCHER`/`CMAKE_CXX_COMPILER_LAUNCHER` (read by CMake ≥ 3.17 at
//!   configure time, also through cmake-rs, which passes an absolute compiler path);
//! - a `CC`/`CXX` (and `HOST_`, `TARGET_`, `_<target>` variants) the user set to a path or
//!   a non-default name keeps its value behind zcfs: `CC="zcfs <value>"` with
//!   `CC_KNOWN_WRAPPER_CUSTOM=zcfs`, which is how cc-rs accepts a wrapper.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::paths::Paths;

/// The compiler names the link directory provides.
pub const NAMES: &[&str] = &[
    "cc", "c++", "gcc", "g++", "clang", "clang++", "emcc", "em++",
];

/// Compiler wrappers cc-rs knows by name: a value starting with one is left alone.
const KNOWN_WRAPPERS: &[&str] = &[
    "ccache",
    "distcc",
    "sccache",
    "icecc",
    "cachepot",
    "buildcache",
    "kache",
    "zcfs",
];

/// Creates (or refreshes) the link directory; returns it.
pub fn link_dir(paths: &Paths, exe: &Path) -> Result<PathBuf> {
    paths.ensure_runtime_dir()?;
    let dir = paths.runtime_dir.join(format!("zcfs-{}.bin", paths.id));
    crate::paths::ensure_private_dir(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    for name in NAMES {
        let link = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if crate::os::runs_program(&link, exe) {
            continue;
        }
        // Replace atomically: a concurrent build may be using the old link.
        let tmp = dir.join(format!(".{name}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        crate::os::link_program(exe, &tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        std::fs::rename(&tmp, &link).with_context(|| format!("creating {}", link.display()))?;
    }
    Ok(dir)
}

fn first_word(v: &OsStr) -> String {
    v.to_string_lossy()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Sets up `cmd`'s environment so that its C and C++ compiles go through zcfs.
pub fn apply(cmd: &mut Command, paths: &Paths, exe: &Path) -> Result<()> {
    let dir = link_dir(paths, exe)?;
    let mut search = vec![dir.clone()];
    if let Some(p) = std::env::var_os("PATH") {
        search.extend(std::env::split_paths(&p).filter(|d| d != &dir));
    }
    cmd.env("PATH", std::env::join_paths(search)?);
    for var in ["CMAKE_C_COMPILER_LAUNCHER", "CMAKE_CXX_COMPILER_LAUNCHER"] {
        if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            cmd.env(var, exe);
        }
    }
    let mut wrapped_any = false;
    for (k, v) in std::env::vars_os() {
        let Some(name) = k.to_str() else { continue };
        if !is_compiler_var(name) || v.is_empty() {
            continue;
        }
        let first = first_word(&v);
        let stem = Path::new(&first)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if KNOWN_WRAPPERS.contains(&stem.as_str()) {
            continue;
        }
        // A bare default name is found on PATH, in the link directory.
        if !first.contains('/') && NAMES.contains(&first.as_str()) {
            continue;
        }
        let mut wrapped = OsString::from(exe);
        wrapped.push(" ");
        wrapped.push(&v);
        cmd.env(&k, wrapped);
        wrapped_any = true;
    }
    if wrapped_any && std::env::var_os("CC_KNOWN_WRAPPER_CUSTOM").is_none() {
        cmd.env("CC_KNOWN_WRAPPER_CUSTOM", "zcfs");
    }
    Ok(())
}

/// `CC`, `CXX`, `HOST_CC`, `TARGET_CXX`, `CC_x86_64-unknown-linux-gnu`, `CXX_..._...`.
fn is_compiler_var(name: &str) -> bool {
    let base = name
        .strip_prefix("HOST_")
        .or_else(|| name.strip_prefix("TARGET_"))
        .unwrap_or(name);
    base == "CC"
        || base == "CXX"
        || (name.starts_with("CC_")
            && name != "CC_KNOWN_WRAPPER_CUSTOM"
            && !name.starts_with("CC_ENABLE"))
        || name.starts_with("CXX_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_variables() {
        for v in [
            "CC",
            "CXX",
            "HOST_CC",
            "TARGET_CXX",
            "CC_x86_64-unknown-linux-gnu",
            "CXX_x86_64_unknown_linux_gnu",
        ] {
            assert!(is_compiler_var(v), "{v}");
        }
        for v in ["CFLAGS", "CC_KNOWN_WRAPPER_CUSTOM", "CCACHE_DIR", "RUSTC"] {
            assert!(!is_compiler_var(v), "{v}");
        }
    }
}
