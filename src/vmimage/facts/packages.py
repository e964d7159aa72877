"""Installed packages, read from the package manager's own database in the image.

The agent, OpenSSL and Python minimums are package versions, and "installed" must mean what the
package manager means: a Debian stanza whose status is ``installed`` (not ``config-files``
left behind by a removal), an RPM header present in the database. dpkg comes first: a Debian
system that also carries rpm (as this project's own hosts do) is still a dpkg system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vmimage.facts import rpmdb
from vmimage.targets.base import Target

DPKG_STATUS = "/var/lib/dpkg/status"
DPKG_UPDATES = "/var/lib/dpkg/updates"
RPM_DIRS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")


@dataclass(frozen=True, slots=True)
class InstalledPackage:
    """One installed package and where the database says so."""

    name: str
    version: str  # dpkg: the Version field as is; rpm: [epoch:]version-release
    arch: str
    manager: str  # "dpkg" | "rpm"
    line: int | None = None  # dpkg: line of the stanza's Package field in ``source``
    source: str = ""  # the file that holds the record


@dataclass(frozen=True)
class PackageDb:
    """The package database found in the target, or ``manager="none"``."""

    manager: str  # "dpkg" | "rpm" | "none"
    path: str | None
    packages: dict[str, InstalledPackage] = field(default_factory=dict)
    #: Why the database could not be read completely (corrupt, unknown format), else None.
    problem: str | None = None

    def get(self, name: str) -> InstalledPackage | None:
        """The installed package of that exact name."""
        return self.packages.get(name)

    def first(self, *names: str) -> InstalledPackage | None:
        """The first of several names that is installed (``waagent``, ``walinuxagent``...)."""
        for name in names:
            found = self.packages.get(name)
            if found is not None:
                return found
        return None


# --- dpkg -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Stanza:
    fields: dict[str, str]
    line: int


def _stanzas(text: str) -> list[_Stanza]:
    """deb822 paragraphs; continuation lines (leading space) belong to the previous field."""
    out: list[_Stanza] = []
    fields: dict[str, str] = {}
    start = 0
    last = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            if fields:
                out.append(_Stanza(fields, start))
            fields, last = {}, ""
            continue
        if raw[0] in " \t":
            if last:
                fields[last] += "\n" + raw.strip()
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        if not fields:
            start = number
        last = key.strip().lower()
        fields[last] = value.strip()
    if fields:
        out.append(_Stanza(fields, start))
    return out


def _is_installed(status: str) -> bool:
    """The third word of dpkg's Status is the state; only ``installed`` means the files are there.

    The first word (``install``, ``hold``, ``deinstall``) is only the wanted selection: a held
    package is installed, a package marked for removal but not yet removed is still installed.
    ``config-files``, ``half-installed`` and ``unpacked`` are not installed.
    """
    words = status.split()
    return len(words) == 3 and words[1] == "ok" and words[2] == "installed"


def _dpkg_records(text: str, source: str) -> dict[str, InstalledPackage | None]:
    """Each package name with its installed record, or None when no stanza says installed."""
    records: dict[str, InstalledPackage | None] = {}
    for stanza in _stanzas(text):
        name = stanza.fields.get("package", "")
        if not name:
            continue
        pkg = None
        if _is_installed(stanza.fields.get("status", "")):
            pkg = InstalledPackage(name, stanza.fields.get("version", ""),
                                   stanza.fields.get("architecture", ""), "dpkg",
                                   stanza.line, source)
        if records.get(name) is None:
            records[name] = pkg
    return records


def read_dpkg(target: Target) -> PackageDb:
    """``/var/lib/dpkg/status`` with any pending journal entries in ``updates/`` applied.

    dpkg itself replays ``/var/lib/dpkg/updates/NNNN`` over the status file when it starts (a
    run interrupted before it rewrote the status leaves them): their stanzas win. For a
    package with several architectures (multiarch), the first installed one is kept.
    """
    text = target.read_text(DPKG_STATUS)
    merged = _dpkg_records(text, DPKG_STATUS)
    try:
        journal = [n for n in target.iterdir(DPKG_UPDATES) if re.fullmatch(r"\d+", n)]
    except (FileNotFoundError, NotADirectoryError):
        journal = []
    for name in sorted(journal):
        path = f"{DPKG_UPDATES}/{name}"
        try:
            merged.update(_dpkg_records(target.read_text(path), path))
        except (FileNotFoundError, IsADirectoryError):
            continue
    packages = {name: pkg for name, pkg in merged.items() if pkg is not None}
    return PackageDb("dpkg", DPKG_STATUS, packages)


# --- rpm --------------------------------------------------------------------------------------


def _rpm_packages(blobs: list[bytes], path: str) -> tuple[dict[str, InstalledPackage], int]:
    packages: dict[str, InstalledPackage] = {}
    bad = 0
    for blob in blobs:
        try:
            header = rpmdb.parse_header(blob)
        except rpmdb.RpmDbError:
            bad += 1
            continue
        packages.setdefault(header.name,
                            InstalledPackage(header.name, header.evr, header.arch, "rpm",
                                             None, path))
    return packages, bad


def read_rpm(target: Target) -> PackageDb | None:
    """The first RPM database found: ``rpmdb.sqlite``, then Berkeley DB ``Packages``.

    rpm's ``ndb`` format (``Packages.db``) is recognised and reported as unread.
    """
    for directory in RPM_DIRS:
        sqlite_path = f"{directory}/rpmdb.sqlite"
        bdb_path = f"{directory}/Packages"
        if target.exists(sqlite_path):
            path = sqlite_path
            try:
                wal = target.read_bytes(sqlite_path + "-wal")
            except (FileNotFoundError, IsADirectoryError):
                wal = None
            try:
                blobs = rpmdb.sqlite_blobs(target.read_bytes(sqlite_path), wal)
            except rpmdb.RpmDbError as exc:
                return PackageDb("rpm", path, {}, str(exc))
        elif target.exists(bdb_path):
            path = bdb_path
            try:
                blobs = rpmdb.bdb_blobs(target.read_bytes(bdb_path))
            except rpmdb.RpmDbError as exc:
                return PackageDb("rpm", path, {}, str(exc))
        elif target.exists(f"{directory}/Packages.db"):
            # rpm's own "ndb" format (SUSE since SLE 15 SP3): no reader here yet, say so
            return PackageDb("rpm", f"{directory}/Packages.db", {},
                             "rpm ndb database (Packages.db) is not read by vmimage")
        else:
            continue
        packages, bad = _rpm_packages(blobs, path)
        problem = f"{bad} unreadable package headers" if bad else None
        return PackageDb("rpm", path, packages, problem)
    return None


def read_packages(target: Target) -> PackageDb:
    """The target's package database: dpkg's, else rpm's, else ``manager="none"``."""
    if target.exists(DPKG_STATUS):
        try:
            return read_dpkg(target)
        except IsADirectoryError:
            pass
    found = read_rpm(target)
    if found is not None:
        return found
    return PackageDb("none", None, {})
