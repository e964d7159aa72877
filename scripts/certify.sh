#!/usr/bin/env bash
# The main job: install vmimage and certify an image. With no argument, build the sample image
# (a compliant Debian 12 on a 30 GiB sparse fixed VHD) and certify that.
#   ./scripts/certify.sh [IMAGE|ROOT_DIR] [vmimage check options...]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
if [ $# -ge 1 ] && [ "${1#-}" = "$1" ]; then
  image="$1"; shift
else
  image="out/sample.vhd"
  if [ ! -f "$image" ]; then
    mkdir -p out
    ./scripts/build-sample-image.sh "$image"
  fi
fi
exec vmimage check "$image" "$@"
