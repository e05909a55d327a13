//! `zcfs run [--mount DIR] -- COMMAND...`: `zcfs cargo` for everything else. Runs COMMAND
//! (make, ninja, cmake --build, a script) with its C and C++ compiles routed through zcfs
//! (see [`super::route`]); with `--mount DIR`, DIR (a build dir) is mounted first so that
//! hits there are projections. The mount stays for the next build; `zcfs unmount DIR`
//! removes it. If the mount cannot be set up, the command still runs (hits are then
//! restored as real files) and the reason is printed.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::paths::Paths;

pub fn run(mount: Option<PathBuf>, args: Vec<OsString>) -> Result<i32> {
    let Some((program, rest)) = args.split_first() else {
        bail!("usage: zcfs run [--mount DIR] -- COMMAND [ARGS...]");
    };
    let config = Config::load()?;
    let mut cmd = Command::new(program);
    cmd.args(rest);
    if config.disable {
        return Err(super::cargo::exec(&mut cmd));
    }
    let paths = Paths::new(&config);
    let exe = std::env::current_exe().context("cannot find the zcfs binary")?;
    if let Some(dir) = &mount {
        let dir = if dir.is_absolute() {
            dir.clone()
        } else {
            std::env::current_dir()?.join(dir)
        };
        if let Err(e) = super::cargo::ensure_mounted(&config, &paths, &dir) {
            eprintln!(
                "zcfs: cannot mount {} ({e:#}); building without a mount",
                dir.display()
            );
        }
    }
    super::route::apply(&mut cmd, &paths, &exe)?;
    Err(super::cargo::exec(&mut cmd))
}
