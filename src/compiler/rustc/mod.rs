//! rustc: from an invocation to a direct-mode key (spec D1, K1–K7), and after a miss, to the
//! recorded inputs of a manifest entry (D2–D4, K5).

pub mod args;
pub mod bindings;
pub mod collect;
mod family;
pub mod identity;

use crate::os::OsStrExt;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::compiler::{KeyError, Uncacheable};
use crate::fsutil::{NanoTime, resolve};
use crate::fsview::FsView;
use crate::fsview::hashcache::{HashCache, HashError};
use crate::hash::{Digest, KeyHasher};
use crate::os::FileStat;

pub use args::RustcArgs;
pub use collect::{
    artifact_paths, collect_inputs, link_depfile_args, module_alternative, output_names,
};
pub use family::RustcFamily;
pub use identity::{IdentityCache, RustcIdentity};

/// Version of the key schema; bump to invalidate every entry.
const KEY_VERSION: &str = "zcfs-rustc-key-v4";

/// A cacheable rustc invocation with its key computed.
#[derive(Debug)]
pub struct RustcJob {
    pub args: RustcArgs,
    pub cwd: PathBuf,
    /// Absolute out-dir.
    pub out_dir: PathBuf,
    pub identity: Arc<RustcIdentity>,
    /// The direct-mode manifest key.
    pub key: Digest,
    /// Extern files as hashed for the key: (absolute path, stat, digest).
    pub externs: Vec<(PathBuf, FileStat, Digest)>,
    /// Newest mtime among the extern inputs: the floor for output mtimes (spec M5).
    pub inputs_mtime_floor: NanoTime,
    /// The target (build) dir the out-dir lies in, from `-L dependency=<root>/<profile>/deps`.
    pub target_root: Option<PathBuf>,
    /// Which of target dir and cwd reached the compile as a value in its arguments or keyed
    /// environment (they bind the entry strictly).
    pub paths_in_values: PathsSeen,
}

impl RustcJob {
    pub fn place(&self) -> bindings::Place<'_> {
        bindings::Place {
            cwd: &self.cwd,
            out_dir: &self.out_dir,
            target_root: self.target_root.as_deref(),
        }
    }
}

/// The target dir of a compile: `-L dependency=` names `<root>[/<triple>]/<profile>/deps`.
pub fn target_root(args: &RustcArgs, cwd: &Path) -> Option<PathBuf> {
    let deps = args
        .search_paths
        .iter()
        .find(|(kind, p)| kind == "dependency" && p.file_name().is_some_and(|n| n == "deps"))?;
    let abs = resolve(cwd, &deps.1);
    let mut root = abs.parent()?.parent()?.to_path_buf();
    if args.target.is_some() {
        root = root.parent()?.to_path_buf();
    }
    // A root that is too short would be found everywhere.
    (root.as_os_str().len() > 4).then_some(root)
}

/// The paths [`normalize`] replaces, with their placeholders: longer paths first (the cwd
/// of a registry crate lies under `CARGO_HOME`), each in all its spellings
/// (`bindings::spellings`: one on Unix, several on Windows).
fn placeholders(
    target: Option<&[u8]>,
    cwd: &[u8],
    cargo_home: Option<&[u8]>,
) -> Vec<(Vec<Vec<u8>>, &'static [u8])> {
    let mut needles = [
        (target, &b"${TARGET}"[..]),
        (Some(cwd), &b"${CWD}"[..]),
        (cargo_home, &b"${CARGO_HOME}"[..]),
    ];
    needles.sort_by_key(|(n, _)| std::cmp::Reverse(n.map_or(0, <[u8]>::len)));
    needles
        .into_iter()
        .filter_map(|(n, with)| Some((bindings::spellings(n.filter(|n| n.len() > 1)?), with)))
        .collect()
}

/// Replaces the target dir, the cwd and `CARGO_HOME` in a key field by placeholders (spec
/// X3): the key is the same in another target dir, checkout or home; whether the outputs
/// depend on those paths is decided per entry (bindings). Also says which it replaced.
fn normalize<'a>(
    v: &'a [u8],
    needles: &[(Vec<Vec<u8>>, &'static [u8])],
) -> (std::borrow::Cow<'a, [u8]>, PathsSeen) {
    let mut out = std::borrow::Cow::Borrowed(v);
    let mut seen = PathsSeen::default();
    for (spellings, with) in needles {
        for spelled in spellings {
            if !bindings::contains_path(&out, spelled) {
                continue;
            }
            let pairs = [(spelled.clone(), with.to_vec())];
            out = std::borrow::Cow::Owned(bindings::replace_each(&out, &pairs, true).into_owned());
            match *with {
                b"${TARGET}" => seen.target = true,
                b"${CWD}" => seen.cwd = true,
                _ => seen.cargo_home = true,
            }
        }
    }
    (out, seen)
}

/// Which of the paths a compile ran under reach it as a value (docs/sharing.md): in an
/// argument (`--cfg x="<target dir>"`), a keyed environment variable (`CARGO_MANIFEST_DIR`)
/// of a compile that runs proc macros, or, found when the result is stored, in an `env!`
/// read. What a compiler or a proc macro
/// does with a value is invisible to a byte search of its outputs
/// (`env!("CARGO_MANIFEST_DIR").len()` decides a branch), so such a path binds the entry
/// strictly.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PathsSeen {
    pub target: bool,
    pub cwd: bool,
    pub cargo_home: bool,
}

impl PathsSeen {
    fn add(&mut self, o: PathsSeen) {
        self.target |= o.target;
        self.cwd |= o.cwd;
        self.cargo_home |= o.cargo_home;
    }
}

/// Key arguments whose paths are known not to reach the output as values: remapping
/// prefixes (the output holds the replacement instead) and profile files (keyed by content).
fn path_argument_is_harmless(arg: &[u8]) -> bool {
    [
        &b"--remap-path-prefix="[..],
        b"-Zremap-cwd-prefix=",
        b"-Cprofile-use=",
        b"-Cprofile-sample-use=",
    ]
    .iter()
    .any(|p| arg.starts_with(p))
}

/// Inputs to a key computation.
pub struct KeyInputs<'a> {
    pub argv: &'a [OsString],
    pub cwd: &'a Path,
    pub env: &'a HashMap<OsString, OsString>,
    /// Host files: the toolchain (identity).
    pub hashes: &'a HashCache,
    /// Everything else a compile involves (externs, native libs, target specs).
    pub fs: &'a dyn FsView,
    pub identities: &'a IdentityCache,
    /// The relaxations in force: they change what an entry may serve, so they are keyed.
    pub sloppiness: crate::config::Sloppiness,
}

/// Environment variables that cargo sets for rustc and that therefore go into the key
/// (spec K1-8, W5). Cargo's own configuration variables (`CARGO_TARGET_DIR`, `CARGO_LOG`,
/// `CARGO_BUILD_*`, ...) are left out: what they change reaches rustc through argv.
pub fn is_keyed_env(name: &str) -> bool {
    matches!(
        name,
        "CARGO"
            | "CARGO_CRATE_NAME"
            | "CARGO_PRIMARY_PACKAGE"
            | "CARGO_SBOM_PATH"
            | "CARGO_TARGET_TMPDIR"
            | "CARGO_RUSTC_CURRENT_DIR"
            | "RUSTC_BOOTSTRAP"
            | "RUSTC_FORCE_RUSTC_VERSION"
    ) || name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || name.starts_with("CARGO_BIN_")
}

/// Environment variables the linker reads (spec K5).
const LINKER_ENV: &[&str] = &["LIBRARY_PATH", "COMPILER_PATH", "GCC_EXEC_PREFIX"];

pub(crate) fn digest_only(fs: &dyn FsView, p: &Path) -> Result<Digest, HashError> {
    fs.digest(p).map(|(d, _)| d)
}

fn hash_err(e: HashError) -> KeyError {
    KeyError::Uncacheable(Uncacheable::new("unreadable input", e.to_string()))
}

/// Parses and keys a rustc invocation. `argv[0]` is the rustc path.
pub fn prepare(inp: &KeyInputs<'_>) -> Result<RustcJob, KeyError> {
    prepare_parsed(inp, parse_invocation(inp.argv, inp.cwd, inp.env, inp.fs)?)
}

/// Reads the arguments of a rustc invocation (`argv[0]` is rustc), argfiles expanded.
pub fn parse_invocation(
    argv: &[OsString],
    cwd: &Path,
    env: &HashMap<OsString, OsString>,
    fs: &dyn FsView,
) -> Result<RustcArgs, KeyError> {
    if env.contains_key(OsStr::new("RUSTC_LOG")) {
        return Err(Uncacheable::new("RUSTC_LOG", "RUSTC_LOG is set").into());
    }
    let expanded = args::expand_argfiles(argv.get(1..).unwrap_or(&[]), cwd, fs)?;
    Ok(args::parse(&expanded)?)
}

/// [`prepare`] with the arguments parsed already.
pub fn prepare_parsed(inp: &KeyInputs<'_>, args: RustcArgs) -> Result<RustcJob, KeyError> {
    let rustc = PathBuf::from(&inp.argv[0]);
    let identity = inp.identities.get(&rustc, inp.env, inp.cwd, inp.hashes)?;

    let root = target_root(&args, inp.cwd);
    let root_b = root.as_deref().map(|r| r.as_os_str().as_bytes());
    let cwd_b = inp.cwd.as_os_str().as_bytes();
    let home = bindings::cargo_home(inp.env);
    let home_b = home.as_deref().map(|h| h.as_os_str().as_bytes());
    let placeholders = placeholders(root_b, cwd_b, home_b);
    let norm = |v| normalize(v, &placeholders);
    let mut paths_in_values = PathsSeen::default();

    let mut h = KeyHasher::new(KEY_VERSION);
    h.digest("identity", &identity.digest);
    for name in inp.sloppiness.names() {
        h.field("sloppiness", name.as_bytes());
    }
    // The input's path reaches the crate as a value (`file!()`), unless a remapping covers
    // it: rustc then shows the replacement everywhere instead (registry crates are given
    // by absolute paths under CARGO_HOME).
    let input_remapped = {
        let input = resolve(inp.cwd, &args.input);
        let input = input.as_os_str().as_bytes();
        args.key_args.iter().any(|a| {
            a.strip_prefix(b"--remap-path-prefix=")
                .and_then(|v| v.split(|&b| b == b'=').next())
                .is_some_and(|from| {
                    let from = from.strip_suffix(b"/").unwrap_or(from);
                    !from.is_empty()
                        && input.starts_with(from)
                        && input.get(from.len()) == Some(&b'/')
                })
        })
    };
    for a in &args.key_args {
        let (n, seen) = norm(a);
        let harmless = path_argument_is_harmless(a) || (input_remapped && a.starts_with(b"input="));
        if !harmless {
            paths_in_values.add(seen);
        }
        h.field("arg", &n);
    }

    let mut env: Vec<(&OsString, &OsString)> = inp
        .env
        .iter()
        .filter(|(k, _)| k.to_str().is_some_and(is_keyed_env))
        .collect();
    env.sort();
    // Code that runs inside this compile (proc macros, loaded from `.so` externs) can read
    // the environment with `std::env::var`, which nobody records; `CARGO_MANIFEST_DIR` is
    // what proc macros read to find files. The crate's own reads (`env!`) are recorded by
    // rustc as env-deps and bind the entry when it is stored.
    let runs_proc_macros = args.externs.iter().any(|e| {
        e.path
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|x| x == "so"))
    });
    for (k, v) in env {
        h.field("env-name", k.as_bytes());
        let (n, seen) = norm(v.as_bytes());
        if runs_proc_macros {
            paths_in_values.add(seen);
        }
        h.field("env-value", &n);
    }

    // --extern contents (spec K1-5), sorted by name.
    let mut externs = Vec::new();
    let mut floor: NanoTime = 0;
    let mut ext: Vec<&args::Extern> = args.externs.iter().collect();
    ext.sort_by(|a, b| (&a.name, &a.opts).cmp(&(&b.name, &b.opts)));
    for e in ext {
        h.field("extern", format!("{}:{}", e.opts, e.name).as_bytes());
        if let Some(p) = &e.path {
            let abs = resolve(inp.cwd, p);
            let (digest, stat) = inp.fs.digest(&abs).map_err(hash_err)?;
            h.digest("extern-digest", &digest);
            floor = floor.max(stat.mtime);
            externs.push((abs, stat, digest));
        }
    }

    // Static native libraries that rustc bundles into rlibs and staticlibs (spec K1-6).
    for lib in args.native_libs.iter().filter(|l| l.kind == "static") {
        // `-l static=name:rename` links `name`; `+verbatim` names the file itself.
        let name = lib.name.split(':').next().unwrap_or(&lib.name);
        let file = if lib.modifiers.split(',').any(|m| m == "+verbatim") {
            name.to_string()
        } else {
            format!("lib{name}.a")
        };
        let found = args
            .search_paths
            .iter()
            .filter(|(kind, _)| kind == "native" || kind == "all")
            .map(|(_, dir)| resolve(inp.cwd, &dir.join(&file)))
            .find(|p| inp.fs.is_file(p));
        let Some(path) = found else {
            return Err(Uncacheable::new(
                "static lib not found",
                format!("{file} not in any -L native dir"),
            )
            .into());
        };
        let digest = digest_only(inp.fs, &path).map_err(hash_err)?;
        h.field("static-lib", file.as_bytes());
        h.digest("static-lib-digest", &digest);
    }

    // Target: a JSON spec is keyed by content; the std libs of the target by listing.
    let target = args.target.clone().unwrap_or_else(|| identity.host.clone());
    if target.ends_with(".json") {
        let digest =
            digest_only(inp.fs, &resolve(inp.cwd, Path::new(&target))).map_err(hash_err)?;
        h.digest("target-json", &digest);
    } else {
        h.digest(
            "target-libs",
            &inp.identities.target_libs(&identity.sysroot, &target),
        );
    }

    for p in &args.profile_use {
        let digest = digest_only(inp.fs, &resolve(inp.cwd, p)).map_err(hash_err)?;
        h.digest("profile-use", &digest);
    }

    if args.native_cpu {
        h.field("host-cpu", host_cpu().as_bytes());
    }

    if args.runs_linker() {
        // The linker's identity and environment (spec K5). Its inputs are recorded from its
        // dependency file after the compile.
        let linker = args.linker.clone().unwrap_or_else(|| PathBuf::from("cc"));
        let resolved = crate::masquerade::resolve_program(&linker, inp.env, inp.cwd)
            .ok_or_else(|| Uncacheable::new("linker not found", linker.display().to_string()))?;
        let digest = digest_only(inp.fs, &resolved).map_err(hash_err)?;
        h.field("linker", linker.as_os_str().as_bytes());
        h.digest("linker-digest", &digest);
        if let Some(ld) = crate::masquerade::resolve_program(Path::new("ld"), inp.env, inp.cwd)
            && let Ok(d) = digest_only(inp.fs, &ld)
        {
            h.digest("ld-digest", &d);
        }
        for name in LINKER_ENV {
            if let Some(v) = inp.env.get(OsStr::new(name)) {
                h.field("linker-env", name.as_bytes());
                h.field("linker-env-value", v.as_bytes());
            }
        }
        for path in files_in_link_args(&args.link_args, inp.cwd, inp.fs) {
            let digest = digest_only(inp.fs, &path).map_err(hash_err)?;
            h.field("link-arg-file", path.as_os_str().as_bytes());
            h.digest("link-arg-digest", &digest);
        }
    }

    let out_dir = resolve(inp.cwd, &args.out_dir);
    Ok(RustcJob {
        args,
        cwd: inp.cwd.to_path_buf(),
        out_dir,
        identity,
        key: h.finish(),
        externs,
        inputs_mtime_floor: floor,
        target_root: root,
        paths_in_values,
    })
}

/// Files named in linker arguments (`-Wl,--version-script=x`, `-Tfoo.ld`, plain paths).
fn files_in_link_args(link_args: &[String], cwd: &Path, fs: &dyn FsView) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for a in link_args {
        let words: Vec<&str> = match a.strip_prefix("-Wl,") {
            Some(rest) => rest.split(',').collect(),
            None => vec![a.as_str()],
        };
        for w in words {
            let cand = match w.find('=') {
                Some(p) if w.starts_with('-') => &w[p + 1..],
                _ => w.strip_prefix("-T").unwrap_or(w),
            };
            if cand.starts_with('-') || !cand.contains('/') && !cand.contains('.') {
                continue;
            }
            let p = resolve(cwd, Path::new(cand));
            if fs.is_file(&p) {
                out.push(p);
            }
        }
    }
    out
}

fn host_cpu() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("model name") || line.starts_with("flags") {
            out.push_str(line);
            out.push('\n');
        }
        if line.is_empty() && !out.is_empty() {
            break;
        }
    }
    out
}

/// Reads the value of an env var from a request's env (unset is `None`).
pub fn env_value(env: &HashMap<OsString, OsString>, name: &str) -> Option<String> {
    env.get(OsStr::new(name))
        .map(|v| v.to_string_lossy().into_owned())
}

/// Context for error messages.
pub fn describe(job: &RustcJob) -> String {
    format!(
        "{}{} ({})",
        job.args.crate_name,
        job.args.extra_filename,
        job.args
            .crate_types
            .iter()
            .map(|t| format!("{t:?}"))
            .collect::<Vec<_>>()
            .join(",")
    )
}

impl RustcJob {
    pub fn output_path(&self, name: &str) -> PathBuf {
        self.out_dir.join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::collect::is_rustc_temp;
    use super::*;
    use crate::fsview::HostFs;
    use crate::fsview::fsclock::CompileStart;

    #[test]
    fn module_alternatives() {
        assert_eq!(
            module_alternative(Path::new("src/foo.rs")),
            Some(PathBuf::from("src/foo/mod.rs"))
        );
        assert_eq!(
            module_alternative(Path::new("src/foo/mod.rs")),
            Some(PathBuf::from("src/foo.rs"))
        );
        assert_eq!(
            module_alternative(Path::new("/o/a/b.rs")),
            Some(PathBuf::from("/o/a/b/mod.rs"))
        );
        assert_eq!(module_alternative(Path::new("data.bin")), None);
    }

    #[test]
    fn rustc_temps() {
        let out = Path::new("/t/deps");
        assert!(is_rustc_temp(
            Path::new("/t/deps/rustcAbC123/symbols.o"),
            out
        ));
        assert!(is_rustc_temp(
            Path::new("/t/deps/app-1.app.5a-cgu.0.rcgu.o"),
            out
        ));
        assert!(!is_rustc_temp(Path::new("/t/deps/libdep-1.rlib"), out));
        assert!(!is_rustc_temp(Path::new("/usr/lib/crt1.o"), out));
    }

    #[test]
    fn artifacts_from_stderr() {
        let stderr = b"{\"$message_type\":\"artifact\",\"artifact\":\"/o/x.d\",\"emit\":\"dep-info\"}\n\
                       {\"$message_type\":\"diagnostic\",\"message\":\"w\"}\n\
                       {\"$message_type\":\"artifact\",\"artifact\":\"/o/libx.rmeta\",\"emit\":\"metadata\"}\n";
        assert_eq!(
            artifact_paths(stderr),
            vec![PathBuf::from("/o/x.d"), PathBuf::from("/o/libx.rmeta")]
        );
    }

    #[test]
    fn keyed_env() {
        assert!(is_keyed_env("CARGO_PKG_NAME"));
        assert!(is_keyed_env("CARGO_MANIFEST_DIR"));
        assert!(is_keyed_env("CARGO"));
        assert!(!is_keyed_env("CARGO_MAKEFLAGS"));
        assert!(!is_keyed_env("CARGO_TARGET_DIR"));
        assert!(!is_keyed_env("CARGO_LOG"));
        assert!(!is_keyed_env("LD_LIBRARY_PATH"));
        assert!(!is_keyed_env("TMPDIR"));
    }

    /// A scratch project with a real rustc (the one on PATH) to compute keys with.
    struct KeyFixture {
        dir: tempfile::TempDir,
        env: HashMap<OsString, OsString>,
        hashes: HashCache,
        identities: IdentityCache,
    }

    impl KeyFixture {
        fn new() -> KeyFixture {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("src")).unwrap();
            std::fs::create_dir_all(dir.path().join("out")).unwrap();
            std::fs::write(dir.path().join("src/lib.rs"), "").unwrap();
            std::fs::write(dir.path().join("libdep.rmeta"), "dep v1").unwrap();
            let env: HashMap<OsString, OsString> = [
                ("PATH", std::env::var("PATH").unwrap()),
                ("HOME", std::env::var("HOME").unwrap_or_default()),
                ("CARGO_PKG_NAME", "demo".to_string()),
                ("CARGO_MAKEFLAGS", "-j --jobserver-fds=3,4".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
            KeyFixture {
                dir,
                env,
                hashes: HashCache::new(),
                identities: IdentityCache::new(),
            }
        }

        fn args(&self, crate_type: &str) -> Vec<OsString> {
            let out = self.dir.path().join("out");
            let dep = self.dir.path().join("libdep.rmeta");
            [
                "rustc",
                "--crate-name",
                "demo",
                "src/lib.rs",
                "--error-format=json",
                "--crate-type",
                crate_type,
                "--emit=dep-info,link",
                "--out-dir",
                out.to_str().unwrap(),
                "--extern",
                &format!("dep={}", dep.display()),
            ]
            .iter()
            .map(OsString::from)
            .collect()
        }

        fn prepare(&self, argv: &[OsString]) -> Result<RustcJob, KeyError> {
            prepare(&KeyInputs {
                argv,
                cwd: self.dir.path(),
                env: &self.env,
                hashes: &self.hashes,
                fs: &HostFs {
                    hashes: &self.hashes,
                },
                identities: &self.identities,
                sloppiness: Default::default(),
            })
        }

        fn key(&self, argv: &[OsString]) -> Digest {
            self.prepare(argv).unwrap().key
        }
    }

    #[test]
    fn companions_are_stored_only_when_this_compile_wrote_them() {
        let f = KeyFixture::new();
        let mut job = f.prepare(&f.args("cdylib")).unwrap();
        job.args.target = Some("x86_64-pc-windows-msvc".into());
        let out = f.dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        // A leftover of an earlier compile, an hour old.
        let stale = out.join("demo.pdb");
        std::fs::write(&stale, b"old pdb").unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let start = CompileStart {
            time: crate::fsutil::KernelClock::open(&f.dir.path().join("clock"))
                .unwrap()
                .now()
                .unwrap(),
            stamps: Vec::new(),
        };
        for n in ["demo.d", "demo.dll", "demo.dll.lib"] {
            std::fs::write(out.join(n), n).unwrap();
        }
        let fs = HostFs { hashes: &f.hashes };
        let names = output_names(&job, &fs, b"", &start).unwrap();
        assert_eq!(names, vec!["demo.d", "demo.dll", "demo.dll.lib"]);
    }

    #[test]
    fn cargo_home_is_a_placeholder_in_the_key() {
        let mut f = KeyFixture::new();
        let with_home = |f: &mut KeyFixture, home: &str| {
            f.env.insert("CARGO_HOME".into(), home.into());
            let mut argv = f.args("lib");
            argv.push(format!("--remap-path-prefix={home}=/cargo-home").into());
            argv.push(format!("--cfg=home=\"{home}/x\"").into());
            let job = f.prepare(&argv).unwrap();
            (job.key, job.paths_in_values)
        };
        let (a, seen) = with_home(&mut f, "/home/alice/.cargo");
        let (b, _) = with_home(&mut f, "/home/bob/.cargo");
        assert_eq!(a, b, "the home is not in the key");
        assert!(seen.cargo_home, "a --cfg holding it binds the entry to it");
        let mut argv = f.args("lib");
        argv.push("--remap-path-prefix=/home/bob/.cargo=/cargo-home".into());
        assert!(
            !f.prepare(&argv).unwrap().paths_in_values.cargo_home,
            "remapping is harmless"
        );

        // An input given by its absolute path reaches the crate (`file!()`), unless a
        // remapping covers it.
        let abs = f.dir.path().join("src/lib.rs");
        let mut argv = f.args("lib");
        argv[3] = abs.clone().into();
        assert!(f.prepare(&argv).unwrap().paths_in_values.cwd);
        argv.push(format!("--remap-path-prefix={}=/src", f.dir.path().display()).into());
        assert!(!f.prepare(&argv).unwrap().paths_in_values.cwd);
    }

    #[test]
    fn key_follows_externs_env_and_linker_but_not_noise() {
        let mut f = KeyFixture::new();
        let lib = f.args("lib");
        let base = f.key(&lib);
        assert_eq!(f.key(&lib), base, "stable");

        // An extern's content is keyed, its path is not.
        std::fs::write(f.dir.path().join("libdep.rmeta"), "dep v2").unwrap();
        let changed = f.key(&lib);
        assert_ne!(changed, base);
        std::fs::write(f.dir.path().join("libdep.rmeta"), "dep v1").unwrap();
        assert_eq!(f.key(&lib), base);
        std::fs::copy(
            f.dir.path().join("libdep.rmeta"),
            f.dir.path().join("libdep-copy.rmeta"),
        )
        .unwrap();
        let mut moved = lib.clone();
        moved[11] = format!("dep={}", f.dir.path().join("libdep-copy.rmeta").display()).into();
        assert_eq!(f.key(&moved), base);

        // Cargo's package env is keyed; its jobserver and unrelated vars are not.
        f.env.insert("CARGO_PKG_NAME".into(), "other".into());
        assert_ne!(f.key(&lib), base);
        f.env.insert("CARGO_PKG_NAME".into(), "demo".into());
        f.env
            .insert("CARGO_MAKEFLAGS".into(), "-j --jobserver-fds=9,10".into());
        f.env.insert("TMPDIR".into(), "/elsewhere".into());
        f.env.insert("CARGO_TARGET_DIR".into(), "/elsewhere".into());
        assert_eq!(f.key(&lib), base);
        f.env.insert("RUSTC_BOOTSTRAP".into(), "1".into());
        assert_ne!(f.key(&lib), base);
        f.env.remove(OsStr::new("RUSTC_BOOTSTRAP"));

        // A linked crate keys the linker by content and the linker's environment.
        let bin = f.args("bin");
        let bin_key = f.key(&bin);
        f.env.insert("LIBRARY_PATH".into(), "/opt/lib".into());
        assert_ne!(f.key(&bin), bin_key);
        assert_eq!(f.key(&lib), base, "a lib does not run the linker");
        f.env.remove(OsStr::new("LIBRARY_PATH"));
        let fake = f.dir.path().join("bin");
        std::fs::create_dir_all(&fake).unwrap();
        std::fs::write(fake.join("cc"), "#!/bin/sh\nexec /usr/bin/cc \"$@\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(fake.join("cc"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
        f.env.insert("PATH".into(), path.into());
        assert_ne!(f.key(&bin), bin_key, "another cc on PATH");
        assert_eq!(f.key(&lib), base);

        // RUSTC_LOG makes the compile uncacheable.
        f.env.insert("RUSTC_LOG".into(), "debug".into());
        let err = f.prepare(&lib).unwrap_err();
        assert!(matches!(err, KeyError::Uncacheable(u) if u.reason == "RUSTC_LOG"));
    }

    #[test]
    fn static_native_libs_are_keyed_by_content() {
        let f = KeyFixture::new();
        std::fs::write(f.dir.path().join("libfoo.a"), "archive v1").unwrap();
        let mut args = f.args("lib");
        args.extend(["-l", "static=foo", "-L"].iter().map(OsString::from));
        args.push(format!("native={}", f.dir.path().display()).into());
        let k1 = f.key(&args);
        std::fs::write(f.dir.path().join("libfoo.a"), "archive v2").unwrap();
        assert_ne!(f.key(&args), k1);
        std::fs::remove_file(f.dir.path().join("libfoo.a")).unwrap();
        let err = f.prepare(&args).unwrap_err();
        assert!(matches!(err, KeyError::Uncacheable(u) if u.reason == "static lib not found"));
    }

    #[test]
    fn paths_given_as_values_bind() {
        let mut f = KeyFixture::new();
        let d = f.dir.path().to_path_buf();
        std::fs::create_dir_all(d.join("target/debug/deps")).unwrap();
        let base: Vec<OsString> = f
            .args("lib")
            .into_iter()
            .map(|a| {
                // The out-dir in a target dir, as cargo lays it out.
                if a == d.join("out").as_os_str() {
                    d.join("target/debug/deps").into_os_string()
                } else {
                    a
                }
            })
            .chain([
                "-L".into(),
                format!("dependency={}", d.join("target/debug/deps").display()).into(),
            ])
            .collect();
        let seen = |f: &KeyFixture, extra: &[String]| {
            let mut argv = base.clone();
            argv.extend(extra.iter().map(OsString::from));
            f.prepare(&argv).unwrap().paths_in_values
        };
        assert_eq!(seen(&f, &[]), PathsSeen::default());
        let cfg = format!("x=\"{}\"", d.join("target").display());
        assert!(seen(&f, &["--cfg".into(), cfg]).target, "a --cfg value");
        let remap = format!("--remap-path-prefix={}=/src", d.display());
        assert!(!seen(&f, &[remap]).cwd, "remapping is harmless");
        // CARGO_MANIFEST_DIR names the checkout: it binds when a proc macro runs.
        f.env.insert(
            "CARGO_MANIFEST_DIR".into(),
            d.join("crate").into_os_string(),
        );
        assert!(
            !seen(&f, &[]).cwd,
            "no proc macro: only an env! read would bind"
        );
        std::fs::write(d.join("libpm.so"), b"proc macro").unwrap();
        let pm = format!("pm={}", d.join("libpm.so").display());
        assert!(
            seen(&f, &["--extern".into(), pm]).cwd,
            "a proc macro may read it"
        );
    }

    #[test]
    fn link_arg_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("v.map"), "x").unwrap();
        let got = files_in_link_args(
            &[
                "-Wl,--version-script=v.map".to_string(),
                "-Wl,-z,now".to_string(),
                "-lfoo".to_string(),
            ],
            dir.path(),
            &HostFs {
                hashes: &HashCache::new(),
            },
        );
        assert_eq!(got, vec![dir.path().join("v.map")]);
    }
}
