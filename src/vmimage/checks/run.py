"""Certify one target: open it, gather facts lazily, run every applicable check, build a report."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from vmimage import __version__
from vmimage.checks.context import CheckContext
from vmimage.checks.engine import run_checks, select
from vmimage.facts import Facts
from vmimage.profiles import Profile
from vmimage.report.model import Report
from vmimage.targets.open import open_target


def _system_summary(facts: Facts) -> dict[str, str]:
    osr = facts.os_release
    if osr is None:
        return {}
    return {"os": osr.pretty_name or osr.id, "id": osr.id, "version": osr.version_id}


def check_target(spec: str, profile: Profile, role: str = "os-linux",
                 only: list[str] | None = None) -> Report:
    """Run the Linux checks on ``spec`` (an image file or a root directory).

    Raises:
        InputError: the target cannot be opened (the message names it and says why).
    """
    started = datetime.now(UTC)
    clock = time.perf_counter()
    target = open_target(spec)
    try:
        facts = Facts(target)
        disk = getattr(target, "disk_info", None)
        ctx = CheckContext(profile=profile, role=role, disk=disk, target=target, facts=facts,
                           capabilities=target.capabilities)
        findings = run_checks(select(only, os="linux"), ctx)
        system = _system_summary(facts) if "filesystem" in target.capabilities else {}
        bytes_read = getattr(target, "bytes_read", None)
        kind = "image" if "disk" in target.capabilities else "directory"
        return Report(tool_version=__version__, target=target.name, target_kind=kind,
                      profile=profile.name, started=started,
                      duration_s=time.perf_counter() - clock, findings=findings, system=system,
                      bytes_read=bytes_read, disk=disk.to_dict() if disk else None)
    finally:
        target.close()
