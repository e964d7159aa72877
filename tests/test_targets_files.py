"""One suite, every target: a root directory and disk images in every layout and format.

Each target holds the same tree (``targets_images.FILES``/``LINKS``); the tree as the host
sees it is the oracle. The images split it across filesystems (a separate /boot), put the
root on ext4, XFS or an LVM logical volume, and come as raw, VHD, VHDX, qcow2 and VMDK.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import targets_images as ti
from vmimage.targets.base import DiskLayout, Target
from vmimage.targets.image import ImageTarget
from vmimage.targets.rootdir import RootDirTarget

TARGETS = ["rootdir", "gpt-raw", "mbr-xfs", "lvm", "whole-disk", "vhd-fixed", "vhd-dynamic",
           "qcow2", "vmdk", "vhdx"]


def _image(kind: str) -> Path:
    if kind == "gpt-raw":
        return ti.gpt_image()
    if kind == "mbr-xfs":
        return ti.mbr_image()
    if kind == "lvm":
        return ti.lvm_image()[0]
    if kind == "whole-disk":
        return ti.whole_disk_image()
    return ti.converted(kind)


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    opened: Target = (RootDirTarget(ti.full_tree()) if request.param == "rootdir"
                      else ImageTarget(_image(request.param)))
    yield opened
    opened.close()


def host(rel: str) -> Path:
    return ti.full_tree() / rel.lstrip("/")


def test_capabilities_and_layout(target: Target) -> None:
    assert isinstance(target, Target)
    if isinstance(target, RootDirTarget):
        assert target.capabilities == {"filesystem"}
        assert target.layout() is None
    else:
        assert target.capabilities == {"disk", "filesystem"}
        assert isinstance(target.layout(), DiskLayout)


def test_read_files(target: Target) -> None:
    for rel, content, *_ in ti.FILES:
        assert target.read_bytes("/" + rel) == content, rel
    assert target.read_text("/etc/hostname") == ti.HOSTNAME
    big = host("usr/lib/big.bin").read_bytes()
    assert target.read_bytes("/usr/lib/big.bin", limit=1000) == big[:1000]
    assert target.read_bytes("/usr/lib/big.bin", limit=10**9) == big
    assert target.read_text("/etc/with space.conf") == "spaced = yes\n"


def test_large_file_through_the_cache(target: Target) -> None:
    expected = hashlib.sha256(host("usr/lib/big.bin").read_bytes()).hexdigest()
    assert hashlib.sha256(target.read_bytes("/usr/lib/big.bin")).hexdigest() == expected
    if isinstance(target, ImageTarget):
        before = target.bytes_read
        target.read_bytes("/usr/lib/big.bin")
        assert target.bytes_read == before  # the second read comes from the block cache


def test_paths_are_normalised(target: Target) -> None:
    for spelling in ("etc/hostname", "//etc///hostname", "/etc/./hostname", "/usr/../etc/hostname",
                     "/../../etc/hostname"):
        assert target.read_text(spelling) == ti.HOSTNAME, spelling


@pytest.mark.parametrize("rel", ["etc/hostname", "etc/shadow", "usr/bin/tool", "tmp", "root",
                                 "home/alice", "home/alice/.bash_history", "etc/ssh",
                                 "boot/vmlinuz-6.1.0-13-cloud-amd64", "boot/grub/grub.cfg",
                                 "boot/grub", "var/log/empty"])
def test_stat_matches_the_tree(target: Target, rel: str) -> None:
    want, got = os.lstat(host(rel)), target.stat("/" + rel)
    assert (got.mode, got.uid, got.gid) == (want.st_mode, want.st_uid, want.st_gid), rel
    assert got.mtime == want.st_mtime, rel
    if stat.S_ISREG(want.st_mode):
        assert got.size == want.st_size
        assert got.is_file and not got.is_dir
    else:
        assert got.is_dir


def test_special_modes(target: Target) -> None:
    assert stat.S_IMODE(target.stat("/usr/bin/tool").mode) == 0o4755
    assert stat.S_IMODE(target.stat("/tmp").mode) == 0o1777
    assert stat.S_IMODE(target.stat("/root").mode) == 0o700
    assert (target.stat("/etc/hostname").uid, target.stat("/etc/hostname").gid) == (1000, 1001)


def test_symlinks_resolve_inside_the_target(target: Target) -> None:
    assert target.read_bytes("/bin/tool") == host("usr/bin/tool").read_bytes()  # /bin -> usr/bin
    assert target.read_bytes("/sbin/sshd") == host("usr/sbin/sshd").read_bytes()
    # absolute link: the target's /etc/hostname, never the host's
    assert target.read_text("/etc/abs-link") == ti.HOSTNAME
    assert target.read_text("/etc/os-release").startswith("PRETTY_NAME=")
    assert target.read_text("/lib/os-release") == target.read_text("/etc/os-release")
    # a link from the root filesystem into /boot, and one inside /boot
    kernel = host("boot/vmlinuz-6.1.0-13-cloud-amd64").read_bytes()
    assert target.read_bytes("/etc/kernel-link") == kernel
    assert target.read_bytes("/boot/current") == kernel
    assert target.read_bytes("/etc/up-and-over") == host("usr/bin/tool").read_bytes()
    assert target.stat("/bin").is_dir
    assert target.stat("/bin/tool").mode == os.lstat(host("usr/bin/tool")).st_mode


def test_readlink_and_lstat(target: Target) -> None:
    for rel, link in ti.LINKS:
        assert target.readlink("/" + rel) == link, rel
        got = target.stat("/" + rel, follow=False)
        assert got.is_symlink and got.size == len(link), rel
    assert target.readlink("/bin/../etc/os-release") == "../usr/lib/os-release"
    with pytest.raises(OSError):
        target.readlink("/etc/hostname")


def test_loops_and_dangling_links(target: Target) -> None:
    assert not target.exists("/etc/loop-a")
    with pytest.raises(OSError) as loop:
        target.read_bytes("/etc/loop-a")
    assert loop.value.errno == errno.ELOOP
    assert not target.exists("/etc/dangling")
    with pytest.raises(FileNotFoundError):
        target.stat("/etc/dangling")
    assert target.stat("/etc/dangling", follow=False).is_symlink


def test_missing_and_wrong_kinds(target: Target) -> None:
    assert target.exists("/etc/hostname") and target.exists("/bin/tool")
    assert not target.exists("/etc/nope")
    with pytest.raises(FileNotFoundError):
        target.read_bytes("/etc/nope")
    with pytest.raises(FileNotFoundError):
        target.stat("/nope/deeper")
    with pytest.raises(FileNotFoundError):
        target.iterdir("/nope")
    with pytest.raises(NotADirectoryError):
        target.iterdir("/etc/hostname")
    with pytest.raises(NotADirectoryError):
        target.read_bytes("/etc/hostname/inside")
    with pytest.raises(IsADirectoryError):
        target.read_bytes("/etc")


def test_unrepresentable_paths_are_missing(target: Target) -> None:
    """Paths read from image content may hold a NUL or an undecodable byte: simply missing."""
    for path in ("/etc/host\0name", "/etc/\udcff", "/boot/\0", "/\ud800/x"):
        assert not target.exists(path), path
        assert target.glob(path) == [], path
        with pytest.raises(FileNotFoundError):
            target.read_bytes(path)
        with pytest.raises(FileNotFoundError):
            target.stat(path, follow=False)


@pytest.mark.parametrize("rel", ["etc", "etc/ssh/sshd_config.d", "boot", "boot/grub", "usr/lib",
                                 "home/alice", "var/log/empty", "boot/efi"])
def test_iterdir(target: Target, rel: str) -> None:
    want = sorted(os.listdir(host(rel)))
    got = target.iterdir("/" + rel)
    if rel == "boot" and "lost+found" in got:  # a separate ext /boot has its own
        got.remove("lost+found")
    assert got == want


def test_iterdir_through_a_link(target: Target) -> None:
    assert target.iterdir("/bin") == sorted(os.listdir(host("usr/bin")))


def test_glob(target: Target) -> None:
    assert target.glob("/etc/ssh/sshd_config.d/*.conf") == [
        "/etc/ssh/sshd_config.d/10-first.conf", "/etc/ssh/sshd_config.d/20-second.conf"]
    assert target.glob("/etc/ssh/sshd_config.d/.*.conf") == [
        "/etc/ssh/sshd_config.d/.hidden.conf"]
    assert target.glob("/boot/vmlinuz-*") == ["/boot/vmlinuz-6.1.0-13-cloud-amd64"]
    assert target.glob("/bin/t*") == ["/bin/tool"]
    assert target.glob("/home/*/.bash_history") == ["/home/alice/.bash_history"]
    assert target.glob("/etc/loop-?") == ["/etc/loop-a", "/etc/loop-b"]  # links, even broken
    assert target.glob("/etc/hostname") == ["/etc/hostname"]
    assert target.glob("/etc/nothing-*") == []
    assert target.glob("/etc/[a-f]*") == ["/etc/abs-link", "/etc/dangling", "/etc/fstab"]
