//! The command line of a gcc or clang compile (spec c-conformance CK2–CK14, CU1–CU8, CD1–CD3,
//! CO1): what it compiles, what it writes, and which arguments go into the key.
//!
//! Every option is classified by a table; an option the table does not know makes the
//! compile uncacheable ("unknown option"), because an unknown option may take a separate
//! value (which would then be misread as an input) or write a file zcfs does not capture.

use std::path::{Path, PathBuf};

use super::subopts::{
    NAMED_FILE_OPTIONS, NOT_A_FILE, PATH_LIKE_NAME_PARTS, check_assembler_option, check_wp,
    check_xclang, unsupported,
};
use crate::compiler::Uncacheable;

/// The language of the input, as the driver decides it (CK2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    C,
    Cxx,
    ObjC,
    ObjCxx,
    /// Already preprocessed C (`.i`).
    CppOutput,
    /// Already preprocessed C++ (`.ii`).
    CxxCppOutput,
    /// Assembly without the preprocessor (`.s`).
    Asm,
    /// Assembly through the preprocessor (`.S`, `.sx`).
    AsmCpp,
}

impl Lang {
    /// The name `-x` takes.
    pub fn name(self) -> &'static str {
        match self {
            Lang::C => "c",
            Lang::Cxx => "c++",
            Lang::ObjC => "objective-c",
            Lang::ObjCxx => "objective-c++",
            Lang::CppOutput => "cpp-output",
            Lang::CxxCppOutput => "c++-cpp-output",
            Lang::Asm => "assembler",
            Lang::AsmCpp => "assembler-with-cpp",
        }
    }

    pub fn from_x(name: &str) -> Option<Lang> {
        Some(match name {
            "c" => Lang::C,
            "c++" => Lang::Cxx,
            "objective-c" => Lang::ObjC,
            "objective-c++" => Lang::ObjCxx,
            "cpp-output" => Lang::CppOutput,
            "c++-cpp-output" => Lang::CxxCppOutput,
            "assembler" => Lang::Asm,
            "assembler-with-cpp" => Lang::AsmCpp,
            _ => return None,
        })
    }

    /// From the input's extension, as gcc's and clang's drivers map it.
    pub fn from_extension(path: &Path) -> Option<Lang> {
        let ext = path.extension()?.to_str()?;
        Some(match ext {
            "c" => Lang::C,
            "cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" => Lang::Cxx,
            "m" => Lang::ObjC,
            "mm" | "M" => Lang::ObjCxx,
            "i" => Lang::CppOutput,
            "ii" => Lang::CxxCppOutput,
            "s" => Lang::Asm,
            "S" | "sx" => Lang::AsmCpp,
            _ => return None,
        })
    }

    pub fn is_cxx(self) -> bool {
        matches!(self, Lang::Cxx | Lang::ObjCxx | Lang::CxxCppOutput)
    }

    /// Whether the preprocessor runs (and so whether a dependency file is written).
    pub fn preprocessed(self) -> bool {
        !matches!(self, Lang::Asm | Lang::CppOutput | Lang::CxxCppOutput)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileMode {
    /// `-c`: an object.
    Object,
    /// `-S`: assembly.
    Assembly,
}

/// A target of the dependency file's rule, in command-line order (CD2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepTarget {
    /// `-MT t`: verbatim.
    Verbatim(String),
    /// `-MQ t`: quoted for make.
    Quoted(String),
}

/// The dependency-file options (CD1–CD3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepOpts {
    /// `-MD` (system headers included) or `-MMD` (`user_only`).
    pub user_only: bool,
    pub file: Option<PathBuf>,
    pub targets: Vec<DepTarget>,
    /// `-MP`.
    pub phony: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CcArgs {
    /// The arguments after `@file` expansion (without the compiler).
    pub args: Vec<String>,
    pub input: PathBuf,
    /// The index of the input in `args`.
    pub input_index: usize,
    pub lang: Option<Lang>,
    pub mode: Option<CompileMode>,
    /// `-o`, with the index of its value in `args`.
    pub output: Option<(PathBuf, usize)>,
    pub dep: Option<DepOpts>,
    /// Debug information is on (the last `-g*` level is not 0).
    pub debug: bool,
    pub split_dwarf: bool,
    /// `--coverage` / `-ftest-coverage`: a `.gcno` beside the object.
    pub coverage_notes: bool,
    /// `--coverage` / `-fprofile-arcs`: the object names its `.gcda` by absolute path.
    pub profile_arcs: bool,
    pub stack_usage: bool,
    pub callgraph_info: bool,
    /// The user's colour choice (`None`: the compiler decides from the terminal).
    pub colour: Option<bool>,
    /// The command line is recorded into the object (`-frecord-gcc-switches`, clang
    /// `-grecord-command-line`): added options would change it.
    pub records_command_line: bool,
    /// `-fdebug-compilation-dir`/`-ffile-compilation-dir` given.
    pub compilation_dir: bool,
    /// The assembler is asked for debug information (`-Wa,-g`, `-Wa,--gdwarf-5`,
    /// `-Xassembler --gdwarf-4`): it records the working directory.
    pub asm_debug: bool,
    /// `-Xclang -fcolor-diagnostics` or `-fno-color-diagnostics`: cc1's own choice, which
    /// overrides the driver's.
    pub xclang_colour: Option<bool>,
    /// The index in `args` of the first `--` (what follows is only inputs).
    pub dashdash: Option<usize>,
    /// `-fdebug-prefix-map=`/`-ffile-prefix-map=` pairs.
    pub prefix_maps: Vec<(String, String)>,
    /// Files whose content the output depends on, named by options (CK13).
    pub named_files: Vec<PathBuf>,
    /// `-march=native` and the like (CK12): the options to probe.
    pub native: Vec<String>,
    /// `-include`/`-imacros` files (a `.gch` beside one is a PCH, CU5).
    pub forced_includes: Vec<PathBuf>,
    /// Indices in `args` of options that do not go into the key (output names).
    pub unkeyed: Vec<usize>,
    /// Indices in `args` of colour options (keyed only if the command line is recorded).
    pub colour_opts: Vec<usize>,
    /// The compiler writes `-MT` targets before `-MQ` ones (gcc), not in command-line
    /// order (clang). Set by the caller once the family is known.
    pub mt_before_mq: bool,
    /// Indices in `args` of options not to pass to a preprocessor-only probe.
    pub compile_only: Vec<usize>,
}

impl CcArgs {
    /// The main output: `-o`, else the input's stem with `.o` (`.s` for `-S`) in the cwd.
    pub fn object(&self) -> PathBuf {
        if let Some((o, _)) = &self.output {
            return o.clone();
        }
        let stem = self.input.file_stem().unwrap_or_default();
        let mut name = stem.to_os_string();
        name.push(match self.mode {
            Some(CompileMode::Assembly) => ".s",
            _ => ".o",
        });
        PathBuf::from(name)
    }

    /// The dependency file's path (CD1): `-MF`, else the object's path with its last
    /// extension replaced by `.d` (`-o` given), else the input's stem + `.d` in the cwd.
    pub fn dep_file(&self) -> Option<PathBuf> {
        let dep = self.dep.as_ref()?;
        if let Some(f) = &dep.file {
            return Some(f.clone());
        }
        match &self.output {
            Some((o, _)) => Some(with_extension(o, "d")),
            None => Some(with_extension(
                Path::new(self.input.file_name().unwrap_or_default()),
                "d",
            )),
        }
    }

    /// The text before the rule's `:` in the dependency file (CD2).
    pub fn dep_target(&self) -> Option<String> {
        let dep = self.dep.as_ref()?;
        if dep.targets.is_empty() {
            let t = match &self.output {
                Some((o, _)) => o.to_string_lossy().into_owned(),
                None => {
                    let stem = self.input.file_stem().unwrap_or_default();
                    format!("{}.o", stem.to_string_lossy())
                }
            };
            return Some(quote_make(&t));
        }
        // gcc's driver passes every `-MT` before every `-MQ` to cc1 (gcc 12: `-MQ '$m' -MT
        // b` gives `b $$m:`); clang keeps the command line's order.
        let mut targets: Vec<&DepTarget> = dep.targets.iter().collect();
        if self.mt_before_mq {
            targets.sort_by_key(|t| matches!(t, DepTarget::Quoted(_)));
        }
        let parts: Vec<String> = targets
            .iter()
            .map(|t| match t {
                DepTarget::Verbatim(s) => s.clone(),
                DepTarget::Quoted(s) => quote_make(s),
            })
            .collect();
        Some(parts.join(" "))
    }

    /// A side output beside the object: its path with the last extension replaced.
    pub fn beside_object(&self, ext: &str) -> PathBuf {
        with_extension(&self.object(), ext)
    }
}

/// `p` with its last extension replaced by (or, without one, extended with) `ext`: `t.o`,
/// `t`, `t.` → `t.d`; `t.foo.bar` → `t.foo.d` (ccache's "dependency file names" cases).
pub fn with_extension(p: &Path, ext: &str) -> PathBuf {
    let s = p.as_os_str().to_string_lossy();
    let name_start = s.rfind('/').map_or(0, |i| i + 1);
    let base = match s[name_start..].rfind('.') {
        Some(i) if i > 0 => &s[..name_start + i],
        _ => &s[..],
    };
    let base = base.strip_suffix('.').unwrap_or(base);
    PathBuf::from(format!("{base}.{ext}"))
}

/// Quotes a target for make as `-MQ` does: `$` → `$$`, spaces and tabs (and the
/// backslashes before them) escaped with `\`, `#` → `\#`.
pub fn quote_make(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b: Vec<char> = s.chars().collect();
    for (i, &c) in b.iter().enumerate() {
        match c {
            ' ' | '\t' => {
                let mut j = i;
                while j > 0 && b[j - 1] == '\\' {
                    out.push('\\');
                    j -= 1;
                }
                out.push('\\');
                out.push(c);
            }
            '$' => out.push_str("$$"),
            '#' => out.push_str("\\#"),
            _ => out.push(c),
        }
    }
    out
}

/// Options whose value is the next argument (or joined: `-Ifoo`), keyed and passed to the
/// preprocessor probe: they change what the preprocessor reads.
const SEARCH_WITH_VALUE: &[&str] = &[
    "-I",
    "-isystem",
    "-idirafter",
    "-iquote",
    "-iprefix",
    "-iwithprefix",
    "-iwithprefixbefore",
    "-isysroot",
    "-imultilib",
    "-cxx-isystem",
    "-D",
    "-U",
    "-include",
    "-imacros",
    "-target",
    "-iframework",
    "-F",
];

/// Other options with a value (next argument or joined) that are keyed as they are.
const OTHER_WITH_VALUE: &[&str] = &[
    "-L",
    "-l",
    "-u",
    "-T",
    "-z",
    "-G",
    "-e",
    "-A",
    "-Xlinker",
    "-Xassembler",
    "--param",
    "-arch",
    "-mllvm",
    "-aux-info",
];

/// Options without a value that change nothing a cache must know about beyond the key.
const FLAGS: &[&str] = &[
    "-ansi",
    "-pedantic",
    "-pedantic-errors",
    "-w",
    "-pipe",
    "-pthread",
    "-pthreads",
    "-p",
    "-pg",
    "-C",
    "-CC",
    "-H",
    "-P",
    "-trigraphs",
    "-traditional",
    "-traditional-cpp",
    "-undef",
    "-nostdinc",
    "-nostdinc++",
    "-nostdlibinc",
    "-nobuiltininc",
    "-nostdlib",
    "-nodefaultlibs",
    "-nostartfiles",
    "-static",
    "-shared",
    "-rdynamic",
    "-s",
    "-no-pie",
    "-pie",
    "-static-pie",
    "-static-libgcc",
    "-static-libstdc++",
    "-shared-libgcc",
    "-Qunused-arguments",
    "-integrated-as",
    "-no-integrated-as",
    "-fintegrated-as",
    "-dD",
    "-dM",
    "-dN",
    "-dI",
    "-dU",
];

/// Options that make a compile uncacheable, by prefix, with the reason (CU2, CU6, CU8).
const UNSUPPORTED_PREFIXES: &[(&str, &str)] = &[
    ("-save-temps", "writes intermediate files"),
    ("--save-temps", "writes intermediate files"),
    ("-fdump-", "writes dump files"),
    ("-fmodule", "modules"),
    ("-fmodules", "modules"),
    ("-fcxx-modules", "modules"),
    ("-fprebuilt-module-path", "modules"),
    ("-fimplicit-module", "modules"),
    ("-fbuild-session", "names a session file"),
    ("-ftime-trace", "writes a trace file"),
    ("-fsave-optimization-record", "writes a record file"),
    ("-foptimization-record-file", "writes a record file"),
    ("-fdiagnostics-file", "writes a diagnostics file"),
    ("-fthinlto-index", "ThinLTO index"),
    ("-fprofile-dir", "profile directory"),
    ("-fprofile-generate", "profile generation"),
    ("-fprofile-instr-generate", "profile generation"),
    ("-fprofile-update", "profile generation"),
    ("-fprofile-prefix-path", "profile paths"),
    ("-fprofile-abs-path", "profile paths"),
    ("-fpch-", "precompiled headers"),
    ("-include-pch", "precompiled headers"),
    ("-emit-", "not a plain compile"),
    ("-fplugin", "compiler plugin"),
    ("-fpass-plugin", "compiler plugin"),
    ("-fcrash-diagnostics", "writes crash reports"),
    ("-ivfsoverlay", "virtual filesystem overlay"),
    ("-index-store-path", "writes an index"),
    ("-gen-cdb-fragment-path", "writes a compilation database"),
    ("-Xarch_", "per-architecture options"),
    ("--config", "configuration file"),
    ("-working-directory", "changes directory"),
    ("-specs", "specs file"),
    ("-B", "changes the compiler's programs"),
    ("-wrapper", "runs the compiler through a wrapper"),
    ("-frepo", "template repository"),
    ("-gtoggle", "toggles debug information"),
    ("--analyze", "static analysis"),
    ("-analyze", "static analysis"),
    ("-fsyntax-only", "produces no output"),
    ("-fembed-offload-object", "offload objects"),
    ("--serialize-diagnostics", "writes a diagnostics file"),
    ("-serialize-diagnostics", "writes a diagnostics file"),
    ("-fcoverage-", "coverage options"),
    ("-fprofile-instr-use", "profile data"),
    ("-fprofile-sample-use", "profile data"),
    ("-fauto-profile", "profile data"),
    ("-frandomize-layout-seed-file", "names a seed file"),
    ("--warning-suppression-mappings", "names a mappings file"),
];

/// Splits `-Ifoo` / `-I foo` forms: `Some((value, consumed_next))`.
fn value_of<'a>(arg: &'a str, opt: &str, next: Option<&'a str>) -> Option<(&'a str, bool)> {
    let rest = arg.strip_prefix(opt)?;
    if rest.is_empty() {
        return next.map(|n| (n, true));
    }
    // `--sysroot=x`, `-include=`? Only long options take `=`.
    let rest = if opt.starts_with("--") {
        rest.strip_prefix('=')?
    } else {
        rest
    };
    Some((rest, false))
}

/// Parses the arguments after the compiler (already `@file`-expanded).
pub fn parse(args: Vec<String>) -> Result<CcArgs, Uncacheable> {
    let mut a = CcArgs::default();
    let mut inputs: Vec<(usize, Option<Lang>)> = Vec::new();
    let mut x_lang: Option<Option<Lang>> = None; // Some(None): `-x none`
    let mut debug_level: Option<bool> = None;
    let mut dep_style: Option<bool> = None; // Some(user_only)
    let mut dep = DepOpts::default();
    let mut saw_only_dashdash = false;
    let mut i = 0;
    let n = args.len();
    while i < n {
        let arg = args[i].as_str();
        let next = args.get(i + 1).map(String::as_str);
        if saw_only_dashdash || arg == "-" || !arg.starts_with('-') {
            if arg == "-" {
                return Err(Uncacheable::new("stdin input", "input from stdin"));
            }
            let lang = match x_lang {
                Some(Some(l)) => Some(l),
                _ => Lang::from_extension(Path::new(arg)),
            };
            if matches!(x_lang, Some(Some(_))) || Lang::from_extension(Path::new(arg)).is_some() {
                inputs.push((i, lang));
            } else if is_header_ext(arg) {
                return Err(Uncacheable::new(
                    "precompiled header",
                    format!("{arg}: compiling a header makes a precompiled header"),
                ));
            } else {
                // Linker inputs (`.o`, `.a`) and unknown extensions.
                inputs.push((i, None));
            }
            i += 1;
            continue;
        }
        if arg == "--" {
            saw_only_dashdash = true;
            a.dashdash = Some(i);
            i += 1;
            continue;
        }
        // Exact-match options first.
        match arg {
            "-c" => {
                // `-S` wins over `-c` in either order.
                if a.mode != Some(CompileMode::Assembly) {
                    a.mode = Some(CompileMode::Object);
                }
                i += 1;
                continue;
            }
            "-S" => {
                a.mode = Some(CompileMode::Assembly);
                i += 1;
                continue;
            }
            "-E" => return Err(Uncacheable::new("preprocessing", "-E")),
            "-M" | "-MM" => return Err(Uncacheable::new("preprocessing", arg.to_string())),
            "-MG" => return Err(unsupported("-MG (missing headers as generated files)")),
            "-MJ" => return Err(unsupported("-MJ (writes a compilation database entry)")),
            "-v" | "--verbose" | "-###" => return Err(unsupported(format!("{arg} (verbose)"))),
            "-MD" | "-MMD" => {
                // Both given: the compilers let `-MMD` win, in either order.
                dep_style = Some(arg == "-MMD" || dep_style == Some(true));
                i += 1;
                continue;
            }
            "-MP" => {
                dep.phony = true;
                i += 1;
                continue;
            }
            "-fdiagnostics-color" | "-fdiagnostics-color=always" | "-fcolor-diagnostics" => {
                a.colour = Some(true);
                a.colour_opts.push(i);
                i += 1;
                continue;
            }
            "-fdiagnostics-color=never" | "-fno-diagnostics-color" | "-fno-color-diagnostics" => {
                a.colour = Some(false);
                a.colour_opts.push(i);
                i += 1;
                continue;
            }
            "-fdiagnostics-color=auto" => {
                a.colour = None;
                a.colour_opts.push(i);
                i += 1;
                continue;
            }
            "-frecord-gcc-switches"
            | "-grecord-command-line"
            | "-frecord-command-line"
            | "-grecord-gcc-switches" => {
                a.records_command_line = true;
                i += 1;
                continue;
            }
            "--coverage" => {
                a.coverage_notes = true;
                a.profile_arcs = true;
                i += 1;
                continue;
            }
            "-ftest-coverage" => {
                a.coverage_notes = true;
                i += 1;
                continue;
            }
            "-fprofile-arcs" => {
                a.profile_arcs = true;
                i += 1;
                continue;
            }
            "-fstack-usage" => {
                a.stack_usage = true;
                i += 1;
                continue;
            }
            "-fcallgraph-info" => {
                a.callgraph_info = true;
                i += 1;
                continue;
            }
            "-gsplit-dwarf" => {
                a.split_dwarf = true;
                i += 1;
                continue;
            }
            "-fprofile-use" => {
                return Err(unsupported("-fprofile-use without a path"));
            }
            "-fbranch-probabilities" => {
                // Reads the `.gcda` named after the output.
                return Err(unsupported("-fbranch-probabilities (profile data)"));
            }
            _ => {}
        }
        if FLAGS.contains(&arg) {
            i += 1;
            continue;
        }
        // Outputs and dependency-file options: their values name files (CK3).
        if let Some((v, sep)) = value_of(arg, "-o", next) {
            if a.output.is_some() {
                // The last one wins, but gcc's driver passes every one to cc1 with `-MD`
                // (which fails), and each names a file: not worth modelling.
                return Err(Uncacheable::new("multiple outputs", "-o given twice"));
            }
            a.output = Some((PathBuf::from(v), if sep { i + 1 } else { i }));
            a.unkeyed.push(i);
            if sep {
                a.unkeyed.push(i + 1);
            }
            if v == "-" {
                return Err(Uncacheable::new("output to stdout", "-o -"));
            }
            i += 1 + sep as usize;
            continue;
        }
        if let Some((v, sep)) = value_of(arg, "-MF", next) {
            dep.file = Some(PathBuf::from(v));
            a.unkeyed.push(i);
            if sep {
                a.unkeyed.push(i + 1);
            }
            a.compile_only.push(i);
            if sep {
                a.compile_only.push(i + 1);
            }
            i += 1 + sep as usize;
            continue;
        }
        if let Some(opt) = ["-MT", "-MQ"].iter().find(|o| arg.starts_with(**o)) {
            let Some((v, sep)) = value_of(arg, opt, next) else {
                return Err(Uncacheable::new(
                    "bad arguments",
                    format!("{arg} without a value"),
                ));
            };
            dep.targets.push(if *opt == "-MT" {
                DepTarget::Verbatim(v.to_string())
            } else {
                DepTarget::Quoted(v.to_string())
            });
            a.compile_only.push(i);
            if sep {
                a.compile_only.push(i + 1);
            }
            i += 1 + sep as usize;
            continue;
        }
        if let Some((v, sep)) = value_of(arg, "-x", next) {
            x_lang = if v == "none" {
                Some(None)
            } else {
                match Lang::from_x(v) {
                    Some(l) => Some(Some(l)),
                    None => {
                        return Err(Uncacheable::new("unsupported language", format!("-x {v}")));
                    }
                }
            };
            a.compile_only.push(i);
            if sep {
                a.compile_only.push(i + 1);
            }
            i += 1 + sep as usize;
            continue;
        }
        if let Some(v) = arg.strip_prefix("--sysroot") {
            // `--sysroot=DIR` or `--sysroot DIR`: keyed, and in the search-list probe.
            let sep = match v.strip_prefix('=') {
                Some(_) => false,
                None if v.is_empty() && next.is_some() => true,
                None if v.is_empty() => {
                    return Err(Uncacheable::new("bad arguments", "--sysroot"));
                }
                None => return Err(unknown(arg)),
            };
            i += 1 + sep as usize;
            continue;
        }
        if ["--target=", "--gcc-toolchain=", "-resource-dir="]
            .iter()
            .any(|p| arg.starts_with(p))
        {
            i += 1;
            continue;
        }
        if let Some((_, why)) = UNSUPPORTED_PREFIXES
            .iter()
            .find(|(p, _)| arg.starts_with(p))
        {
            return Err(unsupported(format!("{arg} ({why})")));
        }
        // Forced includes: a `.gch` beside them would be used instead (CU5).
        for opt in ["-include", "-imacros"] {
            if arg == opt
                && let Some(v) = next
            {
                a.forced_includes.push(PathBuf::from(v));
            }
        }
        if let Some(opt) = SEARCH_WITH_VALUE
            .iter()
            .chain(OTHER_WITH_VALUE)
            .filter(|o| arg.starts_with(**o))
            .max_by_key(|o| o.len())
        {
            // `-include`, `-target`... are never joined; `-I`, `-D`, `-L`... may be.
            let joined_ok = !matches!(
                *opt,
                "-include" | "-imacros" | "-target" | "-arch" | "-mllvm" | "-aux-info"
            );
            if arg.len() > opt.len() && !joined_ok {
                return Err(unknown(arg));
            }
            if *opt == "-aux-info" {
                return Err(unsupported("-aux-info (writes a file)"));
            }
            let sep = arg.len() == opt.len();
            if sep && next.is_none() {
                return Err(Uncacheable::new(
                    "bad arguments",
                    format!("{arg} without a value"),
                ));
            }
            if *opt == "-Xassembler" {
                a.asm_debug |= check_assembler_option(next.unwrap_or_default())?;
            }
            i += 1 + sep as usize;
            continue;
        }
        if let Some(v) = arg.strip_prefix("-Xclang") {
            if !v.is_empty() {
                return Err(unknown(arg));
            }
            let Some(v) = next else {
                return Err(Uncacheable::new("bad arguments", "-Xclang without a value"));
            };
            if let Some(c) = check_xclang(v)? {
                a.xclang_colour = Some(c);
            }
            i += 2;
            continue;
        }
        if arg == "-Xpreprocessor" {
            return Err(unsupported("-Xpreprocessor"));
        }
        if let Some(rest) = arg.strip_prefix("-W") {
            if let Some(sub) = rest.strip_prefix("p,") {
                check_wp(sub)?;
            } else if let Some(sub) = rest.strip_prefix("a,") {
                for s in sub.split(',') {
                    a.asm_debug |= check_assembler_option(s)?;
                }
            }
            // `-Wl,` is ignored by a compile; warnings are keyed.
            i += 1;
            continue;
        }
        if let Some(level) = arg.strip_prefix("-g") {
            // `-g`, `-g1`..`-g3`, `-ggdb`, `-gdwarf-4`, ...: debug info; `-g0`: none;
            // `-gz*`, `-gcolumn-info`, `-gno-*`, `-gsplit-dwarf` (above) leave it as is.
            match level {
                "0" | "gdb0" => debug_level = Some(false),
                _ if level.starts_with('z')
                    || level.starts_with("no-")
                    || level.starts_with("column-info")
                    || level.starts_with("strict-dwarf")
                    || level.starts_with("pubnames")
                    || level.starts_with("gnu-pubnames")
                    || level.starts_with("record-") =>
                {
                    if level.starts_with("record-") {
                        a.records_command_line = true;
                    }
                }
                _ => debug_level = Some(true),
            }
            i += 1;
            continue;
        }
        if let Some(rest) = arg.strip_prefix("-f") {
            parse_f_option(&mut a, arg, rest)?;
            i += 1;
            continue;
        }
        if let Some(rest) = arg.strip_prefix("-m") {
            if let Some((_, v)) = rest.split_once('=')
                && v == "native"
            {
                a.native.push(arg.to_string());
            }
            i += 1;
            continue;
        }
        if arg.starts_with("-O") || arg.starts_with("-std=") || arg.starts_with("--std=") {
            i += 1;
            continue;
        }
        if arg == "-stdlib" || arg.starts_with("-stdlib=") || arg.starts_with("-rtlib=") {
            i += 1;
            continue;
        }
        return Err(unknown(arg));
    }

    a.debug = debug_level.unwrap_or(false);
    if let Some(user_only) = dep_style {
        dep.user_only = user_only;
        a.dep = Some(dep);
    } else if dep.file.is_some() || !dep.targets.is_empty() || dep.phony {
        // `-MF` without `-MD`/`-MMD` does nothing for a compile; keep it simple.
        return Err(unsupported("-MF/-MT/-MQ/-MP without -MD or -MMD"));
    }
    match a.mode {
        Some(_) => {}
        None => return Err(Uncacheable::new("called for link", "no -c or -S")),
    }
    let sources: Vec<&(usize, Option<Lang>)> = inputs.iter().filter(|(_, l)| l.is_some()).collect();
    match sources.len() {
        0 if inputs.is_empty() => {
            return Err(Uncacheable::new("no input file", "no source file"));
        }
        0 => {
            return Err(Uncacheable::new(
                "unsupported language",
                format!("{}: not a source file", args[inputs[0].0]),
            ));
        }
        1 => {}
        _ => return Err(Uncacheable::new("multiple source files", "several inputs")),
    }
    if inputs.len() > 1 {
        return Err(Uncacheable::new(
            "multiple source files",
            "linker inputs beside the source",
        ));
    }
    let (idx, lang) = *sources[0];
    a.input = PathBuf::from(&args[idx]);
    a.input_index = idx;
    a.lang = lang;
    for i in a.unkeyed.iter().chain(&a.compile_only) {
        debug_assert!(*i < args.len());
    }
    a.compile_only.push(idx);
    a.args = args;
    Ok(a)
}

fn unknown(arg: &str) -> Uncacheable {
    Uncacheable::new("unknown option", arg.to_string())
}

fn is_header_ext(arg: &str) -> bool {
    let ext = Path::new(arg)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    matches!(ext, "h" | "hh" | "hpp" | "hxx" | "H" | "h++" | "tcc")
}

fn parse_f_option(a: &mut CcArgs, arg: &str, rest: &str) -> Result<(), Uncacheable> {
    let (name, value) = match rest.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (rest, None),
    };
    if let Some(v) = value
        && NAMED_FILE_OPTIONS.contains(&name)
    {
        a.named_files.push(PathBuf::from(v));
        return Ok(());
    }
    if rest.starts_with("profile-") && !rest.starts_with("profile-arcs") {
        return Err(unsupported(format!("{arg} (profile option)")));
    }
    if let Some(m) = rest
        .strip_prefix("debug-prefix-map=")
        .or_else(|| rest.strip_prefix("file-prefix-map="))
    {
        if let Some((from, to)) = m.split_once('=') {
            a.prefix_maps.push((from.to_string(), to.to_string()));
        }
        return Ok(());
    }
    if rest.starts_with("debug-compilation-dir") || rest.starts_with("file-compilation-dir") {
        a.compilation_dir = true;
        return Ok(());
    }
    if let Some(v) = rest.strip_prefix("opt-info")
        && v.contains('=')
    {
        return Err(unsupported(format!("{arg} (writes a file)")));
    }
    if rest.starts_with("callgraph-info") {
        a.callgraph_info = true;
        return Ok(());
    }
    if rest.starts_with("stack-usage") {
        a.stack_usage = true;
    }
    if name.starts_with("time-report") || name.starts_with("mem-report") {
        return Err(unsupported(format!("{arg} (timings in the diagnostics)")));
    }
    if value.is_some()
        && !NOT_A_FILE.contains(&name)
        && PATH_LIKE_NAME_PARTS.iter().any(|p| name.contains(p))
    {
        return Err(unsupported(format!("{arg} (names a file)")));
    }
    if let Some(v) = value
        && name.starts_with("basic-block-sections")
        && v.starts_with("list=")
    {
        return Err(unsupported(format!("{arg} (names a file)")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<CcArgs, Uncacheable> {
        parse(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_plain_compile() {
        let a = p(&["-O2", "-Iinc", "-DX=1", "-c", "src/a.c", "-o", "out/a.o"]).unwrap();
        assert_eq!(a.input, PathBuf::from("src/a.c"));
        assert_eq!(a.lang, Some(Lang::C));
        assert_eq!(a.object(), PathBuf::from("out/a.o"));
        assert!(a.dep.is_none());
        assert_eq!(a.unkeyed, vec![5, 6]);
    }

    #[test]
    fn what_is_not_a_single_compile() {
        let reason = |args: &[&str]| p(args).unwrap_err().reason;
        assert_eq!(reason(&["a.c", "-o", "a"]), "called for link");
        assert_eq!(reason(&["-E", "a.c"]), "preprocessing");
        assert_eq!(reason(&["-c", "a.c", "b.c"]), "multiple source files");
        assert_eq!(reason(&["-c"]), "no input file");
        assert_eq!(reason(&["-c", "a.c", "-o", "-"]), "output to stdout");
        assert_eq!(
            reason(&["-c", "-x", "bogus", "a.c"]),
            "unsupported language"
        );
        assert_eq!(reason(&["-c", "a.weird"]), "unsupported language");
        assert_eq!(reason(&["-c", "-"]), "stdin input");
        assert_eq!(reason(&["-c", "a.c", "-save-temps"]), "unsupported option");
        assert_eq!(reason(&["-c", "a.c", "--frobnicate"]), "unknown option");
        assert_eq!(reason(&["-c", "a.c", "-Wp,-MMD,x.d"]), "unsupported option");
        assert_eq!(
            reason(&["-c", "a.c", "-Wa,-adhln=x.lst"]),
            "unsupported option"
        );
        assert_eq!(reason(&["-c", "pch.h"]), "precompiled header");
        assert_eq!(reason(&["-c", "a.c", "-fmodules"]), "unsupported option");
        assert_eq!(reason(&["-c", "a.c", "-v"]), "unsupported option");
    }

    #[test]
    fn languages() {
        let lang = |args: &[&str]| p(args).unwrap().lang;
        assert_eq!(lang(&["-c", "a.cpp"]), Some(Lang::Cxx));
        assert_eq!(lang(&["-c", "-x", "c++", "a.c"]), Some(Lang::Cxx));
        assert_eq!(
            lang(&["-c", "-x", "c++", "-x", "none", "a.c"]),
            Some(Lang::C)
        );
        assert_eq!(lang(&["-c", "a.S"]), Some(Lang::AsmCpp));
        assert_eq!(lang(&["-c", "a.s"]), Some(Lang::Asm));
        // `-x` after the input does not apply to it.
        assert_eq!(lang(&["-c", "a.c", "-x", "c++"]), Some(Lang::C));
    }

    #[test]
    fn dependency_file_names_and_targets() {
        let d = |args: &[&str]| {
            let a = p(args).unwrap();
            (
                a.dep_file().map(|f| f.to_string_lossy().into_owned()),
                a.dep_target(),
            )
        };
        assert_eq!(
            d(&["-MD", "-c", "src/a.c", "-o", "build/a.o"]),
            (Some("build/a.d".into()), Some("build/a.o".into()))
        );
        assert_eq!(
            d(&["-MD", "-c", "src/a.c"]),
            (Some("a.d".into()), Some("a.o".into()))
        );
        for (o, want) in [("t", "t.d"), ("t.", "t.d"), ("t.foo.bar", "t.foo.d")] {
            assert_eq!(d(&["-MMD", "-c", "a.c", "-o", o]).0, Some(want.to_string()));
        }
        assert_eq!(
            d(&["-MD", "-MF", "x.d", "-MQ", "$m", "-MT", "b", "-c", "a.c"]),
            (Some("x.d".into()), Some("$$m b".into()))
        );
        assert!(p(&["-MF", "x.d", "-c", "a.c"]).is_err());
    }

    #[test]
    fn debug_and_colour() {
        assert!(p(&["-g", "-c", "a.c"]).unwrap().debug);
        assert!(!p(&["-g", "-g0", "-c", "a.c"]).unwrap().debug);
        assert!(!p(&["-gz", "-c", "a.c"]).unwrap().debug);
        let a = p(&["-fdiagnostics-color=always", "-c", "a.c"]).unwrap();
        assert_eq!(a.colour, Some(true));
        assert_eq!(a.colour_opts, vec![0]);
        assert_eq!(
            p(&["-fno-color-diagnostics", "-c", "a.c"]).unwrap().colour,
            Some(false)
        );
    }

    #[test]
    fn make_quoting() {
        assert_eq!(quote_make("a b$c#d"), "a\\ b$$c\\#d");
        assert_eq!(
            with_extension(Path::new("d.x/t"), "d"),
            PathBuf::from("d.x/t.d")
        );
    }
}
