//! The daemon's local socket: a Unix-domain socket file in the private runtime directory.
//! Windows (10 1803 and later) has `AF_UNIX` too; `std` does not expose it there, the
//! `uds_windows` crate does, with the same API.
//!
//! Who may connect: on Unix the socket file is mode 0600 and each peer's uid is checked; on
//! Windows the runtime directory lies in the user's profile, private by its ACL, and there
//! is no peer credential to check.

use std::io;
use std::path::Path;

#[cfg(unix)]
pub use std::os::unix::net::{UnixListener as Listener, UnixStream as Stream};
#[cfg(windows)]
pub use uds_windows::{UnixListener as Listener, UnixStream as Stream};

/// Binds a fresh socket at `path` (replacing a leftover one), reachable by this user only.
/// Returns the listener and the identity of the socket file (see [`identity`]).
pub fn bind_private(path: &Path) -> io::Result<(Listener, Option<u64>)> {
    let _ = std::fs::remove_file(path);
    let listener = Listener::bind(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok((listener, identity(path)))
}

/// What tells this socket file from one a successor bound at the same path: its inode (its
/// file id on Windows; a creation time would not do: NTFS gives a file recreated under the
/// same name within seconds its predecessor's).
pub fn identity(path: &Path) -> Option<u64> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    crate::os::link_stat(path, &meta).ok().map(|s| s.ino)
}

/// This process's user, as [`peer_is_us`] compares it.
pub fn my_uid() -> u32 {
    #[cfg(unix)]
    return rustix::process::getuid().as_raw();
    #[cfg(windows)]
    return 0;
}

/// Whether the peer of `stream` runs as user `uid` (`Err`: it cannot be told, so refuse).
pub fn peer_is_us(stream: &Stream, uid: u32) -> Result<bool, String> {
    #[cfg(unix)]
    return match rustix::net::sockopt::socket_peercred(stream) {
        Ok(cred) if cred.uid.as_raw() == uid => Ok(true),
        Ok(cred) => Err(format!("uid {}", cred.uid.as_raw())),
        Err(e) => Err(format!("cannot check peer credentials: {e}")),
    };
    #[cfg(windows)]
    {
        let _ = (stream, uid);
        Ok(true)
    }
}
