"""What a check function receives: the target, its facts, the disk, and the profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmimage.profiles import Profile

if TYPE_CHECKING:
    from vmimage.disk.inspect import DiskInfo
    from vmimage.facts import Facts
    from vmimage.facts.security import SecurityProvider
    from vmimage.targets.base import Target


@dataclass
class CheckContext:
    """One run's inputs. A missing part (no disk for a live target) makes checks needing it skip.

    ``role`` is what the disk is for: ``os-linux``, ``os-windows`` or ``data``.
    """

    profile: Profile
    role: str = "os-linux"
    disk: DiskInfo | None = None
    target: Target | None = None
    facts: Facts | None = None
    capabilities: frozenset[str] = field(default_factory=frozenset)
    #: The distribution's security data, compared with the installed packages on demand
    #: (``--security-data``); None: not compared (the rule says so).
    security: SecurityProvider | None = None

    @property
    def system(self) -> Facts:
        """The facts of the target; only for checks that declare ``needs=("filesystem",)``."""
        assert self.facts is not None, "the engine skips filesystem checks without facts"
        return self.facts
