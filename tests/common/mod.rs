//! Test harness: a private copy of the fixture workspace, its own cache dir and daemon, and
//! helpers to run cargo through zcfs and read zcfs's counters.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ZCFS: &str = env!("CARGO_BIN_EXE_zcfs");

/// Removes from `cmd` the variables of the outer `cargo test` that must not leak into a
/// build under test (also for a plain build, without zcfs).
pub fn scrub(cmd: &mut Command) {
    for k in SCRUB {
        cmd.env_remove(k);
    }
}

/// Variables of the outer `cargo test` that must not leak into the builds under test.
const SCRUB: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_INCREMENTAL",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_LOG",
    "ZCFS_DISABLE",
    "ZCFS_RECACHE",
    "ZCFS_CONFIG",
    "ZT_OPT",
    "ZT_GEN",
    "ZT_SHA",
    // Set by rustup for the outer cargo; a user's shell has none, and it would override
    // the rust-toolchain.toml files that tests write.
    "RUSTUP_TOOLCHAIN",
    // Set by cargo for the test binaries (the outer toolchain's libraries).
    "LD_LIBRARY_PATH",
];

pub struct Env {
    pub tmp: tempfile::TempDir,
    /// The workspace copy.
    pub ws: PathBuf,
    pub cache: PathBuf,
    pub run: PathBuf,
    /// Extra environment for every command.
    pub vars: Vec<(String, String)>,
    /// Builds run as `zcfs cargo`, with the target dir on a zcfs mount.
    pub mounted: bool,
    /// Held for the test's life (see [`Env::alone`]).
    _turn: Turn,
}

/// Tests of one binary share the machine's toolchain. A test that changes its files'
/// metadata (hard links raise their ctime, which makes concurrent compiles look modified
/// while they ran) runs alone: it holds this lock for writing, every other test for
/// reading.
static TURN: std::sync::RwLock<()> = std::sync::RwLock::new(());

#[allow(dead_code)]
enum Turn {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Alone(std::sync::RwLockWriteGuard<'static, ()>),
}

/// What one cargo run did.
#[derive(Debug)]
pub struct Build {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Packages cargo compiled or checked (from `Compiling x`/`Checking x` lines).
    pub compiled: Vec<String>,
    /// zcfs counters before and after.
    pub hits: u64,
    /// Hits of every language.
    pub all_hits: u64,
    /// Hits delivered as projections into a mount.
    pub hits_projected: u64,
    pub misses: u64,
    pub uncacheable: u64,
    pub errors: u64,
    /// Units projected from a snapshot before cargo ran (docs/snapshot.md).
    pub projected: u64,
    pub stats: serde_json::Value,
}

impl Build {
    pub fn is_noop(&self) -> bool {
        self.compiled.is_empty() && self.hits == 0 && self.misses == 0
    }
    pub fn assert_noop(&self) {
        assert!(
            self.is_noop(),
            "expected a no-op build, got compiled={:?} hits={} misses={}\n{}",
            self.compiled,
            self.hits,
            self.misses,
            self.stderr
        );
        assert!(
            !self.stderr.contains("dirty:"),
            "fingerprint dirty:\n{}",
            self.stderr
        );
    }
    pub fn assert_ok(&self) -> &Self {
        assert!(self.status.success(), "cargo failed:\n{}", self.stderr);
        self
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "target" || name == "Cargo.lock" {
            continue;
        }
        let dest = to.join(&name);
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

impl Env {
    pub fn new() -> Env {
        Env::new_with(Turn::Shared(TURN.read().unwrap_or_else(|e| e.into_inner())))
    }

    fn new_with(turn: Turn) -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("zcfs-test-")
            .tempdir()
            .unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let ws = tmp.path().join("ws");
        copy_dir(&fixtures.join("ws"), &ws);
        copy_dir(&fixtures.join("outside"), &tmp.path().join("outside"));
        let cache = tmp.path().join("cache");
        // Short socket paths: sun_path is 108 bytes.
        let run = tmp.path().join("run");
        Env {
            tmp,
            ws,
            cache,
            run,
            vars: vec![],
            mounted: false,
            _turn: turn,
        }
    }

    /// [`Env::new`] for a test that must run while no other test of its binary runs.
    #[allow(dead_code)]
    pub fn alone() -> Env {
        let turn = Turn::Alone(TURN.write().unwrap_or_else(|e| e.into_inner()));
        let mut env = Env::new_with(turn);
        env.mounted = false;
        env
    }

    /// An environment whose builds run as `zcfs cargo`: the target dir is mounted by zcfs
    /// and hits are projections. Snapshots are off: every unit cargo builds reaches the
    /// wrapper, which is what this mode tests ([`Env::snapshots`] turns them on).
    pub fn mounted() -> Env {
        let mut env = Env::new();
        env.mounted = true;
        env.var("ZCFS_SNAPSHOT", "0");
        env
    }

    /// [`Env::mounted`] with snapshots of cargo's unit records on (the default of
    /// `zcfs cargo`, docs/snapshot.md): a build from an empty target may find its units
    /// projected and Fresh, with no compile at all.
    pub fn snapshots() -> Env {
        let mut env = Env::mounted();
        env.unset("ZCFS_SNAPSHOT");
        env
    }

    /// Whether `zcfs cargo` may project snapshots here ([`Env::snapshots`]).
    pub fn snapshots_on(&self) -> bool {
        self.mounted
            && !self
                .vars
                .iter()
                .any(|(k, v)| k == "ZCFS_SNAPSHOT" && v == "0")
    }

    /// The mode's constructor, chosen by the scenario module (see `scenarios!`).
    pub fn for_mode(mounted: bool) -> Env {
        if SNAPSHOT_MODE.with(|m| m.get()) {
            Env::snapshots()
        } else if mounted {
            Env::mounted()
        } else {
            Env::new()
        }
    }

    pub fn var(&mut self, k: &str, v: &str) -> &mut Self {
        self.vars.retain(|(a, _)| a != k);
        self.vars.push((k.to_string(), v.to_string()));
        self
    }

    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.vars.retain(|(a, _)| a != k);
        self
    }

    fn apply(&self, cmd: &mut Command) {
        scrub(cmd);
        cmd.env("ZCFS_DIR", &self.cache)
            .env("ZCFS_RUNTIME_DIR", &self.run)
            .env("ZCFS_LOG", "debug")
            .env("CARGO_TERM_COLOR", "never")
            .env("CARGO_TERM_PROGRESS_WHEN", "never");
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
    }

    /// A command with the test environment applied.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        self.apply(&mut cmd);
        cmd.current_dir(&self.ws);
        cmd
    }

    pub fn zcfs(&self, args: &[&str]) -> Output {
        self.command(ZCFS).args(args).output().unwrap()
    }

    pub fn stats(&self) -> serde_json::Value {
        let out = self.zcfs(&["stats", "--json"]);
        assert!(
            out.status.success(),
            "zcfs stats: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs cargo with `RUSTC_WRAPPER=zcfs` in the workspace.
    pub fn cargo(&self, args: &[&str]) -> Build {
        self.cargo_in(&self.ws.clone(), args)
    }

    /// The cargo command of this mode in `dir`: `zcfs cargo` (mounted) or cargo with
    /// `RUSTC_WRAPPER=zcfs` (plain).
    pub fn cargo_command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = if self.mounted {
            let mut c = self.command(ZCFS);
            c.arg("cargo");
            c
        } else {
            let mut c = self.command("cargo");
            c.env("RUSTC_WRAPPER", ZCFS);
            c
        };
        cmd.args(args).current_dir(dir);
        cmd
    }

    pub fn cargo_in(&self, dir: &Path, args: &[&str]) -> Build {
        let b = self.build_with(self.cargo_command(dir, args));
        if self.mounted {
            // The mounted mode must really be mounted, and every hit a projection: else
            // `zcfs cargo` fell back to a plain build and the scenario proves nothing.
            assert!(
                !zcfs_mounts_under(self.tmp.path()).is_empty(),
                "no zcfs mount after `zcfs cargo {}`:\n{}",
                args.join(" "),
                b.stderr
            );
            assert_eq!(
                b.hits_projected, b.all_hits,
                "every hit in a mount is a projection:\n{}",
                b.stderr
            );
        }
        b
    }

    /// Runs a build command (cargo with zcfs as its wrapper, set up by the caller) and
    /// reports what it did, with zcfs's counters before and after.
    pub fn build_with(&self, mut cmd: Command) -> Build {
        let before = self.stats();
        cmd.env("CARGO_LOG", "cargo::core::compiler::fingerprint=info")
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        let after = self.stats();
        let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
        let rust = |v: &serde_json::Value, k: &str| v["languages"]["rust"][k].as_u64().unwrap_or(0);
        let total_uncacheable = |v: &serde_json::Value| -> u64 {
            v["uncacheable"]
                .as_object()
                .map(|m| m.values().filter_map(|x| x.as_u64()).sum())
                .unwrap_or(0)
        };
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let compiled = stderr
            .lines()
            .filter_map(|l| {
                let t = l.trim_start();
                t.strip_prefix("Compiling ")
                    .or_else(|| t.strip_prefix("Checking "))
                    .map(|r| r.split_whitespace().next().unwrap_or("").to_string())
            })
            .collect();
        Build {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
            compiled,
            // rustc units (build scripts' C compiles under `zcfs cargo` count as C).
            hits: rust(&after, "hits") - rust(&before, "hits"),
            all_hits: n(&after, "hits") - n(&before, "hits"),
            hits_projected: n(&after, "hits_projected") - n(&before, "hits_projected"),
            misses: rust(&after, "misses") - rust(&before, "misses"),
            uncacheable: total_uncacheable(&after) - total_uncacheable(&before),
            errors: n(&after, "errors") - n(&before, "errors"),
            projected: after["snapshot"]["projected"].as_u64().unwrap_or(0)
                - before["snapshot"]["projected"].as_u64().unwrap_or(0),
            stats: after,
        }
    }

    /// Removes the target dir: `cargo clean`, or `zcfs cargo clean` in mounted mode (which
    /// unmounts first; the next build mounts again).
    pub fn clean(&self) {
        let out = if self.mounted {
            self.command(ZCFS)
                .args(["cargo", "clean"])
                .output()
                .unwrap()
        } else {
            self.cargo_plain(&self.ws, &["clean"])
        };
        assert!(
            out.status.success(),
            "clean: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!self.target().exists(), "the target dir is gone");
    }

    /// Runs cargo without zcfs (for comparisons).
    pub fn cargo_plain(&self, dir: &Path, args: &[&str]) -> Output {
        self.command("cargo")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A one-package project of its own (not in the fixture workspace) under the temp dir,
    /// with `files` as (relative path, content). Returns its directory.
    pub fn standalone(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n"
            ),
        )
        .unwrap();
        for (rel, content) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        dir
    }

    /// Runs the binary `name` built in `dir`'s debug profile; returns its stdout.
    pub fn run_bin(&self, dir: &Path, name: &str) -> String {
        let out = Command::new(dir.join("target/debug").join(name))
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn target(&self) -> PathBuf {
        self.ws.join("target")
    }

    /// Runs the fixture binary and returns its stdout.
    pub fn run_app(&self) -> String {
        let out = Command::new(self.target().join("debug/app"))
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.ws.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.ws.join(rel)).unwrap()
    }

    /// Files in `target/debug/deps` whose names start with `prefix`.
    pub fn deps(&self, prefix: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.target().join("debug/deps"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
            .collect();
        v.sort();
        v
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        let out = self.zcfs(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["pid"].as_u64().map(|p| p as u32)
    }

    pub fn daemon_log(&self) -> String {
        let mut s = String::new();
        if let Ok(rd) = std::fs::read_dir(self.cache.join("logs")) {
            let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                s.push_str(&std::fs::read_to_string(f).unwrap_or_default());
            }
        }
        s
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The daemon's side of a failure, before the temp dir goes.
            let log = self.daemon_log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- daemon log (last 80 lines) ---");
            for l in &lines[lines.len().saturating_sub(80)..] {
                eprintln!("{l}");
            }
        }
        let pid = self.daemon_pid();
        // The daemon unmounts its mounts when it stops.
        let _ = self.command(ZCFS).arg("stop").output();
        if let Some(pid) = pid {
            // Make sure it is gone before the temp dir goes.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
        }
        // No test leaves a mount behind, even after killing its daemon.
        for dir in zcfs_mounts_under(self.tmp.path()) {
            let _ = Command::new("umount").arg("-l").arg(&dir).status();
        }
    }
}

/// A mount source zcfs gives its mounts: `zcfs`, or `zcfs@<socket of its daemon>`.
pub fn is_zcfs_source(s: &str) -> bool {
    s == "zcfs" || s.starts_with("zcfs@")
}

/// zcfs mounts at or below `root`.
pub fn zcfs_mounts_under(root: &Path) -> Vec<PathBuf> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            let zcfs = f.get(sep + 1).is_some_and(|t| t.starts_with("fuse"))
                && f.get(sep + 2).is_some_and(|s| is_zcfs_source(s));
            let dir = PathBuf::from(f.get(4)?);
            (zcfs && dir.starts_with(&root)).then_some(dir)
        })
        .collect()
}

/// Runs each scenario twice: without a mount (`plain::`) and with the target dir on a zcfs
/// mount (`mounted::`). Scenario bodies get `mounted: bool` and build their `Env` with
/// `Env::for_mode(mounted)`.
#[macro_export]
macro_rules! scenarios {
    ($( $(#[$meta:meta])* fn $name:ident($mounted:ident: bool) $body:block )*) => {
        $(
            $(#[$meta])*
            fn $name($mounted: bool) $body
        )*
        mod plain {
            $( #[test] fn $name() { super::$name(false) } )*
        }
        mod mounted {
            $( #[test] fn $name() { super::$name(true) } )*
        }
    };
}

thread_local! {
    /// Set by a scenario module whose builds run with snapshots on (`Env::for_mode`).
    pub static SNAPSHOT_MODE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Scenarios that also hold with snapshots on: each runs a third time (`snapshots::`), in a
/// mount with `zcfs cargo`'s snapshots (docs/snapshot.md). Their bodies must then not count
/// on hits: a unit may be projected Fresh instead.
#[macro_export]
macro_rules! scenarios_with_snapshots {
    ($( $(#[$meta:meta])* fn $name:ident($mounted:ident: bool) $body:block )*) => {
        $crate::scenarios! {
            $( $(#[$meta])* fn $name($mounted: bool) $body )*
        }
        mod snapshots {
            $( #[test] fn $name() {
                super::common::SNAPSHOT_MODE.with(|m| m.set(true));
                super::$name(true)
            } )*
        }
    };
}

/// Waits until `f` holds, or panics after `secs`.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// mtime in nanoseconds.
pub fn mtime(p: &Path) -> i128 {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

/// A zcfs mount for a test; unmounted (forcibly if needed) on drop, also when the test
/// fails, so no test leaves a mount behind.
pub struct MountGuard<'a> {
    pub env: &'a Env,
    pub dir: PathBuf,
}

impl Env {
    /// Mounts `dir` (created if missing) with `zcfs mount`.
    pub fn mount(&self, dir: &Path) -> MountGuard<'_> {
        let out = self.zcfs(&["mount", dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "zcfs mount: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        MountGuard {
            env: self,
            dir: dir.to_path_buf(),
        }
    }
}

/// Whether a zcfs FUSE mount is at `dir` (per /proc/self/mountinfo).
pub fn is_mounted(dir: &Path) -> bool {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-");
            f.len() > 4
                && Path::new(f[4]) == canon
                && sep.is_some_and(|s| {
                    f.get(s + 1).is_some_and(|t| t.starts_with("fuse"))
                        && f.get(s + 2).is_some_and(|s| is_zcfs_source(s))
                })
        })
}

impl Drop for MountGuard<'_> {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let _ = self
                .env
                .zcfs(&["unmount", "--force", self.dir.to_str().unwrap()]);
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The path of a program on PATH.
pub fn which(program: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} not on PATH"))
}

/// Writes a workspace of `n` one-function library crates and a binary that depends on all
/// of them under `dir`. Returns `dir`.
pub fn many_crates(dir: &Path, n: usize) -> PathBuf {
    let mut members = String::new();
    let mut deps = String::new();
    let mut calls = String::new();
    for i in 0..n {
        let name = format!("c{i:04}");
        let cdir = dir.join(&name);
        std::fs::create_dir_all(cdir.join("src")).unwrap();
        std::fs::write(
            cdir.join("Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
        )
        .unwrap();
        std::fs::write(
            cdir.join("src/lib.rs"),
            format!("pub fn f() -> usize {{ {i} }}\n"),
        )
        .unwrap();
        members.push_str(&format!("\"{name}\", "));
        deps.push_str(&format!("{name} = {{ path = \"../{name}\" }}\n"));
        calls.push_str(&format!("{name}::f() + "));
    }
    std::fs::create_dir_all(dir.join("top/src")).unwrap();
    std::fs::write(
        dir.join("top/Cargo.toml"),
        format!(
            "[package]\nname = \"top\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[dependencies]\n{deps}"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("top/src/main.rs"),
        format!("fn main() {{ println!(\"{{}}\", {calls}0); }}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[workspace]\nmembers = [{members}\"top\"]\nresolver = \"2\"\n"),
    )
    .unwrap();
    dir.to_path_buf()
}

/// Limits the open files of a command (soft and hard) to `n`, as `ulimit -n` would.
pub fn limit_open_files(cmd: &mut Command, n: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Asserts that a command succeeded, showing its output if not.
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Env {
    /// Stops the daemon and waits until it is gone.
    pub fn stop(&self) {
        let pid = self.daemon_pid();
        assert!(self.zcfs(&["stop"]).status.success());
        if let Some(pid) = pid {
            wait_until(10, "daemon exit", || {
                !Path::new(&format!("/proc/{pid}")).exists()
            });
        }
    }
}

/// A mount made with `mount(8)` for a test (a tmpfs, a bind, a loop device), lazily
/// unmounted when dropped, also when the test fails. Mounting needs root: as root (CI) a
/// failure fails the test; as another user [`RootMount::new`] says the test is skipped and
/// returns `None`.
pub struct RootMount(PathBuf);

impl RootMount {
    pub fn new(args: &[&str], dir: &Path) -> Option<RootMount> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root to mount {args:?}");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount").args(args).arg(dir).output().unwrap();
        assert!(
            out.status.success(),
            "mount {args:?} {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(RootMount(dir.to_path_buf()))
    }

    /// An ext4 with 128-byte inodes, whose timestamps are whole seconds, at `dir`.
    pub fn coarse_ext4(dir: &Path) -> Option<RootMount> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root to mount a filesystem with whole-second timestamps");
            return None;
        }
        let img = dir.with_extension("img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(256 << 20)
            .unwrap();
        let mkfs = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-I", "128"])
            .arg(&img)
            .output()
            .expect("mkfs.ext4 (e2fsprogs, installed by scripts/install-deps.sh)");
        assert!(
            mkfs.status.success(),
            "{}",
            String::from_utf8_lossy(&mkfs.stderr)
        );
        RootMount::new(&["-o", "loop", img.to_str().unwrap()], dir)
    }
}

impl Drop for RootMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `zcfs <compiler> args` in `env`, then `<compiler> args`, in `dir`: see [`same_as_plain`].
pub fn compile_same_as_plain(
    env: &Env,
    dir: &Path,
    compiler: &str,
    args: &[&str],
    outputs: &[&str],
) -> Output {
    let mut with = env.command(ZCFS);
    with.arg(compiler).args(args);
    let mut without = env.command(compiler);
    without.args(args);
    same_as_plain(with, without, dir, outputs)
}

/// Runs a compile through zcfs (`with`), then the same without (`without`), in `dir`: exit
/// codes, stdout, stderr and each named output (relative to `dir`) must be identical.
/// Returns the zcfs run's output.
pub fn same_as_plain(
    mut with: Command,
    mut without: Command,
    dir: &Path,
    outputs: &[&str],
) -> Output {
    let read = |o: &str| std::fs::read(dir.join(o)).unwrap_or_else(|e| panic!("{o}: {e}"));
    let out = with.current_dir(dir).output().unwrap();
    let got: Vec<Vec<u8>> = outputs.iter().map(|o| read(o)).collect();
    for o in outputs {
        std::fs::remove_file(dir.join(o)).unwrap();
    }
    let reference = without.current_dir(dir).output().unwrap();
    assert_eq!(out.status.code(), reference.status.code(), "exit code");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&reference.stderr),
        "stderr"
    );
    assert_eq!(out.stdout, reference.stdout, "stdout");
    for (o, bytes) in outputs.iter().zip(got) {
        assert!(bytes == read(o), "{o} differs from the reference");
    }
    out
}

/// Every artifact rustc wrote under `profile_dir`: `deps/` and the build-script binaries.
pub fn artifacts(profile_dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut add = |p: PathBuf| {
        if p.is_file() {
            let rel = p.strip_prefix(profile_dir).unwrap().to_path_buf();
            out.insert(rel, std::fs::read(&p).unwrap());
        }
    };
    for e in std::fs::read_dir(profile_dir.join("deps"))
        .unwrap()
        .flatten()
    {
        add(e.path());
    }
    if let Ok(rd) = std::fs::read_dir(profile_dir.join("build")) {
        for d in rd.flatten() {
            for e in std::fs::read_dir(d.path()).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("build_script_build-") || name == "build-script-build" {
                    add(e.path());
                }
            }
        }
    }
    out
}
