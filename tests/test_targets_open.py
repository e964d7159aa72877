"""``open_target``: what TARGET may be; and opening a 30 GiB image must not read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import targets_images as ti
from vmimage.disk.convert import convert
from vmimage.errors import InputError, UnsupportedError
from vmimage.targets.base import Target
from vmimage.targets.image import ImageTarget
from vmimage.targets.open import open_target
from vmimage.targets.rootdir import RootDirTarget

GiB, MiB = 1024**3, ti.MiB


def test_a_directory_is_a_root_directory_target() -> None:
    target = open_target(str(ti.full_tree()))
    assert isinstance(target, RootDirTarget) and isinstance(target, Target)
    assert target.read_text("/etc/hostname") == ti.HOSTNAME


def test_a_file_is_an_image_target() -> None:
    target = open_target(ti.gpt_image())
    try:
        assert isinstance(target, ImageTarget) and isinstance(target, Target)
        assert target.name == str(ti.gpt_image())
        assert target.read_text("/etc/hostname") == ti.HOSTNAME
    finally:
        target.close()


@pytest.mark.parametrize(("spec", "error", "message"), [
    ("/nonexistent/disk.vhd", InputError, "/nonexistent/disk.vhd: no such file or directory"),
    ("/dev/null", InputError, "/dev/null: is neither a disk image file nor a directory"),
    ("winrm://vm.example", UnsupportedError,
     "winrm://vm.example: winrm targets are not supported yet"),
    ("ssh://vm.example", InputError, "ssh://vm.example: expected ssh://USER@HOST[:PORT]"),
    # A URL is a blob, judged by the fetch policy before any lookup or request.
    ("https://account.blob.core.example/vhds/os.vhd?sig=x", InputError,
     "https://account.blob.core.example/vhds/os.vhd: account.blob.core.example is not an "
     "Azure blob endpoint"),
    ("ftp://account.blob.core.windows.net/vhds/os.vhd", InputError,
     "ftp://...: unknown kind of target"),
])
def test_unusable_specs(spec: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as refused:
        open_target(spec)
    assert message in str(refused.value)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.vhd").touch()
    with pytest.raises(InputError, match="is empty"):
        open_target(str(tmp_path / "empty.vhd"))


@pytest.fixture(scope="module")
def big_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30 GiB sparse disk: GPT, a 30 GiB ext4 root holding the tree, as a fixed VHD."""
    work = tmp_path_factory.mktemp("big")
    raw = ti.blank(work / "disk.raw", 30 * GiB)
    ti.sfdisk(raw, "label: gpt\nstart=2048, type=L\n")
    ti.mkfs_ext(raw, MiB, 30 * GiB - 2 * MiB, ti.full_tree(), "ext4", "root")
    convert(raw, work / "disk.vhd")
    raw.unlink()
    return work / "disk.vhd"


def test_opening_a_30_gib_vhd_reads_little(big_disk: Path) -> None:
    """How little is read; how fast is bench/'s business (docs/benchmarks.md)."""
    with ImageTarget(big_disk) as target:
        assert target.capabilities == {"disk", "filesystem"}
        assert target.read_text("/etc/os-release").startswith("PRETTY_NAME=")
        assert target.disk_info.format == "vhd-fixed"
        assert target.layout().partitions[0].size == 30 * GiB - 2 * MiB
        assert target.bytes_read < 4 * MiB, target.bytes_read
