"""What a check function receives: the target, its facts, the disk, and the profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmimage.profiles import Profile

if TYPE_CHECKING:
    from vmimage.disk.inspect import DiskInfo


@dataclass
class CheckContext:
    """One run's inputs. A missing part (no disk for a live target) makes checks needing it skip.

    ``role`` is what the disk is for: ``os-linux``, ``os-windows`` or ``data``.
    ``target`` and ``facts`` are typed loosely here to keep this module free of the heavier
    layers; the check modules import the concrete types they read.
    """

    profile: Profile
    role: str = "os-linux"
    disk: DiskInfo | None = None
    target: object | None = None
    facts: object | None = None
    capabilities: frozenset[str] = field(default_factory=frozenset)
