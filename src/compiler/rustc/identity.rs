//! Compiler identity (spec K7): what the program that runs *is*, by content.
//!
//! The program named on the command line is accepted as rustc only if it is the `rustc` of
//! the sysroot it reports (`<sysroot>/bin/rustc`, same file), or a rustup proxy, which is
//! resolved to the toolchain it would run with the caller's environment and directory and
//! never hashed itself. Anything else (a shell script named `rustc`, a wrapper binary) may
//! add arguments or read files zcfs cannot see: its compiles are not cached ("compiler
//! wrapper").
//!
//! The identity is the `-vV` text and the blake3 of the rustc binary, of every shared
//! library in `<sysroot>/lib`, of the codegen backends, and of the host tools rustc runs
//! (`lib/rustlib/<host>/bin`: rust-lld and its `gcc-ld` wrappers). It is computed once per
//! toolchain and re-validated by stat on every use.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;

use anyhow::{Context, Result, anyhow, bail};

use crate::compiler::KeyError;
use crate::compiler::Uncacheable;
use crate::fsview::hashcache::HashCache;
use crate::hash::{Digest, KeyHasher};
use crate::os::FileStat;

#[derive(Debug)]
pub struct RustcIdentity {
    /// The real rustc binary (not a proxy).
    pub rustc: PathBuf,
    pub sysroot: PathBuf,
    pub host: String,
    pub verbose_version: String,
    /// Hash of the -vV text and the toolchain files' digests.
    pub digest: Digest,
}

struct Cached {
    /// The identity, or why the program is not accepted as rustc.
    identity: Result<Arc<RustcIdentity>, Uncacheable>,
    /// Every file hashed into the identity (the program first), with its stat then.
    files: Vec<(PathBuf, FileStat)>,
}

/// What decides a rustup proxy's choice of toolchain: the proxy, rustup's environment,
/// the directory, and the stat of every file rustup reads to decide (its settings, the
/// `rust-toolchain[.toml]` files from the directory up).
type ProxyKey = Digest;

/// The real rustc, and a digest of the dynamic loader's environment it runs with
/// (`LD_LIBRARY_PATH` decides which `librustc_driver` a rustc loads; cargo sets it).
type IdentityKey = (PathBuf, Digest);

#[derive(Default)]
pub struct IdentityCache {
    by_path: Mutex<HashMap<IdentityKey, Cached>>,
    proxies: Mutex<HashMap<ProxyKey, PathBuf>>,
    /// A program path as given, with its stat, → the canonical path of the file it names.
    canonical: Mutex<HashMap<PathBuf, (FileStat, PathBuf)>>,
    /// (sysroot, target) → (stat of the target's lib dir, digest of its listing).
    target_libs: Mutex<HashMap<(PathBuf, String), (FileStat, Digest)>>,
    /// Held while an identity is computed: compiles that start together (the first ones of
    /// a build) wait for one computation instead of each hashing the toolchain.
    computing: Mutex<()>,
    /// Where identities are kept across daemon restarts (`compilers.bin` in the cache dir).
    file: Mutex<Option<PathBuf>>,
}

/// An identity as kept on disk: believed while every file keeps its stat (as the hash
/// cache believes a digest), so that a restarted daemon does not hash its toolchain again.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    real: PathBuf,
    loader: Digest,
    rustc: PathBuf,
    sysroot: PathBuf,
    host: String,
    verbose_version: String,
    digest: Digest,
    /// (path, [dev, ino, size], [mtime, ctime]).
    files: Vec<(PathBuf, [u64; 3], [i128; 2])>,
}

const KEPT_MAGIC: &[u8] = b"ZCFSIDN2";
/// Identities whose files changed this recently are not kept (a change within the
/// timestamps' granularity would not show in the stat).
const KEEP_AFTER_NS: i128 = 2_000_000_000;

fn stat(p: &Path) -> Result<FileStat> {
    FileStat::of_path(p, None).with_context(|| format!("stat {}", p.display()))
}

fn is_rustup(canonical: &Path) -> bool {
    canonical
        .file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "rustup" || s == "rustup-init")
}

impl IdentityCache {
    pub fn new() -> IdentityCache {
        IdentityCache::default()
    }

    /// The identity of the rustc at `program`, as run with `env` in `cwd`.
    pub fn get(
        &self,
        program: &Path,
        env: &HashMap<OsString, OsString>,
        cwd: &Path,
        hashes: &HashCache,
    ) -> Result<Arc<RustcIdentity>, KeyError> {
        let internal = KeyError::Internal;
        let program = resolve_program(program, env, cwd).ok_or_else(|| {
            KeyError::Uncacheable(Uncacheable::new(
                "compiler not found",
                program.display().to_string(),
            ))
        })?;
        let (canonical, _) = self.canonical(&program).map_err(internal)?;
        let real = if is_rustup(&canonical) {
            self.proxy_target(&program, env, cwd).map_err(internal)?
        } else {
            canonical
        };
        let key = (real.clone(), loader_env(env, false));
        let cached = || {
            let map = self.by_path.lock();
            map.get(&key)
                .filter(|c| unchanged(&c.files))
                .map(|c| c.identity.clone().map_err(KeyError::Uncacheable))
        };
        if let Some(r) = cached() {
            return r;
        }
        let _computing = self.computing.lock();
        if let Some(r) = cached() {
            return r;
        }
        let (identity, files) = compute(&real, env, cwd, hashes).map_err(internal)?;
        // A program that is not the rustc of the sysroot it reports is a wrapper: what it
        // does before running rustc is invisible.
        let own = self
            .canonical(&identity.sysroot.join("bin/rustc"))
            .map(|(c, _)| c)
            .ok();
        let identity = if own.as_deref() == Some(real.as_path()) {
            Ok(Arc::new(identity))
        } else {
            Err(Uncacheable::new(
                "compiler wrapper",
                format!(
                    "{} is not the rustc of its sysroot {}",
                    real.display(),
                    identity.sysroot.display()
                ),
            ))
        };
        self.by_path.lock().insert(
            key,
            Cached {
                identity: identity.clone(),
                files,
            },
        );
        self.save();
        identity.map_err(KeyError::Uncacheable)
    }

    /// Keeps identities in `file` from now on, starting with those it holds.
    pub fn keep_in(&self, file: PathBuf) {
        if let Ok(Some(bytes)) = crate::util::read_capped(&file, 16 << 20)
            && let Some(kept) = bytes
                .strip_prefix(KEPT_MAGIC)
                .and_then(|b| postcard::from_bytes::<Vec<Kept>>(b).ok())
        {
            let mut map = self.by_path.lock();
            for k in kept {
                let files = k
                    .files
                    .into_iter()
                    .map(|(p, [dev, ino, size], [mtime, ctime])| {
                        (
                            p,
                            FileStat {
                                dev,
                                ino,
                                size,
                                mtime,
                                ctime,
                            },
                        )
                    })
                    .collect();
                let identity = RustcIdentity {
                    rustc: k.rustc,
                    sysroot: k.sysroot,
                    host: k.host,
                    verbose_version: k.verbose_version,
                    digest: k.digest,
                };
                map.insert(
                    (k.real, k.loader),
                    Cached {
                        identity: Ok(Arc::new(identity)),
                        files,
                    },
                );
            }
        }
        *self.file.lock() = Some(file);
    }

    fn save(&self) {
        let Some(file) = self.file.lock().clone() else {
            return;
        };
        let now = crate::fsutil::NanoTime::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i128)
                .unwrap_or(0),
        );
        let kept: Vec<Kept> = self
            .by_path
            .lock()
            .iter()
            .filter_map(|((real, loader), c)| {
                let id = c.identity.as_ref().ok()?;
                if c.files
                    .iter()
                    .any(|(_, s)| now - s.mtime.max(s.ctime) < KEEP_AFTER_NS)
                {
                    return None;
                }
                Some(Kept {
                    real: real.clone(),
                    loader: *loader,
                    rustc: id.rustc.clone(),
                    sysroot: id.sysroot.clone(),
                    host: id.host.clone(),
                    verbose_version: id.verbose_version.clone(),
                    digest: id.digest,
                    files: c
                        .files
                        .iter()
                        .map(|(p, s)| (p.clone(), [s.dev, s.ino, s.size], [s.mtime, s.ctime]))
                        .collect(),
                })
            })
            .collect();
        let mut bytes = KEPT_MAGIC.to_vec();
        bytes.extend(postcard::to_stdvec(&kept).unwrap_or_default());
        if let Err(e) = crate::fsutil::write_replacing(&file, &bytes, false) {
            tracing::debug!("cannot keep compiler identities in {}: {e}", file.display());
        }
    }

    /// The canonical path of a program (cached while its stat is unchanged), with its stat.
    fn canonical(&self, program: &Path) -> Result<(PathBuf, FileStat)> {
        let now = stat(program)?;
        if let Some((st, canon)) = self.canonical.lock().get(program)
            && *st == now
        {
            return Ok((canon.clone(), now));
        }
        let c = std::fs::canonicalize(program)
            .with_context(|| format!("resolving {}", program.display()))?;
        self.canonical
            .lock()
            .insert(program.to_path_buf(), (now, c.clone()));
        Ok((c, now))
    }

    /// The real rustc a rustup proxy runs here.
    fn proxy_target(
        &self,
        program: &Path,
        env: &HashMap<OsString, OsString>,
        cwd: &Path,
    ) -> Result<PathBuf> {
        let key = proxy_key(program, env, cwd);
        if let Some(p) = self.proxies.lock().get(&key) {
            return Ok(p.clone());
        }
        let out = Command::new(program)
            .arg("--print")
            .arg("sysroot")
            .env_clear()
            .envs(env)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("running {} --print sysroot", program.display()))?;
        if !out.status.success() {
            bail!("{} --print sysroot failed", program.display());
        }
        let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let real = std::fs::canonicalize(sysroot.join("bin/rustc"))
            .with_context(|| format!("no rustc in {}", sysroot.display()))?;
        self.proxies.lock().insert(key, real.clone());
        Ok(real)
    }
}

/// See [`ProxyKey`]. Rustup picks, in order: `RUSTUP_TOOLCHAIN`, a directory override in
/// its settings, the nearest `rust-toolchain[.toml]`, the default in its settings.
fn proxy_key(program: &Path, env: &HashMap<OsString, OsString>, cwd: &Path) -> ProxyKey {
    use crate::os::OsStrExt;
    let get = |k: &str| env.get(&OsString::from(k)).filter(|v| !v.is_empty());
    let mut h = KeyHasher::new("zcfs-rustup-proxy-v1");
    h.field("program", program.as_os_str().as_bytes());
    for k in ["RUSTUP_TOOLCHAIN", "RUSTUP_HOME", "HOME"] {
        h.field(k, get(k).map(|v| v.as_bytes()).unwrap_or(b"\0unset"));
    }
    let rustup_home = get("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| get("HOME").map(|h| Path::new(h).join(".rustup")));
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(home) = rustup_home {
        files.push(home.join("settings.toml"));
    }
    if get("RUSTUP_TOOLCHAIN").is_none() {
        h.field("cwd", cwd.as_os_str().as_bytes());
        for d in cwd.ancestors() {
            files.push(d.join("rust-toolchain.toml"));
            files.push(d.join("rust-toolchain"));
        }
    }
    for f in files {
        h.field("file", f.as_os_str().as_bytes());
        match FileStat::of_path(&f, None) {
            Ok(s) => {
                h.field("stat", &[s.ino, s.size].map(u64::to_le_bytes).concat());
                h.field("times", &[s.mtime, s.ctime].map(i128::to_le_bytes).concat());
            }
            Err(_) => {
                h.field("stat", b"absent");
            }
        }
    }
    h.finish()
}

/// A digest of the dynamic loader's variables. `LD_LIBRARY_PATH` can make a rustc load
/// another toolchain's driver; whether it did shows in the sysroot the rustc reports, so it
/// is part of the cache key only (`identity: false`). Preloaded and audit libraries change
/// what runs in ways nothing reports: they are part of the identity itself.
fn loader_env(env: &HashMap<OsString, OsString>, identity: bool) -> Digest {
    use crate::os::OsStrExt;
    let mut vars: Vec<(&OsString, &OsString)> = env
        .iter()
        .filter(|(k, _)| {
            let k = k.as_bytes();
            k.starts_with(b"LD_") && (!identity || k != b"LD_LIBRARY_PATH")
        })
        .collect();
    vars.sort();
    let mut h = KeyHasher::new("zcfs-loader-env");
    for (k, v) in vars {
        h.field("name", k.as_bytes());
        h.field("value", v.as_bytes());
    }
    h.finish()
}

fn unchanged(files: &[(PathBuf, FileStat)]) -> bool {
    files
        .iter()
        .all(|(p, s)| FileStat::of_path(p, None).is_ok_and(|now| now == *s))
}

use crate::masquerade::resolve_program;

/// Regular files under `dir` (recursively), sorted; nothing if it does not exist.
fn files_under(dir: &Path, filter: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => stack.push(p),
                Ok(m) if m.is_file() && filter(&p) => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Runs rustc as the compile would (the caller's environment and directory) to learn its
/// version and sysroot, and hashes the toolchain's files.
fn compute(
    rustc: &Path,
    env: &HashMap<OsString, OsString>,
    cwd: &Path,
    hashes: &HashCache,
) -> Result<(RustcIdentity, Vec<(PathBuf, FileStat)>)> {
    let run = |args: &[&str]| -> Result<String> {
        let out = Command::new(rustc)
            .args(args)
            .env_clear()
            .envs(env)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("running {} {}", rustc.display(), args.join(" ")))?;
        if !out.status.success() {
            bail!("{} {} failed", rustc.display(), args.join(" "));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let verbose_version = run(&["-vV"])?;
    let sysroot = PathBuf::from(run(&["--print", "sysroot"])?.trim());
    let host = verbose_version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .context("no host line in rustc -vV")?
        .to_string();

    let mut h = KeyHasher::new("zcfs-rustc-identity-v2");
    h.field("vV", verbose_version.as_bytes());
    h.digest("loader", &loader_env(env, true));
    let shared = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".so"))
    };
    let mut files = vec![rustc.to_path_buf()];
    files.extend(
        files_under(&sysroot.join("lib"), &shared)
            .into_iter()
            .filter(|p| p.parent() == Some(&sysroot.join("lib"))),
    );
    let rustlib = sysroot.join("lib/rustlib").join(&host);
    files.extend(files_under(&rustlib.join("codegen-backends"), &shared));
    files.extend(files_under(&rustlib.join("bin"), &|_| true));
    let mut recorded = Vec::with_capacity(files.len());
    for (p, r) in files.iter().zip(digest_all(hashes, &files)) {
        let (digest, stat) = r.map_err(|e| anyhow!("hashing the toolchain: {e}"))?;
        h.field("file", p.as_os_str().as_encoded_bytes());
        h.digest("file-digest", &digest);
        recorded.push((p.clone(), stat));
    }
    Ok((
        RustcIdentity {
            rustc: rustc.to_path_buf(),
            sysroot,
            host,
            verbose_version,
            digest: h.finish(),
        },
        recorded,
    ))
}

type Hashed = Result<(Digest, FileStat), crate::fsview::hashcache::HashError>;

/// Digests of `files`, in order, hashed on as many threads as there are cores: a toolchain
/// is a few large libraries (libLLVM, librustc_driver: 350 MB for Rust 1.95), hashed once
/// per machine, on the first compile, which waits for it.
fn digest_all(hashes: &HashCache, files: &[PathBuf]) -> Vec<Hashed> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Hashed>>> = files.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(p) = files.get(i) else { break };
                    *results[i].lock() = Some(hashes.digest(p));
                }
            });
        }
    });
    results
        .into_iter()
        .zip(files)
        .map(|(r, p)| {
            r.into_inner().unwrap_or_else(|| {
                Err(crate::fsview::hashcache::HashError::Io(
                    p.clone(),
                    std::io::Error::other("not hashed"),
                ))
            })
        })
        .collect()
}

impl IdentityCache {
    /// [`target_libs_digest`], cached while the directory's stat is unchanged.
    pub fn target_libs(&self, sysroot: &Path, target: &str) -> Digest {
        let dir = target_lib_dir(sysroot, target);
        let Ok(stat) = FileStat::of_path(&dir, None) else {
            return target_libs_digest(sysroot, target);
        };
        let key = (sysroot.to_path_buf(), target.to_string());
        if let Some((st, d)) = self.target_libs.lock().get(&key)
            && *st == stat
        {
            return *d;
        }
        let d = target_libs_digest(sysroot, target);
        self.target_libs.lock().insert(key, (stat, d));
        d
    }
}

fn target_lib_dir(sysroot: &Path, target: &str) -> PathBuf {
    sysroot.join("lib/rustlib").join(target).join("lib")
}

/// A digest of the names and sizes of a target's std libraries (their names carry hashes).
pub fn target_libs_digest(sysroot: &Path, target: &str) -> Digest {
    let mut names: Vec<(String, u64)> =
        std::fs::read_dir(sysroot.join("lib/rustlib").join(target).join("lib"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| {
                        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                        (e.file_name().to_string_lossy().into_owned(), len)
                    })
                    .collect()
            })
            .unwrap_or_default();
    names.sort();
    let mut h = KeyHasher::new("zcfs-target-libs");
    for (n, len) in names {
        h.field("lib", n.as_bytes());
        h.field("len", &len.to_le_bytes());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HashMap<OsString, OsString> {
        std::env::vars_os().collect()
    }

    #[test]
    fn identities_are_kept_across_restarts_while_their_files_keep_their_stat() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compilers.bin");
        let cwd = std::env::current_dir().unwrap();
        let first = IdentityCache::new();
        first.keep_in(file.clone());
        let hashes = HashCache::new();
        let id = first
            .get(Path::new("rustc"), &env(), &cwd, &hashes)
            .unwrap();
        assert!(file.exists());

        // A restarted daemon: the identity is known without hashing anything.
        let second = IdentityCache::new();
        second.keep_in(file.clone());
        let fresh = HashCache::new();
        let again = second
            .get(Path::new("rustc"), &env(), &cwd, &fresh)
            .unwrap();
        assert_eq!(again.digest, id.digest);
        assert_eq!(fresh.len(), 0, "no file was hashed");

        // A kept stat that no longer holds is not believed.
        {
            let mut map = second.by_path.lock();
            let c = map.values_mut().next().unwrap();
            c.files[0].1.ino ^= 1;
        }
        second.save();
        let third = IdentityCache::new();
        third.keep_in(file.clone());
        let hashes = HashCache::new();
        let recomputed = third
            .get(Path::new("rustc"), &env(), &cwd, &hashes)
            .unwrap();
        assert_eq!(recomputed.digest, id.digest);
        assert_ne!(hashes.len(), 0, "hashed again");

        // A damaged file is ignored.
        std::fs::write(&file, b"ZCFSIDN2\xff\xff\xff").unwrap();
        let fourth = IdentityCache::new();
        fourth.keep_in(file);
        assert!(fourth.by_path.lock().is_empty());
    }

    #[test]
    fn the_toolchain_rustc_is_accepted_and_a_script_wrapper_is_not() {
        let ids = IdentityCache::new();
        let hashes = HashCache::new();
        let cwd = std::env::current_dir().unwrap();
        let id = ids
            .get(Path::new("rustc"), &env(), &cwd, &hashes)
            .expect("rustc on PATH is identified");
        assert!(id.verbose_version.contains("host: "));
        // Cached: the same Arc on the next call.
        let again = ids.get(Path::new("rustc"), &env(), &cwd, &hashes).unwrap();
        assert!(Arc::ptr_eq(&id, &again));

        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("rustc");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nexec {} \"$@\"\n", id.rustc.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        match ids.get(&script, &env(), &cwd, &hashes) {
            Err(KeyError::Uncacheable(u)) => assert_eq!(u.reason, "compiler wrapper"),
            other => panic!("a script is not rustc: {other:?}"),
        }
    }

    #[test]
    fn proxy_key_follows_the_files_rustup_reads() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws/sub");
        std::fs::create_dir_all(&ws).unwrap();
        let mut e: HashMap<OsString, OsString> = HashMap::new();
        e.insert("HOME".into(), dir.path().join("home").into());
        let p = Path::new("/x/rustc");
        let k0 = proxy_key(p, &e, &ws);
        assert_eq!(proxy_key(p, &e, &ws), k0);
        std::fs::write(dir.path().join("ws/rust-toolchain.toml"), "[toolchain]\n").unwrap();
        let k1 = proxy_key(p, &e, &ws);
        assert_ne!(k1, k0, "a toolchain file up the tree");
        std::fs::create_dir_all(dir.path().join("home/.rustup")).unwrap();
        std::fs::write(dir.path().join("home/.rustup/settings.toml"), "x").unwrap();
        assert_ne!(proxy_key(p, &e, &ws), k1, "rustup's settings");
        // An explicit toolchain makes the directory irrelevant.
        e.insert("RUSTUP_TOOLCHAIN".into(), "stable".into());
        let k2 = proxy_key(p, &e, &ws);
        assert_eq!(proxy_key(p, &e, dir.path()), k2);
    }
}
