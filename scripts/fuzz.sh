#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time, starting from the seed corpora in
# fuzz/corpus/ (read only: what the fuzzer finds goes to a temporary directory). A crash
# fails the run and leaves its input in fuzz/artifacts/<target>/; add it to the corpus with
# a fix. Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the flags it
# needs; no sanitizer is used (the targets are safe Rust; overflow and debug assertions are
# on, so an unchecked size is a crash).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 30)] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
shift || true
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz
export RUSTC_BOOTSTRAP=1
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
cargo fuzz build --sanitizer none
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "fuzz/corpus/$t"
  status=0
  cargo fuzz run --sanitizer none "$t" "$work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=4096 > "$work/$t.log" 2>&1 || status=$?
  echo "fuzz $t: $(grep -E '^Done' "$work/$t.log" || echo 'no summary')"
  if [ $status -ne 0 ]; then
    grep -E 'panicked|SUMMARY|ERROR|Test unit written' "$work/$t.log" >&2 || tail -20 "$work/$t.log" >&2
    echo "fuzz target $t failed (exit $status)" >&2
    exit 1
  fi
done
