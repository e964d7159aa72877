"""Run the disk and system rules that fit one disk: the image family's only job.

The rules are chosen by the disk's role (rulings): an OS disk gets every rule of its OS family
and the disk rules; a data disk gets the disk rules and the few system rules that name data
disks (no swap partition), nothing about boot, the first MiB, the root partition or the OS.
"""

from __future__ import annotations

from collections.abc import Iterable

from vmimage.checks.context import CheckContext
from vmimage.findings import Finding
from vmimage.rules import RuleMeta, Subject, rules_for, run_rules


def image_rules(role: str, os: str, only: Iterable[str] | None = None) -> list[RuleMeta]:
    """The rules for a disk of ``role`` holding ``os``, in ID order (``only``: just those).

    Raises:
        KeyError: a name in ``only`` is no registered rule.
    """
    ids = list(only) if only is not None else None
    metas = rules_for(Subject.DISK, role=role, ids=ids) + \
        rules_for(Subject.SYSTEM, os=os, role=role, ids=ids)
    return sorted(metas, key=lambda m: m.id)


def run_image_rules(ctx: CheckContext, os: str,
                    only: Iterable[str] | None = None) -> list[Finding]:
    """One finding per rule that fits the context's role."""
    return run_rules(image_rules(ctx.role, os, only), ctx)
