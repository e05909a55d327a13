#!/usr/bin/env python3
"""Benchmark: the remote tier (issue 11). ripgrep 14.1.1, debug, target emptied before each
build, one S3 store on loopback (SeaweedFS `weed mini`, installed by
scripts/install-servers.sh), medians of --runs, all in one run:

  none           no cache (every unit compiled)
  zcfs-local     RUSTC_WRAPPER=zcfs, local cache full (the daemon running)
  zcfs-restart   the same, the daemon stopped first (it hashes the toolchain again, as a
                 fresh machine's does: the part of zcfs-remote's time that is not the store)
  zcfs-remote    RUSTC_WRAPPER=zcfs, local cache EMPTY (a fresh cache dir and daemon each
                 round: a new CI runner), the S3 store full
  sccache-remote RUSTC_WRAPPER=sccache with the same S3 store (SCCACHE_BUCKET/ENDPOINT),
                 its server restarted each round
Then, with the store stopped (the port closed):
  zcfs-dead      local cache empty, remote configured but down: a cold build
  zcfs-cold      local cache empty, no remote: a cold build

Prints the times, hits, and the ratios the issue sets targets for: zcfs-remote /
zcfs-local (<= 2), zcfs-remote / sccache-remote (<= 0.2), zcfs-dead / zcfs-cold (<= 1.1).

Usage: bench/remote.py [--runs 3] [--corpus DIR]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rust_warm  # noqa: E402  (shared helpers: Tool, Zcfs, Sccache, med, sh)

ROOT = rust_warm.ROOT
S3_PORT = 8333
S3_URL = f"s3://zcfs/bench?endpoint=http://127.0.0.1:{S3_PORT}&region=us-east-1"
KEYS = {"AWS_ACCESS_KEY_ID": "benchkey", "AWS_SECRET_ACCESS_KEY": "benchsecret"}
IDENTITIES = {"identities": [{"name": "bench", "credentials": [
    {"accessKey": KEYS["AWS_ACCESS_KEY_ID"], "secretKey": KEYS["AWS_SECRET_ACCESS_KEY"]}],
    "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}


class Weed:
    """SeaweedFS's all-in-one server with bucket `zcfs`."""

    def __init__(self, work):
        self.dir = work / "weed"
        self.dir.mkdir()
        (self.dir / "s3.json").write_text(json.dumps(IDENTITIES))
        weed = shutil.which("weed") or sys.exit("weed not found: run scripts/install-servers.sh")
        env = dict(os.environ, TMPDIR=str(self.dir), **KEYS)
        self.proc = subprocess.Popen(
            [weed, "mini", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             "-bucket=zcfs", "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
             "-s3.port.iceberg=0", f"-s3.config={self.dir / 's3.json'}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", S3_PORT), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("weed mini did not start")
        time.sleep(2)  # the bucket and the identities load after the port opens

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class ZcfsRemote(rust_warm.Zcfs):
    """zcfs with the store; `fresh()` gives it an empty local cache (a new machine)."""
    name = "zcfs-remote"
    url = S3_URL

    def env(self):
        e = super().env()
        e.update(KEYS)
        e["ZCFS_REMOTE"] = self.url
        return e

    def fresh(self):
        self.wipe()
        shutil.rmtree(self.run, ignore_errors=True)

    def remote_hits(self):
        r = self.stats().get("remote", {})
        return r.get("hits", 0), r.get("packs_downloaded", 0), r.get("bytes_down", 0)


class SccacheRemote(rust_warm.Sccache):
    name = "sccache-remote"

    def env(self):
        e = super().env()
        e.update(KEYS)
        e.update({"SCCACHE_BUCKET": "zcfs", "SCCACHE_ENDPOINT": f"http://127.0.0.1:{S3_PORT}",
                  "SCCACHE_REGION": "us-east-1", "SCCACHE_S3_USE_SSL": "false",
                  "SCCACHE_S3_KEY_PREFIX": "sccache", "SCCACHE_S3_NO_CREDENTIALS": "false"})
        return e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--corpus", default="/var/tmp/zcfs-corpus")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()

    project = Path(subprocess.run([str(ROOT / "bench/setup-corpus.sh"), args.corpus],
                                  check=True, capture_output=True, text=True).stdout.split()[-1])
    rust_warm.sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    exe = str(ROOT / "target/release/zcfs")
    work = Path(tempfile.mkdtemp(prefix="zcfs-bench-remote-", dir=project.parent))
    weed = Weed(work)

    none = rust_warm.Tool(work, project)
    local = rust_warm.Zcfs(work, project, exe)
    local.name = "zcfs-local"
    local.cache, local.run = work / "local-cache", work / "local-run"
    seed = ZcfsRemote(work, project, exe)
    seed.cache, seed.run = work / "seed-cache", work / "seed-run"
    remote = ZcfsRemote(work, project, exe)
    sccache = SccacheRemote(work, project)
    sccache.wrapper = sccache.wrapper or sys.exit("sccache not found: bench/install-peers.sh")

    print("filling: zcfs local cache, the store from a zcfs machine, sccache's S3 cache",
          flush=True)
    for t in (local, seed):
        t.wipe()
        t.rm_target()
        t.build([])
    r = seed.cli("remote", "flush", "--timeout", "600")
    if r.returncode != 0:
        sys.exit(f"zcfs remote flush failed: {r.stdout}{r.stderr}")
    seed.stop()
    sccache.stop()
    sccache.rm_target()
    sccache.build([])
    sccache.stop()

    times = {k: [] for k in ["none", "zcfs-local", "zcfs-restart", "zcfs-remote",
                             "sccache-remote"]}
    hits = {}
    for i in range(args.runs):
        for name, tool in [("zcfs-local", local), ("zcfs-restart", local),
                           ("zcfs-remote", remote), ("sccache-remote", sccache),
                           ("none", none)]:
            if name == "zcfs-restart":
                tool.stop()
            if name == "zcfs-remote":
                tool.fresh()
            if name == "sccache-remote":
                tool.stop()
                tool.zero()
            tool.rm_target()
            if hasattr(tool, "zero") and name.startswith("zcfs"):
                tool.zero()
            dt = tool.build([])
            times[name].append(dt)
            h = tool.hits()
            if name == "zcfs-remote":
                h = (h, tool.remote_hits())
            hits[name] = h
            print(f"round {i + 1}: {name:15} {dt:7.2f} s  hits/misses {h}", flush=True)

    weed.stop()
    dead = ZcfsRemote(work, project, exe)
    dead.name = "zcfs-dead"
    dead.cache, dead.run = work / "dead-cache", work / "dead-run"
    cold = rust_warm.Zcfs(work, project, exe)
    cold.name = "zcfs-cold"
    cold.cache, cold.run = work / "cold-cache", work / "cold-run"
    for k in ("zcfs-dead", "zcfs-cold"):
        times[k] = []
    dead_stats = None
    for i in range(args.runs):
        for tool in (dead, cold):
            tool.wipe()
            shutil.rmtree(tool.run, ignore_errors=True)
            tool.rm_target()
            dt = tool.build([])
            times[tool.name].append(dt)
            if tool is dead:
                dead_stats = tool.stats().get("remote", {}).get("errors")
            print(f"round {i + 1}: {tool.name:15} {dt:7.2f} s", flush=True)
    for t in (local, remote, dead, cold, sccache):
        t.stop()

    m = {k: rust_warm.med(v) for k, v in times.items()}
    print("\nmedians (s):")
    for k, v in m.items():
        print(f"  {k:15} {v:7.3f}   runs {', '.join(f'{x:.2f}' for x in times[k])}")
    print(f"  zcfs-remote hits: {hits.get('zcfs-remote')}; sccache-remote: "
          f"{hits.get('sccache-remote')}; dead remote errors: {dead_stats}")
    ratios = {
        "remote/local (target <= 2)": m["zcfs-remote"] / m["zcfs-local"],
        "remote/local-restarted": m["zcfs-remote"] / m["zcfs-restart"],
        "remote/sccache-remote (target <= 0.2)": m["zcfs-remote"] / m["sccache-remote"],
        "dead/cold (target <= 1.1)": m["zcfs-dead"] / m["zcfs-cold"],
        "remote/none": m["zcfs-remote"] / m["none"],
        "sccache-remote/none": m["sccache-remote"] / m["none"],
    }
    print("ratios:")
    for k, v in ratios.items():
        print(f"  {k:40} {v:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"times": times, "medians": m,
                                               "ratios": ratios, "hits": hits}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
