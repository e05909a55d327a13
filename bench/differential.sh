#!/usr/bin/env bash
# Differential check of cross-location sharing (docs/sharing.md): builds a project in one
# checkout through zcfs (a fresh cache), copies it to a second checkout at another path,
# builds there through zcfs, then rebuilds the second checkout with plain cargo and compares
# every artifact rustc wrote (deps/ and build-script binaries) byte for byte.
#
# Usage: bench/differential.sh [--mount] [PROJECT_DIR] [-- CARGO_BUILD_ARGS...]
#   PROJECT_DIR defaults to ripgrep from bench/setup-corpus.sh; build args default to
#   `--release`. ZCFS (default: target/release/zcfs, built if missing) is the binary used.
# Prints how many compiles the second checkout was served from the cache and whether every
# artifact is identical; exits 1 if one differs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mount=0
if [ "${1:-}" = "--mount" ]; then mount=1; shift; fi
project=${1:-}
[ -n "$project" ] && [ "$project" != "--" ] && shift || project=$("$here/bench/setup-corpus.sh")
[ "${1:-}" = "--" ] && shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--release)
profile=release
for a in "${args[@]}"; do [ "$a" = "--release" ] || profile=debug; done
[[ " ${args[*]} " == *" --release "* ]] && profile=release

zcfs=${ZCFS:-$here/target/release/zcfs}
[ -x "$zcfs" ] || (cd "$here" && cargo build --release --quiet)

work=$(mktemp -d /var/tmp/zcfs-diff.XXXXXX)
export ZCFS_DIR=$work/cache ZCFS_RUNTIME_DIR=$work/run ZCFS_IDLE_TIMEOUT=0
unset RUSTC_WRAPPER CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR
cleanup() {
  for d in "$work"/one/*/target "$work"/checkout-two/*/target; do
    "$zcfs" unmount --force "$d" >/dev/null 2>&1 || true
  done
  "$zcfs" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

name=$(basename "$project")
one=$work/one/$name two=$work/checkout-two/$name
mkdir -p "$work/one" "$work/checkout-two"
for d in "$one" "$two"; do
  mkdir -p "$d" && tar -C "$project" --exclude=./target -cf - . | tar -C "$d" -xf -
done

build() { # dir
  if [ $mount = 1 ]; then
    (cd "$1" && "$zcfs" cargo build --quiet "${args[@]}")
  else
    (cd "$1" && RUSTC_WRAPPER=$zcfs cargo build --quiet "${args[@]}")
  fi
}
count() { "$zcfs" stats --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

build "$one"
"$zcfs" stats --zero >/dev/null
build "$two"
hits=$(count hits) misses=$(count misses)

snapshot() { # profile-dir out-file: "<sha256>  <path>" for every artifact
  (cd "$1" && find deps build -type f \( -path 'deps/*' -o -name 'build_script_build-*' \
     -o -name build-script-build \) -print0 | sort -z | xargs -0 sha256sum) > "$2"
}
snapshot "$two/target/$profile" "$work/served.sum"
[ $mount = 1 ] && "$zcfs" unmount "$two/target" >/dev/null
rm -rf "$two/target"
(cd "$two" && cargo build --quiet "${args[@]}")
snapshot "$two/target/$profile" "$work/plain.sum"

total=$((hits + misses))
echo "second checkout: $hits of $total compiles served from the cache ($misses compiled)"
if diff -u "$work/plain.sum" "$work/served.sum" > "$work/diff.txt"; then
  echo "every artifact byte-identical to a plain build there ($(wc -l < "$work/plain.sum") files)"
else
  echo "DIFFERENT artifacts (plain vs served):"
  grep '^[-+][0-9a-f]' "$work/diff.txt"
  exit 1
fi
