//! The ProjFS channel (Windows): binds the ProjFS mount model (`crate::mount::projfs`) to the
//! real Projected File System.
//!
//! - `sys.rs` (Windows only): the binding of [`crate::mount::projfs::api::ProjFs`] and of
//!   the callbacks to the real ProjFS (`PrjStartVirtualizing` and friends, through
//!   `windows-sys`). It is type-checked and linted here, never run: see docs/windows.md.
//! - `convert.rs`: the binding's pure conversions (HRESULTs, GUIDs, notifications), tested
//!   on any host.

pub mod convert;
#[cfg(windows)]
pub mod sys;

#[cfg(windows)]
use crate::mount::projfs::ProjFsChannel;

/// The ProjFS mount model over the real ProjFS.
#[cfg(windows)]
pub fn channel() -> ProjFsChannel {
    ProjFsChannel::with_starter(Box::new(sys::start))
}
