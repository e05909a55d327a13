//! Real builds with their target dir on a zcfs mount, without the wrapper: rustc, rust-lld
//! (mmap writes), GNU ld (in-place truncation), a build script, a proc macro, incremental
//! sessions, `cargo test` running binaries from the mount, and `cargo clean`.

mod common;

use common::{Env, is_mounted, ok};
use std::process::Output;

fn compiled(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Compiling "))
        .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn cargo_build_and_test_on_the_mount() {
    let env = Env::new();
    let _m = env.mount(&env.target());
    let b = env.cargo_plain(&env.ws, &["build"]);
    ok(&b);
    assert_eq!(compiled(&b).len(), 6, "{:?}", compiled(&b));
    assert!(env.run_app().contains("mac=42"));
    // No-op.
    let b = env.cargo_plain(&env.ws, &["build"]);
    ok(&b);
    assert!(
        compiled(&b).is_empty(),
        "{}",
        String::from_utf8_lossy(&b.stderr)
    );
    // Real files were opened in passthrough mode: the kernel did their I/O.
    let st = env.zcfs(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let m = &v["mounts"][0];
    assert_eq!(m["passthrough"], true, "{m}");
    assert!(m["opens_passthrough"].as_u64().unwrap() > 50, "{m}");
    assert_eq!(m["opens_cached"], 0, "{m}");
    // Tests run from the mount.
    let t = env.cargo_plain(&env.ws, &["test"]);
    ok(&t);
    assert!(String::from_utf8_lossy(&t.stdout).contains("answer_is_42 ... ok"));
    // An edit: incremental recompile on the mount.
    env.write(
        "util/src/foo.rs",
        "pub fn name() -> &'static str { \"edited\" }\n",
    );
    ok(&env.cargo_plain(&env.ws, &["build"]));
    assert!(env.run_app().contains("foo=edited"));
    // Everything cargo wrote is real: it is all there after unmounting.
    let out = env.zcfs(&["unmount", env.target().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.run_app().contains("foo=edited"));
    let b = env.cargo_plain(&env.ws, &["build"]);
    ok(&b);
    assert!(compiled(&b).is_empty(), "still a no-op without the mount");
}

#[test]
fn gnu_ld_truncates_in_place_on_the_mount() {
    let mut env = Env::new();
    env.var("RUSTFLAGS", "-C link-arg=-fuse-ld=bfd");
    let _m = env.mount(&env.target());
    let b = env
        .command("cargo")
        .arg("build")
        .env("RUSTFLAGS", "-C link-arg=-fuse-ld=bfd")
        .output()
        .unwrap();
    ok(&b);
    assert!(env.run_app().contains("c=5"));
    // Relink over the existing binary (in place).
    env.write(
        "app/src/main.rs",
        &env.read("app/src/main.rs").replace("zt=", "zt:"),
    );
    let b = env
        .command("cargo")
        .arg("build")
        .env("RUSTFLAGS", "-C link-arg=-fuse-ld=bfd")
        .output()
        .unwrap();
    ok(&b);
    assert!(env.run_app().contains("zt:1"));
}

#[test]
fn cargo_clean_empties_the_mount_and_reports_busy() {
    let env = Env::new();
    let _m = env.mount(&env.target());
    ok(&env.cargo_plain(&env.ws, &["build"]));
    let c = env.cargo_plain(&env.ws, &["clean"]);
    // cargo removes everything inside, then cannot remove the mount point itself.
    assert!(!c.status.success());
    let err = String::from_utf8_lossy(&c.stderr);
    assert!(err.contains("busy") || err.contains("Busy"), "{err}");
    assert!(is_mounted(&env.target()));
    assert_eq!(std::fs::read_dir(env.target()).unwrap().count(), 0, "empty");
    // A consistent state: the next build works and the one after is a no-op.
    ok(&env.cargo_plain(&env.ws, &["build"]));
    let b = env.cargo_plain(&env.ws, &["build"]);
    ok(&b);
    assert!(compiled(&b).is_empty());
}

/// A workspace of hundreds of crates builds through the mount, cold and warm, under the
/// common open-file limit of 1,024 (soft and hard: the daemon cannot raise it), and the
/// daemon stays well below it: no fd per directory or per pack.
#[test]
fn a_big_workspace_builds_under_the_common_open_file_limit() {
    const CRATES: usize = 300;
    const LIMIT: u64 = 1024;
    let env = Env::snapshots();
    let ws = common::many_crates(&env.tmp.path().join("big"), CRATES);
    // Hits are what is measured here: no snapshot (its records are checked last).
    let build_with = |args: &[&str]| {
        let mut cmd = env.command(common::ZCFS);
        cmd.arg("cargo").args(args).current_dir(&ws);
        common::limit_open_files(&mut cmd, LIMIT);
        env.build_with(cmd)
    };
    let build = || build_with(&["--no-snapshot", "build", "-q"]);
    let watch = |pid: u32, stop: std::sync::Arc<std::sync::atomic::AtomicBool>| {
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(common::open_fds(pid));
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            peak
        })
    };
    let b = build();
    b.assert_ok();
    assert_eq!(b.misses as usize, CRATES + 1, "{}", b.stderr);
    let pid = env.daemon_pid().expect("daemon");
    let limit = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limit
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 1024 ")),
        "the daemon runs under the limit:\n{limit}"
    );
    // Warm: every unit a hit, projected; the daemon's fds watched meanwhile.
    std::fs::remove_dir_all(ws.join("target/debug")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch(pid, stop.clone());
    let b = build();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = watcher.join().unwrap();
    b.assert_ok();
    assert_eq!(b.hits as usize, CRATES + 1, "{}", b.stderr);
    assert_eq!(b.stats["hits_projected"], b.stats["hits"], "{}", b.stats);
    assert!(peak < 512, "daemon peak fds {peak}");
    let out = std::process::Command::new(ws.join("target/debug/top"))
        .output()
        .unwrap();
    let expect: usize = (0..CRATES).sum();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        expect.to_string()
    );
    // With the snapshot: recorded after a build, then every unit projected from it, under
    // the same limit and well below it.
    build_with(&["build", "-q"]).assert_ok();
    assert_eq!(
        env.stats()["snapshot"]["recorded"].as_u64(),
        Some(CRATES as u64 + 1),
        "{}",
        env.stats()
    );
    std::fs::remove_dir_all(ws.join("target/debug")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch(pid, stop.clone());
    let b = build_with(&["build", "-q"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = watcher.join().unwrap();
    b.assert_ok().assert_noop();
    assert_eq!(
        b.stats["snapshot"]["projected"].as_u64(),
        Some(CRATES as u64 + 1)
    );
    assert!(peak < 512, "daemon peak fds {peak}");
    let out = std::process::Command::new(ws.join("target/debug/top"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        expect.to_string()
    );
}
