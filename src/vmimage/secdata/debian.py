"""Debian and Ubuntu: every installed package compared with the ``-security`` suite of the
archives the image itself updates from.

1. The image's APT sources name its security suites (``bookworm-security``,
   ``jammy-security``); none is a skip with that reason.
2. Each suite's ``InRelease`` is read (its ``Date`` dates the data), and its signature is
   verified with ``gpgv`` against the keyring the image trusts for that source (its
   ``Signed-By``, else apt's trusted keyrings); the ``Packages`` index of the image's
   architecture is then fetched by the SHA-256 the signed file lists, so every byte of the
   data is vouched for by the archive's key. Without ``gpgv`` on the host the report says the
   signature was not checked.
3. A binary package whose version in the security suite is newer (dpkg's own ordering) than
   the installed one has a security update.
4. Advisories: the Packages index names none. Debian's security tracker lists each DSA and
   DLA with the version that fixes it per release (``data/DSA/list``, ``data/DLA/list``):
   when it can be read, each update names the advisories whose fixed version lies above the
   installed one; when it cannot, the verdict says so (and is not weaker for it: the index
   alone decides which packages are out of date).
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vmimage.facts import Facts
from vmimage.facts.packages import InstalledPackage
from vmimage.facts.security import (
    SecurityDataUnavailable,
    SecurityVerdict,
    Unsupported,
    Update,
)
from vmimage.facts.versions import dpkg_compare
from vmimage.privatefile import private_dir, write_private
from vmimage.secdata.apt import TRUSTED, AptSource, read_sources
from vmimage.secdata.fetch import FetchFailed, Source

#: Debian's security tracker: every DSA and DLA with the fixed version per release.
TRACKER = "https://salsa.debian.org/security-tracker-team/security-tracker/-/raw/master/data"
#: Where the tracker's ``data`` directory is read instead (a local mirror of it; the tests
#: point it at a closed port so that they reach no host but the package archive).
TRACKER_ENV = "VMIMAGE_DEBIAN_TRACKER"
TRACKER_LISTS = ("DSA", "DLA")
#: Seconds a release file (which says when the index changes) is taken from the cache before
#: it is asked for again, and the same for the tracker's lists (which change daily).
RELEASE_FRESH = 15 * 60.0
TRACKER_FRESH = 6 * 3600.0
#: Decompressed index size beyond which it is refused (bookworm-security's is ~2.5 MiB).
MAX_INDEX = 512 * 1024 * 1024


@dataclass(frozen=True)
class Available:
    """A binary package's newest version in a security suite."""

    version: str
    source: str
    suite: str


@dataclass(frozen=True)
class Release:
    """What an ``InRelease`` file says: its date and the SHA-256 of each index."""

    date: str | None
    codename: str
    files: dict[str, tuple[str, int]]  # path -> (sha256, size)


def parse_release(text: str, where: str) -> Release:
    """The fields of a (clearsigned) release file.

    Raises:
        SecurityDataUnavailable: it lists no SHA256 files.
    """
    body = text.split("-----BEGIN PGP SIGNATURE-----", 1)[0]
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, int]] = {}
    section = ""
    for line in body.splitlines():
        if line[:1] in (" ", "\t"):
            if section == "sha256":
                parts = line.split()
                if len(parts) == 3 and parts[1].isdigit():
                    files[parts[2]] = (parts[0].lower(), int(parts[1]))
            continue
        key, _, value = line.partition(":")
        section = key.strip().lower()
        fields[section] = value.strip()
    if not files:
        raise SecurityDataUnavailable(f"{where}: not a release file (no SHA256 list)")
    return Release(fields.get("date"), fields.get("codename", ""), files)


def _merge(into: dict[str, Available], name: str, found: Available) -> None:
    """Keep the newest version of each package (dpkg's order)."""
    known = into.get(name)
    if known is None or dpkg_compare(found.version, known.version) > 0:
        into[name] = found


_FIELD = re.compile(r"^(Package|Version|Source): *(.*?) *$", re.MULTILINE)


def parse_packages(text: str, suite: str, into: dict[str, Available]) -> int:
    """Add each binary package of a ``Packages`` index to ``into`` (the newest version
    wins); returns how many stanzas were read (an index holds a package once per version).

    One regular expression over the whole index (the fields that matter, in order: a stanza
    starts at its ``Package``): a 3,000-package index in ~10 ms, not the ~100 ms of
    splitting every stanza."""
    count = 0
    name = version = source = ""

    def keep() -> None:
        _merge(into, name, Available(version, (source or name).split(" ", 1)[0], suite))

    for match in _FIELD.finditer(text):
        key, value = match.groups()
        if key == "Package":
            if name and version:
                keep()
            name, version, source = value, "", ""
            count += 1
        elif key == "Version":
            version = value
        else:
            source = value
    if name and version:
        keep()
    return count


_ADVISORY = re.compile(r"^\[[^\]]*\]\s+((?:DSA|DLA)-\d+(?:-\d+)?)\s+(\S+)")
_FIXED = re.compile(r"^\s+\[([a-z]+)\]\s+-\s+(\S+)\s+(\S+)")


def parse_tracker_list(text: str) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """The tracker's ``DSA/list`` or ``DLA/list``: (source, release) -> [(advisory, fixed
    version)]. Lines it cannot read are passed over (the list is hand-edited)."""
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    advisory = ""
    for line in text.splitlines():
        head = _ADVISORY.match(line)
        if head:
            advisory = head.group(1)
            continue
        fixed = _FIXED.match(line)
        if fixed and advisory:
            release, source, version = fixed.groups()
            if version.startswith("<"):  # <not-affected>, <end-of-life>...
                continue
            found.setdefault((source, release), []).append((advisory, version))
    return found


def _decompress(data: bytes, name: str, where: str) -> str:
    try:
        if name.endswith(".xz"):
            raw = lzma.LZMADecompressor().decompress(data, MAX_INDEX + 1)
        elif name.endswith(".gz"):
            raw = gzip.GzipFile(fileobj=io.BytesIO(data)).read(MAX_INDEX + 1)
        else:
            raw = data
    except (lzma.LZMAError, OSError, EOFError) as exc:
        raise SecurityDataUnavailable(f"{where}: cannot be decompressed ({exc})") from None
    if len(raw) > MAX_INDEX:
        raise SecurityDataUnavailable(f"{where}: more than {MAX_INDEX} bytes decompressed: "
                                      "refused")
    return raw.decode("utf-8", errors="replace")


def _index(data: Source, url: str, sha256: str, suite: str,
           into: dict[str, Available]) -> int:
    """Add the index at ``url`` to ``into``. A cache keeps it parsed, under its SHA-256 (the
    signed release file's): decompressing and reading 2.5 MiB costs ~0.2 s, the parsed form
    ~10 ms."""
    parsed = getattr(data, "cache", None)
    kept = parsed / "parsed" / f"{sha256}.json" if isinstance(parsed, Path) else None
    if kept is not None and kept.is_file():
        try:
            table = json.loads(kept.read_text(encoding="utf-8"))
            for name, (version, source) in table.items():
                _merge(into, name, Available(version, source, suite))
            return len(table)
        except (OSError, ValueError, TypeError):
            pass  # a damaged cache entry: read the index again
    mine: dict[str, Available] = {}
    parse_packages(_decompress(data.get(url, sha256), url, url), suite, mine)
    if kept is not None:
        try:
            private_dir(kept.parent)
            write_private(kept, json.dumps({n: [a.version, a.source] for n, a in mine.items()}))
        except (OSError, ValueError):
            pass
    for name, found in mine.items():
        _merge(into, name, found)
    return len(mine)


def _native_arch(installed: dict[str, InstalledPackage]) -> str:
    dpkg = installed.get("dpkg")
    if dpkg is not None and dpkg.arch not in ("", "all"):
        return dpkg.arch
    arches = [p.arch for p in installed.values() if p.arch not in ("", "all")]
    return max(set(arches), key=arches.count) if arches else "amd64"


def _keyrings(facts: Facts, source: AptSource, work: Path) -> list[Path]:
    """The image's keyrings for ``source``, copied out (gpgv reads files)."""
    names = [source.signed_by] if source.signed_by else \
        [TRUSTED[0], *sorted(facts.target.glob(TRUSTED[1])),
         "/usr/share/keyrings/debian-archive-keyring.gpg",
         "/usr/share/keyrings/ubuntu-archive-keyring.gpg"]
    copied = []
    for number, name in enumerate(names):
        if name is None or name.endswith(".asc"):
            continue
        try:
            data = facts.target.read_bytes(name, max_size=16 * 1024 * 1024)
        except OSError:
            continue
        path = work / f"keyring-{number}.gpg"
        path.write_bytes(data)
        copied.append(path)
    return copied


def verify_signature(facts: Facts, source: AptSource, signed: bytes, where: str) -> str:
    """Check ``signed`` (an InRelease) with gpgv against the image's keyrings for
    ``source``; returns what the report says of it.

    Raises:
        SecurityDataUnavailable: the signature does not verify with those keys.
    """
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        return "signature not checked (no gpgv on this machine)"
    with tempfile.TemporaryDirectory(prefix="vmimage-gpgv-") as tmp:
        work = Path(tmp)
        keyrings = _keyrings(facts, source, work)
        if not keyrings:
            return "signature not checked (the image holds no keyring for this source)"
        (work / "InRelease").write_bytes(signed)
        args = [gpgv, "--homedir", str(work), "--status-fd", "1"]
        for keyring in keyrings:
            args += ["--keyring", str(keyring)]
        done = subprocess.run([*args, str(work / "InRelease")], capture_output=True,
                              text=True, timeout=60, check=False)
    valid = [line.split()[2] for line in done.stdout.splitlines()
             if line.startswith("[GNUPG:] VALIDSIG")]
    if done.returncode != 0 or not valid:
        raise SecurityDataUnavailable(f"{where}: its signature does not verify with the keys "
                                      f"the image trusts for {source.where}")
    return f"signed by {valid[0][-16:]}"


@dataclass
class _Read:
    available: dict[str, Available]
    dates: list[str]
    said: list[str]


def _release(data: Source, uri: str, suite: str) -> tuple[str, bytes]:
    """The suite's ``InRelease`` and the base it was read from: over HTTPS first when the
    sources say ``http://`` (most mirrors answer both; the signature vouches for either),
    plain HTTP only when HTTPS cannot be had.

    Raises:
        FetchFailed: neither answers (the HTTPS failure is the one named).
    """
    bases = [f"{uri}/dists/{suite}"]
    if uri.startswith("http://"):
        bases.insert(0, f"https://{uri[len('http://'):]}/dists/{suite}")
    first: FetchFailed | None = None
    for base in bases:
        try:
            return base, data.get(f"{base}/InRelease", fresh_for=RELEASE_FRESH)
        except FetchFailed as exc:
            first = first or exc
    assert first is not None
    raise first


def _read_suite(facts: Facts, source: AptSource, data: Source, arch: str, into: _Read) -> None:
    base, signed = _release(data, source.uri, source.suite)
    where = f"{base}/InRelease"
    release = parse_release(signed.decode("utf-8", errors="replace"), where)
    said = verify_signature(facts, source, signed, where)
    if release.date:
        into.dates.append(release.date)
    read = 0
    for component in source.components or ("main",):
        for name in (f"{component}/binary-{arch}/Packages.xz",
                     f"{component}/binary-{arch}/Packages.gz",
                     f"{component}/binary-{arch}/Packages"):
            if name in release.files:
                sha256, _ = release.files[name]
                read += _index(data, f"{base}/{name}", sha256, source.suite, into.available)
                break
    into.said.append(f"{source.suite} from {base.rsplit('/dists/', 1)[0]} "
                     f"({release.date or 'undated'}, {said}, {read} packages)")


def tracker() -> str:
    """The tracker's ``data`` URL: ``$VMIMAGE_DEBIAN_TRACKER``, else Debian's."""
    return (os.environ.get(TRACKER_ENV) or TRACKER).rstrip("/")


def _advisories(data: Source, codename: str) -> tuple[dict[tuple[str, str],
                                                           list[tuple[str, str]]], str | None]:
    """The tracker's lists, or why they could not be read."""
    merged: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for name in TRACKER_LISTS:
        url = f"{tracker()}/{name}/list"
        try:
            text = data.get(url, fresh_for=TRACKER_FRESH).decode("utf-8", errors="replace")
        except FetchFailed as exc:
            return {}, f"advisories not named: Debian's security tracker could not be read ({exc})"
        for key, found in parse_tracker_list(text).items():
            merged.setdefault(key, []).extend(found)
    if not any(release == codename for _, release in merged):
        return merged, f"advisories: the tracker lists none for {codename}"
    return merged, None


def _update(pkg: InstalledPackage, newer: Available, codename: str,
            advisories: dict[tuple[str, str], list[tuple[str, str]]]) -> Update:
    named = sorted({advisory for advisory, fixed in advisories.get((newer.source, codename), [])
                    if dpkg_compare(fixed, pkg.version) > 0
                    and dpkg_compare(fixed, newer.version) <= 0})
    return Update(pkg.name, pkg.version, newer.version, tuple(named), newer.source)


def _newest(dates: list[str]) -> str | None:
    """The newest of the release files' dates (RFC 2822), as written."""
    from email.utils import parsedate_to_datetime

    def when(text: str) -> float:
        try:
            return parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError):
            return 0.0
    return max(dates, key=when) if dates else None


#: debian-security-support's lists, per release number, in the image (its own package).
SUPPORT_DIR = "/usr/share/debian-security-support"


def _support_lists(facts: Facts, release: str) -> tuple[dict[str, str], str | None]:
    """Source package -> why it has no (or limited) security support, from the lists of the
    image's ``debian-security-support`` (``security-support-ended.debN``: ``source
    last-version date [details]``; ``security-support-limited.debN``: ``source text``)."""
    found: dict[str, str] = {}
    read = 0
    for kind in ("ended", "limited"):
        path = f"{SUPPORT_DIR}/security-support-{kind}.deb{release}"
        try:
            text = facts.target.read_text(path)
        except OSError:
            continue
        read += 1
        for line in text.splitlines():
            parts = line.split(None, 1)
            if not parts or parts[0].startswith("#"):
                continue
            rest = parts[1].strip() if len(parts) > 1 else ""
            if kind == "ended":
                fields = rest.split(None, 2)
                when = f" on {fields[1]}" if len(fields) > 1 else ""
                found[parts[0]] = f"security support ended{when} ({path})"
            else:
                found[parts[0]] = f"limited security support: {rest or 'see ' + path}"
    note = None if read else ("no-support lists not read: the image has no "
                              "debian-security-support lists")
    return found, note


def _unsupported(facts: Facts, release: str) -> tuple[tuple[Unsupported, ...], str | None]:
    lists, note = _support_lists(facts, release)
    if not lists:
        return (), note
    return tuple(sorted((Unsupported(p.name, p.version, lists[p.built_from])
                         for p in facts.packages.packages.values() if p.built_from in lists),
                        key=lambda u: u.package)), note


def verdict(facts: Facts, data: Source) -> SecurityVerdict:
    """Compare every installed package with the image's security suites.

    Raises:
        SecurityDataUnavailable: not a dpkg system, no security suite in its sources, or the
            data cannot be read (the reason, in one line).
    """
    db = facts.packages
    if db.manager != "dpkg":
        raise SecurityDataUnavailable("not a dpkg system")
    suites = [s for s in read_sources(facts.target) if s.security]
    if not suites:
        raise SecurityDataUnavailable("the image's APT sources name no security suite "
                                      "(such as bookworm-security): nothing to compare with")
    arch = _native_arch(db.packages)
    read = _Read({}, [], [])
    for source in suites:
        _read_suite(facts, source, data, arch, read)
    osr = facts.os_release
    codename = (osr.version_codename if osr else "") or suites[0].suite.split("-")[0].split("/")[0]
    notes: list[str] = []
    advisories: dict[tuple[str, str], list[tuple[str, str]]] = {}
    if osr is not None and osr.id == "debian":
        advisories, note = _advisories(data, codename)
        if note:
            notes.append(note)
    else:
        notes.append("advisories not named: vmimage reads Debian's tracker only (USNs are not "
                     "in the archive's data)")
    updates = []
    for pkg in db.packages.values():
        newer = read.available.get(pkg.name)
        if newer is not None and dpkg_compare(newer.version, pkg.version) > 0:
            updates.append(_update(pkg, newer, codename, advisories))
    unsupported: tuple[Unsupported, ...] = ()
    if osr is not None and osr.id == "debian" and osr.version_id.split(".")[0].isdigit():
        unsupported, note = _unsupported(facts, osr.version_id.split(".")[0])
        if note:
            notes.append(note)
    return SecurityVerdict("; ".join(read.said), _newest(read.dates),
                           len(db.packages), tuple(sorted(updates, key=lambda u: u.package)),
                           unsupported, tuple(notes))
