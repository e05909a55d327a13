//! Daemon lifecycle: auto-start, status/stop, version replacement, idle exit, a daemon
//! killed in the middle of a build, socket privacy.

mod common;

use common::{Env, ZCFS, wait_until};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn lifecycle_log(env: &Env) -> String {
    std::fs::read_to_string(env.cache.join("logs/lifecycle.log")).unwrap_or_default()
}

#[test]
fn auto_start_status_and_stop() {
    let env = Env::new();
    let s = env.zcfs(&["status"]);
    assert_eq!(s.status.code(), Some(3), "no daemon yet");
    assert!(String::from_utf8_lossy(&s.stdout).contains("no daemon running"));

    env.cargo(&["build"]).assert_ok();
    let out = env.zcfs(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["running"], true);
    let pid = v["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid));
    assert!(
        v["version"]
            .as_str()
            .unwrap()
            .starts_with(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(v["cache_dir"], env.cache.display().to_string());
    let socket = v["socket"].as_str().unwrap().to_string();
    // Owner-only socket in an owner-only directory.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(Path::new(&socket)), 0o600);
    assert_eq!(mode(&env.run), 0o700);
    let log = v["log_file"].as_str().unwrap();
    assert!(Path::new(log).starts_with(env.cache.join("logs")));
    assert!(lifecycle_log(&env).contains("start reason=\"no daemon was running\""));

    let out = env.zcfs(&["stop"]);
    assert!(out.status.success());
    wait_until(10, "daemon exit", || !alive(pid));
    assert!(!Path::new(&socket).exists(), "socket removed");
    assert!(lifecycle_log(&env).contains("exit reason=\"zcfs stop\""));
    // The next build starts a new one.
    env.cargo(&["build"]).assert_ok();
    assert_ne!(env.daemon_pid(), Some(pid));
}

#[test]
fn older_daemon_is_replaced_newer_daemon_is_used() {
    let mut env = Env::new();
    env.var("ZCFS_DEBUG_FAKE_VERSION", "0.0.1");
    env.cargo(&["build"]).assert_ok();
    let old = env.daemon_pid().unwrap();
    env.unset("ZCFS_DEBUG_FAKE_VERSION");
    // Our real version is newer: the build replaces the daemon and still hits.
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    let new = env.daemon_pid().unwrap();
    assert_ne!(new, old);
    wait_until(20, "old daemon exit", || !alive(old));
    assert_eq!(
        b.misses, 0,
        "the cache survives the replacement: {}",
        b.stderr
    );
    let log = lifecycle_log(&env);
    // Whichever wrapper starts the successor, the old daemon records why it left.
    assert!(
        log.contains("version=0.0.1+0 exit reason=\"replaced by newer version"),
        "{log}"
    );
    assert_eq!(log.matches(" start ").count(), 2, "{log}");

    // A newer daemon is used as it is.
    env.zcfs(&["stop"]);
    wait_until(10, "daemon exit", || !alive(new));
    env.var("ZCFS_DEBUG_FAKE_VERSION", "99.0.0");
    let out = env.zcfs(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    env.cargo(&["build"]).assert_ok();
    let newer = env.daemon_pid().unwrap();
    env.unset("ZCFS_DEBUG_FAKE_VERSION");
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(env.daemon_pid(), Some(newer), "the newer daemon is kept");
    assert_eq!(b.misses, 0);
}

#[test]
fn idle_daemon_exits() {
    let mut env = Env::new();
    env.var("ZCFS_IDLE_TIMEOUT", "2");
    env.cargo(&["build"]).assert_ok();
    let pid = env.daemon_pid().unwrap();
    wait_until(20, "idle exit", || !alive(pid));
    assert!(
        lifecycle_log(&env).contains("exit reason=\"idle for"),
        "{}",
        lifecycle_log(&env)
    );
}

#[test]
fn daemon_killed_mid_build_does_not_break_the_build() {
    let env = Env::new();
    let child = env
        .command("cargo")
        .args(["build"])
        .env("RUSTC_WRAPPER", ZCFS)
        .env("ZT_MAC_SLEEP_MS", "2000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(60, "util compile", || {
        env.daemon_log().contains("miss util-")
    });
    let pid = env.daemon_pid().unwrap();
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.run_app().contains("mac=42"));
    // The next compile starts a fresh daemon; results are right.
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    env.cargo(&["build"]).assert_ok();
    assert_ne!(env.daemon_pid(), Some(pid));
    assert!(env.run_app().contains("mac=42"));
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.misses, 0);
}

#[test]
fn many_clients_at_once_start_one_daemon() {
    let env = Env::new();
    let rustc = "rustc";
    let children: Vec<_> = (0..8)
        .map(|_| {
            env.command(ZCFS)
                .args([rustc, "-vV"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("rustc "));
    }
    let starts = lifecycle_log(&env).matches(" start ").count();
    assert_eq!(starts, 1, "{}", lifecycle_log(&env));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(env.stats()["uncacheable"]["probe"], 8);
}

#[test]
fn disabled_is_a_pure_pass_through() {
    let mut env = Env::new();
    env.var("ZCFS_DISABLE", "1");
    let out = env
        .command("cargo")
        .args(["build"])
        .env("RUSTC_WRAPPER", ZCFS)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!env.run.exists() || std::fs::read_dir(&env.run).unwrap().count() == 0);
    assert!(!env.cache.join("packs").exists(), "no daemon, no store");
}
