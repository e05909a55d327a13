//! Incremental compilation and inputs edited while rustc runs (spec T7, T34, D3, K4).

mod common;

use common::{Env, ZCFS};
use std::time::Duration;

scenarios_with_snapshots! {
    fn t34_incremental_edit_revert_edit(mounted: bool) {
        let env = Env::for_mode(mounted);
        env.cargo(&["build"]).assert_ok();
        assert!(
            env.target().join("debug/incremental").is_dir(),
            "incremental is on"
        );
        let a = env.read("util/src/foo.rs");
        let with = |s: &str| a.replace("\"foo\"", &format!("{s:?}"));
        env.write("util/src/foo.rs", &with("B"));
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.hits, 0);
        env.write("util/src/foo.rs", &a);
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0, "the revert hits");
        // A new edit: rustc compiles incrementally from a session the hit never touched.
        env.write("util/src/foo.rs", &with("C"));
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.hits, 0);
        assert!(env.run_app().contains("foo=C"), "{}", env.run_app());
        env.cargo(&["build"]).assert_ok().assert_noop();
        // Cache entries never hold incremental state: a clean build from the cache is complete.
        env.clean();
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(b.misses, 0);
        assert!(env.run_app().contains("foo=C"));
    }

    fn t7_edit_during_compile_is_not_stored(mounted: bool) {
        let env = Env::for_mode(mounted);
        let original = env.read("util/src/foo.rs");
        // mac's macro sleeps while util expands it: the edit lands mid-compile.
        let mut child = env
            .cargo_command(&env.ws, &["build"])
            .env("ZT_MAC_SLEEP_MS", "4000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the daemon has answered util's lookup with a miss: rustc is running.
        common::wait_until(60, "util compile to start", || {
            env.daemon_log().contains("miss util-")
        });
        if mounted {
            assert!(common::is_mounted(&env.target()), "zcfs cargo mounted the target dir");
        }
        std::thread::sleep(Duration::from_millis(500));
        env.write(
            "util/src/foo.rs",
            &original.replace("\"foo\"", "\"edited\""),
        );
        assert!(child.wait().unwrap().success());
        let s = env.stats();
        assert!(
            s["not_stored"]["input modified during compile"]
                .as_u64()
                .unwrap_or(0)
                >= 1,
            "{s}\n{}",
            env.daemon_log()
        );
        // Cargo rebuilds; zcfs has no entry for either content.
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert!(b.compiled.contains(&"util".into()));
        assert_eq!(b.hits, 0, "{}", b.stderr);
        assert!(env.run_app().contains("foo=edited"));
        env.write("util/src/foo.rs", &original);
        let b = env.cargo(&["build"]);
        b.assert_ok();
        assert_eq!(
            b.hits, 0,
            "the racing compile's content was not stored either"
        );
        assert!(env.run_app().contains("foo=foo\n"));
    }
}

/// Seconds since the epoch of a daemon log line's timestamp (`2026-12-01T14:41:42.568878Z`).
fn log_time(line: &str) -> f64 {
    let t = line.split_whitespace().next().unwrap();
    let (date, time) = t.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * m + 2) / 5 + d[2] - 719_469;
    let hms: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    days as f64 * 86400.0 + hms[0] * 3600.0 + hms[1] * 60.0 + hms[2]
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// T7 on a filesystem that keeps whole seconds: an edit made in the same second as the
/// compile started gets an mtime *before* the start on the kernel clock. zcfs measures the
/// filesystem's granularity and compares with a stamp on it: not stored.
#[test]
fn t7_edit_during_compile_on_a_coarse_filesystem_is_not_stored() {
    let env = Env::new();
    let Some(_fs) = common::RootMount::coarse_ext4(&env.tmp.path().join("coarse")) else {
        return;
    };
    let ws = env.tmp.path().join("coarse/ws");
    common::copy_dir(&env.ws, &ws);
    common::copy_dir(
        &env.tmp.path().join("outside"),
        &env.tmp.path().join("coarse/outside"),
    );
    let foo = ws.join("util/src/foo.rs");
    let original = std::fs::read_to_string(&foo).unwrap();
    // The edit must land in the second the compile started in: try until it does.
    let mut landed = false;
    for _attempt in 0..4 {
        let _ = std::fs::remove_dir_all(ws.join("target"));
        std::fs::write(&foo, &original).unwrap();
        let log_start = env.daemon_log().len();
        let mut child = env
            .command("cargo")
            .args(["build"])
            .current_dir(&ws)
            .env("RUSTC_WRAPPER", ZCFS)
            .env("ZT_MAC_SLEEP_MS", "2500")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut started = 0.0;
        common::wait_until(60, "util compile to start", || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("cargo ended early: {st}");
            }
            let log = env.daemon_log();
            match log[log_start.min(log.len())..]
                .lines()
                .find(|l| l.contains("miss util-"))
            {
                Some(l) => {
                    started = log_time(l);
                    true
                }
                None => false,
            }
        });
        if now().floor() == started.floor() {
            std::fs::write(&foo, original.replace("\"foo\"", "\"edited\"")).unwrap();
            landed = true;
        }
        assert!(child.wait().unwrap().success());
        if landed {
            break;
        }
    }
    assert!(
        landed,
        "no attempt edited within the compile's first second"
    );
    // Not stored: the next compile of util is not a hit of what the first one read.
    // Cargo rebuilds it when the edit's second is later than the one its dep-info was
    // stamped with (the compile's start); when both fall in one second, cargo itself takes
    // the unit for fresh, as it would without zcfs: a later touch makes it look.
    let mut b = env.cargo_in(&ws, &["build"]);
    if b.compiled.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let t = filetime::FileTime::now();
        filetime::set_file_mtime(&foo, t).unwrap();
        b = env.cargo_in(&ws, &["build"]);
    }
    b.assert_ok();
    assert_eq!(b.hits, 0, "{}", b.stderr);
    let out = std::process::Command::new(ws.join("target/debug/app"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("foo=edited"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let s = env.stats();
    assert!(
        s["not_stored"]["input modified during compile"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{s}"
    );
}
