"""Policy profiles: thresholds and severities as data files, not code.

``azure-2015`` is the 2015 guide exactly; ``azure-current`` follows today's rules
(certification-research.md). A profile never changes what a check looks at, only how much a
violation matters and the numbers it is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmimage.errors import InputError
from vmimage.units import parse_size

if TYPE_CHECKING:
    from vmimage.findings import Severity

# tomllib, importlib.resources and the findings model are imported where a profile is loaded:
# the CLI imports this module for ROLES while it builds its parser, and ``vhd convert
# --in-place`` must start in well under 0.15 s (docs/cli.md).

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
    #: The bundled profile this one is or extends (``azure-2015`` or ``azure-current``).
    base: str = ""

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


#: The tables a profile file may hold, and the keys at its top level.
_TABLES = ("roles", "severity", "thresholds", "disabled")
_TOP_KEYS = {"name", "description", "extends", "enabled", *_TABLES}


def is_profile_path(ref: str) -> bool:
    """Whether ``--profile`` names a file (it has a path separator or ends in ``.toml``)
    rather than a bundled profile."""
    return "/" in ref or ref.endswith(".toml")


def load_profile(ref: str) -> Profile:
    """A bundled profile by name, or a custom profile file that extends one.

    A custom file is how a publisher raises a warning to a failure, lowers one (with a reason
    in the file, where review sees it), changes a threshold or disables a rule, without copying
    a bundled profile and drifting from it when vmimage updates::

        extends = "azure-current"
        name = "contoso"                      # default: the file's stem
        [severity]
        LINUX-PYTHON-VERSION = "fail"
        [thresholds]
        python_min_version = "3.11"
        [disabled]
        LINUX-NO-LVM = "our images use LVM; reviewed with Microsoft in case 1234"
        # enabled = ["LINUX-..."]             # re-enable a rule the base disables

    Raises:
        InputError: no such bundled profile; a file that cannot be read, is not TOML, names no
            bundled ``extends``, or holds a key vmimage does not know.
    """
    if is_profile_path(ref):
        return _load_custom(ref)
    if ref not in PROFILE_NAMES:
        raise InputError("--profile", f"unknown profile {ref!r} (choose "
                                      f"{', '.join(PROFILE_NAMES)}, or a .toml file that "
                                      "extends one)")
    return _build(_bundled(ref))


def _bundled(name: str) -> dict[str, Any]:
    """A bundled profile's TOML, parsed."""
    import tomllib
    from importlib import resources

    return tomllib.loads(resources.files(__package__).joinpath(f"{name}.toml").read_text("utf-8"))


def _build(raw: dict[str, Any]) -> Profile:
    from vmimage.findings import Severity

    return Profile(
        name=raw["name"],
        description=raw["description"],
        roles={k: _role(k, v) for k, v in raw["roles"].items()},
        severity={k: Severity(v) for k, v in raw.get("severity", {}).items()},
        thresholds=dict(raw.get("thresholds", {})),
        disabled=dict(raw.get("disabled", {})),
        base=str(raw.get("extends") or raw["name"]),
    )


def _load_custom(ref: str) -> Profile:
    import tomllib

    from vmimage.inputs import read_bounded_text

    path = Path(ref)
    try:
        raw = tomllib.loads(read_bounded_text(path, limit=1 << 20))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"not a TOML profile: {exc}") from None
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise InputError(path, f"unknown profile key(s) {', '.join(unknown)} (a profile file "
                               f"holds {', '.join(sorted(_TOP_KEYS))})")
    base = raw.get("extends")
    if base not in PROFILE_NAMES:
        raise InputError(path, f"extends = {base!r}: a profile file must extend one of "
                               f"{', '.join(PROFILE_NAMES)}")
    merged = _bundled(base)
    for table in _TABLES:
        extra = raw.get(table, {})
        if not isinstance(extra, dict):
            raise InputError(path, f"[{table}] must be a table")
        if table == "roles":
            for role, bounds in extra.items():
                if role not in ROLES or not isinstance(bounds, dict):
                    raise InputError(path, f"[roles.{role}]: unknown role (choose "
                                           f"{', '.join(ROLES)})")
                merged["roles"][role] = {**merged["roles"][role], **bounds}
        else:
            merged.setdefault(table, {}).update(extra)
    for rule_id in raw.get("enabled", []):
        merged.get("disabled", {}).pop(str(rule_id), None)
    merged["extends"] = base
    merged["name"] = str(raw.get("name") or path.stem)
    merged["description"] = str(raw.get("description") or f"{base}, customised by {path}")
    try:
        return _build(merged)
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(path, f"invalid profile: {exc}") from None
