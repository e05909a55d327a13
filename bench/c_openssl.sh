#!/usr/bin/env bash
# C benchmark on a large build: OpenSSL 3.6.3's libraries (`make -j2 build_libs`, ~1,140
# compiles; the source comes from the openssl-src crate on crates.io), through each cache
# as `CC="<cache> gcc"`. Cold = empty cache, objects and libraries deleted (once per
# cache: a cold build takes minutes); warm = cache full, objects and libraries deleted,
# ROUNDS rounds interleaved. `none` is measured once (its warm build is a cold one).
# Prints medians and ratios against the peers measured in the same run, and zcfs's hit
# phases. `zcfs` runs with the default watcher (`watch = names`), `zcfs-files` with
# `watch = files` (its own cache and daemon, docs/watcher.md). `floor` is the least any
# cache that runs one process per compile can cost: bench/floor_cc.c copies back the
# objects and dependency files it saved from the plain build, checking nothing.
# The kernel's dentry and inode caches are dropped first when this runs as root (`echo 2 >
# /proc/sys/vm/drop_caches`): millions of negative dentries left by earlier test runs make
# every path walk slower (docs/benchmarks.md).
# `zcfs-mount` builds out of tree (a second build dir configured from the same source, the
# source outside any mount) under `zcfs run --mount BUILD_DIR`: objects are projected, not
# written. Its own cache and daemon; the mount stays between rounds (objects deleted
# through it), as a developer's would.
# Usage: bench/c_openssl.sh [--baseline EXE] [ROUNDS] (default 5). Needs zcfs on PATH
# (scripts/install.sh), perl, make and cc; ccache, sccache and zccache are used when
# installed and named in BENCH_PEERS (default: ccache). --baseline EXE measures another
# zcfs build in the same run as `base` (its own cache and daemon).
set -euo pipefail
unset ZCFS_WATCH
here=$(cd "$(dirname "$0")" && pwd)
baseline=
if [ "${1:-}" = "--baseline" ]; then
  baseline=$(readlink -f "$2")
  shift 2
fi
rounds=${1:-5}
peers=${BENCH_PEERS:-ccache}
work=${ZCFS_BENCH_DIR:-/var/tmp/zcfs-bench-openssl}
version=300.6.1+3.6.3
mkdir -p "$work"
if [ ! -d "$work/src" ]; then
  cargo info --quiet "openssl-src@$version" >/dev/null
  crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"openssl-src-$version.crate" | head -1)
  rm -rf "$work/unpack" && mkdir -p "$work/unpack"
  tar -xzf "$crate" -C "$work/unpack" --strip-components=1
  cp -r "$work/unpack/openssl" "$work/src"
  # The crate leaves out OpenSSL's tests; configure as openssl-src does (static libraries).
  (cd "$work/src" && ./Configure linux-x86_64 no-shared no-module no-tests no-legacy \
    no-comp no-zlib >/dev/null)
  (cd "$work/src" && make -s build_generated >/dev/null 2>&1)
fi
oot=$work/oot
mount_env="env ZCFS_DIR=$work/zcfs-mount-cache ZCFS_RUNTIME_DIR=$work/zcfs-mount-run"
$mount_env zcfs unmount "$oot" >/dev/null 2>&1 || true
$mount_env zcfs stop >/dev/null 2>&1 || true
if [ ! -f "$oot/configdata.pm" ]; then
  # Configure refuses a source tree configured in place: use the pristine unpacked copy.
  rm -rf "$oot" && mkdir -p "$oot"
  (cd "$oot" && "$work/unpack/openssl/Configure" linux-x86_64 no-shared no-module no-tests \
    no-legacy no-comp no-zlib >/dev/null)
  (cd "$oot" && make -s build_generated >/dev/null 2>&1)
fi
cd "$work/src"
cc=gcc
declare -A CCS=([zcfs]="zcfs $cc" [zcfs-files]="zcfs $cc" [zcfs-mount]="$cc")
for p in $peers; do
  command -v "$p" >/dev/null && CCS[$p]="$p $cc"
done
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
if [ -n "$baseline" ]; then
  CCS[base]="$baseline $cc"
fi
files_env="env ZCFS_DIR=$work/zcfs-files-cache ZCFS_RUNTIME_DIR=$work/zcfs-files-run ZCFS_WATCH=files"
zcfs stop >/dev/null 2>&1 || true
$files_env zcfs stop >/dev/null 2>&1 || true
cc -O2 -static -o "$work/floor-cc" "$here/floor_cc.c" 2>/dev/null ||
  cc -O2 -o "$work/floor-cc" "$here/floor_cc.c"
if [ -w /proc/sys/vm/drop_caches ]; then
  sync
  echo 2 >/proc/sys/vm/drop_caches
fi

timed_make() {
  if [ "$2" = zcfs-mount ]; then
    local t0 t1
    (cd "$oot" && find . -name '*.o' -delete && rm -f ./*.a)
    t0=$(date +%s.%N)
    (cd "$oot" && $mount_env zcfs run --mount . -- make -s -j2 CC="$1" build_libs >/dev/null 2>&1)
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
    return
  fi
  find . -name '*.o' -delete
  rm -f ./*.a
  local t0 t1
  t0=$(date +%s.%N)
  case $2 in
    base) ZCFS_DIR=$work/zcfs-base-cache ZCFS_RUNTIME_DIR=$work/zcfs-base-run make -s -j2 CC="$1" build_libs >/dev/null 2>&1 ;;
    zcfs-files) $files_env make -s -j2 CC="$1" build_libs >/dev/null 2>&1 ;;
    floor) FLOOR_MODE=replay FLOOR_DIR=$work/floor make -s -j2 CC="$1" build_libs >/dev/null 2>&1 ;;
    *) make -s -j2 CC="$1" build_libs >/dev/null 2>&1 ;;
  esac
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

# What make and ar cost with every object present: the floor of any cache.
find . -name '*.o' -delete
rm -f ./*.a
none=$(timed_make "$cc" none)
rm -f ./*.a
t0=$(date +%s.%N)
make -s -j2 CC="$cc" build_libs >/dev/null 2>&1
archive=$(echo "$(date +%s.%N) - $t0" | bc)
ncomp=$(find . -name '*.o' | wc -l)

declare -A cold warm
for k in "${!CCS[@]}"; do
  case $k in
    zcfs-files) $files_env zcfs clear >/dev/null 2>&1 || true ;;
    zcfs-mount)
      # An empty cache and no mount: the mount's journal lives in the cache.
      $mount_env zcfs unmount "$oot" >/dev/null 2>&1 || true
      $mount_env zcfs stop >/dev/null 2>&1 || true
      rm -rf "$work/zcfs-mount-cache"
      ;;
    *) clear_cache "$k" ;;
  esac
  cold[$k]=$(timed_make "${CCS[$k]}" "$k")
done
# The floor records the plain build's outputs once.
rm -rf "$work/floor"
find . -name '*.o' -delete
rm -f ./*.a
FLOOR_MODE=record FLOOR_DIR=$work/floor make -s -j2 CC="$work/floor-cc $cc" build_libs >/dev/null 2>&1
CCS[floor]="$work/floor-cc $cc"
zcfs stats --zero >/dev/null 2>&1 || true
$files_env zcfs stats --zero >/dev/null 2>&1 || true
$mount_env zcfs stats --zero >/dev/null 2>&1 || true
[ -n "$baseline" ] && { $base_env "$baseline" stats --zero >/dev/null 2>&1 || true; }
for r in $(seq "$rounds"); do
  for k in "${!CCS[@]}"; do
    warm[$k]+="$(timed_make "${CCS[$k]}" "$k") "
  done
done
echo "OpenSSL 3.6.3 build_libs, $ncomp objects, $cc, make -j2, warm: median of $rounds rounds (seconds)"
printf '%-10s %8s %8s %10s %10s\n' cache cold warm cold/none warm/none
printf '%-10s %8.3f %8s %10.2f %10s\n' none "$none" - 1 -
for k in zcfs zcfs-files zcfs-mount base ccache sccache zccache floor; do
  [ -n "${CCS[$k]:-}" ] || continue
  w=$(echo "${warm[$k]}" | median)
  if [ -n "${cold[$k]:-}" ]; then
    c=${cold[$k]}
    printf '%-10s %8.3f %8.3f %10.2f %10.3f\n' "$k" "$c" "$w" "$(echo "$c / $none" | bc -l)" "$(echo "$w / $none" | bc -l)"
  else
    printf '%-10s %8s %8.3f %10s %10.3f\n' "$k" - "$w" - "$(echo "$w / $none" | bc -l)"
  fi
done
echo "make and ar alone, every object present (the floor): $archive s"
for z in zcfs zcfs-files zcfs-mount; do
  zw=$(echo "${warm[$z]}" | median)
  for k in base ccache sccache zccache floor; do
    [ -n "${CCS[$k]:-}" ] || continue
    printf '%s warm / %s warm: %.2f\n' "$z" "$k" "$(echo "$zw / $(echo "${warm[$k]}" | median)" | bc -l)"
  done
done
for z in zcfs zcfs-files zcfs-mount; do
  env=""
  [ $z = zcfs-files ] && env=$files_env
  [ $z = zcfs-mount ] && env=$mount_env
  echo "$z:"
  $env zcfs stats | grep -E "Hit latency|Hit service|Language|Watcher"
  $env zcfs stats --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("  hit phases p50 (us):", {k: v["p50_us"] for k, v in d["hit_phases"].items()})'
done
$files_env zcfs stop >/dev/null 2>&1 || true
$mount_env zcfs unmount "$oot" >/dev/null 2>&1 || true
$mount_env zcfs stop >/dev/null 2>&1 || true
if [ -n "$baseline" ]; then
  echo "base ($baseline):"
  $base_env "$baseline" stats | grep -E "Hit latency|Hit service|Language"
  $base_env "$baseline" stop >/dev/null 2>&1 || true
fi
