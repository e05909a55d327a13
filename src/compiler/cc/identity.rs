//! Who the C compiler is (spec CK1, CK12) and what it reports about itself: the digest of its
//! executable and of the programs it runs (gcc's `cc1`/`cc1plus` and assembler), its
//! family, its include search list (`-E -v`) and what `-march=native` means on this
//! machine (`-###`). Facts that need a compiler run are learned once per daemon and kept in
//! memory, keyed by everything that can change them.

use crate::os::OsStrExt;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use parking_lot::Mutex;

use super::includes::{SearchList, parse_search_list};
use crate::hash::{Digest, KeyHasher};
use crate::hashcache::{FileStat, HashCache};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Gcc,
    Clang,
}

/// What was learned about one compiler executable.
#[derive(Debug)]
struct Known {
    family: Family,
    /// The executable and the programs it runs, absolute.
    programs: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct CcIdentity {
    pub family: Family,
    /// The invoked name, the family and the content of every program.
    pub digest: Digest,
}

/// The executable (canonical path and stat) and the PATH its sub-programs are found on.
type KnownKey = (PathBuf, [i128; 5], Option<OsString>);

#[derive(Default)]
pub struct CcFacts {
    /// What is known about Emscripten installs (their identity comes from files).
    pub emcc: crate::compiler::emcc::EmccFacts,
    known: Mutex<HashMap<KnownKey, Arc<Known>>>,
    search: Mutex<HashMap<Digest, Arc<SearchList>>>,
    native: Mutex<HashMap<Digest, Digest>>,
}

fn run(
    program: &Path,
    args: &[&str],
    env: &HashMap<OsString, OsString>,
    cwd: &Path,
) -> Result<(bool, String, String)> {
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().envs(env);
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

/// Environment variables that change what the compiler does beyond its arguments (CK5).
pub fn is_keyed_env(name: &str) -> bool {
    matches!(
        name,
        "CPATH"
            | "C_INCLUDE_PATH"
            | "CPLUS_INCLUDE_PATH"
            | "OBJC_INCLUDE_PATH"
            | "OBJCPLUS_INCLUDE_PATH"
            | "CLANG_CONFIG_FILE_SYSTEM_DIR"
            | "CLANG_CONFIG_FILE_USER_DIR"
            | "COMPILER_PATH"
            | "GCC_COMPARE_DEBUG"
            | "GCC_EXEC_PREFIX"
            | "LANG"
            | "LC_ALL"
            | "LC_CTYPE"
            | "LC_MESSAGES"
            | "GCC_COLORS"
            | "GCC_URLS"
            | "TERM_URLS"
            | "COLUMNS"
            | "SDKROOT"
            | "CCC_OVERRIDE_OPTIONS"
    ) || name.starts_with("LD_")
        || name.ends_with("_DEPLOYMENT_TARGET")
}

impl CcFacts {
    pub fn new() -> CcFacts {
        CcFacts::default()
    }

    /// The identity of `compiler` (absolute) as invoked under the name `invoked`.
    pub fn identity(
        &self,
        compiler: &Path,
        invoked: &[u8],
        env: &HashMap<OsString, OsString>,
        hashes: &HashCache,
    ) -> Result<CcIdentity> {
        let canonical = compiler
            .canonicalize()
            .with_context(|| format!("cannot find the compiler {}", compiler.display()))?;
        let stat = FileStat::of_path(&canonical, None)?;
        let path_var = env.get(&OsString::from("PATH")).cloned();
        let k = (
            canonical.clone(),
            [
                stat.dev as i128,
                stat.ino as i128,
                stat.size as i128,
                stat.mtime,
                stat.ctime,
            ],
            path_var,
        );
        let known = self.known.lock().get(&k).cloned();
        let known = match known {
            Some(k) => k,
            None => {
                let learned = Arc::new(learn(compiler, &canonical, env)?);
                self.known.lock().insert(k, learned.clone());
                learned
            }
        };
        let mut h = KeyHasher::new("zcfs-cc-identity-v1");
        h.field("invoked", invoked);
        h.field(
            "family",
            match known.family {
                Family::Gcc => b"gcc",
                Family::Clang => b"clang",
            },
        );
        for p in &known.programs {
            let (d, _) = hashes
                .digest(p)
                .map_err(|e| anyhow!("{}: {e}", p.display()))?;
            h.field("program", p.as_os_str().as_bytes());
            h.digest("content", &d);
        }
        Ok(CcIdentity {
            family: known.family,
            digest: h.finish(),
        })
    }

    /// The include search list for a compile, from `cc <args> -E -v -x <lang> /dev/null`.
    pub fn search_list(
        &self,
        compiler: &Path,
        key: Digest,
        args: &[String],
        lang: &str,
        env: &HashMap<OsString, OsString>,
        cwd: &Path,
    ) -> Result<Arc<SearchList>> {
        if let Some(l) = self.search.lock().get(&key) {
            return Ok(l.clone());
        }
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        a.extend(["-E", "-v", "-x", lang, "/dev/null", "-o", "/dev/null"]);
        let (_, _, stderr) = run(compiler, &a, env, cwd)?;
        let list = Arc::new(
            parse_search_list(&stderr)
                .ok_or_else(|| anyhow!("{} -E -v printed no search list", compiler.display()))?,
        );
        self.search.lock().insert(key, list.clone());
        Ok(list)
    }

    /// What `-march=native` and the like stand for on this machine (CK12): the compiler's
    /// own expansion, from `-###` (run in `/`, so no path of the caller shows).
    pub fn native(
        &self,
        compiler: &Path,
        identity: &Digest,
        flags: &[String],
        env: &HashMap<OsString, OsString>,
    ) -> Result<Digest> {
        let mut h = KeyHasher::new("zcfs-cc-native-v1");
        h.digest("identity", identity);
        for f in flags {
            h.field("flag", f.as_bytes());
        }
        let key = h.finish();
        if let Some(d) = self.native.lock().get(&key) {
            return Ok(*d);
        }
        let mut a: Vec<&str> = flags.iter().map(String::as_str).collect();
        a.extend(["-###", "-E", "-x", "c", "/dev/null"]);
        let (ok, _, stderr) = run(compiler, &a, env, Path::new("/"))?;
        if !ok {
            return Err(anyhow!("{} -### failed: {stderr}", compiler.display()));
        }
        let d = Digest::of(stderr.as_bytes());
        self.native.lock().insert(key, d);
        Ok(d)
    }
}

/// Runs the compiler to learn its family and the programs it runs.
fn learn(compiler: &Path, canonical: &Path, env: &HashMap<OsString, OsString>) -> Result<Known> {
    let (_, out, err) = run(compiler, &["--version"], env, Path::new("/"))?;
    let text = format!("{out}{err}");
    let first = text.lines().next().unwrap_or_default();
    let family = if text.contains("clang version") || first.contains("clang") {
        Family::Clang
    } else if text.contains("Free Software Foundation") || first.contains("gcc") {
        Family::Gcc
    } else {
        return Err(anyhow!(
            "{} is neither gcc nor clang ({first:?})",
            compiler.display()
        ));
    };
    let mut programs = vec![canonical.to_path_buf()];
    if family == Family::Gcc {
        for prog in ["cc1", "cc1plus", "as"] {
            let (ok, out, _) = run(
                compiler,
                &[&format!("-print-prog-name={prog}")],
                env,
                Path::new("/"),
            )?;
            if !ok {
                continue;
            }
            let name = PathBuf::from(out.trim());
            let found = if name.is_absolute() {
                Some(name)
            } else {
                crate::compiler::rustc::identity::resolve_program(&name, env, Path::new("/"))
            };
            if let Some(p) = found.and_then(|p| p.canonicalize().ok())
                && p.is_file()
                && !programs.contains(&p)
            {
                programs.push(p);
            }
        }
    }
    // The compiler's own shared libraries hold most of it (clang's driver is a small
    // executable over libclang-cpp and libLLVM; gcc's cc1 uses isl, mpfr, gmp): an update
    // of one of them alone changes code without changing the executables.
    for p in programs.clone() {
        for lib in compiler_libraries(&p) {
            if !programs.contains(&lib) {
                programs.push(lib);
            }
        }
    }
    Ok(Known { family, programs })
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
        let clang = crate::compiler::rustc::identity::resolve_program(
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
