//! Crates that run the linker: bins, tests, proc-macros, cdylibs (spec T21, T22, K5).

mod common;

use common::Env;
use std::os::unix::fs::PermissionsExt;

scenarios_with_snapshots! {
    fn t22_tests_bins_and_cdylibs_are_hits_and_run(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        env.cargo(&["test", "--no-run"]).assert_ok();
        env.clean();
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0, "bins and cdylibs hit: {}", b.stderr);
        let b = env.cargo(&["test", "--no-run"]);
        b.assert_ok();
        assert_eq!(b.misses, 0, "test harnesses hit: {}", b.stderr);
        if env.snapshots_on() {
            // The build before projected the test units with the rest of the snapshot.
            b.assert_noop();
        } else {
            assert!(b.hits >= 5);
        }
        // The served files run.
        let t = env.cargo(&["test"]);
        t.assert_ok();
        assert!(t.stdout.contains("answer_is_42 ... ok"), "{}", t.stdout);
        let r = env.cargo(&["run", "-q", "-p", "app"]);
        r.assert_ok();
        assert!(r.stdout.contains("mac=42"));
        for p in env.deps("app-").into_iter().chain(env.deps("util-")) {
            if p.extension().is_none() {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o755, "{}", p.display());
            }
        }
        let so = env.target().join("debug/deps/libcdy.so");
        assert_eq!(
            std::fs::metadata(so).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    fn t22_linker_identity_and_static_libs_are_keyed(mounted: bool) {
        let mut env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        // Another `cc` first on PATH (same behaviour, other bytes): link-type units miss, the
        // rlibs hit.
        let bin = env.tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("cc"), "#!/bin/sh\nexec /usr/bin/cc \"$@\"\n").unwrap();
        std::fs::set_permissions(bin.join("cc"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        env.var("PATH", &path);
        env.clean();
        let b = env.cargo(&["build"]);
        b.assert_ok();
        // app, the build script, mac and cdy link; util, zt_core and outside do not.
        assert_eq!(b.misses, 4, "{}", b.stderr);
        assert_eq!(b.hits, 3);
        assert!(env.run_app().contains("c=5"));

        // The C library changes: the rlib that bundles it and the binary miss.
        env.write("zt_core/csrc/hello.c", "int zt_hello(void) { return 6; }\n");
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(b.compiled.contains(&"zt_core".into()));
        assert_eq!(b.hits, 0, "{}", b.stderr);
        assert!(env.run_app().contains("c=6"));
    }

    fn t21_restored_proc_macro_is_loaded_by_a_compiling_dependent(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        env.clean();
        // util changes (a miss) while mac is served from the cache: rustc dlopens the restored
        // proc-macro.
        let lib = env.read("util/src/lib.rs");
        env.write(
            "util/src/lib.rs",
            &format!("{lib}\npub fn extra() -> i32 {{ mac::answer!() + 1 }}\n"),
        );
        let b = env.cargo(&["build"]);
        b.assert_ok();
        // mac served from the cache: a hit, or projected from the snapshot.
        assert!(b.hits + b.projected >= 1 && b.misses >= 2, "{}", b.stderr);
        assert!(env.run_app().contains("mac=42"));
    }
}
