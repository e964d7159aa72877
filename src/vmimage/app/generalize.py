"""Generalize a root directory (``vmimage generalize``): plan, show, apply, prove.

The proof is ``check`` itself: after applying, the rules the applied operations claim are run
on the result, so a publisher sees in the same run that the leftovers are gone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vmimage.errors import InputError
from vmimage.generalize import ops as _ops  # noqa: F401 - registers the operations
from vmimage.generalize.plan import NO_OPTIONS, OPERATIONS, Action, Operation, Options, Plan, apply, make_plan
from vmimage.generalize.rootfs import WritableRoot
from vmimage.report.model import Report

__all__ = ["OPERATIONS", "Generalized", "Operation", "Options", "Plan", "choose", "fixed_by",
           "plan_for", "run"]


def choose(only: Iterable[str] = (), enable: Iterable[str] = (),
           disable: Iterable[str] = ()) -> list[Operation]:
    """The operations to run: ``only`` if given, else the defaults plus ``enable`` minus
    ``disable``; in registry order.

    Raises:
        InputError: an unknown operation name.
    """
    names = set(only) | set(enable) | set(disable)
    unknown = sorted(names - OPERATIONS.keys())
    if unknown:
        raise InputError("--operations", f"unknown operation(s) {', '.join(unknown)} "
                                         "(vmimage generalize --list-operations)")
    wanted = set(only) if only else {n for n, op in OPERATIONS.items() if op.default}
    wanted = (wanted | set(enable)) - set(disable)
    return [op for name, op in OPERATIONS.items() if name in wanted]


def fixed_by(check_id: str) -> list[str]:
    """The operations that make ``check_id`` pass (``vmimage checks show ID`` lists them)."""
    return [name for name, op in OPERATIONS.items() if check_id in op.fixes]


def _open(target: str) -> WritableRoot:
    """The target as a writable root: a directory holding a Linux root, not the host's /.

    Raises:
        InputError: not a directory, not a Linux root, the running system's own root, or
            read-only.
    """
    if not Path(target).is_dir():
        raise InputError(target, "generalize takes a root directory for now (disk images: "
                                 "loop-mount the root filesystem first)")
    if Path(target).samefile("/"):
        raise InputError(target, "is the running system's own root: refused")
    root = WritableRoot(target)
    if root.entry("/etc/os-release") is None and root.entry("/usr/lib/os-release") is None:
        root.close()
        raise InputError(target, "is not a Linux root (no /etc/os-release)")
    if not os.access(target, os.W_OK):
        root.close()
        raise InputError(target, "is read-only")
    return root


def plan_for(target: str, chosen: list[Operation], options: Options = NO_OPTIONS) -> Plan:
    """What the operations would do to ``target``; nothing is changed."""
    with _open(target) as root:
        return make_plan(root, chosen, options)


@dataclass
class Generalized:
    """A plan, what was done, and the checks run on the result."""

    plan: Plan
    done: list[Action]
    report: Report | None


def run(target: str, chosen: list[Operation], profile: str, options: Options = NO_OPTIONS
        ) -> Generalized:
    """Plan, apply, then run the checks the operations claim on the result."""
    from vmimage.app.check import check_target

    with _open(target) as root:
        plan = make_plan(root, chosen, options)
        done = apply(root, plan)
    report = check_target(target, profile, "os-linux", plan.fixes) if plan.fixes else None
    return Generalized(plan, done, report)
