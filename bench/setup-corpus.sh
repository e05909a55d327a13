#!/usr/bin/env bash
# Unpacks the benchmark corpus (ripgrep 14.1.1 from crates.io, with its Cargo.lock) and
# fetches its dependencies. Usage: bench/setup-corpus.sh [DIR] (default /var/tmp/zcfs-corpus).
# Prints the project directory.
set -euo pipefail
corpus=${1:-/var/tmp/zcfs-corpus}
name=ripgrep ver=14.1.1
dest=$corpus/$name
mkdir -p "$corpus"
if [ ! -e "$dest/Cargo.toml" ]; then
  cargo info --quiet "$name@$ver" >/dev/null   # puts the .crate into cargo's registry cache
  crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$name-$ver.crate" | head -1)
  mkdir -p "$dest"
  tar -xzf "$crate" -C "$dest" --strip-components=1
fi
(cd "$dest" && cargo fetch --locked --quiet)
echo "$dest"
