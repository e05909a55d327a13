//! OS channels: thin adapters from a kernel protocol to a mount model of `crate::mount`
//! (FUSE to the overlay, ProjFS to the provider) over the contract in
//! `crate::mount::contract`. The entry point picks one with [`channel`]; nothing in the core
//! names a module here.

#[cfg(target_os = "linux")]
pub mod fuse;
pub mod projfs;

use std::sync::Arc;

use crate::mount::contract::Channel;

/// The mount channel of this operating system.
pub fn channel() -> Arc<dyn Channel> {
    #[cfg(target_os = "linux")]
    return Arc::new(fuse::FuseChannel);
    // The ProjFS provider's logic is tested against a model of ProjFS; its binding is only
    // type-checked (docs/windows.md).
    #[cfg(windows)]
    return Arc::new(projfs::channel());
    #[cfg(not(any(target_os = "linux", windows)))]
    return Arc::new(crate::mount::contract::NoChannel(
        "zcfs cannot mount on this operating system (no FUSE or ProjFS channel); hits are \
         restored as files",
    ));
}
