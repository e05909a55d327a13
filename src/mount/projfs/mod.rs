//! The ProjFS mount model (Windows' Projected File System): ProjFS presents a mount's
//! projections in the directory itself (the virtualization root), as placeholders that it
//! fills from the provider on first read and turns into full files on first write. The
//! model is portable and tested on any host against a model of ProjFS; the channel that
//! binds it to the real ProjFS is `platform/projfs` (Windows).
//!
//! - `api.rs`: the narrow interface to ProjFS ([`api::ProjFs`]) that the channel
//!   implements, so that the provider's logic runs against a model of ProjFS (`fake.rs`);
//! - `provider.rs` (with `callbacks.rs`): the path-keyed model of projections, ProjFS's
//!   callbacks and the engine's requests ([`provider::Provider`], a [`MountCore`]);
//! - `content.rs`: the content id placeholders carry;
//! - `guid.rs`: the virtualization instance id, kept per mounted directory;
//! - `mod.rs`: the [`Channel`] that attaches a provider to a directory, over whatever
//!   starts ProjFS ([`Starter`]).

pub mod api;
pub mod content;
#[cfg(test)]
mod fake;
pub mod guid;
pub mod provider;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::mount::contract::{
    AttachSpec, Attached, Channel, ForeignMount, MountCore, ReleaseError, Session,
};
pub use crate::projection::relpath::fold_name as fold;
use crate::store::pack::PackSource;
use api::{Guid, ProjFs};
use provider::Provider;

/// Starts ProjFS over a root with a provider: returns the interface the provider calls
/// (`sys::start` on Windows, the model of ProjFS in the tests).
pub type Starter =
    dyn Fn(&Path, Guid, Arc<dyn ProviderSlot>) -> std::io::Result<Arc<dyn ProjFs>> + Send + Sync;

/// Where ProjFS's callbacks find the provider (set once the provider exists: ProjFS must
/// be running before the provider can reconcile what is on disk).
pub trait ProviderSlot: Send + Sync {
    fn get(&self) -> Option<Arc<Provider>>;
}

/// The slot the backend hands to ProjFS.
#[derive(Default)]
pub struct Slot(Mutex<Option<Arc<Provider>>>);

impl ProviderSlot for Slot {
    fn get(&self) -> Option<Arc<Provider>> {
        self.0.lock().clone()
    }
}

/// A mounted directory's provider and the slot ProjFS's callbacks reach it through.
type Live = (Arc<Provider>, Arc<Slot>);

pub struct ProjFsChannel {
    start: Box<Starter>,
    live: Mutex<HashMap<PathBuf, Live>>,
}

struct ProjFsSession {
    provider: Arc<Provider>,
    running: Arc<std::sync::atomic::AtomicBool>,
}

impl Session for ProjFsSession {
    fn running(&self) -> bool {
        self.running.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn join(self: Box<Self>, _max: std::time::Duration) -> bool {
        drop(self.provider);
        true
    }
}

impl ProjFsChannel {
    /// The backend over any ProjFS (the fake, in tests).
    pub fn with_starter(start: Box<Starter>) -> ProjFsChannel {
        ProjFsChannel {
            start,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// The provider serving `dir`, if mounted.
    pub fn provider(&self, dir: &Path) -> Option<Arc<Provider>> {
        self.live.lock().get(dir).map(|(p, _)| p.clone())
    }
}

impl Channel for ProjFsChannel {
    fn name(&self) -> &'static str {
        "ProjFS"
    }

    /// ProjFS leaves nothing that blocks a new start: a crashed provider's placeholders are
    /// reconciled by the next one (same instance id).
    fn clean_stale(&self, _dir: &Path) -> std::io::Result<usize> {
        Ok(0)
    }

    fn is_stale(&self, _dir: &Path) -> bool {
        false
    }

    fn zcfs_mounts_at(&self, _dir: &Path) -> Vec<ForeignMount> {
        Vec::new()
    }

    /// ProjFS keeps no machine-wide table of virtualization roots (Linux has mountinfo): the
    /// daemon's own list (`zcfs status`) is the one there is.
    fn my_mounts(&self) -> Vec<(PathBuf, ForeignMount)> {
        Vec::new()
    }

    fn attach(&self, spec: &AttachSpec<'_>, packs: &dyn PackSource) -> anyhow::Result<Attached> {
        let guid = guid::load_or_create(spec.state)?;
        let slot = Arc::new(Slot::default());
        let api = (self.start)(spec.dir, guid, slot.clone())?;
        let (provider, report) = Provider::new(
            api.clone(),
            spec.dir,
            Some(spec.state),
            std::process::id(),
            packs,
        )
        .inspect_err(|_| api.stop())?;
        *slot.0.lock() = Some(provider.clone());
        // Until now callbacks found no provider and answered "not found", which ProjFS may
        // have cached: forget that, so the journal's projections show.
        if let Err(e) = api.clear_negative_path_cache() {
            tracing::warn!("clearing ProjFS's negative path cache: {e}");
        }
        provider.start_queue();
        self.live
            .lock()
            .insert(spec.dir.to_path_buf(), (provider.clone(), slot));
        Ok(Attached {
            core: provider.clone() as Arc<dyn MountCore>,
            session: Box::new(ProjFsSession {
                provider,
                running: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            }),
            report,
        })
    }

    /// Removes the placeholders (hydrated ones too: the journal re-projects them at the
    /// next start), makes the directories ordinary and stops ProjFS. There is no "busy":
    /// open handles keep what they opened.
    fn release(&self, dir: &Path, _lazy: bool) -> Result<(), ReleaseError> {
        let p = self.live.lock().remove(dir);
        match p {
            Some((p, slot)) => {
                p.shutdown();
                // Late callbacks find no provider; the provider and its packs can go.
                *slot.0.lock() = None;
                Ok(())
            }
            None => Err(ReleaseError::Io(std::io::Error::other(format!(
                "{} is not virtualized by this daemon",
                dir.display()
            )))),
        }
    }

    fn holders(&self, _dir: &Path) -> Vec<String> {
        Vec::new()
    }

    fn source_for(&self, socket: &Path) -> String {
        format!("zcfs@{}", socket.display())
    }
}
