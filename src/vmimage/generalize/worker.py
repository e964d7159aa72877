"""Generalize a disk image's filesystems, mounted in a mount namespace of our own.

Run as ``unshare --mount --propagation private python -m vmimage.generalize.worker`` with a
JSON request on stdin (:func:`request`). The mounts exist only in that namespace: no one
else sees the image's files while they change, and however the worker ends (finished, an
error, SIGKILL) the kernel unmounts them and detaches the loop devices (``mount -o loop``
makes them auto-clearing), so an interrupted run leaves nothing attached and a rerun finds the
image as a rerun on a directory would. The answer is JSON on stdout: the plan, what was done,
or a one-line error.

Mount points are resolved inside the image's root (a ``/boot`` that is a symbolic link to
the host's ``/etc`` must not put the boot partition over the host's ``/etc``): the directory
is opened by :class:`WritableRoot` and handed to ``mount`` as ``/proc/PID/fd/N``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from vmimage.errors import InputError, VmimageError
from vmimage.generalize.image import Extent
from vmimage.generalize.rootfs import WritableRoot

_EXT = ("ext2", "ext3", "ext4")


def command() -> list[str]:
    """How the application layer starts a worker."""
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    return [unshare, "--mount", "--propagation", "private", sys.executable, "-m",
            "vmimage.generalize.worker"]


def request(image: str, extents: tuple[Extent, ...], operations: list[str],
            options: dict[str, Any], apply: bool) -> str:
    """The JSON a worker reads on stdin."""
    return json.dumps({"image": image, "extents": [e.to_dict() for e in extents],
                       "operations": operations, "options": options, "apply": apply})


def _options(extent: Extent, writable: bool) -> str:
    opts = ["loop", f"offset={extent.offset}", f"sizelimit={extent.size}", "nosuid", "nodev",
            "noexec"]
    if not writable:
        opts.append("ro")
        if extent.fs_type in _EXT:
            opts.append("noload")  # no journal replay: not one byte written
        elif extent.fs_type == "xfs":
            opts.append("norecovery")
    if extent.fs_type == "xfs":
        opts.append("nouuid")  # a copy of an image shares its UUID
    return ",".join(opts)


def _mount(image: str, extent: Extent, where: str, writable: bool) -> None:
    proc = subprocess.run(["mount", "-t", extent.fs_type, "-o", _options(extent, writable),
                           image, where], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        reason = lines[0].rpartition(": ")[2] if lines else f"exit status {proc.returncode}"
        raise InputError(image, f"cannot mount {extent.point} ({extent.fs_type} at byte "
                                f"{extent.offset}): {reason.rstrip('.')}")


@contextmanager
def mounted(image: str, extents: list[Extent], writable: bool, notes: list[str]
            ) -> Iterator[str]:
    """The image's root with its other filesystems mounted on it; unmounted after, so
    every write has reached the image file when this returns. What could not be mounted
    besides the root (no such directory, a filesystem this kernel lacks) goes to ``notes``:
    its files are not generalized, and the plan says so."""
    top = tempfile.mkdtemp(prefix="vmimage-root-")
    try:
        _mount(image, extents[0], top, writable)
        try:
            with WritableRoot(top) as root, ExitStack() as held:
                for extent in extents[1:]:
                    fd = held.enter_context(_directory(root, extent.point))
                    if fd is None:
                        notes.append(f"{extent.point} is not a directory of the root: its "
                                     f"{extent.fs_type} filesystem was not mounted, its files "
                                     "are not generalized")
                        continue
                    try:
                        _mount(image, extent, f"/proc/{os.getpid()}/fd/{fd}", writable)
                    except InputError as exc:
                        notes.append(f"{exc.problem}: its files are not generalized")
            yield top
        finally:
            subprocess.run(["umount", "--recursive", top], capture_output=True, check=False)
    finally:
        Path(top).rmdir()


@contextmanager
def _directory(root: WritableRoot, point: str) -> Iterator[int | None]:
    """A descriptor of mount point ``point`` resolved inside the root (None: not there)."""
    fd = root.directory(point)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def work(raw: dict[str, Any]) -> dict[str, Any]:
    """Mount, plan (and apply when asked), unmount; the answer for the parent.

    Applying first plans on a read-only mount without journal replay: a second run that
    finds nothing to do must not change a byte (a read-write mount alone rewrites the
    superblock). Only when there is work is the image mounted for writing, in this same
    worker (a second process would cost more than a second mount).
    """
    from vmimage.generalize.plan import OPERATIONS, Options, apply, make_plan

    extents = [Extent(**e) for e in raw["extents"]]
    chosen = [OPERATIONS[name] for name in raw["operations"]]
    options = Options(**raw["options"])
    notes: list[str] = []
    with mounted(raw["image"], extents, False, notes) as top, WritableRoot(top) as root:
        plan = make_plan(root, chosen, options)
    done = []
    if raw["apply"] and plan.actions:
        notes.clear()
        with mounted(raw["image"], extents, True, notes) as top, WritableRoot(top) as root:
            plan = make_plan(root, chosen, options)
            done = apply(root, plan)
    return {"plan": [a.to_dict() for a in plan.actions],
            "warnings": [{"operation": "mount", "text": n} for n in notes]
            + [n.to_dict() for n in plan.warnings],
            "done": [a.to_dict() for a in done]}


def main() -> int:
    """Read the request, answer on stdout; an error is ``{"error": [source, problem]}``."""
    from vmimage.generalize import load_operations

    load_operations()
    try:
        answer = work(json.load(sys.stdin))
    except VmimageError as exc:
        source = getattr(exc, "source", "generalize")
        answer = {"error": [str(source), getattr(exc, "problem", str(exc))]}
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
