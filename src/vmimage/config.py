"""Settings from flags, the environment and ``vmimage.toml``, in that order of precedence.

A publisher's repository pins how its images are judged (the profile, the waivers, when CI
fails) in one file next to the Packer template, and CI overrides one setting with an
environment variable without editing it; a flag on the command line beats both. This is how
ruff, mypy and pytest behave, and the order is documented once (docs/configuration.md):

1. the command-line flag;
2. the environment: ``VMIMAGE_PROFILE``, ``VMIMAGE_FAIL_ON``, ``VMIMAGE_WAIVERS``;
3. the configuration file: ``$VMIMAGE_CONFIG`` if set (empty: none), else the first
   ``vmimage.toml`` or ``.vmimage.toml`` in the current directory or a parent, else
   ``$XDG_CONFIG_HOME/vmimage/vmimage.toml`` (``~/.config/vmimage/vmimage.toml``);
4. the built-in default.

Paths in the file (a custom profile, a waiver file) are relative to the file's directory, so
the file means the same from wherever the command runs.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from vmimage.errors import InputError

#: Setting -> environment variable.
ENV = {"profile": "VMIMAGE_PROFILE", "fail-on": "VMIMAGE_FAIL_ON", "waivers": "VMIMAGE_WAIVERS"}
#: Settings whose value is a path, resolved against the file's directory.
_PATHS = {"waivers"}
FILE_NAMES = ("vmimage.toml", ".vmimage.toml")
MAX_CONFIG = 1 << 20


@dataclass(frozen=True)
class Config:
    """The configuration file that applies (``path`` None when there is none) and its values."""

    path: Path | None = None
    values: dict[str, str] = field(default_factory=dict)


def find_config(start: Path | None = None) -> Path | None:
    """The configuration file that applies, by the rules in the module docstring."""
    explicit = os.environ.get("VMIMAGE_CONFIG")
    if explicit is not None:
        return Path(explicit) if explicit else None
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        for name in FILE_NAMES:
            candidate = directory / name
            if _is_file(candidate):
                return candidate
    xdg = os.environ.get("XDG_CONFIG_HOME")
    user = (Path(xdg) if xdg else Path("~/.config").expanduser()) / "vmimage" / "vmimage.toml"
    return user if _is_file(user) else None


def _is_file(path: Path) -> bool:
    """Whether a configuration file is there; a directory we may not enter (``nobody`` with
    ``HOME=/root``) holds none we could use, so it is passed over, never a traceback."""
    try:
        return path.is_file()
    except OSError:
        return False


def load_config(path: Path | None) -> Config:
    """Read and check a configuration file (no file: an empty configuration).

    Raises:
        InputError: unreadable, not TOML, or a key vmimage does not know (a typo must not be
            silently ignored: ``fail_on`` instead of ``fail-on`` would change nothing).
    """
    if path is None:
        return Config()
    from vmimage.inputs import read_bounded_text

    try:
        raw = tomllib.loads(read_bounded_text(path, limit=MAX_CONFIG))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"not a TOML configuration: {exc}") from None
    unknown = sorted(set(raw) - set(ENV))
    if unknown:
        raise InputError(path, f"unknown setting(s) {', '.join(unknown)} (known: "
                               f"{', '.join(sorted(ENV))})")
    values: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str) or not value:
            raise InputError(path, f"{key} must be a non-empty string")
        values[key] = _relative(path, value) if key in _PATHS or (
            key == "profile" and _is_path(value)) else value
    return Config(path, values)


def _is_path(value: str) -> bool:
    return "/" in value or value.endswith(".toml")


def _relative(config: Path, value: str) -> str:
    candidate = Path(value).expanduser()
    return str(candidate if candidate.is_absolute() else config.parent / candidate)


@dataclass(frozen=True)
class Setting:
    """A resolved setting and where it came from (shown by ``--verbose``)."""

    value: str | None
    source: str


class Settings:
    """Resolve settings for one command; the configuration file is read on first need."""

    def __init__(self) -> None:
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        """The configuration file's values (read once)."""
        if self._config is None:
            self._config = load_config(find_config())
        return self._config

    def get(self, key: str, flag: str | None, default: str | None = None) -> Setting:
        """``flag`` if given, else the environment, else the file, else ``default``."""
        if flag is not None:
            return Setting(flag, f"--{key}")
        env = os.environ.get(ENV[key])
        if env:
            return Setting(env, ENV[key])
        if key in self.config.values:
            return Setting(self.config.values[key], str(self.config.path))
        return Setting(default, "default")
