//! C and C++ compiles through zcfs, black box: the scenarios C1–C42 of
//! `spec/c-conformance.md` with real gcc and clang, each asserting zcfs's counters and the
//! bytes of every output against the same command run without zcfs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Env, ZCFS};

struct C {
    env: Env,
    dir: PathBuf,
}

impl C {
    fn new() -> C {
        let env = Env::new();
        let dir = env.tmp.path().join("c");
        std::fs::create_dir_all(&dir).unwrap();
        let c = C { env, dir };
        c.write(
            "a.c",
            "#include \"a.h\"\n#include <stdio.h>\nint main(void) { printf(\"%d\\n\", A + B); return 0; }\n",
        );
        c.write("a.h", "#include \"b.h\"\n#define A 1\n");
        c.write("b.h", "#define B 2\n");
        c.write("w.c", "int f(void) { int unused; return 0; }\n");
        c.write("e.c", "int f(void) { return nope; }\n");
        c
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// `zcfs <compiler> args` in the fixture dir.
    fn run(&self, compiler: &str, args: &[&str]) -> Output {
        self.run_in(&self.dir, compiler, args)
    }

    fn run_in(&self, dir: &Path, compiler: &str, args: &[&str]) -> Output {
        let mut cmd = self.env.command(ZCFS);
        cmd.arg(compiler).args(args).current_dir(dir);
        cmd.output().unwrap()
    }

    /// The same command without zcfs.
    fn plain(&self, compiler: &str, args: &[&str]) -> Output {
        self.plain_in(&self.dir, compiler, args)
    }

    fn plain_in(&self, dir: &Path, compiler: &str, args: &[&str]) -> Output {
        let mut cmd = self.env.command(compiler);
        cmd.args(args).current_dir(dir);
        cmd.output().unwrap()
    }

    /// Through zcfs, then without: exit code, streams and the named outputs agree.
    fn same_as_plain(&self, compiler: &str, args: &[&str], outputs: &[&str]) -> Output {
        common::compile_same_as_plain(&self.env, &self.dir, compiler, args, outputs)
    }

    /// (hits, misses) over C and C++.
    fn counts(&self) -> (u64, u64) {
        let s = self.env.stats();
        let mut h = 0;
        let mut m = 0;
        for l in ["c", "cxx"] {
            h += s["languages"][l]["hits"].as_u64().unwrap_or(0);
            m += s["languages"][l]["misses"].as_u64().unwrap_or(0);
        }
        (h, m)
    }

    fn not_stored(&self, reason: &str) -> u64 {
        self.env.stats()["not_stored"][reason].as_u64().unwrap_or(0)
    }

    fn uncacheable(&self, reason: &str) -> u64 {
        self.env.stats()["uncacheable"][reason]
            .as_u64()
            .unwrap_or(0)
    }
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Each scenario runs with gcc and with clang.
macro_rules! both {
    ($($name:ident($cc:ident) $body:block)*) => {
        mod gcc { use super::*; $( #[test] fn $name() { let $cc = "gcc"; $body } )* }
        mod clang { use super::*; $( #[test] fn $name() { let $cc = "clang"; $body } )* }
    };
}

both! {
    a_directive_name_in_a_string_is_data_and_incbin_is_never_served_stale(cc) {
        // A C string that is only a directive's name (OpenSSL's configuration parser) reads
        // no file: the compile is stored and hits.
        let c = C::new();
        c.write(
            "p.c",
            "#include <string.h>\nint is_inc(const char *p) { return strcmp(p, \".include\") == 0; }\n",
        );
        let args = ["-c", "p.c", "-o", "p.o"];
        // A compile that starts in the clock tick its input was written in is not stored.
        std::thread::sleep(std::time::Duration::from_millis(30));
        c.same_as_plain(cc, &args, &["p.o"]);
        c.same_as_plain(cc, &args, &["p.o"]);
        assert_eq!(c.counts(), (1, 1));
        assert_eq!(c.not_stored("unsupported code directive"), 0);
        // A real `.incbin` in an asm statement reads a file no dependency list names: never
        // stored, so a changed file is always compiled in.
        c.write("d.bin", "first bytes");
        c.write(
            "i.c",
            r#"__asm__(".section .rodata\n.incbin \"d.bin\"\n.previous");
int f(void) { return 0; }
"#,
        );
        let args = ["-c", "i.c", "-o", "i.o"];
        std::thread::sleep(std::time::Duration::from_millis(30));
        c.same_as_plain(cc, &args, &["i.o"]);
        c.write("d.bin", "other bytes");
        std::thread::sleep(std::time::Duration::from_millis(30));
        c.same_as_plain(cc, &args, &["i.o"]);
        let o = c.read("i.o");
        assert!(memchr::memmem::find(&o, b"other bytes").is_some());
        assert_eq!(c.counts(), (1, 3), "no hit for the .incbin compiles");
        assert_eq!(
            c.not_stored("unsupported code directive"),
            2,
            "{}",
            c.env.stats()
        );
    }

    c1_cold_then_warm_with_identical_objects(cc) {
        let c = C::new();
        let args = ["-O2", "-c", "a.c", "-o", "a.o"];
        let out = c.same_as_plain(cc, &args, &["a.o"]);
        assert!(out.stderr.is_empty());
        assert_eq!(c.counts(), (0, 1));
        c.same_as_plain(cc, &args, &["a.o"]);
        assert_eq!(c.counts(), (1, 1));
    }

    c3_a_header_edit_misses_and_its_revert_hits(cc) {
        let c = C::new();
        let args = ["-c", "a.c", "-o", "a.o"];
        ok(&c.run(cc, &args));
        let first = c.read("a.o");
        c.write("b.h", "#define B 3\n");
        c.same_as_plain(cc, &args, &["a.o"]);
        assert_eq!(c.counts(), (0, 2));
        c.write("b.h", "#define B 2\n");
        ok(&c.run(cc, &args));
        assert_eq!(c.counts(), (1, 2));
        assert_eq!(c.read("a.o"), first);
    }

    c4_a_header_that_leaves_the_chain(cc) {
        let c = C::new();
        let args = ["-MD", "-c", "a.c", "-o", "a.o"];
        ok(&c.run(cc, &args));
        c.write("a.h", "#define A 1\n#define B 5\n");
        std::fs::remove_file(c.dir.join("b.h")).unwrap();
        c.same_as_plain(cc, &args, &["a.o", "a.d"]);
        assert_eq!(c.counts(), (0, 2));
        assert!(!String::from_utf8_lossy(&c.read("a.d")).contains("b.h"));
    }

    c5_a_header_created_earlier_on_the_search_path(cc) {
        let c = C::new();
        c.write("x.c", "#include \"x.h\"\nint v = X;\n");
        c.write("old/x.h", "#define X 1\n");
        std::fs::create_dir_all(c.dir.join("new")).unwrap();
        let args = ["-Inew", "-Iold", "-c", "x.c", "-o", "x.o"];
        ok(&c.run(cc, &args));
        ok(&c.run(cc, &args));
        assert_eq!(c.counts(), (1, 1));
        c.write("new/x.h", "#define X 2\n");
        c.same_as_plain(cc, &args, &["x.o"]);
        assert_eq!(c.counts(), (1, 2), "a new header earlier on the path is a miss");
    }

    c6_a_header_beside_the_includer_shadows_the_search_path(cc) {
        let c = C::new();
        c.write("src/y.c", "#include \"y.h\"\nint v = Y;\n");
        c.write("inc/y.h", "#define Y 1\n");
        let args = ["-Iinc", "-c", "src/y.c", "-o", "y.o"];
        ok(&c.run(cc, &args));
        c.write("src/y.h", "#define Y 2\n");
        c.same_as_plain(cc, &args, &["y.o"]);
        assert_eq!(c.counts(), (0, 2));
    }

    c5b_an_include_directory_that_appears(cc) {
        let c = C::new();
        c.write("x.c", "#include <x.h>\nint v = X;\n");
        c.write("old/x.h", "#define X 1\n");
        let args = ["-Inew", "-Iold", "-c", "x.c", "-o", "x.o"];
        ok(&c.run(cc, &args));
        c.write("new/x.h", "#define X 2\n");
        c.same_as_plain(cc, &args, &["x.o"]);
        assert_eq!(c.counts(), (0, 2));
    }

    c8_command_line_defines(cc) {
        let c = C::new();
        c.write("v.c", "int v = V;\n");
        for v in ["-DV=1", "-DV=2", "-DV=1"] {
            c.same_as_plain(cc, &[v, "-c", "v.c", "-o", "v.o"], &["v.o"]);
        }
        assert_eq!(c.counts(), (1, 2));
    }

    c9_c12_dependency_files_equal_the_compilers(cc) {
        let c = C::new();
        c.write("foo.c", "#include \"a.h\"\nint v = A;\n");
        c.write("bar.c", "#include \"a.h\"\nint v = A;\n");
        std::fs::create_dir_all(c.dir.join("build/sub")).unwrap();
        let sets: Vec<Vec<&str>> = vec![
            vec!["-MD", "-MF", "foo.d", "-c", "foo.c", "-o", "foo.o"],
            vec!["-MD", "-MF", "bar.d", "-c", "bar.c", "-o", "bar.o"],
            vec!["-MMD", "-c", "foo.c", "-o", "build/o1.o"],
            vec!["-MMD", "-c", "foo.c", "-o", "build/sub/o2.o"],
            vec!["-MD", "-MP", "-MT", "t1", "-c", "foo.c", "-o", "t.o"],
            vec!["-MD", "-MQ", "$m", "-MT", "b", "-c", "foo.c", "-o", "t.o"],
        ];
        for _round in 0..2 {
            for args in &sets {
                let o = args[args.iter().position(|a| *a == "-o").unwrap() + 1];
                let d = if let Some(i) = args.iter().position(|a| *a == "-MF") {
                    args[i + 1].to_string()
                } else {
                    format!("{}.d", o.strip_suffix(".o").unwrap())
                };
                c.same_as_plain(cc, args, &[o, &d]);
            }
        }
        let (hits, misses) = c.counts();
        assert_eq!(hits + misses, 12);
        assert_eq!(hits, 6, "the second round hits");
    }

    c13_make_style_dependency_files_on_hits(cc) {
        let c = C::new();
        for dep in ["-MD", "-MMD"] {
            let args = [dep, "-MP", "-c", "a.c", "-o", "a.o"];
            c.same_as_plain(cc, &args, &["a.o", "a.d"]);
            c.same_as_plain(cc, &args, &["a.o", "a.d"]);
        }
        assert_eq!(c.counts(), (2, 2));
    }

    c17_file_spelling_is_keyed(cc) {
        let c = C::new();
        c.write("src/f.c", "const char *f = __FILE__;\n");
        c.same_as_plain(cc, &["-c", "src/f.c", "-o", "f.o"], &["f.o"]);
        let src = c.dir.join("src");
        let out = c.run_in(&src, cc, &["-c", "f.c", "-o", "../f.o"]);
        ok(&out);
        let got = c.read("f.o");
        ok(&c.plain_in(&src, cc, &["-c", "f.c", "-o", "../f.o"]));
        assert_eq!(got, c.read("f.o"));
        assert_eq!(c.counts(), (0, 2));
    }

    c20_debug_info_names_the_directory(cc) {
        let c = C::new();
        for d in ["d1", "d2"] {
            c.write(&format!("{d}/g.c"), "int g(void) { return 1; }\n");
        }
        for d in ["d1", "d2"] {
            let dir = c.dir.join(d);
            let out = c.run_in(&dir, cc, &["-g", "-c", "g.c", "-o", "g.o"]);
            ok(&out);
            let got = std::fs::read(dir.join("g.o")).unwrap();
            ok(&c.plain_in(&dir, cc, &["-g", "-c", "g.c", "-o", "g.o"]));
            assert_eq!(got, std::fs::read(dir.join("g.o")).unwrap(), "{d}");
        }
        assert_eq!(c.counts(), (0, 2), "no hit across directories with -g");
        // With the directory mapped away, the second directory may hit.
        for d in ["d1", "d2"] {
            let dir = c.dir.join(d);
            let map = format!("-fdebug-prefix-map={}=.", dir.display());
            let args = ["-g", map.as_str(), "-c", "g.c", "-o", "g.o"];
            ok(&c.run_in(&dir, cc, &args));
            let got = std::fs::read(dir.join("g.o")).unwrap();
            ok(&c.plain_in(&dir, cc, &args));
            assert_eq!(got, std::fs::read(dir.join("g.o")).unwrap(), "{d} mapped");
        }
    }

    c21_time_macros(cc) {
        let c = C::new();
        c.write("t.c", "const char *t = __TIME__;\n");
        ok(&c.run(cc, &["-c", "t.c", "-o", "t.o"]));
        ok(&c.run(cc, &["-c", "t.c", "-o", "t.o"]));
        assert_eq!(c.counts(), (0, 2), "__TIME__ is never stored");
        c.write("d.c", "const char *d = __DATE__;\n");
        // Not written in the same clock tick as the compile starts (then it is not stored).
        std::thread::sleep(std::time::Duration::from_millis(50));
        ok(&c.run(cc, &["-c", "d.c", "-o", "d.o"]));
        ok(&c.run(cc, &["-c", "d.c", "-o", "d.o"]));
        assert_eq!(c.counts(), (1, 3), "__DATE__ hits the same day");
        let sde = |v: &str| {
            let mut cmd = c.env.command(ZCFS);
            cmd.args([cc, "-c", "d.c", "-o", "d.o"])
                .current_dir(&c.dir)
                .env("SOURCE_DATE_EPOCH", v);
            ok(&cmd.output().unwrap());
        };
        sde("1000000000");
        sde("1000000000");
        sde("2000000000");
        if cc == "gcc" {
            assert_eq!(c.counts(), (2, 5), "SOURCE_DATE_EPOCH is recorded");
        } else {
            // clang 14 takes the time macros from the clock whatever the variable says.
            assert_eq!(c.counts(), (4, 3), "SOURCE_DATE_EPOCH does not matter to clang");
        }
    }

    c23_system_headers_and_cpath(cc) {
        let c = C::new();
        c.write("s.c", "#include <sys1.h>\n#include <cp.h>\nint v = S + P;\n");
        c.write("sys/sys1.h", "#define S 1\n");
        c.write("cpath/cp.h", "#define P 1\n");
        let run = |cpath: &str| {
            let mut cmd = c.env.command(ZCFS);
            cmd.args([cc, "-isystem", "sys", "-c", "s.c", "-o", "s.o"])
                .current_dir(&c.dir)
                .env("CPATH", cpath);
            ok(&cmd.output().unwrap());
        };
        run("cpath");
        run("cpath");
        assert_eq!(c.counts(), (1, 1));
        c.write("sys/sys1.h", "#define S 2\n");
        run("cpath");
        c.write("cpath/cp.h", "#define P 2\n");
        run("cpath");
        c.write("cpath2/cp.h", "#define P 2\n");
        run("cpath2");
        assert_eq!(c.counts(), (1, 4));
    }

    c24_response_files(cc) {
        let c = C::new();
        c.write("v.c", "int v = V;\n");
        c.write("inner.rsp", "-DV=1\n");
        c.write("args.rsp", "-c v.c @inner.rsp -o v.o\n");
        c.same_as_plain(cc, &["@args.rsp"], &["v.o"]);
        c.same_as_plain(cc, &["@args.rsp"], &["v.o"]);
        assert_eq!(c.counts(), (1, 1));
        c.write("inner.rsp", "-DV=2\n");
        c.same_as_plain(cc, &["@args.rsp"], &["v.o"]);
        assert_eq!(c.counts(), (1, 2));
    }

    c27_warnings_are_replayed(cc) {
        let c = C::new();
        let args = ["-Wall", "-c", "w.c", "-o", "w.o"];
        let miss = c.same_as_plain(cc, &args, &["w.o"]);
        assert!(!miss.stderr.is_empty());
        let hit = c.same_as_plain(cc, &args, &["w.o"]);
        assert_eq!(hit.stderr, miss.stderr);
        assert_eq!(c.counts(), (1, 1));
        assert!(!hit.stderr.contains(&0x1b), "no colours on a pipe");
    }

    c28_colours_follow_the_terminal(cc) {
        let c = C::new();
        let always = if cc == "gcc" { "-fdiagnostics-color=always" } else { "-fcolor-diagnostics" };
        let never = if cc == "gcc" { "-fdiagnostics-color=never" } else { "-fno-color-diagnostics" };
        c.same_as_plain(cc, &["-Wall", "-c", "w.c", "-o", "w.o"], &["w.o"]);
        let hit = c.same_as_plain(cc, &["-Wall", always, "-c", "w.c", "-o", "w.o"], &["w.o"]);
        assert!(hit.stderr.contains(&0x1b));
        let hit = c.same_as_plain(cc, &["-Wall", never, "-c", "w.c", "-o", "w.o"], &["w.o"]);
        assert!(!hit.stderr.contains(&0x1b));
        // On a terminal, as the compiler would decide.
        let under_pty = |program: &str| {
            let cmdline = format!("{program} -Wall -c w.c -o w.o");
            let mut cmd = c.env.command("script");
            cmd.args(["-qec", &cmdline, "/dev/null"]).current_dir(&c.dir).env("TERM", "xterm");
            let o = cmd.output().unwrap();
            ok(&o);
            o.stdout
        };
        let got = under_pty(&format!("{ZCFS} {cc}"));
        let reference = under_pty(cc);
        assert_eq!(got.contains(&0x1b), reference.contains(&0x1b));
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&reference));
        assert_eq!(c.counts(), (3, 1), "one entry serves every terminal");
    }

    c29_a_failed_compile_is_not_stored(cc) {
        let c = C::new();
        let args = ["-c", "e.c", "-o", "e.o"];
        let out = c.run(cc, &args);
        let reference = c.plain(cc, &args);
        assert_eq!(out.status.code(), reference.status.code());
        assert_ne!(out.status.code(), Some(0));
        assert_eq!(out.stderr, reference.stderr);
        ok(&c.run(cc, &["-c", "a.c", "-o", "a.o"]));
        let _ = c.run(cc, &args);
        assert_eq!(c.counts(), (0, 3));
        assert_eq!(c.env.stats()["failed_compiles"], 2);
    }

    c30_split_dwarf(cc) {
        let c = C::new();
        let args = ["-g", "-gsplit-dwarf", "-c", "a.c", "-o", "x.o"];
        c.same_as_plain(cc, &args, &["x.o", "x.dwo"]);
        c.same_as_plain(cc, &args, &["x.o", "x.dwo"]);
        assert_eq!(c.counts(), (1, 1));
        c.same_as_plain(cc, &["-g", "-gsplit-dwarf", "-c", "a.c", "-o", "y.o"], &["y.o", "y.dwo"]);
        assert_eq!(c.counts(), (1, 2), "the object names its .dwo");
    }

    c32_side_files(cc) {
        let c = C::new();
        let args = ["-fstack-usage", "-c", "a.c", "-o", "s.o"];
        c.same_as_plain(cc, &args, &["s.o", "s.su"]);
        std::fs::remove_file(c.dir.join("s.su")).unwrap();
        c.same_as_plain(cc, &args, &["s.o", "s.su"]);
        assert_eq!(c.counts(), (1, 1));
    }

    c35_what_passes_through(cc) {
        let c = C::new();
        c.write("b.c", "int b;\n");
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["-E", "a.c", "-o", "a.i"], "preprocessing"),
            (vec!["-M", "a.c"], "preprocessing"),
            (vec!["a.c", "-o", "app"], "called for link"),
            (vec!["-c", "a.c", "b.c"], "multiple source files"),
            (vec!["-c", "a.c", "-o", "-"], "output to stdout"),
            (vec!["-c", "-x", "bogus", "a.c"], "unsupported language"),
            (vec!["-c", "a.c", "-save-temps"], "unsupported option"),
        ];
        for (args, reason) in &cases {
            let before = c.uncacheable(reason);
            let out = c.run(cc, args);
            let reference = c.plain(cc, args);
            assert_eq!(out.status.code(), reference.status.code(), "{args:?}");
            assert_eq!(out.stdout, reference.stdout, "{args:?}");
            assert_eq!(c.uncacheable(reason), before + 1, "{args:?} counted as {reason}");
        }
        assert_eq!(c.counts(), (0, 0));
    }

    c37_a_stat_identical_edit_misses(cc) {
        let c = C::new();
        let args = ["-c", "a.c", "-o", "a.o"];
        ok(&c.run(cc, &args));
        let h = c.dir.join("b.h");
        let before = std::fs::metadata(&h).unwrap().modified().unwrap();
        c.write("b.h", "#define B 7\n");
        std::fs::File::options()
            .write(true)
            .open(&h)
            .unwrap()
            .set_modified(before)
            .unwrap();
        c.same_as_plain(cc, &args, &["a.o"]);
        assert_eq!(c.counts(), (0, 2));
    }

    c40_a_missing_output_dir_is_the_compilers_error(cc) {
        let c = C::new();
        let args = ["-c", "a.c", "-o", "missing/a.o"];
        let out = c.run(cc, &args);
        let reference = c.plain(cc, &args);
        assert_eq!(out.status.code(), reference.status.code());
        assert_ne!(out.status.code(), Some(0));
    }

    c42_a_corrupt_payload_is_a_miss(cc) {
        let c = C::new();
        let args = ["-c", "a.c", "-o", "a.o"];
        ok(&c.run(cc, &args));
        c.env.stop();
        let packs = c.env.cache.join("packs");
        let mut flipped = 0;
        for e in walk(&packs) {
            let mut b = std::fs::read(&e).unwrap();
            let n = b.len();
            b[n - 4096 + 100] ^= 0xff;
            std::fs::write(&e, b).unwrap();
            flipped += 1;
        }
        assert_eq!(flipped, 1);
        c.same_as_plain(cc, &args, &["a.o"]);
        assert_eq!(c.counts(), (0, 2));
    }

    c26_march_native(cc) {
        let c = C::new();
        let native = ["-O2", "-march=native", "-c", "a.c", "-o", "a.o"];
        c.same_as_plain(cc, &native, &["a.o"]);
        c.same_as_plain(cc, &native, &["a.o"]);
        assert_eq!(c.counts(), (1, 1));
        c.same_as_plain(cc, &["-O2", "-march=x86-64", "-c", "a.c", "-o", "a.o"], &["a.o"]);
        assert_eq!(c.counts(), (1, 2), "an explicit -march is another key");
    }

    c31_coverage_notes(cc) {
        let c = C::new();
        let args = ["--coverage", "-c", "a.c", "-o", "a.o"];
        ok(&c.run(cc, &args));
        let miss_notes = c.read("a.gcno");
        std::fs::remove_file(c.dir.join("a.gcno")).unwrap();
        std::fs::remove_file(c.dir.join("a.o")).unwrap();
        ok(&c.run(cc, &args));
        assert_eq!(c.counts(), (1, 1));
        let hit_notes = c.read("a.gcno");
        assert_eq!(hit_notes, miss_notes, "the stored notes are restored");
        ok(&c.plain(cc, &["--coverage", "-c", "a.c", "-o", "r.o"]));
        // The notes carry a per-compile stamp in bytes 8..12 (as ccache normalizes them).
        assert_eq!(hit_notes[12..], c.read("r.gcno")[12..]);
        if cc == "gcc" {
            // The object and its notes agree: gcov reads the run's counts with them.
            ok(&c.plain(cc, &["--coverage", "a.o", "-o", "app"]));
            ok(&c.plain("./app", &[]));
            let gcov = c.plain("gcov", &["-o", ".", "a.c"]);
            ok(&gcov);
            assert!(!String::from_utf8_lossy(&gcov.stderr).contains("stamp"), "{gcov:?}");
            assert!(String::from_utf8_lossy(&c.read("a.c.gcov")).contains("printf"));
        }
        // Another directory: the object names its .gcda by absolute path.
        let d2 = c.env.tmp.path().join("d2");
        common::copy_dir(&c.dir, &d2);
        ok(&c.run_in(&d2, cc, &args));
        assert_eq!(c.counts(), (1, 2));
    }

    c36_an_input_modified_during_the_compile_is_not_stored(cc) {
        let c = C::new();
        let shim = shim(&c, cc, "touch compiled; while [ ! -e go ]; do sleep 0.05; done");
        let args = ["-c", "a.c", "-o", "a.o"];
        ok(&c.plain(cc, &args));
        let old = c.read("a.o");
        let mut cmd = c.env.command(ZCFS);
        cmd.arg(&shim).args(args).current_dir(&c.dir);
        let child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
        common::wait_until(60, "the compile", || c.dir.join("compiled").exists());
        c.write("b.h", "#define B 40\n");
        c.write("go", "");
        ok(&child.wait_with_output().unwrap());
        assert_eq!(c.read("a.o"), old, "what the compiler read");
        assert_eq!(c.not_stored("input modified during compile"), 1);
        assert_eq!(c.env.stats()["stored"], 0);
        c.same_as_plain(shim.to_str().unwrap(), &args, &["a.o"]);
        assert_eq!(c.counts(), (0, 2), "nothing was stored; the next run misses");
        c.same_as_plain(shim.to_str().unwrap(), &args, &["a.o"]);
        assert_eq!(c.counts(), (1, 2));
    }

    c41_a_killed_compile_stores_nothing(cc) {
        let c = C::new();
        let shim = shim(&c, cc, "echo $$ > pid; exec sleep 30");
        let args = ["-c", "a.c", "-o", "a.o"];
        let before: Vec<PathBuf> = walk(&c.dir);
        let mut cmd = c.env.command(ZCFS);
        cmd.arg(&shim).args(args).current_dir(&c.dir);
        let child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
        common::wait_until(60, "the compile", || {
            std::fs::read_to_string(c.dir.join("pid")).is_ok_and(|s| s.ends_with('\n'))
        });
        let pid: i32 = std::fs::read_to_string(c.dir.join("pid")).unwrap().trim().parse().unwrap();
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let out = child.wait_with_output().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "dies as its compiler did");
        // Nothing but what the compiler wrote.
        let mut after = walk(&c.dir);
        after.retain(|p| !before.contains(p));
        after.sort();
        assert_eq!(after, vec![c.dir.join("a.o"), c.dir.join("pid")]);
        assert_eq!(c.env.stats()["stored"], 0);
        // The wrapper itself interrupted: its compile finishes unobserved, nothing stored.
        std::fs::remove_file(c.dir.join("pid")).unwrap();
        let mut cmd = c.env.command(ZCFS);
        cmd.arg(&shim).args(args).current_dir(&c.dir);
        // SIGINT's default action, whatever this test runner inherited (a background job
        // of a non-interactive shell starts with it ignored, and so would the wrapper).
        use std::os::unix::process::CommandExt;
        // SAFETY: signal() is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        common::wait_until(60, "the compile", || {
            std::fs::read_to_string(c.dir.join("pid")).is_ok_and(|s| s.ends_with('\n'))
        });
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGINT));
        let pid: i32 = std::fs::read_to_string(c.dir.join("pid")).unwrap().trim().parse().unwrap();
        unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(c.env.stats()["stored"], 0);
        assert_eq!(c.env.stats()["failed_compiles"], 1, "the killed one was reported");
        // The rerun (with the plain compiler) misses and succeeds.
        c.same_as_plain(cc, &args, &["a.o"]);
        assert_eq!(c.counts(), (0, 3));
    }
}

/// A compiler script in the fixture dir: runs `cc`, and for compiles (`-c`) runs `then`
/// after it succeeded (in the fixture dir).
fn shim(c: &C, cc: &str, then: &str) -> PathBuf {
    let p = c.dir.join(format!("shim/{cc}"));
    let real = common::which(cc);
    let dir = c.dir.display();
    c.write(
        &format!("shim/{cc}"),
        &format!(
            "#!/bin/sh\ncase \" $* \" in\n*\" -c \"*) {real} \"$@\" || exit $?; cd {dir}; {then};;\n\
             *) exec {real} \"$@\";;\nesac\n",
            real = real.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn c2_the_driver_name_is_keyed() {
    let c = C::new();
    ok(&c.run("gcc", &["-c", "a.c", "-o", "a.o"]));
    ok(&c.run("g++", &["-x", "c", "-c", "a.c", "-o", "a.o"]));
    ok(&c.run("gcc", &["-x", "c", "-c", "a.c", "-o", "a.o"]));
    assert_eq!(c.counts(), (0, 3));
}

#[test]
fn cxx_is_counted_as_cxx() {
    let c = C::new();
    c.write(
        "p.cpp",
        "#include <vector>\nint f() { return std::vector<int>(3).size(); }\n",
    );
    for cxx in ["g++", "clang++"] {
        c.same_as_plain(cxx, &["-O1", "-c", "p.cpp", "-o", "p.o"], &["p.o"]);
        c.same_as_plain(cxx, &["-O1", "-c", "p.cpp", "-o", "p.o"], &["p.o"]);
    }
    let s = c.env.stats();
    assert_eq!(s["languages"]["cxx"]["hits"], 2);
    assert_eq!(s["languages"]["cxx"]["misses"], 2);
}

#[test]
fn c22_a_compiler_replaced_at_the_same_path_misses() {
    let c = C::new();
    c.write("v.c", "int v = SHIM;\n");
    let shim = c.dir.join("bin/cc");
    let write_shim = |n: u8| {
        std::fs::create_dir_all(shim.parent().unwrap()).unwrap();
        std::fs::write(&shim, format!("#!/bin/sh\nexec gcc -DSHIM={n} \"$@\"\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        std::fs::File::options()
            .write(true)
            .open(&shim)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    write_shim(1);
    let s = shim.to_str().unwrap();
    ok(&c.run(s, &["-c", "v.c", "-o", "v.o"]));
    ok(&c.run(s, &["-c", "v.c", "-o", "v.o"]));
    assert_eq!(c.counts(), (1, 1));
    write_shim(2);
    c.same_as_plain(s, &["-c", "v.c", "-o", "v.o"], &["v.o"]);
    assert_eq!(c.counts(), (1, 2));
}

#[test]
fn c38_masquerade_links() {
    let c = C::new();
    let wrap = c.dir.join("wrap");
    std::fs::create_dir_all(&wrap).unwrap();
    std::os::unix::fs::symlink(ZCFS, wrap.join("gcc")).unwrap();
    let path = format!(
        "{}:{}",
        wrap.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let gcc = |path: &str| {
        let mut cmd = c.env.command("gcc");
        cmd.args(["-c", "a.c", "-o", "a.o"])
            .current_dir(&c.dir)
            .env("PATH", path);
        cmd.output().unwrap()
    };
    ok(&gcc(&path));
    ok(&gcc(&path));
    assert_eq!(c.counts(), (1, 1));

    // A compiler that is a script calling `gcc` again: terminates, counted once.
    let scripts = c.dir.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(scripts.join("gcc"), "#!/bin/sh\nexec gcc \"$@\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(scripts.join("gcc"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let nested = format!(
        "{}:{}:{}",
        wrap.display(),
        scripts.display(),
        std::env::var("PATH").unwrap()
    );
    c.write("n.c", "int n;\n");
    let mut cmd = c.env.command("gcc");
    cmd.args(["-c", "n.c", "-o", "n.o"])
        .current_dir(&c.dir)
        .env("PATH", &nested);
    ok(&cmd.output().unwrap());
    assert_eq!(c.counts(), (1, 2));

    // No real gcc on PATH: a clear error.
    let out = gcc(&wrap.display().to_string());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no gcc other than zcfs"));
}

#[test]
fn c39_a_missing_compiler() {
    let c = C::new();
    let out = c.run("/nonexistent/gcc", &["-c", "a.c"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(!out.stderr.is_empty());
    let out = c.run("nope", &["-c", "a.c"]);
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn c25_files_named_by_options() {
    let c = C::new();
    c.write("ign.txt", "fun:f\n");
    let args = [
        "-fsanitize=address",
        "-fsanitize-ignorelist=ign.txt",
        "-c",
        "w.c",
        "-o",
        "w.o",
    ];
    c.same_as_plain("clang", &args, &["w.o"]);
    c.same_as_plain("clang", &args, &["w.o"]);
    assert_eq!(c.counts(), (1, 1));
    c.write("ign.txt", "fun:g\n");
    c.same_as_plain("clang", &args, &["w.o"]);
    assert_eq!(c.counts(), (1, 2), "the ignore list's content is keyed");
    // Profile data, specs files and plugins pass through; a missing profile too.
    let before = c.uncacheable("unsupported option");
    c.write("x.specs", "");
    for (cc, args) in [
        (
            "clang",
            vec![
                "-fprofile-instr-use=missing.profdata",
                "-c",
                "w.c",
                "-o",
                "w.o",
            ],
        ),
        ("gcc", vec!["-specs=x.specs", "-c", "w.c", "-o", "w.o"]),
        ("gcc", vec!["-fplugin=./nope.so", "-c", "w.c", "-o", "w.o"]),
    ] {
        let out = c.run(cc, &args);
        let reference = c.plain(cc, &args);
        assert_eq!(out.status.code(), reference.status.code(), "{args:?}");
        assert_eq!(out.stderr, reference.stderr, "{args:?}");
    }
    assert_eq!(c.uncacheable("unsupported option"), before + 3);
    let missing = c.uncacheable("missing file");
    let args = ["-fprofile-use=missing.gcda", "-c", "w.c", "-o", "w.o"];
    let out = c.run("gcc", &args);
    assert_eq!(out.stderr, c.plain("gcc", &args).stderr);
    assert_eq!(c.uncacheable("missing file"), missing + 1);
    assert_eq!(c.counts(), (1, 2));
}

#[test]
fn c33_gcc_precompiled_headers_pass() {
    let c = C::new();
    c.write("pch.h", "#define P 1\n");
    c.write("p.c", "#include \"pch.h\"\nint v = P;\n");
    c.write("q.c", "int v = P;\n");
    // Cached while no precompiled header exists.
    ok(&c.run("gcc", &["-c", "p.c", "-o", "p.o"]));
    assert_eq!(c.counts(), (0, 1));
    let before = c.uncacheable("precompiled header");
    ok(&c.run("gcc", &["-x", "c-header", "pch.h", "-o", "pch.h.gch"]));
    assert!(c.dir.join("pch.h.gch").exists());
    // gcc reads pch.h.gch instead of pch.h (without checking that they agree) and leaves
    // both out of the dependency list: here the header is unchanged, and the precompiled one
    // says otherwise.
    c.write("pch.h", "#define P 2\n");
    ok(&c.plain("gcc", &["-x", "c-header", "pch.h", "-o", "pch.h.gch"]));
    c.write("pch.h", "#define P 1\n");
    // The entry's absent `pch.h.gch` is there now: a miss, and what it learns is not stored.
    c.same_as_plain("gcc", &["-c", "p.c", "-o", "p.o"], &["p.o"]);
    assert_eq!(c.counts(), (0, 2));
    assert_eq!(c.not_stored("precompiled header"), 1);
    // A forced include beside its `.gch` passes before the compile.
    c.same_as_plain(
        "gcc",
        &["-include", "pch.h", "-c", "q.c", "-o", "q.o"],
        &["q.o"],
    );
    assert_eq!(c.uncacheable("precompiled header"), before + 1);
    assert_eq!(
        c.uncacheable("unsupported language"),
        1,
        "making it passed too"
    );
    assert_eq!(c.counts(), (0, 2));
    // Without it, the first entry holds again.
    std::fs::remove_file(c.dir.join("pch.h.gch")).unwrap();
    c.same_as_plain("gcc", &["-c", "p.c", "-o", "p.o"], &["p.o"]);
    assert_eq!(c.counts(), (1, 2));
}

#[test]
fn c33_clang_precompiled_headers_pass() {
    let c = C::new();
    c.write("pch.h", "#define P 1\n");
    c.write("q.c", "int v = P;\n");
    let args = ["-include", "pch.h", "-c", "q.c", "-o", "q.o"];
    ok(&c.run("clang", &args));
    assert_eq!(c.counts(), (0, 1));
    ok(&c.run("clang", &["-x", "c-header", "pch.h", "-o", "pch.h.pch"]));
    assert_eq!(c.uncacheable("unsupported language"), 1);
    c.same_as_plain("clang", &args, &["q.o"]);
    c.same_as_plain(
        "clang",
        &["-include-pch", "pch.h.pch", "-c", "q.c", "-o", "q.o"],
        &["q.o"],
    );
    assert_eq!(c.uncacheable("precompiled header"), 1);
    assert_eq!(c.uncacheable("unsupported option"), 1, "-include-pch");
    assert_eq!(c.counts(), (0, 1));
}

#[test]
fn c34_modules_pass() {
    let c = C::new();
    c.write("m.cppm", "export module m;\nexport int f() { return 1; }\n");
    c.write("x.cc", "int g() { return 2; }\n");
    let cases: [(&str, Vec<&str>, &[&str]); 3] = [
        (
            "clang",
            vec!["-fmodules", "-c", "a.c", "-o", "a.o"],
            &["a.o"],
        ),
        (
            "gcc",
            vec!["-std=c++20", "-fmodules-ts", "-c", "x.cc", "-o", "x.o"],
            &["x.o"],
        ),
        (
            "clang++",
            vec!["-std=c++20", "--precompile", "m.cppm", "-o", "m.pcm"],
            &["m.pcm"],
        ),
    ];
    for (cc, args, outputs) in &cases {
        c.same_as_plain(cc, args, outputs);
    }
    assert_eq!(c.counts(), (0, 0));
}
