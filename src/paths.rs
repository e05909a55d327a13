//! Where things live: derived from the cache dir and the runtime dir of a [`Config`].
//!
//! One daemon serves one cache dir for one user; its socket and locks are named after a
//! hash of the cache dir, so two cache dirs get two daemons.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::Config;

#[derive(Debug, Clone)]
pub struct Paths {
    pub cache_dir: PathBuf,
    pub runtime_dir: PathBuf,
    /// Short hex id of the cache dir, used in runtime file names.
    pub id: String,
}

impl Paths {
    pub fn new(config: &Config) -> Paths {
        let id = blake3::hash(config.cache_dir.as_os_str().as_encoded_bytes()).to_hex()[..16]
            .to_string();
        Paths {
            cache_dir: config.cache_dir.clone(),
            runtime_dir: config.runtime_dir.clone(),
            id,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.runtime_dir.join(format!("zcfs-{}.sock", self.id))
    }
    /// Held (flock) by the live daemon for its whole life.
    pub fn daemon_lock(&self) -> PathBuf {
        self.runtime_dir.join(format!("zcfs-{}.lock", self.id))
    }
    /// Serializes clients that start or replace a daemon.
    pub fn start_lock(&self) -> PathBuf {
        self.runtime_dir.join(format!("zcfs-{}.start", self.id))
    }
    /// Scratch space of the wrapper (linker dependency files).
    pub fn scratch_dir(&self) -> PathBuf {
        self.runtime_dir.join(format!("zcfs-{}.scratch", self.id))
    }
    /// Log of clients that could not reach a daemon.
    pub fn client_log(&self) -> PathBuf {
        self.runtime_dir
            .join(format!("zcfs-{}.client.log", self.id))
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.cache_dir.join("logs")
    }
    pub fn lifecycle_log(&self) -> PathBuf {
        self.logs_dir().join("lifecycle.log")
    }
    pub fn packs_dir(&self) -> PathBuf {
        self.cache_dir.join("packs")
    }
    pub fn manifests_dir(&self) -> PathBuf {
        self.cache_dir.join("manifests")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.cache_dir.join("tmp")
    }
    pub fn stats_file(&self) -> PathBuf {
        self.cache_dir.join("stats.json")
    }
    pub fn lru_file(&self) -> PathBuf {
        self.cache_dir.join("lru.bin")
    }
    pub fn identity_cache_file(&self) -> PathBuf {
        self.cache_dir.join("compilers.bin")
    }

    /// Creates the runtime dir with mode 0700, or checks that an existing one is ours and
    /// private. A shared `/tmp` fallback must not let another user plant a socket.
    pub fn ensure_runtime_dir(&self) -> Result<()> {
        ensure_private_dir(&self.runtime_dir)
    }
}

pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let meta = fs::symlink_metadata(dir).with_context(|| format!("checking {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    check_owner(dir, &meta)
}

/// On Windows the runtime directory is under the user's profile (`%LOCALAPPDATA%`), private
/// by its inherited ACL.
#[cfg(windows)]
fn check_owner(_dir: &Path, _meta: &fs::Metadata) -> Result<()> {
    Ok(())
}

#[cfg(unix)]
fn check_owner(dir: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let uid = rustix::process::getuid().as_raw();
    if meta.uid() != uid {
        bail!(
            "{} belongs to uid {}, not to us (uid {uid}); refusing to use it",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}
