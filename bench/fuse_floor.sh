#!/usr/bin/env bash
# What FUSE costs cargo's own work: the floor wrapper (bench/floor.c) replaying a warm
# ripgrep build with its target dir and store inside a zcfs mount, against the same on
# ext4, interleaved. Usage (root): bench/fuse_floor.sh [RUNS] [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; profile=${2:-}
project=$(bench/setup-corpus.sh)
work=$(mktemp -d "$(dirname "$project")/zcfs-fusefloor.XXXXXX")
cargo build --release --quiet
zcfs=$PWD/target/release/zcfs
cc -O2 -static -o "$work/floor" bench/floor.c
export ZCFS_DIR=$work/cache ZCFS_RUNTIME_DIR=$work/run
fl=$work/fuse; ex=$work/ext4
mkdir -p "$fl" "$ex"
"$zcfs" mount "$fl" >/dev/null
trap '"$zcfs" unmount "$fl" >/dev/null 2>&1; "$zcfs" stop >/dev/null 2>&1; rm -rf "$work"' EXIT
cd "$project"
build() { # base mode
  CARGO_TARGET_DIR=$1/target FLOOR_MODE=$2 FLOOR_DIR=$1/store RUSTC_WRAPPER=$work/floor \
    cargo build -q $profile
}
for base in "$fl" "$ex"; do build "$base" record; done
for i in $(seq 1 "$runs"); do
  line=""
  for base in "$fl" "$ex"; do
    rm -rf "$base/target"; sync
    s=$(date +%s%N); build "$base" replay; e=$(date +%s%N)
    line+="$(basename "$base") $(( (e - s) / 1000000 )) ms  "
  done
  echo "$line"
done
