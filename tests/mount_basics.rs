//! The mount: lifecycle, projections (read, mmap, sendfile, copy-up, rename, link),
//! persistence, crashes, busy unmounts, materialize, safety.

mod common;

use common::{Env, ZCFS, is_mounted, mtime, wait_until};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const T: i128 = 1_700_000_000_123_456_789;

fn project(env: &Env, dir: &Path, rel: &str, content: &[u8], mode: &str, mtime_ns: Option<i128>) {
    let src = env
        .tmp
        .path()
        .join(format!("src-{}", rel.replace('/', "_")));
    std::fs::write(&src, content).unwrap();
    let mut args = vec![
        "project".to_string(),
        dir.display().to_string(),
        rel.to_string(),
        src.display().to_string(),
        "--mode".into(),
        mode.into(),
    ];
    if let Some(t) = mtime_ns {
        args.push(format!("--mtime-ns={t}"));
    }
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let out = env.zcfs(&a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn target(env: &Env) -> PathBuf {
    env.tmp.path().join("target")
}

#[test]
fn mount_write_unmount_keeps_real_files() {
    let env = Env::new();
    let dir = target(&env);
    {
        let _m = env.mount(&dir);
        assert!(is_mounted(&dir));
        std::fs::create_dir_all(dir.join("debug/deps")).unwrap();
        std::fs::write(dir.join("debug/deps/a.txt"), b"hello").unwrap();
        // Mounting again says so and succeeds.
        let out = env.zcfs(&["mount", dir.to_str().unwrap()]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("already mounted"));
        let st = env.zcfs(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        assert_eq!(
            v["mounts"][0]["dir"],
            dir.canonicalize().unwrap().display().to_string()
        );
        let out = env.zcfs(&["unmount", dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!is_mounted(&dir));
    assert_eq!(
        std::fs::read(dir.join("debug/deps/a.txt")).unwrap(),
        b"hello"
    );
}

#[test]
fn projected_file_reads_through_read_mmap_and_sendfile() {
    let env = Env::new();
    let dir = target(&env);
    let _m = env.mount(&dir);
    std::fs::create_dir_all(dir.join("deps")).unwrap();
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    project(&env, &dir, "deps/libx.rlib", &content, "644", Some(T));
    let p = dir.join("deps/libx.rlib");
    let m = std::fs::metadata(&p).unwrap();
    assert_eq!(m.len(), content.len() as u64);
    assert_eq!(m.mode() & 0o777, 0o644);
    assert_eq!(mtime(&p), T);
    assert_eq!(std::fs::read(&p).unwrap(), content);
    let f = std::fs::File::open(&p).unwrap();
    let map = unsafe { memmap2::Mmap::map(&f).unwrap() };
    assert_eq!(&map[..], &content[..]);
    let out = std::fs::File::create(env.tmp.path().join("copy")).unwrap();
    let mut off = 0u64;
    let mut sent = 0;
    while sent < content.len() {
        let n = rustix::fs::sendfile(&out, &f, Some(&mut off), content.len() - sent).unwrap();
        assert!(n > 0);
        sent += n;
    }
    assert_eq!(std::fs::read(env.tmp.path().join("copy")).unwrap(), content);
    // Nothing real was written for it.
    drop(map);
    drop(f);
    env.zcfs(&["unmount", dir.to_str().unwrap()]);
    assert!(!dir.join("deps/libx.rlib").exists());
}

#[test]
fn copy_up_on_write_and_on_truncate() {
    let env = Env::new();
    let dir = target(&env);
    let _m = env.mount(&dir);
    project(&env, &dir, "a", b"original", "755", Some(T));
    project(&env, &dir, "b", b"original", "644", Some(T));
    let ino = std::fs::metadata(dir.join("a")).unwrap().ino();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("a"))
        .unwrap();
    f.write_all(b"+more").unwrap();
    drop(f);
    assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"original+more");
    let m = std::fs::metadata(dir.join("a")).unwrap();
    assert_eq!(m.ino(), ino, "the inode survives the copy-up");
    assert_eq!(m.mode() & 0o777, 0o755);
    std::fs::write(dir.join("b"), b"new").unwrap();
    assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"new");
    env.zcfs(&["unmount", dir.to_str().unwrap()]);
    // Both are real files now.
    assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"original+more");
    assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"new");
}

#[test]
fn rename_and_link_of_projections_keep_them_projected() {
    let env = Env::new();
    let dir = target(&env);
    let _m = env.mount(&dir);
    std::fs::create_dir_all(dir.join("debug/deps")).unwrap();
    project(
        &env,
        &dir,
        "debug/deps/app-1",
        b"\x7fELF...",
        "755",
        Some(T),
    );
    let orig = std::fs::metadata(dir.join("debug/deps/app-1")).unwrap();
    std::fs::hard_link(dir.join("debug/deps/app-1"), dir.join("debug/app")).unwrap();
    let up = std::fs::metadata(dir.join("debug/app")).unwrap();
    assert_eq!(up.ino(), orig.ino());
    assert_eq!(up.nlink(), 2);
    std::fs::rename(dir.join("debug/app"), dir.join("debug/app2")).unwrap();
    assert_eq!(mtime(&dir.join("debug/app2")), T, "rename keeps the mtime");
    std::fs::remove_file(dir.join("debug/deps/app-1")).unwrap();
    assert_eq!(
        std::fs::metadata(dir.join("debug/app2")).unwrap().nlink(),
        1
    );
    assert_eq!(
        std::fs::read(dir.join("debug/app2")).unwrap(),
        b"\x7fELF..."
    );
    // Still projected: unmounting leaves no real file behind.
    env.zcfs(&["unmount", dir.to_str().unwrap()]);
    assert!(!dir.join("debug/app2").exists());
}

#[test]
fn projections_survive_remount_and_daemon_restart() {
    let env = Env::new();
    let dir = target(&env);
    let m = env.mount(&dir);
    std::fs::create_dir_all(dir.join("deps")).unwrap();
    project(&env, &dir, "deps/a", b"aaaa", "644", Some(T));
    // chmod and utimensat change metadata only, and persist.
    std::fs::set_permissions(dir.join("deps/a"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let t2 = filetime::FileTime::from_unix_time(1_700_000_100, 7);
    filetime::set_file_mtime(dir.join("deps/a"), t2).unwrap();
    let before = std::fs::metadata(dir.join("deps/a")).unwrap();
    env.zcfs(&["unmount", dir.to_str().unwrap()]);
    drop(m);
    let m = env.mount(&dir);
    let after = std::fs::metadata(dir.join("deps/a")).unwrap();
    assert_eq!(
        (after.len(), after.mode(), after.mtime(), after.mtime_nsec()),
        (
            before.len(),
            before.mode(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    assert_eq!(after.mtime_nsec(), 7);
    // A daemon restart (stop unmounts; mount again restores).
    assert!(env.zcfs(&["stop"]).status.success());
    assert!(!is_mounted(&dir));
    drop(m);
    let _m = env.mount(&dir);
    let again = std::fs::metadata(dir.join("deps/a")).unwrap();
    assert_eq!(
        (again.mode(), again.mtime(), again.mtime_nsec()),
        (before.mode(), before.mtime(), before.mtime_nsec())
    );
    assert_eq!(std::fs::read(dir.join("deps/a")).unwrap(), b"aaaa");
}

#[test]
fn killed_daemon_leaves_a_dead_mount_that_mount_and_unmount_clean() {
    let env = Env::new();
    let dir = target(&env);
    let _m = env.mount(&dir);
    std::fs::write(dir.join("real"), b"r").unwrap();
    project(&env, &dir, "p", b"projected", "644", Some(T));
    let pid = env.daemon_pid().unwrap();
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    wait_until(10, "daemon death", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    let err = std::fs::metadata(&dir).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
    // `zcfs mount` recovers, with the projection back from the journal.
    let out = env.zcfs(&["mount", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed a dead mount"));
    assert_eq!(std::fs::read(dir.join("p")).unwrap(), b"projected");
    assert_eq!(std::fs::read(dir.join("real")).unwrap(), b"r");
    // Kill again; `zcfs unmount` works without a daemon.
    let pid = env.daemon_pid().unwrap();
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    wait_until(10, "daemon death", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    let out = Command::new(ZCFS)
        .args(["unmount", dir.to_str().unwrap()])
        .env("ZCFS_DIR", &env.cache)
        .env("ZCFS_RUNTIME_DIR", &env.run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mounted(&dir));
    assert_eq!(std::fs::read(dir.join("real")).unwrap(), b"r");
}

#[test]
fn busy_unmount_names_the_holder_and_force_detaches() {
    let env = Env::new();
    let dir = target(&env);
    let _m = env.mount(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let mut holder = Command::new("sleep")
        .arg("60")
        .current_dir(dir.join("sub"))
        .spawn()
        .unwrap();
    let out = env.zcfs(&["unmount", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("busy") && err.contains(&holder.id().to_string()),
        "{err}"
    );
    assert!(err.contains("sleep"), "{err}");
    assert!(is_mounted(&dir));
    let out = env.zcfs(&["unmount", "--force", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mounted(&dir));
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn materialize_turns_projections_into_real_files() {
    let env = Env::new();
    let dir = target(&env);
    let _m = env.mount(&dir);
    std::fs::create_dir_all(dir.join("deps")).unwrap();
    project(&env, &dir, "deps/a", b"aaa", "755", Some(T));
    let out = env.zcfs(&["unmount", "--materialize", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 projections written"));
    let m = std::fs::metadata(dir.join("deps/a")).unwrap();
    assert_eq!(std::fs::read(dir.join("deps/a")).unwrap(), b"aaa");
    assert_eq!(mtime(&dir.join("deps/a")), T);
    assert_eq!(m.mode() & 0o777, 0o755);
}

#[test]
fn unsafe_projections_are_refused_and_the_mount_survives() {
    let env = Env::new();
    let dir = target(&env);
    let _m = env.mount(&dir);
    std::os::unix::fs::symlink("/tmp", dir.join("link")).unwrap();
    let src = env.tmp.path().join("s");
    std::fs::write(&src, b"x").unwrap();
    for rel in ["../escape", "/etc/passwd", "link/x", "a/../../b"] {
        let out = env.zcfs(&["project", dir.to_str().unwrap(), rel, src.to_str().unwrap()]);
        assert!(!out.status.success(), "{rel} must be refused");
    }
    assert!(!env.tmp.path().join("escape").exists());
    std::fs::write(dir.join("still-works"), b"yes").unwrap();
    assert_eq!(std::fs::read(dir.join("still-works")).unwrap(), b"yes");
    // Owner-only: no allow_other in the mount options.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.contains(" - fuse") && l.contains(dir.to_str().unwrap()))
        .unwrap();
    assert!(!line.contains("allow_other"), "{line}");
    // Another user cannot even look.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "ls"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "uid 65534 must not see the mount");
}

#[test]
fn projection_is_visible_right_after_a_negative_lookup_and_an_unlink() {
    let env = Env::new();
    let dir = target(&env);
    let _m = env.mount(&dir);
    std::fs::create_dir_all(dir.join("deps")).unwrap();
    // The kernel caches the miss (negative entry)...
    for _ in 0..3 {
        assert!(std::fs::metadata(dir.join("deps/libx.rlib")).is_err());
    }
    // ...and a projection at that name is visible as soon as it returns (spec M9).
    project(&env, &dir, "deps/libx.rlib", b"v1", "644", Some(T));
    assert_eq!(std::fs::read(dir.join("deps/libx.rlib")).unwrap(), b"v1");
    // cargo deletes an output before the wrapper runs (spec C11): same again.
    std::fs::remove_file(dir.join("deps/libx.rlib")).unwrap();
    assert!(std::fs::metadata(dir.join("deps/libx.rlib")).is_err());
    project(&env, &dir, "deps/libx.rlib", b"v2!", "644", Some(T + 1));
    assert_eq!(std::fs::read(dir.join("deps/libx.rlib")).unwrap(), b"v2!");
    assert_eq!(mtime(&dir.join("deps/libx.rlib")), T + 1);
    // Replacing a projection: the new bytes and attributes, not the cached old ones.
    project(&env, &dir, "deps/libx.rlib", b"third", "755", Some(T + 2));
    let m = std::fs::metadata(dir.join("deps/libx.rlib")).unwrap();
    assert_eq!((m.len(), m.mode() & 0o777), (5, 0o755));
    assert_eq!(std::fs::read(dir.join("deps/libx.rlib")).unwrap(), b"third");
}

#[test]
fn locks_xattrs_copies_statfs_and_stable_readdir() {
    use std::os::fd::AsFd;
    let env = Env::new();
    let dir = target(&env);
    let _m = env.mount(&dir);
    let p = dir.join("lockfile");
    std::fs::write(&p, b"x").unwrap();
    // flock: cargo's .cargo-lock. A second exclusive lock on another fd must fail.
    let a = std::fs::File::open(&p).unwrap();
    let b = std::fs::File::open(&p).unwrap();
    rustix::fs::flock(
        a.as_fd(),
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .unwrap();
    assert_eq!(
        rustix::fs::flock(
            b.as_fd(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive
        ),
        Err(rustix::io::Errno::WOULDBLOCK)
    );
    rustix::fs::flock(a.as_fd(), rustix::fs::FlockOperation::Unlock).unwrap();
    rustix::fs::flock(
        b.as_fd(),
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .unwrap();
    // xattrs: unsupported, answered cleanly (by the kernel after the first ENOSYS).
    let mut buf = [0u8; 64];
    for _ in 0..2 {
        assert_eq!(
            rustix::fs::getxattr(&p, "user.x", &mut buf),
            Err(rustix::io::Errno::OPNOTSUPP)
        );
        assert_eq!(
            rustix::fs::listxattr(&p, &mut buf),
            Err(rustix::io::Errno::OPNOTSUPP)
        );
        assert_eq!(
            rustix::fs::setxattr(&p, "user.x", b"1", rustix::fs::XattrFlags::empty()),
            Err(rustix::io::Errno::OPNOTSUPP)
        );
    }
    // std::fs::copy uses copy_file_range and falls back cleanly.
    std::fs::write(dir.join("src"), vec![7u8; 300_000]).unwrap();
    std::fs::copy(dir.join("src"), dir.join("dst")).unwrap();
    assert_eq!(std::fs::read(dir.join("dst")).unwrap(), vec![7u8; 300_000]);
    project(&env, &dir, "proj", b"projected bytes", "644", Some(T));
    std::fs::copy(dir.join("proj"), dir.join("proj-copy")).unwrap();
    assert_eq!(
        std::fs::read(dir.join("proj-copy")).unwrap(),
        b"projected bytes"
    );
    // statfs: a FUSE filesystem, never NFS (cargo skips locking on NFS).
    let s = rustix::fs::statfs(&dir).unwrap();
    assert_ne!(s.f_type as i64, 0x6969, "NFS magic");
    assert!(s.f_blocks > 0);
    // readdir is stable while the directory changes: every entry present at the start and
    // not removed is seen exactly once.
    let big = dir.join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..3000 {
        std::fs::write(big.join(format!("e{i:04}")), b"").unwrap();
    }
    let fd = rustix::fs::open(
        &big,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let mut it = rustix::fs::Dir::read_from(&fd).unwrap();
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    let mut n = 0;
    while let Some(e) = it.read() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        *seen.entry(name).or_default() += 1;
        n += 1;
        if n == 100 {
            for i in 0..500 {
                std::fs::write(big.join(format!("new{i}")), b"").unwrap();
            }
            for i in 2500..3000 {
                std::fs::remove_file(big.join(format!("e{i:04}"))).unwrap();
            }
        }
    }
    for i in 0..2500 {
        assert_eq!(seen.get(&format!("e{i:04}")), Some(&1), "e{i:04}");
    }
    assert!(seen.values().all(|c| *c == 1), "no entry twice");
}

/// `zcfs unmount` removes any zcfs mount of the user, also one served by the daemon of
/// another cache dir (asked over its socket), and `zcfs status` lists it.
#[test]
fn unmount_and_status_reach_the_daemon_of_another_cache_dir() {
    let env = Env::new();
    let dir = target(&env);
    let _m = env.mount(&dir);
    project(&env, &dir, "p", b"projected", "644", Some(T));
    let other_cache = env.tmp.path().join("other-cache");
    let as_other = |args: &[&str]| {
        env.command(ZCFS)
            .args(args)
            .env("ZCFS_DIR", &other_cache)
            .output()
            .unwrap()
    };
    let out = as_other(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let all = v["all_mounts"].as_array().unwrap();
    let listed = all
        .iter()
        .find(|m| m["dir"] == dir.to_str().unwrap())
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(listed["ours"], false, "{v}");
    assert_eq!(listed["dead"], false, "{v}");
    let text = String::from_utf8_lossy(&as_other(&["status"]).stdout).into_owned();
    assert!(text.contains("served by another daemon"), "{text}");
    let out = as_other(&["unmount", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mounted(&dir));
    // Not busy: the directory can be removed, and the serving daemon forgot the mount.
    std::fs::remove_dir(&dir).unwrap();
    let s = env.zcfs(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(v["mounts"].as_array().map(|a| a.len()), Some(0), "{v}");
    // Mounting again brings the projection back from the journal.
    std::fs::create_dir_all(&dir).unwrap();
    let _m = env.mount(&dir);
    assert_eq!(std::fs::read(dir.join("p")).unwrap(), b"projected");
}

/// A mount unmounted from outside (`umount`) is forgotten by its daemon: `zcfs mount`
/// mounts again instead of saying it is already mounted.
#[test]
fn a_mount_removed_from_outside_is_mounted_again() {
    let env = Env::new();
    let dir = target(&env);
    let _m = env.mount(&dir);
    project(&env, &dir, "p", b"projected", "644", Some(T));
    assert!(Command::new("umount").arg(&dir).status().unwrap().success());
    assert!(!is_mounted(&dir));
    wait_until(10, "the daemon notices", || {
        let s = env.zcfs(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
        v["mounts"].as_array().is_some_and(|a| a.is_empty())
    });
    let out = env.zcfs(&["mount", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(&dir), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(std::fs::read(dir.join("p")).unwrap(), b"projected");
}

/// On a mount shared with other users (`--allow-other`), what another user creates is
/// theirs, as on ext4: they can chmod and truncate it, and a setgid directory gives its
/// group. Needs root (CI runs as root): the daemon gives the files away.
#[test]
fn another_users_files_are_their_own() {
    use std::os::unix::process::CommandExt;
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (a mount shared with another user)");
        return;
    }
    let env = Env::new();
    let dir = target(&env);
    std::fs::create_dir_all(&dir).unwrap();
    let out = env.zcfs(&["mount", "--allow-other", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _m = common::MountGuard {
        env: &env,
        dir: dir.clone(),
    };
    // The temp dir must be reachable for the other user.
    let mut p = dir.clone();
    while p.pop() {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode | 0o001)).unwrap();
        }
    }
    std::fs::create_dir(dir.join("shared")).unwrap();
    std::fs::set_permissions(dir.join("shared"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::create_dir(dir.join("group")).unwrap();
    std::os::unix::fs::chown(dir.join("group"), None, Some(100)).unwrap();
    std::fs::set_permissions(dir.join("group"), std::fs::Permissions::from_mode(0o2777)).unwrap();
    const NOBODY: u32 = 65534;
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "set -e; echo hi > shared/f; chmod 600 shared/f; truncate -s 1 shared/f; \
             mkdir shared/d; chmod 700 shared/d; ln -s f shared/l; echo g > group/g",
        )
        .current_dir(&dir)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let owner = |rel: &str| {
        let m = std::fs::symlink_metadata(dir.join(rel)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("shared/f"), (NOBODY, NOBODY));
    assert_eq!(owner("shared/d"), (NOBODY, NOBODY));
    assert_eq!(owner("shared/l"), (NOBODY, NOBODY));
    assert_eq!(
        owner("group/g"),
        (NOBODY, 100),
        "a setgid directory's group"
    );
    assert_eq!(std::fs::read(dir.join("shared/f")).unwrap(), b"h");
}
