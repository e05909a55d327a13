//! The command line: `zcfs status|stop|stats|gc|clear|config|daemon|mount|unmount|cargo|run|remote`.
//! (`zcfs <compiler> args...` is the wrapper, dispatched in `main`.)

pub mod cargo;
pub mod mount;
pub mod route;
pub mod run;
pub mod snapshot;

use crate::os::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use crate::config::{Config, human_size};
use crate::paths::Paths;
use crate::proto::{Bytes, Reply, Request};
use crate::wrapper::client::{self, ClientError};

#[derive(Parser)]
#[command(
    name = "zcfs",
    version,
    about = "A compiler cache whose hits are projected as files",
    long_about = "A compiler cache for rustc (RUSTC_WRAPPER=zcfs), gcc and clang.\n\n\
        As a wrapper: zcfs <compiler> [args...], or a link named after the compiler \
        (gcc, cc, clang++...) pointing at zcfs, first on PATH.\n\
        Configuration: ZCFS_* environment variables or ~/.config/zcfs/config.toml \
        (see docs/config.md)."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the running daemon: pid, version, uptime, socket, cache dir.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Stop the running daemon.
    Stop,
    /// Show cache statistics.
    Stats {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Reset the counters (after showing them).
        #[arg(long)]
        zero: bool,
    },
    /// Evict down to the size cap, verify packs, drop stale manifest entries.
    Gc,
    /// Remove every cached result.
    Clear,
    /// Print the effective configuration.
    Config,
    /// Run the daemon in the foreground (normally started on demand by the wrapper).
    Daemon {
        /// Started by a client: detach from inherited file descriptors.
        #[arg(long, hide = true)]
        spawned: bool,
        #[arg(long, hide = true, default_value = "started by hand")]
        reason: String,
    },
    /// Mount a zcfs filesystem over DIR (default ./target, created if missing).
    Mount {
        dir: Option<PathBuf>,
        /// Let other users access the mount (needs user_allow_other in /etc/fuse.conf).
        #[arg(long)]
        allow_other: bool,
    },
    /// Unmount a zcfs filesystem (live or dead).
    Unmount {
        dir: Option<PathBuf>,
        /// If the mount is busy, detach it lazily instead of refusing.
        #[arg(long)]
        force: bool,
        /// First turn every projected file into a real file (DIR is then complete without zcfs).
        #[arg(long)]
        materialize: bool,
    },
    /// Run cargo with zcfs: mounts the build dir (./target) if needed and sets
    /// RUSTC_WRAPPER. `zcfs cargo clean` unmounts first.
    #[command(disable_help_flag = true)]
    Cargo {
        /// Arguments for cargo.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
    /// Run a build command (make, ninja, a script) with its C and C++ compiles cached:
    /// `cc`, `c++`, `gcc`, `g++`, `clang`, `clang++` and CMake's compiler launcher go
    /// through zcfs. With --mount DIR, the build dir is mounted first (hits projected).
    Run {
        /// Mount this build directory first (created if missing).
        #[arg(long)]
        mount: Option<PathBuf>,
        /// The command and its arguments (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 1..)]
        args: Vec<std::ffi::OsString>,
    },
    /// The remote tier: `status`, `push` (seed the remote from this cache), `flush` (wait
    /// for uploads, e.g. at the end of a CI job). See docs/remote.md.
    Remote {
        #[command(subcommand)]
        cmd: RemoteCmd,
    },
    /// Store SRC and project it at REL inside the mount DIR (testing and debugging).
    #[command(hide = true)]
    Project {
        dir: PathBuf,
        rel: PathBuf,
        src: PathBuf,
        /// Permission bits, octal (default: those of SRC).
        #[arg(long)]
        mode: Option<String>,
        /// mtime in nanoseconds since the epoch (default: the kernel's clock now).
        #[arg(long, allow_hyphen_values = true)]
        mtime_ns: Option<i128>,
    },
}

#[derive(Subcommand)]
enum RemoteCmd {
    /// Where the remote is, its mode, whether it answers, its breakers, queued uploads.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Upload every result in the local cache that the remote lacks, then wait for it.
    Push {
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Wait until the results stored so far are uploaded; exits 1 if some failed, were
    /// dropped, or are still pending at the timeout.
    Flush {
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

/// Names that select the command line rather than the wrapper.
pub const SUBCOMMANDS: &[&str] = &[
    "status", "stop", "stats", "gc", "clear", "config", "daemon", "mount", "unmount", "project",
    "cargo", "run", "remote", "help",
];

pub fn main() -> ! {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zcfs: {e:#}");
            1
        }
    };
    std::process::exit(code)
}

fn run(cli: Cli) -> Result<i32> {
    if let Cmd::Cargo { args } = cli.command {
        return cargo::run(args);
    }
    if let Cmd::Run { mount, args } = cli.command {
        return run::run(mount, args);
    }
    let config = Config::load()?;
    let paths = Paths::new(&config);
    let timeout = Duration::from_secs(120);
    match cli.command {
        Cmd::Daemon { spawned, reason } => {
            crate::daemon::run(config, &reason, spawned, crate::platform::channel())?;
            Ok(0)
        }
        Cmd::Status { json } => match client::request_once(&paths, &Request::Status, timeout) {
            Ok(Reply::Status(s)) => {
                let all = mount::list(&*crate::platform::channel(), &paths);
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "running": true,
                            "pid": s.pid,
                            "version": s.version,
                            "uptime_secs": s.uptime_secs,
                            "socket": s.socket,
                            "cache_dir": s.cache_dir,
                            "log_file": s.log_file,
                            "mounts": s.mounts,
                            "all_mounts": all,
                        })
                    );
                } else {
                    println!("daemon    running, pid {}", s.pid);
                    println!("version   {}", s.version);
                    println!("uptime    {} s", s.uptime_secs);
                    println!("socket    {}", s.socket);
                    println!("cache dir {}", s.cache_dir);
                    println!("log       {}", s.log_file);
                    if s.mounts.is_empty() {
                        println!("mounts    none");
                    }
                    for m in &s.mounts {
                        println!(
                            "mount     {} ({} projections, {})",
                            m.dir,
                            m.projections,
                            human_size(m.projected_bytes)
                        );
                    }
                    print_other_mounts(&all);
                }
                Ok(0)
            }
            Ok(other) => bail!("unexpected reply: {other:?}"),
            Err(ClientError::NoDaemon) => {
                let all = mount::list(&*crate::platform::channel(), &paths);
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "running": false,
                            "socket": paths.socket(),
                            "cache_dir": paths.cache_dir,
                            "all_mounts": all,
                        })
                    );
                } else {
                    println!("no daemon running (socket {})", paths.socket().display());
                    println!("cache dir {}", paths.cache_dir.display());
                    print_other_mounts(&all);
                }
                Ok(if json { 0 } else { 3 })
            }
            Err(e) => Err(e.into()),
        },
        Cmd::Stop => match client::request_once(&paths, &Request::Shutdown, timeout) {
            Ok(_) => {
                // Wait until it let go of its lock, so a following start is clean.
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while crate::daemon::lifecycle::is_locked(&paths.daemon_lock())
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                println!("daemon stopped");
                Ok(0)
            }
            Err(ClientError::NoDaemon) => {
                println!("no daemon running");
                Ok(0)
            }
            Err(e) => Err(e.into()),
        },
        Cmd::Stats { json, zero } => {
            let v = match daemon_json(&config, &paths, Request::Stats { zero }) {
                Ok(v) => v,
                // No daemon: the counters are in stats.json.
                Err(ClientError::NoDaemon) => {
                    let v = offline_stats(&paths, &config);
                    if zero {
                        let stats = crate::stats::Stats::load(&paths.stats_file());
                        stats.zero();
                        stats.flush(&paths.stats_file());
                    }
                    v
                }
                // An older daemon would keep (and later write back) its counters: replace
                // it, then zero.
                Err(ClientError::Outdated(_)) if zero => {
                    match client::call(&config, &paths, &Request::Stats { zero })?.0 {
                        Reply::Json(s) => serde_json::from_str(&s)?,
                        other => bail!("unexpected reply: {other:?}"),
                    }
                }
                Err(ClientError::Outdated(_)) => offline_stats(&paths, &config),
                Err(e) => return Err(e.into()),
            };
            if json {
                println!("{v}");
            } else {
                print!("{}", crate::stats::to_text(&v));
            }
            Ok(0)
        }
        Cmd::Gc => {
            let v = daemon_json(&config, &paths, Request::Gc)?;
            println!(
                "evicted {} packs ({}), {} corrupt, {} stale manifest entries; cache now {} in {} packs",
                v["evicted_packs"],
                human_size(v["evicted_bytes"].as_u64().unwrap_or(0)),
                v["corrupt_packs"],
                v["stale_manifest_entries"],
                human_size(v["size_after"].as_u64().unwrap_or(0)),
                v["packs_after"]
            );
            Ok(0)
        }
        Cmd::Clear => {
            let v = daemon_json(&config, &paths, Request::Clear)?;
            println!(
                "removed {} packs ({}) and {} manifests",
                v["evicted_packs"],
                human_size(v["evicted_bytes"].as_u64().unwrap_or(0)),
                v["removed_manifests"]
            );
            Ok(0)
        }
        Cmd::Config => {
            println!("cache_dir       {}", config.cache_dir.display());
            println!("runtime_dir     {}", config.runtime_dir.display());
            println!(
                "max_size        {} ({})",
                config.max_size,
                human_size(config.max_size)
            );
            println!(
                "idle_timeout    {}",
                config
                    .idle_timeout
                    .map(|d| format!("{} s", d.as_secs()))
                    .unwrap_or_else(|| "never".into())
            );
            println!("client_timeout  {} s", config.client_timeout.as_secs());
            println!("disable         {}", config.disable);
            println!("recache         {}", config.recache);
            println!("project_misses  {}", config.project_misses);
            let sloppy = config.sloppiness.names();
            println!(
                "sloppiness      {}",
                if sloppy.is_empty() {
                    "none".to_string()
                } else {
                    sloppy.join(", ")
                }
            );
            println!("watch           {}", config.watch.name());
            println!("log             {}", config.log);
            let r = &config.remote;
            match &r.url {
                Some(url) => {
                    println!("remote          {}", crate::remote::redact(url));
                    println!("remote_mode     {}", r.mode.name());
                    println!(
                        "remote timeouts connect {:?}, operation {:?}, pack stall {:?}, pack {:?}",
                        r.timeouts.connect, r.timeouts.op, r.timeouts.stall, r.timeouts.transfer
                    );
                    println!("remote_max_object {}", human_size(r.max_object));
                    println!("remote_upload_queue {}", r.upload_queue);
                }
                None => println!("remote          (none)"),
            }
            println!(
                "config file     {}",
                config
                    .config_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "(none)".into())
            );
            println!("socket          {}", paths.socket().display());
            Ok(0)
        }
        Cmd::Remote { cmd } => remote_cmd(&config, &paths, cmd),
        Cmd::Mount { dir, allow_other } => {
            let dir = mount::dir_arg(dir, true)?;
            let m = mount::mount(
                &config,
                &paths,
                &dir,
                crate::proto::MountOptions { allow_other },
            )?;
            if m.already {
                println!("{} is already mounted", m.dir);
                return Ok(0);
            }
            if m.cleaned_stale > 0 {
                println!("removed a dead mount at {}", m.dir);
            }
            println!(
                "mounted {} ({} projections restored{})",
                m.dir,
                m.restored,
                if m.dropped > 0 {
                    format!(", {} dropped", m.dropped)
                } else {
                    String::new()
                }
            );
            if mount::cwd_below(&dir) {
                // The caller's shell stays in the directory below the mount.
                eprintln!(
                    "zcfs: this shell's working directory is below the mount; `cd {}` \
                     enters it (builds started here compile without the cache)",
                    dir.display()
                );
            }
            Ok(0)
        }
        Cmd::Unmount {
            dir,
            force,
            materialize,
        } => {
            let dir = mount::dir_arg(dir, false)?;
            let u = mount::unmount(
                &*crate::platform::channel(),
                &paths,
                &dir,
                force,
                materialize,
            )?;
            if u.stale > 0 {
                println!("removed a dead mount at {}", u.dir);
            } else {
                println!(
                    "unmounted {}{}{}",
                    u.dir,
                    if u.materialized > 0 {
                        format!(" ({} projections written as real files)", u.materialized)
                    } else {
                        String::new()
                    },
                    if u.lazy { " (lazily: still busy)" } else { "" }
                );
            }
            Ok(0)
        }
        Cmd::Cargo { .. } | Cmd::Run { .. } => unreachable!("handled above"),
        Cmd::Project {
            dir,
            rel,
            src,
            mode,
            mtime_ns,
        } => {
            let perm = match mode {
                Some(m) => Some(
                    u32::from_str_radix(&m, 8)
                        .map_err(|_| anyhow::anyhow!("--mode takes octal digits, got {m:?}"))?,
                ),
                None => None,
            };
            let abs = |p: PathBuf| -> Result<PathBuf> {
                Ok(if p.is_absolute() {
                    p
                } else {
                    std::env::current_dir()?.join(p)
                })
            };
            let req = Request::ProjectFile {
                dir: Bytes(
                    mount::dir_arg(Some(dir), false)?
                        .as_os_str()
                        .as_bytes()
                        .to_vec(),
                ),
                rel: Bytes(rel.as_os_str().as_bytes().to_vec()),
                src: Bytes(abs(src)?.as_os_str().as_bytes().to_vec()),
                perm,
                mtime: mtime_ns,
            };
            match client::request_once(&paths, &req, timeout)? {
                Reply::Ok => Ok(0),
                Reply::Error(e) => bail!("{e}"),
                other => bail!("unexpected reply: {other:?}"),
            }
        }
    }
}

/// The zcfs mounts of this user that this cache dir's daemon does not serve.
fn print_other_mounts(all: &[mount::Listed]) {
    for m in all.iter().filter(|m| !m.ours || m.dead) {
        let who = if m.dead {
            "dead: its daemon is gone; `zcfs unmount` removes it".to_string()
        } else {
            format!(
                "served by another daemon ({})",
                m.socket.as_deref().unwrap_or("another cache dir")
            )
        };
        println!("mount     {} ({who})", m.dir);
    }
}

/// `zcfs remote ...`.
fn remote_cmd(config: &Config, paths: &Paths, cmd: RemoteCmd) -> Result<i32> {
    // A long request to a daemon that is up (started if needed).
    let long = |req: Request, secs: u64| -> Result<serde_json::Value> {
        client::call(config, paths, &Request::Status)?;
        match client::request_once(paths, &req, Duration::from_secs(secs + 30))? {
            Reply::Json(s) => Ok(serde_json::from_str(&s)?),
            Reply::Error(e) => bail!("{e}"),
            other => bail!("unexpected reply: {other:?}"),
        }
    };
    let flush = |timeout: u64| -> Result<i32> {
        let v = long(
            Request::RemoteFlush {
                timeout_secs: timeout,
            },
            timeout,
        )?;
        if v["configured"] == false {
            println!("no remote configured");
            return Ok(0);
        }
        let (failed, dropped) = (
            v["failed"].as_u64().unwrap_or(0),
            v["dropped"].as_u64().unwrap_or(0),
        );
        if v["done"] == true && failed + dropped == 0 {
            println!("uploads done");
            return Ok(0);
        }
        println!(
            "uploads: {} queued, {} in flight, {failed} failed, {dropped} dropped (queue full) since the last flush",
            v["queued"], v["in_flight"]
        );
        Ok(1)
    };
    match cmd {
        RemoteCmd::Status { json } => {
            let v = daemon_json(config, paths, Request::RemoteStatus)?;
            if json {
                println!("{v}");
            } else if v["configured"] != true {
                match v["error"].as_str() {
                    Some(e) => println!("remote off: {e}"),
                    None => println!(
                        "no remote configured (set ZCFS_REMOTE or `remote` in the config file)"
                    ),
                }
            } else {
                println!(
                    "remote          {} ({})",
                    v["location"].as_str().unwrap_or("?"),
                    v["backend"].as_str().unwrap_or("?")
                );
                println!(
                    "mode            {} (configured {})",
                    v["mode"].as_str().unwrap_or("?"),
                    v["configured_mode"].as_str().unwrap_or("?")
                );
                match v["probe_error"].as_str() {
                    None => println!(
                        "reachable       yes ({:.1} ms)",
                        v["probe_ms"].as_f64().unwrap_or(0.0)
                    ),
                    Some(e) => println!("reachable       no: {e}"),
                }
                println!(
                    "breakers        reads {}, writes {} ({} trips)",
                    v["read_breaker"].as_str().unwrap_or("?"),
                    v["write_breaker"].as_str().unwrap_or("?"),
                    v["breaker_trips"]
                );
                println!(
                    "uploads         {} queued ({}), {} in flight",
                    v["uploads_queued"],
                    human_size(v["uploads_queued_bytes"].as_u64().unwrap_or(0)),
                    v["uploads_in_flight"]
                );
            }
            Ok(if v["configured"] == true && v["reachable"] == true {
                0
            } else {
                1
            })
        }
        RemoteCmd::Push { timeout } => {
            let v = long(Request::RemotePush, timeout)?;
            if v["configured"] != true {
                bail!("no remote configured (set ZCFS_REMOTE)");
            }
            if v["mode"] != "rw" {
                bail!(
                    "the remote is {} here: nothing is uploaded",
                    v["mode"].as_str().unwrap_or("?")
                );
            }
            println!("queued {} results", v["queued"]);
            flush(timeout)
        }
        RemoteCmd::Flush { timeout } => flush(timeout),
    }
}

/// A JSON request to the daemon, starting it if needed.
fn daemon_json(
    config: &Config,
    paths: &Paths,
    req: Request,
) -> Result<serde_json::Value, ClientError> {
    let reply = if matches!(req, Request::Stats { .. }) {
        client::request_once(paths, &req, Duration::from_secs(60))?
    } else {
        client::call(config, paths, &req)?.0
    };
    match reply {
        Reply::Json(s) => serde_json::from_str(&s)
            .map_err(|e| ClientError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
        Reply::Error(e) => Err(ClientError::Io(std::io::Error::other(e))),
        other => Err(ClientError::Io(std::io::Error::other(format!(
            "unexpected reply {other:?}"
        )))),
    }
}

/// Stats from `stats.json` when no daemon runs (cache size unknown without a scan).
fn offline_stats(paths: &Paths, config: &Config) -> serde_json::Value {
    let stats = crate::stats::Stats::load(&paths.stats_file());
    let (size, packs) = dir_usage(&paths.packs_dir());
    crate::stats::to_json(&stats.snapshot(), size, packs, config.max_size)
}

fn dir_usage(dir: &std::path::Path) -> (u64, u64) {
    let mut size = 0;
    let mut count = 0;
    if let Ok(shards) = std::fs::read_dir(dir) {
        for s in shards.flatten() {
            if let Ok(files) = std::fs::read_dir(s.path()) {
                for f in files.flatten() {
                    if let Ok(m) = f.metadata() {
                        size += m.len();
                        count += 1;
                    }
                }
            }
        }
    }
    (size, count)
}
