//! Compiler identity (spec K7): the `-vV` text, digests of the sysroot's shared libraries and
//! of rust-lld, computed once per toolchain and re-validated by stat.
//!
//! A rustup proxy (`~/.cargo/bin/rustc`, a link to `rustup`) is never hashed: it is resolved
//! to the toolchain it would run, with the caller's environment and directory.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;

use anyhow::{Context, Result, bail};

use crate::hash::{Digest, KeyHasher};
use crate::hashcache::{FileStat, HashCache};

#[derive(Debug)]
pub struct RustcIdentity {
    /// The real rustc binary (not a proxy).
    pub rustc: PathBuf,
    pub sysroot: PathBuf,
    pub host: String,
    pub verbose_version: String,
    /// Hash of the -vV text and the libraries' digests.
    pub digest: Digest,
}

struct Cached {
    stat: FileStat,
    identity: Arc<RustcIdentity>,
    libs: Vec<(PathBuf, FileStat)>,
}

/// A rustup proxy's resolution depends on its path, `RUSTUP_TOOLCHAIN` and the directory.
type ProxyKey = (PathBuf, Option<OsString>, PathBuf);

#[derive(Default)]
pub struct IdentityCache {
    by_path: Mutex<HashMap<PathBuf, Cached>>,
    /// (proxy path, RUSTUP_TOOLCHAIN, cwd) → real rustc.
    proxies: Mutex<HashMap<ProxyKey, PathBuf>>,
    /// A program path as given, with its stat, → the canonical path of the file it names.
    canonical: Mutex<HashMap<PathBuf, (FileStat, PathBuf)>>,
    /// (sysroot, target) → (stat of the target's lib dir, digest of its listing).
    target_libs: Mutex<HashMap<(PathBuf, String), (FileStat, Digest)>>,
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
    ) -> Result<Arc<RustcIdentity>> {
        let program = resolve_program(program, env, cwd)
            .with_context(|| format!("cannot find compiler {}", program.display()))?;
        let real = self.real_rustc(&program, env, cwd)?;
        let stat = match self.canonical.lock().get(&program) {
            // `real_rustc` just checked `program` by stat; for a real rustc that is `real`.
            Some((st, canon)) if *canon == real => *st,
            _ => FileStat::of(
                &std::fs::metadata(&real).with_context(|| format!("stat {}", real.display()))?,
            ),
        };
        {
            let map = self.by_path.lock();
            if let Some(c) = map.get(&real)
                && c.stat == stat
                && libs_unchanged(&c.libs)
            {
                return Ok(c.identity.clone());
            }
        }
        let (identity, libs) = compute(&real, hashes)?;
        let identity = Arc::new(identity);
        self.by_path.lock().insert(
            real,
            Cached {
                stat,
                identity: identity.clone(),
                libs,
            },
        );
        Ok(identity)
    }

    fn real_rustc(
        &self,
        program: &Path,
        env: &HashMap<OsString, OsString>,
        cwd: &Path,
    ) -> Result<PathBuf> {
        let now = FileStat::of(
            &std::fs::metadata(program).with_context(|| format!("stat {}", program.display()))?,
        );
        let cached = match self.canonical.lock().get(program) {
            Some((st, canon)) if *st == now => Some(canon.clone()),
            _ => None,
        };
        let canonical = match cached {
            Some(c) => c,
            None => {
                let c = std::fs::canonicalize(program)
                    .with_context(|| format!("resolving {}", program.display()))?;
                self.canonical
                    .lock()
                    .insert(program.to_path_buf(), (now, c.clone()));
                c
            }
        };
        let is_proxy = canonical
            .file_stem()
            .and_then(|s| s.to_str())
            .is_some_and(|s| s == "rustup" || s == "rustup-init");
        if !is_proxy {
            return Ok(canonical);
        }
        let key = (
            program.to_path_buf(),
            env.get(&OsString::from("RUSTUP_TOOLCHAIN")).cloned(),
            cwd.to_path_buf(),
        );
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
        let real = std::fs::canonicalize(sysroot.join("bin/rustc"))?;
        self.proxies.lock().insert(key, real.clone());
        Ok(real)
    }
}

fn libs_unchanged(libs: &[(PathBuf, FileStat)]) -> bool {
    libs.iter().all(|(p, s)| {
        std::fs::metadata(p)
            .map(|m| FileStat::of(&m) == *s)
            .unwrap_or(false)
    })
}

/// Resolves a program name through `PATH` (as the wrapper's child would).
pub fn resolve_program(
    program: &Path,
    env: &HashMap<OsString, OsString>,
    cwd: &Path,
) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if program.as_os_str().as_bytes().contains(&b'/') {
        return Some(crate::fsutil::resolve(cwd, program));
    }
    let path = env.get(&OsString::from("PATH"))?;
    for dir in std::env::split_paths(path) {
        let cand = crate::fsutil::resolve(cwd, &dir.join(program));
        if let Ok(meta) = std::fs::metadata(&cand) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Some(cand);
            }
        }
    }
    None
}

fn compute(rustc: &Path, hashes: &HashCache) -> Result<(RustcIdentity, Vec<(PathBuf, FileStat)>)> {
    let run = |args: &[&str]| -> Result<String> {
        let out = Command::new(rustc)
            .args(args)
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

    let mut h = KeyHasher::new("zcfs-rustc-identity-v1");
    h.field("vV", verbose_version.as_bytes());
    let mut libs = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(sysroot.join("lib"))
        .with_context(|| format!("listing {}/lib", sysroot.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".so"))
        })
        .collect();
    files.push(sysroot.join(format!("lib/rustlib/{host}/bin/rust-lld")));
    files.sort();
    for p in files {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let (digest, stat) = hashes
            .digest(&p)
            .with_context(|| format!("hashing {}", p.display()))?;
        h.field("lib", p.as_os_str().as_encoded_bytes());
        h.digest("lib-digest", &digest);
        libs.push((p, stat));
    }
    Ok((
        RustcIdentity {
            rustc: rustc.to_path_buf(),
            sysroot,
            host,
            verbose_version,
            digest: h.finish(),
        },
        libs,
    ))
}

impl IdentityCache {
    /// [`target_libs_digest`], cached while the directory's stat is unchanged.
    pub fn target_libs(&self, sysroot: &Path, target: &str) -> Digest {
        let dir = target_lib_dir(sysroot, target);
        let Ok(meta) = std::fs::metadata(&dir) else {
            return target_libs_digest(sysroot, target);
        };
        let stat = FileStat::of(&meta);
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
