//! `zcfs cargo`'s side of snapshots (docs/snapshot.md): before cargo, ask the daemon to
//! project the recorded units whose inputs verify; after a successful build, find the units
//! cargo left in the build dir and have the daemon record the new ones. Neither step can
//! fail the build: a failure is logged (and counted by the daemon) and cargo does the work.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::config::Config;
use crate::os::OsStrExt;
use crate::paths::Paths;
use crate::proto::{Bytes, Reply, Request, SnapshotAt};
use crate::snapshot::survey;
use crate::wrapper::client;

/// Which snapshot a build uses.
pub struct At {
    pub build_dir: PathBuf,
    proto: SnapshotAt,
}

impl At {
    /// For a mounted build dir and a workspace; `None` without a `CARGO_HOME` to bind to.
    pub fn new(build_dir: PathBuf, workspace: PathBuf) -> Option<At> {
        let home = cargo_home()?;
        let b = |p: &Path| Bytes(p.as_os_str().as_bytes().to_vec());
        Some(At {
            proto: SnapshotAt {
                build_dir: b(&build_dir),
                workspace: b(&workspace),
                cargo_home: b(&home),
                tools: tools().into_iter().map(|(n, p)| (n, b(&p))).collect(),
            },
            build_dir,
        })
    }
}

/// The tools a build runs that cargo does not track by content, resolved through `PATH`:
/// rustc's default linker `cc`, and the C compilers build scripts run (`CC`, `CXX`, else
/// `cc` and `c++`). One missing is left out (the same on both sides of a comparison).
fn tools() -> Vec<(String, PathBuf)> {
    let env: std::collections::HashMap<OsString, OsString> = std::env::vars_os().collect();
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut names: Vec<(String, OsString)> =
        vec![("cc".into(), "cc".into()), ("c++".into(), "c++".into())];
    for var in ["CC", "CXX", "RUSTC_LINKER"] {
        if let Some(v) = env.get(OsStr::new(var)).filter(|v| !v.is_empty()) {
            // `CC="ccache gcc"`: the first word is the program.
            let first = v
                .to_string_lossy()
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            names.push((var.to_string(), first.into()));
        }
    }
    names
        .into_iter()
        .filter_map(|(n, prog)| {
            crate::masquerade::resolve_program(Path::new(&prog), &env, &cwd).map(|p| (n, p))
        })
        .collect()
}

/// The `CARGO_HOME` cargo uses (absolute).
fn cargo_home() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    if let Some(h) = std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return Some(cwd.join(h));
    }
    let user_home = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    std::env::var_os(user_home).map(|h| Path::new(&h).join(".cargo"))
}

fn log(paths: &Paths, msg: &str) {
    client::log(paths, msg);
    if std::env::var_os("ZCFS_SNAPSHOT_VERBOSE").is_some() {
        eprintln!("zcfs: {msg}");
    }
}

fn json(config: &Config, paths: &Paths, req: &Request) -> Result<serde_json::Value, String> {
    match client::call(config, paths, req) {
        Ok((Reply::Json(s), _)) => serde_json::from_str(&s).map_err(|e| e.to_string()),
        Ok((Reply::Error(e), _)) => Err(e),
        Ok((other, _)) => Err(format!("unexpected reply {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Projects what verifies. Directories the mount lacks are made here, through the mount,
/// and the daemon is asked once more. Returns the daemon's compile count then (see
/// [`after`]).
pub fn before(config: &Config, paths: &Paths, at: &At) -> Option<u64> {
    // cargo holds `<profile>/.cargo-lock` while it builds there: no projection under a
    // cargo at work (the locks are held until the projection is done).
    let mut held = Vec::new();
    for lock in cargo_locks(&at.build_dir) {
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lock)
        else {
            continue;
        };
        let profile = lock.parent().unwrap_or(&at.build_dir).display();
        match f.try_lock() {
            Ok(()) => held.push(f),
            Err(_) => {
                log(
                    paths,
                    &format!("snapshot not projected: another cargo is building in {profile}"),
                );
                return None;
            }
        }
    }
    let req = Request::SnapshotProject {
        at: at.proto.clone(),
        env: std::env::vars_os()
            .map(|(k, v)| (Bytes(k.as_bytes().to_vec()), Bytes(v.as_bytes().to_vec())))
            .collect(),
    };
    for _ in 0..2 {
        let v = match json(config, paths, &req) {
            Ok(v) => v,
            Err(e) => {
                log(paths, &format!("snapshot not projected: {e}"));
                return None;
            }
        };
        let need: Vec<&str> = v["need_dirs"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
            .unwrap_or_default();
        if need.is_empty() {
            log(paths, &format!("snapshot: {v}"));
            return v["compiles"].as_u64();
        }
        for d in need {
            if let Err(e) = std::fs::create_dir_all(at.build_dir.join(d)) {
                log(paths, &format!("snapshot not projected: creating {d}: {e}"));
                return None;
            }
        }
    }
    None
}

/// cargo's lock files in a build dir: `<profile>/.cargo-lock` and
/// `<triple>/<profile>/.cargo-lock`.
fn cargo_locks(build_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let dirs = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    for d in dirs(build_dir) {
        let l = d.join(".cargo-lock");
        if l.is_file() {
            out.push(l);
        } else {
            out.extend(
                dirs(&d)
                    .into_iter()
                    .map(|p| p.join(".cargo-lock"))
                    .filter(|l| l.is_file()),
            );
        }
    }
    out
}

/// Records the units of the build dir that the daemon does not know yet. Their inputs
/// need the packages' roots, from `cargo metadata`, only asked when some unit is new.
pub fn after(
    config: &Config,
    paths: &Paths,
    at: &At,
    since: Option<u64>,
    cargo: &OsStr,
    args: &[OsString],
) {
    let t0 = std::time::Instant::now();
    // No compile since the projection: cargo built nothing a snapshot could record (a unit
    // cargo runs builds through the wrapper, or makes its dependents do so).
    if since.is_some() {
        let req = Request::SnapshotRecord {
            at: at.proto.clone(),
            units: Vec::new(),
            refused: Vec::new(),
            since,
        };
        if let Ok(v) = json(config, paths, &req)
            && v["unchanged"] == true
        {
            log(
                paths,
                &format!("snapshot: nothing built ({:?})", t0.elapsed()),
            );
            return;
        }
    }
    let s = survey::survey(&at.build_dir);
    let t_survey = t0.elapsed();
    let mut units: Vec<crate::proto::SnapUnit> = s.units.iter().map(|f| f.unit.clone()).collect();
    let req = Request::SnapshotRecord {
        at: at.proto.clone(),
        units: units.clone(),
        refused: s.refused.clone(),
        since: None,
    };
    let v = match json(config, paths, &req) {
        Ok(v) => v,
        Err(e) => {
            log(paths, &format!("snapshot not recorded: {e}"));
            return;
        }
    };
    let need: std::collections::HashSet<&str> = v["need_inputs"]
        .as_array()
        .map(|a| a.iter().filter_map(|k| k.as_str()).collect())
        .unwrap_or_default();
    if need.is_empty() {
        log(
            paths,
            &format!(
                "snapshot: nothing new ({} units; survey {t_survey:?}, in all {:?})",
                s.units.len(),
                t0.elapsed()
            ),
        );
        return;
    }
    let roots = match super::cargo::metadata(cargo, args, false) {
        Ok(m) => survey::package_roots(&m),
        Err(e) => {
            log(paths, &format!("snapshot not recorded: {e:#}"));
            return;
        }
    };
    let mut refused = Vec::new();
    for (u, f) in units.iter_mut().zip(&s.units) {
        if !need.contains(u.key.as_str()) {
            continue;
        }
        match survey::inputs(f, &at.build_dir, &roots) {
            Ok((i, env)) => {
                u.inputs = Some(i);
                u.env = env;
            }
            Err(r) => refused.push((u.key.clone(), r)),
        }
    }
    let req = Request::SnapshotRecord {
        at: at.proto.clone(),
        units,
        refused,
        since: None,
    };
    match json(config, paths, &req) {
        Ok(v) => log(paths, &format!("snapshot recorded: {v}")),
        Err(e) => log(paths, &format!("snapshot not recorded: {e}")),
    }
}

/// Runs cargo and waits for it. Ctrl-C reaches cargo (same process group) and is ignored
/// here, so that this process outlives cargo and reports its status; a SIGTERM or SIGHUP
/// sent to this process alone (a CI job's timeout) is passed on to cargo.
pub fn run_child(cmd: &mut Command) -> std::io::Result<ExitStatus> {
    let mut child = cmd.spawn()?;
    #[cfg(unix)]
    {
        CHILD.store(child.id() as i32, std::sync::atomic::Ordering::SeqCst);
        // SAFETY: SIG_IGN has no handler; `forward` only reads an atomic and calls
        // `kill`, both async-signal-safe.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGQUIT, libc::SIG_IGN);
            let handler = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::signal(libc::SIGTERM, handler);
            libc::signal(libc::SIGHUP, handler);
        }
    }
    child.wait()
}

/// The pid of the cargo this process waits for (0: none).
#[cfg(unix)]
static CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

#[cfg(unix)]
extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(std::sync::atomic::Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}
