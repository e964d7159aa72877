#!/usr/bin/env bash
# Build a compliant sample image: scripts/build-sample-image.sh OUT.vhd
# A 30 GiB sparse fixed VHD holding a Debian 12 root made compliant with every Linux rule
# (MBR, one ext4 root partition at 1 MiB), ready for `vmimage check OUT.vhd`.
# Needs root and scripts/install-test-deps.sh; the first run builds the cached Debian root
# (about 90 s, from the mirror apt is configured with), later runs take a few seconds.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT.vhd" >&2
  exit 2
fi
out="$(realpath -m "$1")"
cd "$(dirname "$0")/.."
exec python3 -m tests.imagebuild sample "$out"
