#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian 12 machine (run as root, no prompts).
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(qemu-utils fdisk e2fsprogs xfsprogs btrfs-progs zstd mmdebstrap debootstrap
              eatmydata lvm2 dosfstools mtools util-linux ntfs-3g rpm db5.3-util
              openssh-server strace)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq -o DPkg::Lock::Timeout=120
  apt-get install -y -qq -o DPkg::Lock::Timeout=120 --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
./scripts/install-azurite.sh
