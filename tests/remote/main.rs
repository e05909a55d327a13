//! The remote tier against real stores on loopback (docs/remote.md, scenarios R1–R25 of the
//! research brief). A "machine" is an [`Env`] with its own cache dir, runtime dir and
//! daemon; two machines share one store. What a machine is served must be byte for byte
//! what the compiler made; every failure of the store leaves builds working and is counted.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/servers.rs"]
mod servers;

mod other_places;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Build, Env, artifacts};
use servers::{Faults, Proxy, Server};

/// A machine using the store at `url`, with `env` (credentials) set.
fn machine(url: &str, env: &[(String, String)]) -> Env {
    let mut m = Env::new();
    m.var("ZCFS_REMOTE", url);
    for (k, v) in env {
        m.var(k, v);
    }
    m
}

fn on(server: &Server) -> Env {
    machine(&server.url, &server.env)
}

/// A second machine building the first one's checkout (same path, own cache and daemon).
fn same_place(mut b: Env, a: &Env) -> Env {
    b.ws = a.ws.clone();
    b
}

fn flush(m: &Env) {
    let out = m.zcfs(&["remote", "flush", "--timeout", "120"]);
    assert!(
        out.status.success(),
        "zcfs remote flush: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        m.daemon_log()
    );
}

fn remote(b: &Build) -> serde_json::Value {
    b.stats["remote"].clone()
}

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn errors(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v["errors"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, c)| (k.clone(), c.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn build(m: &Env, args: &[&str]) -> Build {
    let b = m.cargo(args);
    b.assert_ok();
    b
}

/// Like [`assert_same`], for a build that compiled `misses` units itself: rustc's rlibs
/// differ from one compile to the next (checked with plain cargo), so at most that many
/// rlibs may differ; everything served must be identical.
fn assert_same_but_compiled(
    got: &BTreeMap<PathBuf, Vec<u8>>,
    want: &BTreeMap<PathBuf, Vec<u8>>,
    misses: u64,
) {
    let differ: Vec<&PathBuf> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        differ.len() as u64 <= misses
            && differ
                .iter()
                .all(|p| p.extension().is_some_and(|e| e == "rlib")),
        "artifacts differ beyond the {misses} recompiled units: {differ:?}"
    );
    assert!(got.keys().all(|k| want.contains_key(k)), "extra artifacts");
}

fn assert_same(got: &BTreeMap<PathBuf, Vec<u8>>, want: &BTreeMap<PathBuf, Vec<u8>>) {
    let differ: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, _)| k.display().to_string())
        .chain(
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("{} (extra)", k.display())),
        )
        .collect();
    assert!(differ.is_empty(), "artifacts differ: {differ:?}");
}

/// Machine A builds cold and uploads; its target dir is set aside (returned with what it
/// held) so that B can build the same checkout.
fn seed(a: &Env) -> (u64, BTreeMap<PathBuf, Vec<u8>>) {
    let cold = build(a, &["build"]);
    assert!(cold.misses >= 5, "{}", cold.stderr);
    flush(a);
    let r = a.stats()["remote"].clone();
    assert_eq!(
        n(&r, "uploads"),
        cold.misses,
        "one upload per stored unit: {r}"
    );
    assert!(errors(&r).is_empty(), "{r}");
    let art = artifacts(&a.target().join("debug"));
    std::fs::rename(a.target(), a.tmp.path().join("target-a")).unwrap();
    (cold.misses, art)
}

/// R3, R20, R25: a fresh machine at the same path gets every unit from the remote, byte
/// for byte, and the next build needs no download.
fn two_machines(server: &Server) -> Env {
    let a = on(server);
    let (units, a_art) = seed(&a);
    let a_size = a.stats()["cache"]["size"].as_u64().unwrap();

    let b = same_place(on(server), &a);
    let warm = build(&b, &["build"]);
    assert_eq!(warm.misses, 0, "{}", warm.stderr);
    assert_eq!(warm.hits, units);
    let r = remote(&warm);
    assert_eq!(n(&r, "hits"), units, "{r}");
    assert_eq!(n(&r, "packs_downloaded"), units, "{r}");
    assert_eq!(n(&r, "bytes_down"), a_size, "every pack byte, once: {r}");
    assert!(errors(&r).is_empty(), "{r}");
    assert_same(&artifacts(&b.target().join("debug")), &a_art);
    assert_eq!(b.run_app(), {
        let out = std::process::Command::new(a.tmp.path().join("target-a/debug/app"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    });

    // Now local: a clean rebuild downloads nothing.
    b.clean();
    let again = build(&b, &["build"]);
    assert_eq!(again.hits, units);
    assert_eq!(n(&remote(&again), "packs_downloaded"), units);
    assert_eq!(n(&remote(&again), "hits"), units);
    std::fs::remove_dir_all(b.target()).unwrap();
    a
}

#[test]
fn r3_two_machines_share_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = servers::dir_store(dir.path());
    two_machines(&server);
}

#[test]
fn r20_two_machines_share_seaweedfs_s3() {
    two_machines(&servers::weed());
}

#[test]
fn r20_two_machines_share_rclone_s3() {
    let server = servers::rclone();
    let a = two_machines(&server);
    corrupt_one(&server, &a);
}

#[test]
fn r20_two_machines_share_nginx_webdav() {
    let server = servers::nginx(false);
    let a = two_machines(&server);
    corrupt_one(&server, &a);
}

/// R6 on a server: a byte flipped in the largest pack object (same size) makes a third
/// machine compile that unit, count it, and serve nothing wrong.
fn corrupt_one(server: &Server, a: &Env) {
    let data = server.data.as_ref().unwrap();
    let mut packs = objects(data, "p");
    packs.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    let hl = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    bytes[hl.div_ceil(4096) * 4096 + 100] ^= 0x55;
    std::fs::write(&packs[0], &bytes).unwrap();
    let c = same_place(on(server), a);
    let build = build(&c, &["build"]);
    assert_eq!(build.misses, 1, "{}", build.stderr);
    let r = remote(&build);
    assert_eq!(errors(&r).get("corrupt"), Some(&1), "{r}");
    let gc = c.zcfs(&["gc"]);
    assert!(
        String::from_utf8_lossy(&gc.stdout).contains(" 0 corrupt"),
        "{gc:?}"
    );
}

/// WebDAV over https with a private CA (`ZCFS_REMOTE_CA_FILE`); a machine that does not
/// trust the CA gets nothing from the store and builds as without it.
#[test]
fn r20_two_machines_share_nginx_over_https() {
    let server = servers::nginx_tls();
    let a = two_machines(&server);
    let stranger = same_place(machine(&server.url, &[]), &a);
    let b = build(&stranger, &["build"]);
    assert_eq!(b.hits, 0);
    let e = errors(&remote(&b));
    assert!(
        e.get("connect").copied().unwrap_or(0) >= 3,
        "the certificate is refused: {e:?}"
    );
}

#[test]
fn r20_two_machines_share_redis() {
    two_machines(&servers::redis());
}

/// A proxy in front of `server` that holds back requests starting with one of `requests`.
fn delaying(server: &Server, requests: &[&'static [u8]], delay: Duration) -> Proxy {
    Proxy::start(
        server.port,
        Faults {
            delay_requests: requests.to_vec(),
            delay,
            cut_after: None,
        },
    )
}

/// The objects of a store kept on disk, under `zcfs2/<kind>/`, sorted.
fn objects(data: &Path, kind: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let root = data.join(zcfs::remote::LAYOUT).join(kind);
    if let Ok(shards) = std::fs::read_dir(&root) {
        for s in shards.flatten() {
            for f in std::fs::read_dir(s.path()).unwrap().flatten() {
                v.push(f.path());
            }
        }
    }
    v.sort();
    v
}

/// R2: after a cold build and a flush, one object per pack, byte-equal to the local pack,
/// and one per key.
#[test]
fn r2_the_store_holds_the_local_packs_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let server = servers::dir_store(dir.path());
    let a = on(&server);
    let cold = build(&a, &["build"]);
    flush(&a);
    let data = server.data.as_ref().unwrap();
    let packs = objects(data, "p");
    assert_eq!(packs.len() as u64, cold.misses);
    for p in &packs {
        let hex = p.file_name().unwrap().to_str().unwrap();
        let local = a
            .cache
            .join("packs")
            .join(&hex[..2])
            .join(format!("{hex}.pack"));
        assert_eq!(
            std::fs::read(p).unwrap(),
            std::fs::read(&local).unwrap(),
            "{hex}"
        );
    }
    assert_eq!(objects(data, "m").len() as u64, cold.misses);
    assert!(
        !data.join(".tmp").exists() || std::fs::read_dir(data.join(".tmp")).unwrap().count() == 0
    );
}

/// R6, R7, R18: a pack with a flipped byte, a truncated one and a deleted one: the other
/// machine recompiles exactly those, counts why, serves nothing wrong, keeps no bad pack,
/// and its uploads repair the store.
#[test]
fn r6_r7_r18_damaged_objects_are_discarded_recompiled_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let server = servers::dir_store(dir.path());
    let data = server.data.clone().unwrap();
    let a = on(&server);
    let (units, a_art) = seed(&a);
    let packs = objects(&data, "p");
    assert_eq!(packs.len() as u64, units);
    // Damage the three largest packs (whose payloads certainly reach past 5000 bytes).
    let mut by_size = packs.clone();
    by_size.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    let mut bytes = std::fs::read(&by_size[0]).unwrap();
    let hl = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let payload = hl.div_ceil(4096) * 4096;
    bytes[payload + 100] ^= 0x55;
    std::fs::write(&by_size[0], &bytes).unwrap();
    let len = std::fs::metadata(&by_size[1]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&by_size[1])
        .unwrap()
        .set_len(len - 5000)
        .unwrap();
    std::fs::remove_file(&by_size[2]).unwrap();

    let b = same_place(on(&server), &a);
    let warm = build(&b, &["build"]);
    assert_eq!(warm.misses, 3, "{}", warm.stderr);
    assert_eq!(warm.hits, units - 3);
    let r = remote(&warm);
    let e = errors(&r);
    assert_eq!(e.get("corrupt"), Some(&2), "{r}");
    assert_eq!(e.get("dangling"), Some(&1), "{r}");
    assert_same_but_compiled(&artifacts(&b.target().join("debug")), &a_art, 3);
    let gc = b.zcfs(&["gc"]);
    assert!(
        String::from_utf8_lossy(&gc.stdout).contains(" 0 corrupt"),
        "{gc:?}"
    );
    // B's uploads repair the store: its manifests no longer name a damaged or missing
    // pack, and the packs they name are sound. (The damaged objects stay, unreferenced:
    // zcfs never deletes from a store.)
    flush(&b);
    for m in objects(&data, "m") {
        let man = zcfs::store::manifest::Manifest::decode(&std::fs::read(&m).unwrap()).unwrap();
        for e in &man.entries {
            let hex = e.pack.to_hex();
            let p = data
                .join(zcfs::remote::LAYOUT)
                .join("p")
                .join(&hex[..2])
                .join(&hex);
            let pack = zcfs::store::pack::Pack::open(&p)
                .unwrap_or_else(|e| panic!("{} names {hex}: {e}", m.display()));
            assert!(
                pack.verify().is_ok() && pack.check_layout().is_ok(),
                "{hex}"
            );
        }
    }
}

/// R8: a self-consistent pack whose entry is named `../evil`, named by a manifest entry
/// that holds: rejected, counted, and no file appears outside the output dir.
#[test]
fn r8_hostile_entry_names_are_rejected() {
    use zcfs::store::manifest::Manifest;
    use zcfs::store::pack;
    let dir = tempfile::tempdir().unwrap();
    let server = servers::dir_store(dir.path());
    let data = server.data.clone().unwrap();
    let a = on(&server);
    let (units, a_art) = seed(&a);
    // A pack holding "../evil", in the store under its own (correct) id.
    let src = dir.path().join("evil-src");
    std::fs::write(&src, b"#!/bin/sh\necho owned\n").unwrap();
    let f = std::fs::File::open(&src).unwrap();
    let tmp = dir.path().join("evil.pack");
    let out = std::fs::File::create(&tmp).unwrap();
    let w = pack::write(
        &out,
        &[pack::Source {
            name: "../evil".into(),
            file: &f,
        }],
        vec![],
        vec![],
        vec![],
    )
    .unwrap();
    let hex = w.id.to_hex();
    let dest = data
        .join(zcfs::remote::LAYOUT)
        .join("p")
        .join(&hex[..2])
        .join(&hex);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(&tmp, &dest).unwrap();
    // Every manifest now names it.
    for m in objects(&data, "m") {
        let mut man = Manifest::decode(&std::fs::read(&m).unwrap()).unwrap();
        for e in &mut man.entries {
            e.pack = w.id;
        }
        std::fs::write(&m, man.encode()).unwrap();
    }
    let b = same_place(on(&server), &a);
    let warm = build(&b, &["build"]);
    assert_eq!(warm.hits, 0);
    assert_eq!(warm.misses, units);
    let r = remote(&warm);
    assert!(errors(&r).get("corrupt").copied().unwrap_or(0) >= 1, "{r}");
    assert_same_but_compiled(&artifacts(&b.target().join("debug")), &a_art, units);
    let found = walk(a.tmp.path())
        .into_iter()
        .chain(walk(b.tmp.path()))
        .find(|p| p.file_name().is_some_and(|n| n == "evil"));
    assert!(found.is_none(), "{found:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// R9: a manifest over the cap and packs over `ZCFS_REMOTE_MAX_OBJECT` are refused before
/// they are read; the build compiles what it could not get.
#[test]
fn r9_oversized_objects_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = servers::dir_store(dir.path());
    let data = server.data.clone().unwrap();
    let a = on(&server);
    let (units, a_art) = seed(&a);
    let manifests = objects(&data, "m");
    std::fs::write(&manifests[0], vec![7u8; 9 << 20]).unwrap();
    let mut b = same_place(on(&server), &a);
    b.var("ZCFS_REMOTE_MAX_OBJECT", "64K");
    let warm = build(&b, &["build"]);
    let r = remote(&warm);
    let too_large = errors(&r).get("too large").copied().unwrap_or(0);
    assert!(too_large >= 2, "the manifest and the big packs: {r}");
    assert!(warm.misses >= 2 && warm.hits + warm.misses == units, "{r}");
    assert_same_but_compiled(&artifacts(&b.target().join("debug")), &a_art, warm.misses);
    let rss = status_rss(&b);
    assert!(rss < 256 << 20, "daemon RSS {rss}");
}

/// The daemon's resident memory, bytes.
fn status_rss(m: &Env) -> u64 {
    let pid = m.daemon_pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// R10, R22: a remote nobody listens on: the build works as without a remote, the breaker
/// opens after three failures, and the next build is served locally.
#[test]
fn r10_r22_a_dead_remote_costs_a_build_almost_nothing() {
    let port = servers::free_port();
    let a = machine(&format!("webdav+http://127.0.0.1:{port}/cache"), &[]);
    let t = Instant::now();
    let cold = build(&a, &["build"]);
    let with_dead = t.elapsed();
    // The uploads retry behind the build; wait for them to give up.
    let flushed = a.zcfs(&["remote", "flush", "--timeout", "60"]);
    assert_eq!(
        flushed.status.code(),
        Some(1),
        "failed uploads are reported"
    );
    let r = a.stats()["remote"].clone();
    let e = errors(&r);
    // Three failures open each breaker (reads, writes); a call in flight as it opens
    // fails too.
    let connect = e.get("connect").copied().unwrap_or(0);
    assert!(
        (6..=8).contains(&connect),
        "three tries, then the breaker: {r}"
    );
    assert!(e.get("skipped").copied().unwrap_or(0) >= 1, "{r}");
    let status = a.zcfs(&["remote", "status", "--json"]);
    assert!(!status.status.success());
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["read_breaker"], "open", "{v}");
    assert_eq!(v["reachable"], false);
    // The same build without a remote, for the time it takes.
    let plain = Env::new();
    let t = Instant::now();
    build(&plain, &["build"]);
    let without = t.elapsed();
    assert!(
        with_dead < without + Duration::from_secs(5),
        "dead remote {with_dead:?} vs none {without:?}"
    );
    a.clean();
    let warm = build(&a, &["build"]);
    assert_eq!(warm.hits, cold.misses, "local hits with the remote down");
}

/// R11, R12: a remote that accepts connections and never answers: every call ends at its
/// deadline, the breaker opens, the build goes on; once it answers again, after the open
/// window one probe succeeds and remote hits resume in the same daemon.
#[test]
fn r11_r12_a_black_hole_then_recovery() {
    let server = servers::nginx(false);
    let a = on(&server);
    let (units, a_art) = seed(&a);
    server.pause();
    let mut b = same_place(on(&server), &a);
    b.var("ZCFS_REMOTE_TIMEOUT", "300ms")
        .var("ZCFS_REMOTE_BREAKER", "2s");
    // Another project first, while the store hangs.
    let other = common::many_crates(&b.tmp.path().join("many"), 6);
    let t = Instant::now();
    let during = b.build_with(b.cargo_command(&other.join("top"), &["build"]));
    during.assert_ok();
    let took = t.elapsed();
    let r = remote(&during);
    let e = errors(&r);
    let timeout = e.get("timeout").copied().unwrap_or(0);
    assert!(
        (4..=8).contains(&timeout),
        "three lookups, uploads retried: {r}"
    );
    assert!(e.get("skipped").copied().unwrap_or(0) >= 1, "{r}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    server.resume();
    // Each failed probe doubled the open window; wait until it is over (asking the stats,
    // which do not probe: the breaker's own probe must do it). One job: the first lookup
    // is the probe; lookups at the same time would be skipped while it runs.
    common::wait_until(60, "the read breaker's open window", || {
        !b.stats()["remote"]["breaker"]
            .as_str()
            .unwrap_or("")
            .contains("reads open")
    });
    let after = build(&b, &["build", "-j1"]);
    assert_eq!(after.hits, units, "{}", after.stderr);
    assert_eq!(n(&remote(&after), "hits"), units);
    assert_same(&artifacts(&b.target().join("debug")), &a_art);
}

/// R13: writes need credentials the reader lacks: the reader gets every hit, its first
/// refused write turns writes off (mode ro) and nothing more is sent; a client in mode
/// `ro` never tries.
#[test]
fn r13_read_only_clients() {
    let server = servers::nginx(true);
    let data = server.data.clone().unwrap();
    let mut w = on(&server);
    w.var("ZCFS_REMOTE_USERNAME", "zcfs")
        .var("ZCFS_REMOTE_PASSWORD", "secret");
    let (units, _) = seed(&w);
    let stored = objects(&data, "p").len();
    assert_eq!(stored as u64, units);

    let r = same_place(on(&server), &w);
    let warm = build(&r, &["build"]);
    assert_eq!(warm.hits, units);
    assert_eq!(n(&remote(&warm), "hits"), units);
    // A change: a miss, whose upload is refused.
    r.write(
        "util/src/lib.rs",
        &format!("{}\npub fn added() {{}}\n", r.read("util/src/lib.rs")),
    );
    let miss = build(&r, &["build"]);
    assert!(miss.misses >= 1);
    let _ = r.zcfs(&["remote", "flush", "--timeout", "30"]);
    let st = r.zcfs(&["remote", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["mode"], "ro", "{v}");
    let rs = r.stats()["remote"].clone();
    let auth = errors(&rs).get("auth").copied().unwrap_or(0);
    assert!(
        (1..=2).contains(&auth),
        "one refusal per upload worker at most: {rs}"
    );
    assert_eq!(objects(&data, "p").len(), stored, "nothing written");
    assert_eq!(
        r.daemon_log().matches("read-only from now on").count(),
        1,
        "one log line"
    );

    // Mode ro: no write is even tried.
    let mut ro = same_place(on(&server), &w);
    ro.var("ZCFS_REMOTE_MODE", "ro");
    ro.write(
        "util/src/lib.rs",
        &format!("{}\npub fn again() {{}}\n", ro.read("util/src/lib.rs")),
    );
    let b = build(&ro, &["build"]);
    assert!(b.misses >= 1);
    let _ = ro.zcfs(&["remote", "flush", "--timeout", "30"]);
    let rs = ro.stats()["remote"].clone();
    assert!(errors(&rs).is_empty(), "{rs}");
    assert_eq!(n(&rs, "uploads") + n(&rs, "uploads_failed"), 0, "{rs}");
}

/// R14: uploads take seconds each (a proxy delays every PUT and HEAD): the build does not
/// wait for them; `flush` does.
#[test]
fn r14_uploads_never_delay_a_build() {
    let server = servers::nginx(false);
    let proxy = delaying(&server, &[b"PUT ", b"HEAD "], Duration::from_millis(1500));
    let a = machine(
        &format!("webdav+http://127.0.0.1:{}/cache", proxy.port),
        &[],
    );
    let cold = build(&a, &["build"]);
    let st = a.zcfs(&["remote", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let pending = v["uploads_queued"].as_u64().unwrap() + v["uploads_in_flight"].as_u64().unwrap();
    assert!(pending >= 1, "the build ended before its uploads: {v}");
    flush(&a);
    assert_eq!(n(&a.stats()["remote"], "uploads"), cold.misses);
}

/// R15: the store stalls during a cold build of many units with a queue of one: uploads
/// beyond it are dropped and counted, the build is not held up, `flush` reports it.
#[test]
fn r15_a_full_upload_queue_drops_and_counts() {
    let server = servers::nginx(false);
    let proxy = delaying(&server, &[b"PUT ", b"HEAD "], Duration::from_secs(3));
    let mut a = machine(
        &format!("webdav+http://127.0.0.1:{}/cache", proxy.port),
        &[],
    );
    a.var("ZCFS_REMOTE_UPLOAD_QUEUE", "1");
    let ws = common::many_crates(&a.tmp.path().join("many"), 16);
    let cold = a.build_with(a.cargo_command(&ws.join("top"), &["build"]));
    cold.assert_ok();
    let r = remote(&cold);
    assert!(n(&r, "uploads_dropped") >= 1, "{r}");
    let first = a.zcfs(&["remote", "flush", "--timeout", "120"]);
    assert_eq!(first.status.code(), Some(1), "{first:?}");
    assert!(String::from_utf8_lossy(&first.stdout).contains("dropped"));
    let second = a.zcfs(&["remote", "flush", "--timeout", "120"]);
    assert!(second.status.success(), "{second:?}");
}

/// R24: `zcfs remote push` seeds a store from a cache filled without one.
#[test]
fn r24_push_seeds_a_store_from_a_warm_cache() {
    let dir = tempfile::tempdir().unwrap();
    let server = servers::dir_store(dir.path());
    let mut a = Env::new();
    let cold = build(&a, &["build"]);
    let a_art = artifacts(&a.target().join("debug"));
    std::fs::rename(a.target(), a.tmp.path().join("target-a")).unwrap();
    a.zcfs(&["stop"]);
    a.var("ZCFS_REMOTE", &server.url);
    let push = a.zcfs(&["remote", "push"]);
    assert!(push.status.success(), "{push:?}");
    assert!(String::from_utf8_lossy(&push.stdout).contains(&format!("queued {}", cold.misses)));
    let b = same_place(on(&server), &a);
    let warm = build(&b, &["build"]);
    assert_eq!(warm.hits, cold.misses);
    assert_same(&artifacts(&b.target().join("debug")), &a_art);
}

/// R1: a URL zcfs cannot use leaves the local cache working and says why; credentials
/// never show.
#[test]
fn r1_bad_urls_and_secrets() {
    let mut a = machine("gopher://127.0.0.1/x", &[]);
    let cold = build(&a, &["build"]);
    assert!(cold.misses >= 5 && cold.errors == 0);
    let st = a.zcfs(&["remote", "status"]);
    assert!(!st.status.success());
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("unsupported remote scheme"),
        "{st:?}"
    );
    a.zcfs(&["stop"]);
    a.var("ZCFS_REMOTE", "webdav+http://user:hunter2@127.0.0.1:1/x");
    a.var("ZCFS_REMOTE_PASSWORD", "hunter3");
    a.clean();
    let warm = build(&a, &["build"]);
    assert_eq!(warm.hits, cold.misses, "local hits");
    let config = a.zcfs(&["config"]);
    let text = String::from_utf8_lossy(&config.stdout);
    assert!(
        text.contains("remote") && !text.contains("hunter2"),
        "{text}"
    );
    let st = a.zcfs(&["remote", "status", "--json"]);
    let everything = format!(
        "{}{}{}{}",
        text,
        String::from_utf8_lossy(&st.stdout),
        a.stats(),
        a.daemon_log()
    );
    assert!(!everything.contains("hunter2") && !everything.contains("hunter3"));
}

/// R19: stores under other prefixes share nothing.
#[test]
fn r19_prefixes_isolate() {
    let server = servers::redis();
    let a = machine(&format!("{}?prefix=team-a", server.url), &[]);
    let (units, _) = seed(&a);
    let b = same_place(machine(&format!("{}?prefix=team-b", server.url), &[]), &a);
    let other = build(&b, &["build"]);
    assert_eq!(other.hits, 0);
    assert_eq!(n(&remote(&other), "manifest_found"), 0);
    std::fs::remove_dir_all(b.target()).unwrap();
    let c = same_place(machine(&format!("{}?prefix=team-a", server.url), &[]), &a);
    assert_eq!(build(&c, &["build"]).hits, units);
}

/// A server cut off in the middle of sending packs (a proxy closes every connection
/// after 256 KiB): the partial packs are discarded, the units compiled, nothing wrong kept.
#[test]
fn a_server_dying_mid_download_serves_nothing_wrong() {
    let server = servers::nginx(false);
    let a = on(&server);
    let (_, a_art) = seed(&a);
    let proxy = Proxy::start(
        server.port,
        Faults {
            cut_after: Some(256 << 10),
            ..Faults::default()
        },
    );
    let b = same_place(
        machine(
            &format!("webdav+http://127.0.0.1:{}/cache", proxy.port),
            &[],
        ),
        &a,
    );
    let warm = build(&b, &["build"]);
    let r = remote(&warm);
    assert!(warm.misses >= 1, "big packs cannot come through: {r}");
    assert!(!errors(&r).is_empty(), "{r}");
    assert_same_but_compiled(&artifacts(&b.target().join("debug")), &a_art, warm.misses);
    let gc = b.zcfs(&["gc"]);
    assert!(
        String::from_utf8_lossy(&gc.stdout).contains(" 0 corrupt"),
        "{gc:?}"
    );
}

/// A full local disk: packs downloaded cannot be stored; the build compiles instead.
#[test]
fn a_full_local_disk_falls_back_to_compiling() {
    let server = servers::nginx(false);
    let a = on(&server);
    let (units, a_art) = seed(&a);
    let b = same_place(on(&server), &a);
    let _tiny = common::RootMount::new(&["-t", "tmpfs", "-o", "size=1m", "tmpfs"], &b.cache)
        .expect("needs root (CI is root)");
    let warm = build(&b, &["build"]);
    assert!(warm.misses >= 1 && warm.hits + warm.misses == units);
    assert_same_but_compiled(&artifacts(&b.target().join("debug")), &a_art, warm.misses);
    let r = remote(&warm);
    assert!(errors(&r).get("io").copied().unwrap_or(0) >= 1, "{r}");
    b.zcfs(&["stop"]);
}

/// R16, R17: two machines at different checkouts fill an S3 store at the same time (the
/// same keys for the path-free units, SeaweedFS's conditional writes): nothing is lost
/// that costs more than a miss, nothing fails, and a third machine gets what they share.
#[test]
fn r16_r17_concurrent_writers() {
    let server = servers::weed();
    let (a, b) = (on(&server), on(&server));
    let (ba, bb) = std::thread::scope(|s| {
        let ta = s.spawn(|| build(&a, &["build", "--release"]));
        let tb = s.spawn(|| build(&b, &["build", "--release"]));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    flush(&a);
    flush(&b);
    for (m, built) in [(&a, &ba), (&b, &bb)] {
        let r = m.stats()["remote"].clone();
        assert!(errors(&r).is_empty(), "{r}");
        assert_eq!(n(&r, "uploads_failed"), 0);
        // Units the other machine compiled and uploaded first may have been hits.
        assert_eq!(
            n(&r, "uploads") + n(&r, "uploads_existing"),
            built.misses,
            "{r}"
        );
    }
    let c = on(&server);
    let warm = build(&c, &["build", "--release"]);
    let r = remote(&warm);
    assert!(errors(&r).is_empty(), "{r}");
    assert!(warm.hits >= 1, "the path-free units: {}", warm.stderr);
    assert_eq!(n(&r, "hits"), warm.hits);
}

/// R5: in a mount, remote hits are projections of the downloaded packs: the target dir
/// holds no copy of them, and the next build has nothing to do.
#[test]
fn r5_remote_hits_are_projected_in_a_mount() {
    let dir = tempfile::tempdir().unwrap();
    let server = servers::dir_store(dir.path());
    let a = on(&server);
    let (units, a_art) = seed(&a);
    let mut b = same_place(on(&server), &a);
    b.mounted = true;
    // (The harness's own mount check looks under B's temp dir; B builds A's checkout.)
    let zcfs_cargo = || b.build_with(b.cargo_command(&b.ws, &["build"]));
    let warm = zcfs_cargo();
    warm.assert_ok();
    assert!(common::is_mounted(&b.target()), "{}", warm.stderr);
    assert_eq!(warm.hits, units);
    assert_eq!(warm.hits_projected, warm.all_hits, "every hit a projection");
    assert_eq!(n(&remote(&warm), "hits"), units);
    let mounts = &warm.stats["mounts"][0];
    assert!(
        mounts["real_bytes"].as_u64().unwrap() < mounts["projected_bytes"].as_u64().unwrap() / 10,
        "the artifacts are projected, not written: {mounts}"
    );
    assert_same(&artifacts(&b.target().join("debug")), &a_art);
    zcfs_cargo().assert_noop();
    let out = b.zcfs(&["unmount", b.target().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
}

/// A slow store (a proxy delays every read by 200 ms, under the deadline): every unit is
/// still a remote hit, byte for byte; one slower than the deadline (1 s against 300 ms)
/// costs misses, never a failed build.
#[test]
fn a_slow_store_is_waited_for_within_the_deadline_only() {
    let server = servers::nginx(false);
    let a = on(&server);
    let (units, a_art) = seed(&a);
    let slow = delaying(&server, &[b"GET ", b"HEAD "], Duration::from_millis(200));
    let b = same_place(
        machine(&format!("webdav+http://127.0.0.1:{}/cache", slow.port), &[]),
        &a,
    );
    let warm = build(&b, &["build"]);
    assert_eq!(warm.hits, units, "{}", warm.stderr);
    assert!(errors(&remote(&warm)).is_empty());
    assert_same(&artifacts(&b.target().join("debug")), &a_art);
    std::fs::remove_dir_all(b.target()).unwrap();

    let slower = delaying(&server, &[b"GET ", b"HEAD "], Duration::from_secs(1));
    let mut c = same_place(
        machine(
            &format!("webdav+http://127.0.0.1:{}/cache", slower.port),
            &[],
        ),
        &a,
    );
    c.var("ZCFS_REMOTE_TIMEOUT", "300ms");
    let t = Instant::now();
    let cold = build(&c, &["build"]);
    assert!(t.elapsed() < Duration::from_secs(60));
    assert_eq!(cold.hits, 0);
    let e = errors(&remote(&cold));
    assert!(e.get("timeout").copied().unwrap_or(0) >= 3, "{e:?}");
}

/// R23: the daemon connects to the configured store and nothing else (no credential
/// probing of 169.254.169.254, no DNS for S3's default endpoint): every `connect` it makes
/// to an internet address goes to the store's loopback port.
#[test]
fn r23_no_traffic_but_to_the_store() {
    let server = servers::rclone();
    let a = on(&server);
    let log = a.tmp.path().join("connect.log");
    let mut daemon = a
        .command("strace")
        .args(["-f", "-e", "trace=connect", "-o"])
        .arg(&log)
        .arg(common::ZCFS)
        .arg("daemon")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("strace (scripts/install-deps.sh installs it)");
    common::wait_until(30, "the daemon under strace", || a.daemon_pid().is_some());
    let (_, _) = seed(&a);
    a.zcfs(&["stop"]);
    daemon.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let inet: Vec<&str> = text.lines().filter(|l| l.contains("AF_INET")).collect();
    assert!(!inet.is_empty(), "the daemon talked to the store:\n{text}");
    let port = format!("sin_port=htons({})", server.port);
    for l in &inet {
        assert!(
            l.contains(&port) && l.contains("127.0.0.1"),
            "a connection elsewhere: {l}"
        );
    }
}
