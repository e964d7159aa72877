"""Policy profiles: thresholds and severities as data files, not code.

``azure-2015`` is the 2015 guide exactly; ``azure-current`` follows today's rules
(certification-research.md). A profile never changes what a check looks at, only how much a
violation matters and the numbers it is measured against.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources

from vmimage.errors import InputError
from vmimage.findings import Severity
from vmimage.units import parse_size

PROFILE_NAMES = ("azure-2015", "azure-current")
#: What a disk is for; each role has its own size bounds in every profile.
ROLES = ("os-linux", "os-windows", "data")
DEFAULT_PROFILE = "azure-current"


@dataclass(frozen=True)
class RoleSize:
    """Size bounds for one disk role: below ``min`` or above ``max`` fails, above ``warn_above`` warns."""

    covers: tuple[str, ...]
    min: int
    max: int | None = None
    warn_above: int | None = None


@dataclass(frozen=True)
class Profile:
    """One policy: disk sizes per role, check severities, thresholds, and disabled checks."""

    name: str
    description: str
    roles: dict[str, RoleSize]
    severity: dict[str, Severity] = field(default_factory=dict)
    thresholds: dict[str, object] = field(default_factory=dict)
    disabled: dict[str, str] = field(default_factory=dict)

    def number(self, key: str) -> int:
        """An integer threshold (sizes may be written ``"1KiB"``)."""
        value = self.thresholds[key]
        if isinstance(value, str):
            return parse_size(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"profile {self.name}: threshold {key} is not a number")
        return value

    def text(self, key: str) -> str:
        """A string threshold (a version, say)."""
        return str(self.thresholds[key])

    def flag(self, key: str) -> bool:
        """A boolean threshold."""
        return bool(self.thresholds[key])


def _role(name: str, raw: dict[str, object]) -> RoleSize:
    def size(key: str) -> int | None:
        value = raw.get(key)
        return None if value is None else parse_size(str(value))

    minimum = size("min")
    if minimum is None:
        raise ValueError(f"role {name} has no min")
    covers = raw.get("covers", [])
    if not isinstance(covers, list):
        raise ValueError(f"role {name}: covers must be a list")
    return RoleSize(tuple(str(c) for c in covers), minimum, size("max"), size("warn_above"))


def load_profile(name: str) -> Profile:
    """Load a bundled profile by name.

    Raises:
        InputError: no such profile.
    """
    if name not in PROFILE_NAMES:
        raise InputError("--profile", f"unknown profile {name!r} (choose {', '.join(PROFILE_NAMES)})")
    raw = tomllib.loads(resources.files(__package__).joinpath(f"{name}.toml").read_text("utf-8"))
    return Profile(
        name=raw["name"],
        description=raw["description"],
        roles={k: _role(k, v) for k, v in raw["roles"].items()},
        severity={k: Severity(v) for k, v in raw.get("severity", {}).items()},
        thresholds=dict(raw.get("thresholds", {})),
        disabled=dict(raw.get("disabled", {})),
    )
