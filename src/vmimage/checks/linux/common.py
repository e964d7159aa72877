"""Small helpers shared by the Linux checks."""

from __future__ import annotations

from vmimage.checks.context import CheckContext
from vmimage.errors import VmimageError
from vmimage.targets.base import DiskLayout, Partition
from vmimage.units import format_size

#: Partitions that never count as "another root partition" (rulings).
BOOT_HELPERS = frozenset({"efi", "bios-boot"})


def layout_of(ctx: CheckContext) -> DiskLayout:
    """The target's disk layout; checks that call this declare ``needs=("disk", ...)``."""
    assert ctx.target is not None
    layout = ctx.target.layout()
    if layout is None:
        raise VmimageError("the target has no disk layout")
    return layout


def disk_name(ctx: CheckContext) -> str:
    """The image path, for evidence."""
    return ctx.target.name if ctx.target is not None else "disk"


def where(part: Partition) -> str:
    """How a finding names a partition: ``p2 (start 1048576, 2 GiB, ext4, /boot)``."""
    mount = f", {part.mountpoint}" if part.mountpoint else ""
    return f"{part.name} (start {part.start}, {format_size(part.size)}, {part.fs_type}{mount})"



def is_file(ctx: CheckContext, path: str) -> bool:
    """Whether ``path`` exists in the target and is a regular file (symlinks followed)."""
    assert ctx.target is not None
    try:
        return ctx.target.stat(path).is_file
    except OSError:
        return False


def lines_of(text: str) -> list[tuple[int, str]]:
    """Numbered lines with comments (``#``) and blank lines dropped."""
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append((number, line))
    return out
