//! Scenarios that run with gcc and with clang (each test once per compiler).

use super::*;

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
