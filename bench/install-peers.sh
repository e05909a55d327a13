#!/usr/bin/env bash
# Installs the caches zcfs is compared with (built from crates.io; several minutes each on
# 2 cores). Usage: bench/install-peers.sh [sccache] [zccache]   (default: both)
set -euo pipefail
want=("$@"); [ ${#want[@]} -gt 0 ] || want=(sccache zccache)
for p in "${want[@]}"; do
  case $p in
    sccache) command -v sccache >/dev/null || cargo install sccache --locked --version 0.19.0 ;;
    zccache) command -v zccache >/dev/null || cargo install zccache --locked --version 1.15.12 --features zccache-bin ;;
    *) echo "unknown peer: $p" >&2; exit 2 ;;
  esac
done
