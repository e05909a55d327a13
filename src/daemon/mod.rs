//! The daemon process: one per user and cache dir. Listens on a Unix socket (mode 0600,
//! peer uid checked), hands requests to the [`Engine`], exits when idle, when a newer client
//! replaces it, on `zcfs stop` and on SIGTERM/SIGINT. See `docs/daemon.md`.
//!
//! Threads: a fixed set of acceptor threads block in `accept()` and serve each connection in
//! place, so a request is handled by the thread the kernel woke for it (no hand-off between
//! threads on the hit path). A small tokio runtime runs the control loop: signals, the
//! housekeeping tick, idle exit, and the stop request.

pub mod lifecycle;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::deliver::restore::Restore;
use crate::engine::Engine;
use crate::ipc::{Listener, Stream};
use crate::paths::Paths;
use crate::proto::{
    self, HEADER_LEN, Header, KIND_INCOMPATIBLE, KIND_MESSAGE, KIND_OUTDATED, PROTO, Reply,
    Request, StatusInfo, Version,
};

/// A connection with no request for this long is closed.
const CONN_IDLE: Duration = Duration::from_secs(60);
/// How long a starting daemon waits for its predecessor to let go of the lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(15);

struct Shared {
    engine: Arc<Engine>,
    version: Version,
    started: Instant,
    socket: PathBuf,
    log_file: PathBuf,
    shutdown: watch::Sender<Option<String>>,
    stopping: AtomicBool,
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
    #[cfg(target_os = "linux")]
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    // Windows: the client spawns the daemon with no handle of ours to inherit
    // (`os::spawn_detached`); cargo's jobserver there is a named semaphore.
}

/// Runs the daemon until it exits. `spawned`: started by a client (detach from its fds).
pub fn run(
    config: Config,
    reason: &str,
    spawned: bool,
    channel: std::sync::Arc<dyn crate::mount::Channel>,
) -> Result<()> {
    if spawned {
        close_inherited_fds();
        // Not holding any directory of the build (a mount point among them) busy.
        let _ = std::env::set_current_dir(crate::os::neutral_dir());
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

    let fd_limit = lifecycle::raise_fd_limit();
    let version = crate::version::current();
    info!(
        "zcfs daemon {version} starting (pid {}), cache {}, socket {}, {fd_limit} open files: {reason}",
        std::process::id(),
        config.cache_dir.display(),
        paths.socket().display()
    );
    lifecycle::lifecycle(&paths, &format!("start reason={reason:?}"));

    let engine = Engine::start(config.clone(), Box::new(Restore), channel)?;

    let socket = paths.socket();
    let (listener, socket_id) = crate::ipc::bind_private(&socket)
        .with_context(|| format!("binding {}", socket.display()))?;

    let (tx, rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        version,
        started: Instant::now(),
        socket: socket.clone(),
        log_file: log_path,
        shutdown: tx,
        stopping: AtomicBool::new(false),
        last_activity: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        epoch: Instant::now(),
        uid: crate::ipc::my_uid(),
    });

    let acceptors = std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(4)
        .max(16);
    let mut threads = Vec::with_capacity(acceptors);
    for _ in 0..acceptors {
        let l = listener.try_clone()?;
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("zcfs-conn".into())
                .spawn(move || accept_loop(&s, &l))?,
        );
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let exit_reason = rt.block_on(control(shared.clone(), rx, config.idle_timeout));

    // Stop accepting: wake every acceptor with a connection it will drop; each finishes the
    // request it is serving first.
    shared.stopping.store(true, Ordering::SeqCst);
    for _ in 0..threads.len() {
        let _ = Stream::connect(&socket);
    }
    let deadline = Instant::now() + DRAIN;
    for t in threads {
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
    drop(listener);
    // Remove the socket only if it is still ours (a successor may have bound a new one).
    if socket_id.is_some() && crate::ipc::identity(&socket) == socket_id {
        let _ = std::fs::remove_file(&socket);
    }
    info!("shutting down: {exit_reason}");
    engine.mounts.unmount_all();
    engine.shutdown();
    rt.shutdown_timeout(Duration::from_secs(1));
    lifecycle::lifecycle(&paths, &format!("exit reason={exit_reason:?}"));
    drop(lock);
    Ok(())
}

/// Signals, housekeeping, idle exit; returns why the daemon stops.
async fn control(
    shared: Arc<Shared>,
    mut rx: watch::Receiver<Option<String>>,
    idle: Option<Duration>,
) -> String {
    let mut signals = crate::os::StopSignals::new().expect("signal handlers");
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    shared.touch();
    let reason = loop {
        tokio::select! {
            _ = rx.changed() => {
                break rx.borrow().clone().unwrap_or_else(|| "stopped".into());
            }
            name = signals.recv() => break name.to_string(),
            _ = tick.tick() => {
                let e = shared.engine.clone();
                let _ = tokio::task::spawn_blocking(move || e.housekeeping()).await;
                if let Some(idle) = idle {
                    let last = shared.last_activity.load(Ordering::Relaxed);
                    let quiet = shared.epoch.elapsed().as_secs().saturating_sub(last);
                    if quiet >= idle.as_secs()
                        && shared.engine.mounts.is_empty()
                        && shared.in_flight.load(Ordering::Relaxed) == 0
                        && shared.engine.pending_misses() == 0
                        && shared.engine.uploads_pending() == 0
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
    shared.stop(reason.clone());
    reason
}

fn accept_loop(shared: &Shared, listener: &Listener) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                serve(shared, stream);
            }
            Err(_) if shared.stopping.load(Ordering::SeqCst) => return,
            Err(e) => {
                warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Serves one connection: frames until EOF, an error, or shutdown.
fn serve(shared: &Shared, mut stream: Stream) {
    if let Err(who) = crate::ipc::peer_is_us(&stream, shared.uid) {
        warn!("refusing a connection: {who}");
        return;
    }
    if stream.set_read_timeout(Some(CONN_IDLE)).is_err() {
        return;
    }
    loop {
        let mut hb = [0u8; HEADER_LEN];
        if stream.read_exact(&mut hb).is_err() {
            return;
        }
        let header = match Header::decode(&hb) {
            Ok(h) => h,
            Err(e) => {
                warn!("dropping a client that sent a bad frame: {e}");
                return;
            }
        };
        let mut body = vec![0u8; header.len as usize];
        if stream.read_exact(&mut body).is_err() {
            warn!("dropping a client that sent a truncated frame");
            return;
        }
        shared.touch();
        let newer_client = header.version > shared.version;
        if header.proto != PROTO {
            if newer_client {
                step_aside(shared, &mut stream, header.version);
            } else {
                warn!("client speaks protocol {}, we speak {PROTO}", header.proto);
                let _ = write(&mut stream, shared.version, KIND_INCOMPATIBLE, None);
            }
            return;
        }
        let req: Request = match proto::decode(&body) {
            Ok(r) => r,
            Err(e) => {
                warn!("undecodable request: {e}");
                let reply = Reply::Error(format!("undecodable request: {e}"));
                let _ = write(&mut stream, shared.version, KIND_MESSAGE, Some(&reply));
                return;
            }
        };
        // Compiles from a newer build replace this daemon; status, stats and stop requests
        // from a newer command line are served as they are.
        if newer_client && matches!(req, Request::Compile(_)) {
            step_aside(shared, &mut stream, header.version);
            return;
        }
        let reply = match req {
            Request::HitLatency { .. } => {
                shared.engine.handle(req);
                continue;
            }
            Request::Status => Reply::Status(status(shared)),
            Request::Shutdown => {
                let _ = write(&mut stream, shared.version, KIND_MESSAGE, Some(&Reply::Ok));
                shared.stop("zcfs stop".to_string());
                return;
            }
            req => {
                shared.in_flight.fetch_add(1, Ordering::Relaxed);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    shared.engine.handle(req)
                }));
                shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                shared.touch();
                r.unwrap_or_else(|_| {
                    tracing::error!("request handler panicked");
                    Reply::Error("internal error in the daemon".into())
                })
            }
        };
        if let Err(e) = write(&mut stream, shared.version, KIND_MESSAGE, Some(&reply)) {
            debug!("client went away before the reply: {e}");
            return;
        }
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
    }
}

fn step_aside(shared: &Shared, stream: &mut Stream, newer: Version) {
    info!(
        "a newer client ({newer}) is here; this daemon ({}) steps aside",
        shared.version
    );
    let _ = write(stream, shared.version, KIND_OUTDATED, None);
    shared.stop(format!("replaced by newer version {newer}"));
}

fn write(
    stream: &mut Stream,
    version: Version,
    kind: u16,
    reply: Option<&Reply>,
) -> std::io::Result<()> {
    stream.write_all(&proto::encode_frame(version, kind, reply))
}

fn status(shared: &Shared) -> StatusInfo {
    StatusInfo {
        pid: std::process::id(),
        version: shared.version.to_string(),
        uptime_secs: shared.started.elapsed().as_secs(),
        socket: shared.socket.display().to_string(),
        cache_dir: shared.engine.paths.cache_dir.display().to_string(),
        log_file: shared.log_file.display().to_string(),
        mounts: shared.engine.mounts.list(),
    }
}
