"""The image's own APT sources: which archives it updates from, so the security data is the
one its customers will get (``/etc/apt/sources.list``, ``sources.list.d/*.list`` one-line
entries, and ``*.sources`` deb822 stanzas).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmimage.targets.base import Target

LIST = "/etc/apt/sources.list"
LIST_D = "/etc/apt/sources.list.d"
#: Keyrings apt trusts without a Signed-By.
TRUSTED = ("/etc/apt/trusted.gpg", "/etc/apt/trusted.gpg.d/*.gpg")


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` entry: an archive, a suite, its components, and the keyring it names."""

    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str | None
    where: str  # the file (and line) that says so

    @property
    def security(self) -> bool:
        """A security suite: ``bookworm-security``, ``jammy-security``, ``buster/updates``."""
        return self.suite.endswith("-security") or self.suite.endswith("/updates")


_OPTIONS = re.compile(r"^\[([^\]]*)\]\s*")


def _one_line(text: str, path: str) -> list[AptSource]:
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb ") and not line.startswith("deb\t"):
            continue
        rest = line[3:].strip()
        signed_by = None
        options = _OPTIONS.match(rest)
        if options:
            for option in options.group(1).split():
                key, _, value = option.partition("=")
                if key == "signed-by":
                    signed_by = value
            rest = rest[options.end():]
        parts = rest.split()
        if len(parts) >= 2:
            found.append(AptSource(parts[0].rstrip("/"), parts[1], tuple(parts[2:]), signed_by,
                                   f"{path}:{number}"))
    return found


def _deb822(text: str, path: str) -> list[AptSource]:
    found = []
    for number, stanza in enumerate(re.split(r"\n\s*\n", text), 1):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1] in (" ", "\t") and key:
                fields[key] += "\n" + raw.strip()
                continue
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or \
                fields.get("enabled", "yes").lower() == "no":
            continue
        signed_by = fields.get("signed-by") or None
        if signed_by is not None and not signed_by.startswith("/"):
            signed_by = None  # an inline key: apt reads it, vmimage does not (yet)
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                found.append(AptSource(uri.rstrip("/"), suite,
                                       tuple(fields.get("components", "").split()), signed_by,
                                       f"{path} (stanza {number})"))
    return found


def read_sources(target: Target) -> list[AptSource]:
    """Every enabled ``deb`` source the image's apt reads (unreadable files are skipped)."""
    paths = [LIST, *sorted(target.glob(f"{LIST_D}/*.list")),
             *sorted(target.glob(f"{LIST_D}/*.sources"))]
    found: list[AptSource] = []
    for path in paths:
        try:
            text = target.read_text(path)
        except (OSError, UnicodeError):
            continue
        found += _deb822(text, path) if path.endswith(".sources") else _one_line(text, path)
    return found
