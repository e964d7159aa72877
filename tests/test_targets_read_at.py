"""``Target.read_at``: parts of a file, read without reading the rest, alike for a directory,
a generalize plan's view, an ext4 image and an NTFS volume (``ntfscat`` is the oracle)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import targets_images as ti
from tests import winimage as wi
from vmimage.generalize.rootfs import OverlayTarget
from vmimage.targets.base import MiB, UnreadableError
from vmimage.targets.image import ImageTarget
from vmimage.targets.rootdir import RootDirTarget

CONTENT = bytes(range(256)) * 1000  # 256,000 bytes


def _tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "data").write_bytes(CONTENT)
    (root / "etc" / "link").symlink_to("data")
    (root / "etc" / "escape").symlink_to("/../../etc/data")  # resolves inside the root
    os.mkfifo(root / "etc" / "fifo")
    return root


@pytest.mark.parametrize("path", ["/etc/data", "/etc/link", "/etc/escape"])
def test_a_directory_reads_parts(tmp_path, path):
    target = RootDirTarget(_tree(tmp_path / "root"))
    assert target.read_at(path, 1000, 5000) == CONTENT[1000:6000]
    assert target.read_at(path, len(CONTENT) - 10, 100) == CONTENT[-10:]
    assert target.read_at(path, len(CONTENT) + 1, 100) == b""
    assert target.read_at(path, 0, 0) == b""


def test_a_directory_refuses_what_read_bytes_refuses(tmp_path):
    target = RootDirTarget(_tree(tmp_path / "root"))
    with pytest.raises(UnreadableError, match="not a regular file"):
        target.read_at("/etc/fifo", 0, 10)
    with pytest.raises(IsADirectoryError):
        target.read_at("/etc", 0, 10)
    with pytest.raises(FileNotFoundError):
        target.read_at("/etc/absent", 0, 10)
    with pytest.raises(ValueError):
        target.read_at("/etc/data", -1, 10)


def test_a_plan_view_reads_planned_content(tmp_path):
    root = _tree(tmp_path / "root")
    view = OverlayTarget(str(root), {"/etc/data": "planned text"}, {"/etc/link"})
    assert view.read_at("/etc/data", 8, 100) == b"text"
    with pytest.raises(FileNotFoundError):
        view.read_at("/etc/link", 0, 1)


@pytest.fixture(scope="module")
def ext4_image(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("ext4")
    tree = _tree(work / "tree")
    (tree / "etc" / "fifo").unlink()  # mkfs -d copies a FIFO as one; not needed here
    (tree / "etc" / "os-release").write_text("ID=debian\n")
    disk = ti.blank(work / "disk.raw", 64 * MiB)
    ti.sfdisk(disk, "label: dos\nstart=2048, type=83\n")
    ti.mkfs_ext(disk, MiB, 63 * MiB, tree)
    return disk


def test_an_ext4_image_reads_only_the_part(ext4_image):
    with ImageTarget(ext4_image) as target:
        before = target.bytes_read
        assert target.read_at("/etc/link", 200_000, 4096) == CONTENT[200_000:204_096]
        assert target.bytes_read - before <= 128 * 1024  # the cache's blocks, not the file
        assert target.read_at("/etc/data", 255_990, 100) == CONTENT[255_990:]


def test_an_ntfs_volume_reads_parts_as_ntfscat_reads_the_file(tmp_path):
    spec = wi.WinSpec(software_padding_mib=8)
    image = wi.build_windows(tmp_path / "win.raw", spec, vhd=False)
    part = wi.plan(spec).part("os")
    hive = "Windows/System32/config/SOFTWARE"
    loop = subprocess.run(["losetup", "-f", "--show", "-r", "-o", str(part.start),
                           "--sizelimit", str(part.size), str(image)], capture_output=True,
                          text=True, check=True).stdout.strip()
    try:
        whole = subprocess.run(["ntfscat", loop, hive], capture_output=True,
                               check=True).stdout
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)
    assert len(whole) > 8 * MiB
    with ImageTarget(image) as target:
        before = target.bytes_read
        # any case, as Windows looks names up
        assert target.read_at("/windows/system32/CONFIG/software", 5 * MiB + 7, 9000) == \
            whole[5 * MiB + 7:5 * MiB + 9007]
        assert target.read_at("/" + hive, len(whole) - 3, 10) == whole[-3:]
        assert target.bytes_read - before < 1 * MiB
