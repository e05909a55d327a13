//! The wrapper protocol: probes, other wrappers, argfiles, failures, replayed diagnostics.
//! Spec scenarios T27, T28, T29, T32, T33.

mod common;

use common::{Env, ZCFS};
use std::process::Command;

fn rustc_path() -> String {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    format!(
        "{}/bin/rustc",
        String::from_utf8(out.stdout).unwrap().trim()
    )
}

scenarios_with_snapshots! {
    fn t27_probes_pass_through_byte_identical(mounted: bool) {
        let env = Env::for_mode(mounted);
        let rustc = rustc_path();
        let direct = Command::new(&rustc).arg("-vV").output().unwrap();
        let wrapped = env.command(ZCFS).args([&rustc, "-vV"]).output().unwrap();
        assert_eq!(direct.stdout, wrapped.stdout);
        assert_eq!(direct.stderr, wrapped.stderr);
        assert_eq!(direct.status.code(), wrapped.status.code());

        let probe = [
            "-",
            "--crate-name",
            "___",
            "--print=file-names",
            "--crate-type",
            "bin",
            "--crate-type",
            "rlib",
            "--print=sysroot",
            "--print=cfg",
        ];
        let run = |cmd: &mut Command| {
            cmd.args(probe)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        };
        let direct = run(&mut Command::new(&rustc));
        let wrapped = run(env.command(ZCFS).arg(&rustc));
        assert_eq!(direct.stdout, wrapped.stdout);
        assert_eq!(direct.status.code(), wrapped.status.code());

        // A failing probe fails the same way.
        let direct = Command::new(&rustc).arg("--frobnicate").output().unwrap();
        let wrapped = env
            .command(ZCFS)
            .args([&rustc, "--frobnicate"])
            .output()
            .unwrap();
        assert_eq!(direct.stderr, wrapped.stderr);
        assert_eq!(direct.status.code(), wrapped.status.code());

        // cargo's probe answers are the same with and without the wrapper.
        let b = env.cargo(&["build"]);
        b.assert_ok();
        let with: serde_json::Value =
            serde_json::from_str(&env.read("target/.rustc_info.json")).unwrap();
        env.clean();
        assert!(env.cargo_plain(&env.ws, &["build"]).status.success());
        let without: serde_json::Value =
            serde_json::from_str(&env.read("target/.rustc_info.json")).unwrap();
        let outputs = |v: &serde_json::Value| {
            let mut o: Vec<String> = v["outputs"]
                .as_object()
                .unwrap()
                .values()
                .map(|x| x.to_string())
                .collect();
            o.sort();
            o
        };
        assert_eq!(outputs(&with), outputs(&without));
        let s = env.stats();
        assert!(s["uncacheable"]["probe"].as_u64().unwrap() >= 2, "{s}");
        assert!(
            s["uncacheable"]["stdin input"].as_u64().unwrap() >= 2,
            "{s}"
        );
    }

    fn t28_clippy_driver_is_passed_through(mounted: bool) {
        let env = Env::for_mode(mounted);
        let b = env.cargo(&["clippy"]);
        b.assert_ok();
        assert!(
            b.stderr.contains("needless_return"),
            "clippy lints appear:\n{}",
            b.stderr
        );
        let s = &b.stats;
        assert!(
            s["uncacheable"]["unsupported compiler"]
                .as_u64()
                .unwrap_or(0)
                >= 4,
            "members go through clippy-driver uncached: {s}"
        );
        // Nothing cached for members: a clean clippy run still shows the lint.
        env.clean();
        let b = env.cargo(&["clippy"]);
        b.assert_ok();
        assert!(b.stderr.contains("needless_return"));
        assert!(
            b.hits + b.projected >= 1,
            "the non-member path dependency can hit (or be projected)"
        );
    }

    fn t29_argfile_keys_on_content_not_path(mounted: bool) {
        let env = Env::for_mode(mounted);
        let rustc = rustc_path();
        let out = env.tmp.path().join("o");
        let args = vec![
            "--crate-name".to_string(),
            "outside".into(),
            "--edition=2021".into(),
            "src/lib.rs".into(),
            "--error-format=json".into(),
            "--json=diagnostic-rendered-ansi,artifacts,future-incompat".into(),
            "--crate-type".into(),
            "lib".into(),
            "--emit=dep-info,metadata,link".into(),
            "-C".into(),
            "extra-filename=-zz".into(),
            "--out-dir".into(),
            out.display().to_string(),
        ];
        let dir = env.tmp.path().join("outside");
        std::fs::create_dir_all(&out).unwrap();
        let argfile1 = env.tmp.path().join("args1");
        let argfile2 = env.tmp.path().join("args2");
        std::fs::write(&argfile1, args.join("\n") + "\n").unwrap();
        std::fs::write(&argfile2, args.join("\n") + "\n").unwrap();
        let run = |extra: &[String]| {
            let o = env
                .command(ZCFS)
                .arg(&rustc)
                .args(extra)
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            (
                o.stderr,
                std::fs::read(out.join("liboutside-zz.rlib")).unwrap(),
            )
        };
        let s0 = env.stats();
        let (err1, rlib1) = run(&[format!("@{}", argfile1.display())]);
        // Same content, other argfile path: a hit.
        let (err2, rlib2) = run(&[format!("@{}", argfile2.display())]);
        std::fs::remove_file(&argfile2).unwrap();
        // Expanded on the command line: the same key.
        let (err3, rlib3) = run(&args);
        let s1 = env.stats();
        assert_eq!(
            s1["misses"].as_u64().unwrap() - s0["misses"].as_u64().unwrap(),
            1
        );
        assert_eq!(
            s1["hits"].as_u64().unwrap() - s0["hits"].as_u64().unwrap(),
            2
        );
        assert_eq!(rlib1, rlib2);
        assert_eq!(rlib1, rlib3);
        assert_eq!(err1, err2);
        assert_eq!(err1, err3);
    }

    fn t32_failed_compile_is_not_stored(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        let good = env.read("util/src/foo.rs");
        env.write("util/src/foo.rs", "pub fn name() -> &'static str { 1 }\n");
        let with = env.cargo(&["build", "--message-format=json"]);
        assert!(!with.status.success());
        assert_eq!(with.stats["failed_compiles"], 1);
        let stored = with.stats["stored"].as_u64().unwrap();
        let plain = env.cargo_plain(&env.ws, &["build", "--message-format=json"]);
        assert_eq!(plain.status.code(), with.status.code());
        let diags = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| l.contains("\"reason\":\"compiler-message\""))
                .map(String::from)
                .collect()
        };
        let d_with = diags(&with.stdout);
        assert!(!d_with.is_empty());
        assert_eq!(
            d_with,
            diags(&String::from_utf8_lossy(&plain.stdout)),
            "identical diagnostics"
        );
        // The fix is a miss (the failure was not stored), then a hit after a clean.
        env.write("util/src/foo.rs", &good.replace("\"foo\"", "\"fixed\""));
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.hits, 0);
        assert!(b.stats["stored"].as_u64().unwrap() > stored);
        env.clean();
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0);
        assert!(env.run_app().contains("foo=fixed"));
    }

    fn t33_warnings_are_replayed_byte_identical(mounted: bool) {
        let env = Env::for_mode(mounted);
        let plain = env.cargo_plain(&env.ws, &["build", "--message-format=json"]);
        assert!(plain.status.success());
        env.clean();
        env.cargo(&["build"]).assert_ok();
        env.clean();
        let hit = env.cargo(&["build", "--message-format=json"]);
        hit.assert_ok();
        assert_eq!(hit.misses, 0);
        let diags = |s: &str| -> Vec<String> {
            let mut v: Vec<String> = s
                .lines()
                .filter(|l| l.contains("\"reason\":\"compiler-message\""))
                .map(String::from)
                .collect();
            v.sort();
            v
        };
        let d = diags(&hit.stdout);
        assert!(
            d.iter().any(|l| l.contains("unused_helper")),
            "the warning is there"
        );
        assert_eq!(d, diags(&String::from_utf8_lossy(&plain.stdout)));
        for line in hit.stdout.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("valid JSON line");
        }
        // A no-op build replays the warning from cargo's own cache.
        let noop = env.cargo(&["build"]);
        noop.assert_noop();
        assert!(noop.stderr.contains("unused_helper"), "{}", noop.stderr);
    }
}
