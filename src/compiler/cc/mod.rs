//! gcc and clang, C and C++ (spec c-conformance): an invocation's direct-mode key, what a
//! miss adds to the compile, and, after it succeeded, its outputs and the inputs its
//! manifest entry records (every file read, the paths that must stay absent, the date for
//! `__DATE__`). See docs/c.md.

pub mod args;
pub mod identity;
pub mod includes;

use crate::os::{OsStrExt, OsStringExt};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use self::args::{CcArgs, Lang};
use self::identity::{CcFacts, CcIdentity, Family};
use self::includes::Scan;
use crate::compiler::rustc::KeyError;
use crate::compiler::{Language, Uncacheable, depinfo};
use crate::fsclock::CompileStart;
use crate::fsutil::resolve;
use crate::fsview::FsView;
use crate::hash::{Digest, KeyHasher};
use crate::hashcache::HashCache;
use crate::store::manifest::{AbsentUnder, FileDep, Inputs};

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
    /// The key of the include search list (`-E -v`) for this compile.
    search_key: Digest,
    /// An Emscripten compile: emcc's own options as given (kept from the option table).
    emcc: Option<Vec<String>>,
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
            Language::Emcc
        } else if self.lang.is_cxx() {
            Language::Cxx
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
        if self.args.records_command_line {
            return None;
        }
        Some(match self.identity.family {
            Family::Gcc => "-fdiagnostics-color=always",
            Family::Clang => "-fcolor-diagnostics",
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

/// Whether the compiler would colour its diagnostics for this caller (CO3).
fn colour_wanted(a: &CcArgs, family: Family, env: &HashMap<OsString, OsString>, tty: bool) -> bool {
    if let Some(c) = a.colour {
        return c;
    }
    let term_ok = env_str(env, "TERM").is_some_and(|t| !t.is_empty() && t != "dumb");
    let gcc_colors_off =
        family == Family::Gcc && env_str(env, "GCC_COLORS").is_some_and(|v| v.is_empty());
    tty && term_ok && !gcc_colors_off
}

/// Parses and keys a C/C++ invocation. `argv[0]` is the compiler (absolute).
pub fn prepare(inp: &KeyInputs<'_>) -> Result<CcJob, KeyError> {
    for v in ["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES"] {
        if inp.env.contains_key(OsStr::new(v)) {
            return Err(Uncacheable::new("unsupported environment", format!("{v} is set")).into());
        }
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
    let is_emcc = crate::compiler::emcc::is_emcc_name(&invoked_str);
    let expanded = args::expand_response_files(&raw, inp.cwd)?;
    let (a, identity, emcc_own) = if is_emcc {
        // emcc appends EMCC_CFLAGS and consumes its own options before clang sees them.
        let all = crate::compiler::emcc::with_cflags(expanded, inp.env)?;
        let split = crate::compiler::emcc::split_args(&all)?;
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
            family: Family::Clang,
            digest: id.digest,
        };
        (a, identity, Some(split.own_given))
    } else {
        let a = args::parse(expanded)?;
        let identity = inp
            .facts
            .identity(&compiler, &invoked, inp.env, inp.hashes)
            .map_err(|e| Uncacheable::new("compiler identity", format!("{e:#}")))?;
        (a, identity, None)
    };
    let lang = a.lang.expect("parse sets the language of its input");

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
    a.mt_before_mq = identity.family == Family::Gcc;

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
    // Debug info and coverage name the working directory (CK8); a split-DWARF object
    // names its .dwo and a coverage object its .gcda (CK14).
    if (a.debug && !a.compilation_dir) || a.profile_arcs || a.coverage_notes {
        h.field("cwd", mapped_cwd(inp.cwd, &a.prefix_maps).as_bytes());
    }
    if a.split_dwarf || a.profile_arcs || a.coverage_notes || a.records_command_line {
        h.field("object", a.object().as_os_str().as_bytes());
    }
    for f in &a.named_files {
        let p = resolve(inp.cwd, f);
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
    let (input_digest, _) = inp
        .fs
        .digest(&input)
        .map_err(|e| Uncacheable::new("missing input", format!("{}: {e}", input.display())))?;
    h.digest("input", &input_digest);

    // The search list depends on the preprocessor arguments, the cwd (relative dirs) and
    // the environment that adds directories.
    let mut sk = KeyHasher::new("zcfs-cc-search-v1");
    sk.digest("identity", &identity.digest);
    sk.field("lang", lang.name().as_bytes());
    sk.field("cwd", inp.cwd.as_os_str().as_bytes());
    for (k, v) in inp.env {
        if k.to_str().is_some_and(identity::is_keyed_env) {
            sk.field("env", k.as_bytes());
            sk.field("value", v.as_bytes());
        }
    }
    let colour_wanted = colour_wanted(&a, identity.family, inp.env, inp.stderr_is_tty);
    let mut job = CcJob {
        key: h.finish(),
        compiler,
        identity,
        args: a,
        lang,
        cwd: inp.cwd.to_path_buf(),
        env: inp.env.clone(),
        colour_wanted,
        search_key: Digest([0; 32]),
        emcc: emcc_own,
    };
    for arg in job.preprocessor_args() {
        sk.field("arg", arg.as_bytes());
    }
    job.search_key = sk.finish();
    Ok(job)
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

/// Removes ANSI escape sequences (CSI and OSC) from diagnostics.
pub fn strip_ansi(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == 0x1b && i + 1 < text.len() {
            match text[i + 1] {
                b'[' => {
                    let mut j = i + 2;
                    while j < text.len() && !(0x40..=0x7e).contains(&text[j]) {
                        j += 1;
                    }
                    i = j + 1;
                    continue;
                }
                b']' => {
                    let mut j = i + 2;
                    while j < text.len() {
                        if text[j] == 0x07 {
                            j += 1;
                            break;
                        }
                        if text[j] == 0x1b && text.get(j + 1) == Some(&b'\\') {
                            j += 2;
                            break;
                        }
                        j += 1;
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

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
        let s = std::sync::Arc::new(includes::scan(&read()?));
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

    let mut files = Vec::with_capacity(deps.len());
    let mut file_scans = Vec::with_capacity(deps.len());
    let mut uses_date = false;
    let mut uses_time = false;
    for d in &deps {
        let spelled = Path::new(d);
        let abs = at(spelled);
        let (digest, stat) = fs
            .digest(&abs)
            .map_err(|e| Uncacheable::new("unreadable input", e.to_string()))?;
        let too_new = |t| start.too_new(t, stat.dev, fs.clocks());
        if too_new(stat.mtime) || too_new(stat.ctime) {
            return Err(Uncacheable::new(
                "input modified during compile",
                format!("{} is newer than the compile's start", abs.display()),
            ));
        }
        let s = scans
            .get(&digest, || fs.read(&abs))
            .map_err(|e| Uncacheable::new("unreadable input", format!("{}: {e}", abs.display())))?;
        if s.reads_files {
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
        uses_date |= s.date;
        uses_time |= s.time;
        files.push(FileDep {
            path: d.as_bytes().to_vec(),
            size: stat.size,
            digest,
        });
        file_scans.push((*s).clone());
    }

    // `__TIME__` and `__DATE__` are fixed by SOURCE_DATE_EPOCH; else `__TIME__` is never
    // the same twice and `__DATE__` holds for the day (CK10).
    let mut env = Vec::new();
    let sde = job
        .env
        .get(OsStr::new("SOURCE_DATE_EPOCH"))
        .map(|v| v.to_string_lossy().into_owned());
    if uses_date || uses_time {
        match &sde {
            Some(v) => env.push(("SOURCE_DATE_EPOCH".to_string(), Some(v.clone()))),
            None if uses_time => {
                return Err(Uncacheable::new(
                    "time macros",
                    "__TIME__ without SOURCE_DATE_EPOCH",
                ));
            }
            None => {
                env.push(("SOURCE_DATE_EPOCH".to_string(), None));
                env.push((DATE_VAR.to_string(), Some(local_date())));
            }
        }
    }

    let t_files = t0.elapsed();
    let mut absent = Vec::new();
    let mut absent_under = Vec::new();
    let mut t_search = t_files;
    let mut t_cands = t_files;
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
        for m in &search.missing {
            absent.push(m.as_bytes().to_vec());
        }
        t_search = t0.elapsed();
        let mut listing = Listings::default();
        let mut groups: std::collections::BTreeMap<PathBuf, Vec<Vec<u8>>> = Default::default();
        let mut cands = includes::candidates(&deps, &file_scans, &search);
        if job.identity.family == Family::Gcc {
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
        t_cands = t0.elapsed();
        // Per directory as spelled: its listing, and the deepest existing directory its
        // absent names are grouped under (with the path from there).
        let mut per_dir: HashMap<String, DirCandidates> = HashMap::new();
        for c in cands {
            let spelled = Path::new(&c);
            let is_pch = c.ends_with(".gch") || c.ends_with(".pch");
            if c.split('/').any(|p| p == "..") {
                // Not a prefix walk: asked of the filesystem, recorded as is.
                if listing.exists(fs, &at(spelled)) {
                    if is_pch {
                        return Err(Uncacheable::new(
                            "precompiled header",
                            format!("{c} exists"),
                        ));
                    }
                    continue;
                }
                absent.push(c.into_bytes());
                continue;
            }
            let (dir, name) = match c.rfind('/') {
                Some(0) => ("/", &c[1..]),
                Some(i) => (&c[..i], &c[i + 1..]),
                None => ("", c.as_str()),
            };
            if !per_dir.contains_key(dir) {
                let abs = at(Path::new(if dir.is_empty() { "." } else { dir }));
                let listed = if listing.exists_dir(fs, &abs) {
                    fs.list_dir(&abs).ok().map(|v| v.into_iter().collect())
                } else {
                    None
                };
                let group = listing
                    .existing_ancestor(fs, spelled, cwd)
                    .map(|(anc, rest)| {
                        (
                            anc,
                            rest.parent().map(Path::to_path_buf).unwrap_or_default(),
                        )
                    });
                per_dir.insert(dir.to_string(), (listed, group));
            }
            let (listed, group) = &per_dir[dir];
            if listed
                .as_ref()
                .is_some_and(|l| l.contains(OsStr::new(name)))
                && fs.exists(&at(spelled))
            {
                if is_pch {
                    return Err(Uncacheable::new(
                        "precompiled header",
                        format!("{c} exists"),
                    ));
                }
                continue;
            }
            match group {
                Some((anc, rest_dir)) => {
                    let rest = rest_dir.join(name).into_os_string().into_vec();
                    match groups.get_mut(anc) {
                        Some(v) => v.push(rest),
                        None => {
                            groups.insert(anc.clone(), vec![rest]);
                        }
                    }
                }
                None => absent.push(c.into_bytes()),
            }
        }
        for (dir, names) in groups {
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
            });
        }
    }

    tracing::trace!(
        "collect {}: files {t_files:?}, search list {t_search:?}, candidates {t_cands:?}, \
         absent {:?}",
        job.describe(),
        t0.elapsed()
    );

    // The outputs: required ones must be there; optional ones only count if this compile
    // wrote them (not a stale file of an earlier compile).
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
    Ok(Collected {
        inputs: Inputs {
            files,
            env,
            absent,
            absent_under,
            bindings: Vec::new(),
        },
        outputs,
    })
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

/// For a directory of include candidates: its listing (if it exists), and the deepest
/// existing directory at or above it with the path from there.
type DirCandidates = (Option<HashSet<OsString>>, Option<(PathBuf, PathBuf)>);

/// Directory listings read once per store, for the many absent-path candidates.
#[derive(Default)]
struct Listings {
    names: HashMap<PathBuf, Option<HashSet<OsString>>>,
    /// Whether a path is a directory, asked once.
    dirs: HashMap<PathBuf, bool>,
}

impl Listings {
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
        if !self.names.contains_key(dir) {
            let names = if self.exists_dir(fs, dir) {
                fs.list_dir(dir).ok().map(|v| v.into_iter().collect())
            } else {
                None
            };
            self.names.insert(dir.to_path_buf(), names);
        }
        match &self.names[dir] {
            Some(names) => names.contains(name) && fs.exists(p),
            None => false,
        }
    }

    /// For a path that does not exist: the deepest prefix of it (as spelled) that is an
    /// existing directory, and the rest. `None` for paths with `..` (not a prefix walk).
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
        if comps
            .iter()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return None;
        }
        for k in (0..comps.len()).rev() {
            let prefix: PathBuf = comps[..k].iter().collect();
            let rest: PathBuf = comps[k..].iter().collect();
            if prefix.as_os_str().is_empty() {
                return Some((PathBuf::from("."), rest));
            }
            if self.exists_dir(fs, &resolve(cwd, &prefix)) {
                return Some((prefix, rest));
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

/// Whether an entry's pseudo-variable holds now.
pub fn pseudo_env_holds(name: &str, value: Option<&str>) -> Option<bool> {
    (name == DATE_VAR).then(|| value == Some(local_date().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_sequences_are_stripped() {
        let coloured =
            b"\x1b[01m\x1b[Ka.c:1:\x1b[m\x1b[K \x1b]8;;https://x\x1b\\-Wall\x1b]8;;\x1b\\ w\n";
        assert_eq!(strip_ansi(coloured), b"a.c:1: -Wall w\n");
        assert_eq!(strip_ansi(b"plain\n"), b"plain\n");
    }

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
