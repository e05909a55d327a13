#!/usr/bin/env python3
"""Benchmark: cargo builds of a real project (ripgrep 14.1.1) with no cache, zcfs, sccache
and zccache, measured in one run on this machine, medians of --runs.

For each tool:
  cold  : empty cache, empty target dir            -> `cargo build`
  warm  : cache full (from the cold runs), target removed -> `cargo build`
  no-op : right after a warm build                 -> `cargo build`
plus zcfs's hit latency, as zcfs stats reports it (wrapper main -> reply) and measured from
outside, spawning the wrapper process for recorded hit invocations.

Usage: bench/rust_warm.py [--runs 3] [--release] [--tools none,zcfs,sccache,zccache]
Needs: bench/setup-corpus.sh and bench/install-peers.sh (run first, or let this call them).
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


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def which(name):
    return shutil.which(name)


class Tool:
    name = "none"
    wrapper = None

    def __init__(self, work):
        self.work = work

    def env(self):
        e = dict(os.environ)
        for k in ["RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_TARGET_DIR",
                  "RUSTFLAGS", "CARGO_INCREMENTAL", "CARGO_BUILD_RUSTC_WRAPPER"]:
            e.pop(k, None)
        if self.wrapper:
            e["RUSTC_WRAPPER"] = self.wrapper
        return e

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

    def __init__(self, work, exe):
        super().__init__(work)
        self.wrapper = exe
        self.cache = work / "zcfs-cache"
        self.run = work / "zcfs-run"

    def env(self):
        e = super().env()
        e["ZCFS_DIR"] = str(self.cache)
        e["ZCFS_RUNTIME_DIR"] = str(self.run)
        return e

    def cli(self, *args):
        return subprocess.run([self.wrapper, *args], env=self.env(),
                              capture_output=True, text=True)

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


class Sccache(Tool):
    name = "sccache"

    def __init__(self, work):
        super().__init__(work)
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
            h = sum(s["cache_hits"]["counts"].values())
            m = sum(s["cache_misses"]["counts"].values())
            return h, m
        except Exception:
            return None


class Zccache(Tool):
    name = "zccache"

    def __init__(self, work):
        super().__init__(work)
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


def cargo_build(project, env, profile_args):
    t = time.perf_counter()
    r = subprocess.run(["cargo", "build", "--quiet", *profile_args], cwd=project, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"cargo build failed:\n{r.stderr}")
    return dt


def rm_target(project):
    shutil.rmtree(project / "target", ignore_errors=True)


def du(path):
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out else 0


def med(xs):
    return statistics.median(xs) if xs else float("nan")


# A RUSTC_WRAPPER that records each call (argv, cwd, env), then execs zcfs with it.
SPY = r'''#!/usr/bin/env python3
import json, os, sys
with open(os.environ["ZCFS_BENCH_SPY_LOG"], "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}) + "\n")
os.execv(@ZCFS@, [@ZCFS@] + sys.argv[1:])
'''


def hit_latency_from_outside(zcfs, project, profile_args, work, reps):
    """Records the compile invocations of one warm build, then replays each one `reps`
    times through the zcfs wrapper process (all hits) and times the whole process."""
    spy = work / "spy.py"
    spy.write_text(SPY.replace("@ZCFS@", repr(zcfs.wrapper)))
    spy.chmod(0o755)
    log = work / "spy.jsonl"
    log.unlink(missing_ok=True)
    env = zcfs.env()
    env["RUSTC_WRAPPER"] = str(spy)
    env["ZCFS_BENCH_SPY_LOG"] = str(log)
    rm_target(project)
    cargo_build(project, env, profile_args)
    calls = [json.loads(l) for l in log.read_text().splitlines()]
    calls = [c for c in calls if "--crate-name" in c["argv"] and "-" not in c["argv"]
             and not any(a.startswith("--print") for a in c["argv"])]
    # Baseline: spawning a trivial process the same way.
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
            r = subprocess.run([zcfs.wrapper, *c["argv"]], cwd=c["cwd"], env=c["env"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - t)
            if r.returncode != 0:
                sys.exit(f"replay failed: {c['argv'][:6]}")
    times.sort()
    pct = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    return {
        "invocations": len(calls),
        "samples": len(times),
        "p50_ms": pct(0.5) * 1e3,
        "p99_ms": pct(0.99) * 1e3,
        "spawn_true_p50_ms": med(base) * 1e3,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--release", action="store_true")
    ap.add_argument("--tools", default="none,zcfs,sccache,zccache")
    ap.add_argument("--corpus", default="/var/tmp/zcfs-corpus")
    ap.add_argument("--latency-reps", type=int, default=10)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    profile_args = ["--release"] if args.release else []

    project = Path(subprocess.run([str(ROOT / "bench/setup-corpus.sh"), args.corpus],
                                  check=True, capture_output=True, text=True).stdout.split()[-1])
    sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    zcfs_exe = str(ROOT / "target/release/zcfs")
    work = Path(tempfile.mkdtemp(prefix="zcfs-bench-"))

    tools = []
    for name in args.tools.split(","):
        if name == "none":
            tools.append(Tool(work))
        elif name == "zcfs":
            tools.append(Zcfs(work, zcfs_exe))
        elif name == "sccache":
            if not which("sccache"):
                sh([str(ROOT / "bench/install-peers.sh"), "sccache"])
            tools.append(Sccache(work))
        elif name == "zccache":
            if not which("zccache"):
                sh([str(ROOT / "bench/install-peers.sh"), "zccache"])
            tools.append(Zccache(work))
        else:
            sys.exit(f"unknown tool {name}")

    results = {}
    for tool in tools:
        env = tool.env()
        r = {"cold": [], "warm": [], "noop": [], "warm_hits": None}
        print(f"== {tool.name}", flush=True)
        for i in range(args.runs):
            tool.wipe()
            rm_target(project)
            r["cold"].append(cargo_build(project, env, profile_args))
            print(f"  cold {i + 1}: {r['cold'][-1]:.2f} s", flush=True)
        r["target_bytes_cold"] = du(project / "target")
        for i in range(args.runs):
            rm_target(project)
            tool.zero()
            before = tool.hits()
            r["warm"].append(cargo_build(project, env, profile_args))
            after = tool.hits()
            r["warm_hits"] = (None if before is None or after is None
                              else (after[0] - before[0], after[1] - before[1]))
            print(f"  warm {i + 1}: {r['warm'][-1]:.2f} s  hits/misses {r['warm_hits']}",
                  flush=True)
            r["noop"].append(cargo_build(project, env, profile_args))
        r["target_bytes_warm"] = du(project / "target")
        if isinstance(tool, Zcfs):
            s = tool.stats()
            r["zcfs_hit_latency"] = s["hit_latency"]
            r["zcfs_hit_service"] = s["hit_service"]
            r["zcfs_hit_phases"] = s["hit_phases"]
            r["zcfs_outside"] = hit_latency_from_outside(tool, project, profile_args, work,
                                                         args.latency_reps)
        tool.stop()
        results[tool.name] = r

    shutil.rmtree(work, ignore_errors=True)
    rm_target(project)

    profile = "release" if args.release else "debug"
    print()
    print(f"ripgrep 14.1.1, {profile}, medians of {args.runs} runs, {os.cpu_count()} cores")
    print(f"{'tool':<10}{'cold s':>9}{'warm s':>9}{'no-op s':>9}  warm hits/misses")
    for name, r in results.items():
        print(f"{name:<10}{med(r['cold']):>9.2f}{med(r['warm']):>9.2f}{med(r['noop']):>9.3f}"
              f"  {r['warm_hits']}")
    if "zcfs" in results:
        z = results["zcfs"]
        print()
        for other in ["none", "sccache", "zccache"]:
            if other in results:
                o = results[other]
                print(f"zcfs/{other:<8} cold {med(z['cold']) / med(o['cold']):.2f}x   "
                      f"warm {med(z['warm']) / med(o['warm']):.3f}x")
        hl, hs, out = z["zcfs_hit_latency"], z["zcfs_hit_service"], z["zcfs_outside"]
        print(f"zcfs hit latency (stats, wrapper main->reply): p50 {hl['p50_us'] / 1e3:.2f} ms"
              f"  p99 {hl['p99_us'] / 1e3:.2f} ms")
        print(f"zcfs hit service time in the daemon:          p50 {hs['p50_us'] / 1e3:.2f} ms"
              f"  p99 {hs['p99_us'] / 1e3:.2f} ms")
        ph = z["zcfs_hit_phases"]
        print("  of which (p50): " + ", ".join(
            f"{k} {v['p50_us'] / 1e3:.2f} ms" for k, v in ph.items()))
        print(f"zcfs hit, whole wrapper process, {out['samples']} replays of "
              f"{out['invocations']} units: p50 {out['p50_ms']:.2f} ms  p99 {out['p99_ms']:.2f} ms"
              f"  (spawning /bin/true the same way: {out['spawn_true_p50_ms']:.2f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
