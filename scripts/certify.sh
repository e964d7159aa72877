#!/usr/bin/env bash
# The main job: install vmimage (scripts/install.sh) and check an image with it. With no
# image, build the sample image first (a compliant Debian 12 on a 30 GiB sparse fixed VHD,
# out/sample.vhd; kept for the next run) and check that.
#   ./scripts/certify.sh [IMAGE|ROOT_DIR] [vmimage check options...]
# Only the sample image needs root: it is built through sudo when you are not root, leaves no
# loop device or mount behind, and belongs to you. Paths are relative to where you are.
# The install's messages go to stderr: stdout is the report alone (--format json works).
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VMIMAGE_VENV:-$checkout/.venv}"
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
export VMIMAGE_VENV="$venv"

"$checkout/scripts/install.sh" >&2

if [ $# -ge 1 ] && [ "${1#-}" = "$1" ]; then
  image="$1"
  shift
else
  image="$checkout/out/sample.vhd"
  if [ ! -f "$image" ]; then
    mkdir -p "$checkout/out"
    build=("$checkout/scripts/build-sample-image.sh" "$image")
    if [ "$(id -u)" -ne 0 ]; then
      # sudo -H: root's own cache (~root/.cache/vmimage), not files of root's in yours.
      pass=(VMIMAGE_VENV="$venv" VMIMAGE_REFLINK="${VMIMAGE_REFLINK:-0}")
      for v in VMIMAGE_CACHE VMIMAGE_MIRROR VMIMAGE_SECURITY_MIRROR; do
        [ -z "${!v:-}" ] || pass+=("$v=${!v}")
      done
      echo "certify: building the sample image needs root: sudo ${build[*]}" >&2
      build=(sudo -H -- env "${pass[@]}" "${build[@]}")
    fi
    VMIMAGE_REFLINK="${VMIMAGE_REFLINK:-0}" "${build[@]}" >&2
  fi
fi
exec "$venv/bin/vmimage" check "$image" "$@"
