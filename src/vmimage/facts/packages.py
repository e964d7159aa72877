"""Installed packages, read from the package manager's own database in the image.

The agent, OpenSSL and Python minimums are package versions, and "installed" must mean what the
package manager means: a Debian stanza whose status is ``installed`` (not ``config-files``
left behind by a removal), an RPM header present in the database. dpkg comes first: a Debian
system that also carries rpm (as this project's own hosts do) is still a dpkg system.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from vmimage.errors import InputError
from vmimage.facts import rpmdb
from vmimage.targets.base import Target

DPKG_STATUS = "/var/lib/dpkg/status"
DPKG_UPDATES = "/var/lib/dpkg/updates"
RPM_DIRS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
#: The largest dpkg status (and journal) accepted: a big real one is ~10 MiB. Over it the
#: database is refused with the reason (a hostile 200 MB status took 2 GB of memory).
DPKG_MAX = 64 * 1024 * 1024
#: dpkg journal files replayed at most (dpkg itself keeps a few).
DPKG_MAX_UPDATES = 1024
#: The largest RPM database file accepted (a big real rpmdb.sqlite is ~100 MiB).
RPM_MAX = 256 * 1024 * 1024
_FIELDS = frozenset({"package", "status", "version", "architecture", "source"})


@dataclass(frozen=True, slots=True)
class InstalledPackage:
    """One installed package and where the database says so."""

    name: str
    version: str  # dpkg: the Version field as is; rpm: [epoch:]version-release
    arch: str
    manager: str  # "dpkg" | "rpm"
    line: int | None = None  # dpkg: line of the stanza's Package field in ``source``
    source: str = ""  # the file that holds the record
    #: dpkg: the source package it was built from (``Source:``, without a version), "" when
    #: it is the binary's own name or unknown.
    source_package: str = ""

    @property
    def built_from(self) -> str:
        """The source package's name (the binary's own when the database names none)."""
        return self.source_package or self.name


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


def _stanzas(text: str) -> Iterator[_Stanza]:
    """deb822 paragraphs, one at a time; continuation lines (leading space) belong to the
    previous field. Only the fields read here are kept, and lines are taken lazily, so a
    large status file costs little more than its own text."""
    fields: dict[str, list[str]] = {}
    start = 0
    last = ""
    for number, raw in enumerate(io.StringIO(text), start=1):
        raw = raw.rstrip("\r\n")
        if not raw.strip():
            if fields:
                yield _stanza(fields, start)
            fields, last, start = {}, "", 0
            continue
        if raw[0] in " \t":
            if last in fields:
                fields[last].append(raw.strip())
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        start = start or number
        last = key.strip().lower()
        if last in _FIELDS:
            fields[last] = [value.strip()]
    if fields:
        yield _stanza(fields, start)


def _stanza(fields: dict[str, list[str]], start: int) -> _Stanza:
    return _Stanza({k: "\n".join(v) for k, v in fields.items()}, start)


def is_installed(status: str) -> bool:
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
        if is_installed(stanza.fields.get("status", "")):
            pkg = InstalledPackage(name, stanza.fields.get("version", ""),
                                   stanza.fields.get("architecture", ""), "dpkg",
                                   stanza.line, source,
                                   stanza.fields.get("source", "").split(" ", 1)[0])
        if records.get(name) is None:
            records[name] = pkg
    return records


def read_dpkg(target: Target) -> PackageDb:
    """``/var/lib/dpkg/status`` with any pending journal entries in ``updates/`` applied.

    dpkg itself replays ``/var/lib/dpkg/updates/NNNN`` over the status file when it starts (a
    run interrupted before it rewrote the status leaves them): their stanzas win. For a
    package with several architectures (multiarch), the first installed one is kept.
    """
    text = target.read_text(DPKG_STATUS, DPKG_MAX)
    merged = _dpkg_records(text, DPKG_STATUS)
    del text
    try:
        journal = [n for n in target.iterdir(DPKG_UPDATES) if re.fullmatch(r"\d+", n)]
    except (FileNotFoundError, NotADirectoryError):
        journal = []
    if len(journal) > DPKG_MAX_UPDATES:
        raise InputError(DPKG_UPDATES, f"{len(journal)} journal files, over the limit of "
                                       f"{DPKG_MAX_UPDATES}; the database is not read")
    for name in sorted(journal):
        path = f"{DPKG_UPDATES}/{name}"
        try:
            merged.update(_dpkg_records(target.read_text(path, DPKG_MAX), path))
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
                wal = target.read_bytes(sqlite_path + "-wal", max_size=RPM_MAX)
            except (FileNotFoundError, IsADirectoryError):
                wal = None
            try:
                blobs = rpmdb.sqlite_blobs(target.read_bytes(sqlite_path, max_size=RPM_MAX), wal)
            except rpmdb.RpmDbError as exc:
                return PackageDb("rpm", path, {}, str(exc))
        elif target.exists(bdb_path):
            path = bdb_path
            try:
                blobs = rpmdb.bdb_blobs(target.read_bytes(bdb_path, max_size=RPM_MAX))
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
    try:  # read, not exists(): a symlink loop at the status file is unreadable, not absent
        return read_dpkg(target)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    found = read_rpm(target)
    if found is not None:
        return found
    return PackageDb("none", None, {})
