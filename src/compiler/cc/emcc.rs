//! Emscripten's `emcc`/`em++` (spec CE): a shell launcher that starts Python, which checks
//! its cache and runs one clang. zcfs caches its compile-only invocations with the C/C++
//! machinery (the rest of `compiler/cc`: emcc is a dialect of clang there), and learns everything it needs without running emcc, so a hit
//! starts no Python:
//!
//! - the identity (CE1) is the launcher, `emcc.py`/`em++.py` and `emscripten-version.txt`
//!   of the Emscripten tree the launcher lives in, the configuration file found as emcc
//!   finds it (`--em-config`, `EM_CONFIG`, `<root>/.emscripten`, the emsdk root's,
//!   `~/.emscripten`), the clang it names (`LLVM_ROOT`, `CLANG_ADD_VERSION`, their `EM_*`
//!   overrides), every `EM_*`/`EMCC_*` variable and `--cache`;
//! - `EMCC_CFLAGS` is split as a shell would and appended to the arguments (as emcc does);
//! - emcc's own options (`-sKEY[=VALUE]`, `-s KEY=VALUE`, `--cache`, `--em-config`) are
//!   keyed and kept from the C/C++ option table; any other option it does not know passes
//!   through, as for gcc and clang.
//!
//! The sysroot headers come from clang's dependency list (zcfs adds `-MD`), so a hit checks
//! that they are still there: a deleted or changed sysroot is a miss, and emcc's own run
//! installs it again (CE5).

use crate::os::OsStrExt;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::compiler::Uncacheable;
use crate::fsview::hashcache::HashCache;
use crate::hash::{Digest, KeyHasher};

/// Environment variables that make an emcc compile uncacheable: debugging modes that write
/// files and change what is printed, and emcc's own ccache hook.
const UNCACHEABLE_ENV: &[&str] = &["EMCC_DEBUG", "EMCC_AUTODEBUG", "_EMCC_CCACHE"];

/// emcc options that take the next argument as their value (consumed by emcc).
const EMCC_WITH_VALUE: &[&str] = &["--cache", "--em-config"];

/// What emcc itself consumes from a command line, split from what reaches clang.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EmccArgs {
    /// The arguments for the C/C++ option table (clang's), in order.
    pub clang: Vec<String>,
    /// emcc's own options, in order, each as one string (`-sX=Y`, `--cache=DIR`), keyed.
    pub own: Vec<String>,
    /// emcc's own options as given (for runs of emcc zcfs makes on a miss).
    pub own_given: Vec<String>,
    pub em_config: Option<String>,
    pub cache: Option<String>,
    /// Files whose content a setting takes (`-sKEY=@file`).
    pub named_files: Vec<PathBuf>,
}

/// A setting whose value emcc reads from a file (`KEY=@file`).
fn setting_file(setting: &str) -> Option<PathBuf> {
    let (_, v) = setting.split_once('=')?;
    v.strip_prefix('@').map(PathBuf::from)
}

/// Splits the arguments (with `EMCC_CFLAGS` already appended) into emcc's and clang's.
pub fn split_args(args: &[String]) -> Result<EmccArgs, Uncacheable> {
    let mut out = EmccArgs::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let next = args.get(i + 1);
        if a == "-s" {
            let v = next.ok_or_else(|| Uncacheable::new("bad arguments", "-s without a value"))?;
            out.own.push(format!("-s{v}"));
            out.own_given.extend([a.clone(), v.clone()]);
            out.named_files.extend(setting_file(v));
            i += 2;
            continue;
        }
        if let Some(setting) = a.strip_prefix("-s")
            && setting.starts_with(|c: char| c.is_ascii_uppercase())
        {
            out.own.push(a.clone());
            out.own_given.push(a.clone());
            out.named_files.extend(setting_file(setting));
            i += 1;
            continue;
        }
        if let Some(opt) = EMCC_WITH_VALUE
            .iter()
            .find(|o| a == **o || a.strip_prefix(**o).is_some_and(|r| r.starts_with('=')))
        {
            let value = if a == opt {
                i += 1;
                let v = next.cloned().ok_or_else(|| {
                    Uncacheable::new("bad arguments", format!("{a} without a value"))
                })?;
                out.own_given.extend([a.clone(), v.clone()]);
                v
            } else {
                out.own_given.push(a.clone());
                a[opt.len() + 1..].to_string()
            };
            out.own.push(format!("{opt}={value}"));
            if *opt == "--cache" {
                out.cache = Some(value);
            } else {
                out.em_config = Some(value);
            }
            i += 1;
            continue;
        }
        match a.as_str() {
            "--post-link" | "--clear-cache" | "--clear-ports" | "--show-ports" | "--cflags"
            | "--check" | "-###" => {
                return Err(Uncacheable::new(
                    "unsupported option",
                    format!("{a} (not a compile)"),
                ));
            }
            _ => {}
        }
        if a.starts_with("-march=native") || a.starts_with("-mcpu=native") {
            return Err(Uncacheable::new(
                "unsupported option",
                format!("{a} (emcc)"),
            ));
        }
        out.clang.push(a.clone());
        i += 1;
    }
    Ok(out)
}

/// Splits `EMCC_CFLAGS` and response files as Python's `shlex.split` does: space, `\t`,
/// `\r` and `\n` separate words (not `\v`, not a no-break space), single quotes keep
/// everything, double quotes keep everything but `\"` and `\\`, a backslash outside
/// quotes escapes the next character. An unterminated quote or a final backslash is an
/// error (emcc fails).
pub fn shell_split(s: &str) -> Result<Vec<String>, Uncacheable> {
    let bad = || Uncacheable::new("bad arguments", format!("unbalanced quotes in {s:?}"));
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(bad()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(bad()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(bad()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err(bad()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// The settings of an Emscripten configuration file that zcfs reads: simple assignments
/// of string literals. Anything else in the file is hashed, not interpreted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Config {
    llvm_root: Option<String>,
    clang_add_version: Option<String>,
    /// `LLVM_ROOT` is assigned, but not as a literal zcfs can read.
    llvm_root_computed: bool,
}

fn parse_config(text: &str) -> Config {
    let mut c = Config::default();
    for line in text.lines() {
        let line = line.trim_end();
        // Only top-level assignments count; indented ones sit under an `if`.
        if line.starts_with(char::is_whitespace) || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key != "LLVM_ROOT" && key != "CLANG_ADD_VERSION" {
            continue;
        }
        let value = value.split(" #").next().unwrap_or_default().trim();
        let literal = ['\'', '"'].iter().find_map(|q| {
            value
                .strip_prefix(*q)
                .and_then(|v| v.strip_suffix(*q))
                .filter(|v| !v.contains(*q) && !v.contains('\\'))
                .map(str::to_string)
        });
        match (key, literal) {
            ("LLVM_ROOT", Some(v)) => {
                c.llvm_root = Some(v);
                c.llvm_root_computed = false;
            }
            ("LLVM_ROOT", None) => c.llvm_root_computed = true,
            (_, v) => c.clang_add_version = v,
        }
    }
    c
}

fn env_setting(env: &HashMap<OsString, OsString>, key: &str) -> Option<String> {
    // An empty or `0` override is ignored (as a value of "unset").
    env.get(OsStr::new(key))
        .and_then(|v| v.to_str())
        .filter(|v| !v.is_empty() && *v != "0")
        .map(str::to_string)
}

/// Where emcc would read its configuration (`tools/config.py`), and whether it exists.
fn config_path(
    root: &Path,
    em_config: Option<&str>,
    env: &HashMap<OsString, OsString>,
    cwd: &Path,
) -> PathBuf {
    let expand = |p: &str| -> PathBuf {
        match (p.strip_prefix("~/"), env.get(OsStr::new("HOME"))) {
            (Some(rest), Some(home)) => Path::new(home).join(rest),
            _ => crate::fsutil::resolve(cwd, Path::new(p)),
        }
    };
    if let Some(p) = em_config {
        return expand(p);
    }
    if let Some(p) = env.get(OsStr::new("EM_CONFIG")).and_then(|v| v.to_str()) {
        return expand(p);
    }
    let embedded = root.join(".emscripten");
    if embedded.exists() {
        return embedded;
    }
    if let Some(emsdk) = root.parent().and_then(Path::parent) {
        let p = emsdk.join(".emscripten");
        if p.exists() {
            return p;
        }
    }
    expand("~/.emscripten")
}

/// Configurations parsed by content.
#[derive(Default)]
pub struct EmccFacts {
    configs: Mutex<HashMap<Digest, Config>>,
    /// The compiler libraries of a clang, and whether it honours `SOURCE_DATE_EPOCH`, by
    /// the clang's content.
    clang_libs: Mutex<HashMap<Digest, (Vec<PathBuf>, bool)>>,
}

/// One Emscripten invocation's identity: everything but its arguments and sources.
pub struct EmccIdentity {
    pub digest: Digest,
    /// The clang emcc runs.
    pub clang: PathBuf,
    /// That clang takes `__DATE__`/`__TIME__` from `SOURCE_DATE_EPOCH`.
    pub honours_sde: bool,
}

impl EmccFacts {
    pub fn new() -> EmccFacts {
        EmccFacts::default()
    }

    /// The identity of the emcc at `launcher` (absolute), invoked as `invoked`, for a
    /// command line whose emcc options are `args` (CE1). Reads files only.
    pub fn identity(
        &self,
        launcher: &Path,
        invoked: &str,
        args: &EmccArgs,
        env: &HashMap<OsString, OsString>,
        cwd: &Path,
        hashes: &HashCache,
    ) -> Result<EmccIdentity, Uncacheable> {
        let identity_err = |what: String| Uncacheable::new("compiler identity", what);
        let digest_of = |p: &Path| {
            hashes
                .digest(p)
                .map(|(d, _)| d)
                .map_err(|e| identity_err(format!("{}: {e}", p.display())))
        };
        let canonical = launcher
            .canonicalize()
            .map_err(|e| identity_err(format!("{}: {e}", launcher.display())))?;
        let root = canonical
            .parent()
            .filter(|r| r.join("emcc.py").is_file())
            .ok_or_else(|| {
                identity_err(format!(
                    "{} is not in an Emscripten tree (no emcc.py beside it)",
                    canonical.display()
                ))
            })?;
        let cxx = invoked.starts_with("em++");
        let entry = root.join(if cxx { "em++.py" } else { "emcc.py" });
        let version = root.join("emscripten-version.txt");

        let config_file = config_path(root, args.em_config.as_deref(), env, cwd);
        let config_digest = digest_of(&config_file).map_err(|_| {
            Uncacheable::new(
                "emscripten config",
                format!(
                    "{} cannot be read (emcc would create it)",
                    config_file.display()
                ),
            )
        })?;
        let known = self.configs.lock().get(&config_digest).cloned();
        let config = match known {
            Some(c) => c,
            None => {
                let text = std::fs::read(&config_file).map_err(|e| {
                    Uncacheable::new(
                        "emscripten config",
                        format!("{}: {e}", config_file.display()),
                    )
                })?;
                let c = parse_config(&String::from_utf8_lossy(&text));
                self.configs.lock().insert(config_digest, c.clone());
                c
            }
        };
        let llvm_root = match env_setting(env, "EM_LLVM_ROOT") {
            Some(v) => v,
            None if config.llvm_root_computed => {
                return Err(Uncacheable::new(
                    "emscripten config",
                    format!("{}: LLVM_ROOT is not a plain string", config_file.display()),
                ));
            }
            None => config.llvm_root.clone().ok_or_else(|| {
                Uncacheable::new(
                    "emscripten config",
                    format!("{}: no LLVM_ROOT", config_file.display()),
                )
            })?,
        };
        let suffix = env_setting(env, "EM_CLANG_ADD_VERSION")
            .or(config.clang_add_version.clone())
            .filter(|v| !v.is_empty())
            .map(|v| format!("-{v}"))
            .unwrap_or_default();
        let clang_name = format!("{}{suffix}", if cxx { "clang++" } else { "clang" });
        let clang = crate::fsutil::resolve(cwd, &Path::new(&llvm_root).join(clang_name));

        let mut h = KeyHasher::new("zcfs-emcc-identity-v1");
        h.field("invoked", invoked.as_bytes());
        h.field("launcher", canonical.as_os_str().as_bytes());
        h.digest("launcher-content", &digest_of(&canonical)?);
        h.digest("entry", &digest_of(&entry)?);
        h.digest("version", &digest_of(&version)?);
        h.field("config", config_file.as_os_str().as_bytes());
        h.digest("config-content", &config_digest);
        h.field("clang", clang.as_os_str().as_bytes());
        let clang_digest = digest_of(&clang)?;
        h.digest("clang-content", &clang_digest);
        let known = self.clang_libs.lock().get(&clang_digest).cloned();
        let (libs, honours_sde) = match known {
            Some(l) => l,
            None => {
                let l = (
                    super::programs::compiler_libraries(&clang),
                    super::programs::honours_sde(&clang, env),
                );
                self.clang_libs.lock().insert(clang_digest, l.clone());
                l
            }
        };
        for lib in &libs {
            h.field("clang-library", lib.as_os_str().as_bytes());
            h.digest("content", &digest_of(lib)?);
        }
        let mut vars: Vec<(&OsString, &OsString)> = env
            .iter()
            .filter(|(k, _)| {
                let k = k.as_bytes();
                k.starts_with(b"EM_") || k.starts_with(b"EMCC_") || k.starts_with(b"EMMAKEN_")
            })
            .collect();
        vars.sort();
        for (k, v) in vars {
            h.field("env", k.as_bytes());
            h.field("value", v.as_bytes());
        }
        for a in &args.own {
            h.field("own-arg", a.as_bytes());
        }
        Ok(EmccIdentity {
            digest: h.finish(),
            clang,
            honours_sde,
        })
    }
}

/// The diagnostics of a miss as a hit should replay them: without the lines emcc prints
/// while it sets up its cache (`shared:INFO: (Emscripten: Running sanity checks)`,
/// `cache:INFO: generating system headers...`), which a later run with the cache in place
/// does not print.
pub fn replayable_stderr(stderr: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stderr.len());
    for line in stderr.split_inclusive(|&b| b == b'\n') {
        let plain = super::diag::strip_colours(line);
        if plain.starts_with(b"shared:INFO: ") || plain.starts_with(b"cache:INFO: ") {
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

/// emcc's response files (`tools/response_file.py`): each `@file` and `-Wl,@file` argument
/// of the command line and `EMCC_CFLAGS` is replaced by its words, once (a nested `@file`
/// would reach clang, which expands it by other rules: not cached). Files are UTF-8 (a
/// leading BOM dropped) unless their name ends in another encoding's suffix (not cached).
pub fn expand_response_files(
    args: Vec<String>,
    cwd: &Path,
    fs: &dyn crate::fsview::FsView,
) -> Result<Vec<String>, Uncacheable> {
    if !args
        .iter()
        .any(|a| a.starts_with('@') || a.starts_with("-Wl,@"))
    {
        return Ok(args);
    }
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        let (file, linker) = match (a.strip_prefix('@'), a.strip_prefix("-Wl,@")) {
            (Some(f), _) => (f.to_string(), false),
            (_, Some(f)) => (f.to_string(), true),
            _ => {
                out.push(a);
                continue;
            }
        };
        let name = Path::new(&file)
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if let Some((_, suffix)) = name.rsplit_once('.')
            && (suffix.starts_with("utf")
                || suffix.starts_with("cp")
                || suffix.starts_with("iso")
                || suffix == "ascii"
                || suffix == "latin-1")
            && !matches!(suffix, "utf-8" | "utf8" | "utf_8")
        {
            return Err(Uncacheable::new(
                "bad arguments",
                format!("@{file}: encoded as {suffix}"),
            ));
        }
        let text = super::rsp::read_response_file(cwd, &file, fs)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        for w in shell_split(text)? {
            if w.starts_with('@') {
                return Err(Uncacheable::new(
                    "bad arguments",
                    format!("@{file} names another response file"),
                ));
            }
            out.push(if linker && w.starts_with('-') {
                format!("-Wl,{w}")
            } else {
                w
            });
        }
    }
    Ok(out)
}

/// The full argument list emcc parses: the command line, then `EMCC_CFLAGS`.
pub fn with_cflags(
    args: Vec<String>,
    env: &HashMap<OsString, OsString>,
) -> Result<Vec<String>, Uncacheable> {
    for v in UNCACHEABLE_ENV {
        if env.contains_key(OsStr::new(v)) {
            return Err(Uncacheable::new(
                "unsupported environment",
                format!("{v} is set"),
            ));
        }
    }
    let mut args = args;
    if let Some(flags) = env.get(OsStr::new("EMCC_CFLAGS")) {
        let flags = flags
            .to_str()
            .ok_or_else(|| Uncacheable::new("bad arguments", "EMCC_CFLAGS is not UTF-8"))?;
        args.extend(shell_split(flags)?);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn emcc_options_are_split_from_clangs() {
        let a = split_args(&s(&[
            "-c",
            "a.c",
            "-sUSE_PTHREADS",
            "-s",
            "MEMORY64=1",
            "-sEXPORTED_FUNCTIONS=['_f']",
            "--cache",
            "/c",
            "--em-config=/e",
            "-O2",
            "-std=c11",
        ]))
        .unwrap();
        assert_eq!(a.clang, s(&["-c", "a.c", "-O2", "-std=c11"]));
        assert_eq!(
            a.own,
            s(&[
                "-sUSE_PTHREADS",
                "-sMEMORY64=1",
                "-sEXPORTED_FUNCTIONS=['_f']",
                "--cache=/c",
                "--em-config=/e"
            ])
        );
        assert_eq!(a.cache.as_deref(), Some("/c"));
        assert_eq!(a.em_config.as_deref(), Some("/e"));
        // `-shared`, `-static` and `-std` are clang's.
        let a = split_args(&s(&["-shared", "-static", "-c", "a.c"])).unwrap();
        assert!(a.own.is_empty());
        for bad in [
            &["-c", "a.c", "--clear-cache"][..],
            &["-c", "a.c", "-s"],
            &["-march=native"],
        ] {
            assert!(split_args(&s(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emcc_cflags_split_like_shlex() {
        assert_eq!(
            shell_split(r#"-O2  -DX="a b" -DY='c "d"' e\ f -DZ="q\"r""#).unwrap(),
            s(&["-O2", "-DX=a b", "-DY=c \"d\"", "e f", "-DZ=q\"r"])
        );
        assert_eq!(shell_split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(shell_split("''").unwrap(), s(&[""]));
        assert!(shell_split("'open").is_err());
        let env: HashMap<OsString, OsString> =
            [("EMCC_CFLAGS".into(), "-DA=1 -sSTRICT".into())].into();
        assert_eq!(
            with_cflags(s(&["-c", "a.c"]), &env).unwrap(),
            s(&["-c", "a.c", "-DA=1", "-sSTRICT"])
        );
        let env: HashMap<OsString, OsString> = [("EMCC_DEBUG".into(), "1".into())].into();
        assert_eq!(
            with_cflags(s(&["-c", "a.c"]), &env).unwrap_err().reason,
            "unsupported environment"
        );
    }

    #[test]
    fn cache_setup_messages_are_not_replayed() {
        let miss = b"shared:INFO: (Emscripten: Running sanity checks)\n\
            cache:INFO: generating system headers: sysroot_install.stamp...\n\
            cache:INFO:  - ok\n\
            a.c:1:5: warning: unused [-Wunused]\n\
            emcc: warning: linker setting ignored during compilation: 'X'\n";
        assert_eq!(
            replayable_stderr(miss),
            b"a.c:1:5: warning: unused [-Wunused]\n\
              emcc: warning: linker setting ignored during compilation: 'X'\n"
                .to_vec()
        );
        assert_eq!(replayable_stderr(b"no newline"), b"no newline".to_vec());
    }

    #[test]
    fn config_literals_are_read_and_the_rest_is_not_interpreted() {
        let c = parse_config(
            "# comment\nimport os\nLLVM_ROOT = '/usr/bin' # directory\nCLANG_ADD_VERSION = \"14\"\n\
             if x:\n  LLVM_ROOT = '/other'\n",
        );
        assert_eq!(c.llvm_root.as_deref(), Some("/usr/bin"));
        assert_eq!(c.clang_add_version.as_deref(), Some("14"));
        assert!(!c.llvm_root_computed);
        let c = parse_config("LLVM_ROOT = os.path.expanduser('~/llvm')\n");
        assert!(c.llvm_root_computed);
        assert_eq!(c.llvm_root, None);
    }

    #[test]
    fn identity_follows_the_tree_the_config_and_the_clang() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("emscripten");
        let llvm = dir.path().join("llvm");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&llvm).unwrap();
        let w = |p: &Path, t: &str| std::fs::write(p, t).unwrap();
        w(
            &root.join("emcc"),
            "#!/bin/sh\nexec python3 emcc.py \"$@\"\n",
        );
        w(&root.join("emcc.py"), "print()\n");
        w(&root.join("emscripten-version.txt"), "3.1.6\n");
        w(&llvm.join("clang"), "clang one");
        w(&llvm.join("clang-15"), "clang fifteen");
        let config = format!("LLVM_ROOT = '{}'\n", llvm.display());
        w(&root.join(".emscripten"), &config);
        let facts = EmccFacts::new();
        let env: HashMap<OsString, OsString> = HashMap::new();
        let id = |env: &HashMap<OsString, OsString>, args: &EmccArgs| {
            // A fresh hash cache: the test rewrites files within one timestamp tick.
            facts
                .identity(
                    &root.join("emcc"),
                    "emcc",
                    args,
                    env,
                    dir.path(),
                    &HashCache::new(),
                )
                .map(|i| (i.digest, i.clang))
        };
        let none = EmccArgs::default();
        let (base, clang) = id(&env, &none).unwrap();
        assert_eq!(clang, llvm.join("clang"));
        assert_eq!(id(&env, &none).unwrap().0, base);
        let mut changed = Vec::new();
        w(&root.join("emscripten-version.txt"), "3.1.7\n");
        changed.push(id(&env, &none).unwrap().0);
        w(&llvm.join("clang"), "clang two");
        changed.push(id(&env, &none).unwrap().0);
        w(
            &root.join(".emscripten"),
            &format!("{config}CLANG_ADD_VERSION = '15'\n"),
        );
        let (d, clang) = id(&env, &none).unwrap();
        assert_eq!(clang, llvm.join("clang-15"));
        changed.push(d);
        let env2: HashMap<OsString, OsString> = [("EM_CACHE".into(), "/x".into())].into();
        changed.push(id(&env2, &none).unwrap().0);
        let own = split_args(&s(&["-sMEMORY64"])).unwrap();
        changed.push(id(&env, &own).unwrap().0);
        for (i, d) in changed.iter().enumerate() {
            assert_ne!(*d, base, "change {i}");
        }
        // A config given on the command line that does not exist: emcc would create one.
        let missing = split_args(&s(&["--em-config", "/nonexistent"])).unwrap();
        assert_eq!(id(&env, &missing).unwrap_err().reason, "emscripten config");
        // A launcher outside an Emscripten tree.
        w(&llvm.join("emcc"), "");
        let e = facts
            .identity(
                &llvm.join("emcc"),
                "emcc",
                &none,
                &env,
                dir.path(),
                &HashCache::new(),
            )
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.reason, "compiler identity");
    }
}
