//! zcfs: a local-first compiler cache whose hits are presented as files.
//!
//! The portable core lives here; OS mount backends live under `platform/`.
//! See `docs/architecture.md` for the map.

pub mod binfmt;
pub mod cli;
pub mod compiler;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod engine;
pub mod fsutil;
pub mod fsview;
pub mod hash;
pub mod ipc;
pub mod masquerade;
pub mod mount;
pub mod os;
pub mod paths;
#[path = "../platform/mod.rs"]
pub mod platform;
pub mod projection;
pub mod proto;
pub mod remote;
pub mod snapshot;
pub mod stats;
pub mod store;
pub mod util;
pub mod version;

pub mod winpath;
pub mod wrapper;
