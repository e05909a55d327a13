#!/usr/bin/env bash
# Sets up zcfs and shows its main job: installs it into ~/.cargo/bin, builds this repository
# with `zcfs cargo build` (target dir on a zcfs mount; every unit a miss, stored), cleans,
# builds again (every unit a hit, projected: no artifact written), shows the stats and how
# little real data the target dir holds, then unmounts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/install.sh
export PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
demo_target=$(mktemp -d /tmp/zcfs-demo-target.XXXXXX)
cleanup() {
  zcfs unmount "$demo_target" >/dev/null 2>&1 || true
  rm -rf "$demo_target"
}
trap cleanup EXIT
zcfs stats --zero >/dev/null 2>&1 || true
echo "== cold build: zcfs cargo build --release (every unit a miss, outputs stored)"
time zcfs cargo build --release --quiet --target-dir "$demo_target"
zcfs cargo clean --quiet --target-dir "$demo_target"
echo "== warm build after cargo clean (every unit a hit, projected from the cache)"
time zcfs cargo build --release --quiet --target-dir "$demo_target"
echo "== and the next build is a no-op"
time zcfs cargo build --release --quiet --target-dir "$demo_target"
zcfs stats
