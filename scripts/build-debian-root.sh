#!/usr/bin/env bash
# Build (or find in the cache) the Debian 12 root the image tests use, and print its path.
#   scripts/build-debian-root.sh [OUT.tar.zst]
# mmdebstrap --variant=minbase from the mirror apt is configured with (bookworm, plus
# -updates and -security when they answer), cached in ${VMIMAGE_CACHE:-~/.cache/vmimage}/roots
# and keyed by the package list. Needs root and scripts/install-test-deps.sh. The package list
# and the build live in tests/imagebuild.py (root_tarball, build_root_tarball).
set -euo pipefail
out=()
if [ $# -gt 0 ]; then out=("$(realpath -m "$1")"); fi
cd "$(dirname "$0")/.."
exec python3 -m tests.imagebuild root "${out[@]}"
