#!/usr/bin/env bash
# A Rust build whose build script compiles C with cc-rs: a crate depending on libgit2-sys
# (libgit2 built from its vendored source, ~100 C files, no default features), through
# `zcfs cargo build` (build dir mounted, cc-rs's compiles wrapped by zcfs) and through
# zccache and sccache as `RUSTC_WRAPPER` with `CC="<cache> cc"`, and with no cache. Cold
# = empty cache, target removed (once per cache); warm = cache full, target removed,
# ROUNDS rounds interleaved. Prints medians and ratios against the peers in the same run.
# Usage: bench/c_ccrs.sh [ROUNDS] (default 3). Needs zcfs on PATH (scripts/install.sh);
# peers named in BENCH_PEERS (default: "zccache sccache") and installed are measured.
set -euo pipefail
unset ZCFS_WATCH
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-3}
peers=${BENCH_PEERS:-zccache sccache}
work=${ZCFS_BENCH_DIR:-/var/tmp/zcfs-bench-ccrs}
baseline=
proj=$work/proj
mkdir -p "$proj/src"
cat >"$proj/Cargo.toml" <<'EOF'
[package]
name = "ccrs-bench"
version = "0.1.0"
edition = "2021"

[dependencies]
libgit2-sys = { version = "=0.18.8", default-features = false }
EOF
echo 'fn main() { println!("{}", unsafe { libgit2_sys::git_libgit2_init() }); }' >"$proj/src/main.rs"
cd "$proj"
cargo fetch --quiet
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
zcfs stop >/dev/null 2>&1 || true

declare -A cold warm
tools="none zcfs"
for p in $peers; do
  command -v "$p" >/dev/null && tools="$tools $p"
done

clean_target() {
  if mountpoint -q target 2>/dev/null; then
    zcfs unmount target >/dev/null 2>&1 || true
  fi
  rm -rf target
}

timed_build() {
  clean_target
  local t0 t1
  t0=$(date +%s.%N)
  case $1 in
    none) cargo build --quiet >/dev/null 2>&1 ;;
    zcfs) zcfs cargo build --quiet >/dev/null 2>&1 ;;
    *) RUSTC_WRAPPER=$1 CC="$1 cc" cargo build --quiet >/dev/null 2>&1 ;;
  esac
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

for t in $tools; do
  clear_cache "$t"
  cold[$t]=$(timed_build "$t")
done
zcfs stats --zero >/dev/null 2>&1 || true
for r in $(seq "$rounds"); do
  for t in $tools; do
    [ "$t" = none ] && continue
    warm[$t]+="$(timed_build "$t") "
  done
done
# The build's C compiles as zcfs saw them in the warm rounds.
zstats=$(zcfs stats --json)
clean_target

echo "libgit2-sys 0.18.8 (vendored libgit2), cargo build (debug), warm: median of $rounds rounds (seconds)"
printf '%-8s %8s %8s\n' tool cold warm
for t in $tools; do
  if [ -n "${warm[$t]:-}" ]; then
    printf '%-8s %8.2f %8.3f\n' "$t" "${cold[$t]}" "$(echo "${warm[$t]}" | median)"
  else
    printf '%-8s %8.2f %8s\n' "$t" "${cold[$t]}" -
  fi
done
zw=$(echo "${warm[zcfs]}" | median)
for t in $tools; do
  case $t in none | zcfs) continue ;; esac
  printf 'zcfs warm / %s warm: %.2f\n' "$t" "$(echo "$zw / $(echo "${warm[$t]}" | median)" | bc -l)"
done
echo "$zstats" | python3 -c '
import json, sys
d = json.load(sys.stdin)
langs = {k: (v["hits"], v["misses"]) for k, v in d["languages"].items()}
print("zcfs warm rounds (hits, misses) by language:", langs)
print("zcfs hit phases p50 (us):", {k: v["p50_us"] for k, v in d["hit_phases"].items()})'
