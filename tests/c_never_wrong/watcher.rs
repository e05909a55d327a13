//! The daemon's directory watcher (docs/config.md `watch`): a header changed, created,
//! removed or moved between two hits is seen in each mode, also after the kernel lost
//! events; the watcher answers from its table when nothing changed.

use super::*;

fn watched(mode: &str) -> T {
    let mut t = T::new();
    t.env.var("ZCFS_WATCH", mode);
    t.write(
        "a.c",
        "#include \"a.h\"\n#include <b.h>\nint f(void) { return A + B; }\n",
    );
    t.write("inc2/a.h", "#define A 1\n");
    t.write("inc2/b.h", "#define B 2\n");
    t.mkdir("inc1");
    t
}

const ARGS: &[&str] = &["-Iinc1", "-Iinc2", "-c", "a.c", "-o", "a.o"];

fn watch_stats(t: &T) -> serde_json::Value {
    t.stats()["watch"].clone()
}

/// Stores, hits, then makes each change and compiles through zcfs and plainly.
fn changes_between_hits_are_seen(mode: &str) {
    let t = watched(mode);
    for cc in ["gcc", "clang"] {
        let _ = std::fs::remove_file(t.path("a.o"));
        let (h0, m0) = t.counts();
        ok(&t.run(cc, ARGS));
        settle();
        t.same(cc, ARGS, &["a.o"]);
        let (h1, m1) = t.counts();
        assert_eq!((h1 - h0, m1 - m0), (1, 1), "{cc}: stored, then a hit");
        assert_eq!(watch_stats(&t)["mode"], mode);
        assert!(
            watch_stats(&t)["answered"].as_u64().unwrap() > 0,
            "the hit was answered from the watcher's table"
        );

        // The same size and mtime: only the content (and ctime) differ.
        t.write(
            "inc2/a.h",
            &format!("#define A {}\n", if cc == "gcc" { 7 } else { 8 }),
        );
        settle();
        t.same(cc, ARGS, &["a.o"]);
        // A header created earlier on the search path.
        t.write("inc1/a.h", "#define A 3\n");
        settle();
        t.same(cc, ARGS, &["a.o"]);
        // ... and removed again.
        std::fs::remove_file(t.path("inc1/a.h")).unwrap();
        settle();
        t.same(cc, ARGS, &["a.o"]);
        // A directory on the way replaced by another (renamed over it).
        t.write("new/a.h", "#define A 4\n");
        t.write("new/b.h", "#define B 5\n");
        std::fs::rename(t.path("inc2"), t.path("old")).unwrap();
        std::fs::rename(t.path("new"), t.path("inc2")).unwrap();
        settle();
        t.same(cc, ARGS, &["a.o"]);
        // A header written through another name (a hard link elsewhere).
        std::fs::hard_link(t.path("inc2/b.h"), t.path("b-link.h")).unwrap();
        std::fs::write(t.path("b-link.h"), "#define B 6\n").unwrap();
        backdate(&t.path("inc2/b.h"));
        settle();
        t.same(cc, ARGS, &["a.o"]);
        std::fs::remove_file(t.path("b-link.h")).unwrap();
        // Put back for the next compiler.
        std::fs::remove_dir_all(t.path("inc2")).unwrap();
        std::fs::rename(t.path("old"), t.path("inc2")).unwrap();
    }
    assert!(watch_stats(&t)["events"].as_u64().unwrap() > 0);
}

#[test]
fn names_mode_sees_headers_change_between_hits() {
    changes_between_hits_are_seen("names");
}

#[test]
fn files_mode_sees_headers_change_between_hits() {
    changes_between_hits_are_seen("files");
}

#[test]
fn a_change_lost_in_an_event_overflow_is_still_seen() {
    let t = watched("files");
    let cc = "gcc";
    ok(&t.run(cc, ARGS));
    settle();
    t.same(cc, ARGS, &["a.o"]);
    let resets = watch_stats(&t)["resets"].as_u64().unwrap();
    // More events in a watched directory than the kernel queues (alternating names are
    // not merged), then the change, whose event is lost.
    let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let names = [t.path("inc1/x"), t.path("inc1/y")];
    for n in &names {
        std::fs::write(n, b"").unwrap();
    }
    // The daemon reads queued events every 50 ms while idle: three queues' worth as fast as
    // the kernel takes them overflows it in between (tried again if not).
    let now = filetime::FileTime::now();
    let mut b = 0;
    for round in 0..5 {
        for i in 0..3 * max {
            filetime::set_file_mtime(&names[i % 2], now).unwrap();
        }
        b = 9 + round;
        t.write("inc2/b.h", &format!("#define B {b}\n"));
        settle();
        t.same(cc, ARGS, &["a.o"]);
        if watch_stats(&t)["resets"].as_u64().unwrap() > resets {
            break;
        }
    }
    assert!(b > 0);
    assert!(
        watch_stats(&t)["resets"].as_u64().unwrap() > resets,
        "the overflow dropped the watcher's table"
    );
    // And it works on afterwards: a hit, answered from the table again.
    t.same(cc, ARGS, &["a.o"]);
    let answered = watch_stats(&t)["answered"].as_u64().unwrap();
    t.same(cc, ARGS, &["a.o"]);
    assert!(watch_stats(&t)["answered"].as_u64().unwrap() > answered);
}

#[test]
fn watch_off_and_a_bad_mode() {
    let t = watched("off");
    ok(&t.run("gcc", ARGS));
    settle();
    t.same("gcc", ARGS, &["a.o"]);
    assert_eq!(watch_stats(&t)["mode"], "off");
    assert_eq!(watch_stats(&t)["answered"], 0);
    let mut bad = T::new();
    bad.env.var("ZCFS_WATCH", "sometimes");
    let out = bad.env.command(zcfs_bin()).arg("config").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ZCFS_WATCH"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
