//! Rust hits, each scenario without and with a mount (`scenarios!`): spec T1, T2, T3, T23,
//! T24; and T30's two target dirs without a mount (restored files, rewritten dep-info).

mod common;

use common::{Env, mtime};
use std::path::Path;

/// rustc compiles in one build of the fixture: app, zt_core, zt_core's build script, mac,
/// util, cdy, outside.
const UNITS: u64 = 7;

/// Every unit's fingerprint files exist (spec C1): each fingerprint hash file of a compile
/// unit has its `dep-` file, and its dir has `invoked.timestamp`.
fn assert_fingerprints_complete(env: &Env) {
    let fp = env.target().join("debug/.fingerprint");
    let mut units = 0;
    for dir in std::fs::read_dir(&fp).unwrap().flatten() {
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        let mut has_unit = false;
        for f in &files {
            let compile_unit = (f.starts_with("lib-")
                || f.starts_with("bin-")
                || f.starts_with("build-script-")
                || f.starts_with("test-"))
                && !f.ends_with(".json");
            if compile_unit {
                units += 1;
                has_unit = true;
                assert!(
                    files.contains(&format!("dep-{f}")),
                    "{}: no dep-{f} in {files:?}",
                    dir.path().display()
                );
            }
        }
        // Build-script runs keep their invoked.timestamp under build/ instead.
        assert!(
            !has_unit || files.iter().any(|f| f == "invoked.timestamp"),
            "{}: no invoked.timestamp in {files:?}",
            dir.path().display()
        );
    }
    assert_eq!(units as u64, UNITS, "compile units with fingerprints");
}

/// Every output cargo checks (spec C6) exists: rlib and rmeta of each lib, each unit's .d.
fn assert_outputs_complete(env: &Env) {
    for lib in ["util", "zt_core", "outside"] {
        for ext in ["rlib", "rmeta"] {
            let found = env
                .deps(&format!("lib{lib}-"))
                .iter()
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
                .count();
            assert_eq!(found, 1, "lib{lib}-*.{ext}");
        }
        assert_eq!(
            env.deps(&format!("{lib}-"))
                .iter()
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("d"))
                .count(),
            1,
            "{lib}-*.d"
        );
    }
    assert_eq!(env.deps("libmac-").len(), 1, "proc-macro .so");
    assert_eq!(env.deps("libcdy.so").len(), 1, "cdylib .so");
    assert!(env.target().join("debug/app").is_file());
}

#[test]
fn t30_two_target_dirs_without_a_mount() {
    let mut env = Env::new();
    let a = env.ws.join("a");
    let b = env.ws.join("b");
    env.var("CARGO_TARGET_DIR", a.to_str().unwrap());
    env.cargo(&["build"]).assert_ok();
    env.var("CARGO_TARGET_DIR", b.to_str().unwrap());
    let build = env.cargo(&["build"]);
    build.assert_ok();
    // zt_core holds its OUT_DIR path and app links it: they miss; the rest are served.
    assert_eq!(
        (build.hits, build.misses),
        (UNITS - 2, 2),
        "{}",
        build.stderr
    );
    assert_eq!(build.stats["hits_rebased"], UNITS - 2);
    assert_eq!(build.stats["hits_restored"], UNITS - 2);
    let util_d = std::fs::read_dir(b.join("debug/deps"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("util-") && n.ends_with(".d")
        })
        .unwrap();
    let text = std::fs::read_to_string(&util_d).unwrap();
    assert!(
        text.contains(&format!("{}/debug/deps/", b.display())),
        "{text}"
    );
    assert!(!text.contains(&format!("{}/", a.display())), "{text}");
    let out = std::process::Command::new(b.join("debug/app"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("mac=42"));
    env.cargo(&["build"]).assert_ok().assert_noop();
}

scenarios_with_snapshots! {
    fn t1_cold_build_then_noop(mounted: bool) {
        let env = Env::for_mode(mounted);
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, UNITS, "{}", b.stderr);
        assert_eq!(b.hits, 0);
        assert_eq!(b.errors, 0, "{}", env.daemon_log());
        // Under `zcfs cargo` the build script's `cc -c` is cached (and stored) too.
        let c_stored = b.stats["languages"]["c"]["misses"].as_u64().unwrap_or(0);
        assert_eq!(b.stats["stored"], UNITS + c_stored, "{}", env.daemon_log());
        env.cargo(&["build"]).assert_ok().assert_noop();
    }

    fn t2_clean_then_all_hits(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        let plain = env.run_app();
        env.clean();
        let b = env.cargo(&["build"]);
        b.assert_ok();
        if env.snapshots_on() {
            // Every unit projected from the snapshot instead: cargo runs none.
            b.assert_noop();
            assert!(b.projected >= UNITS, "{}", b.stats["snapshot"]);
        } else {
            assert_eq!(b.hits, UNITS, "every unit is a hit:\n{}", b.stderr);
        }
        assert_eq!(b.misses, 0);
        assert_fingerprints_complete(&env);
        assert_outputs_complete(&env);
        assert_eq!(env.run_app(), plain, "the restored binary behaves the same");
        env.cargo(&["build"]).assert_ok().assert_noop();
    }

    fn t3_repeated_clean_builds_never_rebuild_spuriously(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        for round in 0..20 {
            env.clean();
            let b = env.cargo(&["build"]);
            b.assert_ok();
            if env.snapshots_on() {
                b.assert_noop();
                assert!(b.projected >= UNITS, "round {round}: {}", b.stats["snapshot"]);
            } else {
                assert_eq!(b.hits, UNITS, "round {round}: {}", b.stderr);
            }
            let again = env.cargo(&["build"]);
            again.assert_ok();
            assert!(
                again.is_noop(),
                "round {round}: spurious rebuild {:?}\n{}",
                again.compiled,
                again.stderr
            );
        }
    }

    fn t23_uplifted_binary_is_a_hard_link_of_deps(mounted: bool) {
        use std::os::unix::fs::MetadataExt;
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        env.clean();
        env.cargo(&["build"]).assert_ok();
        let up = std::fs::metadata(env.target().join("debug/app")).unwrap();
        let deps: Vec<_> = env
            .deps("app-")
            .into_iter()
            .filter(|p| p.extension().is_none())
            .collect();
        assert_eq!(deps.len(), 1, "{deps:?}");
        let d = std::fs::metadata(&deps[0]).unwrap();
        assert_eq!((up.dev(), up.ino()), (d.dev(), d.ino()), "same inode");
        assert_eq!(up.nlink(), 2);
        assert_eq!(up.mode() & 0o111, 0o111, "executable");
        // Deleting the uplifted copy: cargo links it again without calling the wrapper.
        std::fs::remove_file(env.target().join("debug/app")).unwrap();
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.hits + b.misses, 0, "no compile for a missing uplift");
        assert!(env.target().join("debug/app").is_file());
    }

    fn t24_deleted_output_is_restored_by_a_hit(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        let rlib = env
            .deps("libutil-")
            .into_iter()
            .find(|p| p.extension().and_then(|e| e.to_str()) == Some("rlib"))
            .unwrap();
        std::fs::remove_file(&rlib).unwrap();
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(!b.stderr.contains("E0463"), "{}", b.stderr);
        assert!(b.compiled.contains(&"util".to_string()), "{:?}", b.compiled);
        assert_eq!(
            b.misses, 0,
            "util and its dependents are hits: {}",
            b.stderr
        );
        assert!(b.hits >= 2);
        assert!(rlib.is_file());
        env.cargo(&["build"]).assert_ok().assert_noop();
        assert!(mtime(Path::new(&rlib)) > 0);
    }
}
