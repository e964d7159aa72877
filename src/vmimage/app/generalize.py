"""Generalize a root directory or a disk image (``vmimage generalize``): plan, show, apply,
prove.

The proof is ``check`` itself: after applying, the rules the applied operations claim are run
on the result (for an image, read back from the image file by vmimage's own readers, not
through the mount that wrote it), so a publisher sees in the same run that the leftovers are
gone.

A disk image is changed through the kernel's filesystems, mounted in a worker process of its
own mount namespace (:mod:`vmimage.generalize.worker`); ``--output COPY`` generalizes a
reflinked or sparse copy made beside COPY and renamed into place only when complete, so an
interrupted run leaves the input as it was and no half-generalized COPY.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from vmimage.errors import InputError
from vmimage.generalize import load_operations
from vmimage.generalize.image import is_image, locate, refuse_in_use, refuse_unwritable
from vmimage.generalize.plan import (
    NO_OPTIONS,
    OPERATIONS,
    Action,
    Note,
    Operation,
    Options,
    Plan,
    apply,
    make_plan,
)
from vmimage.generalize.rootfs import WritableRoot
from vmimage.report.model import Report

__all__ = ["OPERATIONS", "Generalized", "Operation", "Options", "Plan", "choose", "fixed_by",
           "plan_for", "run"]

load_operations()

#: A root holds one of these (RHEL 6 and SLES 11 predate os-release; ``check`` reads them).
RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release", "/etc/redhat-release",
                 "/etc/SuSE-release", "/etc/debian_version")


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


def _open(target: str, options: Options = NO_OPTIONS) -> WritableRoot:
    """The target as a root: a directory holding a Linux root, not the host's /.

    Raises:
        InputError: not a directory or image, not a Linux root, the running system's root.
    """
    try:
        is_dir = Path(target).is_dir()
    except OSError as exc:
        raise InputError(target, f"cannot be opened: {exc.strerror}") from None
    if not is_dir:
        raise InputError(target, "is neither a root directory nor a disk image file")
    if Path(target).samefile("/") and not options.live_host:
        raise InputError(target, "is the running system's own root: refused (inside the VM "
                                 "to capture, add --live-host)")
    root = WritableRoot(target)
    if not any(root.entry(p) is not None for p in RELEASE_FILES):
        root.close()
        raise InputError(target, "is not a Linux root (no /etc/os-release or release file)")
    return root


def _require(target: str) -> None:
    """Refuse a target that is not there, before anything looks at it further."""
    try:
        Path(target).stat()
    except FileNotFoundError:
        raise InputError(target, "is neither a root directory nor a disk image file "
                                 "(not found)") from None
    except OSError as exc:
        raise InputError(target, f"cannot be opened: {exc.strerror}") from None


def _may_change(target: str) -> None:
    """Refuse a target that must not be changed in place (it exists: :func:`_require`)."""
    refuse_unwritable(target)
    if is_image(target):
        refuse_in_use(target)


def plan_for(target: str, chosen: list[Operation], options: Options = NO_OPTIONS) -> Plan:
    """What the operations would do to ``target``; nothing is changed (an image's
    filesystems are mounted read-only, without journal replay)."""
    if is_image(target):
        refuse_in_use(target)  # a loop device or a VM on it: its filesystem is not still
        return _in_worker(target, chosen, options, apply=False)[0]
    with _open(target, options) as root:
        return make_plan(root, chosen, options)


@dataclass
class Generalized:
    """A plan, what was done, the checks run on the result, and where the result is."""

    plan: Plan
    done: list[Action]
    report: Report | None
    result: str


def run(target: str, chosen: list[Operation], profile: str, options: Options = NO_OPTIONS,
        output: str | None = None) -> Generalized:
    """Plan, apply (to ``target``, or to a copy that becomes ``output``), then run the
    checks the operations claim on the result.

    Raises:
        InputError: the target is refused (read-only, in use, not a Linux root...), or the
            output cannot be made.
    """
    from vmimage.app.check import check_target

    _require(target)
    if output is None:
        _may_change(target)
        plan, done = _apply(target, chosen, options)
        result = target
    else:
        plan, done = _apply_to_copy(target, Path(output), chosen, options)
        result = output
    # Nothing done, nothing to prove: the same checks passed before (or the plan warned).
    proving = plan.fixes if done or output is not None else []
    report = check_target(result, profile, "os-linux", proving) if proving else None
    return Generalized(plan, done, report, result)


def _apply(target: str, chosen: list[Operation], options: Options) -> tuple[Plan, list[Action]]:
    if is_image(target):
        return _in_worker(target, chosen, options, apply=True)
    with _open(target, options) as root:
        plan = make_plan(root, chosen, options)
        return plan, apply(root, plan)


def _apply_to_copy(target: str, out: Path, chosen: list[Operation], options: Options
                   ) -> tuple[Plan, list[Action]]:
    """Copy ``target`` beside ``out``, generalize the copy, rename it to ``out``."""
    from vmimage.disk import output

    output.check_output(out, force=False, src=Path(target).stat())
    image = is_image(target)
    if not image:
        _open(target).close()  # refuse a non-root before copying a tree
    tmp = out.with_name(f".{out.name}.{os.urandom(8).hex()}.partial")
    try:
        _copy(target, tmp, image)
        plan, done = _apply(str(tmp), chosen, options)
        os.replace(tmp, out)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    return plan, done


def _copy(target: str, tmp: Path, image: bool) -> None:
    """A reflinked or sparse copy of an image file, or ``cp -a`` of a root directory."""
    if not image:
        proc = subprocess.run(["cp", "-a", "--reflink=auto", "--sparse=always", "--",
                               target, str(tmp)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise InputError(str(tmp), "copying the root failed: "
                                       + (proc.stderr.strip().splitlines() or ["cp failed"])[-1])
        return
    from vmimage.disk import output
    from vmimage.disk.sparse import clone_or_copy

    src = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o644)
        try:
            clone_or_copy(src, dst, os.fstat(src).st_size)
            os.fsync(dst)
        except OSError as exc:
            raise InputError(str(tmp), f"copying the image failed: {output.problem(exc)}"
                             ) from None
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _in_worker(image: str, chosen: list[Operation], options: Options, apply: bool
               ) -> tuple[Plan, list[Action]]:
    """The plan, and what was done when ``apply``, by a worker that mounts the image's
    filesystems."""
    import json

    from vmimage.generalize import worker

    if os.geteuid() != 0:
        raise InputError(image, "generalizing a disk image needs root (its filesystems are "
                                "loop-mounted): run as root, or mount the root filesystem "
                                "and pass its directory")
    layout = locate(image)
    request = worker.request(image, layout.extents, [op.name for op in chosen],
                             asdict(options), apply)
    proc = subprocess.run(worker.command(), input=request, capture_output=True, text=True,
                          check=False)
    try:
        answer = json.loads(proc.stdout)
    except ValueError:
        reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise InputError(image, f"the generalize worker failed: {reason}") from None
    if "error" in answer:
        raise InputError(*answer["error"])
    plan = Plan(chosen, [_action(a) for a in answer["plan"]],
                [Note("image", n) for n in layout.notes] + [Note(**n) for n in answer["warnings"]])
    return plan, [_action(a) for a in answer["done"]]


def _action(raw: dict[str, str]) -> Action:
    return Action(raw["operation"], raw["action"], raw["path"], raw["reason"])
