//! C and C++ through zcfs: a hit is exactly the compile the compiler would have made, and a
//! compile that works plainly works under zcfs (issue 19, docs/c.md "What is keyed, and the
//! limits"). Each scenario stores an entry, changes one thing the key or the entry must
//! model, then compiles through zcfs and plainly: exit code, stdout, stderr, and every
//! output's bytes and permission bits must agree. Each runs with gcc and clang where both
//! have the behaviour; the Emscripten cases are in `tests/emcc.rs`.
//!
//! `ZCFS_TEST_BIN` runs the scenarios against another zcfs binary (to show which ones an
//! older version fails).

#[path = "../common/mod.rs"]
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

mod both_compilers;
mod one_compiler;
mod watcher;
