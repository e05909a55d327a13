//! rustc argument parsing: decides whether an invocation is cacheable and extracts what the
//! key and the output set need (spec W2–W4, K1, K3–K6).
//!
//! Anything not understood is uncacheable: the daemon answers "pass through" and the wrapper
//! runs rustc unchanged (fail open).

use crate::os::OsStrExt;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::compiler::Uncacheable;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CrateType {
    Bin,
    Rlib,
    Dylib,
    Cdylib,
    Staticlib,
    ProcMacro,
}

impl CrateType {
    fn parse(s: &str) -> Option<CrateType> {
        Some(match s {
            "bin" => CrateType::Bin,
            "lib" | "rlib" => CrateType::Rlib,
            "dylib" => CrateType::Dylib,
            "cdylib" => CrateType::Cdylib,
            "staticlib" => CrateType::Staticlib,
            "proc-macro" => CrateType::ProcMacro,
            _ => return None,
        })
    }

    /// Crate types whose `link` output is produced by running the system linker.
    pub fn needs_linker(self) -> bool {
        matches!(
            self,
            CrateType::Bin | CrateType::Dylib | CrateType::Cdylib | CrateType::ProcMacro
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Emit {
    pub dep_info: bool,
    pub metadata: bool,
    pub link: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extern {
    /// Options before the name (`priv`, `noprelude`, ...), as given.
    pub opts: String,
    pub name: String,
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeLib {
    pub kind: String,
    pub modifiers: String,
    pub name: String,
}

/// A parsed, cacheable rustc command line.
#[derive(Debug, Clone, Default)]
pub struct RustcArgs {
    pub crate_name: String,
    pub crate_types: Vec<CrateType>,
    pub test: bool,
    pub emit: Emit,
    pub out_dir: PathBuf,
    pub extra_filename: String,
    /// The main source file, as spelled.
    pub input: PathBuf,
    pub externs: Vec<Extern>,
    /// `-L [KIND=]PATH`: (kind, path).
    pub search_paths: Vec<(String, PathBuf)>,
    pub native_libs: Vec<NativeLib>,
    pub target: Option<String>,
    pub incremental: bool,
    pub linker: Option<PathBuf>,
    /// Values of `-C link-arg` and the words of `-C link-args`.
    pub link_args: Vec<String>,
    pub profile_use: Vec<PathBuf>,
    /// `-C target-cpu=native` or similar: the key must include the host CPU.
    pub native_cpu: bool,
    /// The arguments that go into the key, in a canonical spelling, with the path-valued
    /// options that are keyed otherwise (out-dir, -L, --extern, incremental dir) removed.
    pub key_args: Vec<Vec<u8>>,
}

/// How the target names linked outputs (rustc's `target_family`/`target_env` naming).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetOs {
    Unix,
    Apple,
    WindowsMsvc,
    WindowsGnu,
}

impl TargetOs {
    /// From `--target` (a triple; a target-spec file path counts as Unix-like unless its
    /// name says otherwise), else the host zcfs was built for.
    pub fn of(target: Option<&str>) -> TargetOs {
        let t = match target {
            Some(t) => t.to_ascii_lowercase(),
            None if cfg!(all(windows, target_env = "msvc")) => return TargetOs::WindowsMsvc,
            None if cfg!(windows) => return TargetOs::WindowsGnu,
            None if cfg!(target_vendor = "apple") => return TargetOs::Apple,
            None => return TargetOs::Unix,
        };
        if t.contains("-windows-msvc") {
            TargetOs::WindowsMsvc
        } else if t.contains("-windows") {
            TargetOs::WindowsGnu
        } else if t.contains("-apple-") {
            TargetOs::Apple
        } else {
            TargetOs::Unix
        }
    }

    fn exe_suffix(self) -> &'static str {
        match self {
            TargetOs::WindowsMsvc | TargetOs::WindowsGnu => ".exe",
            _ => "",
        }
    }
}

impl RustcArgs {
    /// Whether rustc runs the system linker for this compile.
    pub fn runs_linker(&self) -> bool {
        self.emit.link && (self.test || self.crate_types.iter().any(|t| t.needs_linker()))
    }

    /// The file names (in the out-dir) that this compile must produce (spec C6, R1, W10).
    pub fn expected_outputs(&self) -> Vec<String> {
        let stem = format!("{}{}", self.crate_name, self.extra_filename);
        let mut out = Vec::new();
        if self.emit.dep_info {
            out.push(format!("{stem}.d"));
        }
        if self.emit.metadata {
            out.push(format!("lib{stem}.rmeta"));
        }
        if self.emit.link {
            let os = TargetOs::of(self.target.as_deref());
            if self.test {
                out.push(format!("{stem}{}", os.exe_suffix()));
            } else {
                for t in &self.crate_types {
                    let name = match t {
                        CrateType::Bin => format!("{stem}{}", os.exe_suffix()),
                        CrateType::Rlib => format!("lib{stem}.rlib"),
                        CrateType::Staticlib => match os {
                            TargetOs::WindowsMsvc => format!("{stem}.lib"),
                            _ => format!("lib{stem}.a"),
                        },
                        CrateType::Dylib | CrateType::Cdylib | CrateType::ProcMacro => match os {
                            TargetOs::WindowsMsvc | TargetOs::WindowsGnu => {
                                format!("{stem}.dll")
                            }
                            TargetOs::Apple => format!("lib{stem}.dylib"),
                            TargetOs::Unix => format!("lib{stem}.so"),
                        },
                    };
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
        }
        out
    }

    /// Files a linked output may come with on its target, stored when the compile wrote
    /// them: MSVC's program database (`.pdb`) beside an executable or DLL, and the import
    /// library (`.dll.lib` and `.dll.exp` with MSVC, `lib*.dll.a` with MinGW) of a DLL.
    pub fn companion_outputs(&self) -> Vec<String> {
        if !self.emit.link {
            return Vec::new();
        }
        let stem = format!("{}{}", self.crate_name, self.extra_filename);
        let os = TargetOs::of(self.target.as_deref());
        let linked = self.test
            || self.crate_types.iter().any(|t| {
                matches!(
                    t,
                    CrateType::Bin | CrateType::Dylib | CrateType::Cdylib | CrateType::ProcMacro
                )
            });
        let dll = !self.test
            && self.crate_types.iter().any(|t| {
                matches!(
                    t,
                    CrateType::Dylib | CrateType::Cdylib | CrateType::ProcMacro
                )
            });
        let mut out = Vec::new();
        match os {
            TargetOs::WindowsMsvc => {
                if linked {
                    out.push(format!("{stem}.pdb"));
                }
                if dll {
                    out.push(format!("{stem}.dll.lib"));
                    out.push(format!("{stem}.dll.exp"));
                }
            }
            TargetOs::WindowsGnu if dll => out.push(format!("lib{stem}.dll.a")),
            _ => {}
        }
        out
    }
}

/// Expands `@file` arguments with rustc's semantics: one argument per line, no quoting, no
/// recursion (spec W4). Relative argfile paths are resolved against `cwd`; a file is read
/// through `fs` (in a mount: through its core), and only if every process reads it alike.
pub fn expand_argfiles(
    args: &[OsString],
    cwd: &Path,
    fs: &dyn crate::fsview::FsView,
) -> Result<Vec<OsString>, Uncacheable> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        let bytes = a.as_bytes();
        if bytes.len() > 1 && bytes[0] == b'@' {
            let rel = crate::os::os_str(&bytes[1..]);
            let rel = Path::new(&rel);
            if rel.starts_with("shell:") {
                return Err(Uncacheable::new(
                    "argfile",
                    "@shell: argfiles are not supported",
                ));
            }
            let path = crate::fsutil::resolve(cwd, rel);
            fs.check_shared(&path)
                .map_err(|e| Uncacheable::new("argfile", e))?;
            let text = fs.read(&path).map_err(|e| {
                Uncacheable::new("argfile", format!("cannot read {}: {e}", path.display()))
            })?;
            let text = String::from_utf8(text).map_err(|_| {
                Uncacheable::new("argfile", format!("{} is not UTF-8", path.display()))
            })?;
            out.extend(text.lines().map(OsString::from));
        } else {
            out.push(a.clone());
        }
    }
    Ok(out)
}

enum Arity {
    Flag,
    Value,
}

fn long_arity(name: &str) -> Option<Arity> {
    Some(match name {
        "test" | "verbose" | "version" | "help" => Arity::Flag,
        "cfg" | "check-cfg" | "crate-type" | "crate-name" | "edition" | "emit" | "print"
        | "out-dir" | "explain" | "target" | "cap-lints" | "codegen" | "extern" | "sysroot"
        | "error-format" | "json" | "color" | "diagnostic-width" | "remap-path-prefix" | "warn"
        | "allow" | "deny" | "forbid" | "force-warn" | "env-set" | "crate-attr" | "unpretty"
        | "pretty" | "extern-location" | "remap-path-scope" | "target-modifier" => Arity::Value,
        _ => return None,
    })
}

fn short_arity(c: char) -> Option<Arity> {
    Some(match c {
        'g' | 'O' | 'v' | 'V' | 'h' => Arity::Flag,
        'L' | 'l' | 'o' | 'C' | 'W' | 'A' | 'D' | 'F' | 'Z' => Arity::Value,
        _ => return None,
    })
}

/// `-Z` options that write side files, print, or otherwise make the output not a pure
/// function of the inputs.
const UNCACHEABLE_Z: &[&str] = &[
    "self-profile",
    "dump-",
    "print-",
    "unpretty",
    "time-passes",
    "time-llvm-passes",
    "llvm-time-trace",
    "ls",
    "query-dep-graph",
    "meta-stats",
    "input-stats",
    "hir-stats",
    "parse-crate-root-only",
    "no-analysis",
    "profile-closures",
    "emit-stack-sizes",
    "incremental-info",
    "no-codegen",
    "threads",
];

/// Parses rustc's arguments (after argfile expansion, without the rustc path itself).
pub fn parse(args: &[OsString]) -> Result<RustcArgs, Uncacheable> {
    let mut r = RustcArgs::default();
    let mut inputs: Vec<PathBuf> = Vec::new();
    let mut crate_name = None;
    let mut out_dir = None;
    let mut emit_seen = false;
    let mut error_format_json = false;
    let mut key = Vec::new();

    let mut i = 0;
    while i < args.len() {
        let arg = args[i]
            .to_str()
            .ok_or_else(|| Uncacheable::new("non-utf8 argument", format!("{:?}", args[i])))?;
        i += 1;

        // A free argument: the input file.
        if arg == "-" {
            return Err(Uncacheable::new("stdin input", "input is read from stdin"));
        }
        if !arg.starts_with('-') {
            inputs.push(PathBuf::from(arg));
            key.push(format!("input={arg}").into_bytes());
            continue;
        }

        // Split the option from its value.
        let (name, value): (String, Option<String>) = if let Some(long) = arg.strip_prefix("--") {
            let (n, inline) = match long.find('=') {
                Some(p) => (&long[..p], Some(long[p + 1..].to_string())),
                None => (long, None),
            };
            match long_arity(n) {
                Some(Arity::Flag) => {
                    if inline.is_some() {
                        return Err(Uncacheable::new("unknown flag", arg.to_string()));
                    }
                    (format!("--{n}"), None)
                }
                Some(Arity::Value) => {
                    let v = match inline {
                        Some(v) => v,
                        None => {
                            let v = args.get(i).and_then(|v| v.to_str()).ok_or_else(|| {
                                Uncacheable::new(
                                    "malformed arguments",
                                    format!("{arg} needs a value"),
                                )
                            })?;
                            i += 1;
                            v.to_string()
                        }
                    };
                    (format!("--{n}"), Some(v))
                }
                None => return Err(Uncacheable::new("unknown flag", arg.to_string())),
            }
        } else {
            let mut chars = arg[1..].chars();
            let c = chars
                .next()
                .ok_or_else(|| Uncacheable::new("malformed arguments", arg.to_string()))?;
            match short_arity(c) {
                Some(Arity::Value) => {
                    let rest: String = chars.collect();
                    let v = if rest.is_empty() {
                        let v = args.get(i).and_then(|v| v.to_str()).ok_or_else(|| {
                            Uncacheable::new("malformed arguments", format!("{arg} needs a value"))
                        })?;
                        i += 1;
                        v.to_string()
                    } else {
                        rest
                    };
                    (format!("-{c}"), Some(v))
                }
                Some(Arity::Flag) => {
                    // Combined short flags, e.g. `-vV`.
                    for f in std::iter::once(c).chain(chars) {
                        match (f, short_arity(f)) {
                            ('V' | 'h', _) => {
                                return Err(Uncacheable::new("probe", arg.to_string()));
                            }
                            (_, Some(Arity::Flag)) => key.push(format!("-{f}").into_bytes()),
                            _ => return Err(Uncacheable::new("unknown flag", arg.to_string())),
                        }
                    }
                    continue;
                }
                None => return Err(Uncacheable::new("unknown flag", arg.to_string())),
            }
        };

        let v = value.unwrap_or_default();
        match name.as_str() {
            "--version" | "--help" | "--explain" => {
                return Err(Uncacheable::new("probe", name));
            }
            "--print" => return Err(Uncacheable::new("print", format!("--print={v}"))),
            "--verbose" => key.push(b"--verbose".to_vec()),
            "--test" => {
                r.test = true;
                key.push(b"--test".to_vec());
            }
            "--crate-name" => {
                crate_name = Some(v.clone());
                key.push(format!("--crate-name={v}").into_bytes());
            }
            "--crate-type" => {
                for t in v.split(',') {
                    let ct = CrateType::parse(t).ok_or_else(|| {
                        Uncacheable::new("crate type", format!("unknown crate type {t:?}"))
                    })?;
                    if !r.crate_types.contains(&ct) {
                        r.crate_types.push(ct);
                    }
                }
                key.push(format!("--crate-type={v}").into_bytes());
            }
            "--emit" => {
                emit_seen = true;
                for kind in v.split(',') {
                    if kind.contains('=') {
                        return Err(Uncacheable::new("emit path", format!("--emit={v}")));
                    }
                    match kind {
                        "dep-info" => r.emit.dep_info = true,
                        "metadata" => r.emit.metadata = true,
                        "link" => r.emit.link = true,
                        other => {
                            return Err(Uncacheable::new(
                                "unsupported emit",
                                format!("--emit={other}"),
                            ));
                        }
                    }
                }
                key.push(format!("--emit={v}").into_bytes());
            }
            "--out-dir" => out_dir = Some(PathBuf::from(&v)),
            "-o" => return Err(Uncacheable::new("-o", format!("-o {v}"))),
            "--extern" => {
                let (spec, path) = match v.find('=') {
                    Some(p) => (&v[..p], Some(PathBuf::from(&v[p + 1..]))),
                    None => (v.as_str(), None),
                };
                let (opts, name) = match spec.rfind(':') {
                    Some(p) => (&spec[..p], &spec[p + 1..]),
                    None => ("", spec),
                };
                r.externs.push(Extern {
                    opts: opts.to_string(),
                    name: name.to_string(),
                    path,
                });
            }
            "-L" => {
                let (kind, path) = match v.find('=') {
                    Some(p)
                        if matches!(
                            &v[..p],
                            "dependency" | "crate" | "native" | "framework" | "all"
                        ) =>
                    {
                        (v[..p].to_string(), &v[p + 1..])
                    }
                    _ => ("all".to_string(), v.as_str()),
                };
                r.search_paths.push((kind, PathBuf::from(path)));
            }
            "-l" => {
                let (spec, lib) = match v.find('=') {
                    Some(p) => (&v[..p], &v[p + 1..]),
                    None => ("", v.as_str()),
                };
                let (kind, modifiers) = match spec.find(':') {
                    Some(p) => (&spec[..p], &spec[p + 1..]),
                    None => (spec, ""),
                };
                r.native_libs.push(NativeLib {
                    kind: kind.to_string(),
                    modifiers: modifiers.to_string(),
                    name: lib.to_string(),
                });
                key.push(format!("-l{v}").into_bytes());
            }
            "--target" => {
                r.target = Some(v.clone());
                key.push(format!("--target={v}").into_bytes());
            }
            "--error-format" => {
                error_format_json = v == "json";
                key.push(format!("--error-format={v}").into_bytes());
            }
            "--color" | "--diagnostic-width" => {}
            "--sysroot" => return Err(Uncacheable::new("sysroot", format!("--sysroot {v}"))),
            "--pretty" | "--unpretty" => {
                return Err(Uncacheable::new("unpretty", format!("{name}={v}")));
            }
            "-C" | "--codegen" => {
                let (opt, val) = match v.find('=') {
                    Some(p) => (&v[..p], Some(&v[p + 1..])),
                    None => (v.as_str(), None),
                };
                let opt_norm = opt.replace('_', "-");
                match (opt_norm.as_str(), val) {
                    ("help", _) => return Err(Uncacheable::new("probe", "-C help")),
                    ("incremental", _) => {
                        r.incremental = true;
                        key.push(b"-Cincremental".to_vec());
                        continue;
                    }
                    ("save-temps", _) => {
                        return Err(Uncacheable::new("save-temps", format!("-C {v}")));
                    }
                    ("extra-filename", Some(x)) => r.extra_filename = x.to_string(),
                    ("linker", Some(x)) => r.linker = Some(PathBuf::from(x)),
                    ("linker-flavor", Some(x)) if !matches!(x, "gcc" | "gnu-cc" | "gnu-lld-cc") => {
                        return Err(Uncacheable::new("linker flavor", format!("-C {v}")));
                    }
                    ("link-arg", Some(x)) => r.link_args.push(x.to_string()),
                    ("link-args", Some(x)) => {
                        r.link_args.extend(x.split_whitespace().map(String::from))
                    }
                    ("split-debuginfo", Some(x)) if x != "off" => {
                        return Err(Uncacheable::new("split debuginfo", format!("-C {v}")));
                    }
                    ("profile-use" | "profile-sample-use", Some(x)) => {
                        r.profile_use.push(PathBuf::from(x))
                    }
                    ("target-cpu", Some("native")) => r.native_cpu = true,
                    ("target-feature", Some(x)) if x.contains("native") => r.native_cpu = true,
                    _ => {}
                }
                key.push(
                    format!(
                        "-C{opt_norm}{}",
                        val.map(|x| format!("={x}")).unwrap_or_default()
                    )
                    .into_bytes(),
                );
            }
            "-Z" => {
                let opt = v.split('=').next().unwrap_or("").replace('_', "-");
                if opt == "help" {
                    return Err(Uncacheable::new("probe", "-Z help"));
                }
                if UNCACHEABLE_Z.iter().any(|p| {
                    if p.ends_with('-') {
                        opt.starts_with(p)
                    } else {
                        opt == *p
                    }
                }) {
                    return Err(Uncacheable::new("unstable flag", format!("-Z {v}")));
                }
                key.push(format!("-Z{v}").into_bytes());
            }
            "-W" | "-A" | "-D" | "-F" | "--warn" | "--allow" | "--deny" | "--forbid"
            | "--force-warn" => {
                if v == "help" {
                    return Err(Uncacheable::new("probe", format!("{name} help")));
                }
                key.push(format!("{name}={v}").into_bytes());
            }
            _ => {
                // Value options that only go into the key: --cfg, --check-cfg, --edition,
                // --cap-lints, --json, --remap-path-prefix, --env-set, --crate-attr, ...
                key.push(format!("{name}={v}").into_bytes());
            }
        }
    }

    match inputs.len() {
        0 => return Err(Uncacheable::new("no input", "no input file")),
        1 => r.input = inputs.pop().unwrap(),
        _ => return Err(Uncacheable::new("multiple inputs", format!("{inputs:?}"))),
    }
    r.crate_name =
        crate_name.ok_or_else(|| Uncacheable::new("missing --crate-name", "no --crate-name"))?;
    r.out_dir = out_dir.ok_or_else(|| Uncacheable::new("missing --out-dir", "no --out-dir"))?;
    if !emit_seen {
        return Err(Uncacheable::new("missing --emit", "no --emit"));
    }
    if r.crate_types.is_empty() && !r.test {
        return Err(Uncacheable::new(
            "missing --crate-type",
            "crate type left to the source",
        ));
    }
    if !error_format_json {
        return Err(Uncacheable::new(
            "not json",
            "--error-format=json not given",
        ));
    }
    if let Some(t) = &r.target {
        let linux_like = t.contains("-linux-") || t.ends_with("-linux");
        if !linux_like {
            return Err(Uncacheable::new("unsupported target", t.clone()));
        }
    }
    r.key_args = key;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// The argv cargo 1.95 passes for a library in a dev build.
    fn lib_args() -> Vec<&'static str> {
        vec![
            "--crate-name",
            "util",
            "--edition=2021",
            "util/src/lib.rs",
            "--error-format=json",
            "--json=diagnostic-rendered-ansi,artifacts,future-incompat",
            "--crate-type",
            "lib",
            "--emit=dep-info,metadata,link",
            "-C",
            "embed-bitcode=no",
            "-C",
            "debuginfo=2",
            "-C",
            "metadata=1d4e0c3e",
            "-C",
            "extra-filename=-5f2c",
            "--out-dir",
            "/w/target/debug/deps",
            "-C",
            "incremental=/w/target/debug/incremental",
            "-L",
            "dependency=/w/target/debug/deps",
            "--extern",
            "dep=/w/target/debug/deps/libdep-1.rmeta",
        ]
    }

    fn parse_ok(args: &[&str]) -> RustcArgs {
        parse(&os(args)).unwrap()
    }

    fn reason(args: &[&str]) -> &'static str {
        parse(&os(args)).unwrap_err().reason
    }

    fn key(args: &[&str]) -> Vec<Vec<u8>> {
        parse_ok(args).key_args
    }

    fn with(extra: &[&'static str]) -> Vec<&'static str> {
        let mut a = lib_args();
        a.extend_from_slice(extra);
        a
    }

    #[test]
    fn cargo_lib_invocation() {
        let r = parse_ok(&lib_args());
        assert_eq!(r.crate_name, "util");
        assert_eq!(r.crate_types, vec![CrateType::Rlib]);
        assert_eq!(r.out_dir, PathBuf::from("/w/target/debug/deps"));
        assert_eq!(r.extra_filename, "-5f2c");
        assert!(r.incremental);
        assert_eq!(r.externs.len(), 1);
        assert_eq!(r.externs[0].name, "dep");
        assert!(!r.runs_linker());
        assert_eq!(
            r.expected_outputs(),
            vec!["util-5f2c.d", "libutil-5f2c.rmeta", "libutil-5f2c.rlib"]
        );
    }

    #[test]
    fn link_types_and_outputs() {
        let mut a = lib_args();
        a[7] = "bin";
        a[8] = "--emit=dep-info,link";
        let r = parse_ok(&a);
        assert!(r.runs_linker());
        assert_eq!(r.expected_outputs(), vec!["util-5f2c.d", "util-5f2c"]);
        a[7] = "proc-macro";
        assert_eq!(parse_ok(&a).expected_outputs()[1], "libutil-5f2c.so");
        a[7] = "staticlib";
        let r = parse_ok(&a);
        assert!(!r.runs_linker());
        assert_eq!(r.expected_outputs()[1], "libutil-5f2c.a");
        a[7] = "rlib,cdylib";
        let r = parse_ok(&a);
        assert!(r.runs_linker());
        assert_eq!(r.expected_outputs().len(), 3);
        // A test harness needs no crate type.
        let mut t: Vec<&str> = lib_args();
        t.drain(6..8);
        t.push("--test");
        let r = parse_ok(&t);
        assert!(r.test && r.runs_linker());
        assert_eq!(
            r.expected_outputs(),
            vec!["util-5f2c.d", "libutil-5f2c.rmeta", "util-5f2c"]
        );
    }

    #[test]
    fn linked_outputs_are_named_as_the_target_names_them() {
        let mut a = lib_args();
        a[7] = "bin";
        a[8] = "--emit=dep-info,link";
        let named = |a: &[&str], target: &str| {
            let mut r = parse_ok(a);
            r.target = Some(target.into());
            r.expected_outputs()[1].clone()
        };
        assert_eq!(named(&a, "x86_64-pc-windows-msvc"), "util-5f2c.exe");
        assert_eq!(named(&a, "x86_64-pc-windows-gnu"), "util-5f2c.exe");
        assert_eq!(named(&a, "aarch64-apple-darwin"), "util-5f2c");
        a[7] = "cdylib";
        assert_eq!(named(&a, "x86_64-pc-windows-msvc"), "util-5f2c.dll");
        assert_eq!(named(&a, "aarch64-apple-darwin"), "libutil-5f2c.dylib");
        assert_eq!(named(&a, "x86_64-unknown-linux-gnu"), "libutil-5f2c.so");
        a[7] = "proc-macro";
        assert_eq!(named(&a, "x86_64-pc-windows-gnu"), "util-5f2c.dll");
        a[7] = "staticlib";
        assert_eq!(named(&a, "x86_64-pc-windows-msvc"), "util-5f2c.lib");
        assert_eq!(named(&a, "x86_64-pc-windows-gnu"), "libutil-5f2c.a");
        a[7] = "rlib";
        assert_eq!(named(&a, "x86_64-pc-windows-msvc"), "libutil-5f2c.rlib");
        // Companions: debug info and import libraries, Windows only.
        let companions = |a: &[&str], target: &str| {
            let mut r = parse_ok(a);
            r.target = Some(target.into());
            r.companion_outputs()
        };
        assert!(companions(&a, "x86_64-pc-windows-msvc").is_empty());
        a[7] = "cdylib";
        assert_eq!(
            companions(&a, "x86_64-pc-windows-msvc"),
            vec!["util-5f2c.pdb", "util-5f2c.dll.lib", "util-5f2c.dll.exp"]
        );
        assert_eq!(
            companions(&a, "x86_64-pc-windows-gnu"),
            vec!["libutil-5f2c.dll.a"]
        );
        assert!(companions(&a, "x86_64-unknown-linux-gnu").is_empty());
        a[7] = "bin";
        assert_eq!(
            companions(&a, "x86_64-pc-windows-msvc"),
            vec!["util-5f2c.pdb"]
        );
    }

    #[test]
    fn probes_and_prints_pass_through() {
        assert_eq!(reason(&["-vV"]), "probe");
        assert_eq!(reason(&["--version"]), "probe");
        assert_eq!(reason(&["-V"]), "probe");
        assert_eq!(reason(&["--help"]), "probe");
        assert_eq!(reason(&["-C", "help"]), "probe");
        assert_eq!(
            reason(&[
                "-",
                "--crate-name",
                "___",
                "--print=file-names",
                "--crate-type",
                "bin"
            ]),
            "stdin input"
        );
        assert_eq!(reason(&with(&["--print", "cfg"])), "print");
        assert_eq!(reason(&with(&["--explain", "E0001"])), "probe");
    }

    #[test]
    fn uncacheable_shapes() {
        assert_eq!(reason(&with(&["-o", "x"])), "-o");
        assert_eq!(reason(&with(&["other.rs"])), "multiple inputs");
        assert_eq!(reason(&with(&["--emit=asm"])), "unsupported emit");
        assert_eq!(reason(&with(&["--emit=link=/x"])), "emit path");
        assert_eq!(reason(&with(&["-C", "save-temps"])), "save-temps");
        assert_eq!(reason(&with(&["-Z", "self-profile"])), "unstable flag");
        assert_eq!(reason(&with(&["-Zdump-mir=all"])), "unstable flag");
        assert_eq!(reason(&with(&["--frobnicate"])), "unknown flag");
        assert_eq!(reason(&with(&["-q"])), "unknown flag");
        assert_eq!(
            reason(&with(&["-Csplit-debuginfo=packed"])),
            "split debuginfo"
        );
        assert_eq!(reason(&with(&["--sysroot", "/s"])), "sysroot");
        assert_eq!(
            reason(&with(&["--target", "x86_64-pc-windows-msvc"])),
            "unsupported target"
        );
        assert_eq!(
            reason(&with(&["-C", "linker-flavor=msvc"])),
            "linker flavor"
        );
        assert_eq!(reason(&with(&["--crate-type"])), "malformed arguments");
        let no_json: Vec<&str> = lib_args()
            .into_iter()
            .filter(|a| *a != "--error-format=json")
            .collect();
        assert_eq!(reason(&no_json), "not json");
        let mut no_out = lib_args();
        no_out.drain(17..19);
        assert!(!no_out.contains(&"--out-dir"));
        assert_eq!(reason(&no_out), "missing --out-dir");
    }

    #[test]
    fn every_key_affecting_flag_changes_the_key() {
        let base = key(&lib_args());
        let variants: &[&[&'static str]] = &[
            &["--cfg", "feature=\"x\""],
            &["--check-cfg", "cfg(x)"],
            &["-C", "opt-level=3"],
            &["-Copt-level=3"],
            &["-C", "debug-assertions=off"],
            &["-C", "overflow-checks=on"],
            &["-C", "panic=abort"],
            &["-C", "lto"],
            &["-C", "codegen-units=1"],
            &["-C", "target-cpu=native"],
            &["-C", "target-feature=+avx2"],
            &["-C", "linker=clang"],
            &["-C", "link-arg=-Wl,-z,now"],
            &["-C", "strip=symbols"],
            &["-C", "prefer-dynamic"],
            &["--cap-lints", "allow"],
            &["-W", "unused"],
            &["-A", "dead_code"],
            &["-D", "warnings"],
            &["-F", "unsafe_code"],
            &["--force-warn", "unused"],
            &["--edition", "2024"],
            &["--json", "artifacts"],
            &["--remap-path-prefix", "/a=/b"],
            &["-l", "static=foo"],
            &["--target", "x86_64-unknown-linux-musl"],
            &["-Z", "checksum-hash-algorithm=blake3"],
            &["--env-set", "A=1"],
            &["-g"],
            &["-O"],
            &["--verbose"],
            &["--test"],
        ];
        for extra in variants {
            assert_ne!(key(&with(extra)), base, "{extra:?} must change the key");
        }
        // Different crate name, type, emit, metadata, extra-filename, input, edition.
        for (i, v) in [
            (1, "other"),
            (7, "rlib,cdylib"),
            (8, "--emit=dep-info,metadata"),
            (14, "metadata=ffff"),
            (16, "extra-filename=-ffff"),
            (3, "util/src/main.rs"),
        ] {
            let mut a = lib_args();
            a[i] = v;
            assert_ne!(key(&a), base, "changing arg {i} to {v} must change the key");
        }
    }

    #[test]
    fn path_valued_and_cosmetic_options_are_not_in_the_key() {
        let base = key(&lib_args());
        let mut a = lib_args();
        a[18] = "/elsewhere/target/debug/deps";
        a[20] = "incremental=/elsewhere/inc";
        a[22] = "dependency=/elsewhere/deps";
        a[24] = "dep=/elsewhere/libdep-1.rmeta";
        assert_eq!(key(&a), base);
        assert_eq!(key(&with(&["--color", "always"])), base);
        assert_eq!(key(&with(&["--diagnostic-width=80"])), base);
        // Spelling variants of one option give one key.
        assert_eq!(
            key(&with(&["-C", "opt-level=3"])),
            key(&with(&["-Copt-level=3"]))
        );
        assert_eq!(key(&with(&["--cfg", "x"])), key(&with(&["--cfg=x"])));
    }

    #[test]
    fn externs_with_options() {
        let r = parse_ok(&with(&[
            "--extern",
            "priv:noprelude:std2=/p/libstd2.rlib",
            "--extern",
            "proc_macro",
        ]));
        assert_eq!(r.externs[1].opts, "priv:noprelude");
        assert_eq!(r.externs[1].name, "std2");
        assert_eq!(r.externs[2].path, None);
    }

    #[test]
    fn argfiles_expand_by_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("args"),
            "--crate-name\nutil\n--cfg\nfeature=\"a b\"\n",
        )
        .unwrap();
        let hashes = crate::fsview::hashcache::HashCache::new();
        let fs = crate::fsview::HostFs { hashes: &hashes };
        let out = expand_argfiles(&os(&["@args", "x.rs"]), dir.path(), &fs).unwrap();
        assert_eq!(
            out,
            os(&["--crate-name", "util", "--cfg", "feature=\"a b\"", "x.rs"])
        );
        let err = expand_argfiles(&os(&["@missing"]), dir.path(), &fs).unwrap_err();
        assert_eq!(err.reason, "argfile");
        // The caller's stdin is not the daemon's: such an argfile is not read.
        #[cfg(unix)]
        std::os::unix::fs::symlink("/dev/stdin", dir.path().join("in")).unwrap();
        #[cfg(unix)]
        for a in ["@/dev/stdin", "@/proc/self/fd/0", "@in"] {
            let err = expand_argfiles(&os(&[a]), dir.path(), &fs).unwrap_err();
            assert_eq!(err.reason, "argfile", "{a}");
            assert!(
                err.detail.contains("stdin") || err.detail.contains("proc"),
                "{a}: {}",
                err.detail
            );
        }
    }
}
