//! The store through the command line: size cap and LRU eviction, `zcfs gc`, `zcfs clear`.

mod common;

use common::Env;

#[test]
fn size_cap_evicts_and_builds_stay_correct() {
    let mut env = Env::new();
    // The fixture's results take ~18 MB; a 6 MB cap keeps only part of them.
    env.var("ZCFS_MAX_SIZE", "6M");
    let b = env.cargo(&["build"]);
    b.assert_ok();
    let s = env.stats();
    assert!(s["evicted_packs"].as_u64().unwrap() > 0, "{s}");
    let size = s["cache"]["size"].as_u64().unwrap();
    assert!(size <= 6 << 20, "under the cap: {size}");
    // A clean build: whatever is left hits, the rest misses; the result is right.
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.hits + b.misses, 7);
    assert!(b.misses > 0);
    assert!(env.run_app().contains("mac=42"));
    env.cargo(&["build"]).assert_ok().assert_noop();
}

#[test]
fn gc_and_clear() {
    let env = Env::new();
    env.cargo(&["build"]).assert_ok();
    let out = env.zcfs(&["gc"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 corrupt"), "{text}");
    assert!(text.contains("in 7 packs"), "{text}");
    let out = env.zcfs(&["clear"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 7 packs"));
    assert_eq!(env.stats()["cache"]["packs"], 0);
    assert!(env.cargo_plain(&env.ws, &["clean"]).status.success());
    let b = env.cargo(&["build"]);
    b.assert_ok();
    assert_eq!(b.hits, 0, "nothing left after clear");
    assert_eq!(b.misses, 7);
}

#[test]
fn stats_zero_and_text_output() {
    let env = Env::new();
    env.cargo(&["build"]).assert_ok();
    let out = env.zcfs(&["stats"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Hits",
        "Misses",
        "Uncacheable",
        "probe",
        "Language rust",
        "Cache size",
    ] {
        assert!(text.contains(want), "{want} missing in:\n{text}");
    }
    assert!(env.zcfs(&["stats", "--zero"]).status.success());
    let s = env.stats();
    assert_eq!(s["misses"], 0);
    assert_eq!(s["cache"]["packs"], 7, "zeroing counters keeps the cache");
    // Stats survive the daemon.
    env.clean();
    env.cargo(&["build"]).assert_ok();
    assert!(env.zcfs(&["stop"]).status.success());
    let s = env.stats();
    assert_eq!(s["hits"], 7, "read from stats.json without a daemon: {s}");
    // Zeroing works without a daemon too, and the next daemon starts from zero.
    assert!(env.zcfs(&["stats", "--zero"]).status.success());
    assert_eq!(env.stats()["hits"], 0);
    env.clean();
    env.cargo(&["build"]).assert_ok();
    assert_eq!(env.stats()["hits"], 7);
}
