//! C and C++ through zcfs: a hit is exactly the compile the compiler would have made, and a
//! compile that works plainly works under zcfs (issue 19, docs/c.md "What is keyed, and the
//! limits"). Each scenario stores an entry, changes one thing the key or the entry must
//! model, then compiles through zcfs and plainly: exit code, stdout, stderr, and every
//! output's bytes and permission bits must agree. Each runs with gcc and clang where both
//! have the behaviour; the Emscripten cases are in `tests/emcc.rs`.
//!
//! `ZCFS_TEST_BIN` runs the scenarios against another zcfs binary (to show which ones an
//! older version fails).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Env, ZCFS};

fn zcfs_bin() -> String {
    std::env::var("ZCFS_TEST_BIN").unwrap_or_else(|_| ZCFS.to_string())
}

struct T {
    env: Env,
    dir: PathBuf,
}

impl T {
    fn new() -> T {
        let env = Env::new();
        let dir = env.tmp.path().join("c");
        std::fs::create_dir_all(&dir).unwrap();
        T { env, dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Writes a file, its mtime a few seconds back (so that no compile takes it for one
    /// written while it ran).
    fn write(&self, rel: &str, content: &str) {
        self.write_bytes(rel, content.as_bytes());
    }

    fn write_bytes(&self, rel: &str, content: &[u8]) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, content).unwrap();
        backdate(&p);
    }

    fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.path(rel)).unwrap();
    }

    fn symlink(&self, target: &str, rel: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    /// `zcfs <cc> args` in the fixture dir, `cfg` applied.
    fn run_with(&self, cc: &str, args: &[&str], cfg: &dyn Fn(&mut Command)) -> Output {
        let mut cmd = self.env.command(zcfs_bin());
        cmd.arg(cc).args(args).current_dir(&self.dir);
        cfg(&mut cmd);
        cmd.output().unwrap()
    }

    fn run(&self, cc: &str, args: &[&str]) -> Output {
        self.run_with(cc, args, &|_| {})
    }

    /// Through zcfs (`cfg` applied), then plainly (the same), each with none of the
    /// outputs there before: the same exit, streams, outputs and modes. Returns the zcfs
    /// run's output.
    fn same_with(
        &self,
        cc: &str,
        args: &[&str],
        outputs: &[&str],
        cfg: &dyn Fn(&mut Command),
    ) -> Output {
        for o in outputs {
            let _ = std::fs::remove_file(self.path(o));
        }
        let out = self.run_with(cc, args, cfg);
        let got: Vec<Option<(Vec<u8>, u32)>> = outputs.iter().map(|o| self.output(o)).collect();
        for o in outputs {
            let _ = std::fs::remove_file(self.path(o));
        }
        let mut plain = self.env.command(cc);
        plain.args(args).current_dir(&self.dir);
        cfg(&mut plain);
        let reference = plain.output().unwrap();
        assert_eq!(
            (out.status.code(), signal(&out)),
            (reference.status.code(), signal(&reference)),
            "exit status; stderr through zcfs:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&reference.stderr),
            "stderr"
        );
        assert_eq!(out.stdout, reference.stdout, "stdout");
        for (o, got) in outputs.iter().zip(got) {
            let want = self.output(o);
            assert_eq!(got.is_some(), want.is_some(), "{o} exists in one run only");
            if let (Some((g, gm)), Some((w, wm))) = (got, want) {
                assert!(g == w, "{o} differs from the reference");
                assert_eq!(format!("{gm:o}"), format!("{wm:o}"), "mode of {o}");
            }
        }
        out
    }

    fn same(&self, cc: &str, args: &[&str], outputs: &[&str]) -> Output {
        self.same_with(cc, args, outputs, &|_| {})
    }

    fn output(&self, rel: &str) -> Option<(Vec<u8>, u32)> {
        let p = self.path(rel);
        let bytes = std::fs::read(&p).ok()?;
        Some((bytes, std::fs::metadata(&p).unwrap().mode() & 0o7777))
    }

    fn stats(&self) -> serde_json::Value {
        let out = self
            .env
            .command(zcfs_bin())
            .args(["stats", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// (hits, misses) over C and C++.
    fn counts(&self) -> (u64, u64) {
        let s = self.stats();
        let n = |l: &str, k: &str| s["languages"][l][k].as_u64().unwrap_or(0);
        (
            n("c", "hits") + n("cxx", "hits"),
            n("c", "misses") + n("cxx", "misses"),
        )
    }

    fn uncacheable(&self, reason: &str) -> u64 {
        self.stats()["uncacheable"][reason].as_u64().unwrap_or(0)
    }
}

fn signal(o: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    o.status.signal()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Sets a file's mtime ten seconds back.
fn backdate(p: &Path) {
    let t = std::time::SystemTime::now() - Duration::from_secs(10);
    let ft = filetime::FileTime::from_system_time(t);
    filetime::set_symlink_file_times(p, ft, ft).unwrap();
}

/// Lets the change made just now settle: a compile that starts in the same clock tick as
/// a file was written does not store its result.
fn settle() {
    std::thread::sleep(Duration::from_millis(30));
}

/// Each scenario runs with gcc and with clang.
macro_rules! both {
    ($($name:ident($cc:ident) $body:block)*) => {
        mod gcc { use super::*; $( #[test] fn $name() { let $cc = "gcc"; $body } )* }
        mod clang { use super::*; $( #[test] fn $name() { let $cc = "clang"; $body } )* }
    };
}

both! {
    // 1. The working directory the compiler embeds.

    debug_info_names_pwd_through_a_symlink(cc) {
        let t = T::new();
        t.write("real/a.c", "int f(void) { return 1; }\n");
        t.symlink("real", "l1");
        t.symlink("real", "l2");
        let args = ["-g", "-c", "a.c", "-o", "a.o"];
        let in_link = |l: &str| {
            let dir = t.path(l);
            move |c: &mut Command| {
                c.current_dir(&dir).env("PWD", &dir);
            }
        };
        ok(&t.run_with(cc, &args, &in_link("l1")));
        let l2 = in_link("l2");
        let out = t.run_with(cc, &args, &l2);
        ok(&out);
        let got = std::fs::read(t.path("real/a.o")).unwrap();
        assert!(
            memchr::memmem::find(&got, t.path("l2").to_str().unwrap().as_bytes()).is_some(),
            "the object names the directory as $PWD spells it"
        );
        let mut plain = t.env.command(cc);
        plain.args(args);
        l2(&mut plain);
        ok(&plain.output().unwrap());
        assert!(got == std::fs::read(t.path("real/a.o")).unwrap(), "same as plain");
    }

    coverage_names_pwd_through_a_symlink(cc) {
        let t = T::new();
        t.write("real/a.c", "int f(int x) { return x ? 1 : 2; }\n");
        t.symlink("real", "l1");
        t.symlink("real", "l2");
        let args = ["--coverage", "-c", "a.c", "-o", "a.o"];
        let run = |l: &str| {
            let dir = t.path(l);
            t.run_with(cc, &args, &|c: &mut Command| {
                c.current_dir(&dir).env("PWD", &dir);
            })
        };
        ok(&run("l1"));
        ok(&run("l2"));
        // gcc's objects carry a new stamp each compile: compare the path they name.
        let got = std::fs::read(t.path("real/a.o")).unwrap();
        let gcda = format!("{}/a.gcda", t.path("l2").display());
        assert!(
            memchr::memmem::find(&got, gcda.as_bytes()).is_some(),
            "the object names {gcda}"
        );
    }

    // 2. Lookups the key does not model.

    has_include_of_a_macro_name(cc) {
        let t = T::new();
        t.write(
            "a.c",
            "#define H \"later.h\"\n#if __has_include(H)\n#include H\n#else\n#define L 0\n#endif\nint v = L;\n",
        );
        let args = ["-c", "a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        t.write("later.h", "#define L 7\n");
        t.same(cc, &args, &["a.o"]);
    }

    has_include_of_a_bracket_name_that_appears(cc) {
        let t = T::new();
        t.mkdir("inc");
        t.write("a.c", "#if __has_include(<sub/later.h>)\n#define L 7\n#else\n#define L 0\n#endif\nint v = L;\n");
        let args = ["-Iinc", "-c", "a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        t.write("inc/sub/later.h", "\n");
        t.same(cc, &args, &["a.o"]);
        std::fs::remove_file(t.path("inc/sub/later.h")).unwrap();
        t.same(cc, &args, &["a.o"]);
    }

    has_include_through_a_wrapper_macro(cc) {
        let t = T::new();
        t.mkdir("inc");
        t.write(
            "a.c",
            "#define HAS(x) __has_include(x)\n#define HAS2(y) HAS(y)\n\
             #if HAS2(<later.h>)\n#define L 7\n#else\n#define L 0\n#endif\nint v = L;\n",
        );
        let args = ["-Iinc", "-c", "a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        assert_eq!(t.counts(), (1, 1), "cached: the wrapped lookup is modelled");
        t.write("inc/later.h", "\n");
        t.same(cc, &args, &["a.o"]);
    }

    has_include_in_a_macro_looks_where_the_macro_is_used(cc) {
        let t = T::new();
        t.write("h/defs.h", "#define HAVE_CFG __has_include(\"cfg.h\")\n");
        t.write("src/a.c", "#include <defs.h>\n#if HAVE_CFG\nint v = 1;\n#else\nint v = 2;\n#endif\n");
        let args = ["-Ih", "-c", "src/a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        t.write("src/cfg.h", "\n");
        t.same(cc, &args, &["a.o"]);
    }

    has_include_next_of_a_name_that_appears(cc) {
        let t = T::new();
        t.write("a/x.h", "#if __has_include_next(<x.h>)\n#include_next <x.h>\n#else\n#define X 0\n#endif\n");
        t.mkdir("b");
        t.write("a.c", "#include <x.h>\nint v = X;\n");
        let args = ["-Ia", "-Ib", "-c", "a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        t.write("b/x.h", "#define X 5\n");
        t.same(cc, &args, &["a.o"]);
    }

    a_forced_include_with_a_directory_that_appears_in_the_cwd(cc) {
        let t = T::new();
        t.write("src/a.c", "int v = CFG;\n");
        t.write("inc/sub/cfg.h", "#define CFG 1\n");
        let args = ["-Iinc", "-include", "sub/cfg.h", "-c", "src/a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        t.write("sub/cfg.h", "#define CFG 2\n");
        t.same(cc, &args, &["a.o"]);
    }

    has_include_from_another_directory_than_the_include_of_the_name(cc) {
        let t = T::new();
        t.write("src/config.h", "#define C 1\n");
        t.write("src/util/log.h", "#if __has_include(\"config.h\")\n#define L 1\n#else\n#define L 2\n#endif\n");
        t.write("src/main.c", "#include \"config.h\"\n#include \"util/log.h\"\nint v = C + L;\n");
        let args = ["-c", "src/main.c", "-o", "main.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        t.write("src/util/config.h", "\n");
        t.same(cc, &args, &["main.o"]);
    }

    a_header_created_earlier_on_the_path_while_the_compile_runs(cc) {
        let t = T::new();
        t.write("x.c", "#include \"x.h\"\nint v = X;\n");
        t.write("old/x.h", "#define X 1\n");
        t.mkdir("new");
        // A compiler that, once done, finds a rule of the build created a header.
        let real = common::which(cc);
        let shim = t.path(&format!("shim/{cc}"));
        std::fs::create_dir_all(shim.parent().unwrap()).unwrap();
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\n{} \"$@\" || exit $?\nprintf '#define X 2\\n' > {}\n",
                real.display(),
                t.path("new/x.h").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let args = ["-Inew", "-Iold", "-c", "x.c", "-o", "x.o"];
        let shim = shim.to_str().unwrap();
        ok(&t.run(shim, &args));
        // The same compiler again: it would read new/x.h now.
        ok(&t.run(shim, &args));
        let got = std::fs::read(t.path("x.o")).unwrap();
        let mut plain = t.env.command(cc);
        plain.args(args).current_dir(&t.dir);
        ok(&plain.output().unwrap());
        assert!(got == std::fs::read(t.path("x.o")).unwrap(), "same as plain");
    }

    a_file_has_include_found_then_deleted(cc) {
        let t = T::new();
        t.write("opt.h", "\n");
        t.write("a.c", "#if __has_include(\"opt.h\")\nint v = 1;\n#else\nint v = 2;\n#endif\n");
        let args = ["-c", "a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        std::fs::remove_file(t.path("opt.h")).unwrap();
        t.same(cc, &args, &["a.o"]);
    }

    forced_includes_are_looked_up_in_the_cwd_first(cc) {
        let t = T::new();
        t.write("src/a.c", "int v = CFG + MAC;\n");
        t.write("inc/cfg.h", "#define CFG 1\n");
        t.write("inc/mac.h", "#define MAC 10\n");
        let args = ["-Iinc", "-include", "cfg.h", "-imacros", "mac.h", "-c", "src/a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        t.write("cfg.h", "#define CFG 2\n");
        t.same(cc, &args, &["a.o"]);
        t.write("mac.h", "#define MAC 20\n");
        t.same(cc, &args, &["a.o"]);
    }

    a_dangling_symlink_whose_target_appears(cc) {
        let t = T::new();
        t.write("x.c", "#include \"x.h\"\nint v = X;\n");
        t.write("old/x.h", "#define X 1\n");
        t.mkdir("new");
        t.symlink("../made/x.h", "new/x.h");
        let args = ["-Inew", "-Iold", "-c", "x.c", "-o", "x.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        t.write("made/x.h", "#define X 2\n");
        t.same(cc, &args, &["x.o"]);
    }

    a_dangling_symlinked_directory_that_appears(cc) {
        let t = T::new();
        t.write("x.c", "#include <sub/x.h>\nint v = X;\n");
        t.write("old/sub/x.h", "#define X 1\n");
        t.symlink("../made", "inc/sub");
        let args = ["-Iinc", "-Iold", "-c", "x.c", "-o", "x.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        t.write("made/x.h", "#define X 2\n");
        t.same(cc, &args, &["x.o"]);
        // And a search directory that is a dangling symlink.
        t.symlink("made2", "link");
        let args = ["-Ilink", "-Iold", "-c", "x.c", "-o", "x.o"];
        ok(&t.run(cc, &args));
        t.write("made2/sub/x.h", "#define X 3\n");
        t.same(cc, &args, &["x.o"]);
    }

    a_symlinked_directory_pointed_elsewhere(cc) {
        let t = T::new();
        t.write("x.c", "#include <sub/x.h>\nint v = X;\n");
        t.write("old/sub/x.h", "#define X 1\n");
        t.mkdir("d1");
        t.write("d2/sub/x.h", "#define X 2\n");
        t.symlink("../d1", "inc/link");
        let args = ["-Iinc/link", "-Iold", "-c", "x.c", "-o", "x.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        t.symlink("../d2", "inc/link");
        t.same(cc, &args, &["x.o"]);
    }

    a_directory_candidate_that_becomes_a_file(cc) {
        let t = T::new();
        t.write("x.c", "#include <x.h>\nint v = X;\n");
        t.write("old/x.h", "#define X 1\n");
        t.mkdir("new/x.h");
        let args = ["-Inew", "-Iold", "-c", "x.c", "-o", "x.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        assert_eq!(t.counts(), (1, 1), "a directory where a header could be: still cached");
        std::fs::remove_dir(t.path("new/x.h")).unwrap();
        t.write("new/x.h", "#define X 2\n");
        t.same(cc, &args, &["x.o"]);
    }

    a_search_path_file_that_becomes_a_directory(cc) {
        let t = T::new();
        t.write("x.c", "#include <x.h>\nint v = X;\n");
        t.write("old/x.h", "#define X 1\n");
        t.write("notdir", "");
        let args = ["-Inotdir", "-Iold", "-c", "x.c", "-o", "x.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        assert_eq!(t.counts(), (1, 1), "cached while it stays a file");
        std::fs::remove_file(t.path("notdir")).unwrap();
        t.write("notdir/x.h", "#define X 2\n");
        t.same(cc, &args, &["x.o"]);
    }

    pragma_once_a_symlink_replaced_by_a_copy(cc) {
        let t = T::new();
        t.write("x.h", "#pragma once\n+ 1\n");
        t.symlink("x.h", "y.h");
        t.write("a.c", "int v = 0\n#include \"x.h\"\n#include \"y.h\"\n;\n");
        let args = ["-c", "a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        std::fs::remove_file(t.path("y.h")).unwrap();
        t.write("y.h", "#pragma once\n+ 1\n");
        // Another mtime too: another file for gcc as for clang.
        filetime::set_file_mtime(t.path("y.h"), filetime::FileTime::from_unix_time(1_000_000_000, 0)).unwrap();
        t.same(cc, &args, &["a.o"]);
    }

    pragma_once_a_hard_link_replaced_by_a_copy(cc) {
        let t = T::new();
        t.write("x.h", "#pragma once\n+ 1\n");
        std::fs::hard_link(t.path("x.h"), t.path("y.h")).unwrap();
        t.write("a.c", "int v = 0\n#include \"x.h\"\n#include \"y.h\"\n;\n");
        let args = ["-c", "a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        std::fs::remove_file(t.path("y.h")).unwrap();
        std::fs::write(t.path("y.h"), "#pragma once\n+ 1\n").unwrap();
        settle();
        t.same(cc, &args, &["a.o"]);
    }

    pragma_once_copies_that_become_one_file(cc) {
        let t = T::new();
        t.write("x.h", "#pragma once\n+ 1\n");
        t.write("sub/x.h", "#pragma once\n+ 1\n");
        // Different mtimes: two files for gcc as for clang.
        filetime::set_file_mtime(t.path("sub/x.h"), filetime::FileTime::from_unix_time(1_000_000_000, 0)).unwrap();
        t.write("a.c", "int v = 0\n#include \"x.h\"\n#include \"sub/x.h\"\n;\n");
        let args = ["-c", "a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        std::fs::remove_file(t.path("sub/x.h")).unwrap();
        std::fs::hard_link(t.path("x.h"), t.path("sub/x.h")).unwrap();
        t.same(cc, &args, &["a.o"]);
    }

    // 3. Options read as the compiler reads them.

    mmd_wins_over_md(cc) {
        let t = T::new();
        t.write("sys/s.h", "#define S 1\n");
        t.write("a.c", "#include <s.h>\nint v = S;\n");
        let args = ["-isystem", "sys", "-MMD", "-MD", "-c", "a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        t.write("sys/s.h", "#define S 2\n");
        t.same(cc, &args, &["a.o", "a.d"]);
    }

    response_files_split_as_the_compiler_splits_them(cc) {
        let t = T::new();
        t.write("v.c", "int v = V;\nint w = W;\n");
        // gcc takes \v for a space and a no-break space for a character; clang takes both
        // for characters. One spelling each compiler splits in two, one it does not.
        let two = if cc == "gcc" { "-DV=1\x0b-DW=2" } else { "-DV=1 -DW=2" };
        let one = if cc == "gcc" { "-DV=1\u{a0}-DW=2" } else { "-DV=1\x0b-DW=2" };
        t.write("args.rsp", two);
        let args = ["@args.rsp", "-c", "v.c", "-o", "v.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        t.write("args.rsp", one);
        t.same(cc, &args, &["v.o"]);
    }

    // 4. The compiler's own programs and environment.

    the_time_zone_of_date(cc) {
        let t = T::new();
        t.write("d.c", "const char *d = __DATE__;\n");
        let args = ["-c", "d.c", "-o", "d.o"];
        let tz = |z: &'static str| move |c: &mut Command| {
            c.env("TZ", z);
        };
        ok(&t.run_with(cc, &args, &tz("UTC-14")));
        ok(&t.run_with(cc, &args, &tz("UTC-14")));
        t.same_with(cc, &args, &["d.o"], &tz("UTC+12"));
    }

    a_time_macro_pasted_from_pieces(cc) {
        let t = T::new();
        t.write("t.c", "#define CAT(a, b) a##b\n#define XCAT(a, b) CAT(a, b)\nconst char *t = XCAT(__TI, ME__);\n");
        let args = ["-c", "t.c", "-o", "t.o"];
        ok(&t.run(cc, &args));
        let first = std::fs::read(t.path("t.o")).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        ok(&t.run(cc, &args));
        assert!(first != std::fs::read(t.path("t.o")).unwrap(), "a new __TIME__");
    }

    assembler_directives_in_any_case(cc) {
        let t = T::new();
        t.write("data.bin", "one");
        t.write("a.c", "__asm__(\".section .rodata\\n.INCBIN \\\"data.bin\\\"\\n.text\");\nint f(void) { return 0; }\n");
        t.write("inc.s", ".long 1\n");
        t.write("b.s", ".data\n.Include \"inc.s\"\n");
        let (a, b) = (["-c", "a.c", "-o", "a.o"], ["-c", "b.s", "-o", "b.o"]);
        ok(&t.run(cc, &a));
        ok(&t.run(cc, &b));
        t.write("data.bin", "two");
        t.write("inc.s", ".long 2\n");
        t.same(cc, &a, &["a.o"]);
        t.same(cc, &b, &["b.o"]);
    }

    clang_and_gcc_side_files_from_the_environment(cc) {
        let t = T::new();
        t.write("w.c", "#include \"h.h\"\nint f(void) { int unused; return H; }\n");
        t.write("h.h", "#define H 1\n");
        let args = ["-Wall", "-c", "w.c", "-o", "w.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        for (var, file) in [
            ("CC_PRINT_HEADERS", "CC_PRINT_HEADERS_FILE"),
            ("CC_LOG_DIAGNOSTICS", "CC_LOG_DIAGNOSTICS_FILE"),
            ("CC_PRINT_OPTIONS", "CC_PRINT_OPTIONS_FILE"),
        ] {
            let side = t.path("side.txt");
            let _ = std::fs::remove_file(&side);
            ok(&t.run_with(cc, &args, &|c: &mut Command| {
                c.env(var, "1").env(file, &side);
            }));
            let plain_wrote = {
                let _ = std::fs::remove_file(&side);
                let mut p = t.env.command(cc);
                p.args(args).current_dir(&t.dir).env(var, "1").env(file, &side);
                ok(&p.output().unwrap());
                side.exists()
            };
            let _ = std::fs::remove_file(&side);
            ok(&t.run_with(cc, &args, &|c: &mut Command| {
                c.env(var, "1").env(file, &side);
            }));
            assert_eq!(side.exists(), plain_wrote, "{var}");
        }
    }

    // 5. Replays.

    pragma_gcc_dependency_warns_when_it_would(cc) {
        let t = T::new();
        t.write("parse.y", "grammar\n");
        t.write("a.c", "#pragma GCC dependency \"parse.y\"\nint v;\n");
        filetime::set_file_mtime(t.path("parse.y"), filetime::FileTime::from_unix_time(1_000_000_000, 0)).unwrap();
        let args = ["-c", "a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        filetime::set_file_mtime(t.path("parse.y"), filetime::FileTime::now()).unwrap();
        t.same(cc, &args, &["a.o"]);
    }

    outputs_have_the_modes_the_compiler_would_give(cc) {
        let t = T::new();
        t.write("a.c", "int f(void) { return 1; }\n");
        let args = ["-MD", "-c", "a.c", "-o", "a.o"];
        let umask = |m: u32| move |c: &mut Command| {
            use std::os::unix::process::CommandExt;
            // SAFETY: umask is async-signal-safe.
            unsafe {
                c.pre_exec(move || {
                    libc::umask(m as libc::mode_t);
                    Ok(())
                });
            }
        };
        ok(&t.run_with(cc, &args, &umask(0o022)));
        t.same_with(cc, &args, &["a.o", "a.d"], &umask(0o077));
        // A dependency file already there keeps its mode; the object is made anew.
        ok(&t.run_with(cc, &args, &umask(0o022)));
        for f in ["a.o", "a.d"] {
            std::fs::set_permissions(t.path(f), std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        ok(&t.run_with(cc, &args, &umask(0o022)));
        let mode = |f: &str| std::fs::metadata(t.path(f)).unwrap().mode() & 0o777;
        assert_eq!((mode("a.o"), mode("a.d")), (0o644, 0o640));
        assert!(t.counts().0 >= 2, "those were hits");
    }

    diagnostics_to_a_full_device(cc) {
        let t = T::new();
        t.write("w.c", "int f(void) { int unused; return 0; }\n");
        let args = ["-Wall", "-c", "w.c", "-o", "w.o"];
        ok(&t.run(cc, &args));
        let full = |c: &mut Command| {
            c.stderr(std::fs::File::create("/dev/full").unwrap());
        };
        t.same_with(cc, &args, &["w.o"], &full);
    }

    // 6. Files read in the caller's process.

    a_response_file_on_stdin(cc) {
        let t = T::new();
        t.write("v.c", "int v = V;\n");
        let args = ["@/dev/stdin", "-c", "v.c", "-o", "v.o"];
        let stdin = |text: &'static str| {
            let p = t.path("stdin.txt");
            std::fs::write(&p, text).unwrap();
            move |c: &mut Command| {
                c.stdin(std::fs::File::open(&p).unwrap());
            }
        };
        ok(&t.run_with(cc, &args, &stdin("-DV=1")));
        t.same_with(cc, &args, &["v.o"], &stdin("-DV=2"));
    }

    a_response_file_that_is_a_fifo(cc) {
        let t = T::new();
        t.write("v.c", "int v = V;\n");
        let fifo = t.path("args.fifo");
        assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let writer = || {
            let f = fifo.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut w = std::fs::OpenOptions::new().write(true).open(f).unwrap();
                let _ = w.write_all(b"-DV=3");
            })
        };
        // clang reads it; gcc does not take response files it cannot seek in.
        let w = writer();
        let mut plain = t.env.command(cc);
        plain.args(["@args.fifo", "-c", "v.c", "-o", "v.o"]).current_dir(&t.dir);
        let want = plain.output().unwrap().status.success();
        w.join().unwrap();
        for _ in 0..2 {
            let w = writer();
            let mut cmd = t.env.command(zcfs_bin());
            cmd.args([cc, "@args.fifo", "-c", "v.c", "-o", "v.o"]).current_dir(&t.dir);
            let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                if std::time::Instant::now() > deadline {
                    // The compiler waits for a writer: the fifo was read by someone else.
                    let _ = Command::new("pkill").args(["-f", "args.fifo"]).status();
                    panic!("the compile hangs: the fifo was read before the compiler read it");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            assert_eq!(status.success(), want);
            w.join().unwrap();
        }
    }

    // 7. Flags zcfs adds never change the outcome.

    options_end_at_a_double_dash(cc) {
        let t = T::new();
        t.write("a.c", "int f(void) { return 1; }\n");
        let args = ["-c", "-o", "a.o", "--", "a.c"];
        t.same(cc, &args, &["a.o"]);
        t.same(cc, &args, &["a.o"]);
    }

    a_double_dash_as_an_options_value(cc) {
        let t = T::new();
        t.write("a.c", "int f(void) { return 1; }\n");
        let args = ["-MD", "-MT", "--", "-c", "a.c", "-o", "a.o"];
        t.same(cc, &args, &["a.o", "a.d"]);
        t.same(cc, &args, &["a.o", "a.d"]);
    }

    two_outputs_the_last_wins(cc) {
        let t = T::new();
        t.write("a.c", "int f(void) { return 1; }\n");
        let args = ["-c", "a.c", "-o", "x.o", "-o", "y.o"];
        t.same(cc, &args, &["y.o"]);
        t.same(cc, &args, &["y.o"]);
    }

    assembler_input_with_werror(cc) {
        let t = T::new();
        t.write("u.s", ".text\n.globl f\nf:\n ret\n");
        let args = ["-Werror", "-c", "u.s", "-o", "u.o"];
        t.same(cc, &args, &["u.o"]);
        t.same(cc, &args, &["u.o"]);
        let args = ["-Werror", "-x", "assembler", "-c", "u.s", "-o", "u.o"];
        t.same(cc, &args, &["u.o"]);
        t.same(cc, &args, &["u.o"]);
    }

    // Also: no unnecessary misses.

    an_include_directory_created_later_hits_again(cc) {
        let t = T::new();
        t.write("a.c", "int v = 1;\n");
        let args = ["-Ilater", "-c", "a.c", "-o", "a.o"];
        ok(&t.run(cc, &args));
        t.mkdir("later");
        settle();
        ok(&t.run(cc, &args));
        ok(&t.run(cc, &args));
        assert_eq!(t.counts(), (1, 2), "the directory that appeared is in the search list now");
    }
}

#[test]
fn gcc_assembler_debug_info_names_the_directory() {
    let t = T::new();
    for d in ["d1", "d2"] {
        t.write(&format!("{d}/g.s"), ".text\n.globl f\nf:\n ret\n");
    }
    for opt in ["-Wa,-g", "-Wa,--gdwarf-5", "-Xassembler=-g"] {
        let args: Vec<&str> = match opt.strip_prefix("-Xassembler=") {
            Some(v) => vec!["-Xassembler", v, "-c", "g.s", "-o", "g.o"],
            None => vec![opt, "-c", "g.s", "-o", "g.o"],
        };
        let in_dir = |d: &str| {
            let dir = t.path(d);
            move |c: &mut Command| {
                c.current_dir(&dir).env("PWD", &dir);
            }
        };
        ok(&t.run_with("gcc", &args, &in_dir("d1")));
        let out = t.run_with("gcc", &args, &in_dir("d2"));
        ok(&out);
        let got = std::fs::read(t.path("d2/g.o")).unwrap();
        let mut plain = t.env.command("gcc");
        plain.args(&args);
        in_dir("d2")(&mut plain);
        ok(&plain.output().unwrap());
        assert!(
            got == std::fs::read(t.path("d2/g.o")).unwrap(),
            "{opt}: same as plain"
        );
    }
}

#[test]
fn clang_header_maps_pass_through() {
    let t = T::new();
    t.write("real1/x.h", "#define HM 1\n");
    t.write("real2/x.h", "#define HM 2\n");
    t.write("h.c", "#include \"mapped.h\"\nint v = HM;\n");
    let map = |prefix: &str| header_map("mapped.h", prefix, "x.h");
    t.write_bytes("m.hmap", &map(&format!("{}/", t.path("real1").display())));
    let args = ["-I", "m.hmap", "-c", "h.c", "-o", "h.o"];
    ok(&t.run("clang", &args));
    t.write_bytes("m.hmap", &map(&format!("{}/", t.path("real2").display())));
    t.same("clang", &args, &["h.o"]);
    assert!(t.uncacheable("header map") >= 1);
}

/// A clang header map (`HeaderMapTypes.h`) with one entry: `key` → `prefix` + `suffix`.
fn header_map(key: &str, prefix: &str, suffix: &str) -> Vec<u8> {
    let mut strings = vec![0u8];
    let mut add = |s: &str| {
        let off = strings.len() as u32;
        strings.extend_from_slice(s.as_bytes());
        strings.push(0);
        off
    };
    let (k, p, s) = (add(key), add(prefix), add(suffix));
    let buckets = 8u32;
    let hash = key.bytes().fold(0u32, |h, c| {
        h.wrapping_add(c.to_ascii_lowercase() as u32 * 13)
    });
    let mut out = Vec::new();
    out.extend_from_slice(&0x686D_6170u32.to_le_bytes()); // "hmap"
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    let strings_at = 24 + 12 * buckets;
    for v in [strings_at, 1, buckets, (prefix.len() + suffix.len()) as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for b in 0..buckets {
        let e = if b == hash & (buckets - 1) {
            [k, p, s]
        } else {
            [0, 0, 0]
        };
        for v in e {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(&strings);
    out
}

#[test]
fn clang_picks_a_gcc_installation_that_appears() {
    let t = T::new();
    let install = |v: &str| {
        t.write(&format!("tc/lib/gcc/x86_64-linux-gnu/{v}/crtbegin.o"), "");
        t.write(
            &format!("tc/include/c++/{v}/zv.h"),
            &format!("#define ZV {v}\n"),
        );
    };
    install("12");
    t.write("zv.cc", "#include <zv.h>\nint v = ZV;\n");
    let tc = format!("--gcc-toolchain={}", t.path("tc").display());
    let args = [tc.as_str(), "-c", "zv.cc", "-o", "zv.o"];
    ok(&t.run("clang++", &args));
    ok(&t.run("clang++", &args));
    install("13");
    t.same("clang++", &args, &["zv.o"]);
}

#[test]
fn gcc_programs_appearing_on_compiler_path() {
    let t = T::new();
    t.write("a.c", "int f(void) { return 1; }\n");
    t.mkdir("bin");
    let cp = |c: &mut Command| {
        c.env("COMPILER_PATH", t.path("bin"));
    };
    let args = ["-c", "a.c", "-o", "a.o"];
    ok(&t.run_with("gcc", &args, &cp));
    ok(&t.run_with("gcc", &args, &cp));
    fake_assembler(&t.path("bin/as"));
    t.same_with("gcc", &args, &["a.o"], &cp);
}

#[test]
fn gcc_assembler_appearing_earlier_on_path() {
    let t = T::new();
    t.write("a.c", "int f(void) { return 1; }\n");
    t.mkdir("bin");
    let path = format!(
        "{}:{}",
        t.path("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let env = |c: &mut Command| {
        c.env("PATH", &path);
    };
    let args = ["-c", "a.c", "-o", "a.o"];
    ok(&t.run_with("gcc", &args, &env));
    ok(&t.run_with("gcc", &args, &env));
    fake_assembler(&t.path("bin/as"));
    t.same_with("gcc", &args, &["a.o"], &env);
}

#[test]
fn clang_external_assembler_appearing_on_compiler_path() {
    let t = T::new();
    t.write("a.c", "int f(void) { return 1; }\n");
    t.mkdir("bin");
    let cp = |c: &mut Command| {
        c.env("COMPILER_PATH", t.path("bin"));
    };
    let args = ["-no-integrated-as", "-c", "a.c", "-o", "a.o"];
    ok(&t.run_with("clang", &args, &cp));
    ok(&t.run_with("clang", &args, &cp));
    fake_assembler(&t.path("bin/as"));
    t.same_with("clang", &args, &["a.o"], &cp);
}

/// An `as` that assembles like the system's and defines one more symbol.
fn fake_assembler(at: &Path) {
    let real = common::which("as");
    std::fs::write(
        at,
        format!(
            "#!/bin/sh\nexec {} --defsym zcfs_fake_as=1 \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn gcc_specs_file_appearing_and_changing_under_gcc_exec_prefix() {
    let t = T::new();
    // A prefix whose programs are gcc's own.
    let machine = String::from_utf8(
        Command::new("gcc")
            .arg("-dumpmachine")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let version = String::from_utf8(
        Command::new("gcc")
            .arg("-dumpversion")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let libexec = format!("pre/{machine}/{version}");
    t.mkdir(&libexec);
    let cc1 = String::from_utf8(
        Command::new("gcc")
            .arg("-print-prog-name=cc1")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    t.symlink(&cc1, &format!("{libexec}/cc1"));
    t.write(
        "a.c",
        "#ifdef FROM_SPECS\nint v = FROM_SPECS;\n#else\nint v = 0;\n#endif\n",
    );
    let pre = format!("{}/", t.path("pre").display());
    let env = |c: &mut Command| {
        c.env("GCC_EXEC_PREFIX", &pre);
    };
    let args = ["-c", "a.c", "-o", "a.o"];
    t.same_with("gcc", &args, &["a.o"], &env);
    ok(&t.run_with("gcc", &args, &env));
    t.write(&format!("{libexec}/specs"), "*cpp:\n+ -DFROM_SPECS=7\n\n");
    settle();
    t.same_with("gcc", &args, &["a.o"], &env);
    t.write(&format!("{libexec}/specs"), "*cpp:\n+ -DFROM_SPECS=8\n\n");
    t.same_with("gcc", &args, &["a.o"], &env);
}

#[test]
fn gcc_extra_diagnostic_output() {
    let t = T::new();
    t.write("fx.c", "int f(void) { return strlen(\"x\"); }\n");
    let args = ["-c", "fx.c", "-o", "fx.o"];
    ok(&t.run("gcc", &args));
    ok(&t.run("gcc", &args));
    t.same_with("gcc", &args, &["fx.o"], &|c: &mut Command| {
        c.env("GCC_EXTRA_DIAGNOSTIC_OUTPUT", "fixits-v2");
    });
}

#[test]
fn gcc_branch_probabilities_read_profile_data() {
    let t = T::new();
    t.write(
        "a.c",
        "int main(int c, char **v) { return c > 3 ? 1 : 0; }\n",
    );
    let use_args = ["-O2", "-fbranch-probabilities", "-c", "a.c", "-o", "a.o"];
    t.same("gcc", &use_args, &["a.o"]);
    // Profile data appears (named after the object).
    for args in [
        &["-O2", "-fprofile-arcs", "-c", "a.c", "-o", "a.o"][..],
        &["-fprofile-arcs", "a.o", "-o", "a"],
    ] {
        ok(&t
            .env
            .command("gcc")
            .args(args)
            .current_dir(&t.dir)
            .output()
            .unwrap());
    }
    ok(&Command::new(t.path("a"))
        .current_dir(&t.dir)
        .output()
        .unwrap());
    assert!(t.path("a.gcda").exists());
    t.same("gcc", &use_args, &["a.o"]);
}

#[test]
fn clang_profile_and_trace_options_given_to_cc1_pass_through() {
    let t = T::new();
    t.write("a.c", "int f(void) { return 1; }\n");
    t.write("p.profdata", "not profile data\n");
    let args = [
        "-Xclang",
        "-fprofile-instrument-use-path=p.profdata",
        "-c",
        "a.c",
        "-o",
        "a.o",
    ];
    t.same("clang", &args, &["a.o"]);
    let before = t.uncacheable("unsupported option");
    let args = ["-Xclang", "-ftime-trace", "-c", "a.c", "-o", "a.o"];
    for _ in 0..2 {
        // The trace holds timings: only that it is written can be compared.
        let _ = std::fs::remove_file(t.path("a.json"));
        ok(&t.run("clang", &args));
        assert!(t.path("a.json").exists(), "the trace is written");
    }
    assert!(t.uncacheable("unsupported option") > before);
}

#[test]
fn clang_sanitizer_coverage_lists_are_keyed() {
    let t = T::new();
    t.write(
        "a.c",
        "int f(int x) { return x ? 1 : 2; }\nint g(int x) { return x ? 3 : 4; }\n",
    );
    t.write("allow.txt", "src:*\nfun:f\n");
    let args = [
        "-fsanitize-coverage=trace-pc-guard",
        "-fsanitize-coverage-allowlist=allow.txt",
        "-c",
        "a.c",
        "-o",
        "a.o",
    ];
    ok(&t.run("clang", &args));
    ok(&t.run("clang", &args));
    t.write("allow.txt", "src:*\nfun:g\n");
    t.same("clang", &args, &["a.o"]);
}

#[test]
fn gcc_assembler_response_files_pass_through() {
    let t = T::new();
    t.write("s.s", ".data\n.long X\n");
    t.write("as.rsp", "--defsym=X=1");
    let args = ["-Wa,@as.rsp", "-c", "s.s", "-o", "s.o"];
    ok(&t.run("gcc", &args));
    t.write("as.rsp", "--defsym=X=2");
    t.same("gcc", &args, &["s.o"]);
}

#[test]
fn gcc_diagnostics_urls_are_kept() {
    let t = T::new();
    t.write("w.c", "int f(void) { int unused; return 0; }\n");
    let args = [
        "-Wall",
        "-fdiagnostics-urls=always",
        "-c",
        "w.c",
        "-o",
        "w.o",
    ];
    t.same("gcc", &args, &["w.o"]);
    let out = t.same("gcc", &args, &["w.o"]);
    assert!(
        memchr::memmem::find(&out.stderr, b"\x1b]8;;").is_some(),
        "links"
    );
}

#[test]
fn clang_colours_asked_of_cc1_are_kept() {
    let t = T::new();
    t.write("w.c", "int f(void) { int unused; return 0; }\n");
    let args = [
        "-Wall",
        "-Xclang",
        "-fcolor-diagnostics",
        "-c",
        "w.c",
        "-o",
        "w.o",
    ];
    t.same("clang", &args, &["w.o"]);
    let out = t.same("clang", &args, &["w.o"]);
    assert!(out.stderr.contains(&0x1b), "colours");
}
