//! The daemon's mounts: mounting a directory (cleaning a stale mount first), unmounting
//! (refusing when busy unless forced, optionally materializing projections first), and the
//! list of live mounts. See `docs/mount.md`.

pub mod contract;
#[cfg(target_os = "linux")]
pub mod overlay;
pub mod projfs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use parking_lot::Mutex;
use tracing::{info, warn};

use crate::paths::Paths;
use crate::proto::{MountInfo, MountOptions, Mounted, Unmounted};
use crate::store::pack::PackSource;
use contract::{AttachSpec, ReleaseError, Session};
pub use contract::{Channel, MountCore, PathTarget, RealAt};

pub struct LiveMount {
    pub dir: PathBuf,
    pub core: Arc<dyn MountCore>,
    pub since: u64,
    session: Mutex<Option<Box<dyn Session>>>,
}

impl LiveMount {
    /// Whether the kernel still serves this mount from us.
    pub fn is_live(&self) -> bool {
        self.session.lock().as_ref().is_some_and(|s| s.running())
    }

    pub fn info(&self) -> MountInfo {
        let u = self.core.usage();
        MountInfo {
            dir: self.dir.display().to_string(),
            projections: u.projections,
            projected_bytes: u.projected_bytes,
            passthrough: self.core.passthrough(),
            opens_passthrough: u.opens_passthrough,
            opens_cached: u.opens_cached,
            copy_ups: u.copy_ups,
            bytes_served: u.bytes_served,
            real_bytes: self.core.real_bytes(),
            requests: u
                .requests
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            since: self.since,
        }
    }
}

pub struct Mounts {
    paths: Paths,
    channel: Arc<dyn Channel>,
    live: Mutex<BTreeMap<PathBuf, Arc<LiveMount>>>,
}

/// A mount's state directory: `<cache>/mounts/<hash of the dir>`.
pub fn state_dir(paths: &Paths, dir: &Path) -> PathBuf {
    let id = blake3::hash(dir.as_os_str().as_encoded_bytes()).to_hex()[..16].to_string();
    paths.cache_dir.join("mounts").join(id)
}

impl Mounts {
    pub fn new(paths: &Paths, channel: Arc<dyn Channel>) -> Mounts {
        Mounts {
            paths: paths.clone(),
            channel,
            live: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.live.lock().is_empty()
    }

    pub fn list(&self) -> Vec<MountInfo> {
        self.prune();
        self.live.lock().values().map(|m| m.info()).collect()
    }

    /// The live mount whose directory contains `path`, with the path relative to it.
    pub fn all(&self) -> Vec<Arc<LiveMount>> {
        self.live.lock().values().cloned().collect()
    }

    pub fn find(&self, path: &Path) -> Option<(Arc<LiveMount>, PathBuf)> {
        let live = self.live.lock();
        live.iter()
            .filter(|(dir, m)| path.starts_with(dir) && m.is_live())
            .max_by_key(|(dir, _)| dir.as_os_str().len())
            .map(|(dir, m)| {
                (
                    m.clone(),
                    path.strip_prefix(dir).unwrap_or(path).to_path_buf(),
                )
            })
    }

    /// If `path` leads into one of the live mounts only through a symlink (a target dir that
    /// is a link to a mounted directory), the pair (`path`, where it leads). The links are
    /// resolved one component at a time with `lstat`/`readlink`, and resolution stops as
    /// soon as it reaches a mount: the daemon never looks up anything through its own
    /// mount (docs/decisions.md, D-17).
    pub fn alias(&self, path: &Path) -> Option<(PathBuf, PathBuf)> {
        if self.is_empty() || !path.is_absolute() || self.find(path).is_some() {
            return None;
        }
        let inside = |p: &Path| self.find(p).is_some();
        let mut cur = PathBuf::from("/");
        let mut todo: std::collections::VecDeque<std::ffi::OsString> = path
            .components()
            .skip(1)
            .map(|c| c.as_os_str().to_os_string())
            .collect();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if inside(&cur) {
                cur.extend(todo.iter());
                cur.push(&c);
                break;
            }
            match c.to_str() {
                Some(".") => continue,
                Some("..") => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            let next = cur.join(&c);
            match std::fs::symlink_metadata(&next) {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    let target = std::fs::read_link(&next).ok()?;
                    if target.is_absolute() {
                        cur = PathBuf::from("/");
                    }
                    let parts: Vec<std::ffi::OsString> = target
                        .components()
                        .filter(|tc| !matches!(tc, std::path::Component::RootDir))
                        .map(|tc| tc.as_os_str().to_os_string())
                        .collect();
                    for p in parts.into_iter().rev() {
                        todo.push_front(p);
                    }
                }
                _ => cur = next,
            }
        }
        inside(&cur).then(|| (path.to_path_buf(), cur))
    }

    /// Forgets mounts whose session ended without this daemon unmounting them (an unmount
    /// by someone else); their journals are kept.
    pub fn prune(&self) {
        let dead: Vec<Arc<LiveMount>> = {
            let mut live = self.live.lock();
            let dead: Vec<PathBuf> = live
                .iter()
                .filter(|(_, m)| !m.is_live())
                .map(|(d, _)| d.clone())
                .collect();
            dead.iter().filter_map(|d| live.remove(d)).collect()
        };
        for m in dead {
            info!("{} was unmounted from outside", m.dir.display());
            self.finish(&m);
        }
    }

    /// Mounts `dir` (an absolute, canonical path).
    pub fn mount(&self, dir: &Path, opts: MountOptions, packs: &dyn PackSource) -> Result<Mounted> {
        if !dir.is_absolute() {
            bail!("mount directory must be absolute: {}", dir.display());
        }
        self.prune();
        let mut live = self.live.lock();
        if live.contains_key(dir) {
            if !self.channel.is_stale(dir) {
                return Ok(Mounted {
                    dir: dir.display().to_string(),
                    already: true,
                    cleaned_stale: 0,
                    restored: 0,
                    dropped: 0,
                });
            }
            // Our own session died: forget it.
            live.remove(dir);
        }
        // Inside one of our mounts: that mount already serves it (a target dir under a
        // mounted parent, spec M11).
        if let Some(outer) = live.keys().find(|m| dir.starts_with(m)) {
            return Ok(Mounted {
                dir: outer.display().to_string(),
                already: true,
                cleaned_stale: 0,
                restored: 0,
                dropped: 0,
            });
        }
        if let Some(inner) = live.keys().find(|m| m.starts_with(dir)) {
            bail!(
                "{} contains the zcfs mount {}; unmount it first",
                dir.display(),
                inner.display()
            );
        }
        let cleaned = self
            .channel
            .clean_stale(dir)
            .context("cleaning a stale mount")? as u64;
        if let Some(other) = self.channel.zcfs_mounts_at(dir).last() {
            bail!(
                "{} is already mounted by another zcfs daemon ({}); `zcfs unmount {}` \
                 removes it",
                dir.display(),
                other
                    .socket
                    .as_ref()
                    .map(|s| format!("socket {}", s.display()))
                    .unwrap_or_else(|| "another cache dir".into()),
                dir.display()
            );
        }
        let meta = std::fs::symlink_metadata(dir)
            .with_context(|| format!("{} does not exist", dir.display()))?;
        if !meta.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        let state = state_dir(&self.paths, dir);
        std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
        std::fs::write(state.join("dir"), dir.as_os_str().as_encoded_bytes())?;
        let attached = self
            .channel
            .attach(
                &AttachSpec {
                    dir,
                    state: &state,
                    source: self.channel.source_for(&self.paths.socket()),
                    allow_other: opts.allow_other,
                },
                packs,
            )
            .with_context(|| format!("mounting {}", dir.display()))?;
        let report = attached.report;
        info!(
            "mounted {} ({} projections restored, {} dropped)",
            dir.display(),
            report.restored,
            report.dropped_pack_gone + report.dropped_no_name
        );
        live.insert(
            dir.to_path_buf(),
            Arc::new(LiveMount {
                dir: dir.to_path_buf(),
                core: attached.core,
                since: crate::util::unix_now(),
                session: Mutex::new(Some(attached.session)),
            }),
        );
        Ok(Mounted {
            dir: dir.display().to_string(),
            already: false,
            cleaned_stale: cleaned,
            restored: report.restored,
            dropped: report.dropped_pack_gone + report.dropped_no_name,
        })
    }

    /// Unmounts `dir`. Busy: refuses and names the holders, unless `force` (lazy detach).
    pub fn unmount(&self, dir: &Path, force: bool, materialize: bool) -> Result<Unmounted> {
        self.prune();
        let m = self.live.lock().get(dir).cloned();
        let Some(m) = m else {
            // Not ours: a dead mount can still be cleaned.
            if self.channel.is_stale(dir) && !self.channel.zcfs_mounts_at(dir).is_empty() {
                let n = self.channel.clean_stale(dir)?;
                return Ok(Unmounted {
                    dir: dir.display().to_string(),
                    materialized: 0,
                    lazy: true,
                    stale: n as u64,
                });
            }
            if !self.channel.zcfs_mounts_at(dir).is_empty() {
                bail!(
                    "{} is mounted by another zcfs daemon (another cache dir?)",
                    dir.display()
                );
            }
            bail!("{} is not a zcfs mount", dir.display());
        };
        let materialized = if materialize {
            m.core
                .materialize_all()
                .map_err(|e| anyhow::anyhow!("materializing projections: {e}"))?
        } else {
            0
        };
        let mut lazy = false;
        match self.channel.release(dir, false) {
            Ok(()) => {}
            Err(ReleaseError::Busy) => {
                if !force {
                    let names = self.channel.holders(dir);
                    bail!(
                        "{} is busy{}; stop them or use --force (lazy unmount)",
                        dir.display(),
                        if names.is_empty() {
                            String::new()
                        } else {
                            format!(", used by: {}", names.join("; "))
                        }
                    );
                }
                self.channel
                    .release(dir, true)
                    .with_context(|| format!("unmounting {}", dir.display()))?;
                lazy = true;
            }
            Err(ReleaseError::Io(e)) => {
                return Err(e).with_context(|| format!("unmounting {}", dir.display()));
            }
        }
        self.finish(&m);
        self.live.lock().remove(dir);
        Ok(Unmounted {
            dir: dir.display().to_string(),
            materialized,
            lazy,
            stale: 0,
        })
    }

    /// After the kernel let go: stop the session, persist the journal.
    fn finish(&self, m: &LiveMount) {
        let session = m.session.lock().take();
        if let Some(s) = session
            && !s.join(std::time::Duration::from_secs(10))
        {
            warn!(
                "{} session of {} did not end in time",
                self.channel.name(),
                m.dir.display()
            );
        }
        m.core.persist();
    }

    /// Unmounts everything (daemon exit): lazily if busy, so no dead mount stays behind.
    pub fn unmount_all(&self) {
        let all: Vec<Arc<LiveMount>> = self.live.lock().values().cloned().collect();
        for m in all {
            let r = self
                .channel
                .release(&m.dir, false)
                .or_else(|_| self.channel.release(&m.dir, true));
            if let Err(e) = r {
                warn!("cannot unmount {}: {e}", m.dir.display());
            }
            self.finish(&m);
            self.live.lock().remove(&m.dir);
        }
    }
}
