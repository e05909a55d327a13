//! Cargo scenarios that only exist with the target dir on a zcfs mount: spec T10, T11, T25,
//! T26, T30, T31, T35, T36, T37, T38. (T1–T24, T27–T29, T32–T34 run in both modes in the
//! `rust_*` suites.)

mod common;

use common::{Env, ZCFS, mtime, wait_until};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// rustc compiles in one build of the fixture (see rust_hits.rs).
const UNITS: u64 = 7;

/// Regular files under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file's mtime, size and content digest (the build's observable state), except
/// what cargo itself rewrites on a no-op build even without zcfs: its lock file and the
/// dep-info files of uplifted artifacts (`debug/*.d`, checked with plain cargo 1.95).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (i128, u64, String)> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap() != ".cargo-lock")
        .filter(|p| {
            !(p.parent() == Some(&dir.join("debug")) && p.extension().is_some_and(|e| e == "d"))
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            let digest = blake3::hash(&bytes).to_hex().to_string();
            (rel, (mtime(&p), bytes.len() as u64, digest))
        })
        .collect()
}

/// Asserts two snapshots are equal, naming the files that differ.
fn assert_same(
    a: &BTreeMap<PathBuf, (i128, u64, String)>,
    b: &BTreeMap<PathBuf, (i128, u64, String)>,
    what: &str,
) {
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => diffs.push(format!("{}: gone", k.display())),
            Some(w) if w != v => diffs.push(format!("{}: {v:?} -> {w:?}", k.display())),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        diffs.push(format!("{}: new", k.display()));
    }
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}

/// Position of the first daemon log line containing `what`.
fn log_pos(log: &str, what: &str) -> usize {
    log.lines()
        .position(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no log line with {what:?}"))
}

/// A RUSTC_WRAPPER script that runs zcfs and copies every stderr line of every compile to
/// `log`; if the file `arm` exists when `util` is compiled, it SIGKILLs zcfs right after
/// forwarding util's rmeta `artifact` line (and removes `arm`).
fn shim(env: &Env) -> PathBuf {
    let path = env.tmp.path().join("shim.py");
    std::fs::write(
        &path,
        r#"#!/usr/bin/env python3
import os, subprocess, sys
zcfs, log, arm = os.environ["SHIM_ZCFS"], os.environ["SHIM_LOG"], os.environ["SHIM_ARM"]
args = sys.argv[1:]
is_util = "--crate-name" in args and args[args.index("--crate-name") + 1] == "util"
p = subprocess.Popen([zcfs] + args, stderr=subprocess.PIPE)
with open(log, "ab") as out:
    for line in p.stderr:
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
        out.write(line)
        if is_util and os.path.exists(arm) and b'"$message_type":"artifact"' in line \
                and b'.rmeta"' in line:
            p.kill()
            p.wait()
            os.remove(arm)
            os._exit(137)
sys.exit(p.wait())
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Plain cargo with the shim as RUSTC_WRAPPER (the target dir must be mounted already).
fn cargo_with_shim(env: &Env, args: &[&str], target: &Path) -> std::process::Output {
    env.command("cargo")
        .args(args)
        .env("RUSTC_WRAPPER", shim(env))
        .env("CARGO_TARGET_DIR", target)
        .env("SHIM_ZCFS", ZCFS)
        .env("SHIM_LOG", env.tmp.path().join("shim.log"))
        .env("SHIM_ARM", env.tmp.path().join("arm"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn t10_pipelining_on_hits() {
    let env = Env::mounted();
    env.cargo(&["build"]).assert_ok();
    env.clean();
    let log_start = env.daemon_log().len();
    let b = env.cargo(&["build", "--message-format=json", "-j4"]);
    b.assert_ok();
    assert_eq!((b.hits, b.misses), (UNITS, 0), "{}", b.stderr);
    // Valid JSON, and every artifact cargo reports exists with content.
    let mut artifacts = 0;
    for line in b.stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["reason"] == "compiler-artifact" {
            for f in v["filenames"].as_array().unwrap() {
                let p = Path::new(f.as_str().unwrap());
                assert!(std::fs::metadata(p).unwrap().len() > 0, "{}", p.display());
                artifacts += 1;
            }
        }
    }
    assert!(artifacts >= 8, "{artifacts} artifacts");
    // Dependents were served after their dependencies (the hit log line is written once
    // the outputs are visible).
    let log = env.daemon_log();
    let last_build = &log[log_start..];
    let hit = |c: &str| log_pos(last_build, &format!("hit {c}"));
    assert!(hit("mac-") < hit("util-"));
    assert!(hit("util-") < hit("app-"));
    assert!(hit("zt_core-") < hit("app-"));
    assert!(hit("build_script_build-") < hit("zt_core-"));
    env.cargo(&["build"]).assert_ok().assert_noop();
    // The mount counts the kernel's requests; xattrs are refused once for good (not asked
    // again before every write).
    let st = env.zcfs(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let req = &v["mounts"][0]["requests"];
    assert!(req["lookup"].as_u64().unwrap() > 0, "{v:#}");
    assert!(req["create"].as_u64().unwrap() > 0, "{v:#}");
    assert!(req["xattr"].as_u64().unwrap_or(0) <= 1, "{v:#}");
}

#[test]
fn t11_pipelining_on_misses() {
    let env = Env::mounted();
    // zt_core (a lib) depends on util, whose codegen is made slow.
    let toml = env.read("zt_core/Cargo.toml");
    env.write(
        "zt_core/Cargo.toml",
        &format!("{toml}\n[dependencies]\nutil = {{ path = \"../util\" }}\n"),
    );
    let mut big = String::new();
    for i in 0..3000 {
        big.push_str(&format!(
            "#[inline(never)] pub fn f{i}(x: u64) -> u64 {{ let mut y = x; for k in 0..{i} {{ y = y.rotate_left(3) ^ k; }} y }}\n"
        ));
    }
    env.write("util/src/big.rs", &big);
    let lib = env.read("util/src/lib.rs");
    env.write("util/src/lib.rs", &format!("pub mod big;\n{lib}"));
    let b = env.cargo(&["build"]);
    b.assert_ok();
    let log = env.daemon_log();
    // zt_core's compile started before util's compile had finished and been stored.
    let zt_started = log_pos(&log, "miss zt_core-");
    let util_stored = log
        .lines()
        .position(|l| l.contains("util-") && l.contains("bound to"))
        .expect("util stored");
    assert!(
        zt_started < util_stored,
        "zt_core waited for util's rlib (no pipelining)"
    );
    env.cargo(&["build"]).assert_ok().assert_noop();
}

#[test]
fn t25_killed_hit_reruns_on_the_next_build() {
    let env = Env::mounted();
    env.cargo(&["build"]).assert_ok();
    // Empty the target through the mount (the mount stays).
    for e in std::fs::read_dir(env.target()).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    std::fs::write(env.tmp.path().join("arm"), "").unwrap();
    let killed = cargo_with_shim(&env, &["build"], &env.target());
    assert!(
        !killed.status.success(),
        "cargo must fail when the wrapper dies"
    );
    assert!(
        !env.tmp.path().join("arm").exists(),
        "the shim killed zcfs after util's rmeta line"
    );
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(b.compiled.contains(&"util".to_string()), "{:?}", b.compiled);
    assert_eq!(b.misses, 0, "{}", b.stderr);
    assert!(env.run_app().contains("mac=42"));
    env.cargo(&["build"]).assert_ok().assert_noop();
}

#[test]
fn t26_concurrent_builds_wait_for_the_lock() {
    let mut env = Env::mounted();
    env.var("ZT_MAC_SLEEP_MS", "3000");
    let first = env
        .command(ZCFS)
        .args(["cargo", "build"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(60, "the first build compiling", || {
        env.daemon_log().contains("miss ")
    });
    let second = env
        .command(ZCFS)
        .args(["cargo", "build"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success());
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("Blocking waiting for file lock"), "{err}");
    env.cargo(&["build"]).assert_ok().assert_noop();
}

#[test]
fn t30_two_target_dirs_share_entries_with_rewritten_paths() {
    let env = Env::mounted();
    let a = env.ws.join("a");
    let b_dir = env.ws.join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let _ma = env.mount(&a);
    let _mb = env.mount(&b_dir);
    let a_build = cargo_with_shim(&env, &["build"], &a);
    assert!(a_build.status.success());
    let before = env.stats();
    std::fs::remove_file(env.tmp.path().join("shim.log")).unwrap();
    let b_build = cargo_with_shim(&env, &["build"], &b_dir);
    assert!(
        b_build.status.success(),
        "{}",
        String::from_utf8_lossy(&b_build.stderr)
    );
    let after = env.stats();
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    let hits = n(&after, "hits") - n(&before, "hits");
    let rebased = n(&after, "hits_rebased") - n(&before, "hits_rebased");
    // Everything but zt_core (its outputs hold its OUT_DIR path) and app (links zt_core).
    assert_eq!(hits, UNITS - 2, "{after:#}");
    assert_eq!(rebased, hits);
    let a_bytes = a.as_os_str().as_encoded_bytes().to_vec();
    let mut a_slash = a_bytes.clone();
    a_slash.push(b'/');
    // b's dep-info and the replayed artifact lines name b.
    let mut dep_infos = 0;
    for p in files_under(&b_dir.join("debug/deps")) {
        let bytes = std::fs::read(&p).unwrap();
        assert!(!contains(&bytes, &a_slash), "{} names a/", p.display());
        if p.extension().is_some_and(|e| e == "d") {
            dep_infos += 1;
            assert!(
                contains(&bytes, b_dir.as_os_str().as_encoded_bytes()),
                "{}",
                p.display()
            );
        }
    }
    assert!(dep_infos >= 5);
    let log = std::fs::read_to_string(env.tmp.path().join("shim.log")).unwrap();
    let artifact_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("{\"$message_type\":\"artifact\""))
        .collect();
    assert!(artifact_lines.len() >= 5);
    for l in artifact_lines {
        assert!(l.contains(b_dir.to_str().unwrap()), "{l}");
        assert!(!l.contains(&format!("{}/", a.display())), "{l}");
    }
    // b builds again as a no-op, and so does a.
    let again = cargo_with_shim(&env, &["build"], &b_dir);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("Compiling"));
    let again = cargo_with_shim(&env, &["build"], &a);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("Compiling"));
}

#[test]
fn t30_second_checkout_misses_on_path_bound_entries() {
    let env = Env::mounted();
    env.cargo(&["build"]).assert_ok();
    let ws2 = env.tmp.path().join("ws2");
    common::copy_dir(&env.ws, &ws2);
    let b = env.cargo_in(&ws2, &["build"]);
    b.assert_ok();
    // Workspace members' outputs hold their checkout's path (debuginfo, metadata), and
    // those that run proc macros get it in `CARGO_MANIFEST_DIR`: they miss. The build
    // script (no debuginfo, no proc macro) and `outside` (the same path for both) hit.
    assert_eq!(b.misses, 5, "{}", b.stderr);
    assert_eq!(b.hits, 2, "{}", b.stderr);
    let mut ws1 = env.ws.as_os_str().as_encoded_bytes().to_vec();
    ws1.push(b'/');
    let target2 = ws2.join("target");
    for dir in ["debug/deps", "debug/build"] {
        for p in files_under(&target2.join(dir)) {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !contains(&bytes, &ws1),
                "{} names the other checkout",
                p.display()
            );
        }
    }
    let out = Command::new(target2.join("debug/app")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("mac=42"));
    env.cargo_in(&ws2, &["build"]).assert_ok().assert_noop();
}

#[test]
fn t30_build_dir_on_the_mount_target_dir_on_disk() {
    let mut env = Env::mounted();
    let bd = env.ws.join("bd");
    env.var("CARGO_BUILD_BUILD_DIR", bd.to_str().unwrap());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(common::is_mounted(&bd), "the build dir is the mount");
    assert!(!common::is_mounted(&env.target()));
    // Uplifted files crossed the mount boundary: copied, and they run.
    assert!(env.run_app().contains("mac=42"));
    env.cargo(&["build"]).assert_ok().assert_noop();
    std::fs::remove_dir_all(env.target()).unwrap();
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(env.run_app().contains("mac=42"));
    env.cargo(&["build"]).assert_ok().assert_noop();
}

#[test]
fn t31_checksum_freshness() {
    let mut env = Env::mounted();
    // On nightly if there is one; otherwise the stable toolchain with its unstable features
    // unlocked (RUSTC_BOOTSTRAP=1, which cargo and rustc both honour), so that a clean CI
    // machine runs this scenario too.
    let nightly = Command::new("cargo")
        .args(["+nightly", "-V"])
        .output()
        .is_ok_and(|o| o.status.success());
    let args: &[&str] = if nightly {
        &["+nightly", "build", "-Zchecksum-freshness"]
    } else {
        eprintln!("no nightly toolchain: stable with RUSTC_BOOTSTRAP=1");
        env.var("RUSTC_BOOTSTRAP", "1");
        &["build", "-Zchecksum-freshness"]
    };
    env.cargo(args).assert_ok();
    env.clean();
    let b = env.cargo(args);
    b.assert_ok();
    assert_eq!((b.hits, b.misses), (UNITS, 0), "{}", b.stderr);
    env.cargo(args).assert_ok().assert_noop();
    // Touch without edit: checksums unchanged, nothing reruns.
    let src = env.ws.join("util/src/lib.rs");
    let f = std::fs::File::options().append(true).open(&src).unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    env.cargo(args).assert_ok().assert_noop();
    // A real edit reruns util.
    env.write(
        "util/src/lib.rs",
        &format!("{}\npub fn more() {{}}\n", env.read("util/src/lib.rs")),
    );
    let b = env.cargo(args);
    b.assert_ok();
    assert!(b.compiled.contains(&"util".to_string()), "{:?}", b.compiled);
    env.cargo(args).assert_ok().assert_noop();
}

#[test]
fn t35_cargo_clean_leaves_no_stale_projections() {
    let env = Env::mounted();
    env.cargo(&["build"]).assert_ok();
    // Plain cargo on the mount point: everything is removed, then rmdir fails (documented).
    let plain = env.cargo_plain(&env.ws, &["clean"]);
    assert!(!plain.status.success());
    assert_eq!(std::fs::read_dir(env.target()).unwrap().count(), 0);
    // Remounting brings nothing back.
    let out = env.zcfs(&["unmount", env.target().to_str().unwrap()]);
    assert!(out.status.success());
    let out = env.zcfs(&["mount", env.target().to_str().unwrap()]);
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(msg.contains("(0 projections restored"), "{msg}");
    assert_eq!(std::fs::read_dir(env.target()).unwrap().count(), 0);
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.hits, UNITS);

    // `zcfs cargo clean` unmounts and removes the target dir.
    env.clean();
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.hits, UNITS);
    env.cargo(&["build"]).assert_ok().assert_noop();
}

#[test]
fn t35_cargo_clean_in_a_subdirectory_of_the_mount() {
    let mut env = Env::mounted();
    let mnt = env.ws.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let target = mnt.join("target");
    env.var("CARGO_TARGET_DIR", target.to_str().unwrap());
    let _m = env.mount(&mnt);
    env.cargo(&["build"]).assert_ok();
    let clean = env.cargo_plain(&env.ws, &["clean"]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(!target.exists());
    let st = env.zcfs(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let m = &v["mounts"][0];
    assert_eq!(m["dir"], mnt.to_str().unwrap());
    assert_eq!(m["projections"], 0, "{v:#}");
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.hits, UNITS);
}

#[test]
fn t36_remount_and_daemon_restart_keep_a_noop_with_identical_mtimes() {
    let env = Env::mounted();
    env.cargo(&["build"]).assert_ok();
    env.clean();
    env.cargo(&["build"]).assert_ok();
    let before = snapshot(&env.target());
    let out = env.zcfs(&["unmount", env.target().to_str().unwrap()]);
    assert!(out.status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok().assert_noop();
    assert_same(&before, &snapshot(&env.target()), "after a remount");
    let out = env.zcfs(&["stop"]);
    assert!(out.status.success());
    assert!(!common::is_mounted(&env.target()));
    let b = env.cargo(&["build"]);
    b.assert_ok().assert_noop();
    assert_same(&before, &snapshot(&env.target()), "after a daemon restart");
}

#[test]
fn t37_eviction_under_live_projections() {
    let mut env = Env::mounted();
    env.cargo(&["build"]).assert_ok();
    env.clean();
    env.cargo(&["build"]).assert_ok();
    let before = snapshot(&env.target());
    let rlib = env
        .deps("libutil-")
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "rlib"))
        .unwrap();
    // The store at its cap: below the cap, projected packs are kept.
    let out = env.zcfs(&["gc"]);
    assert!(out.status.success());
    assert_eq!(env.stats()["evicted_packs"], 0);
    // A daemon with a tiny cap: gc must evict, so it copies projections up first.
    env.zcfs(&["stop"]);
    env.var("ZCFS_MAX_SIZE", "4K");
    let out = env.zcfs(&["mount", env.target().to_str().unwrap()]);
    assert!(out.status.success());
    let mut open = std::fs::File::open(&rlib).unwrap();
    let mut head = [0u8; 8];
    open.read_exact(&mut head).unwrap();
    let out = env.zcfs(&["gc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = env.stats();
    assert!(s["packs_released"].as_u64().unwrap() > 0, "{s:#}");
    assert!(s["evicted_packs"].as_u64().unwrap() > 0, "{s:#}");
    assert_eq!(s["mounts"][0]["projections"], 0, "{s:#}");
    // An open file reads on, every file reads fully, and nothing changed.
    open.seek(SeekFrom::Start(0)).unwrap();
    let mut all = Vec::new();
    open.read_to_end(&mut all).unwrap();
    let rel = rlib.strip_prefix(env.target()).unwrap();
    assert_eq!(blake3::hash(&all).to_hex().to_string(), before[rel].2);
    assert_same(&before, &snapshot(&env.target()), "after eviction");
    env.cargo(&["build"]).assert_ok().assert_noop();
}

#[test]
fn t38_writes_through_an_uplift_link_never_change_the_cache() {
    let env = Env::mounted();
    env.cargo(&["build"]).assert_ok();
    env.clean();
    env.cargo(&["build"]).assert_ok();
    let app = env.target().join("debug/app");
    let cdy = env.target().join("debug/libcdy.so");
    let app_bytes = std::fs::read(&app).unwrap();
    let cdy_bytes = std::fs::read(&cdy).unwrap();
    // An in-place write through the uplift link: both names see it (one inode).
    let mut f = std::fs::File::options().write(true).open(&cdy).unwrap();
    f.seek(SeekFrom::Start(64)).unwrap();
    f.write_all(b"zcfs-was-here").unwrap();
    drop(f);
    let deps_cdy = env.target().join("debug/deps/libcdy.so");
    assert_eq!(
        std::fs::read(&deps_cdy).unwrap(),
        std::fs::read(&cdy).unwrap()
    );
    assert_ne!(std::fs::read(&cdy).unwrap(), cdy_bytes);
    let st = Command::new("strip").arg(&app).status().unwrap();
    assert!(st.success());
    assert_ne!(std::fs::read(&app).unwrap(), app_bytes);
    // Another target dir served from the cache gets the original bytes.
    let b = env.cargo(&["build", "--target-dir", "other"]);
    b.assert_ok();
    assert_eq!(
        std::fs::read(env.ws.join("other/debug/libcdy.so")).unwrap(),
        cdy_bytes
    );
    // So does this one, once cleaned.
    env.clean();
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.hits, UNITS);
    assert_eq!(std::fs::read(&app).unwrap(), app_bytes);
    assert_eq!(std::fs::read(&cdy).unwrap(), cdy_bytes);
    // Every pack still verifies.
    let out = env.zcfs(&["gc"]);
    assert!(out.status.success());
    let s = env.stats();
    assert_eq!(s["corrupt_packs"], 0, "{s:#}");
}

/// A target dir that is a symlink to the mounted directory: cargo names paths through the
/// link, zcfs mounts the directory it leads to, and hits are still projections (the daemon
/// resolves the link without looking through its own mount).
#[test]
fn a_symlinked_target_dir_gets_projected_hits() {
    let env = Env::mounted();
    let real = env.tmp.path().join("elsewhere/target");
    std::fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(&real, env.target()).unwrap();
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.misses, UNITS, "{}", b.stderr);
    assert!(common::is_mounted(&real), "the link's target is mounted");
    std::fs::remove_dir_all(env.target().join("debug")).unwrap();
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.hits, UNITS, "{}", b.stderr);
    assert_eq!(
        b.stats["hits_projected"], b.stats["hits"],
        "hits through the link are projected: {}",
        b.stats
    );
    assert!(env.run_app().contains("mac=42"));
    env.cargo(&["build"]).assert_ok().assert_noop();
}

/// The daemon is killed while the target dir is mounted (every access then fails with
/// ENOTCONN); the next `zcfs cargo build` removes the dead mount, mounts again and builds.
#[test]
fn a_dead_mount_is_replaced_by_the_next_zcfs_cargo() {
    let env = Env::mounted();
    env.cargo(&["build"]).assert_ok();
    let pid = env.daemon_pid().unwrap();
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    wait_until(10, "daemon death", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    let err = std::fs::metadata(env.target().join("debug")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(common::is_mounted(&env.target()));
    assert!(env.run_app().contains("mac=42"));
    // The projections came back from the journal: nothing to do.
    env.cargo(&["build"]).assert_ok().assert_noop();
}
