#!/usr/bin/env python3
"""Benchmark of the mount itself (no compiler cache): medians of --runs.

  cargo   : cold `cargo build` of ripgrep 14.1.1 with its target dir on a zcfs mount vs on a
            plain directory; then the no-op build.
  reads   : a 256 MiB file projected from a pack vs the same file on ext4, read sequentially
            (1 MiB reads) and randomly (4 KiB reads), page cache cold (dropped) and warm.
  metadata: stat and readdir of 10,000 real files in one directory, mount vs ext4.

Needs root (FUSE mount, drop_caches). Usage: bench/mount.py [--runs 3] [--skip-cargo]
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def med(xs):
    return statistics.median(xs)


def drop_caches():
    subprocess.run(["sync"])
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


class Zcfs:
    def __init__(self, exe, work):
        self.exe = exe
        self.env = dict(os.environ, ZCFS_DIR=str(work / "cache"), ZCFS_RUNTIME_DIR=str(work / "run"))

    def run(self, *args, check=True):
        r = subprocess.run([self.exe, *args], env=self.env, capture_output=True, text=True)
        if check and r.returncode != 0:
            sys.exit(f"zcfs {' '.join(args)} failed: {r.stderr}")
        return r

    def mount(self, d):
        self.run("mount", str(d))

    def unmount(self, d):
        self.run("unmount", "--force", str(d), check=False)


def cargo(project, target, args=()):
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    for k in ["RUSTC_WRAPPER", "RUSTFLAGS", "CARGO_INCREMENTAL"]:
        env.pop(k, None)
    t = time.perf_counter()
    r = subprocess.run(["cargo", "build", "--quiet", *args], cwd=project, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"cargo failed: {r.stderr}")
    return time.perf_counter() - t


def clear_dir(d):
    for e in os.scandir(d):
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(e.path)
        else:
            os.unlink(e.path)


def read_seq(path):
    t = time.perf_counter()
    n = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(MiB)
            if not b:
                break
            n += len(b)
    return n / MiB / (time.perf_counter() - t)


def read_random(path, count, seed):
    size = os.path.getsize(path)
    rng = random.Random(seed)
    offsets = [rng.randrange(0, size - 4096) & ~4095 for _ in range(count)]
    fd = os.open(path, os.O_RDONLY)
    t = time.perf_counter()
    for off in offsets:
        os.pread(fd, 4096, off)
    dt = time.perf_counter() - t
    os.close(fd)
    return count / dt


def metadata(d, n):
    t = time.perf_counter()
    for i in range(n):
        os.stat(d / f"f{i}")
    stat_s = time.perf_counter() - t
    t = time.perf_counter()
    names = os.listdir(d)
    assert len(names) >= n
    return stat_s, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-cargo", action="store_true")
    ap.add_argument("--corpus", default="/var/tmp/zcfs-corpus")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/mount.py needs root (FUSE mount, drop_caches)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="zcfs-mbench-", dir="/var/tmp"))
    z = Zcfs(str(ROOT / "target/release/zcfs"), work)
    res = {}
    try:
        if not args.skip_cargo:
            project = Path(subprocess.run([str(ROOT / "bench/setup-corpus.sh"), args.corpus],
                                          check=True, capture_output=True, text=True).stdout.split()[-1])
            plain = work / "plain-target"
            mnt = work / "mnt-target"
            plain.mkdir()
            mnt.mkdir()
            z.mount(mnt)
            r = {"plain": [], "mount": [], "plain_noop": [], "mount_noop": []}
            for i in range(args.runs):
                for name, d in (("plain", plain), ("mount", mnt)):
                    clear_dir(d)
                    r[name].append(cargo(project, d))
                    r[name + "_noop"].append(med([cargo(project, d) for _ in range(5)]))
                print(f"  cargo run {i + 1}: plain {r['plain'][-1]:.2f} s, mount {r['mount'][-1]:.2f} s",
                      flush=True)
            st = json.loads(z.run("status", "--json").stdout)["mounts"][0]
            r["mount_status"] = st
            z.unmount(mnt)
            res["cargo"] = r

        # Reads of a 256 MiB file.
        src = work / "big.bin"
        with open(src, "wb") as f:
            rnd = random.Random(1)
            block = bytes(rnd.getrandbits(8) for _ in range(MiB))
            for i in range(256):
                f.write(block[i:] + block[:i])
        ext4 = work / "ext4-copy.bin"
        shutil.copyfile(src, ext4)
        mnt = work / "mnt-reads"
        mnt.mkdir()
        z.mount(mnt)
        z.run("project", str(mnt), "big.bin", str(src))
        proj = mnt / "big.bin"
        assert os.path.getsize(proj) == 256 * MiB
        reads = {}
        for label, path in (("ext4", ext4), ("projected", proj)):
            seq_cold, seq_warm, rnd_cold, rnd_warm = [], [], [], []
            for i in range(args.runs):
                drop_caches()
                seq_cold.append(read_seq(path))
                # One pass of 256 MiB from the page cache takes ~50 ms: take the best of 5.
                seq_warm.append(max(read_seq(path) for _ in range(5)))
                drop_caches()
                rnd_cold.append(read_random(path, 5000, i))
                rnd_warm.append(read_random(path, 20000, i))
            reads[label] = {"seq_cold_MiBs": med(seq_cold), "seq_warm_MiBs": med(seq_warm),
                            "rand_cold_iops": med(rnd_cold), "rand_warm_iops": med(rnd_warm)}
            print(f"  reads {label}: {reads[label]}", flush=True)
        res["reads"] = reads

        # Metadata on 10k real files.
        meta = {}
        for label, d in (("ext4", work / "meta-plain"), ("mount", mnt / "meta")):
            d.mkdir()
            for i in range(10000):
                (d / f"f{i}").write_bytes(b"")
            stats, lists = [], []
            for _ in range(args.runs):
                drop_caches()
                s, l = metadata(d, 10000)
                stats.append(s)
                lists.append(l)
            meta[label] = {"stat_10k_s": med(stats), "readdir_10k_s": med(lists)}
            print(f"  metadata {label}: {meta[label]}", flush=True)
        res["metadata"] = meta
        z.unmount(mnt)
    finally:
        z.run("stop", check=False)
        subprocess.run(["umount", "-l", str(work / "mnt-target")], capture_output=True)
        subprocess.run(["umount", "-l", str(work / "mnt-reads")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"zcfs mount benchmark, medians of {args.runs}, {os.cpu_count()} cores")
    if "cargo" in res:
        c = res["cargo"]
        print(f"cargo build ripgrep (debug): plain {med(c['plain']):.2f} s, mount {med(c['mount']):.2f} s"
              f"  -> {med(c['mount']) / med(c['plain']):.3f}x")
        print(f"no-op build:                 plain {med(c['plain_noop']):.3f} s, mount "
              f"{med(c['mount_noop']):.3f} s  -> {med(c['mount_noop']) / med(c['plain_noop']):.2f}x")
        st = c["mount_status"]
        print(f"  opens: {st['opens_passthrough']} passthrough, {st['opens_cached']} served by the daemon")
    r = res["reads"]
    for k, unit in (("seq_cold_MiBs", "MiB/s"), ("seq_warm_MiBs", "MiB/s"),
                    ("rand_cold_iops", "reads/s"), ("rand_warm_iops", "reads/s")):
        print(f"256 MiB {k:<15} ext4 {r['ext4'][k]:>9.0f} {unit}, projected {r['projected'][k]:>9.0f} {unit}"
              f"  -> {r['projected'][k] / r['ext4'][k]:.2f}x")
    m = res["metadata"]
    for k in ("stat_10k_s", "readdir_10k_s"):
        print(f"10k files {k:<14} ext4 {m['ext4'][k] * 1e3:7.1f} ms, mount {m['mount'][k] * 1e3:7.1f} ms"
              f"  -> {m['mount'][k] / m['ext4'][k]:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
