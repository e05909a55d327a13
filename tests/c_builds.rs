//! Build systems calling C compilers through zcfs, end to end (spec C43, C44): CMake with
//! Ninja and the compiler launcher in a mounted build dir, make through the masquerade links
//! of `zcfs run`, and cc-rs build scripts under `zcfs cargo`.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Env, ZCFS, is_mounted, ok};

fn write(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn c_counts(env: &Env) -> (u64, u64, u64) {
    let s = env.stats();
    let get = |k: &str| -> u64 {
        ["c", "cxx"]
            .iter()
            .map(|l| s["languages"][l][k].as_u64().unwrap_or(0))
            .sum()
    };
    (
        get("hits"),
        get("misses"),
        s["hits_projected"].as_u64().unwrap_or(0),
    )
}

/// A small C project: two sources sharing a header, one with its own header.
fn c_project(dir: &Path) {
    write(dir, "inc/shared.h", "#define SHARED 40\n");
    write(dir, "inc/only_util.h", "#define UTIL 2\n");
    write(
        dir,
        "main.c",
        "#include <stdio.h>\n#include \"shared.h\"\nint util(void);\nint main(void) { printf(\"%d\\n\", SHARED + util()); return 0; }\n",
    );
    write(
        dir,
        "util.c",
        "#include \"shared.h\"\n#include \"only_util.h\"\nint util(void) { return UTIL + SHARED - SHARED; }\n",
    );
}

#[test]
fn c43_cmake_ninja_with_the_launcher_in_a_mounted_build_dir() {
    let env = Env::new();
    let src = env.tmp.path().join("proj");
    c_project(&src);
    write(
        &src,
        "CMakeLists.txt",
        "cmake_minimum_required(VERSION 3.16)\nproject(p C)\ninclude_directories(inc)\nadd_executable(app main.c util.c)\n",
    );
    let build = env.tmp.path().join("build");
    let _m = env.mount(&build);
    let cmake = |args: &[&str]| {
        let o = env
            .command("cmake")
            .args(args)
            .current_dir(env.tmp.path())
            .output()
            .unwrap();
        ok(&o);
        o
    };
    cmake(&[
        "-G",
        "Ninja",
        "-S",
        src.to_str().unwrap(),
        "-B",
        build.to_str().unwrap(),
        &format!("-DCMAKE_C_COMPILER_LAUNCHER={ZCFS}"),
    ]);
    cmake(&["--build", build.to_str().unwrap()]);
    let run = || {
        let o = std::process::Command::new(build.join("app"))
            .output()
            .unwrap();
        ok(&o);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(run(), "42");
    let (h0, m0, _) = c_counts(&env);
    assert_eq!((h0, m0), (0, 2));

    cmake(&["--build", build.to_str().unwrap(), "--target", "clean"]);
    assert!(!build.join("app").exists());
    cmake(&["--build", build.to_str().unwrap()]);
    assert_eq!(run(), "42");
    let (h, m, projected) = c_counts(&env);
    assert_eq!((h, m), (2, 2), "every object a hit after a clean");
    assert_eq!(
        projected, 2,
        "hits in the mounted build dir are projections"
    );

    let o = cmake(&["--build", build.to_str().unwrap()]);
    assert!(text(&o).contains("no work to do"), "{}", text(&o));

    // Touching a header rebuilds exactly its dependents.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&src, "inc/only_util.h", "#define UTIL 3\n");
    let o = cmake(&["--build", build.to_str().unwrap(), "--", "-v"]);
    let t = text(&o);
    assert!(t.contains("util.c") && !t.contains("main.c.o -c"), "{t}");
    assert_eq!(run(), "43");
    assert!(is_mounted(&build));
}

#[test]
fn make_through_the_masquerade_links_of_zcfs_run() {
    let env = Env::new();
    let dir = env.tmp.path().join("mk");
    c_project(&dir);
    write(
        &dir,
        "Makefile",
        "CFLAGS = -O1 -Iinc\napp: main.o util.o\n\t$(CC) -o app main.o util.o\nmain.o: main.c inc/shared.h\nutil.o: util.c inc/shared.h inc/only_util.h\nclean:\n\trm -f app *.o\n",
    );
    let make = |args: &[&str]| {
        let o = env
            .command(ZCFS)
            .args(["run", "--", "make"])
            .args(args)
            .current_dir(&dir)
            .env_remove("CC")
            .output()
            .unwrap();
        ok(&o);
        text(&o)
    };
    make(&[]);
    let (h, m, _) = c_counts(&env);
    assert_eq!((h, m), (0, 2));
    make(&["clean"]);
    make(&[]);
    let (h, m, _) = c_counts(&env);
    assert_eq!((h, m), (2, 2));
    let o = std::process::Command::new(dir.join("app"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "42");
    let t = make(&[]);
    assert!(t.contains("up to date"), "{t}");
    // The link went through zcfs and passed through.
    assert!(
        env.stats()["uncacheable"]["called for link"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    );
}

#[test]
fn c44_cc_rs_build_scripts_under_zcfs_cargo() {
    let env = Env::snapshots();
    let dir = env.tmp.path().join("ccrs");
    write(
        &dir,
        "Cargo.toml",
        "[package]\nname = \"ccrs\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[build-dependencies]\ncc = \"1\"\n",
    );
    write(
        &dir,
        "build.rs",
        "fn main() {\n    let mut b = cc::Build::new();\n    b.file(\"c/one.c\").file(\"c/two.c\").include(\"c\");\n    if b.is_flag_supported(\"-Wno-unused-parameter\").unwrap_or(false) { b.flag(\"-Wno-unused-parameter\"); }\n    b.compile(\"cpart\");\n    cc::Build::new().cpp(true).file(\"c/three.cpp\").compile(\"cxxpart\");\n    println!(\"cargo:rerun-if-changed=c\");\n}\n",
    );
    write(&dir, "c/h.h", "#define BASE 40\n");
    write(
        &dir,
        "c/one.c",
        "#include \"h.h\"\nint one(void) { return BASE; }\n",
    );
    write(&dir, "c/two.c", "int two(void) { return 2; }\n");
    write(
        &dir,
        "c/three.cpp",
        "#include <vector>\nextern \"C\" int three(void) { return (int)std::vector<int>(0).size(); }\n",
    );
    write(
        &dir,
        "src/main.rs",
        "extern \"C\" { fn one() -> i32; fn two() -> i32; fn three() -> i32; }\nfn main() { println!(\"{}\", unsafe { one() + two() + three() }); }\n",
    );
    let cargo = |args: &[&str]| {
        let mut cmd = env.command(ZCFS);
        cmd.arg("cargo")
            .args(args)
            .current_dir(&dir)
            .env_remove("CC")
            .env_remove("CXX");
        let o = cmd.output().unwrap();
        ok(&o);
        text(&o)
    };
    cargo(&["build"]);
    let (h, cold, _) = c_counts(&env);
    // Three objects and cc-rs's flag probe (`is_flag_supported` compiles a file).
    assert_eq!(h, 0);
    assert!(cold >= 4, "the C/C++ compiles went through zcfs: {cold}");
    // cc-rs writes its probe's source just before compiling it: when both fall in one
    // tick of the file clock the result is not stored (it could have been edited unseen).
    let racy = env.stats()["not_stored"]["input modified during compile"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        racy <= 2,
        "only the probes are written as they are compiled"
    );
    cargo(&["clean"]);
    // The hits: without the snapshot, which would leave cargo nothing to build.
    cargo(&["--no-snapshot", "build"]);
    let (h, m, _) = c_counts(&env);
    assert_eq!(
        (h, m),
        (cold - racy, cold + racy),
        "after a clean every C compile stored is a hit"
    );
    let out = std::process::Command::new(dir.join("target/debug/ccrs"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let t = cargo(&["build"]);
    assert!(!t.contains("Compiling"), "the next build is a no-op: {t}");
    assert_eq!(c_counts(&env).0, cold - racy);
    // With the snapshot (recorded after the first build): from an empty target, the build
    // script's run and its objects are projected with the rest, and no C compile runs.
    cargo(&["clean"]);
    let before = c_counts(&env);
    let t = cargo(&["build"]);
    assert!(!t.contains("Compiling"), "every unit Fresh: {t}");
    assert_eq!(
        c_counts(&env).0 + c_counts(&env).1,
        before.0 + before.1,
        "no C compile"
    );
    let out = std::process::Command::new(dir.join("target/debug/ccrs"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    // The registry crates (cc, shlex, ...) under another CARGO_HOME (the same registry,
    // reached through a symlink): the records are bound to the CARGO_HOME they were made
    // with, so cargo builds every unit again (as hits where the entries allow), and the
    // result runs alike.
    let home = env.tmp.path().join("other-cargo-home");
    std::fs::create_dir_all(&home).unwrap();
    let real_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(&std::env::var_os("HOME").unwrap()).join(".cargo"));
    std::os::unix::fs::symlink(real_home.join("registry"), home.join("registry")).unwrap();
    cargo(&["clean"]);
    let o = env
        .command(ZCFS)
        .args(["cargo", "build", "--offline"])
        .current_dir(&dir)
        .env_remove("CC")
        .env_remove("CXX")
        .env("CARGO_HOME", &home)
        .output()
        .unwrap();
    ok(&o);
    let t = text(&o);
    assert!(
        t.contains("Compiling cc "),
        "the registry units are built again: {t}"
    );
    let out = std::process::Command::new(dir.join("target/debug/ccrs"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

/// An in-tree build in a mounted directory, whose sources include a header of the
/// directory above (`#include "../local.h"`, as OpenSSL's crypto/async/arch/ does): stored
/// on the first build, projected on the next.
#[test]
fn an_in_tree_build_in_a_mount_with_headers_named_through_dot_dot() {
    let env = Env::new();
    let src = env.tmp.path().join("tree");
    write(&src, "local.h", "#define LOCAL 40\n");
    write(
        &src,
        "arch/a.c",
        "#include \"../local.h\"\nint a(void) { return LOCAL; }\n",
    );
    write(
        &src,
        "main.c",
        "int a(void);\nint main(void) { return a() + 2 == 42 ? 0 : 1; }\n",
    );
    let _m = env.mount(&src);
    let build = || {
        for (c, o) in [("arch/a.c", "arch/a.o"), ("main.c", "main.o")] {
            ok(&env
                .command(ZCFS)
                .args(["gcc", "-c", c, "-o", o])
                .current_dir(&src)
                .output()
                .unwrap());
        }
        ok(&env
            .command("gcc")
            .args(["arch/a.o", "main.o", "-o", "app"])
            .current_dir(&src)
            .output()
            .unwrap());
        ok(&std::process::Command::new(src.join("app"))
            .output()
            .unwrap());
    };
    build();
    assert_eq!(c_counts(&env).0, 0);
    assert_eq!(
        env.stats()["not_stored"].as_object().map(|m| m.len()),
        Some(0),
        "{}",
        env.stats()["not_stored"]
    );
    for o in ["arch/a.o", "main.o", "app"] {
        std::fs::remove_file(src.join(o)).unwrap();
    }
    build();
    let (h, m, projected) = c_counts(&env);
    assert_eq!((h, m), (2, 2), "both hits, the one through `..` too");
    assert_eq!(projected, 2);
}

/// An out-of-tree build: the build dir mounted by `zcfs run --mount .` from a shell already
/// in it (the shell entered it before the mount existed; the command must build in the
/// mount, not in the directory below it), sources and headers named through `..` out of
/// the mount's root. Stored on the first build, projected on the next.
#[test]
fn an_out_of_tree_build_mounted_from_inside_with_sources_named_through_dot_dot() {
    let env = Env::new();
    let src = env.tmp.path().join("src");
    c_project(&src);
    let build = env.tmp.path().join("build");
    write(
        &build,
        "Makefile",
        "CFLAGS = -O1 -I../src/override -I../src/inc\napp: main.o util.o\n\t$(CC) -o app main.o util.o\n%.o: ../src/%.c\n\t$(CC) $(CFLAGS) -MMD -c $< -o $@\n",
    );
    std::fs::create_dir_all(src.join("override")).unwrap();
    let make = |want: &str| {
        let o = env
            .command("sh")
            .args([
                "-c",
                &format!(
                    "cd {} && exec \"$0\" run --mount . -- make",
                    build.display()
                ),
                ZCFS,
            ])
            .current_dir(env.tmp.path())
            .env_remove("CC")
            .output()
            .unwrap();
        ok(&o);
        assert!(is_mounted(&build));
        let o = std::process::Command::new(build.join("app"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), want);
    };
    make("42");
    let s = env.stats();
    assert_eq!(c_counts(&env), (0, 2, 0));
    assert_eq!(
        s["not_stored"].as_object().map(|m| m.len()),
        Some(0),
        "{}",
        s["not_stored"]
    );
    assert_eq!(
        s["uncacheable"]["cwd below a mount"].as_u64().unwrap_or(0),
        0
    );
    // Deleted through the mount (this process enters it afresh).
    for o in ["main.o", "util.o", "app"] {
        std::fs::remove_file(build.join(o)).unwrap();
    }
    make("42");
    assert_eq!(c_counts(&env), (2, 2, 2), "both hits, projected");
    // A header that appears earlier on the search path, named through `..` too: both
    // compiles include it now.
    write(&src, "override/shared.h", "#define SHARED 50\n");
    for o in ["main.o", "util.o", "app"] {
        std::fs::remove_file(build.join(o)).unwrap();
    }
    make("52");
    assert_eq!(c_counts(&env), (2, 4, 2));
    let _ = env.zcfs(&["unmount", build.to_str().unwrap()]);
}

/// A shell that entered a directory before `zcfs mount .` stays in the directory below the
/// mount: `zcfs mount` says so, and a compile started there passes through (its output is
/// written where that shell sees it) instead of projecting where it cannot see.
#[test]
fn a_compile_from_a_working_directory_hidden_by_the_mount_passes_through() {
    let env = Env::new();
    let src = env.tmp.path().join("src");
    c_project(&src);
    let build = env.tmp.path().join("build");
    std::fs::create_dir_all(&build).unwrap();
    let o = env
        .command("sh")
        .args([
            "-c",
            &format!(
                "cd {} && \"$0\" mount . && \"$0\" gcc -I../src/inc -c ../src/util.c -o util.o && test -s util.o",
                build.display()
            ),
            ZCFS,
        ])
        .current_dir(env.tmp.path())
        .output()
        .unwrap();
    ok(&o);
    assert!(text(&o).contains("below the mount"), "{}", text(&o));
    assert_eq!(
        env.stats()["uncacheable"]["cwd below a mount"].as_u64(),
        Some(1),
        "{}",
        env.stats()["uncacheable"]
    );
    assert_eq!(c_counts(&env), (0, 0, 0));
    ok(&env.zcfs(&["unmount", build.to_str().unwrap()]));
    // The object is where the compiler wrote it: in the directory the shell was in.
    assert!(build.join("util.o").metadata().unwrap().len() > 0);
}

/// A compile from a subdirectory of a mount whose search path climbs out of the mount
/// (`cd build/lib && cc -I../../src/include -I. -c p.c`, as automake's VPATH builds do): the
/// candidate above the mount is checked on the host. The first compile is stored, the
/// second hits, and a header created later in the earlier directory is a miss. (A path the
/// mount cannot resolve never counts as absent.)
#[test]
fn a_header_created_above_a_mount_from_a_subdirectory_of_it_is_seen() {
    let env = Env::new();
    let root = env.tmp.path().join("proj");
    std::fs::create_dir_all(root.join("src/include")).unwrap();
    let build = root.join("build");
    write(&build, "lib/config.h", "#define V 1\n");
    write(&build, "lib/p.c", "#include <config.h>\nint v = V;\n");
    let _m = env.mount(&build);
    let lib = build.join("lib");
    let compile = || {
        let _ = std::fs::remove_file(lib.join("p.o"));
        ok(&env
            .command(ZCFS)
            .args([
                "gcc",
                "-I../../src/include",
                "-I.",
                "-c",
                "p.c",
                "-o",
                "p.o",
            ])
            .current_dir(&lib)
            .output()
            .unwrap());
    };
    compile();
    let s = env.stats();
    assert_eq!(
        s["not_stored"].as_object().map(|m| m.len()),
        Some(0),
        "{}",
        s["not_stored"]
    );
    compile();
    assert_eq!(c_counts(&env), (1, 1, 1));
    write(&root, "src/include/config.h", "#define V 2\n");
    compile();
    assert_eq!(c_counts(&env), (1, 2, 1), "the new header is read");
}
