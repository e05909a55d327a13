#!/usr/bin/env bash
# The test command: installs the test dependencies, then runs formatting, lints, the Windows
# type-check and lint, every test (unit and integration), and the fuzz targets for a bounded
# time (ZCFS_FUZZ_SECS per target, default 30; 0 skips them). This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# The whole program type-checked and linted for Windows (fetches its own toolchain).
scripts/check-windows.sh clippy
cargo test --all-targets
fuzz_secs=${ZCFS_FUZZ_SECS:-30}
if [ "$fuzz_secs" -gt 0 ]; then
  scripts/fuzz.sh "$fuzz_secs"
fi
