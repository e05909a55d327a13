//! Incremental compilation and inputs edited while rustc runs (spec T7, T34, D3, K4).

mod common;

use common::{Env, ZCFS};
use std::time::Duration;

scenarios! {
    fn t34_incremental_edit_revert_edit(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        assert!(
            env.target().join("debug/incremental").is_dir(),
            "incremental is on"
        );
        let a = env.read("util/src/foo.rs");
        let with = |s: &str| a.replace("\"foo\"", &format!("{s:?}"));
        env.write("util/src/foo.rs", &with("B"));
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.hits, 0);
        env.write("util/src/foo.rs", &a);
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0, "the revert hits");
        // A new edit: rustc compiles incrementally from a session the hit never touched.
        env.write("util/src/foo.rs", &with("C"));
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.hits, 0);
        assert!(env.run_app().contains("foo=C"), "{}", env.run_app());
        env.cargo(&["build"]).assert_ok().assert_noop();
        // Cache entries never hold incremental state: a clean build from the cache is complete.
        env.clean();
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0);
        assert!(env.run_app().contains("foo=C"));
    }

    fn t7_edit_during_compile_is_not_stored(mounted: bool) {
        let env = Env::for_mode(mounted);
        let original = env.read("util/src/foo.rs");
        // mac's macro sleeps while util expands it: the edit lands mid-compile.
        let mut child = env
            .command("cargo")
            .args(["build"])
            .env("RUSTC_WRAPPER", ZCFS)
            .env("ZT_MAC_SLEEP_MS", "4000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the daemon has answered util's lookup with a miss: rustc is running.
        common::wait_until(60, "util compile to start", || {
            env.daemon_log().contains("miss util-")
        });
        std::thread::sleep(Duration::from_millis(500));
        env.write(
            "util/src/foo.rs",
            &original.replace("\"foo\"", "\"edited\""),
        );
        assert!(child.wait().unwrap().success());
        let s = env.stats();
        assert!(
            s["not_stored"]["input modified during compile"]
                .as_u64()
                .unwrap_or(0)
                >= 1,
            "{s}\n{}",
            env.daemon_log()
        );
        // Cargo rebuilds; zcfs has no entry for either content.
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(b.compiled.contains(&"util".into()));
        assert_eq!(b.hits, 0, "{}", b.stderr);
        assert!(env.run_app().contains("foo=edited"));
        env.write("util/src/foo.rs", &original);
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(
            b.hits, 0,
            "the racing compile's content was not stored either"
        );
        assert!(env.run_app().contains("foo=foo\n"));
    }
}
