#!/usr/bin/env bash
# C benchmark: Lua's core (from the lua-src crate) built with make -j2 through each cache.
# Cold = empty cache, objects deleted; warm = cache full, objects deleted. Interleaved
# rounds; prints medians and ratios against no cache and the peers measured in the same
# run. Usage: bench/c_warm.sh [--baseline EXE] [ROUNDS] (default 3); BENCH_CC=emcc for
# Emscripten (flags -O2 -Wall; gcc: -O2 -Wall -DLUA_USE_LINUX). Needs zcfs on PATH
# (scripts/install.sh); ccache, sccache and zccache are used when installed
# (bench/install-peers.sh). --baseline EXE measures another zcfs build in the same run as
# `base` (its own cache and daemon): an A/B of two versions.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
baseline=
if [ "${1:-}" = "--baseline" ]; then
  baseline=$(readlink -f "$2")
  shift 2
fi
rounds=${1:-3}
work=${ZCFS_BENCH_DIR:-/var/tmp/zcfs-bench-c}
mkdir -p "$work"
if [ ! -d "$work/lua" ]; then
  cargo info --quiet lua-src >/dev/null
  crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/lua-src-*.crate | sort -V | tail -1)
  mkdir -p "$work/unpack"
  tar -xzf "$crate" -C "$work/unpack" --strip-components=1
  src=$(ls -d "$work"/unpack/lua-5.4*/ | sort -V | tail -1)
  mkdir -p "$work/lua"
  cp "$src"/*.c "$src"/*.h "$work/lua/"
  rm -f "$work/lua/lua.c" "$work/lua/luac.c" "$work/lua/onelua.c"
fi
{
  echo 'OBJS := $(patsubst %.c,%.o,$(wildcard *.c))'
  echo 'all: $(OBJS)'
  echo '%.o: %.c'
  printf '\t$(CC) $(FLAGS) -c $< -o $@\n'
} > "$work/lua/Makefile"
cd "$work/lua"
nfiles=$(ls *.c | wc -l)
cc=${BENCH_CC:-gcc}
case $cc in
  emcc|em++) export FLAGS="-O2 -Wall" ;;
  *) export FLAGS="-O2 -Wall -DLUA_USE_LINUX" ;;
esac

declare -A CCS=([none]="$cc" [zcfs]="zcfs $cc")
command -v ccache >/dev/null && CCS[ccache]="ccache $cc"
command -v sccache >/dev/null && CCS[sccache]="sccache $cc"
command -v zccache >/dev/null && CCS[zccache]="zccache $cc"
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
if [ -n "$baseline" ]; then
  CCS[base]="$baseline $cc"
  $base_env "$baseline" stats --zero >/dev/null 2>&1 || true
fi
# A daemon of an earlier install would step aside for this one during the first compiles
# (they run uncached): stop it first. Then the closing stats line covers this run.
zcfs stop >/dev/null 2>&1 || true
zcfs stats --zero >/dev/null 2>&1 || true

timed_make() {
  rm -f ./*.o
  local t0 t1
  t0=$(date +%s.%N)
  if [ "$2" = base ]; then
    ZCFS_DIR=$work/zcfs-base-cache ZCFS_RUNTIME_DIR=$work/zcfs-base-run make -s -j2 CC="$1" >/dev/null 2>&1
  else
    make -s -j2 CC="$1" >/dev/null 2>&1
  fi
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

declare -A cold warm
for r in $(seq "$rounds"); do
  for k in "${!CCS[@]}"; do
    clear_cache "$k"
    cold[$k]+="$(timed_make "${CCS[$k]}" "$k") "
    warm[$k]+="$(timed_make "${CCS[$k]}" "$k") "
  done
done
echo "Lua $(basename "$(ls -d "$work"/unpack/lua-5.4*/ | tail -1)"), $nfiles files, $cc $FLAGS, make -j2, $rounds rounds (median seconds)"
printf '%-8s %8s %8s %10s %10s\n' cache cold warm cold/none warm/none
base_cold=$(echo "${cold[none]}" | median)
base_warm=$(echo "${warm[none]}" | median)
for k in none zcfs base ccache sccache zccache; do
  [ -n "${CCS[$k]:-}" ] || continue
  c=$(echo "${cold[$k]}" | median); w=$(echo "${warm[$k]}" | median)
  printf '%-8s %8.3f %8.3f %10.2f %10.2f\n' "$k" "$c" "$w" "$(echo "$c / $base_cold" | bc -l)" "$(echo "$w / $base_warm" | bc -l)"
done
zw=$(echo "${warm[zcfs]}" | median)
for k in base ccache sccache zccache; do
  [ -n "${CCS[$k]:-}" ] || continue
  printf 'zcfs warm / %s warm: %.2f\n' "$k" "$(echo "$zw / $(echo "${warm[$k]}" | median)" | bc -l)"
done
zcfs stats | grep -E "Hit latency|Hit service|Language"
if [ -n "$baseline" ]; then
  echo "base ($baseline):"
  $base_env "$baseline" stats | grep -E "Hit latency|Hit service|Language"
  $base_env "$baseline" stop >/dev/null 2>&1 || true
fi
