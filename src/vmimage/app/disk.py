"""Validate a disk file (``vmimage vhd validate``) and decide whether it may be uploaded.

What ``vmimage upload`` accepts: the format rules of ``vhd validate``, not the role's sizes.

Rulings: upload applies the format rules (fixed VHD, valid footer, whole MiB, length = virtual
size + 512) and leaves the size bounds of a role to ``vhd validate`` and ``check``, because one
upload command serves OS and data disks alike. ``--allow-any`` uploads any file whose length is
a multiple of 512, which a page blob needs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vmimage.disk.convert import ConvertResult, convert, convert_in_place, create, resize
from vmimage.disk.inspect import DiskInfo, inspect_disk
from vmimage.errors import InputError
from vmimage.inputs import check_input
from vmimage.profiles import DEFAULT_PROFILE, Profile

if TYPE_CHECKING:
    from vmimage.findings import Finding
    from vmimage.report.model import Report

# The rules (vmimage.checks, vmimage.rules) and the storage limits are imported inside the
# functions that judge a disk: ``vhd convert --in-place`` and ``vhd create`` only write a
# footer, and must start in well under 0.15 s (docs/benchmarks.md), which importing every
# rule module would not allow.

#: The disk-format checks an upload must pass (the role-size and sparseness checks are left out).
__all__ = ["FORMAT_CHECKS", "ConvertResult", "DiskInfo", "check_uploadable", "convert",
           "convert_in_place", "create", "inspect", "resize", "validate_disk"]

FORMAT_CHECKS = ("VHD-FIXED-FORMAT", "VHD-FOOTER-VALID", "VHD-WHOLE-MIB", "VHD-FILE-LENGTH")


def inspect(path: str | os.PathLike[str], lenient: bool = False) -> DiskInfo:
    """``vmimage vhd inspect``: the format, sizes, allocation, footer and the problems found.

    The disk layer's conversions (:func:`convert`, :func:`convert_in_place`, :func:`create`,
    :func:`resize`) are use cases as they stand and are re-exported here, so the CLI calls
    this layer only.

    Raises:
        InputError: the file cannot be read, or (without ``lenient``) its footer is corrupt.
    """
    return inspect_disk(path, lenient=lenient)


def validate_disk(path: str | os.PathLike[str], role: str, profile_name: str | Profile
                  ) -> list[Finding]:
    """One finding per disk rule for ``role``; raises InputError when the file cannot be read.

    Only the disk rules (format, footer, size, sparseness): the layout rules (first MiB, LVM)
    need the image's partitions and are ``check``'s.
    """
    return _disk_findings(inspect_disk(path), role, profile_name)


def _disk_findings(info: DiskInfo, role: str, profile_name: str | Profile) -> list[Finding]:
    from vmimage.app.catalog import profile as load_profile
    from vmimage.checks.context import CheckContext
    from vmimage.rules import Subject, rules_for, run_rules

    ctx = CheckContext(profile=load_profile(profile_name, (Subject.DISK,)), role=role, disk=info,
                       capabilities=frozenset({"disk"}))
    return run_rules(rules_for(Subject.DISK, role=role), ctx)


def check_uploadable(path: str | os.PathLike[str], allow_any: bool) -> int:
    """The file's length when it may be uploaded; otherwise an InputError naming the rule.

    Raises:
        InputError: unreadable, not a fixed VHD by the format rules (without ``allow_any``), or
            a length a page blob cannot have.
    """
    from vmimage.app.catalog import profile as load_profile
    from vmimage.checks.context import CheckContext
    from vmimage.findings import Status
    from vmimage.rules import Subject, rules_for, run_rules
    from vmimage.storage.pages import MAX_PAGE_BLOB, PAGE

    if allow_any:
        size = _plain_size(path)
    else:
        info = inspect_disk(path)
        size = info.file_size
        ctx = CheckContext(profile=load_profile(DEFAULT_PROFILE, (Subject.DISK,)), role="data", disk=info,
                           capabilities=frozenset({"disk"}))
        metas = rules_for(Subject.DISK, ids=FORMAT_CHECKS)
        failed = [f for f in run_rules(metas, ctx) if f.status is Status.FAIL]
        if failed:
            reasons = "; ".join(f"{f.check_id}: {f.message}" for f in failed)
            raise InputError(path, f"not uploadable as an Azure VHD ({reasons}); --allow-any "
                                   "uploads it as it is")
    if size % PAGE:
        raise InputError(path, f"length {size} is not a multiple of 512 bytes, which a page "
                               "blob requires")
    if size > MAX_PAGE_BLOB:
        raise InputError(path, f"length {size} exceeds Azure's largest page blob (8 TiB)")
    return size


def _plain_size(path: str | os.PathLike[str]) -> int:
    """The length of a readable, non-empty regular file (``--allow-any`` reads no format)."""
    size = check_input(path).st_size  # a FIFO or a device is refused, never opened
    if size == 0:
        raise InputError(path, "is empty (0 bytes): nothing to upload")
    return size


def validate_report(path: str | os.PathLike[str], role: str, profile_name: str | Profile
                    ) -> Report:
    """:func:`validate_disk` as a report, so ``vhd validate`` has every format and option
    ``check`` has (and ``certify`` puts it in its package)."""
    import time

    from vmimage.app.catalog import profile as load_profile
    from vmimage.app.results import findings_report, now
    from vmimage.rules import Subject

    policy = load_profile(profile_name, (Subject.DISK,))
    started, clock = now(), time.perf_counter()
    info = inspect_disk(path)
    findings = _disk_findings(info, role, policy)
    report = findings_report(findings, os.fspath(path), "image", policy.name, started,
                             lambda: time.perf_counter() - clock, role=role)
    report.disk = info.to_dict()
    return report
