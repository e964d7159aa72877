"""What the distribution's security data says of the installed packages (LNX-PATCHES): the
packages that have a security update, each with the installed and the fixed version and the
advisories that name the fix, and those the distribution no longer supports.

The verdict is made by :mod:`vmimage.secdata` (which fetches or reads the data) and handed to
the rule through the check context as a provider: the rule only judges it. A provider that
cannot decide raises :class:`SecurityDataUnavailable` with the reason, and the rule skips with
it: a verdict never rests on data that was not read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmimage.errors import VmimageError

if TYPE_CHECKING:
    from vmimage.facts import Facts


class SecurityDataUnavailable(VmimageError):
    """No security data could be had for this system (offline, no source, unknown family)."""


@dataclass(frozen=True)
class Update:
    """An installed package with a security update."""

    package: str
    installed: str
    fixed: str
    #: The advisories (DSA/DLA, USN, RHSA/ALSA/RLSA, SUSE-SU) that name the fix, if the data does.
    advisories: tuple[str, ...] = ()
    #: The source package (Debian) or the repository (RPM) the fix comes from.
    origin: str = ""

    @property
    def line(self) -> str:
        """``pkg 1.0-1 -> 1.0-2 (DSA-1234-1)``."""
        named = f" ({', '.join(self.advisories)})" if self.advisories else ""
        return f"{self.package} {self.installed} -> {self.fixed}{named}"


@dataclass(frozen=True)
class Unsupported:
    """An installed package the distribution gives no (or limited) security support."""

    package: str
    installed: str
    reason: str


@dataclass(frozen=True)
class SecurityVerdict:
    """The comparison of every installed package with one distribution's security data."""

    #: What data was used: its addresses (or directory) and kind.
    data: str
    #: The data's own date (the index's ``Date``, the newest advisory), if it says one.
    date: str | None
    #: How many installed packages were compared.
    compared: int
    updates: tuple[Update, ...] = ()
    unsupported: tuple[Unsupported, ...] = ()
    #: What limits the verdict (advisories not named: the tracker was not reachable...).
    notes: tuple[str, ...] = field(default_factory=tuple)


#: What the check context carries: the system's facts in, the verdict out (or
#: SecurityDataUnavailable with the reason).
SecurityProvider = Callable[["Facts"], SecurityVerdict]
