#!/usr/bin/env bash
# Build a compliant sample image: scripts/build-sample-image.sh OUT.vhd
# A 30 GiB sparse fixed VHD holding a Debian 12 root made compliant with every Linux rule
# (MBR, one ext4 root partition at 1 MiB), ready for `vmimage check OUT.vhd`.
#
# Needs root (mmdebstrap --mode=root, chroot) and scripts/install.sh (the tools, and the
# virtual environment whose vmimage writes the VHD footer: no qemu-img). The first run builds
# the Debian root (about a minute, from the mirror apt is configured with) and caches it in
# ${VMIMAGE_CACHE:-~/.cache/vmimage} (see docs/install.md), later runs take a few seconds.
# No loop device is used and nothing stays mounted: VMIMAGE_REFLINK defaults to 0 here (the
# test suite's reflink pool is a loop-mounted XFS file). Run by root through sudo, the image
# is handed to the invoking user (SUDO_UID).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT.vhd" >&2
  exit 2
fi
out="$(realpath -m -- "$1")"
caller=$PWD
cd "$(dirname "$0")/.."
venv="${VMIMAGE_VENV:-$PWD/.venv}"
case "$venv" in /*) ;; *) venv="$caller/$venv" ;; esac
if [ ! -x "$venv/bin/python" ]; then
  echo "build-sample-image.sh: no $venv/bin/python: run scripts/install.sh first" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "build-sample-image.sh: needs root (mmdebstrap, chroot): sudo $0 $1" >&2
  exit 1
fi
export VMIMAGE_REFLINK="${VMIMAGE_REFLINK:-0}"
# Root running a user's checkout writes no __pycache__ into it.
export PYTHONDONTWRITEBYTECODE=1
# tests/imagebuild.py `sample`: the cached compliant disk, cloned, and vmimage's VHD footer.
"$venv/bin/python" -m tests.imagebuild sample "$out"
if [ -n "${SUDO_UID:-}" ] && [ "${SUDO_UID}" != 0 ]; then
  chown "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$out"
fi
