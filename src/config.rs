//! Configuration: defaults, then the TOML file, then `ZCFS_*` environment variables.
//!
//! Every key is listed in `docs/config.md`; keep the two in step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Default size cap of the store: 10 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;
/// Default idle time after which a daemon without mounts exits.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(900);
/// Default time a wrapper waits for a daemon reply before running the compiler itself.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Root of the store, logs and stats (`ZCFS_DIR`).
    pub cache_dir: PathBuf,
    /// Where sockets and lock files live (`ZCFS_RUNTIME_DIR`).
    pub runtime_dir: PathBuf,
    /// Size cap of the packs, in bytes (`ZCFS_MAX_SIZE`).
    pub max_size: u64,
    /// Idle time before the daemon exits; `None` means never (`ZCFS_IDLE_TIMEOUT`).
    pub idle_timeout: Option<Duration>,
    /// Pure pass-through: run the compiler, never contact a daemon (`ZCFS_DISABLE`).
    pub disable: bool,
    /// Never serve hits, but store results (`ZCFS_RECACHE`).
    pub recache: bool,
    /// Turn a miss's outputs in a mount into projections of the stored pack
    /// (`ZCFS_PROJECT_MISSES`).
    pub project_misses: bool,
    /// Relaxations of soundness the user opted into (`ZCFS_SLOPPINESS`); none by default.
    pub sloppiness: Sloppiness,
    /// Daemon log filter, tracing syntax (`ZCFS_LOG`).
    pub log: String,
    /// How long a wrapper waits for a reply (`ZCFS_CLIENT_TIMEOUT`).
    pub client_timeout: Duration,
    /// The file the settings came from, if any.
    pub config_file: Option<PathBuf>,
    /// The remote tier (`ZCFS_REMOTE*`, docs/remote.md).
    pub remote: RemoteConfig,
    /// What the daemon's directory watcher may answer (`ZCFS_WATCH`).
    pub watch: WatchMode,
    /// `zcfs cargo` records cargo's unit records after a build and projects those whose
    /// inputs verify before the next (`ZCFS_SNAPSHOT`, docs/snapshot.md).
    pub snapshot: bool,
}

/// The TOML file's shape. Unknown keys are an error, so typos are caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    cache_dir: Option<PathBuf>,
    runtime_dir: Option<PathBuf>,
    max_size: Option<SizeValue>,
    idle_timeout: Option<u64>,
    disable: Option<bool>,
    recache: Option<bool>,
    project_misses: Option<bool>,
    snapshot: Option<bool>,
    sloppiness: Option<ListValue>,
    log: Option<String>,
    client_timeout: Option<u64>,
    watch: Option<String>,
    remote: Option<String>,
    remote_mode: Option<String>,
    remote_connect_timeout: Option<DurationValue>,
    remote_timeout: Option<DurationValue>,
    remote_max_object: Option<SizeValue>,
    remote_upload_queue: Option<usize>,
    remote_breaker: Option<DurationValue>,
    remote_ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Secs(u64),
    Text(String),
}

impl DurationValue {
    fn get(&self) -> Result<Duration> {
        match self {
            DurationValue::Secs(s) => Ok(Duration::from_secs(*s)),
            DurationValue::Text(t) => parse_duration(t),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ListValue {
    List(Vec<String>),
    Text(String),
}

/// Relaxations of soundness a user may opt into, like ccache's "sloppiness"; each is off by
/// default and documented in docs/sharing.md.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sloppiness {
    /// `path_values`: the target dir and the cwd, where they reach a compile as values (an
    /// argument, `CARGO_MANIFEST_DIR`, an `env!("OUT_DIR")` read), are assumed to be used
    /// only to find files, never to decide what is compiled; entries are then shared
    /// across target dirs and checkouts whenever their outputs do not contain the paths.
    pub path_values: bool,
}

impl Sloppiness {
    pub const ALL: &[&str] = &["path_values"];

    /// Parses a list of names separated by commas or spaces.
    pub fn parse(items: &[String]) -> Result<Sloppiness> {
        let mut s = Sloppiness::default();
        for item in items
            .iter()
            .flat_map(|i| i.split([',', ' ']))
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            match item {
                "path_values" => s.path_values = true,
                other => bail!(
                    "unknown sloppiness {other:?} (known: {})",
                    Self::ALL.join(", ")
                ),
            }
        }
        Ok(s)
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.path_values {
            v.push("path_values");
        }
        v
    }
}

/// Reads environment variables through a closure, so tests need not touch the process env.
pub trait EnvSource {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> EnvSource for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl Config {
    /// Loads the configuration of this process.
    pub fn load() -> Result<Config> {
        Self::load_from(&ProcessEnv)
    }

    pub fn load_from(env: &dyn EnvSource) -> Result<Config> {
        let home = env.var("HOME").map(PathBuf::from);
        // Windows keeps per-user settings under %APPDATA%, caches under %LOCALAPPDATA%.
        let win_dir = |var: &str| {
            cfg!(windows)
                .then(|| env.var(var))
                .flatten()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };

        let config_file = match env.var("ZCFS_CONFIG") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => env
                .var("XDG_CONFIG_HOME")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .or_else(|| win_dir("APPDATA"))
                .or_else(|| home.as_ref().map(|h| h.join(".config")))
                .map(|d| d.join("zcfs").join("config.toml")),
        };
        let (file, config_file) = match &config_file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => {
                    let parsed: FileConfig = toml::from_str(&text)
                        .with_context(|| format!("invalid config file {}", path.display()))?;
                    (parsed, Some(path.clone()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (FileConfig::default(), None),
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {}", path.display()));
                }
            },
            None => (FileConfig::default(), None),
        };

        let remote = remote_config(env, &file)?;
        let cache_dir = match env.var("ZCFS_DIR").filter(|s| !s.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => match file.cache_dir {
                Some(d) => d,
                None => env
                    .var("XDG_CACHE_HOME")
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| win_dir("LOCALAPPDATA"))
                    .or_else(|| home.as_ref().map(|h| h.join(".cache")))
                    .map(|d| d.join("zcfs"))
                    .context("cannot find a cache directory: set ZCFS_DIR or HOME")?,
            },
        };
        let cache_dir = absolute(&cache_dir)?;

        let runtime_dir = match env.var("ZCFS_RUNTIME_DIR").filter(|s| !s.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => match file.runtime_dir {
                Some(d) => d,
                None => match env.var("XDG_RUNTIME_DIR").filter(|s| !s.is_empty()) {
                    Some(d) => PathBuf::from(d).join("zcfs"),
                    None => match win_dir("LOCALAPPDATA") {
                        Some(d) => d.join("zcfs").join("run"),
                        None => shared_tmp_runtime_dir(),
                    },
                },
            },
        };
        let runtime_dir = absolute(&runtime_dir)?;

        let max_size = match env.var("ZCFS_MAX_SIZE").filter(|s| !s.is_empty()) {
            Some(s) => parse_size(&s).context("invalid ZCFS_MAX_SIZE")?,
            None => match file.max_size {
                Some(SizeValue::Bytes(b)) => b,
                Some(SizeValue::Text(s)) => parse_size(&s).context("invalid max_size")?,
                None => DEFAULT_MAX_SIZE,
            },
        };

        let idle_secs = match env.var("ZCFS_IDLE_TIMEOUT").filter(|s| !s.is_empty()) {
            Some(s) => Some(parse_secs(&s).context("invalid ZCFS_IDLE_TIMEOUT")?),
            None => file.idle_timeout,
        };
        let idle_timeout = match idle_secs {
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s)),
            None => Some(DEFAULT_IDLE_TIMEOUT),
        };

        let client_timeout = match env.var("ZCFS_CLIENT_TIMEOUT").filter(|s| !s.is_empty()) {
            Some(s) => Duration::from_secs(parse_secs(&s).context("invalid ZCFS_CLIENT_TIMEOUT")?),
            None => file
                .client_timeout
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_CLIENT_TIMEOUT),
        };

        let disable = match env.var("ZCFS_DISABLE") {
            Some(v) => parse_bool(&v).context("invalid ZCFS_DISABLE")?,
            None => file.disable.unwrap_or(false),
        };
        let recache = match env.var("ZCFS_RECACHE") {
            Some(v) => parse_bool(&v).context("invalid ZCFS_RECACHE")?,
            None => file.recache.unwrap_or(false),
        };
        let project_misses = match env.var("ZCFS_PROJECT_MISSES") {
            Some(v) => parse_bool(&v).context("invalid ZCFS_PROJECT_MISSES")?,
            None => file.project_misses.unwrap_or(true),
        };
        let snapshot = match env.var("ZCFS_SNAPSHOT") {
            Some(v) => parse_bool(&v).context("invalid ZCFS_SNAPSHOT")?,
            None => file.snapshot.unwrap_or(true),
        };
        let sloppiness = match env.var("ZCFS_SLOPPINESS") {
            Some(v) => Sloppiness::parse(&[v]).context("invalid ZCFS_SLOPPINESS")?,
            None => match file.sloppiness {
                Some(ListValue::List(v)) => Sloppiness::parse(&v),
                Some(ListValue::Text(v)) => Sloppiness::parse(&[v]),
                None => Ok(Sloppiness::default()),
            }
            .context("invalid sloppiness")?,
        };
        let watch = match env.var("ZCFS_WATCH").filter(|s| !s.is_empty()) {
            Some(v) => WatchMode::parse(&v)
                .map_err(anyhow::Error::msg)
                .context("invalid ZCFS_WATCH")?,
            None => match file.watch {
                Some(v) => WatchMode::parse(&v)
                    .map_err(anyhow::Error::msg)
                    .context("invalid watch")?,
                None => WatchMode::default(),
            },
        };
        let log = env
            .var("ZCFS_LOG")
            .filter(|s| !s.is_empty())
            .or(file.log)
            .unwrap_or_else(|| "info".to_string());

        Ok(Config {
            remote,
            cache_dir,
            runtime_dir,
            max_size,
            idle_timeout,
            disable,
            recache,
            project_misses,
            sloppiness,
            log,
            client_timeout,
            config_file,
            watch,
            snapshot,
        })
    }
}

/// How far the daemon's directory watcher is trusted (`ZCFS_WATCH`, docs/config.md;
/// `crate::fsview::watch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchMode {
    /// No watcher: every check asks the filesystem.
    Off,
    /// Names, kinds, listings and directories' times from the watcher; a file's stat taken
    /// each time its content matters.
    #[default]
    Names,
    /// Also a file's stat and digest (a change made through a writable shared mapping is
    /// not seen).
    Files,
}

impl WatchMode {
    pub fn parse(s: &str) -> Result<WatchMode, String> {
        match s {
            "off" | "no" | "false" | "0" => Ok(WatchMode::Off),
            "names" | "on" | "yes" | "true" | "1" => Ok(WatchMode::Names),
            "files" => Ok(WatchMode::Files),
            _ => Err(format!(
                "unknown watch mode {s:?} (expected off, names or files)"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WatchMode::Off => "off",
            WatchMode::Names => "names",
            WatchMode::Files => "files",
        }
    }
}

/// The remote tier's settings: environment over file over defaults. The URL is checked when
/// the daemon starts (a bad one turns the remote off with a logged reason; the local cache
/// keeps working).
fn remote_config(env: &dyn EnvSource, file: &FileConfig) -> Result<RemoteConfig> {
    let mut r = RemoteConfig::default();
    let var = |k: &str| env.var(k).filter(|s| !s.trim().is_empty());
    r.url = var("ZCFS_REMOTE").or_else(|| file.remote.clone());
    if let Some(m) = var("ZCFS_REMOTE_MODE").or_else(|| file.remote_mode.clone()) {
        r.mode = RemoteMode::parse(&m).map_err(anyhow::Error::msg)?;
    }
    let duration = |name: &str, from_file: &Option<DurationValue>| -> Result<Option<Duration>> {
        match var(name) {
            Some(v) => parse_duration(&v)
                .with_context(|| format!("invalid {name}"))
                .map(Some),
            None => from_file
                .as_ref()
                .map(|d| d.get())
                .transpose()
                .with_context(|| {
                    format!(
                        "invalid {}",
                        name.to_ascii_lowercase().trim_start_matches("zcfs_")
                    )
                }),
        }
    };
    if let Some(d) = duration("ZCFS_REMOTE_CONNECT_TIMEOUT", &file.remote_connect_timeout)? {
        r.timeouts.connect = d;
    }
    if let Some(d) = duration("ZCFS_REMOTE_TIMEOUT", &file.remote_timeout)? {
        // Packs: no byte for 2.5 times as long, or 15 times as long in all, ends a transfer.
        r.timeouts.op = d;
        r.timeouts.stall = d.mul_f64(2.5);
        r.timeouts.transfer = d * 15;
    }
    if let Some(d) = duration("ZCFS_REMOTE_BREAKER", &file.remote_breaker)? {
        r.breaker_open = d;
    }
    r.ca_file = var("ZCFS_REMOTE_CA_FILE")
        .map(PathBuf::from)
        .or_else(|| file.remote_ca_file.clone());
    r.max_object = match var("ZCFS_REMOTE_MAX_OBJECT") {
        Some(s) => parse_size(&s).context("invalid ZCFS_REMOTE_MAX_OBJECT")?,
        None => match &file.remote_max_object {
            Some(SizeValue::Bytes(b)) => *b,
            Some(SizeValue::Text(s)) => parse_size(s).context("invalid remote_max_object")?,
            None => r.max_object,
        },
    };
    if let Some(n) = var("ZCFS_REMOTE_UPLOAD_QUEUE") {
        r.upload_queue = n
            .trim()
            .parse()
            .context("invalid ZCFS_REMOTE_UPLOAD_QUEUE: expected a number of results")?;
    } else if let Some(n) = file.remote_upload_queue {
        r.upload_queue = n;
    }
    Ok(r)
}

/// Parses a duration: seconds, or a number with `ms`, `s`, `m`, `h`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    if let Some(ms) = t.strip_suffix("ms") {
        let n: u64 = ms
            .trim()
            .parse()
            .with_context(|| format!("expected a duration like 500ms or 2s, got {s:?}"))?;
        return Ok(Duration::from_millis(n));
    }
    Ok(Duration::from_secs(parse_secs(t)?))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

/// Parses `1`, `yes`, `true`, `on` (and the empty string, as "set") as true; `0`, `no`, `false`,
/// `off` as false.
pub fn parse_bool(s: &str) -> Result<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        other => bail!("expected a boolean (1/0, true/false), got {other:?}"),
    }
}

/// Parses a number of seconds, with an optional `s`, `m`, `h` or `d` suffix.
pub fn parse_secs(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .with_context(|| format!("expected seconds, got {s:?}"))?;
    n.checked_mul(mult).context("duration too large")
}

/// Parses a size: plain bytes, or a number with K, M, G, T (powers of 1024; an optional
/// trailing `B` or `iB` is accepted).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let stripped = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (num, mult) = match stripped.chars().last() {
        Some('K') => (&stripped[..stripped.len() - 1], 1u64 << 10),
        Some('M') => (&stripped[..stripped.len() - 1], 1 << 20),
        Some('G') => (&stripped[..stripped.len() - 1], 1 << 30),
        Some('T') => (&stripped[..stripped.len() - 1], 1 << 40),
        _ => (stripped, 1),
    };
    let num = num.trim();
    if num.is_empty() {
        bail!("expected a size like 10G, got {s:?}");
    }
    let value: f64 = num
        .parse()
        .with_context(|| format!("expected a size like 10G, got {s:?}"))?;
    if !value.is_finite() || value < 0.0 {
        bail!("expected a non-negative size, got {s:?}");
    }
    Ok((value * mult as f64) as u64)
}

/// Human-readable size, for `zcfs stats` and messages.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The runtime directory when no better place is known: a per-user one in the shared
/// temporary directory (on Unix checked to be private and ours before use, `paths.rs`; on
/// Windows, where `%LOCALAPPDATA%` is missing, the user's own temporary directory).
fn shared_tmp_runtime_dir() -> PathBuf {
    #[cfg(unix)]
    return PathBuf::from(format!("/tmp/zcfs-{}", rustix::process::getuid().as_raw()));
    #[cfg(windows)]
    return std::env::temp_dir().join(format!(
        "zcfs-{}",
        std::env::var("USERNAME").unwrap_or_else(|_| "user".into())
    ));
}

/// Who may do what with the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemoteMode {
    /// Read and write.
    Rw,
    /// Read only (untrusted clients: pull requests, developers' machines).
    Ro,
    Off,
}

impl RemoteMode {
    pub fn parse(s: &str) -> Result<RemoteMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rw" | "read-write" => Ok(RemoteMode::Rw),
            "ro" | "read-only" => Ok(RemoteMode::Ro),
            "off" => Ok(RemoteMode::Off),
            other => Err(format!("unknown remote mode {other:?} (rw, ro or off)")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RemoteMode::Rw => "rw",
            RemoteMode::Ro => "ro",
            RemoteMode::Off => "off",
        }
    }
}

/// The remote's settings (docs/config.md).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// The store's URL; `None`: no remote.
    pub url: Option<String>,
    pub mode: RemoteMode,
    pub timeouts: RemoteTimeouts,
    /// Largest object read.
    pub max_object: u64,
    /// Uploads waiting at most; more are dropped (and counted).
    pub upload_queue: usize,
    /// How long the breaker skips a failing remote at first (doubling to 5 min).
    pub breaker_open: Duration,
    /// PEM certificates to trust for https stores instead of the public roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for RemoteConfig {
    fn default() -> RemoteConfig {
        RemoteConfig {
            url: None,
            mode: RemoteMode::Rw,
            timeouts: RemoteTimeouts::default(),
            max_object: 2 << 30,
            upload_queue: 256,
            breaker_open: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

/// Deadlines of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteTimeouts {
    pub connect: Duration,
    /// Manifests, HEAD, small writes: the whole operation.
    pub op: Duration,
    /// Packs: no byte for this long ends the transfer.
    pub stall: Duration,
    /// Packs: the whole transfer.
    pub transfer: Duration,
}

impl Default for RemoteTimeouts {
    fn default() -> RemoteTimeouts {
        RemoteTimeouts {
            connect: Duration::from_millis(500),
            op: Duration::from_secs(2),
            stall: Duration::from_secs(5),
            transfer: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("-1G").is_err());
    }

    #[test]
    fn durations_and_bools() {
        assert_eq!(parse_secs("90").unwrap(), 90);
        assert_eq!(parse_secs("2m").unwrap(), 120);
        assert_eq!(parse_secs("1h").unwrap(), 3600);
        assert!(parse_secs("soon").is_err());
        assert!(parse_bool("1").unwrap());
        assert!(!parse_bool("off").unwrap());
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn env_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "max_size = \"2G\"\nidle_timeout = 30\nlog = \"debug\"\n",
        )
        .unwrap();
        let f = file.to_str().unwrap().to_string();
        let c = Config::load_from(&env_of(&[
            ("HOME", "/home/u"),
            ("ZCFS_CONFIG", &f),
            ("ZCFS_IDLE_TIMEOUT", "0"),
        ]))
        .unwrap();
        assert_eq!(c.max_size, 2 << 30);
        assert_eq!(c.idle_timeout, None, "env 0 means never");
        assert_eq!(c.log, "debug");
        assert_eq!(c.cache_dir, PathBuf::from("/home/u/.cache/zcfs"));
        assert_eq!(c.config_file.as_deref(), Some(file.as_path()));

        let c = Config::load_from(&env_of(&[
            ("HOME", "/home/u"),
            ("ZCFS_CONFIG", &f),
            ("ZCFS_DIR", "/x/cache"),
            ("ZCFS_MAX_SIZE", "1M"),
            ("ZCFS_DISABLE", "1"),
        ]))
        .unwrap();
        assert_eq!(c.cache_dir, PathBuf::from("/x/cache"));
        assert_eq!(c.max_size, 1 << 20);
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(30)));
        assert!(c.disable);
    }

    #[test]
    fn bad_file_is_an_error_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "max_sise = 3\n").unwrap();
        let f = file.to_str().unwrap().to_string();
        let err = Config::load_from(&env_of(&[("HOME", "/h"), ("ZCFS_CONFIG", &f)])).unwrap_err();
        assert!(format!("{err:#}").contains("c.toml"), "{err:#}");
    }

    #[test]
    fn sloppiness_is_off_by_default_and_checked() {
        let c = Config::load_from(&env_of(&[("HOME", "/h")])).unwrap();
        assert_eq!(c.sloppiness, Sloppiness::default());
        let c = Config::load_from(&env_of(&[
            ("HOME", "/h"),
            ("ZCFS_SLOPPINESS", "path_values"),
        ]))
        .unwrap();
        assert!(c.sloppiness.path_values);
        let err = Config::load_from(&env_of(&[
            ("HOME", "/h"),
            ("ZCFS_SLOPPINESS", "time_macros"),
        ]))
        .unwrap_err();
        assert!(format!("{err:#}").contains("unknown sloppiness"), "{err:#}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "sloppiness = [\"path_values\"]\n").unwrap();
        let f = file.to_str().unwrap().to_string();
        let c = Config::load_from(&env_of(&[("HOME", "/h"), ("ZCFS_CONFIG", &f)])).unwrap();
        assert!(c.sloppiness.path_values);
    }

    #[test]
    fn remote_settings_from_env_and_file() {
        let c = Config::load_from(&env_of(&[("HOME", "/h")])).unwrap();
        assert_eq!(c.remote, RemoteConfig::default());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "remote = \"file:///srv/c\"\nremote_mode = \"ro\"\nremote_timeout = \"300ms\"\n",
        )
        .unwrap();
        let f = file.to_str().unwrap().to_string();
        let c = Config::load_from(&env_of(&[
            ("HOME", "/h"),
            ("ZCFS_CONFIG", &f),
            ("ZCFS_REMOTE_CONNECT_TIMEOUT", "100ms"),
            ("ZCFS_REMOTE_UPLOAD_QUEUE", "8"),
        ]))
        .unwrap();
        assert_eq!(c.remote.url.as_deref(), Some("file:///srv/c"));
        assert_eq!(c.remote.mode, RemoteMode::Ro);
        assert_eq!(c.remote.timeouts.op, Duration::from_millis(300));
        assert_eq!(c.remote.timeouts.stall, Duration::from_millis(750));
        assert_eq!(c.remote.timeouts.connect, Duration::from_millis(100));
        assert_eq!(c.remote.upload_queue, 8);
        let err =
            Config::load_from(&env_of(&[("HOME", "/h"), ("ZCFS_REMOTE_MODE", "rwx")])).unwrap_err();
        assert!(format!("{err:#}").contains("remote mode"), "{err:#}");
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(10 << 30), "10.0 GiB");
    }
}
