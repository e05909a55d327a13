#!/usr/bin/env bash
# A generated workspace of N one-function crates (and a binary using them all), built with
# `zcfs cargo build` cold and then warm (after removing target/debug: every unit a hit,
# projected) under an open-file limit of LIMIT (soft and hard, so the daemon cannot raise
# it). Prints the wall time of each build, the daemon's peak open fds (sampled every 20 ms)
# and its peak resident memory (VmHWM).
# Usage: bench/many_crates.sh [N (default 1000)] [LIMIT (default 1024)]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000}
limit=${2:-1024}
zcfs=${ZCFS:-$here/target/release/zcfs}
[ -x "$zcfs" ] || (cd "$here" && cargo build --release --quiet)

work=$(mktemp -d /var/tmp/zcfs-many.XXXXXX)
export ZCFS_DIR=$work/cache ZCFS_RUNTIME_DIR=$work/run ZCFS_IDLE_TIMEOUT=0
unset RUSTC_WRAPPER CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR
cleanup() {
  "$zcfs" unmount --force "$work/ws/target" >/dev/null 2>&1 || true
  "$zcfs" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

ws=$work/ws
mkdir -p "$ws/top/src"
members="" deps="" calls=""
for i in $(seq 0 $((n - 1))); do
  c=$(printf 'c%04d' "$i")
  mkdir -p "$ws/$c/src"
  printf '[package]\nname = "%s"\nversion = "0.1.0"\nedition = "2021"\n' "$c" > "$ws/$c/Cargo.toml"
  printf 'pub fn f() -> usize { %d }\n' "$i" > "$ws/$c/src/lib.rs"
  members+="\"$c\", "
  deps+="$c = { path = \"../$c\" }"$'\n'
  calls+="$c::f() + "
done
printf '[package]\nname = "top"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\n%s' "$deps" > "$ws/top/Cargo.toml"
printf 'fn main() { println!("{}", %s0); }\n' "$calls" > "$ws/top/src/main.rs"
printf '[workspace]\nmembers = [%s"top"]\nresolver = "2"\n' "$members" > "$ws/Cargo.toml"

peak_fds=0
sample() { # pid: prints the peak fd count until the pid file disappears
  local pid=$1 peak=0 n
  while [ -e "$work/sampling" ]; do
    n=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    [ "$n" -gt "$peak" ] && peak=$n
    sleep 0.02
  done
  echo "$peak"
}
build() { # label
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$ws" && ulimit -Sn "$limit" && ulimit -Hn "$limit" && "$zcfs" cargo build -q 2>&1 | grep -v '^zcfs: mounted' || true)
  t1=$(date +%s.%N)
  python3 -c "print('%-5s build: %.2f s' % ('$1', $t1 - $t0))"
}

# Start the daemon under the limit, then sample it through both builds.
(cd "$ws" && ulimit -Sn "$limit" && ulimit -Hn "$limit" && "$zcfs" mount "$ws/target" >/dev/null)
pid=$("$zcfs" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
touch "$work/sampling"
sample "$pid" > "$work/peak" &
sampler=$!
build cold
rm -rf "$ws/target/debug"
build warm
rm -f "$work/sampling"
wait "$sampler"
"$ws/target/debug/top" >/dev/null
echo "crates: $n, open-file limit: $limit (daemon: $(grep 'Max open files' /proc/$pid/limits | awk '{print $4}'))"
echo "daemon peak open fds: $(cat "$work/peak")"
echo "daemon peak resident memory: $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}')"
"$zcfs" stats --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print("hits %d (projected %d), misses %d, errors %d" % (s["hits"], s["hits_projected"], s["misses"], s["errors"]))'
