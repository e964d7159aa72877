#!/usr/bin/env bash
# Install everything the test suite needs (scripts/test.sh runs this first): scripts/install.sh
# with vmimage's test extras (the same virtual environment, .venv or $VMIMAGE_VENV) plus the
# test tools from the distribution, in one apt-get run, then Azurite (scripts/install-azurite.sh).
# As root, or as a user with sudo; nothing prompts. A second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# qemu-utils: the oracle for the VHD layer (qemu-img, qemu-io); fdisk, e2fsprogs, xfsprogs,
# btrfs-progs, dosfstools, mtools, lvm2, ntfs-3g: the disks the image tests build; zstd,
# mmdebstrap, debootstrap, eatmydata: the Debian roots; rpm, db5.3-util: RPM databases;
# openssh-server, openssh-client: the sshd the sshd_config tests ask and the live
# (ssh://) tests run chrooted, and ssh-keygen; grub-common: grub-script-check and
# grub-editenv, the oracles of generalize's boot-config edits; binutils-mingw-w64-x86-64:
# windres and ld for the Windows PE fixtures (srv.sys versions); libwin-hivex-perl:
# hivexregedit for the registry hive fixtures; cryptsetup-bin: bitlkDump, the peer reader of
# the BitLocker metadata tests; strace: the read-only proof;
# chromium: the HTML report's browser test; packer: the Packer example's test;
# qemu-system-x86, ovmf: the VMs `vmimage vm boot` starts in tests/test_vm_boot.py;
# postgresql: the real PostgreSQL the publishing service's tests start (tests/postgres.py) and
# run as the postgres user (initdb refuses root), on a Unix socket of their own;
# redis-server: the Redis the job engine's workers share in tests/test_service_jobs_redis.py
# (tests/redis_server.py starts its own on 127.0.0.1, keeping nothing on disk).
APT_PACKAGES=(qemu-utils fdisk e2fsprogs xfsprogs btrfs-progs zstd mmdebstrap debootstrap
              eatmydata lvm2 dosfstools mtools util-linux ntfs-3g rpm db5.3-util
              openssh-server openssh-client grub-common binutils-mingw-w64-x86-64 libwin-hivex-perl
              cryptsetup-bin strace
              chromium packer qemu-system-x86 ovmf dnsmasq-base iproute2
              # genisoimage (isoinfo, isovfy), xorriso, python3-pycdlib: the readers the
              # provisioning DVD of vmimage.vm.iso is checked with (tests/test_vm_iso.py)
              genisoimage xorriso python3-pycdlib
              # createrepo-c (createrepo_c, modifyrepo_c): the real RPM repositories, with their
              # updateinfo, that tests/test_secdata_rpm.py serves to vmimage.secdata.rpm
              createrepo-c
              postgresql redis-server)
# Azurite runs on node: the distribution's nodejs and npm, unless a node is already there (a
# nodesource nodejs brings its own npm and conflicts with the distribution's npm package).
command -v node >/dev/null 2>&1 || APT_PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)

./scripts/install.sh --extras test --apt "${APT_PACKAGES[*]}"
./scripts/install-azurite.sh
