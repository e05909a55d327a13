//! gcc and clang, C and C++ (spec c-conformance): an invocation's direct-mode key, what a
//! miss adds to the compile, and, after it succeeded, its outputs and the inputs its
//! manifest entry records (every file read, the paths that must stay absent, the date for
//! `__DATE__`). See docs/c.md.

pub mod args;
pub mod collect;
pub mod diag;
pub mod emcc;
mod family;
pub mod identity;
pub mod includes;
pub mod probes;
mod programs;
pub mod rsp;
pub mod scan;
mod subopts;

pub use collect::{Collected, ScanCache, collect};
pub use diag::strip_colours;
pub use family::CcFamily;

use crate::os::OsStrExt;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use self::args::{CcArgs, Lang};
use self::identity::{CcFacts, CcIdentity, Driver};
use crate::compiler::KeyError;
use crate::compiler::{Language, Uncacheable};
use crate::fsutil::resolve;
use crate::fsview::FsView;
use crate::fsview::hashcache::HashCache;
use crate::hash::{Digest, KeyHasher};

const KEY_VERSION: &str = "zcfs-cc-key-v1";

/// The pseudo-variable an entry records when a file uses `__DATE__`: the local date.
pub const DATE_VAR: &str = "zcfs:date";

/// A C or C++ compile that zcfs can cache.
#[derive(Debug)]
pub struct CcJob {
    pub key: Digest,
    /// The compiler, absolute.
    pub compiler: PathBuf,
    pub identity: CcIdentity,
    pub args: CcArgs,
    pub lang: Lang,
    pub cwd: PathBuf,
    pub env: HashMap<OsString, OsString>,
    /// The diagnostics should carry colours (what the compiler would decide here).
    pub colour_wanted: bool,
    /// zcfs can make the compiler colour its diagnostics (see [`prepare`]).
    forceable: bool,
    /// Where in the command line (after the compiler) extra arguments go: before the
    /// first `--`; `None`: at the end.
    pub insert_at: Option<usize>,
    /// The key of the include search list (`-E -v`) for this compile.
    search_key: Digest,
    /// An Emscripten compile: emcc's own options as given (kept from the option table).
    emcc: Option<Vec<String>>,
    /// [`date_value`] when a miss started (a `__DATE__` then is the date the compile saw,
    /// unless midnight passed while it ran).
    pub date_at_start: Option<String>,
}

/// One output of a compile: its role (the pack entry's name) and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub role: &'static str,
    /// As the command line names it (relative to the cwd or absolute).
    pub path: PathBuf,
    /// Present after every successful compile (else only with some flag combinations).
    pub required: bool,
}

impl CcJob {
    pub fn language(&self) -> Language {
        if self.emcc.is_some() {
            Language::EMCC
        } else if self.lang.is_cxx() {
            Language::CXX
        } else {
            Language::C
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            self.compiler
                .file_name()
                .unwrap_or_default()
                .to_string_lossy(),
            self.args.input.display()
        )
    }

    /// Every file the compile may write, in pack order.
    pub fn outputs(&self) -> Vec<Output> {
        let a = &self.args;
        let mut out = vec![Output {
            role: "o",
            path: a.object(),
            required: true,
        }];
        if self.lang.preprocessed()
            && let Some(d) = a.dep_file()
            && d != Path::new("/dev/null")
        {
            out.push(Output {
                role: "d",
                path: d,
                required: true,
            });
        }
        let mut side = |on: bool, role: &'static str| {
            if on {
                out.push(Output {
                    role,
                    path: a.beside_object(role),
                    required: false,
                });
            }
        };
        side(a.split_dwarf, "dwo");
        side(a.coverage_notes, "gcno");
        side(a.stack_usage, "su");
        side(a.callgraph_info, "ci");
        out
    }

    /// The directories the outputs go to (they must exist: the compiler fails otherwise).
    pub fn output_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .outputs()
            .iter()
            .map(|o| {
                let p = resolve(&self.cwd, &o.path);
                p.parent().map(Path::to_path_buf).unwrap_or(p)
            })
            .collect();
        dirs.dedup();
        dirs
    }

    /// Arguments for a preprocessor-only run (search list, dependency pass): the keyed
    /// arguments without output, dependency-file and mode options, and without the input.
    fn preprocessor_args(&self) -> Vec<String> {
        let a = &self.args;
        let mut out: Vec<String> = self.emcc.clone().unwrap_or_default();
        out.extend(
            a.args
                .iter()
                .enumerate()
                .filter(|(i, s)| {
                    !a.unkeyed.contains(i)
                        && !a.compile_only.contains(i)
                        && !a.colour_opts.contains(i)
                        && !matches!(s.as_str(), "-c" | "-S" | "-MD" | "-MMD" | "-MP")
                })
                .map(|(_, s)| s.clone()),
        );
        out
    }

    /// The environment for the compiler runs zcfs makes on a miss (search list, `-M`):
    /// the job's, without `EMCC_CFLAGS` for emcc (its flags are in the arguments already).
    fn run_env(&self) -> std::borrow::Cow<'_, HashMap<OsString, OsString>> {
        if self.emcc.is_some() && self.env.contains_key(OsStr::new("EMCC_CFLAGS")) {
            let mut env = self.env.clone();
            env.remove(OsStr::new("EMCC_CFLAGS"));
            std::borrow::Cow::Owned(env)
        } else {
            std::borrow::Cow::Borrowed(&self.env)
        }
    }

    /// Whether the dependency list comes from a separate `-M` run after the compile: the
    /// user asked for `-MMD` (system headers left out), or the command line is recorded in
    /// the object so that zcfs may not add `-MD` to it.
    fn needs_dependency_pass(&self) -> bool {
        if !self.lang.preprocessed() {
            return false;
        }
        match &self.args.dep {
            Some(d) => d.user_only,
            None => self.args.records_command_line,
        }
    }

    /// What a miss adds to the command line: a private dependency file when the user asked
    /// for none, and forced colours (stored coloured, stripped on replay when not wanted).
    pub fn miss_args(&self, private_dep: &Path) -> Vec<Vec<u8>> {
        let mut extra = Vec::new();
        if self.lang.preprocessed() && self.args.dep.is_none() && !self.args.records_command_line {
            extra.push(b"-MD".to_vec());
            extra.push(b"-MF".to_vec());
            extra.push(private_dep.as_os_str().as_bytes().to_vec());
        }
        if let Some(flag) = self.forced_colour_flag() {
            extra.push(flag.as_bytes().to_vec());
        }
        extra
    }

    fn forced_colour_flag(&self) -> Option<&'static str> {
        if !self.forceable {
            return None;
        }
        Some(match self.identity.family {
            Driver::Gcc => "-fdiagnostics-color=always",
            Driver::Clang => "-fcolor-diagnostics",
        })
    }

    /// Whether stored (coloured) diagnostics must lose their colours for this caller.
    pub fn strip_colour(&self) -> bool {
        self.forced_colour_flag().is_some() && !self.colour_wanted
    }
}

/// Inputs to a key computation.
pub struct KeyInputs<'a> {
    pub argv: &'a [OsString],
    pub cwd: &'a Path,
    pub env: &'a HashMap<OsString, OsString>,
    pub stderr_is_tty: bool,
    pub hashes: &'a HashCache,
    pub fs: &'a dyn FsView,
    pub facts: &'a CcFacts,
    pub sloppiness: crate::config::Sloppiness,
}

fn env_str<'a>(env: &'a HashMap<OsString, OsString>, k: &str) -> Option<&'a OsStr> {
    env.get(OsStr::new(k)).map(OsString::as_os_str)
}

/// Whether the compiler would colour its diagnostics for this caller (CO3). clang's cc1
/// takes `-Xclang -f[no-]color-diagnostics` over the driver's choice.
fn colour_wanted(a: &CcArgs, family: Driver, env: &HashMap<OsString, OsString>, tty: bool) -> bool {
    if let Some(c) = a.xclang_colour.or(a.colour) {
        return c;
    }
    let term_ok = env_str(env, "TERM").is_some_and(|t| !t.is_empty() && t != "dumb");
    let gcc_colors_off =
        family == Driver::Gcc && env_str(env, "GCC_COLORS").is_some_and(|v| v.is_empty());
    tty && term_ok && !gcc_colors_off
}

/// Parses and keys a C/C++ invocation. `argv[0]` is the compiler (absolute).
pub fn prepare(inp: &KeyInputs<'_>) -> Result<CcJob, KeyError> {
    for v in ["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES"] {
        if inp.env.contains_key(OsStr::new(v)) {
            return Err(Uncacheable::new("unsupported environment", format!("{v} is set")).into());
        }
    }
    if let Some(k) = inp
        .env
        .keys()
        .find(|k| k.to_str().is_some_and(identity::is_unsupported_env))
    {
        return Err(Uncacheable::new(
            "unsupported environment",
            format!(
                "{} is set (the compiler writes what zcfs does not capture)",
                k.to_string_lossy()
            ),
        )
        .into());
    }
    let raw: Vec<String> = inp.argv[1..]
        .iter()
        .map(|a| {
            a.to_str()
                .map(str::to_string)
                .ok_or_else(|| Uncacheable::new("bad arguments", "an argument is not UTF-8"))
        })
        .collect::<Result<_, _>>()?;
    let compiler = PathBuf::from(&inp.argv[0]);
    let invoked = compiler.file_name().unwrap_or_default().as_bytes().to_vec();
    let invoked_str = String::from_utf8_lossy(&invoked).into_owned();
    let is_emcc = crate::compiler::is_emcc_name(&invoked_str);
    let (a, identity, emcc_own, emcc_files) = if is_emcc {
        // emcc appends EMCC_CFLAGS, then replaces response files, then consumes its own
        // options before clang sees the rest.
        let all = emcc::with_cflags(raw.clone(), inp.env)?;
        let all = emcc::expand_response_files(all, inp.cwd, inp.fs)?;
        let split = emcc::split_args(&all)?;
        let a = args::parse(split.clang.clone())?;
        let id = inp.facts.emcc.identity(
            &compiler,
            &invoked_str,
            &split,
            inp.env,
            inp.cwd,
            inp.hashes,
        )?;
        let identity = CcIdentity {
            family: Driver::Clang,
            digest: id.digest,
            honours_sde: id.honours_sde,
        };
        (a, identity, Some(split.own_given), split.named_files)
    } else {
        // The family decides how response files split; clang's assembler may be external.
        let external_as = |args: &[String]| {
            args.iter()
                .rev()
                .find_map(|a| match a.as_str() {
                    "-no-integrated-as" | "-fno-integrated-as" => Some(true),
                    "-integrated-as" | "-fintegrated-as" => Some(false),
                    _ => None,
                })
                .unwrap_or(false)
        };
        let id = |ext: bool| {
            inp.facts
                .identity(&compiler, &invoked, ext, inp.env, inp.hashes)
                .map_err(|e| Uncacheable::new("compiler identity", format!("{e:#}")))
        };
        let first = id(false)?;
        let syntax = match first.family {
            Driver::Gcc => rsp::RspSyntax::Gcc,
            Driver::Clang => rsp::RspSyntax::Clang,
        };
        let expanded = rsp::expand_response_files(&raw, inp.cwd, syntax, inp.fs)?;
        let identity = match external_as(&expanded) {
            true if first.family == Driver::Clang => id(true)?,
            _ => first,
        };
        (args::parse(expanded)?, identity, None, Vec::new())
    };
    let lang = a.lang.expect("parse sets the language of its input");

    // Extra arguments go before a `--` that ends the options (after it they would be
    // inputs; a `--` that is an option's value is no such place). Where response files or
    // emcc's own arguments moved it, there is no place on the command line to go before.
    let insert_at = match a.dashdash {
        None => None,
        Some(i)
            if !is_emcc && raw.get(i).is_some_and(|r| r == "--") && raw.len() == a.args.len() =>
        {
            Some(i)
        }
        Some(_) => {
            return Err(Uncacheable::new(
                "unsupported option",
                "`--` with response files or emcc's options",
            )
            .into());
        }
    };

    // A precompiled header beside a forced include would be used instead of it (CU5).
    for f in &a.forced_includes {
        let base = resolve(inp.cwd, f);
        for ext in ["gch", "pch"] {
            let mut p = base.clone().into_os_string();
            p.push(".");
            p.push(ext);
            if inp.fs.exists(Path::new(&p)) {
                return Err(Uncacheable::new(
                    "precompiled header",
                    format!("{} exists", Path::new(&p).display()),
                )
                .into());
            }
        }
    }

    let mut a = a;
    a.mt_before_mq = identity.family == Driver::Gcc;
    a.named_files.extend(emcc_files);

    let mut h = KeyHasher::new(KEY_VERSION);
    h.digest("identity", &identity.digest);
    for name in inp.sloppiness.names() {
        h.field("sloppiness", name.as_bytes());
    }
    h.field("lang", lang.name().as_bytes());
    for (i, arg) in a.args.iter().enumerate() {
        let colour = a.colour_opts.contains(&i);
        if a.unkeyed.contains(&i) || (colour && !a.records_command_line) {
            continue;
        }
        h.field("arg", arg.as_bytes());
    }
    // The dependency file's text is a function of the key only if its target is (CD4).
    if let Some(t) = a.dep_target() {
        h.field("dep-target", t.as_bytes());
    }
    // Debug info (the compiler's or the assembler's) and coverage name the working
    // directory as the compiler sees it: `$PWD` when that is the same directory (CK8); a
    // split-DWARF object names its .dwo and a coverage object its .gcda (CK14).
    if (a.debug && !a.compilation_dir) || a.asm_debug || a.profile_arcs || a.coverage_notes {
        let cwd = embedded_cwd(inp.cwd, inp.env);
        h.field("cwd", mapped_cwd(&cwd, &a.prefix_maps).as_bytes());
    }
    if a.split_dwarf || a.profile_arcs || a.coverage_notes || a.records_command_line {
        h.field("object", a.object().as_os_str().as_bytes());
    }
    for f in &a.named_files {
        let p = resolve(inp.cwd, f);
        inp.fs
            .check_shared(&p)
            .map_err(|e| Uncacheable::new("missing file", e))?;
        let (d, _) = inp
            .fs
            .digest(&p)
            .map_err(|e| Uncacheable::new("missing file", format!("{}: {e}", p.display())))?;
        h.field("named-file", f.as_os_str().as_bytes());
        h.digest("content", &d);
    }
    if !a.native.is_empty() {
        let d = inp
            .facts
            .native(&compiler, &identity.digest, &a.native, inp.env)
            .map_err(|e| Uncacheable::new("compiler identity", format!("{e:#}")))?;
        h.digest("native", &d);
    }
    let mut env: Vec<(&OsString, &OsString)> = inp
        .env
        .iter()
        .filter(|(k, _)| k.to_str().is_some_and(identity::is_keyed_env))
        .collect();
    env.sort();
    for (k, v) in env {
        h.field("env", k.as_bytes());
        h.field("value", v.as_bytes());
    }
    let input = resolve(inp.cwd, &a.input);
    inp.fs
        .check_shared(&input)
        .map_err(|e| Uncacheable::new("not a regular file", e))?;
    let (input_digest, _) = inp
        .fs
        .digest(&input)
        .map_err(|e| Uncacheable::new("missing input", format!("{}: {e}", input.display())))?;
    h.digest("input", &input_digest);

    // Colours: zcfs makes the compiler colour its diagnostics and strips them for callers
    // who want none, so that one entry serves all. Where it cannot add the option (the
    // command line is recorded; clang warns that it is unused for assembler input), the
    // colour decision is keyed, and a terminal's colours cannot be captured at all.
    let colour_wanted = colour_wanted(&a, identity.family, inp.env, inp.stderr_is_tty);
    let forceable =
        !(a.records_command_line || (identity.family == Driver::Clang && lang == Lang::Asm));
    if !forceable {
        let explicit = a.xclang_colour.or(a.colour);
        if explicit.is_none() && colour_wanted {
            return Err(Uncacheable::new(
                "terminal colours",
                "colours for a terminal that zcfs cannot ask the compiler for",
            )
            .into());
        }
        h.field("colour", if colour_wanted { b"on" } else { b"off" });
    }

    // The search list depends on the preprocessor arguments, the cwd (relative dirs) and
    // the environment that adds directories.
    let mut sk = KeyHasher::new("zcfs-cc-search-v2");
    sk.digest("identity", &identity.digest);
    sk.field("lang", lang.name().as_bytes());
    sk.field("cwd", inp.cwd.as_os_str().as_bytes());
    for (k, v) in inp.env {
        if k.to_str().is_some_and(identity::is_keyed_env) {
            sk.field("env", k.as_bytes());
            sk.field("value", v.as_bytes());
        }
    }
    let mut job = CcJob {
        key: Digest([0; 32]),
        compiler,
        identity,
        args: a,
        lang,
        cwd: inp.cwd.to_path_buf(),
        env: inp.env.clone(),
        colour_wanted,
        forceable,
        insert_at,
        search_key: Digest([0; 32]),
        emcc: emcc_own,
        date_at_start: None,
    };
    for arg in search_relevant(&job.preprocessor_args()) {
        sk.field("arg", arg.as_bytes());
    }
    job.search_key = sk.finish();
    // clang picks the newest GCC installation it finds for its C++ library and startup
    // files: a new one appearing changes the compile.
    if job.identity.family == Driver::Clang && job.emcc.is_none() && job.lang.preprocessed() {
        let search = inp
            .facts
            .search_list(
                &job.compiler,
                job.search_key,
                &job.preprocessor_args(),
                job.lang.name(),
                &job.run_env(),
                inp.cwd,
            )
            .map_err(|e| Uncacheable::new("include search list", format!("{e:#}")))?;
        if search.header_map {
            return Err(Uncacheable::new("header map", "an -I names a clang header map").into());
        }
        h.field("gcc-installation", search.gcc_installation.as_bytes());
    }
    job.key = h.finish();
    Ok(job)
}

/// The preprocessor arguments that can change the include search list: not macro
/// definitions, warnings, optimisation or debug levels.
fn search_relevant(args: &[String]) -> Vec<&str> {
    let mut out = Vec::with_capacity(args.len());
    let mut skip_next = false;
    for a in args {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        if a == "-D" || a == "-U" {
            skip_next = true;
            continue;
        }
        let dropped = ["-D", "-U", "-W", "-O", "-g"]
            .iter()
            .any(|p| a.starts_with(p) && !a.starts_with("-Wp,"));
        if !dropped {
            out.push(a.as_str());
        }
    }
    out
}

/// The working directory as gcc and clang record it (libiberty's `getpwd`, LLVM's
/// `current_path`): `$PWD` when it is absolute and names the same directory as
/// `getcwd()`, so a build entered through a symlink records the symlink's path.
pub fn embedded_cwd(cwd: &Path, env: &HashMap<OsString, OsString>) -> PathBuf {
    use crate::os::FileStat;
    if let Some(pwd) = env.get(OsStr::new("PWD")).map(Path::new)
        && pwd.is_absolute()
        && pwd != cwd
        && let (Ok(a), Ok(b)) = (FileStat::of_path(pwd, None), FileStat::of_path(cwd, None))
        && (a.dev, a.ino) == (b.dev, b.ino)
        && (a.ino != 0 || cfg!(unix))
    {
        return pwd.to_path_buf();
    }
    cwd.to_path_buf()
}

/// The cwd as the object records it: mapped by the one prefix map that applies (more than
/// one: unmapped, to stay on the safe side).
fn mapped_cwd(cwd: &Path, maps: &[(String, String)]) -> String {
    let cwd = cwd.to_string_lossy();
    let applying: Vec<&(String, String)> = maps
        .iter()
        .filter(|(from, _)| {
            cwd.strip_prefix(from.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || from.ends_with('/'))
        })
        .collect();
    match applying.as_slice() {
        [(from, to)] => format!("mapped:{to}{}", &cwd[from.len()..]),
        _ => cwd.into_owned(),
    }
}

/// Today's date as `__DATE__` spells it (`Dec  1 2026`), in local time.
pub fn local_date() -> String {
    // SAFETY: localtime_r writes into the struct we own.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    #[cfg(unix)]
    unsafe {
        libc::localtime_r(&now, &mut tm)
    };
    #[cfg(windows)]
    unsafe {
        libc::localtime_s(&mut tm, &now)
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {:2} {}",
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_year + 1900
    )
}

/// The value of [`DATE_VAR`] now: the daemon's local date and the time zone it is in
/// (an entry made under one `TZ` says nothing of the date under another).
pub fn date_value() -> String {
    match std::env::var_os("TZ") {
        Some(tz) => format!("{} TZ={}", local_date(), tz.to_string_lossy()),
        None => format!("{} TZ unset", local_date()),
    }
}

/// Whether an entry's pseudo-variable holds now.
pub fn pseudo_env_holds(name: &str, value: Option<&str>) -> Option<bool> {
    (name == DATE_VAR).then(|| value == Some(date_value().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cwd_mapping_is_unambiguous() {
        let maps = vec![("/w".to_string(), ".".to_string())];
        assert_eq!(mapped_cwd(Path::new("/w/p"), &maps), "mapped:./p");
        assert_eq!(mapped_cwd(Path::new("/wx"), &maps), "/wx");
        let two = vec![
            ("/w".to_string(), "a".to_string()),
            ("/w/p".to_string(), "b".to_string()),
        ];
        assert_eq!(mapped_cwd(Path::new("/w/p"), &two), "/w/p");
    }

    #[test]
    fn date_format() {
        let d = local_date();
        assert_eq!(d.len(), 11, "{d:?}");
    }
}
