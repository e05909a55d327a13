#!/usr/bin/env bash
# The test command: installs the test dependencies, then runs formatting, lints and every
# test (unit and integration). This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
