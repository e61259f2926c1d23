#!/usr/bin/env bash
# Installs the Debian packages pytvix builds against and tests with. Idempotent: only missing
# packages are installed. Needs root (or sudo) and Debian/Ubuntu's apt.
set -euo pipefail

PACKAGES=(
  pkg-config libfuse3-dev fuse3   # pyfuse3 build + fusermount3
  nix-bin                         # real Nix for compatibility tests
  attr                            # getfattr for FUSE xattr tests
  b3sum pv                        # benchmark peers
  squashfuse squashfs-tools       # C FUSE file system, peer of the FUSE benchmark
  nginx-light                     # static file server peer for nar-bridge benchmarks
  prometheus                      # scrapes daemon and nar-bridge in the observability tests
  postgresql nats-server          # scale-out backends, started by the tests
  ceph-mon ceph-osd radosgw ceph-common  # real S3 (radosgw, memstore OSD) for the S3 backend
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
