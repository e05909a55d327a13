//! The daemon process: one per user and cache dir. Listens on a Unix socket (mode 0600,
//! peer uid checked), hands requests to the [`Engine`], exits when idle, when a newer client
//! replaces it, on `zcfs stop` and on SIGTERM/SIGINT. See `docs/daemon.md`.

pub mod lifecycle;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::deliver::restore::Restore;
use crate::engine::Engine;
use crate::paths::Paths;
use crate::proto::{
    self, HEADER_LEN, Header, KIND_INCOMPATIBLE, KIND_MESSAGE, KIND_OUTDATED, PROTO, Reply,
    Request, StatusInfo, Version,
};

/// A connection with no request for this long is closed.
const CONN_IDLE: Duration = Duration::from_secs(120);
/// How long a starting daemon waits for its predecessor to let go of the lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(15);

struct Shared {
    engine: Arc<Engine>,
    version: Version,
    started: Instant,
    socket: std::path::PathBuf,
    log_file: std::path::PathBuf,
    shutdown: watch::Sender<Option<String>>,
    last_activity: AtomicU64,
    in_flight: AtomicUsize,
    epoch: Instant,
    uid: u32,
}

impl Shared {
    fn touch(&self) {
        self.last_activity
            .store(self.epoch.elapsed().as_secs(), Ordering::Relaxed);
    }
    fn stop(&self, reason: String) {
        self.shutdown.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }
}

/// Closes every inherited file descriptor above stderr (the jobserver pipes of the cargo
/// that spawned our wrapper, among others).
fn close_inherited_fds() {
    // SAFETY: close_range on fds we do not own as Rust objects; runs first thing in main.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
}

/// Runs the daemon until it exits. `spawned`: started by a client (detach from its fds).
pub fn run(config: Config, reason: &str, spawned: bool) -> Result<()> {
    if spawned {
        close_inherited_fds();
        let _ = std::env::set_current_dir("/");
    }
    let paths = Paths::new(&config);
    paths.ensure_runtime_dir()?;
    let lock = lifecycle::open_lock(&paths.daemon_lock())
        .with_context(|| format!("opening {}", paths.daemon_lock().display()))?;
    if !lifecycle::lock_within(&lock, LOCK_WAIT)? {
        anyhow::bail!(
            "another zcfs daemon holds {}; not starting",
            paths.daemon_lock().display()
        );
    }

    let (log, log_path) = lifecycle::open_log(&paths);
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(log))
        .with_ansi(false)
        .with_env_filter(filter)
        .with_thread_names(true)
        .try_init();

    let version = crate::version::current();
    info!(
        "zcfs daemon {version} starting (pid {}), cache {}, socket {}: {reason}",
        std::process::id(),
        config.cache_dir.display(),
        paths.socket().display()
    );
    lifecycle::lifecycle(&paths, &format!("start reason={reason:?}"));

    let engine = Engine::start(config.clone(), Box::new(Restore))?;

    let socket = paths.socket();
    let _ = std::fs::remove_file(&socket);
    let std_listener = std::os::unix::net::UnixListener::bind(&socket)
        .with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    let socket_ino = std::fs::metadata(&socket)?.ino();
    std_listener.set_nonblocking(true)?;

    let (tx, rx) = watch::channel(None);
    let epoch = Instant::now();
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        version,
        started: Instant::now(),
        socket: socket.clone(),
        log_file: log_path,
        shutdown: tx,
        last_activity: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        epoch,
        uid: rustix::process::getuid().as_raw(),
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .thread_name("zcfs-worker")
        .enable_all()
        .build()?;
    let exit_reason = rt.block_on(serve(shared.clone(), std_listener, rx, config.idle_timeout));

    // Remove the socket only if it is still ours (a successor may have bound a new one).
    if std::fs::metadata(&socket).map(|m| m.ino()).ok() == Some(socket_ino) {
        let _ = std::fs::remove_file(&socket);
    }
    info!("shutting down: {exit_reason}");
    engine.shutdown();
    rt.shutdown_timeout(Duration::from_secs(1));
    lifecycle::lifecycle(&paths, &format!("exit reason={exit_reason:?}"));
    drop(lock);
    Ok(())
}

async fn serve(
    shared: Arc<Shared>,
    std_listener: std::os::unix::net::UnixListener,
    mut rx: watch::Receiver<Option<String>>,
    idle: Option<Duration>,
) -> String {
    let listener = match UnixListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => return format!("cannot listen: {e}"),
    };
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .expect("SIGINT handler");
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    shared.touch();

    let reason = loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let s = shared.clone();
                    tokio::spawn(async move { connection(s, stream).await });
                }
                Err(e) => {
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = rx.changed() => {
                break rx.borrow().clone().unwrap_or_else(|| "stopped".into());
            }
            _ = sigterm.recv() => break "SIGTERM".to_string(),
            _ = sigint.recv() => break "SIGINT".to_string(),
            _ = tick.tick() => {
                let e = shared.engine.clone();
                let _ = tokio::task::spawn_blocking(move || e.housekeeping()).await;
                if let Some(idle) = idle {
                    let last = shared.last_activity.load(Ordering::Relaxed);
                    let quiet = shared.epoch.elapsed().as_secs().saturating_sub(last);
                    if quiet >= idle.as_secs()
                        && shared.in_flight.load(Ordering::Relaxed) == 0
                        && shared.engine.pending_misses() == 0
                    {
                        break format!("idle for {quiet} s");
                    }
                }
                if !shared.socket.exists() {
                    break "socket file removed".to_string();
                }
            }
        }
    };
    // Stop accepting; let requests in flight finish.
    drop(listener);
    shared.stop(reason.clone());
    let deadline = Instant::now() + DRAIN;
    while shared.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    reason
}

async fn connection(shared: Arc<Shared>, mut stream: UnixStream) {
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == shared.uid => {}
        Ok(cred) => {
            warn!("refusing connection from uid {}", cred.uid());
            return;
        }
        Err(e) => {
            warn!("cannot check peer credentials: {e}");
            return;
        }
    }
    let _fd = stream.as_raw_fd();
    loop {
        let mut hb = [0u8; HEADER_LEN];
        match tokio::time::timeout(CONN_IDLE, stream.read_exact(&mut hb)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
        let header = match Header::decode(&hb) {
            Ok(h) => h,
            Err(e) => {
                warn!("dropping a client that sent a bad frame: {e}");
                return;
            }
        };
        let mut body = vec![0u8; header.len as usize];
        match tokio::time::timeout(CONN_IDLE, stream.read_exact(&mut body)).await {
            Ok(Ok(_)) => {}
            _ => {
                warn!("dropping a client that sent a truncated frame");
                return;
            }
        }
        shared.touch();
        let newer_client = header.version > shared.version;
        if header.proto != PROTO {
            if newer_client {
                step_aside(&shared, &mut stream, header.version).await;
            } else {
                warn!("client speaks protocol {}, we speak {PROTO}", header.proto);
                let _ = write(&mut stream, shared.version, KIND_INCOMPATIBLE, None).await;
            }
            return;
        }
        let req: Request = match proto::decode(&body) {
            Ok(r) => r,
            Err(e) => {
                warn!("undecodable request: {e}");
                let _ = write(
                    &mut stream,
                    shared.version,
                    KIND_MESSAGE,
                    Some(&Reply::Error(format!("undecodable request: {e}"))),
                )
                .await;
                return;
            }
        };
        // Compiles from a newer build replace this daemon; status, stats and stop requests
        // from a newer command line are served as they are.
        if newer_client && matches!(req, Request::Compile(_)) {
            step_aside(&shared, &mut stream, header.version).await;
            return;
        }
        let reply = match req {
            Request::HitLatency { .. } => {
                let e = shared.engine.clone();
                let _ = tokio::task::spawn_blocking(move || e.handle(req)).await;
                continue;
            }
            Request::Status => Reply::Status(status(&shared)),
            Request::Shutdown => {
                let _ = write(&mut stream, shared.version, KIND_MESSAGE, Some(&Reply::Ok)).await;
                shared.stop("zcfs stop".to_string());
                return;
            }
            req => {
                shared.in_flight.fetch_add(1, Ordering::Relaxed);
                let e = shared.engine.clone();
                let r = tokio::task::spawn_blocking(move || e.handle(req)).await;
                shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                shared.touch();
                match r {
                    Ok(reply) => reply,
                    Err(e) => {
                        error!("request handler panicked: {e}");
                        Reply::Error("internal error in the daemon".into())
                    }
                }
            }
        };
        if let Err(e) = write(&mut stream, shared.version, KIND_MESSAGE, Some(&reply)).await {
            debug!("client went away before the reply: {e}");
            return;
        }
    }
}

async fn step_aside(shared: &Shared, stream: &mut UnixStream, newer: Version) {
    info!(
        "a newer client ({newer}) is here; this daemon ({}) steps aside",
        shared.version
    );
    let _ = write(stream, shared.version, KIND_OUTDATED, None).await;
    shared.stop(format!("replaced by newer version {newer}"));
}

async fn write(
    stream: &mut UnixStream,
    version: Version,
    kind: u16,
    reply: Option<&Reply>,
) -> std::io::Result<()> {
    let frame = proto::encode_frame(version, kind, reply);
    stream.write_all(&frame).await
}

fn status(shared: &Shared) -> StatusInfo {
    StatusInfo {
        pid: std::process::id(),
        version: shared.version.to_string(),
        uptime_secs: shared.started.elapsed().as_secs(),
        socket: shared.socket.display().to_string(),
        cache_dir: shared.engine.paths.cache_dir.display().to_string(),
        log_file: shared.log_file.display().to_string(),
    }
}
