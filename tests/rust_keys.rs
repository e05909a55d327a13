//! What makes a hit and what makes a miss: spec scenarios T5, T6, T12–T18.

mod common;

use common::Env;
use std::path::PathBuf;

fn built_rlib(env: &Env, lib: &str) -> PathBuf {
    env.deps(&format!("lib{lib}-"))
        .into_iter()
        .find(|p| p.extension().and_then(|e| e.to_str()) == Some("rlib"))
        .unwrap()
}

fn touch(env: &Env, rel: &str) {
    let p = env.ws.join(rel);
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
}

scenarios_with_snapshots! {
    fn t5_t6_edit_misses_and_revert_hits_with_identical_outputs(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        let rlib = built_rlib(&env, "util");
        let original = std::fs::read(&rlib).unwrap();
        let original_foo = env.read("util/src/foo.rs");

        // T5: a real edit misses util and the units that depend on it.
        env.write(
            "util/src/foo.rs",
            &original_foo.replace("\"foo\"", "\"foo2\""),
        );
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.hits, 0, "{}", b.stderr);
        assert_eq!(b.misses, 2, "util and app miss: {:?}", b.compiled);
        assert!(env.run_app().contains("foo=foo2"));
        env.cargo(&["build"]).assert_ok().assert_noop();

        // T6: the revert is served from the cache, byte for byte.
        env.write("util/src/foo.rs", &original_foo);
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!((b.hits, b.misses), (2, 0), "{}", b.stderr);
        assert_eq!(std::fs::read(&rlib).unwrap(), original, "identical rlib");
        assert!(env.run_app().contains("foo=foo\n"));
        env.cargo(&["build"]).assert_ok().assert_noop();
    }

    fn t12_env_from_cargo_config(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        env.write(".cargo/config.toml", "[env]\nZT = \"2\"\n");
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(b.compiled.contains(&"util".into()), "{:?}", b.compiled);
        assert_eq!(b.hits, 0, "{}", b.stderr);
        assert!(b.misses >= 2);
        assert!(env.run_app().contains("zt=2\n"));
        env.write(".cargo/config.toml", "[env]\nZT = \"1\"\n");
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0, "the old entry serves ZT=1 again: {}", b.stderr);
        assert!(b.hits >= 2);
        assert!(env.run_app().contains("zt=1\n"));
    }

    fn t13_unset_and_empty_env_are_different_keys(mounted: bool) {
        let mut env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        assert!(env.run_app().contains("zt_opt=None"));
        env.var("ZT_OPT", "");
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(b.compiled.contains(&"util".into()));
        assert_eq!(
            b.hits, 0,
            "empty must not be served the unset result: {}",
            b.stderr
        );
        assert!(
            env.run_app().contains("zt_opt=Some(\"\")"),
            "{}",
            env.run_app()
        );
        env.unset("ZT_OPT");
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0);
        assert!(env.run_app().contains("zt_opt=None"));
    }

    fn t14_build_script_rustc_env_is_keyed(mounted: bool) {
        let mut env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        env.var("ZT_SHA", "sha1");
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(b.compiled.contains(&"zt_core".into()), "{:?}", b.compiled);
        assert_eq!(b.hits, 0, "{}", b.stderr);
        assert!(env.run_app().contains("sha=sha1"), "{}", env.run_app());
        let bin = std::fs::read(env.target().join("debug/app")).unwrap();
        assert!(
            bin.windows(4).any(|w| w == b"sha1"),
            "the binary holds the new SHA"
        );
    }

    fn t15_include_bytes_data_file(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        let original = env.read("util/data.bin");
        env.write("util/data.bin", "other data, longer\n");
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.hits, 0);
        assert!(b.misses >= 2);
        assert!(env.run_app().contains("data=19"));
        env.write("util/data.bin", &original);
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0, "{}", b.stderr);
        assert!(env.run_app().contains("data=15"));
    }

    fn t16_out_dir_file_same_content_hits_new_content_misses(mounted: bool) {
        let mut env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        // The build script runs again and writes an identical gen.rs (newer mtime).
        touch(&env, "zt_core/build.rs");
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(b.compiled.contains(&"zt_core".into()), "{:?}", b.compiled);
        assert_eq!(b.misses, 0, "identical generated code hits: {}", b.stderr);
        env.cargo(&["build"]).assert_ok().assert_noop();
        // Different generated code misses.
        env.var("ZT_GEN", "changed");
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(b.misses >= 2, "{}", b.stderr);
        assert!(env.run_app().contains("gen=changed"));
    }

    fn t17_module_alternative_appearing_is_never_hidden_by_a_hit(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        env.write(
            "util/src/foo/mod.rs",
            "pub fn name() -> &'static str { \"dir\" }\n",
        );
        touch(&env, "util/src/lib.rs");
        let b = env.cargo(&["build"]);
        assert!(!b.status.success(), "rustc must see both module files");
        assert!(b.stderr.contains("E0761"), "{}", b.stderr);
        assert_eq!(b.hits, 0);
        std::fs::remove_dir_all(env.ws.join("util/src/foo")).unwrap();
        touch(&env, "util/src/lib.rs");
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0, "{}", b.stderr);
    }

    fn t18_extern_change_without_source_change(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        let manifest = env.read("Cargo.toml");
        env.write(
            "Cargo.toml",
            &format!("{manifest}\n[profile.dev.package.util]\nopt-level = 1\n"),
        );
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(b.compiled.contains(&"util".into()));
        assert!(b.compiled.contains(&"app".into()));
        assert_eq!(b.hits, 0, "util and its dependents miss: {}", b.stderr);
        env.write("Cargo.toml", &manifest);
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0, "{}", b.stderr);
    }

    /// rustc writes `$` and `#` in its dep-info as they are (only spaces are escaped). Read
    /// with make's rules, `d$$x.txt` would be recorded as `d$x.txt`, another file, and an
    /// edit of the real input would be served the stale binary.
    fn dep_info_paths_are_read_as_rustc_writes_them(mounted: bool) {
        let env = Env::for_mode(mounted);
        let dir = env.standalone(
            "dollar",
            &[
                (
                    "src/main.rs",
                    "fn main() { print!(\"{}\", include_str!(\"../d$$x #y.txt\")); }\n",
                ),
                ("d$$x #y.txt", "one"),
                ("d$x #y.txt", "decoy"),
            ],
        );
        let run = || env.run_bin(&dir, "dollar");
        let b = env.cargo_in(&dir, &["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 1, "{}", b.stderr);
        assert_eq!(run(), "one");
        std::fs::write(dir.join("d$$x #y.txt"), "two").unwrap();
        let b = env.cargo_in(&dir, &["build"]);
        b.assert_ok();
        assert_eq!((b.hits, b.misses), (0, 1), "{}", b.stderr);
        assert_eq!(run(), "two");
        std::fs::write(dir.join("d$$x #y.txt"), "one").unwrap();
        let b = env.cargo_in(&dir, &["build"]);
        b.assert_ok();
        assert_eq!(b.hits, 1, "{}", b.stderr);
        assert_eq!(run(), "one");
    }

    /// `#[link(kind = "static")]` bundles a library found through `-L native=` into the
    /// rlib; rustc's dep-info does not name it. Rebuilding the library must not be served
    /// the rlib that bundles the old one.
    fn a_static_lib_found_by_link_attribute_is_an_input(mounted: bool) {
        let env = Env::for_mode(mounted);
        let build_rs = "fn main() {\n\
            let out = std::path::PathBuf::from(std::env::var(\"OUT_DIR\").unwrap());\n\
            let run = |c: &mut std::process::Command| assert!(c.status().unwrap().success());\n\
            run(std::process::Command::new(\"cc\").args([\"-c\", \"-o\"]).arg(out.join(\"nat.o\")).arg(\"csrc/nat.c\"));\n\
            let _ = std::fs::remove_file(out.join(\"libnat.a\"));\n\
            run(std::process::Command::new(\"ar\").arg(\"crs\").arg(out.join(\"libnat.a\")).arg(out.join(\"nat.o\")));\n\
            println!(\"cargo:rustc-link-search=native={}\", out.display());\n\
            println!(\"cargo:rerun-if-changed=csrc/nat.c\");\n\
        }\n";
        let dir = env.standalone(
            "nat",
            &[
                ("build.rs", build_rs),
                ("csrc/nat.c", "int nat_value(void) { return 1; }\n"),
                (
                    "src/lib.rs",
                    "#[link(name = \"nat\", kind = \"static\")]\n\
                     extern \"C\" { fn nat_value() -> i32; }\n\
                     pub fn value() -> i32 { unsafe { nat_value() } }\n",
                ),
                ("src/main.rs", "fn main() { print!(\"{}\", nat::value()) }\n"),
            ],
        );
        env.cargo_in(&dir, &["build"]).assert_ok();
        assert_eq!(env.run_bin(&dir, "nat"), "1");
        std::fs::write(dir.join("csrc/nat.c"), "int nat_value(void) { return 2; }\n").unwrap();
        let b = env.cargo_in(&dir, &["build"]);
        b.assert_ok();
        assert_eq!(env.run_bin(&dir, "nat"), "2", "{}", b.stderr);
        assert_eq!(b.hits, 0, "{}", b.stderr);
        // Back to the first library: served from the cache, right.
        std::fs::write(dir.join("csrc/nat.c"), "int nat_value(void) { return 1; }\n").unwrap();
        let b = env.cargo_in(&dir, &["build"]);
        b.assert_ok();
        assert_eq!(env.run_bin(&dir, "nat"), "1");
        assert!(b.hits >= 1, "{}", b.stderr);
    }

    /// A `RUSTC` that is a script running rustc is not rustc: it may add flags zcfs cannot
    /// see. Editing it must never be served the binary it built before.
    fn a_compiler_script_is_not_cached(mounted: bool) {
        let mut env = Env::for_mode(mounted);
        let dir = env.standalone(
            "branch",
            &[(
                "src/main.rs",
                "fn main() { if cfg!(zt_flag) { print!(\"new\") } else { print!(\"old\") } }\n",
            )],
        );
        let real = String::from_utf8(
            std::process::Command::new("rustc")
                .args(["--print", "sysroot"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let real = format!("{}/bin/rustc", real.trim());
        let script = env.tmp.path().join("bin/rustc");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        let write_script = |extra: &str| {
            std::fs::write(
                &script,
                format!("#!/bin/sh\nexec {real} \"$@\" {extra}\n"),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write_script("'--check-cfg=cfg(zt_flag)'");
        env.var("RUSTC", script.to_str().unwrap());
        let b = env.cargo_in(&dir, &["build"]);
        b.assert_ok();
        assert_eq!(env.run_bin(&dir, "branch"), "old");
        assert_eq!((b.hits, b.misses), (0, 0), "{}", b.stderr);
        assert!(
            b.stats["uncacheable"]["compiler wrapper"].as_u64().unwrap_or(0) >= 1,
            "{}",
            b.stats
        );
        write_script("'--check-cfg=cfg(zt_flag)' --cfg zt_flag");
        std::fs::remove_dir_all(dir.join("target/debug")).unwrap();
        let b = env.cargo_in(&dir, &["build"]);
        b.assert_ok();
        assert_eq!(b.hits, 0, "{}", b.stderr);
        assert_eq!(env.run_bin(&dir, "branch"), "new");
    }
}

/// A hard-linked copy of the active toolchain (bin/ and lib/ without the sources) with one
/// more shared library in its `lib/`: a toolchain whose identity differs, usable through
/// `path = ...` in rust-toolchain.toml without touching rustup's global state.
fn toolchain_copy(env: &Env) -> PathBuf {
    let out = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let copy = env.tmp.path().join("toolchain");
    let link_all = |from: &std::path::Path, to: &std::path::Path, skip: &[&str]| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            if skip.iter().any(|s| e.file_name() == *s) {
                continue;
            }
            let ok = std::process::Command::new("cp")
                .arg("-al")
                .arg(e.path())
                .arg(to)
                .status()
                .unwrap()
                .success();
            assert!(ok, "cp -al {}", e.path().display());
        }
    };
    link_all(&sysroot.join("bin"), &copy.join("bin"), &[]);
    link_all(&sysroot.join("lib"), &copy.join("lib"), &["rustlib"]);
    link_all(
        &sysroot.join("lib/rustlib"),
        &copy.join("lib/rustlib"),
        &["src", "rustc-src"],
    );
    std::fs::write(copy.join("lib/libzcfs_marker.so"), b"another toolchain").unwrap();
    copy
}

/// Switching toolchains while the daemon runs misses: through cargo's own proxy (which
/// names the toolchain's rustc), and with `RUSTC` set to rustup's proxy and no
/// `RUSTUP_TOOLCHAIN` (zcfs resolves the proxy itself and must see the new
/// rust-toolchain.toml).
#[test]
fn toolchain_switch_while_the_daemon_runs_misses() {
    // Hard-linking the toolchain raises its files' ctime: no other compile may run meanwhile.
    let env = Env::alone();
    let dir = env.standalone(
        "switch",
        &[("src/main.rs", "fn main() { print!(\"hi\") }\n")],
    );
    let copy = toolchain_copy(&env);
    let proxy = common::which("rustc");
    let real_cargo = {
        let out = std::process::Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .unwrap();
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("bin/cargo")
    };
    let direct = || {
        let mut c = env.command(&real_cargo);
        c.args(["build"])
            .current_dir(&dir)
            .env("RUSTC", &proxy)
            .env("RUSTC_WRAPPER", common::ZCFS)
            .env_remove("RUSTUP_TOOLCHAIN");
        env.build_with(c)
    };
    let toolchain_file = dir.join("rust-toolchain.toml");
    for (what, build) in [
        (
            "cargo through rustup",
            &(|| env.cargo_in(&dir, &["build"])) as &dyn Fn() -> common::Build,
        ),
        ("RUSTC=rustup's proxy", &direct),
    ] {
        let _ = std::fs::remove_file(&toolchain_file);
        let _ = std::fs::remove_dir_all(dir.join("target"));
        build().assert_ok();
        std::fs::remove_dir_all(dir.join("target")).unwrap();
        let b = build();
        b.assert_ok();
        assert_eq!(b.hits, 1, "{what}: same toolchain hits\n{}", b.stderr);
        std::fs::write(
            &toolchain_file,
            format!("[toolchain]\npath = \"{}\"\n", copy.display()),
        )
        .unwrap();
        std::fs::remove_dir_all(dir.join("target")).unwrap();
        let b = build();
        b.assert_ok();
        assert_eq!(
            (b.hits, b.misses),
            (0, 1),
            "{what}: another toolchain\n{}",
            b.stderr
        );
        assert_eq!(env.run_bin(&dir, "switch"), "hi");
    }
}
