//! The interface every remote store implements, and its errors. A backend moves bytes under
//! names zcfs computed (hex digests under a fixed layout); it never interprets them.

use std::io::Write;

/// Why a remote operation failed, as counted in stats and fed to the circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No answer within the deadline.
    Timeout,
    /// Connection refused, reset, unreachable, DNS failure.
    Connect,
    /// 401/403 (or a permission error on a shared directory).
    Auth,
    /// 5xx.
    Server,
    /// 429 or 503 with Retry-After.
    Throttled,
    /// An object larger than the cap.
    TooLarge,
    /// An answer zcfs does not understand (unexpected status, malformed reply).
    Protocol,
    /// A local I/O error while receiving or sending.
    Io,
    /// Bytes that do not decode or do not match the digest they were asked for.
    Corrupt,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Auth => "auth",
            ErrorKind::Server => "server",
            ErrorKind::Throttled => "throttled",
            ErrorKind::TooLarge => "too large",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Io => "io",
            ErrorKind::Corrupt => "corrupt",
        }
    }

    /// Whether the failure says the remote is unwell (counts toward opening the breaker),
    /// rather than something about one object.
    pub fn trips_breaker(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout | ErrorKind::Connect | ErrorKind::Server | ErrorKind::Throttled
        )
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", kind.name())]
pub struct RemoteError {
    pub kind: ErrorKind,
    pub detail: String,
}

impl RemoteError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> RemoteError {
        RemoteError {
            kind,
            detail: detail.into(),
        }
    }
}

/// What a conditional write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Stored,
    /// The object was already there (`if_absent`); nothing was written.
    Existed,
}

/// How big an operation is: decides its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// A manifest, a HEAD.
    Small,
    /// A pack.
    Large,
}

/// A remote store. Names are `/`-separated relative paths built by zcfs from hex digests.
/// Every call ends by its deadline (see [`RemoteTimeouts`]); no call retries a read.
pub trait Backend: Send + Sync {
    /// Streams an object of at most `max` bytes into `out`. `Ok(None)`: no such object.
    /// A larger object is an error of kind [`ErrorKind::TooLarge`], found before or while
    /// reading, never read whole.
    fn get(
        &self,
        name: &str,
        max: u64,
        size: Size,
        out: &mut dyn Write,
    ) -> Result<Option<u64>, RemoteError>;

    /// Whether an object exists.
    fn head(&self, name: &str) -> Result<bool, RemoteError>;

    /// Writes an object. With `if_absent`, an existing object is left as it is (where the
    /// store can tell; where it cannot, the caller checked with `head` first).
    fn put(
        &self,
        name: &str,
        bytes: &[u8],
        size: Size,
        if_absent: bool,
    ) -> Result<Put, RemoteError>;
}

/// Copies at most `max` bytes from `from` into `out`; more is [`ErrorKind::TooLarge`].
pub fn copy_capped(
    from: &mut dyn std::io::Read,
    max: u64,
    out: &mut dyn Write,
    io_kind: impl Fn(&std::io::Error) -> ErrorKind,
) -> Result<u64, RemoteError> {
    let mut buf = vec![0u8; 256 << 10];
    let mut total: u64 = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(RemoteError::new(io_kind(&e), e.to_string())),
        };
        total += n as u64;
        if total > max {
            return Err(RemoteError::new(
                ErrorKind::TooLarge,
                format!("object larger than {max} bytes"),
            ));
        }
        out.write_all(&buf[..n])
            .map_err(|e| RemoteError::new(ErrorKind::Io, format!("writing locally: {e}")))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_stops_at_the_cap() {
        let mut out = Vec::new();
        let n = copy_capped(&mut &[7u8; 100][..], 100, &mut out, |_| ErrorKind::Io).unwrap();
        assert_eq!((n, out.len()), (100, 100));
        let e = copy_capped(&mut &[7u8; 101][..], 100, &mut Vec::new(), |_| {
            ErrorKind::Io
        })
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLarge);
    }
}
