//! Who the C compiler is (spec CK1, CK12) and what it reports about itself: the digest of its
//! executable and of the programs it runs (gcc's `cc1`/`cc1plus` and assembler), its
//! family, its include search list (`-E -v`) and what `-march=native` means on this
//! machine (`-###`). Facts that need a compiler run are learned once per daemon and kept in
//! memory, keyed by everything that can change them.

use crate::os::OsStrExt;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use parking_lot::Mutex;

use super::includes::{SearchList, parse_search_list};
use super::probes::{Probes, path_list, search_dirs_line};
use super::programs::{compiler_libraries, honours_sde, run};
use crate::fsview::hashcache::HashCache;
use crate::hash::{Digest, KeyHasher};
use crate::os::FileStat;

/// Which driver a C compiler is (its options, messages and files follow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Gcc,
    Clang,
}

/// What was learned about one compiler executable.
#[derive(Debug)]
struct Known {
    family: Driver,
    /// The executable and the programs it runs (and gcc's `specs` file, if it has one),
    /// absolute.
    programs: Vec<PathBuf>,
    /// clang's external assembler (`-no-integrated-as`), if it finds one.
    assembler: Option<PathBuf>,
    /// The directories the driver looked for those in: a program or `specs` file that
    /// appears there (or a `COMPILER_PATH` directory that is filled) changes the driver.
    probes: Probes,
    /// The same for clang's external assembler.
    as_probes: Probes,
    /// Programs the driver runs from PATH, and where PATH led to them.
    path_lookups: Vec<(String, PathBuf)>,
    /// `SOURCE_DATE_EPOCH` fixes `__DATE__` and `__TIME__` (gcc; clang only from 16).
    honours_sde: bool,
}

#[derive(Debug, Clone)]
pub struct CcIdentity {
    pub family: Driver,
    /// The invoked name, the family and the content of every program.
    pub digest: Digest,
    /// `SOURCE_DATE_EPOCH` fixes `__DATE__` and `__TIME__`.
    pub honours_sde: bool,
}

/// A search list and what it was learned from.
type LearntList = (Arc<SearchList>, Probes);

/// Variables that change where the driver finds its programs and `specs` file.
const PROGRAM_ENV: &[&str] = &["PATH", "COMPILER_PATH", "GCC_EXEC_PREFIX", "LIBRARY_PATH"];

/// The executable (as invoked, and the stat of what that leads to) and the variables its
/// sub-programs are found by (and the invoked path's own entry).
type KnownKey = (PathBuf, [i128; 5], Digest);

#[derive(Default)]
pub struct CcFacts {
    /// What is known about Emscripten installs (their identity comes from files).
    pub emcc: super::emcc::EmccFacts,
    known: Mutex<HashMap<KnownKey, Arc<Known>>>,
    search: Mutex<HashMap<Digest, Arc<LearntList>>>,
    native: Mutex<HashMap<Digest, Digest>>,
}

/// Environment variables that change what the compiler does or prints beyond its
/// arguments (CK5): include paths, its programs, the language and width of its messages
/// (`LANGUAGE`, `LC_*`, `COLUMNS`), their colours and links, gcc's own variables
/// (`GCC_EXTRA_DIAGNOSTIC_OUTPUT` adds fix-it hints to them), clang's (`CCC_*` driver
/// overrides, `CLANG_*` configuration files).
pub fn is_keyed_env(name: &str) -> bool {
    matches!(
        name,
        "CPATH"
            | "C_INCLUDE_PATH"
            | "CPLUS_INCLUDE_PATH"
            | "OBJC_INCLUDE_PATH"
            | "OBJCPLUS_INCLUDE_PATH"
            | "COMPILER_PATH"
            | "LIBRARY_PATH"
            | "LANG"
            | "LANGUAGE"
            | "TERM_URLS"
            | "COLUMNS"
            | "SDKROOT"
    ) || name.starts_with("LD_")
        || name.starts_with("LC_")
        || name.starts_with("GCC_")
        || name.starts_with("CCC_")
        || name.starts_with("CLANG_")
        || name.ends_with("_DEPLOYMENT_TARGET")
}

/// Environment variables that make the compiler write a file or extra output zcfs does
/// not capture (clang's driver: `CC_PRINT_OPTIONS`, `CC_PRINT_HEADERS`,
/// `CC_LOG_DIAGNOSTICS`, `CC_PRINT_PROC_STAT` and their `_FILE`s).
pub fn is_unsupported_env(name: &str) -> bool {
    name.starts_with("CC_PRINT_") || name.starts_with("CC_LOG_DIAGNOSTICS")
}

impl CcFacts {
    pub fn new() -> CcFacts {
        CcFacts::default()
    }

    /// The identity of `compiler` (absolute) as invoked under the name `invoked`;
    /// `external_as`: clang is asked to run the system assembler (`-no-integrated-as`).
    pub fn identity(
        &self,
        compiler: &Path,
        invoked: &[u8],
        external_as: bool,
        env: &HashMap<OsString, OsString>,
        hashes: &HashCache,
    ) -> Result<CcIdentity> {
        // Known by the path as invoked, the entry there (a symlink re-pointed) and what it
        // leads to (resolving the whole chain each time would cost a readlink per link).
        let stat = FileStat::of_path(compiler, None)
            .with_context(|| format!("cannot find the compiler {}", compiler.display()))?;
        let link = std::fs::symlink_metadata(compiler)
            .map(|m| crate::os::file_stat(&m))
            .with_context(|| format!("cannot find the compiler {}", compiler.display()))?;
        let mut vars = KeyHasher::new("zcfs-cc-program-env-v1");
        for v in PROGRAM_ENV {
            match env.get(OsStr::new(v)) {
                Some(value) => {
                    vars.field(v, value.as_bytes());
                }
                None => {
                    vars.field("unset", v.as_bytes());
                }
            }
        }
        vars.field("link", &link.ino.to_le_bytes());
        vars.field("link-ctime", &link.ctime.to_le_bytes());
        let k = (
            compiler.to_path_buf(),
            [
                stat.dev as i128,
                stat.ino as i128,
                stat.size as i128,
                stat.mtime,
                stat.ctime,
            ],
            vars.finish(),
        );
        let known = self.known.lock().get(&k).cloned();
        // Asked of the daemon's watched view: names and kinds, a directory's times.
        let stat = |p: &Path| {
            hashes
                .meta(p, false)
                .ok()
                .flatten()
                .map(|m| (m.is_dir, m.stat))
        };
        let executable = |p: &Path| {
            matches!(hashes.meta(p, false), Ok(Some(m)) if m.is_file)
                && std::fs::metadata(p).is_ok_and(|m| crate::os::is_executable(&m))
        };
        let holds = |k: &Known| {
            k.probes.hold_with(&stat)
                && (!external_as || k.as_probes.hold_with(&stat))
                && k.path_lookups.iter().all(|(name, at)| {
                    // Where PATH leads now (no need to ask whether that is zcfs: a file
                    // that appeared anywhere before `at` is a change either way).
                    crate::masquerade::which_by(
                        Path::new(name),
                        env,
                        Path::new("/"),
                        false,
                        &executable,
                    )
                    .as_ref()
                        == Some(at)
                })
        };
        let known = match known {
            Some(k) if holds(&k) => k,
            _ => {
                let canonical = compiler
                    .canonicalize()
                    .with_context(|| format!("cannot find the compiler {}", compiler.display()))?;
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
                Driver::Gcc => b"gcc",
                Driver::Clang => b"clang",
            },
        );
        let assembler = match (external_as, known.family) {
            (true, Driver::Clang) => Some(known.assembler.as_ref().ok_or_else(|| {
                anyhow!(
                    "{} finds no assembler for -no-integrated-as",
                    compiler.display()
                )
            })?),
            _ => None,
        };
        for p in known.programs.iter().chain(assembler) {
            let (d, _) = hashes
                .digest(p)
                .map_err(|e| anyhow!("{}: {e}", p.display()))?;
            h.field("program", p.as_os_str().as_bytes());
            h.digest("content", &d);
        }
        Ok(CcIdentity {
            family: known.family,
            digest: h.finish(),
            honours_sde: known.honours_sde,
        })
    }

    /// The include search list for a compile, from `cc <args> -E -v -x <lang> /dev/null`.
    /// Kept while the directories it names (and, for clang, those it found its GCC
    /// installation in) are as they were: an `-I` directory created later, a file that
    /// replaces one, another GCC version installed, make it learn the list again.
    pub fn search_list(
        &self,
        compiler: &Path,
        key: Digest,
        args: &[String],
        lang: &str,
        env: &HashMap<OsString, OsString>,
        cwd: &Path,
    ) -> Result<Arc<SearchList>> {
        let known = self.search.lock().get(&key).cloned();
        if let Some(k) = known
            && k.1.hold()
        {
            return Ok(k.0.clone());
        }
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        a.extend(["-E", "-v", "-x", lang, "/dev/null", "-o", "/dev/null"]);
        let (_, _, stderr) = run(compiler, &a, env, cwd)?;
        let list = parse_search_list(&stderr)
            .ok_or_else(|| anyhow!("{} -E -v printed no search list", compiler.display()))?;
        let probes = list.probes(cwd, args);
        let list = Arc::new(list);
        self.search
            .lock()
            .insert(key, Arc::new((list.clone(), probes)));
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
        Driver::Clang
    } else if text.contains("Free Software Foundation") || first.contains("gcc") {
        Driver::Gcc
    } else {
        return Err(anyhow!(
            "{} is neither gcc nor clang ({first:?})",
            compiler.display()
        ));
    };
    let mut programs = vec![canonical.to_path_buf()];
    let mut probes = Probes::new();
    let mut as_probes = Probes::new();
    let mut path_lookups = Vec::new();
    // Where the driver looks for its programs (gcc: `COMPILER_PATH`, `GCC_EXEC_PREFIX`,
    // its own directories; clang: those, its directory, the GCC installation's) and for a
    // `specs` file (gcc: the library directories): a program appearing there is used
    // next time. What it finds on PATH is looked up again instead (PATH directories
    // change for other reasons).
    let (_, dirs, _) = run(compiler, &["-print-search-dirs"], env, Path::new("/"))?;
    let program_dirs = search_dirs_line(&dirs, "programs:");
    let library_dirs = search_dirs_line(&dirs, "libraries:");
    let path_var = env.get(OsStr::new("PATH")).cloned().unwrap_or_default();
    let find = |prog: &str| -> Result<Option<(PathBuf, bool)>> {
        let (ok, out, _) = run(
            compiler,
            &[&format!("-print-prog-name={prog}")],
            env,
            Path::new("/"),
        )?;
        if !ok {
            return Ok(None);
        }
        let name = PathBuf::from(out.trim());
        if name.is_absolute() {
            return Ok(name.is_file().then_some((name, false)));
        }
        // Not on its own path: the driver runs it from PATH, which must not depend on
        // the compile's directory.
        if path_list(&path_var).iter().any(|d| d.is_relative())
            || std::env::split_paths(&path_var).any(|d| d.as_os_str().is_empty())
        {
            return Err(anyhow!(
                "PATH has a relative directory, where {} would look for {prog}",
                compiler.display()
            ));
        }
        Ok(crate::masquerade::resolve_program(&name, env, Path::new("/")).map(|p| (p, true)))
    };
    let mut assembler = None;
    if family == Driver::Gcc {
        for d in program_dirs.iter().chain(&library_dirs) {
            probes.listing(d);
        }
        for prog in ["cc1", "cc1plus", "as"] {
            if let Some((p, on_path)) = find(prog)? {
                if on_path {
                    path_lookups.push((prog.to_string(), p.clone()));
                }
                if !programs.contains(&p) {
                    programs.push(p);
                }
            }
        }
        let (ok, specs, _) = run(compiler, &["-print-file-name=specs"], env, Path::new("/"))?;
        let specs = PathBuf::from(specs.trim());
        if ok && specs.is_absolute() && specs.is_file() && !programs.contains(&specs) {
            programs.push(specs);
        }
    } else {
        // clang prints the assembler's path wherever it found it (its program
        // directories, then PATH). Needed only for `-no-integrated-as`: a lookup that
        // fails leaves those compiles uncached, not the others.
        if let Some((p, _)) = find("as").ok().flatten() {
            for d in &program_dirs {
                as_probes.listing(d);
            }
            if !program_dirs.iter().any(|d| p.starts_with(d)) {
                for d in path_list(&path_var) {
                    as_probes.listing(&d);
                }
            }
            assembler = Some(p);
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
    let honours_sde = honours_sde(compiler, env);
    tracing::debug!(
        "learnt {}: {} programs, {} directories watched, {} found on PATH",
        compiler.display(),
        programs.len(),
        probes.len(),
        path_lookups.len()
    );
    Ok(Known {
        family,
        programs,
        assembler,
        probes,
        as_probes,
        path_lookups,
        honours_sde,
    })
}
