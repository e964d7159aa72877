"""Shared fixtures: the compliant Debian disk (built once, cached on disk) and sparse copies."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import distro_roots as dr
from tests import imagebuild as ib

# Every check here compares with no security data unless a test asks for it (the tests of
# LINUX-SECURITY-PATCHES pass --security-data): the verdicts of the other tests must not
# depend on what the distribution released since the cached root was built, nor on the
# network. Subprocesses inherit it.
os.environ.setdefault("VMIMAGE_SECURITY_DATA", "off")


@pytest.fixture(scope="session")
def compliant_vhd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compliant Debian 12 on a 30 GiB sparse fixed VHD (MBR, ext4 root)."""
    disk = ib.compliant_copy(tmp_path_factory.mktemp("compliant") / "disk.raw")
    return ib.to_vhd(disk, method="vmimage")


@pytest.fixture
def violation_copy() -> Iterator[ib.Disk]:
    """A private sparse copy of the compliant raw disk, to break one rule in."""
    with ib.compliant_disk_copy() as disk:
        yield disk


@pytest.fixture(scope="session")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> dr.RpmBuilder:
    """Builds RPMs with the real rpmbuild, once per session."""
    return dr.RpmBuilder(tmp_path_factory.mktemp("rpms"))


@pytest.fixture
def made() -> Iterator[Callable[[Path], Path]]:
    """Register a distro root to delete after the test."""
    roots: list[Path] = []

    def keep(root: Path) -> Path:
        roots.append(root)
        return root

    yield keep
    for root in roots:
        dr.discard(root)
