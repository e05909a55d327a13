//! Emscripten compiles through zcfs, black box (spec CE, scenarios C45–C48) with the real
//! `emcc` of the machine (Debian's `emscripten` package, installed by
//! `scripts/install-deps.sh`). Each test gets its own Emscripten configuration (the system
//! one, with a private cache and `FROZEN_CACHE` off), so emcc installs a private sysroot on
//! first use and the tests may edit or delete it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Env, ZCFS, ok};

struct Em {
    env: Env,
    dir: PathBuf,
    cache: PathBuf,
    config: PathBuf,
}

/// The configuration file emcc reads by default: the one beside its `emcc.py`.
fn system_config() -> PathBuf {
    let emcc = common::which("emcc").canonicalize().unwrap();
    emcc.parent().unwrap().join(".emscripten")
}

fn executable(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Em {
    fn new() -> Em {
        let mut env = Env::new();
        let dir = env.tmp.path().join("em");
        let cache = env.tmp.path().join("emcache");
        let config = env.tmp.path().join("emscripten.cfg");
        std::fs::create_dir_all(&dir).unwrap();
        let system = std::fs::read_to_string(system_config()).unwrap();
        std::fs::write(
            &config,
            format!(
                "{}\nCACHE = '{}'\n",
                system.replace("FROZEN_CACHE = True", "FROZEN_CACHE = False"),
                cache.display()
            ),
        )
        .unwrap();
        env.var("EM_CONFIG", config.to_str().unwrap());
        let em = Em {
            env,
            dir,
            cache,
            config,
        };
        em.write(
            "a.c",
            "#include <stdio.h>\n#include \"h.h\"\nint f(int x) { printf(\"%d\", x); return x * H; }\n",
        );
        em.write("h.h", "#define H 2\n");
        em.write("w.c", "int g(void) { int unused; return 0; }\n");
        em
    }

    /// With emcc's cache set up (its sysroot installed) by a plain compile: the first
    /// compile prints the setup and writes the headers it reads while it runs.
    fn warmed() -> Em {
        let em = Em::new();
        em.write("warm.c", "int warm;\n");
        let out = em.plain("emcc", &["-c", "warm.c", "-o", "warm.o"]);
        ok(&out);
        assert!(String::from_utf8_lossy(&out.stderr).contains("sysroot"));
        em
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.dir.join(rel), text).unwrap();
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let mut cmd = self.env.command(ZCFS);
        cmd.arg(program).args(args).current_dir(&self.dir);
        cmd.output().unwrap()
    }

    fn plain(&self, program: &str, args: &[&str]) -> Output {
        let mut cmd = self.env.command(program);
        cmd.args(args).current_dir(&self.dir);
        cmd.output().unwrap()
    }

    /// Through zcfs, then without: exit code, streams and the named outputs agree.
    fn same_as_plain(&self, compiler: &str, args: &[&str], outputs: &[&str]) -> Output {
        common::compile_same_as_plain(&self.env, &self.dir, compiler, args, outputs)
    }

    fn counts(&self) -> (u64, u64) {
        let s = self.env.stats();
        let l = &s["languages"]["emcc"];
        (
            l["hits"].as_u64().unwrap_or(0),
            l["misses"].as_u64().unwrap_or(0),
        )
    }

    fn uncacheable(&self, reason: &str) -> u64 {
        self.env.stats()["uncacheable"][reason]
            .as_u64()
            .unwrap_or(0)
    }
}

const COMPILE: [&str; 5] = ["-O2", "-c", "a.c", "-o", "a.o"];

#[test]
fn c45_a_hit_starts_no_python() {
    let mut em = Em::new();
    // Every Python start is logged: emcc's launcher runs `python3` from PATH.
    let log = em.env.tmp.path().join("python.log");
    let shim = em.env.tmp.path().join("shim/python3");
    let real = common::which("python3");
    executable(
        &shim,
        &format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec {} \"$@\"\n",
            log.display(),
            real.display()
        ),
    );
    let path = format!(
        "{}:{}",
        shim.parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    em.env.var("PATH", &path);
    // The first compile sets up emcc's cache: it prints that, and reads headers written
    // while it runs (not stored).
    let first = em.run("emcc", &COMPILE);
    ok(&first);
    assert!(String::from_utf8_lossy(&first.stderr).contains("sysroot"));
    em.same_as_plain("emcc", &COMPILE, &["a.o"]);
    assert_eq!(em.counts(), (0, 2));
    assert!(std::fs::read_to_string(&log).unwrap().contains("emcc.py"));
    std::fs::remove_file(&log).unwrap();
    let hit = em.run("emcc", &COMPILE);
    ok(&hit);
    assert!(
        hit.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&hit.stderr)
    );
    assert_eq!(em.counts(), (1, 2));
    assert!(
        !log.exists(),
        "a hit started Python: {:?}",
        std::fs::read_to_string(&log)
    );
    // The hit's object is emcc's.
    let got = em.read("a.o");
    ok(&em.plain("emcc", &COMPILE));
    assert_eq!(got, em.read("a.o"));
    // Warnings (clang's, through emcc) are replayed.
    let args = ["-Wall", "-c", "w.c", "-o", "w.o"];
    let miss = em.same_as_plain("emcc", &args, &["w.o"]);
    assert!(String::from_utf8_lossy(&miss.stderr).contains("unused"));
    em.same_as_plain("emcc", &args, &["w.o"]);
    assert_eq!(em.counts(), (2, 3));
}

#[test]
fn c46_identity_changes_miss_and_reverts_hit() {
    let mut em = Em::warmed();
    em.same_as_plain("emcc", &COMPILE, &["a.o"]);
    // EMCC_CFLAGS is part of the command line.
    em.env.var("EMCC_CFLAGS", "-DEXTRA=1");
    em.same_as_plain("emcc", &COMPILE, &["a.o"]);
    em.env.unset("EMCC_CFLAGS");
    em.same_as_plain("emcc", &COMPILE, &["a.o"]);
    assert_eq!(em.counts(), (1, 2));
    // A setting.
    em.same_as_plain(
        "emcc",
        &["-sSTRICT", "-O2", "-c", "a.c", "-o", "a.o"],
        &["a.o"],
    );
    assert_eq!(em.counts(), (1, 3));
    // Another cache (its sysroot is installed by emcc's own run).
    let other = em.env.tmp.path().join("emcache2");
    em.env.var("EM_CACHE", other.to_str().unwrap());
    ok(&em.run("emcc", &COMPILE));
    assert!(other.join("sysroot/include/stdio.h").exists());
    em.env.unset("EM_CACHE");
    assert_eq!(em.counts(), (1, 4));
    // The clang the configuration names: same behaviour, other bytes.
    let llvm = em.env.tmp.path().join("llvm");
    let clang = common::which("clang-14");
    let write_clang = |comment: &str| {
        executable(
            &llvm.join("clang-14"),
            &format!("#!/bin/sh\n# {comment}\nexec {} \"$@\"\n", clang.display()),
        )
    };
    // The other LLVM tools emcc checks for, as they are.
    std::fs::create_dir_all(&llvm).unwrap();
    for e in std::fs::read_dir(clang.parent().unwrap())
        .unwrap()
        .flatten()
    {
        let name = e.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.ends_with("-14") && n != "clang-14")
        {
            std::os::unix::fs::symlink(e.path(), llvm.join(&name)).unwrap();
        }
    }
    write_clang("one");
    let text = std::fs::read_to_string(&em.config).unwrap();
    let llvm_line = text
        .lines()
        .find(|l| l.starts_with("LLVM_ROOT"))
        .unwrap()
        .to_string();
    std::fs::write(
        &em.config,
        text.replace(&llvm_line, &format!("LLVM_ROOT = '{}'", llvm.display())),
    )
    .unwrap();
    // emcc notices the new LLVM_ROOT and sets its cache up again on this run.
    ok(&em.run("emcc", &COMPILE));
    em.same_as_plain("emcc", &COMPILE, &["a.o"]);
    em.same_as_plain("emcc", &COMPILE, &["a.o"]);
    assert_eq!(em.counts(), (2, 6));
    write_clang("two");
    em.same_as_plain("emcc", &COMPILE, &["a.o"]);
    assert_eq!(em.counts(), (2, 7), "the clang's content is keyed");
    // Any other edit of the configuration.
    std::fs::write(
        &em.config,
        format!(
            "{}\n# edited\n",
            std::fs::read_to_string(&em.config).unwrap()
        ),
    )
    .unwrap();
    ok(&em.run("emcc", &COMPILE));
    assert_eq!(em.counts(), (2, 8));
}

#[test]
fn sysroot_headers_are_checked_and_a_deleted_sysroot_is_reinstalled() {
    let em = Em::warmed();
    em.same_as_plain("emcc", &COMPILE, &["a.o"]);
    em.same_as_plain("emcc", &COMPILE, &["a.o"]);
    assert_eq!(em.counts(), (1, 1));
    let stdio = em.cache.join("sysroot/include/stdio.h");
    let text = std::fs::read_to_string(&stdio).unwrap();
    std::fs::write(&stdio, format!("{text}\n/* edited */\n")).unwrap();
    em.same_as_plain("emcc", &COMPILE, &["a.o"]);
    assert_eq!(em.counts(), (1, 2));
    // Gone: a miss, and emcc's own run installs it again.
    std::fs::remove_dir_all(em.cache.join("sysroot")).unwrap();
    std::fs::remove_file(em.cache.join("sysroot_install.stamp")).unwrap();
    let out = em.run("emcc", &COMPILE);
    ok(&out);
    assert!(stdio.exists(), "emcc reinstalled its sysroot");
    assert_eq!(em.counts(), (1, 3));
    em.same_as_plain("emcc", &COMPILE, &["a.o"]);
    assert_eq!(em.counts(), (2, 3));
}

#[test]
fn em_plus_plus_compiles_cxx() {
    let em = Em::warmed();
    em.write(
        "x.cpp",
        "#include <vector>\nint n() { std::vector<int> v{1, 2}; return (int)v.size(); }\n",
    );
    let args = ["-O1", "-c", "x.cpp", "-o", "x.o"];
    em.same_as_plain("em++", &args, &["x.o"]);
    em.same_as_plain("em++", &args, &["x.o"]);
    assert_eq!(em.counts(), (1, 1));
    // emcc and em++ are different compilers for the same file.
    em.same_as_plain("emcc", &args, &["x.o"]);
    assert_eq!(em.counts(), (1, 2));
}

#[test]
fn c48_dependency_files_links_and_verbose_runs() {
    let mut em = Em::warmed();
    let args = ["-MD", "-c", "a.c", "-o", "a.o"];
    em.same_as_plain("emcc", &args, &["a.o", "a.d"]);
    em.same_as_plain("emcc", &args, &["a.o", "a.d"]);
    assert_eq!(em.counts(), (1, 1));
    let d = String::from_utf8(em.read("a.d")).unwrap();
    assert!(d.contains("sysroot/include/stdio.h"), "{d}");
    // What is not a compile passes through, with the same results.
    let before = em.uncacheable("unsupported option");
    let out = em.run("emcc", &["-v", "-c", "a.c", "-o", "v.o"]);
    ok(&out);
    assert_eq!(em.uncacheable("unsupported option"), before + 1);
    em.same_as_plain("emcc", &["--cflags"], &[]);
    assert_eq!(em.uncacheable("unsupported option"), before + 2);
    // A link, with the system's configuration (its cache has the libraries built).
    em.env.unset("EM_CONFIG");
    let link = em.uncacheable("called for link");
    em.same_as_plain("emcc", &["a.o", "-o", "app.js"], &["app.js", "app.wasm"]);
    assert_eq!(em.uncacheable("called for link"), link + 1);
    assert_eq!(em.counts(), (1, 1));
}

#[test]
fn emcmake_cmake_with_the_launcher() {
    let em = Em::warmed();
    let src = em.dir.join("proj");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.16)\nproject(t C)\nadd_library(t STATIC a.c b.c)\n",
    )
    .unwrap();
    std::fs::write(src.join("a.c"), "int a(void) { return 1; }\n").unwrap();
    std::fs::write(
        src.join("b.c"),
        "#include <stdio.h>\nint b(void) { return 2; }\n",
    )
    .unwrap();
    let build = em.dir.join("build");
    let mut cmd = em.env.command("emcmake");
    cmd.args(["cmake", "-S"])
        .arg(&src)
        .arg("-B")
        .arg(&build)
        .args(["-G", "Ninja"])
        .arg(format!("-DCMAKE_C_COMPILER_LAUNCHER={ZCFS}"))
        .current_dir(&em.dir);
    ok(&cmd.output().unwrap());
    let ninja = |args: &[&str]| {
        let mut cmd = em.env.command("ninja");
        cmd.arg("-C").arg(&build).args(args);
        let out = cmd.output().unwrap();
        ok(&out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ninja(&[]);
    let (h, m) = em.counts();
    assert_eq!(m, 2, "two objects compiled through zcfs");
    let lib = std::fs::read(build.join("libt.a")).unwrap();
    ninja(&["-t", "clean"]);
    ninja(&[]);
    assert_eq!(
        em.counts(),
        (h + 2, m),
        "after a clean, every object is a hit"
    );
    assert_eq!(std::fs::read(build.join("libt.a")).unwrap(), lib);
    assert!(ninja(&[]).contains("no work to do"));
}

#[test]
fn an_emscripten_tree_upgraded_in_place_misses() {
    // A launcher in a tree of its own (as emsdk lays it out), whose version file changes
    // while the launcher's bytes stay the same.
    let em = Em::warmed();
    let real = common::which("emcc");
    let canonical = real.canonicalize().unwrap();
    let real_root = canonical.parent().unwrap();
    let tree = em.env.tmp.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let launcher = tree.join("emcc");
    executable(
        &launcher,
        &format!("#!/bin/sh\nexec {} \"$@\"\n", real.display()),
    );
    std::os::unix::fs::symlink(real_root.join("emcc.py"), tree.join("emcc.py")).unwrap();
    std::fs::copy(
        real_root.join("emscripten-version.txt"),
        tree.join("emscripten-version.txt"),
    )
    .unwrap();
    let l = launcher.to_str().unwrap();
    ok(&em.run(l, &COMPILE));
    ok(&em.run(l, &COMPILE));
    assert_eq!(em.counts(), (1, 1));
    std::fs::write(tree.join("emscripten-version.txt"), "9.9.9\n").unwrap();
    ok(&em.run(l, &COMPILE));
    assert_eq!(em.counts(), (1, 2), "a new release is another compiler");
}

#[test]
fn masquerade_links_and_zcfs_run() {
    let em = Em::warmed();
    let wrap = em.env.tmp.path().join("wrap");
    std::fs::create_dir_all(&wrap).unwrap();
    std::os::unix::fs::symlink(ZCFS, wrap.join("emcc")).unwrap();
    let path = format!("{}:{}", wrap.display(), std::env::var("PATH").unwrap());
    for _ in 0..2 {
        let mut cmd = em.env.command("emcc");
        cmd.args(COMPILE).current_dir(&em.dir).env("PATH", &path);
        ok(&cmd.output().unwrap());
    }
    assert_eq!(em.counts(), (1, 1));
    // `zcfs run` routes a Makefile's `emcc` through zcfs.
    em.write("b.c", "int b(void) { return 3; }\n");
    em.write("Makefile", "b.o: b.c\n\temcc -O2 -c b.c -o b.o\n");
    for _ in 0..2 {
        let _ = std::fs::remove_file(em.dir.join("b.o"));
        let mut cmd = em.env.command(ZCFS);
        cmd.args(["run", "--", "make", "-s"]).current_dir(&em.dir);
        ok(&cmd.output().unwrap());
        assert!(em.dir.join("b.o").exists());
    }
    assert_eq!(em.counts(), (2, 2));
}

#[test]
fn response_files_and_setting_files_as_emcc_reads_them() {
    let em = Em::warmed();
    em.write("v.c", "int v = V;\n");
    let args = ["@args.rsp", "-c", "v.c", "-o", "v.o"];
    em.write("args.rsp", "-DV=12");
    em.same_as_plain("emcc", &args, &["v.o"]);
    em.same_as_plain("emcc", &args, &["v.o"]);
    assert_eq!(em.counts(), (1, 1));
    // Python's shlex: a backslash between single quotes stays (gcc's rules would drop
    // it: the same key as above), and \v separates nothing.
    em.write("args.rsp", "'-DV=1\\2'");
    em.same_as_plain("emcc", &args, &[]);
    em.write("args.rsp", "-DV=1\x0b-DW=2");
    em.same_as_plain("emcc", &args, &[]);
    // A response file named in EMCC_CFLAGS is read too.
    em.write("cf.rsp", "-DV=5");
    let mut cmd = em.env.command(ZCFS);
    cmd.args(["emcc", "-c", "v.c", "-o", "v.o"])
        .current_dir(&em.dir)
        .env("EMCC_CFLAGS", "@cf.rsp");
    let mut plain = em.env.command("emcc");
    plain
        .args(["-c", "v.c", "-o", "v.o"])
        .env("EMCC_CFLAGS", "@cf.rsp");
    common::same_as_plain(cmd, plain, &em.dir, &["v.o"]);

    // A setting whose value is a file's content: the content is keyed, and a missing
    // file is emcc's own error.
    em.write("exports.txt", "_f\n");
    let args = [
        "-sEXPORTED_FUNCTIONS=@exports.txt",
        "-c",
        "a.c",
        "-o",
        "a.o",
    ];
    em.same_as_plain("emcc", &args, &["a.o"]);
    em.same_as_plain("emcc", &args, &["a.o"]);
    std::fs::remove_file(em.dir.join("exports.txt")).unwrap();
    let out = em.same_as_plain("emcc", &args, &[]);
    assert!(!out.status.success());
}

#[test]
fn a_failed_compile_reads_as_emccs_own_with_a_dependency_file_given() {
    let em = Em::warmed();
    em.write("e.c", "int f(void) { return nope; }\n");
    // zcfs adds only a colour option here; emcc's message quotes clang's command line.
    let args = ["-MD", "-MF", "e.d", "-c", "e.c", "-o", "e.o"];
    let out = em.same_as_plain("emcc", &args, &[]);
    assert!(!out.status.success());
}
