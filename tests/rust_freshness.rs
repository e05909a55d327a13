//! Cargo's mtime-based freshness after hits: spec scenarios T4, T8, T9, T19, T20.

mod common;

use common::{Env, mtime};
use std::path::{Path, PathBuf};

fn set_mtime(p: &Path, ns: i128) {
    let t = filetime::FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000) as i64,
        ns.rem_euclid(1_000_000_000) as u32,
    );
    filetime::set_file_mtime(p, t).unwrap();
}

fn glob_one(dir: &Path, prefix: &str, file: &str) -> PathBuf {
    let mut found = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().into_string().unwrap();
        if name.starts_with(prefix) && e.path().join(file).exists() {
            found.push(e.path().join(file));
        }
    }
    assert_eq!(
        found.len(),
        1,
        "{prefix}*/{file} in {}: {found:?}",
        dir.display()
    );
    found.pop().unwrap()
}

fn ext(env: &Env, prefix: &str, ext: &str) -> PathBuf {
    env.deps(prefix)
        .into_iter()
        .find(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .unwrap_or_else(|| panic!("{prefix}*.{ext}"))
}

scenarios_with_snapshots! {
    fn t4_touch_without_edit_reruns_as_hits(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(env.ws.join("util/src/lib.rs"))
            .unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(b.compiled.contains(&"util".into()), "{:?}", b.compiled);
        assert!(b.compiled.contains(&"app".into()), "{:?}", b.compiled);
        assert_eq!(b.misses, 0, "{}", b.stderr);
        assert!(b.hits >= 2);
        env.cargo(&["build"]).assert_ok().assert_noop();
    }

    fn t8_source_mtime_equal_to_dep_info_is_fresh(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        env.clean();
        env.cargo(&["build"]).assert_ok();
        let dep = glob_one(
            &env.target().join("debug/.fingerprint"),
            "util-",
            "dep-lib-util",
        );
        let src = env.ws.join("util/src/lib.rs");
        set_mtime(&src, mtime(&dep));
        env.cargo(&["build"]).assert_ok().assert_noop();
        set_mtime(&src, mtime(&dep) + 1);
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(b.compiled.contains(&"util".into()));
        assert_eq!(b.misses, 0);
    }

    fn t9_dependency_mtime_order(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        env.clean();
        env.cargo(&["build"]).assert_ok();
        let app = env
            .deps("app-")
            .into_iter()
            .find(|p| p.extension().is_none())
            .unwrap();
        let rlib = ext(&env, "libutil-", "rlib");
        let rmeta = ext(&env, "libutil-", "rmeta");
        // Outputs of a hit are never older than its extern inputs (spec M5).
        assert!(mtime(&app) >= mtime(&rlib));
        assert!(mtime(&rlib) >= mtime(&ext(&env, "libmac-", "so")));
        // Equal counts as fresh.
        let t = mtime(&app);
        set_mtime(&rlib, t);
        set_mtime(&rmeta, t);
        env.cargo(&["build"]).assert_ok().assert_noop();
        // One nanosecond newer: the dependent reruns (a hit), and the following build is a no-op.
        set_mtime(&rlib, t + 1);
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(
            b.compiled.contains(&"app".into()),
            "{:?}\n{}",
            b.compiled,
            b.stderr
        );
        assert_eq!(b.misses, 0);
        assert!(
            mtime(&app) > t,
            "the hit's output is not older than its input"
        );
        env.cargo(&["build"]).assert_ok().assert_noop();
    }

    fn t19_check_mode_outputs_take_cargo_mtime(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["check"]).assert_ok();
        env.clean();
        let b = env.cargo(&["check"]);
        b.assert_ok();
        assert_eq!(b.misses, 0, "{}", b.stderr);
        // Hits, or units projected from the snapshot.
        assert!(b.hits + b.projected >= 5);
        // Cargo sets check outputs to invoked.timestamp after the unit (C9); the hit's files
        // must accept that.
        let stamp = glob_one(
            &env.target().join("debug/.fingerprint"),
            "util-",
            "invoked.timestamp",
        );
        let rmeta = ext(&env, "libutil-", "rmeta");
        assert_eq!(mtime(&rmeta), mtime(&stamp));
        env.cargo(&["check"]).assert_ok().assert_noop();
        env.cargo(&["build"]).assert_ok();
        env.cargo(&["check"]).assert_ok().assert_noop();
        env.cargo(&["build"]).assert_ok().assert_noop();
    }

    fn t20_build_script_binary_from_the_cache(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        env.clean();
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0);
        let build = env.target().join("debug/build");
        let script = glob_one(&build, "zt_core-", "build-script-build");
        let output = glob_one(&build, "zt_core-", "output");
        assert!(
            mtime(&output) >= mtime(&script),
            "the script's output is not older than the restored script"
        );
        env.cargo(&["build"]).assert_ok().assert_noop();
    }
}
