//! Bad input and faults: each one is logged, the build still succeeds by running rustc, and
//! nothing wrong is ever served.

mod common;

use common::{Env, RootMount, ZCFS};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;

fn packs(env: &Env) -> Vec<PathBuf> {
    let mut v = vec![];
    for shard in std::fs::read_dir(env.cache.join("packs"))
        .unwrap()
        .flatten()
    {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            v.push(f.path());
        }
    }
    v.sort();
    v
}

/// The pack holding the outputs of the unit whose rlib starts with `lib_prefix`: its header
/// (before the payloads) names the outputs.
fn pack_of(env: &Env, lib_prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = packs(env)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
            let header = &bytes[..header_len.min(bytes.len())];
            header
                .windows(lib_prefix.len())
                .any(|w| w == lib_prefix.as_bytes())
        })
        .collect();
    assert_eq!(found.len(), 1, "packs naming {lib_prefix}: {found:?}");
    found.into_iter().next().unwrap()
}

#[test]
fn corrupt_and_truncated_packs_are_misses_and_removed() {
    let env = Env::new();
    env.cargo(&["build"]).assert_ok();
    let expected = env.run_app();
    // A fresh daemon has verified nothing yet.
    env.stop();
    assert_eq!(packs(&env).len(), 7);
    // Damage two units of which neither depends on the other (a recompiled dependency
    // changes its dependents' keys, so their packs would never be read): flip the first
    // payload byte of zt_core's pack (payloads start at the header length rounded up to
    // 4 KiB), truncate outside's.
    let all = [pack_of(&env, "libzt_core-"), pack_of(&env, "liboutside-")];
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&all[0])
        .unwrap();
    let mut hl = [0u8; 4];
    f.read_exact_at(&mut hl, 12).unwrap();
    let first_payload = (u32::from_le_bytes(hl) as u64).div_ceil(4096) * 4096;
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, first_payload).unwrap();
    f.write_all_at(&[byte[0] ^ 0xff], first_payload).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&all[1])
        .unwrap();
    f.set_len(5000).unwrap();
    drop(f);

    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    // Both damaged units miss; their dependents may miss too, because rustc's rlibs are not
    // byte-reproducible (random object names), so a recompiled dependency changes their keys.
    assert_eq!(b.hits + b.misses, 7, "{}", b.stderr);
    assert!(b.misses >= 2);
    assert_eq!(
        b.stats["corrupt_packs"],
        2,
        "{}\n{}",
        b.stats,
        env.daemon_log()
    );
    assert_eq!(b.stats["error_reasons"]["corrupt pack"], 2);
    assert!(
        !all[0].exists() && !all[1].exists(),
        "corrupt packs removed"
    );
    assert_eq!(env.run_app(), expected, "nothing wrong was served");
    assert!(env.daemon_log().contains("corrupt"));
    // They were stored again; the next clean build hits everywhere.
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.misses, 0);
}

#[test]
fn garbage_on_the_socket_does_not_hurt_the_daemon() {
    let env = Env::new();
    env.cargo(&["build"]).assert_ok();
    let pid = env.daemon_pid().unwrap();
    let status: serde_json::Value =
        serde_json::from_slice(&env.zcfs(&["status", "--json"]).stdout).unwrap();
    let sock = status["socket"].as_str().unwrap().to_string();
    let send = |bytes: &[u8]| {
        let mut s = UnixStream::connect(&sock).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = vec![];
        let _ = std::io::Read::read_to_end(&mut s, &mut sink);
    };
    send(b"GET / HTTP/1.1\r\n\r\n");
    send(&[0u8; 100]);
    // A valid header announcing a huge body.
    let mut h = b"ZCFS".to_vec();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&[0u8; 16]);
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(&[0u8; 4]);
    send(&h);
    // A valid header with an undecodable body.
    let mut h = b"ZCFS".to_vec();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&[0u8; 16]);
    h.extend_from_slice(&8u32.to_le_bytes());
    h.extend_from_slice(&[0u8; 4]);
    h.extend_from_slice(&[0xff; 8]);
    send(&h);
    // A frame cut short.
    send(&h[..20]);
    assert_eq!(env.daemon_pid(), Some(pid), "still the same daemon");
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.misses, 0);
    assert!(env.daemon_log().contains("bad frame"));
}

#[test]
fn full_disk_stores_nothing_and_builds_succeed() {
    let env = Env::new();
    let Some(_m) = RootMount::new(&["-t", "tmpfs", "-o", "size=2m", "tmpfs"], &env.cache) else {
        return;
    };
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(
        b.stats["error_reasons"]["store full"].as_u64().unwrap_or(0) >= 1,
        "{}\n{}",
        b.stats,
        env.daemon_log()
    );
    assert!(env.run_app().contains("mac=42"));
    // What did fit is still served correctly.
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(env.run_app().contains("mac=42"));
    env.stop();
}

#[test]
fn read_only_cache_dir_serves_hits_and_stores_nothing() {
    let env = Env::new();
    env.cargo(&["build"]).assert_ok();
    env.stop();
    let Some(_bind) = RootMount::new(&["--bind", env.cache.to_str().unwrap()], &env.cache) else {
        return;
    };
    assert!(
        Command::new("mount")
            .args(["-o", "remount,ro,bind"])
            .arg(&env.cache)
            .status()
            .unwrap()
            .success()
    );
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.hits, 7, "hits from a read-only store: {}", b.stderr);
    // A miss cannot be stored: counted, and the build is fine.
    env.write(
        "util/src/foo.rs",
        "pub fn name() -> &'static str { \"ro\" }\n",
    );
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(env.run_app().contains("foo=ro"));
    let s = env.stats();
    assert!(
        s["error_reasons"]["store read-only"].as_u64().unwrap_or(0) >= 1,
        "{s}"
    );
    env.stop();
}

#[test]
fn vanished_input_is_never_a_hit() {
    let env = Env::new();
    env.cargo(&["build"]).assert_ok();
    std::fs::remove_file(env.ws.join("util/data.bin")).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(env.ws.join("util/src/lib.rs"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    let b = env.cargo(&["build"]);
    assert!(!b.status.success(), "rustc reports the missing file");
    assert!(b.stderr.contains("data.bin"), "{}", b.stderr);
    assert_eq!(b.hits, 0);
}

#[test]
fn malformed_arguments_get_rustc_own_answer() {
    let env = Env::new();
    for args in [
        vec!["--crate-name"],
        vec!["--crate-type", "nonsense", "x.rs"],
        vec!["--emit=link", "--out-dir"],
        vec!["@/nonexistent/argfile"],
    ] {
        let direct = Command::new("rustc").args(&args).output().unwrap();
        let wrapped = env.command(ZCFS).arg("rustc").args(&args).output().unwrap();
        assert_eq!(direct.status.code(), wrapped.status.code(), "{args:?}");
        assert_eq!(direct.stderr, wrapped.stderr, "{args:?}");
    }
    let s = env.stats();
    assert_eq!(s["errors"], 0, "{s}");
}

#[test]
fn unreachable_daemon_falls_back_and_logs_why() {
    let mut env = Env::new();
    // A runtime dir that belongs to nobody we can use: a plain file in its place.
    let bogus = env.tmp.path().join("not-a-dir");
    std::fs::write(&bogus, b"").unwrap();
    env.var("ZCFS_RUNTIME_DIR", bogus.join("run").to_str().unwrap());
    let out = env
        .command("cargo")
        .args(["build"])
        .env("RUSTC_WRAPPER", ZCFS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.run_app().contains("mac=42"));
    let log = std::fs::read_to_string(env.cache.join("logs/client.log")).unwrap();
    assert!(log.contains("running the compiler uncached"), "{log}");
    assert!(
        log.contains("not-a-dir"),
        "the log says which path failed: {log}"
    );
}

/// The daemon hashes inputs it does not own. A file truncated while it is read must not
/// kill the daemon (a memory map of it would raise SIGBUS, and with a mount live every
/// build on it would then fail with ENOTCONN).
#[test]
fn input_truncated_while_hashed_does_not_kill_the_daemon() {
    let env = Env::new();
    let dir = env.tmp.path().join("trunc");
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub fn f() {}\n").unwrap();
    let big = dir.join("libbig.rlib");
    const SIZE: u64 = 256 << 20;
    std::fs::File::create(&big).unwrap().set_len(SIZE).unwrap();
    let compile = || {
        env.command(ZCFS)
            .current_dir(&dir)
            .args([
                "rustc",
                "--crate-name",
                "t",
                "--crate-type",
                "lib",
                "--edition=2021",
                "--emit=dep-info,metadata",
                "--error-format=json",
                "--out-dir",
                "out",
                "--extern",
                "big=libbig.rlib",
                "lib.rs",
            ])
            .output()
            .unwrap()
    };
    compile();
    let pid = env.daemon_pid().expect("a daemon runs");
    // Flip the extern between empty and large while compiles hash it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let big = big.clone();
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.set_len(0).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(300));
                f.set_len(SIZE).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    for _ in 0..12 {
        compile();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    assert_eq!(
        env.daemon_pid(),
        Some(pid),
        "the daemon survived\n{}",
        env.daemon_log()
    );
}

/// A pack whose header claims impossible sizes (a hostile or broken store, or one day a
/// remote): refused when read, counted, never a panic; the unit is compiled.
#[test]
fn crafted_pack_with_huge_sizes_is_refused_and_counted() {
    let env = Env::new();
    env.cargo(&["build"]).assert_ok();
    let expected = env.run_app();
    env.stop();
    let path = pack_of(&env, "libutil-");
    let mut bytes = std::fs::read(&path).unwrap();
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    // The first entry's size (at 80 + 6) and the stdout length: both past any file.
    bytes[86..94].copy_from_slice(&(u64::MAX - 4095).to_le_bytes());
    bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    // Sealed again, as a hostile writer would: the checksum matches.
    bytes[48..80].fill(0);
    let sum = blake3::hash(&bytes[..header_len]);
    bytes[48..80].copy_from_slice(sum.as_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(b.misses >= 1, "{}", b.stderr);
    assert!(
        b.stats["corrupt_packs"].as_u64().unwrap_or(0) >= 1,
        "{}",
        b.stats
    );
    assert!(!path.exists(), "removed");
    assert_eq!(env.run_app(), expected, "nothing wrong was served");
    let log = env.daemon_log();
    assert!(!log.contains("panicked"), "{log}");
}
