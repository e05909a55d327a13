//! Scenarios of one compiler's own behaviour.

use super::*;

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
