//! `zcfs cargo [args...]`: one command for users. It finds the build dir cargo will use
//! (`cargo metadata`: `build_directory`, else `target_directory`), mounts it if it is not
//! mounted yet, and runs cargo with `RUSTC_WRAPPER` set to this binary. The mount stays for
//! the next build; `zcfs unmount` removes it.
//!
//! `zcfs cargo clean` (a whole-target clean) unmounts first: cargo removes the target dir
//! itself, which it cannot do while it is a mount point. Partial cleans (`-p`, `--release`,
//! `--profile`, `--target`, `--doc`) run through the mount.
//!
//! If the mount cannot be set up, cargo still runs with the wrapper (hits are then restored
//! as real files) and the reason is printed: a cache never stops a build.

use crate::os::{OsStrExt, OsStringExt};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::paths::Paths;

/// Options of cargo's command line that change where the build dir is, passed on to
/// `cargo metadata` (with a value).
const LOCATION_OPTS: &[&str] = &["--manifest-path", "--config", "-Z"];

/// Options of `cargo clean` that clean only a part of the target dir.
const PARTIAL_CLEAN: &[&str] = &[
    "-p",
    "--package",
    "-r",
    "--release",
    "--profile",
    "--target",
    "--doc",
];

pub fn run(args: Vec<OsString>) -> Result<i32> {
    let config = Config::load()?;
    let paths = Paths::new(&config);
    let (args, no_snapshot) = strip_no_snapshot(args);
    // `+toolchain` needs rustup's proxy on PATH; otherwise the cargo that runs us (an
    // alias, an xtask), if any.
    let toolchain = args.first().is_some_and(|a| a.as_bytes().starts_with(b"+"));
    let cargo = match std::env::var_os("CARGO") {
        Some(c) if !toolchain => c,
        _ => OsString::from("cargo"),
    };
    let exe = std::env::current_exe().context("cannot find the zcfs binary")?;
    if let Some(w) = std::env::var_os("RUSTC_WRAPPER").filter(|w| !w.is_empty())
        && !is_zcfs(&w, &exe)
    {
        bail!(
            "RUSTC_WRAPPER is already set to {}; unset it to use zcfs",
            w.to_string_lossy()
        );
    }

    if config.disable {
        // Pure pass-through: no mount, no daemon.
        return Err(exec(Command::new(&cargo).args(&args)));
    }

    let loc = match cached_location(&paths, &cargo, &args) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("zcfs: cannot find the build dir ({e:#}); building without a mount");
            None
        }
    };
    let mut mounted = None;
    if let Some(loc) = &loc {
        if subcommand(&args).is_some_and(|s| s == "clean") && !is_partial_clean(&args) {
            unmount_for_clean(&paths, &loc.build_dir)?;
        } else {
            match ensure_mounted(&config, &paths, &loc.build_dir) {
                Ok(d) => mounted = Some(d),
                Err(e) => eprintln!(
                    "zcfs: cannot mount {} ({e:#}); building without a mount",
                    loc.build_dir.display()
                ),
            }
        }
    }
    let mut cmd = Command::new(&cargo);
    cmd.args(&args).env("RUSTC_WRAPPER", &exe);
    // Build scripts' C and C++ compiles (cc-rs, cmake-rs) go through zcfs too.
    if let Err(e) = super::route::apply(&mut cmd, &paths, &exe) {
        eprintln!("zcfs: C compiles will not be cached ({e:#})");
    }
    let snapshot = match (&loc, mounted) {
        (Some(loc), Some(dir))
            if config.snapshot && !no_snapshot && subcommand(&args).is_some_and(builds) =>
        {
            super::snapshot::At::new(dir, loc.workspace.clone())
        }
        _ => None,
    };
    let Some(at) = snapshot else {
        return Err(exec(&mut cmd));
    };
    let since = if config.recache {
        None
    } else {
        super::snapshot::before(&config, &paths, &at)
    };
    let status = super::snapshot::run_child(&mut cmd)
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if status.success() {
        super::snapshot::after(&config, &paths, &at, since, &cargo, &args);
    }
    Ok(exit_code(status))
}

/// Subcommands that build units (whose records a snapshot may hold).
fn builds(sub: &OsStr) -> bool {
    matches!(
        sub.to_str(),
        Some(
            "build"
                | "b"
                | "check"
                | "c"
                | "test"
                | "t"
                | "run"
                | "r"
                | "clippy"
                | "bench"
                | "doc"
                | "d"
                | "rustc"
                | "rustdoc"
        )
    )
}

/// The arguments without `--no-snapshot` (before a `--`), and whether it was there.
fn strip_no_snapshot(args: Vec<OsString>) -> (Vec<OsString>, bool) {
    let mut out = Vec::with_capacity(args.len());
    let mut found = false;
    let mut rest = false;
    for a in args {
        if !rest && a == "--no-snapshot" {
            found = true;
            continue;
        }
        rest |= a == "--";
        out.push(a);
    }
    (out, found)
}

/// The exit code to give for a child's status (128 + the signal that killed it).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    status.code().unwrap_or(1)
}

/// Runs the command in place of this process; returns only on failure.
pub fn exec(cmd: &mut Command) -> anyhow::Error {
    let e = crate::os::exec(cmd);
    anyhow::anyhow!("cannot run {:?}: {e}", cmd.get_program())
}

fn is_zcfs(wrapper: &OsStr, exe: &Path) -> bool {
    let w = Path::new(wrapper);
    w == exe || crate::masquerade::named_zcfs(w)
}

/// cargo's subcommand: the first argument that is not an option (or a `+toolchain`).
fn subcommand(args: &[OsString]) -> Option<&OsStr> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let b = a.as_bytes();
        if b.starts_with(b"+") {
            continue;
        }
        if b.starts_with(b"-") {
            // Global options with a separate value.
            if matches!(
                b,
                b"--config" | b"-Z" | b"-C" | b"--color" | b"--manifest-path"
            ) {
                it.next();
            }
            continue;
        }
        return Some(a);
    }
    None
}

fn is_partial_clean(args: &[OsString]) -> bool {
    args.iter().any(|a| {
        let s = a.to_string_lossy();
        PARTIAL_CLEAN
            .iter()
            .any(|o| s == *o || (o.starts_with("--") && s.starts_with(&format!("{o}="))))
    })
}

/// The value of `--opt value` or `--opt=value`.
fn option_value(args: &[OsString], opt: &str) -> Option<OsString> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == opt {
            return it.next().cloned();
        }
        if let Some(v) = a
            .to_str()
            .and_then(|s| s.strip_prefix(opt))
            .and_then(|s| s.strip_prefix('='))
        {
            return Some(v.into());
        }
    }
    None
}

/// Where cargo builds: the build dir and the workspace root.
#[derive(Debug, Clone)]
pub struct Location {
    pub build_dir: PathBuf,
    pub workspace: PathBuf,
}

/// The [`Location`], remembered in the runtime dir under a key of everything that decides
/// it: the cwd, the arguments and environment that name a location or a toolchain, and the
/// identity (size, mtime, inode) of every `Cargo.toml` and `.cargo/config[.toml]` from the
/// cwd up and in `CARGO_HOME`. `cargo metadata` costs ~25 ms, most of a no-op build.
fn cached_location(paths: &Paths, cargo: &OsStr, args: &[OsString]) -> Result<Location> {
    let key = location_key(cargo, args)?;
    let file = paths
        .runtime_dir
        .join("cargo-dirs")
        .join(key.to_hex().to_string());
    if let Ok(b) = std::fs::read(&file)
        && let Some(i) = b.iter().position(|&c| c == 0)
    {
        return Ok(Location {
            build_dir: PathBuf::from(OsString::from_vec(b[..i].to_vec())),
            workspace: PathBuf::from(OsString::from_vec(b[i + 1..].to_vec())),
        });
    }
    let loc = locate(cargo, args)?;
    if let Some(parent) = file.parent()
        && std::fs::create_dir_all(parent).is_ok()
    {
        let mut b = loc.build_dir.as_os_str().as_bytes().to_vec();
        b.push(0);
        b.extend_from_slice(loc.workspace.as_os_str().as_bytes());
        let _ = crate::fsutil::write_atomic(&file, &b);
    }
    Ok(loc)
}

fn location_key(cargo: &OsStr, args: &[OsString]) -> Result<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    let mut field = |tag: &str, v: &[u8]| {
        h.update(tag.as_bytes());
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v);
    };
    let cwd = std::env::current_dir()?;
    field("cwd", cwd.as_os_str().as_bytes());
    field("cargo", cargo.as_bytes());
    for a in args {
        field("arg", a.as_bytes());
    }
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            k.starts_with("CARGO_") || k.starts_with("RUSTUP_") || k == "HOME" || k == "USERPROFILE"
        })
        .collect();
    env.sort();
    for (k, v) in env {
        field("env", k.as_bytes());
        field("val", v.as_bytes());
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for d in cwd.ancestors() {
        files.push(d.join("Cargo.toml"));
        files.push(d.join(".cargo/config.toml"));
        files.push(d.join(".cargo/config"));
    }
    // Windows has no HOME; cargo takes the user's profile directory there.
    let user_home = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os(user_home).map(|h| Path::new(&h).join(".cargo")));
    if let Some(home) = home {
        files.push(home.join("config.toml"));
        files.push(home.join("config"));
    }
    for f in files {
        if let Ok(m) = std::fs::metadata(&f) {
            field("file", f.as_os_str().as_bytes());
            let st = crate::os::file_stat(&m);
            field("size", &st.size.to_le_bytes());
            field("mtime", &st.mtime.to_le_bytes());
            field("ctime", &st.ctime.to_le_bytes());
            field("ino", &st.ino.to_le_bytes());
        }
    }
    Ok(h.finalize())
}

/// `cargo metadata` with the options of `args` that decide where cargo builds.
pub fn metadata_command(cargo: &OsStr, args: &[OsString], no_deps: bool) -> Command {
    let mut meta = Command::new(cargo);
    if let Some(tc) = args.iter().find(|a| a.as_bytes().starts_with(b"+")) {
        meta.arg(tc);
    }
    meta.args(["metadata", "--format-version", "1", "--offline"]);
    if no_deps {
        meta.arg("--no-deps");
    }
    for opt in LOCATION_OPTS {
        let mut rest = args;
        while let Some(i) = rest.iter().position(|a| a == opt) {
            if let Some(v) = rest.get(i + 1) {
                meta.arg(opt).arg(v);
            }
            rest = &rest[(i + 1).min(rest.len())..];
        }
    }
    meta.stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    meta
}

/// Runs `cargo metadata` and parses its JSON.
pub fn metadata(cargo: &OsStr, args: &[OsString], no_deps: bool) -> Result<serde_json::Value> {
    let out = metadata_command(cargo, args, no_deps)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing cargo metadata")
}

/// The directory cargo writes intermediate artifacts to (`--target-dir`, else what
/// `cargo metadata` says: build-dir when configured, else target-dir), and the workspace
/// root.
fn locate(cargo: &OsStr, args: &[OsString]) -> Result<Location> {
    let cwd = std::env::current_dir()?;
    let v = metadata(cargo, args, true)?;
    let target = v["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    let workspace = PathBuf::from(
        v["workspace_root"]
            .as_str()
            .context("cargo metadata has no workspace_root")?,
    );
    let build = v["build_directory"].as_str().unwrap_or(target);
    // An explicit --target-dir moves both unless a build-dir is configured apart.
    let build_dir = match option_value(args, "--target-dir") {
        Some(t) if build == target => cwd.join(t),
        _ => PathBuf::from(build),
    };
    Ok(Location {
        build_dir,
        workspace,
    })
}

/// Mounts `dir` unless it is mounted; returns the mount's directory (canonical).
pub fn ensure_mounted(config: &Config, paths: &Paths, dir: &Path) -> Result<PathBuf> {
    // A dead mount (its daemon was killed) makes every access fail: remove it first.
    let channel = crate::platform::channel();
    if channel.is_stale(dir) && !channel.zcfs_mounts_at(dir).is_empty() {
        channel.clean_stale(dir).context("removing a dead mount")?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = super::mount::dir_arg(Some(dir.to_path_buf()), true)?;
    let m = super::mount::mount(config, paths, &dir, Default::default())?;
    if !m.already {
        eprintln!("zcfs: mounted {}", m.dir);
    }
    if super::mount::cwd_below(&dir) {
        // Entered before the mount hid it: enter it again, through the mount, so that the
        // command builds there (a compile that runs below the mount passes through).
        let cwd = std::env::current_dir()?;
        if let Err(e) = std::env::set_current_dir(&cwd) {
            // The command then runs below the mount, where its compiles pass through.
            eprintln!(
                "zcfs: cannot enter {} through the mount ({e}); its compiles will not be cached",
                cwd.display()
            );
        }
    }
    Ok(dir)
}

fn unmount_for_clean(paths: &Paths, dir: &Path) -> Result<()> {
    let channel = crate::platform::channel();
    if channel.zcfs_mounts_at(dir).is_empty() {
        return Ok(());
    }
    let u = super::mount::unmount(&*channel, paths, dir, false, false)
        .with_context(|| format!("cannot unmount {} before cleaning", dir.display()))?;
    eprintln!("zcfs: unmounted {} to clean it", u.dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn finds_the_subcommand_and_options() {
        assert_eq!(
            subcommand(&v(&["+nightly", "--config", "x=1", "build", "-p", "a"])),
            Some(OsStr::new("build"))
        );
        assert_eq!(subcommand(&v(&["-v", "clean"])), Some(OsStr::new("clean")));
        assert_eq!(subcommand(&v(&["--version"])), None);
        assert_eq!(
            option_value(&v(&["build", "--target-dir", "t2"]), "--target-dir"),
            Some("t2".into())
        );
        assert_eq!(
            option_value(&v(&["build", "--target-dir=t3"]), "--target-dir"),
            Some("t3".into())
        );
        assert_eq!(
            option_value(&v(&["run", "--", "--target-dir", "x"]), "--target-dir"),
            None
        );
        assert!(is_partial_clean(&v(&["clean", "-p", "util"])));
        assert!(is_partial_clean(&v(&["clean", "--profile=dev"])));
        assert!(!is_partial_clean(&v(&["clean"])));
    }
}
