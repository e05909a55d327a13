#!/usr/bin/env bash
# Type-checks and lints zcfs for Windows (x86_64-pc-windows-gnu) on Debian 12.
#
# There is no Windows machine and no rustup target here. Debian's own Rust (package rustc-web)
# builds the standard library from its source (package rust-web-src) with cargo's
# -Zbuild-std; the mingw-w64 C compiler serves build scripts that compile C (blake3, ring).
# The Debian packages are downloaded with `apt-get download` and unpacked into a private
# directory, never installed (rust-web-src conflicts with a rustup toolchain).
# Nothing here runs Windows code: it proves the program (library and binary) compiles and
# lints cleanly. The test suites are Linux-only (FUSE, /proc) and are not checked here.
#
# Usage: scripts/check-windows.sh [check|clippy|build] [extra cargo args...]
#   ZCFS_WINCHECK_DIR  where the toolchain is unpacked (default ~/.cache/zcfs-wincheck)
#   CARGO_TARGET_DIR   default target/windows-check
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-clippy}
shift || true
dir=${ZCFS_WINCHECK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/zcfs-wincheck}
ver=1.96.0+dfsg1-1~deb12u2
root=$dir/root-$ver
if [ ! -x "$root/usr/bin/rustc" ] || [ ! -x "$root/usr/bin/clippy-driver" ]; then
  echo "check-windows: fetching Debian's rustc-web $ver into $dir" >&2
  rm -rf "$dir/debs" "$root.partial"
  mkdir -p "$dir/debs"
  (
    cd "$dir/debs"
    apt-get update -qq
    fetch() {
      local v=$1
      apt-get download -qq "rustc-web=$v" "libstd-rust-web-dev=$v" \
        "libstd-rust-web-$(echo "$v" | cut -d. -f1,2)=$v" "rust-web-src=$v" \
        "rust-web-clippy=$v" "libllvm$(llvm_of "$v")"
    }
    # The LLVM Debian's rustc-web of that version links.
    llvm_of() {
      apt-cache show "libstd-rust-web-$(echo "$1" | cut -d. -f1,2)=$1" |
        sed -n 's/^Depends:.*libllvm\([0-9]*\).*/\1/p' | head -1
    }
    if ! fetch "$ver"; then
      # The pinned version left the archive: take the one it has now.
      now=$(apt-cache policy rustc-web | sed -n 's/ *Candidate: //p')
      echo "check-windows: $ver is not available; using rustc-web $now" >&2
      rm -f ./*.deb
      fetch "$now"
    fi
    for f in *.deb; do dpkg -x "$f" "$root.partial"; done
  )
  mv "$root.partial" "$root"
  rm -rf "$dir/debs"
fi
if ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
  echo "check-windows: installing gcc-mingw-w64-x86-64" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-mingw-w64-x86-64 >/dev/null
fi
llvm_libs=$(printf '%s:' "$root"/usr/lib/llvm-*/lib)
export LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu:$root/usr/lib:${llvm_libs%:}
export RUSTC=$root/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/windows-check}
# The rustup toolchain's wrappers must not leak into Debian's rustc.
unset RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER RUSTUP_TOOLCHAIN
args=(-Zbuild-std=std,panic_abort --target x86_64-pc-windows-gnu "$@")
case $mode in
  check) cargo check "${args[@]}" ;;
  build) cargo build "${args[@]}" ;;
  clippy)
    # clippy-driver takes cargo-clippy's arguments from CLIPPY_ARGS; it lints only the
    # workspace's own crates (RUSTC_WORKSPACE_WRAPPER), and -D warnings covers rustc's too.
    CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__ \
      RUSTC_WORKSPACE_WRAPPER=$root/usr/bin/clippy-driver cargo check "${args[@]}"
    ;;
  *)
    echo "usage: $0 [check|clippy|build] [cargo args...]" >&2
    exit 2
    ;;
esac
