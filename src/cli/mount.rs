//! The client side of mounting, shared by `zcfs mount`, `zcfs unmount`, `zcfs status` and
//! `zcfs cargo`: resolving the directory, asking the daemon that serves a mount (this cache
//! dir's, or whichever daemon the mount's source names, `zcfs@<socket>`), and removing a
//! dead mount (its daemon gone: every access fails with ENOTCONN) without any daemon.

use crate::os::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::mount::contract::{Channel, ReleaseError};
use crate::paths::Paths;
use crate::proto::{Bytes, Reply, Request};
use crate::proto::{MountOptions, Mounted, Unmounted};
use crate::wrapper::client::{self, ClientError};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Whether this process's working directory is at or below `dir` (canonical) but is not
/// what its path names now: it was entered before `dir` was mounted, and the mount hides it.
pub fn cwd_below(dir: &Path) -> bool {
    let Ok(cwd) = std::env::current_dir() else {
        return false;
    };
    cwd.starts_with(dir)
        && crate::os::cwd_identity().is_some_and(|here| {
            crate::os::path_stat(&cwd, None).is_ok_and(|named| (named.dev, named.ino) != here)
        })
}

/// The absolute path of a mount directory (default `./target`), created if `create` and
/// missing. A dead mount cannot be canonicalized (ENOTCONN), so only its parent is.
pub fn dir_arg(dir: Option<PathBuf>, create: bool) -> Result<PathBuf> {
    let d = dir.unwrap_or_else(|| PathBuf::from("target"));
    let abs = if d.is_absolute() {
        d
    } else {
        std::env::current_dir()?.join(d)
    };
    let mut clean = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            other => clean.push(other),
        }
    }
    let missing = matches!(
        std::fs::symlink_metadata(&clean),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound
    );
    if create && missing {
        std::fs::create_dir_all(&clean).with_context(|| format!("creating {}", clean.display()))?;
    }
    match clean.canonicalize() {
        Ok(c) => Ok(c),
        Err(e) if crate::os::is_disconnected(&e) => {
            let parent = clean.parent().unwrap_or(Path::new("/")).canonicalize()?;
            Ok(parent.join(clean.file_name().unwrap_or_default()))
        }
        Err(e) => Err(anyhow::anyhow!("{}: {e}", clean.display())),
    }
}

/// Mounts `dir` (absolute, canonical) through this cache dir's daemon, starting it if
/// needed. A dead mount there is cleaned by the daemon first.
pub fn mount(config: &Config, paths: &Paths, dir: &Path, opts: MountOptions) -> Result<Mounted> {
    let req = Request::Mount {
        dir: Bytes(dir.as_os_str().as_bytes().to_vec()),
        opts,
    };
    match client::call(config, paths, &req)?.0 {
        Reply::Mounted(m) => Ok(m),
        Reply::Error(e) => bail!("{e}"),
        other => bail!("unexpected reply: {other:?}"),
    }
}

/// Unmounts the zcfs mount of this user at `dir`, whichever daemon serves it: that daemon
/// is asked (it unmounts, materializes if asked, and keeps the journal); a dead mount is
/// removed here; a live mount whose daemon cannot be reached is unmounted here (lazily
/// with `force`).
pub fn unmount(
    channel: &dyn Channel,
    paths: &Paths,
    dir: &Path,
    force: bool,
    materialize: bool,
) -> Result<Unmounted> {
    let mut at = channel.zcfs_mounts_at(dir);
    at.retain(|m| m.mine);
    let Some(top) = at.last() else {
        bail!("{} is not a zcfs mount of this user", dir.display());
    };
    if channel.is_stale(dir) {
        let n = channel.clean_stale(dir)?;
        if n == 0 {
            bail!("cannot remove the dead mount at {}", dir.display());
        }
        return Ok(Unmounted {
            dir: dir.display().to_string(),
            materialized: 0,
            lazy: true,
            stale: n as u64,
        });
    }
    let socket = top.socket.clone().unwrap_or_else(|| paths.socket());
    let req = Request::Unmount {
        dir: Bytes(dir.as_os_str().as_bytes().to_vec()),
        force,
        materialize,
    };
    match client::request_at(&socket, &req, TIMEOUT) {
        Ok(Reply::Unmounted(u)) => Ok(u),
        Ok(Reply::Error(e)) => bail!("{e}"),
        Ok(other) => bail!("unexpected reply: {other:?}"),
        // Its daemon cannot be asked (gone, or another protocol): unmount it here; the
        // daemon, if any, sees its session end.
        Err(ClientError::NoDaemon | ClientError::Incompatible(_) | ClientError::Connect(..)) => {
            if materialize {
                bail!(
                    "{} is served by a daemon zcfs cannot reach ({}); its projections cannot \
                     be materialized",
                    dir.display(),
                    socket.display()
                );
            }
            let lazy = match channel.release(dir, false) {
                Ok(()) => false,
                Err(ReleaseError::Busy) if force => {
                    channel
                        .release(dir, true)
                        .with_context(|| format!("unmounting {}", dir.display()))?;
                    true
                }
                Err(ReleaseError::Busy) => {
                    bail!("unmounting {}: the directory is busy", dir.display())
                }
                Err(ReleaseError::Io(e)) => {
                    return Err(e).with_context(|| format!("unmounting {}", dir.display()));
                }
            };
            Ok(Unmounted {
                dir: dir.display().to_string(),
                materialized: 0,
                lazy,
                stale: 0,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// One zcfs mount of this user, as `zcfs status` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub dir: String,
    /// The socket of the daemon that serves it, if its source says.
    pub socket: Option<String>,
    /// Served by this cache dir's daemon.
    pub ours: bool,
    /// Its daemon is gone (ENOTCONN).
    pub dead: bool,
}

/// Every zcfs mount of this user.
pub fn list(channel: &dyn Channel, paths: &Paths) -> Vec<Listed> {
    let ours = paths.socket();
    channel
        .my_mounts()
        .into_iter()
        .map(|(dir, m)| {
            let socket = m.socket;
            Listed {
                dead: channel.is_stale(&dir),
                ours: socket.as_deref() == Some(ours.as_path()),
                socket: socket.map(|s| s.display().to_string()),
                dir: dir.display().to_string(),
            }
        })
        .collect()
}
