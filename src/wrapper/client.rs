//! The blocking client: connects to the daemon, starting or replacing it when needed
//! (spec: one daemon per user and cache dir; an older one is replaced, a newer one is used).
//! No async runtime: one connect, one request, one reply.

use std::io::{self, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::daemon::lifecycle;
use crate::ipc::Stream;
use crate::paths::Paths;
use crate::proto::{self, KIND_INCOMPATIBLE, KIND_MESSAGE, KIND_OUTDATED, Reply, Request, Version};

/// How long a client waits for a daemon it started to accept connections.
const START_WAIT: Duration = Duration::from_secs(30);
/// After a failed start, clients do not try again for this long (they run the compiler).
const START_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no daemon is running")]
    NoDaemon,
    #[error("the daemon (version {0}) is older than this client")]
    Outdated(Version),
    #[error("the daemon (version {0}) speaks another protocol")]
    Incompatible(Version),
    #[error("cannot start a daemon: {0}")]
    StartFailed(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(std::path::PathBuf, io::Error),
    #[error("daemon connection: {0}")]
    Io(#[from] io::Error),
    #[error("daemon reply: {0}")]
    Proto(#[from] proto::ProtoError),
}

/// One request over a fresh connection to a running daemon.
pub fn request_once(paths: &Paths, req: &Request, timeout: Duration) -> Result<Reply, ClientError> {
    request_at(&paths.socket(), req, timeout)
}

/// One request to the daemon listening at `socket` (possibly another cache dir's).
pub fn request_at(
    socket: &std::path::Path,
    req: &Request,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let mut stream = match Stream::connect(socket) {
        Ok(s) => s,
        Err(e) if no_daemon(&e, socket) => return Err(ClientError::NoDaemon),
        Err(e) => return Err(ClientError::Connect(socket.to_path_buf(), e)),
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    exchange(&mut stream, req)
}

/// Whether a failed connect means that no daemon listens: no socket file, or nobody
/// accepting on it. (Windows' `AF_UNIX` reports these with Winsock codes that `std` may
/// not map to these kinds, hence the look at the file there.)
fn no_daemon(e: &io::Error, socket: &std::path::Path) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    ) || (cfg!(windows)
        && std::fs::symlink_metadata(socket).is_err_and(|e| e.kind() == io::ErrorKind::NotFound))
}

fn exchange(stream: &mut Stream, req: &Request) -> Result<Reply, ClientError> {
    let me = crate::version::current();
    stream.write_all(&proto::encode_frame(me, KIND_MESSAGE, Some(req)))?;
    let (header, body) = proto::read_frame(stream)?;
    match header.kind {
        KIND_OUTDATED => Err(ClientError::Outdated(header.version)),
        KIND_INCOMPATIBLE => Err(ClientError::Incompatible(header.version)),
        _ => Ok(proto::decode(&body)?),
    }
}

/// Sends a request without waiting for a reply (fire and forget), on an open stream.
pub fn send_only(stream: &mut Stream, req: &Request) -> io::Result<()> {
    stream.write_all(&proto::encode_frame(
        crate::version::current(),
        KIND_MESSAGE,
        Some(req),
    ))
}

/// A request that starts or replaces the daemon as needed. Returns the open stream too, so
/// the caller can send a follow-up (`HitLatency`) on it.
pub fn call(config: &Config, paths: &Paths, req: &Request) -> Result<(Reply, Stream), ClientError> {
    let mut reason: Option<String> = None;
    for _attempt in 0..3 {
        if let Some(r) = reason.take() {
            start_daemon(config, paths, &r)?;
        }
        let mut stream = match Stream::connect(paths.socket()) {
            Ok(s) => s,
            Err(e) if no_daemon(&e, &paths.socket()) => {
                reason = Some("no daemon was running".to_string());
                continue;
            }
            Err(e) => return Err(ClientError::Connect(paths.socket(), e)),
        };
        stream.set_read_timeout(Some(config.client_timeout))?;
        stream.set_write_timeout(Some(config.client_timeout))?;
        match exchange(&mut stream, req) {
            Ok(reply) => return Ok((reply, stream)),
            Err(ClientError::Outdated(v)) => {
                reason = Some(format!("replacing an older daemon (version {v})"));
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Err(ClientError::StartFailed(
        "the daemon did not come up".into(),
    ))
}

fn start_fail_marker(paths: &Paths) -> std::path::PathBuf {
    paths
        .runtime_dir
        .join(format!("zcfs-{}.startfail", paths.id))
}

/// Starts a daemon, unless another client already did. Serialized by the start lock; waits
/// until the daemon accepts connections.
pub fn start_daemon(config: &Config, paths: &Paths, reason: &str) -> Result<(), ClientError> {
    paths
        .ensure_runtime_dir()
        .map_err(|e| ClientError::StartFailed(format!("{e:#}")))?;
    let marker = start_fail_marker(paths);
    if let Ok(meta) = std::fs::metadata(&marker) {
        let recent = meta
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < START_BACKOFF);
        if recent {
            let why = std::fs::read_to_string(&marker).unwrap_or_default();
            return Err(ClientError::StartFailed(format!(
                "a recent start failed ({}); not retrying yet",
                why.trim()
            )));
        }
    }
    let lock = lifecycle::open_lock(&paths.start_lock())?;
    if !lifecycle::lock_within(&lock, START_WAIT)? {
        return Err(ClientError::StartFailed(
            "timed out waiting for the start lock".into(),
        ));
    }
    // Someone else may have started a daemon while we waited for the lock.
    if socket_accepts(paths) {
        return Ok(());
    }
    let reason = if lifecycle::is_locked(&paths.daemon_lock()) {
        format!("{reason}; the previous daemon is still exiting")
    } else {
        reason.to_string()
    };
    let exe = std::env::current_exe()
        .map_err(|e| ClientError::StartFailed(format!("cannot find our executable: {e}")))?;
    let mut cmd = Command::new(&exe);
    cmd.arg("daemon")
        .arg("--spawned")
        .arg("--reason")
        .arg(&reason)
        .env("ZCFS_DIR", &config.cache_dir)
        .env("ZCFS_RUNTIME_DIR", &config.runtime_dir)
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The daemon gets its own session, so a Ctrl-C of the build does not reach it.
    let mut child = crate::os::spawn_detached(&mut cmd)
        .map_err(|e| ClientError::StartFailed(format!("spawning {}: {e}", exe.display())))?;
    let deadline = Instant::now() + START_WAIT;
    loop {
        if socket_accepts(paths) {
            // Reap the child later: it lives on as the daemon. Dropping `Child` does not wait.
            let _ = std::fs::remove_file(&marker);
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            // It exited: maybe another daemon won the lock; check once more.
            if socket_accepts(paths) {
                return Ok(());
            }
            let msg = format!("daemon exited at start with {status}");
            let _ = std::fs::write(&marker, &msg);
            return Err(ClientError::StartFailed(msg));
        }
        if Instant::now() >= deadline {
            let msg = "daemon did not accept connections in time".to_string();
            let _ = std::fs::write(&marker, &msg);
            return Err(ClientError::StartFailed(msg));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn socket_accepts(paths: &Paths) -> bool {
    Stream::connect(paths.socket()).is_ok()
}

/// Appends a line to the client log (used when no daemon can be reached): in the runtime
/// dir, or in the cache dir's `logs/` when the runtime dir is unusable.
pub fn log(paths: &Paths, msg: &str) {
    use std::fs::OpenOptions;
    let line = format!(
        "{} pid={} {msg}\n",
        crate::util::fmt_utc(crate::util::unix_now()),
        std::process::id()
    );
    let append = |p: &std::path::Path| -> io::Result<()> {
        if std::fs::metadata(p).is_ok_and(|m| m.len() > 1 << 20) {
            let _ = std::fs::remove_file(p);
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)?
            .write_all(line.as_bytes())
    };
    let primary = paths
        .ensure_runtime_dir()
        .map_err(io::Error::other)
        .and_then(|()| append(&paths.client_log()));
    if primary.is_err() {
        let dir = paths.logs_dir();
        let _ = std::fs::create_dir_all(&dir);
        let _ = append(&dir.join("client.log"));
    }
}
