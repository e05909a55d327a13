#!/usr/bin/env python3
"""Benchmark: snapshots of cargo's unit records (docs/snapshot.md), measured in one run.

For each project (ripgrep 14.1.1 from bench/setup-corpus.sh; `ccrs`, a crate whose build
script compiles libgit2's ~100 C files with cc-rs), after one cold `zcfs cargo build` that
fills the cache and records the snapshot, --runs rounds of:

  warm       `zcfs cargo clean`, then `zcfs cargo build` (snapshot on, the default)
  no-op      `zcfs cargo build` right after: cargo's own bookkeeping, the reference
  warm-nosnap  the same warm build with `--no-snapshot` (every unit through the wrapper:
             what zcfs did before snapshots), and its no-op (what recording costs a no-op)
  checkout   a fresh checkout at the same path (the sources copied anew: new mtimes and
             inodes) with the target removed, as a CI job gets it; snapshot on

and once, the project copied to another path (another build dir: no snapshot applies).
Printed: medians, ratios against the no-op, compiles that reached the wrapper (hits +
misses: rustc and C) and units projected.

Usage: bench/cargo_snapshot.py [--runs 3] [--projects ripgrep,ccrs] [--release]
Needs: bench/setup-corpus.sh (ripgrep) and network access to crates.io for ccrs's first
fetch; zcfs built here (target/release/zcfs, built if missing).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRUB = ["RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_TARGET_DIR", "RUSTFLAGS",
         "CARGO_INCREMENTAL", "CARGO_BUILD_RUSTC_WRAPPER", "CARGO_BUILD_BUILD_DIR",
         "ZCFS_SNAPSHOT", "ZCFS_DISABLE"]

CCRS_TOML = """[package]
name = "ccrs-bench"
version = "0.1.0"
edition = "2021"

[dependencies]
libgit2-sys = { version = "=0.18.8", default-features = false }
"""
CCRS_MAIN = 'fn main() { println!("{}", unsafe { libgit2_sys::git_libgit2_init() }); }\n'


def med(xs):
    return statistics.median(xs) if xs else float("nan")


class Zcfs:
    def __init__(self, exe, work):
        self.exe = exe
        self.cache = work / "cache"
        self.run = work / "run"
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUB}
        self.env.update(ZCFS_DIR=str(self.cache), ZCFS_RUNTIME_DIR=str(self.run),
                        ZCFS_LOG="info", CARGO_TERM_PROGRESS_WHEN="never")

    def cli(self, *args, cwd=None):
        return subprocess.run([self.exe, *args], env=self.env, cwd=cwd, check=True,
                              capture_output=True, text=True).stdout

    def stats(self):
        import json
        return json.loads(self.cli("stats", "--json"))

    def counts(self):
        s = self.stats()
        compiles = sum(lang.get("hits", 0) + lang.get("misses", 0)
                       for lang in s["languages"].values())
        return compiles, s["snapshot"]["projected"]

    def cargo(self, project, args, profile_args):
        """Runs `zcfs cargo ARGS`; returns (seconds, compiles through the wrapper, units
        projected)."""
        c0, p0 = self.counts()
        t = time.monotonic()
        subprocess.run([self.exe, "cargo", *args, *profile_args], env=self.env, cwd=project,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = time.monotonic() - t
        c1, p1 = self.counts()
        return dt, c1 - c0, p1 - p0

    def clean(self, project):
        subprocess.run([self.exe, "cargo", "clean"], env=self.env, cwd=project, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        subprocess.run([self.exe, "stop"], env=self.env, capture_output=True)


def fresh_copy(src, dst):
    """A fresh checkout: every file written anew (no times kept), no target."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, copy_function=shutil.copy,
                    ignore=shutil.ignore_patterns("target"))


def ccrs_source(work):
    src = work / "ccrs-src"
    (src / "src").mkdir(parents=True, exist_ok=True)
    (src / "Cargo.toml").write_text(CCRS_TOML)
    (src / "src/main.rs").write_text(CCRS_MAIN)
    subprocess.run(["cargo", "generate-lockfile", "--quiet"], cwd=src, check=True)
    subprocess.run(["cargo", "fetch", "--quiet"], cwd=src, check=True)
    return src


def bench_project(z, name, pristine, work, runs, profile_args):
    project = work / name
    fresh_copy(pristine, project)
    r = {k: [] for k in ["warm", "noop", "nosnap", "noop_nosnap", "checkout"]}
    calls = {}
    cold, _, _ = z.cargo(project, ["build"], profile_args)
    z.cargo(project, ["build"], profile_args)
    print(f"== {name}: cold {cold:.2f} s", flush=True)
    for i in range(runs):
        z.clean(project)
        t, c, p = z.cargo(project, ["build"], profile_args)
        r["warm"].append(t)
        calls["warm"] = (c, p)
        t, c, p = z.cargo(project, ["build"], profile_args)
        r["noop"].append(t)
        calls["noop"] = (c, p)
        z.clean(project)
        t, c, p = z.cargo(project, ["--no-snapshot", "build"], profile_args)
        r["nosnap"].append(t)
        calls["nosnap"] = (c, p)
        t, c, p = z.cargo(project, ["--no-snapshot", "build"], profile_args)
        r["noop_nosnap"].append(t)
        calls["noop_nosnap"] = (c, p)
        z.clean(project)
        fresh_copy(pristine, project)
        t, c, p = z.cargo(project, ["build"], profile_args)
        r["checkout"].append(t)
        calls["checkout"] = (c, p)
        print(f"  round {i + 1}: warm {r['warm'][-1]:.3f} s  no-op {r['noop'][-1]:.3f} s  "
              f"no-snapshot {r['nosnap'][-1]:.3f} s  checkout {r['checkout'][-1]:.3f} s",
              flush=True)
    z.clean(project)
    elsewhere = work / "elsewhere" / name
    elsewhere.parent.mkdir(exist_ok=True)
    fresh_copy(pristine, elsewhere)
    t, c, p = z.cargo(elsewhere, ["build"], profile_args)
    r["elsewhere"] = [t]
    calls["elsewhere"] = (c, p)
    z.clean(elsewhere)
    return r, calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--projects", default="ripgrep,ccrs")
    ap.add_argument("--release", action="store_true")
    ap.add_argument("--corpus", default="/var/tmp/zcfs-corpus")
    args = ap.parse_args()
    profile_args = ["--release"] if args.release else []
    exe = ROOT / "target/release/zcfs"
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="zcfs-snapbench-", dir="/var/tmp"))
    z = Zcfs(str(exe), work)
    results = {}
    try:
        for name in args.projects.split(","):
            if name == "ripgrep":
                out = subprocess.run([str(ROOT / "bench/setup-corpus.sh"), args.corpus],
                                     check=True, capture_output=True, text=True).stdout
                pristine = Path(out.split()[-1])
            elif name == "ccrs":
                pristine = ccrs_source(work)
            else:
                raise SystemExit(f"unknown project {name}")
            results[name] = bench_project(z, name, pristine, work, args.runs, profile_args)
    finally:
        z.stop()
        shutil.rmtree(work, ignore_errors=True)

    profile = "release" if args.release else "debug"
    print()
    print(f"{profile}, medians of {args.runs} rounds, {os.cpu_count()} cores; "
          f"compiles = hits + misses through the wrapper (rustc and C)")
    for name, (r, calls) in results.items():
        noop = med(r["noop"])
        print(f"\n{name}: no-op {noop:.3f} s (with --no-snapshot {med(r['noop_nosnap']):.3f} s: "
              f"the snapshot's check after a no-op costs the difference)")
        print(f"  {'build':<12}{'s':>8}{'/ no-op':>9}{'compiles':>10}{'projected':>11}")
        for k, label in [("warm", "warm"), ("nosnap", "no-snapshot"),
                         ("checkout", "checkout"), ("elsewhere", "other path")]:
            c, p = calls[k]
            print(f"  {label:<12}{med(r[k]):>8.3f}{med(r[k]) / noop:>8.2f}x{c:>10}{p:>11}")


if __name__ == "__main__":
    main()
