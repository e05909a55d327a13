#!/usr/bin/env bash
# Sets up zcfs and shows its main job: installs it into ~/.cargo/bin, builds this repository
# through the cache (all misses), removes target/, builds again (all hits), prints the stats.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo install --locked --path . --root "${CARGO_HOME:-$HOME/.cargo}"
demo_target=$(mktemp -d /tmp/zcfs-demo-target.XXXXXX)
trap 'rm -rf "$demo_target"' EXIT
export CARGO_TARGET_DIR=$demo_target RUSTC_WRAPPER=zcfs
zcfs stats --zero >/dev/null 2>&1 || true
echo "== cold build through zcfs (every unit a miss, outputs stored)"
time cargo build --release --quiet
rm -rf "$demo_target"/*
echo "== warm build (target removed; every unit a hit)"
time cargo build --release --quiet
zcfs stats
