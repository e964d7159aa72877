"""``vmimage vhd validate``: the disk-format checks on one file, for one role and profile."""

from __future__ import annotations

import os

from vmimage.checks.context import CheckContext
from vmimage.checks.engine import run_checks, select
from vmimage.disk.inspect import inspect_disk
from vmimage.findings import Finding
from vmimage.profiles import Profile


def validate_disk(path: str | os.PathLike[str], role: str, profile: Profile) -> list[Finding]:
    """Findings of every disk-format check; raises InputError when the file cannot be read."""
    info = inspect_disk(path)
    ctx = CheckContext(profile=profile, role=role, disk=info, capabilities=frozenset({"disk"}))
    # The format rules only: layout checks (first MiB, LVM) need the image's partitions.
    disk_checks = [m for m in select() if m.needs == frozenset({"disk"}) and m.os == "any"]
    return run_checks(disk_checks, ctx)
