//! The few operating-system facts the portable code needs, one implementation per OS family
//! (`unix.rs`, `windows.rs`): directory handles, opening without following links, the
//! identity and times of a file.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use self::windows::*;
