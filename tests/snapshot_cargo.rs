//! Snapshots of cargo's unit records under `zcfs cargo` (issue 22, docs/snapshot.md), with
//! real cargo on a real mount: after a build, a build from an empty target finds every unit
//! Fresh and runs no compile; what changed since is rebuilt as cargo would rebuild it; the
//! artifacts are those of a plain build.

mod common;

use common::{Build, Env};
use std::path::Path;

/// Removes the profile's build state through the mount (the mount root itself stays).
fn empty_target(env: &Env, profile: &str) {
    std::fs::remove_dir_all(env.target().join(profile)).unwrap();
}

fn snap(b: &Build, k: &str) -> u64 {
    b.stats["snapshot"][k].as_u64().unwrap_or(0)
}

fn left(b: &Build) -> serde_json::Value {
    b.stats["snapshot"]["left"].clone()
}

/// `zcfs cargo build` from an empty target after a recorded build: every unit projected
/// and Fresh (no `Compiling`, no wrapper call), the binary runs.
fn warm_noop(env: &Env, args: &[&str], profile: &str) -> Build {
    empty_target(env, profile);
    let before = env.stats()["snapshot"]["projected"].as_u64().unwrap_or(0);
    let b = env.cargo(args);
    b.assert_ok().assert_noop();
    assert!(
        snap(&b, "projected") > before,
        "nothing projected: {}",
        b.stats["snapshot"]
    );
    b
}

#[test]
fn a_warm_release_build_is_fresh_and_its_artifacts_are_a_plain_builds() {
    let env = Env::snapshots();
    // The reference: a plain release build at the same path, then removed.
    let plain = env.cargo_plain(&env.ws, &["build", "--release"]);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let reference = common::artifacts(&env.target().join("release"));
    let ref_out = std::process::Command::new(env.target().join("release/app"))
        .output()
        .unwrap();
    assert!(ref_out.status.success());
    std::fs::remove_dir_all(env.target()).unwrap();

    let first = env.cargo(&["build", "--release"]);
    first.assert_ok();
    let recorded = first.stats["snapshot"]["recorded"].as_u64().unwrap_or(0);
    // app, util, mac, cdy, outside, zt_core (its script built and run).
    assert!(recorded >= 7, "{}", first.stats["snapshot"]);
    let b = warm_noop(&env, &["build", "--release"], "release");
    assert_eq!(snap(&b, "projected") - snap(&first, "projected"), recorded);
    assert_eq!(b.all_hits, 0, "no compile reached the wrapper");
    // Byte for byte what plain cargo built, and the binary runs alike.
    let got = common::artifacts(&env.target().join("release"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>()
    );
    for (k, v) in &reference {
        assert!(
            got[k] == *v,
            "{} differs from the plain build's",
            k.display()
        );
    }
    let out = std::process::Command::new(env.target().join("release/app"))
        .output()
        .unwrap();
    assert_eq!(out.stdout, ref_out.stdout);
    // The uplifted binary is cargo's link to the projection, and the next build is a no-op.
    env.cargo(&["build", "--release"]).assert_ok().assert_noop();
}

#[test]
fn what_changed_is_rebuilt_as_cargo_would_and_the_rest_stays_fresh() {
    let mut env = Env::snapshots();
    env.cargo(&["build"]).assert_ok();
    let base = env.run_app();
    warm_noop(&env, &["build"], "debug");
    assert_eq!(env.run_app(), base);

    // An edited source: its package and what depends on it.
    let lib = env.read("util/src/lib.rs");
    env.write("util/src/lib.rs", &format!("{lib}\npub fn added() {{}}\n"));
    empty_target(&env, "debug");
    let b = env.cargo(&["build"]);
    b.assert_ok();
    let mut compiled = b.compiled.clone();
    compiled.sort();
    assert_eq!(compiled, vec!["app", "util"], "{}", b.stderr);
    assert_eq!(
        left(&b)["input changed"].as_u64(),
        Some(1),
        "{}",
        b.stats["snapshot"]
    );
    assert_eq!(env.run_app(), base);
    env.cargo(&["build"]).assert_ok().assert_noop();

    // A variable a build script declared with `rerun-if-env-changed`.
    env.var("ZT_GEN", "changed");
    empty_target(&env, "debug");
    let b = env.cargo(&["build"]);
    b.assert_ok();
    let mut compiled = b.compiled.clone();
    compiled.sort();
    assert_eq!(compiled, vec!["app", "zt_core"], "{}", b.stderr);
    assert!(
        left(&b)["variable changed"].as_u64().unwrap_or(0) >= 1,
        "{}",
        b.stats["snapshot"]
    );
    assert!(env.run_app().contains("gen=changed"));
    // Both variants are kept: each verifies when its value is back.
    warm_noop(&env, &["build"], "debug");
    assert!(env.run_app().contains("gen=changed"));
    env.unset("ZT_GEN");
    warm_noop(&env, &["build"], "debug");
    assert_eq!(env.run_app(), base);

    // Other flags: other units (cargo's unit names change), nothing of the snapshot fits.
    env.var("RUSTFLAGS", "-Cdebug-assertions=off");
    empty_target(&env, "debug");
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(b.compiled.len() >= 5, "{}", b.stderr);
    env.unset("RUSTFLAGS");

    // A source dated in the future: not projected (its mtime is not older than the
    // build's start), so cargo builds it and what depends on it.
    let src = env.ws.join("util/src/foo.rs");
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .set_modified(future)
        .unwrap();
    empty_target(&env, "debug");
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(b.compiled.contains(&"util".to_string()), "{}", b.stderr);
    assert!(b.compiled.contains(&"app".to_string()), "{}", b.stderr);
    assert!(!b.compiled.contains(&"zt_core".to_string()), "{}", b.stderr);
    assert!(
        left(&b)["input newer than the build's start"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{}",
        b.stats["snapshot"]
    );
    assert_eq!(env.run_app(), base);
}

#[test]
fn a_fresh_checkout_at_the_same_path_is_fresh_and_another_path_or_cargo_home_is_not() {
    let mut env = Env::snapshots();
    env.cargo(&["build"]).assert_ok();
    let base = env.run_app();
    // A fresh checkout: every source written anew (new mtimes, new inodes), same content.
    let copy = env.tmp.path().join("checkout");
    common::copy_dir(&env.ws, &copy);
    for entry in std::fs::read_dir(&env.ws).unwrap().flatten() {
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let p = entry.path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    copy_into(&copy, &env.ws);
    warm_noop(&env, &["build"], "debug");
    assert_eq!(env.run_app(), base);

    // Another CARGO_HOME: the records are bound to the one they were made with.
    let home = env.tmp.path().join("other-cargo-home");
    std::fs::create_dir_all(&home).unwrap();
    env.var("CARGO_HOME", home.to_str().unwrap());
    empty_target(&env, "debug");
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(b.compiled.len() >= 5, "{}", b.stderr);
    assert_eq!(env.run_app(), base);
    env.unset("CARGO_HOME");

    // Another path: another build dir, no snapshot; the build is what cargo builds.
    let other = env.tmp.path().join("elsewhere");
    common::copy_dir(&copy, &other);
    let b = env.cargo_in(&other, &["build"]);
    b.assert_ok();
    assert!(b.compiled.len() >= 5, "{}", b.stderr);
    assert_eq!(env.run_bin(&other, "app"), base);
}

fn copy_into(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_into(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

#[test]
fn tests_checks_and_the_switch() {
    let mut env = Env::snapshots();
    env.cargo(&["build"]).assert_ok();
    env.cargo(&["test", "--no-run"]).assert_ok();
    warm_noop(&env, &["test", "--no-run"], "debug");
    let t = env.cargo(&["test", "-p", "util"]);
    t.assert_ok();
    assert!(t.stdout.contains("test result: ok"), "{}", t.stdout);
    env.cargo(&["check"]).assert_ok();
    warm_noop(&env, &["check"], "debug");

    // `--no-snapshot`: nothing projected, cargo builds through the wrapper (hits).
    empty_target(&env, "debug");
    let before = env.stats()["snapshot"].clone();
    let b = env.cargo(&["--no-snapshot", "build"]);
    b.assert_ok();
    assert!(!b.compiled.is_empty() && b.misses == 0, "{}", b.stderr);
    assert_eq!(b.stats["snapshot"]["projected"], before["projected"]);
    assert_eq!(b.stats["snapshot"]["recorded"], before["recorded"]);
    // The setting too.
    env.var("ZCFS_SNAPSHOT", "0");
    empty_target(&env, "debug");
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert!(!b.compiled.is_empty(), "{}", b.stderr);
    assert_eq!(b.stats["snapshot"]["projected"], before["projected"]);
}

#[test]
fn a_build_script_that_declares_nothing_is_left_to_cargo_with_what_depends_on_it() {
    let env = Env::snapshots();
    let dir = env.standalone(
        "oldstyle",
        &[
            (
                "build.rs",
                "fn main() { println!(\"cargo:rustc-env=OLD=1\"); }\n",
            ),
            (
                "src/main.rs",
                "fn main() { println!(\"{}\", env!(\"OLD\")); }\n",
            ),
        ],
    );
    env.cargo_in(&dir, &["build"]).assert_ok();
    let s = env.stats()["snapshot"].clone();
    assert!(
        s["unrecorded"]["untracked build script or doc unit"].as_u64() >= Some(1),
        "{s}"
    );
    std::fs::remove_dir_all(dir.join("target/debug")).unwrap();
    let b = env.cargo_in(&dir, &["build"]);
    b.assert_ok();
    assert_eq!(b.compiled, vec!["oldstyle"], "{}", b.stderr);
    assert_eq!(env.run_bin(&dir, "oldstyle").trim(), "1");
}

/// What the compile entries were checked against binds a record too: here a static
/// library the linker read, outside the build dir, that no build script declares (cargo
/// would find the binary Fresh; a plain build from an empty target links the new library).
#[test]
fn a_library_the_linker_read_binds_the_record_like_a_hit() {
    let env = Env::snapshots();
    let lib = env.tmp.path().join("native");
    std::fs::create_dir_all(&lib).unwrap();
    let make_lib = |v: i32| {
        std::fs::write(
            lib.join("v.c"),
            format!("int native_value(void) {{ return {v}; }}\n"),
        )
        .unwrap();
        let _ = std::fs::remove_file(lib.join("libnative.a"));
        for cmd in [
            vec!["cc", "-c", "-o", "v.o", "v.c"],
            vec!["ar", "crs", "libnative.a", "v.o"],
        ] {
            let st = std::process::Command::new(cmd[0])
                .args(&cmd[1..])
                .current_dir(&lib)
                .status()
                .unwrap();
            assert!(st.success());
        }
    };
    make_lib(1);
    let build_rs = format!(
        "fn main() {{\n    println!(\"cargo::rerun-if-changed=build.rs\");\n    println!(\"cargo::rustc-link-search=native={}\");\n}}\n",
        lib.display()
    );
    let dir = env.standalone(
        "linked",
        &[
            ("build.rs", &build_rs),
            (
                "src/main.rs",
                "#[link(name = \"native\", kind = \"static\")]\nextern \"C\" { fn native_value() -> i32; }\nfn main() { println!(\"{}\", unsafe { native_value() }); }\n",
            ),
        ],
    );
    env.cargo_in(&dir, &["build"]).assert_ok();
    assert_eq!(env.run_bin(&dir, "linked").trim(), "1");
    std::fs::remove_dir_all(dir.join("target/debug")).unwrap();
    let b = env.cargo_in(&dir, &["build"]);
    b.assert_ok().assert_noop();
    assert!(b.projected >= 3, "{}", b.stats["snapshot"]);

    make_lib(2);
    std::fs::remove_dir_all(dir.join("target/debug")).unwrap();
    let b = env.cargo_in(&dir, &["build"]);
    b.assert_ok();
    assert_eq!(b.compiled, vec!["linked"], "{}", b.stderr);
    assert_eq!(
        env.run_bin(&dir, "linked").trim(),
        "2",
        "the binary links the library as it is now"
    );
    assert!(
        left(&b)["input changed"].as_u64() >= Some(1),
        "{}",
        b.stats["snapshot"]
    );
}

/// `build.build-dir` (stable since cargo 1.91): unit state lives there, and that is what is
/// mounted, recorded and projected; the uplifted binary still lands in the target dir.
#[test]
fn a_configured_build_dir_is_where_the_snapshot_lives() {
    let env = Env::snapshots();
    let dir = env.standalone(
        "bdir",
        &[
            (".cargo/config.toml", "[build]\nbuild-dir = \"units\"\n"),
            ("src/main.rs", "fn main() { println!(\"built\"); }\n"),
        ],
    );
    env.cargo_in(&dir, &["build"]).assert_ok();
    assert!(dir.join("units/debug/.fingerprint").is_dir());
    assert!(common::is_mounted(&dir.join("units")));
    std::fs::remove_dir_all(dir.join("units/debug")).unwrap();
    std::fs::remove_dir_all(dir.join("target")).unwrap();
    let b = env.cargo_in(&dir, &["build"]);
    b.assert_ok().assert_noop();
    assert!(b.projected >= 1, "{}", b.stats["snapshot"]);
    assert_eq!(env.run_bin(&dir, "bdir").trim(), "built");
}

/// A cargo already building in the profile (it holds `.cargo-lock`): nothing is projected
/// under it; the build waits for the lock as cargo does, then builds through the wrapper.
#[test]
fn nothing_is_projected_while_another_cargo_holds_the_build_lock() {
    let env = Env::snapshots();
    env.cargo(&["build"]).assert_ok();
    let base = env.run_app();
    // Empty the profile but keep its lock file, held as a running cargo holds it.
    for e in std::fs::read_dir(env.target().join("debug"))
        .unwrap()
        .flatten()
    {
        if e.file_name() == ".cargo-lock" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            std::fs::remove_dir_all(e.path()).unwrap();
        } else {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.target().join("debug/.cargo-lock"))
        .unwrap();
    lock.lock().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        drop(lock);
    });
    let b = env.cargo(&["build"]);
    release.join().unwrap();
    b.assert_ok();
    assert_eq!(b.projected, 0, "{}", b.stats["snapshot"]);
    assert!(b.hits >= 5, "built through the wrapper: {}", b.stderr);
    assert_eq!(env.run_app(), base);
}

/// Another feature set is another unit (cargo's unit names follow features): it is built,
/// and each set's records are projected when asked for again.
#[test]
fn feature_sets_each_get_their_own_records() {
    let env = Env::snapshots();
    let dir = env.standalone(
        "feat",
        &[(
            "src/main.rs",
            "fn main() { if cfg!(feature = \"a\") { println!(\"a\") } else { println!(\"b\") } }\n",
        )],
    );
    let toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("{toml}[features]\na = []\nb = []\n"),
    )
    .unwrap();
    let build = |features: &str| {
        std::fs::remove_dir_all(dir.join("target/debug")).ok();
        let b = env.cargo_in(&dir, &["build", "--features", features]);
        b.assert_ok();
        (b, env.run_bin(&dir, "feat").trim().to_string())
    };
    let (b, out) = build("a");
    assert_eq!((b.compiled.len(), out.as_str()), (1, "a"));
    let (b, out) = build("b");
    assert_eq!(
        (b.compiled.clone(), out.as_str()),
        (vec!["feat".to_string()], "b")
    );
    let (b, out) = build("a");
    b.assert_noop();
    assert_eq!(out, "a");
    let (b, out) = build("b");
    b.assert_noop();
    assert_eq!(out, "b");
}
