#!/usr/bin/env python3
"""Benchmark: warm cargo builds of a real project (ripgrep 14.1.1), measured in one run on
this machine, medians of --runs, for:

  none        no cache
  zcfs-mount  `zcfs cargo build`: target/ on a zcfs mount, hits are projections
  zcfs        RUSTC_WRAPPER=zcfs without a mount: hits are restored as real files
  sccache     RUSTC_WRAPPER=sccache (local disk cache)
  zccache     RUSTC_WRAPPER=zccache
  floor       a static C wrapper that hard-links each unit's saved outputs (bench/floor.c):
              the least work any per-unit cache can do; the rest is cargo itself

Per tool: one cold build (empty cache and target; fills the cache); then --runs rounds in
which every tool in turn does a warm build (cache full, target removed) and the no-op build
right after it (interleaved, so that the machine's drift favours no tool). Measured:
wall time, hits/misses, bytes written to the block device during the warm build (sync
before and after; system-wide, so the daemons' writes count), real bytes in target after
a warm build (`du`, after `zcfs unmount` for the mount), and for zcfs its hit latency.

Usage: bench/rust_warm.py [--runs 3] [--release] [--tools none,zcfs-mount,...]
       [--baseline EXE --tools zcfs-mount,zcfs-mount-base,...]  (two versions, one run)
Needs: bench/setup-corpus.sh and bench/install-peers.sh (called if needed).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRUB = ["RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_TARGET_DIR", "RUSTFLAGS",
         "CARGO_INCREMENTAL", "CARGO_BUILD_RUSTC_WRAPPER", "CARGO_BUILD_BUILD_DIR"]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def which(name):
    return shutil.which(name)


def du(path):
    """Apparent bytes of the files under path (hard links counted once)."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out else 0


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def block_device(path):
    """The /sys/class/block entry of the filesystem holding path."""
    src = subprocess.run(["df", "--output=source", str(path)], capture_output=True,
                         text=True).stdout.split()[-1]
    name = Path(src).name
    return Path("/sys/class/block") / name


def sectors_written(dev):
    # Field 7 of the stat file: sectors written (512 bytes each).
    return int((dev / "stat").read_text().split()[6]) * 512


class Tool:
    name = "none"
    wrapper = None

    def __init__(self, work, project):
        self.work = work
        self.project = project

    def env(self):
        e = dict(os.environ)
        for k in SCRUB:
            e.pop(k, None)
        if self.wrapper:
            e["RUSTC_WRAPPER"] = self.wrapper
        return e

    def cargo_cmd(self):
        return ["cargo"]

    def build(self, profile_args):
        t = time.perf_counter()
        r = subprocess.run([*self.cargo_cmd(), "build", "--quiet", *profile_args],
                           cwd=self.project, env=self.env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        dt = time.perf_counter() - t
        if r.returncode != 0:
            sys.exit(f"{self.name}: cargo build failed:\n{r.stderr}")
        return dt

    def rm_target(self):
        shutil.rmtree(self.project / "target", ignore_errors=True)

    def real_target_bytes(self):
        return du(self.project / "target")

    def wipe(self):
        pass

    def stop(self):
        pass

    def zero(self):
        pass

    def hits(self):
        return None


class Zcfs(Tool):
    name = "zcfs"

    def __init__(self, work, project, exe, name=None):
        super().__init__(work, project)
        if name:
            self.name = name
        self.exe = exe
        self.wrapper = exe
        # Each zcfs variant has its own cache and daemon: their rounds are interleaved.
        self.cache = work / f"{self.name}-cache"
        self.run = work / f"{self.name}-run"

    def env(self):
        e = super().env()
        e["ZCFS_DIR"] = str(self.cache)
        e["ZCFS_RUNTIME_DIR"] = str(self.run)
        e["ZCFS_LOG"] = "info"
        return e

    def cli(self, *args):
        return subprocess.run([self.exe, *args], env=self.env(), capture_output=True,
                              text=True)

    def stop(self):
        self.cli("stop")

    def wipe(self):
        self.stop()
        shutil.rmtree(self.cache, ignore_errors=True)

    def zero(self):
        self.cli("stats", "--zero")

    def stats(self):
        return json.loads(self.cli("stats", "--json").stdout)

    def hits(self):
        s = self.stats()
        return s["hits"], s["misses"]


class ZcfsMount(Zcfs):
    name = "zcfs-mount"

    def env(self):
        e = super().env()
        e.pop("RUSTC_WRAPPER", None)
        return e

    def cargo_cmd(self):
        return [self.exe, "cargo"]

    def unmount(self):
        target = self.project / "target"
        if target.exists():
            self.cli("unmount", str(target))

    def rm_target(self):
        # What a user does: `zcfs cargo clean` unmounts and removes target/; the next
        # `zcfs cargo build` mounts again (its time is part of the warm build).
        self.unmount()
        super().rm_target()

    def real_target_bytes(self):
        self.unmount()
        return du(self.project / "target")


class Sccache(Tool):
    name = "sccache"

    def __init__(self, work, project):
        super().__init__(work, project)
        self.wrapper = which("sccache")
        self.cache = work / "sccache-cache"

    def env(self):
        e = super().env()
        e["SCCACHE_DIR"] = str(self.cache)
        e["SCCACHE_CACHE_SIZE"] = "20G"
        e["SCCACHE_IDLE_TIMEOUT"] = "0"
        return e

    def stop(self):
        subprocess.run([self.wrapper, "--stop-server"], env=self.env(), capture_output=True)

    def wipe(self):
        self.stop()
        shutil.rmtree(self.cache, ignore_errors=True)

    def zero(self):
        subprocess.run([self.wrapper, "--zero-stats"], env=self.env(), capture_output=True)

    def hits(self):
        out = subprocess.run([self.wrapper, "--show-stats", "--stats-format", "json"],
                             env=self.env(), capture_output=True, text=True).stdout
        try:
            s = json.loads(out)["stats"]
            return (sum(s["cache_hits"]["counts"].values()),
                    sum(s["cache_misses"]["counts"].values()))
        except Exception:
            return None


class Zccache(Tool):
    name = "zccache"

    def __init__(self, work, project):
        super().__init__(work, project)
        self.wrapper = which("zccache")
        self.cache = work / "zccache-cache"

    def env(self):
        e = super().env()
        e["ZCCACHE_CACHE_DIR"] = str(self.cache)
        return e

    def stop(self):
        subprocess.run([self.wrapper, "stop"], env=self.env(), capture_output=True)

    def wipe(self):
        self.stop()
        shutil.rmtree(self.cache, ignore_errors=True)

    def hits(self):
        out = subprocess.run([self.wrapper, "status", "--json"], env=self.env(),
                             capture_output=True, text=True).stdout
        try:
            d = json.loads(out)["daemon"]
            return d["cache_hits"], d["cache_misses"]
        except Exception:
            return None


class Floor(Tool):
    name = "floor"

    def __init__(self, work, project):
        super().__init__(work, project)
        self.wrapper = str(work / "floor")
        self.store = work / "floor-store"
        self.mode = "record"
        sh(["cc", "-O2", "-static", "-o", self.wrapper, str(ROOT / "bench/floor.c")])

    def env(self):
        e = super().env()
        e["FLOOR_MODE"] = self.mode
        e["FLOOR_DIR"] = str(self.store)
        return e

    def wipe(self):
        shutil.rmtree(self.store, ignore_errors=True)
        self.mode = "record"

    def build(self, profile_args):
        dt = super().build(profile_args)
        self.mode = "replay"
        return dt


# A RUSTC_WRAPPER that records each call (argv, cwd, env), then execs zcfs with it.
SPY = r'''#!/usr/bin/env python3
import json, os, sys
with open(os.environ["ZCFS_BENCH_SPY_LOG"], "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}) + "\n")
os.execv(@ZCFS@, [@ZCFS@] + sys.argv[1:])
'''


def hit_latency_from_outside(zcfs, profile_args, reps):
    """Records the compile invocations of one warm build (through the mount for
    zcfs-mount), then replays each one `reps` times through the zcfs wrapper process (all
    hits) and times the whole process."""
    spy = zcfs.work / "spy.py"
    spy.write_text(SPY.replace("@ZCFS@", repr(zcfs.exe)))
    spy.chmod(0o755)
    log = zcfs.work / "spy.jsonl"
    log.unlink(missing_ok=True)
    env = zcfs.env()
    env["RUSTC_WRAPPER"] = str(spy)
    env["ZCFS_BENCH_SPY_LOG"] = str(log)
    zcfs.rm_target()
    target = zcfs.project / "target"
    if isinstance(zcfs, ZcfsMount):
        target.mkdir()
        zcfs.cli("mount", str(target))
    sh(["cargo", "build", "--quiet", *profile_args], cwd=zcfs.project, env=env,
       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    calls = [c for c in calls if "--crate-name" in c["argv"] and "-" not in c["argv"]
             and not any(a.startswith("--print") for a in c["argv"])]
    base = []
    for _ in range(reps * 5):
        t = time.perf_counter()
        subprocess.run(["/bin/true"])
        base.append(time.perf_counter() - t)
    times = []
    for c in calls:
        argv = c["argv"]
        out_dir = Path(argv[argv.index("--out-dir") + 1])
        crate = argv[argv.index("--crate-name") + 1]
        extra = next((a.split("=", 1)[1] for a in argv if a.startswith("extra-filename=")), "")
        stem = crate + extra
        for _ in range(reps):
            # As in a warm build: the unit's outputs are not there yet.
            for f in out_dir.iterdir():
                if f.name.startswith(stem) or f.name.startswith("lib" + stem):
                    f.unlink()
            t = time.perf_counter()
            r = subprocess.run([zcfs.exe, *c["argv"]], cwd=c["cwd"], env=c["env"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - t)
            if r.returncode != 0:
                sys.exit(f"replay failed: {c['argv'][:6]}")
    times.sort()

    def pct(q):
        return times[min(len(times) - 1, int(q * len(times)))]

    return {"invocations": len(calls), "samples": len(times), "p50_ms": pct(0.5) * 1e3,
            "p99_ms": pct(0.99) * 1e3, "spawn_true_p50_ms": med(base) * 1e3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--release", action="store_true")
    ap.add_argument("--tools", default="none,zcfs-mount,zcfs,sccache,zccache,floor")
    ap.add_argument("--corpus", default="/var/tmp/zcfs-corpus")
    ap.add_argument("--latency-reps", type=int, default=5)
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--baseline", metavar="EXE",
                    help="also measure this zcfs executable (another version) as "
                         "zcfs-mount-base, in the same rounds: an A/B of two versions")
    ap.add_argument("--dynamic", action="store_true",
                    help="measure a dynamically linked zcfs (default: static, as installed)")
    args = ap.parse_args()
    profile_args = ["--release"] if args.release else []

    project = Path(subprocess.run([str(ROOT / "bench/setup-corpus.sh"), args.corpus],
                                  check=True, capture_output=True, text=True).stdout.split()[-1])
    if args.dynamic:
        sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
        exe = str(ROOT / "target/release/zcfs")
    else:
        # As scripts/install.sh builds it: statically linked.
        host = next(line.split()[1] for line in subprocess.run(
            ["rustc", "-vV"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("host:"))
        env = dict(os.environ)
        env["RUSTFLAGS"] = (env.get("RUSTFLAGS", "") + " -C target-feature=+crt-static").strip()
        sh(["cargo", "build", "--release", "--quiet", "--target", host], cwd=ROOT, env=env)
        exe = str(ROOT / "target" / host / "release/zcfs")
    work = Path(tempfile.mkdtemp(prefix="zcfs-bench-", dir=project.parent))
    dev = block_device(project)

    tools = []
    for name in args.tools.split(","):
        if name == "none":
            tools.append(Tool(work, project))
        elif name == "zcfs-mount":
            tools.append(ZcfsMount(work, project, exe))
        elif name == "zcfs":
            tools.append(Zcfs(work, project, exe))
        elif name in ("sccache", "zccache"):
            if not which(name):
                sh([str(ROOT / "bench/install-peers.sh"), name])
            tools.append(Sccache(work, project) if name == "sccache" else Zccache(work, project))
        elif name == "floor":
            tools.append(Floor(work, project))
        elif name == "zcfs-mount-base":
            if not args.baseline:
                sys.exit("zcfs-mount-base needs --baseline EXE")
            tools.append(ZcfsMount(work, project, args.baseline, name="zcfs-mount-base"))
        else:
            sys.exit(f"unknown tool {name}")

    results = {t.name: {"warm": [], "noop": [], "written": [], "warm_hits": None}
               for t in tools}
    # Cold builds fill each cache (and the floor's store).
    for tool in tools:
        r = results[tool.name]
        tool.wipe()
        tool.rm_target()
        r["cold"] = tool.build(profile_args)
        r["target_bytes_cold"] = du(project / "target")
        print(f"== {tool.name}: cold {r['cold']:.2f} s", flush=True)
        tool.rm_target()
        tool.zero()
    # Warm and no-op builds, the tools interleaved in every round, so that the machine's
    # drift (page cache, ext4's state after mass deletions, writeback) favours none of them.
    for i in range(args.runs):
        for tool in tools:
            r = results[tool.name]
            tool.rm_target()
            before = tool.hits()
            sh(["sync"])
            w0 = sectors_written(dev)
            r["warm"].append(tool.build(profile_args))
            sh(["sync"])
            r["written"].append(sectors_written(dev) - w0)
            after = tool.hits()
            r["warm_hits"] = (None if before is None or after is None
                              else (after[0] - before[0], after[1] - before[1]))
            r["noop"].append(tool.build(profile_args))
            print(f"  round {i + 1} {tool.name:<11} warm {r['warm'][-1]:.3f} s  "
                  f"hits/misses {r['warm_hits']}  written {r['written'][-1] / 1e6:.1f} MB  "
                  f"no-op {r['noop'][-1]:.3f} s", flush=True)
            if i == args.runs - 1:
                if isinstance(tool, Zcfs):
                    s = tool.stats()
                    r["zcfs_stats"] = {k: s[k] for k in [
                        "hit_latency", "hit_service", "hit_phases", "hits_projected",
                        "hits_restored", "bytes_projected", "bytes_restored"]}
                r["target_bytes_warm"] = tool.real_target_bytes()
            tool.rm_target()
    for tool in tools:
        if isinstance(tool, Zcfs):
            results[tool.name]["zcfs_outside"] = hit_latency_from_outside(
                tool, profile_args, args.latency_reps)
            tool.rm_target()
        tool.stop()

    shutil.rmtree(work, ignore_errors=True)

    profile = "release" if args.release else "debug"
    plain = results.get("none", {}).get("target_bytes_cold")
    print()
    print(f"ripgrep 14.1.1, {profile}, medians of {args.runs} warm runs, {os.cpu_count()} cores")
    print(f"{'tool':<12}{'cold s':>8}{'warm s':>8}{'no-op s':>9}{'written MB':>12}"
          f"{'target MB':>11}  warm hits/misses")
    for name, r in results.items():
        print(f"{name:<12}{r['cold']:>8.2f}{med(r['warm']):>8.3f}{med(r['noop']):>9.3f}"
              f"{med(r['written']) / 1e6:>12.1f}{r['target_bytes_warm'] / 1e6:>11.1f}"
              f"  {r['warm_hits']}")
    for z in ["zcfs-mount", "zcfs-mount-base", "zcfs"]:
        if z not in results:
            continue
        zr = results[z]
        print()
        for other in ["none", "sccache", "zccache", "floor", "zcfs-mount-base", "zcfs"]:
            if other in results and other != z:
                o = results[other]
                print(f"{z}/{other:<9} warm {med(zr['warm']) / med(o['warm']):.3f}x   "
                      f"no-op {med(zr['noop']) / med(o['noop']):.2f}x")
        if plain:
            print(f"{z}: real bytes in target {100 * zr['target_bytes_warm'] / plain:.1f}% "
                  f"of a plain build's target; written during warm "
                  f"{100 * med(zr['written']) / plain:.1f}% of it")
        s, out = zr["zcfs_stats"], zr["zcfs_outside"]
        hl, hs = s["hit_latency"], s["hit_service"]
        print(f"{z} hit latency (stats, wrapper main->reply): p50 {hl['p50_us'] / 1e3:.2f} ms"
              f"  p99 {hl['p99_us'] / 1e3:.2f} ms")
        print(f"{z} hit service time in the daemon: p50 {hs['p50_us'] / 1e3:.2f} ms"
              f"  p99 {hs['p99_us'] / 1e3:.2f} ms; phases (p50): " + ", ".join(
                  f"{k} {v['p50_us'] / 1e3:.2f} ms" for k, v in s["hit_phases"].items()))
        print(f"{z} hit, whole wrapper process, {out['samples']} replays of "
              f"{out['invocations']} units: p50 {out['p50_ms']:.2f} ms  p99 {out['p99_ms']:.2f} ms"
              f"  (spawning /bin/true: {out['spawn_true_p50_ms']:.2f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
