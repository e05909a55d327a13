//! OS mount backends: thin adapters from a kernel protocol to the portable core
//! (`crate::mount::backend`). The entry point picks one with [`backend`]; nothing in the core
//! names a module here.

#[cfg(target_os = "linux")]
pub mod fuse;
pub mod projfs;

use std::sync::Arc;

use crate::mount::backend::Backend;

/// The mount backend of this operating system.
pub fn backend() -> Arc<dyn Backend> {
    #[cfg(target_os = "linux")]
    return Arc::new(fuse::FuseBackend);
    // The ProjFS provider's logic is tested against a model of ProjFS; its binding is only
    // type-checked (docs/windows.md).
    #[cfg(windows)]
    return Arc::new(projfs::ProjFsBackend::default());
    #[cfg(not(any(target_os = "linux", windows)))]
    return Arc::new(crate::mount::backend::NoBackend(
        "zcfs cannot mount on this operating system (no FUSE or ProjFS backend); hits are \
         restored as files",
    ));
}
