//! The command line: `zcfs status|stop|stats|gc|clear|config|daemon|mount|unmount`.
//! (`zcfs <compiler> args...` is the wrapper, dispatched in `main`.)

use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use crate::client::{self, ClientError};
use crate::config::{Config, human_size};
use crate::paths::Paths;
use crate::proto::{Reply, Request};

#[derive(Parser)]
#[command(
    name = "zcfs",
    version,
    about = "A compiler cache whose hits are projected as files",
    long_about = "A compiler cache for rustc (RUSTC_WRAPPER=zcfs).\n\n\
        As a wrapper: zcfs <compiler> [args...]\n\
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
    /// Mount a zcfs filesystem over a target directory (not built yet).
    Mount { dir: Option<std::path::PathBuf> },
    /// Unmount a zcfs filesystem (not built yet).
    Unmount { dir: Option<std::path::PathBuf> },
}

/// Names that select the command line rather than the wrapper.
pub const SUBCOMMANDS: &[&str] = &[
    "status", "stop", "stats", "gc", "clear", "config", "daemon", "mount", "unmount", "help",
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
    let config = Config::load()?;
    let paths = Paths::new(&config);
    let timeout = Duration::from_secs(120);
    match cli.command {
        Cmd::Daemon { spawned, reason } => {
            crate::daemon::run(config, &reason, spawned)?;
            Ok(0)
        }
        Cmd::Status { json } => match client::request_once(&paths, &Request::Status, timeout) {
            Ok(Reply::Status(s)) => {
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
                        })
                    );
                } else {
                    println!("daemon    running, pid {}", s.pid);
                    println!("version   {}", s.version);
                    println!("uptime    {} s", s.uptime_secs);
                    println!("socket    {}", s.socket);
                    println!("cache dir {}", s.cache_dir);
                    println!("log       {}", s.log_file);
                }
                Ok(0)
            }
            Ok(other) => bail!("unexpected reply: {other:?}"),
            Err(ClientError::NoDaemon) => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "running": false,
                            "socket": paths.socket(),
                            "cache_dir": paths.cache_dir,
                        })
                    );
                } else {
                    println!("no daemon running (socket {})", paths.socket().display());
                    println!("cache dir {}", paths.cache_dir.display());
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
                Err(ClientError::NoDaemon) if !zero => offline_stats(&paths, &config),
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
            println!("log             {}", config.log);
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
        Cmd::Mount { .. } | Cmd::Unmount { .. } => {
            eprintln!(
                "zcfs: the FUSE mount is not built yet; zcfs currently restores cache hits as \
                 real files (reflink or copy)"
            );
            Ok(2)
        }
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
