#!/usr/bin/env bash
# C benchmark on a large build: OpenSSL 3.6.3's libraries (`make -j2 build_libs`, ~1,140
# compiles; the source comes from the openssl-src crate on crates.io), through each cache
# as `CC="<cache> gcc"`. Cold = empty cache, objects and libraries deleted (once per
# cache: a cold build takes minutes); warm = cache full, objects and libraries deleted,
# ROUNDS rounds interleaved. `none` is measured once (its warm build is a cold one).
# Prints medians and ratios against the peers measured in the same run, and zcfs's hit
# phases.
# Usage: bench/c_openssl.sh [--baseline EXE] [ROUNDS] (default 5). Needs zcfs on PATH
# (scripts/install.sh), perl and make; ccache, sccache and zccache are used when installed
# and named in BENCH_PEERS (default: ccache). --baseline EXE measures another zcfs build in
# the same run as `base` (its own cache and daemon).
set -euo pipefail
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
cd "$work/src"
cc=gcc
declare -A CCS=([zcfs]="zcfs $cc")
for p in $peers; do
  command -v "$p" >/dev/null && CCS[$p]="$p $cc"
done
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
if [ -n "$baseline" ]; then
  CCS[base]="$baseline $cc"
fi
zcfs stop >/dev/null 2>&1 || true

timed_make() {
  find . -name '*.o' -delete
  rm -f ./*.a
  local t0 t1
  t0=$(date +%s.%N)
  if [ "$2" = base ]; then
    ZCFS_DIR=$work/zcfs-base-cache ZCFS_RUNTIME_DIR=$work/zcfs-base-run make -s -j2 CC="$1" build_libs >/dev/null 2>&1
  else
    make -s -j2 CC="$1" build_libs >/dev/null 2>&1
  fi
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
  clear_cache "$k"
  cold[$k]=$(timed_make "${CCS[$k]}" "$k")
done
zcfs stats --zero >/dev/null 2>&1 || true
[ -n "$baseline" ] && { $base_env "$baseline" stats --zero >/dev/null 2>&1 || true; }
for r in $(seq "$rounds"); do
  for k in "${!CCS[@]}"; do
    warm[$k]+="$(timed_make "${CCS[$k]}" "$k") "
  done
done
echo "OpenSSL 3.6.3 build_libs, $ncomp objects, $cc, make -j2, warm: median of $rounds rounds (seconds)"
printf '%-8s %8s %8s %10s %10s\n' cache cold warm cold/none warm/none
printf '%-8s %8.3f %8s %10.2f %10s\n' none "$none" - 1 -
for k in zcfs base ccache sccache zccache; do
  [ -n "${CCS[$k]:-}" ] || continue
  c=${cold[$k]}; w=$(echo "${warm[$k]}" | median)
  printf '%-8s %8.3f %8.3f %10.2f %10.3f\n' "$k" "$c" "$w" "$(echo "$c / $none" | bc -l)" "$(echo "$w / $none" | bc -l)"
done
echo "make and ar alone, every object present (the floor): $archive s"
zw=$(echo "${warm[zcfs]}" | median)
for k in base ccache sccache zccache; do
  [ -n "${CCS[$k]:-}" ] || continue
  printf 'zcfs warm / %s warm: %.2f\n' "$k" "$(echo "$zw / $(echo "${warm[$k]}" | median)" | bc -l)"
done
zcfs stats | grep -E "Hit latency|Hit service|Language"
zcfs stats --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("zcfs hit phases p50 (us):", {k: v["p50_us"] for k, v in d["hit_phases"].items()})'
if [ -n "$baseline" ]; then
  echo "base ($baseline):"
  $base_env "$baseline" stats | grep -E "Hit latency|Hit service|Language"
  $base_env "$baseline" stop >/dev/null 2>&1 || true
fi
