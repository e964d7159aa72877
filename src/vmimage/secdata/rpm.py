"""RHEL and its rebuilds, SUSE, Fedora: every installed RPM compared with the security
advisories (``updateinfo``) of the repositories the image itself updates from.

1. The image's enabled repositories: dnf/yum's ``/etc/yum.repos.d/*.repo`` and zypper's
   ``/etc/zypp/repos.d/*.repo``, their variables (``$releasever``, ``$basearch``...) filled
   in as the package manager would, from os-release, the installed packages' architecture
   and the image's own variable files (``/etc/dnf/vars``: Rocky's ``$contentdir``). A repo
   whose URL keeps a variable nobody defines is passed over, with a note.
2. Each repository's ``repodata/repomd.xml`` names its ``updateinfo`` file and that file's
   SHA-256: the file is fetched by that digest (so the cache keeps it and a mirror caught in
   the middle of an update is noticed), decompressed as its name says, and parsed as a
   stream, never more than :data:`MAX_XML` bytes of it (a decompression bomb is refused),
   with DTDs and entities refused (defusedxml).
3. An installed package has a security update when an advisory of type ``security`` lists a
   package of its name, of its architecture (or ``noarch``), at a version (rpm's own
   ordering) above the installed one. The fix named is the highest such version; the
   advisories named are all those above the installed version. A package that a module
   stream builds (EL8's ``nodejs:18``) counts only when the image enables that stream.

Advisories of other types (``bugfix``, ``enhancement``) never count: "all security patches
are installed" is the rule, not "everything is up to date".
"""

from __future__ import annotations

import bz2
import configparser
import contextlib
import gzip
import hashlib
import importlib
import io
import lzma
import posixpath
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeTree

from vmimage.facts import Facts
from vmimage.facts.packages import InstalledPackage
from vmimage.facts.security import SecurityDataUnavailable, SecurityVerdict, Update
from vmimage.facts.versions import rpm_compare
from vmimage.secdata.fetch import FetchFailed, Source
from vmimage.targets.base import Target

#: Where dnf/yum and zypper keep their repository definitions.
REPO_FILES = ("/etc/yum.repos.d/*.repo", "/etc/zypp/repos.d/*.repo")
#: The image's own variables (one file per variable, its first line the value).
VAR_FILES = ("/etc/dnf/vars/*", "/etc/yum/vars/*", "/etc/zypp/vars.d/*")
#: dnf's record of the module streams the image enables (EL8's ``nodejs:18``).
MODULE_FILES = "/etc/dnf/modules.d/*.module"
#: Decompressed updateinfo beyond which it is refused (RHEL 9 AppStream's is ~100 MiB).
MAX_XML = 1024 * 1024 * 1024
#: Mirrors tried per repository before giving up on it (each may cost a network timeout).
MIRRORS_TRIED = 3
#: Distributions whose ``$releasever`` is the major release (``9``), not ``VERSION_ID``.
_MAJOR_RELEASEVER = ("rhel",)
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_FALSE = ("0", "no", "false", "off")


class _NotRead(Exception):
    """A repository whose security data could not be had (the reason is the message)."""


@dataclass(frozen=True)
class Repo:
    """One enabled repository, its URLs as written (variables not yet filled in)."""

    id: str
    baseurls: tuple[str, ...]
    mirrorlist: str | None
    metalink: str | None
    where: str


@dataclass(frozen=True)
class Fix:
    """One package version a security advisory ships."""

    advisory: str
    evr: str  # [epoch:]version-release, the epoch only when not 0
    arch: str
    module: str | None  # "name:stream" of the module stream that builds it, if any
    repo: str


@dataclass
class _Read:
    fixes: dict[str, list[Fix]] = field(default_factory=dict)
    dates: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- the image's repositories -----------------------------------------------------------------


def _ini(text: str, path: str) -> configparser.RawConfigParser:
    """dnf's and zypper's INI dialect: no interpolation, repeated sections merged, keys in
    lower case, continuation lines (a ``baseurl`` over several lines) joined."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None,
                                          default_section="\0vmimage-no-default")
    parser.read_string(text, source=path)
    return parser


def _urls(value: str) -> tuple[str, ...]:
    return tuple(u for u in re.split(r"[\s,]+", value) if u)


def read_repos(target: Target) -> tuple[list[Repo], list[str]]:
    """Every enabled repository of the image, and what could not be read of its files."""
    repos: list[Repo] = []
    problems: list[str] = []
    for pattern in REPO_FILES:
        for path in sorted(target.glob(pattern)):
            try:
                parser = _ini(target.read_text(path), path)
            except (OSError, UnicodeError) as exc:
                problems.append(f"{path}: cannot be read ({exc})")
                continue
            except configparser.Error as exc:
                problems.append(f"{path}: not an INI file ({str(exc).splitlines()[0]})")
                continue
            for section in parser.sections():
                values = parser[section]
                if values.get("enabled", "1").strip().lower() in _FALSE:
                    continue
                repos.append(Repo(section, _urls(values.get("baseurl", "")),
                                  values.get("mirrorlist", "").strip() or None,
                                  values.get("metalink", "").strip() or None, path))
    return repos, problems


def _file_variables(target: Target) -> dict[str, str]:
    found: dict[str, str] = {}
    for pattern in VAR_FILES:
        for path in sorted(target.glob(pattern)):
            name = posixpath.basename(path)
            if not re.fullmatch(r"\w+", name) or name in found:
                continue
            try:
                lines = target.read_text(path, max_size=64 * 1024).splitlines()
            except (OSError, UnicodeError):
                continue
            found[name] = lines[0].strip() if lines else ""
    return found


def native_arch(packages: dict[str, InstalledPackage]) -> str:
    """The image's architecture: the one most of its packages are built for."""
    arches = [p.arch for p in packages.values() if p.arch not in ("", "noarch")]
    return max(sorted(set(arches)), key=arches.count) if arches else "x86_64"


def _basearch(arch: str) -> str:
    """dnf's ``$basearch`` of an architecture (``i686`` -> ``i386``)."""
    if re.fullmatch(r"i[3-6]86|athlon", arch):
        return "i386"
    if arch.startswith("armv7h"):
        return "armhfp"
    return arch


def variable_sets(facts: Facts, arch: str) -> list[dict[str, str]]:
    """The values the repositories' variables may take, the likeliest first.

    ``$releasever`` is what the release package provides, which os-release does not say:
    RHEL and its rebuilds mean the major release (``9``), Fedora and SUSE the whole
    ``VERSION_ID`` (``40``, ``15.5``). Both are tried, in that order; an image that pins it
    in ``/etc/dnf/vars/releasever`` is taken at its word.
    """
    own = _file_variables(facts.target)
    osr = facts.os_release
    full = osr.version_id if osr is not None else ""
    major = full.split(".", 1)[0]
    if "releasever" in own:
        releasevers = [own["releasever"]]
    elif osr is not None and osr.distro in _MAJOR_RELEASEVER:
        releasevers = [major, full]
    else:
        releasevers = [full, major]
    sets = []
    for releasever in dict.fromkeys(r for r in releasevers if r):
        head, _, minor = releasever.partition(".")
        sets.append({"arch": arch, "basearch": _basearch(arch), "releasever": releasever,
                     "releasever_major": head, "releasever_minor": minor, **own})
    return sets or [{"arch": arch, "basearch": _basearch(arch), **own}]


def substitute(text: str, variables: dict[str, str]) -> tuple[str, set[str]]:
    """``text`` with ``$name`` and ``${name}`` filled in, and the names nobody defines."""
    missing: set[str] = set()

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in variables:
            return variables[name]
        missing.add(name)
        return match.group(0)
    return _VARIABLE.sub(value, text), missing


def enabled_modules(target: Target) -> set[str]:
    """The ``name:stream`` of each module stream dnf enables in the image."""
    found: set[str] = set()
    for path in sorted(target.glob(MODULE_FILES)):
        try:
            parser = _ini(target.read_text(path), path)
        except (OSError, UnicodeError, configparser.Error):
            continue
        for section in parser.sections():
            values = parser[section]
            state = values.get("state", "").strip().lower()
            if state == "enabled" or values.get("enabled", "").strip().lower() in ("1", "true"):
                found.add(f"{values.get('name', section).strip()}:{values.get('stream', '').strip()}")
    return found


# --- where a repository is ----------------------------------------------------------------------


def _web(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _under(base: str, path: str) -> str:
    """``path`` below ``base`` (a query, as SUSE's tokens are, stays at the end)."""
    if _web(path):
        return path
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + path.lstrip("/")))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml(data: bytes) -> Element:
    return SafeTree.fromstring(data, forbid_dtd=True)


def parse_mirrors(body: bytes, where: str) -> list[str]:
    """A mirrorlist's base URLs: one a line; or, when it is a metalink (Fedora's answer to
    ``mirrorlist=`` as well as to ``metalink=``), its ``repomd.xml`` URLs by preference."""
    text = body.decode("utf-8", errors="replace")
    if "<metalink" not in text[:4096]:
        lines = (line.strip() for line in text.splitlines())
        return [line for line in lines if _web(line)]
    try:
        root = _xml(body)
    except (ParseError, DefusedXmlException) as exc:
        raise _NotRead(f"{where}: not a readable metalink ({exc})") from None
    ranked = [((u.text or "").strip(), u.get("preference", "0")) for u in root.iter()
              if _local(u.tag) == "url"]
    ranked.sort(key=lambda up: -int(up[1]) if up[1].isdigit() else 0)
    suffix = "/repodata/repomd.xml"
    return [u.removesuffix(suffix) for u, _ in ranked if _web(u) and u.endswith(suffix)]


def _bases(repo: Repo, variables: list[dict[str, str]], source: Source) -> list[str]:
    """The repository's base URLs to try, in order: its ``baseurl``, then what its
    ``mirrorlist`` or ``metalink`` answers.

    Raises:
        _NotRead: none can be had (a variable nobody defines, an unreachable mirror list).
    """
    bases: list[str] = []
    why: list[str] = []
    missing: set[str] = set()
    asked: set[str] = set()
    for values in variables:
        for url in repo.baseurls:
            filled, unknown = substitute(url, values)
            missing |= unknown
            if not unknown and _web(filled):
                bases.append(filled)
            elif not unknown:
                why.append(f"{filled.split('?', 1)[0]} is not http(s)")
        for listed in (repo.mirrorlist, repo.metalink):
            filled, unknown = substitute(listed or "", values)
            missing |= unknown
            if not listed or unknown or filled in asked:
                continue
            asked.add(filled)
            try:
                mirrors = parse_mirrors(source.get(filled), filled)
            except (FetchFailed, _NotRead) as exc:
                why.append(str(exc))
                continue
            for mirror in mirrors:  # AlmaLinux's list leaves $basearch to the client
                base, unknown = substitute(mirror, values)
                if not unknown:
                    bases.append(base)
    if bases:
        return list(dict.fromkeys(bases))
    if missing:
        why.insert(0, "its URLs name variables the image does not define ("
                   + ", ".join(f"${name}" for name in sorted(missing)) + ")")
    raise _NotRead("; ".join(dict.fromkeys(why)) or "no baseurl, mirrorlist or metalink")


@dataclass(frozen=True)
class Located:
    """Where ``repomd.xml`` says the updateinfo is, and its digest."""

    url: str
    checksum_type: str
    checksum: str


def parse_repomd(data: bytes, base: str, where: str) -> Located | None:
    """The ``updateinfo`` entry of a ``repomd.xml``; None when it lists none.

    Raises:
        _NotRead: it is not a repomd.xml (an error page served with a 200).
    """
    try:
        root = _xml(data)
    except (ParseError, DefusedXmlException) as exc:
        raise _NotRead(f"{where}: not a readable repomd.xml ({exc})") from None
    if _local(root.tag) != "repomd":
        raise _NotRead(f"{where}: not a repomd.xml (its root is <{_local(root.tag)}>)")
    for entry in root:
        if _local(entry.tag) != "data" or entry.get("type") != "updateinfo":
            continue
        location = next((c for c in entry if _local(c.tag) == "location"), None)
        checksum = next((c for c in entry if _local(c.tag) == "checksum"), None)
        if location is None or not location.get("href"):
            raise _NotRead(f"{where}: its updateinfo entry has no location")
        own_base = location.get("{http://www.w3.org/XML/1998/namespace}base") or ""
        url = _under(own_base if _web(own_base) else base, location.get("href", ""))
        kind = (checksum.get("type", "") if checksum is not None else "").lower()
        value = (checksum.text or "").strip().lower() if checksum is not None else ""
        return Located(url, "sha1" if kind == "sha" else kind, value)
    return None


def _fetch(source: Source, located: Located) -> bytes:
    """The updateinfo's bytes, checked against the digest repomd.xml lists.

    Raises:
        FetchFailed: they cannot be had, or their digest is not the one listed.
    """
    if located.checksum_type == "sha256" and located.checksum:
        return source.get(located.url, located.checksum)
    data = source.get(located.url)
    if located.checksum and located.checksum_type in hashlib.algorithms_available and \
            hashlib.new(located.checksum_type, data).hexdigest() != located.checksum:
        raise FetchFailed(f"{located.url}: its {located.checksum_type} is not the one its "
                          "repomd.xml lists (a mirror in the middle of an update?): try again")
    return data


# --- updateinfo ----------------------------------------------------------------------------------


class _TooBig(Exception):
    pass


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Bounded:
    """A decompressing stream that refuses to give more than ``limit`` bytes."""

    def __init__(self, stream: _Readable, limit: int) -> None:
        self.stream = stream
        self.left = limit

    def read(self, size: int = -1) -> bytes:
        """At most ``size`` bytes, as a file's ``read``."""
        want = self.left + 1 if size < 0 else min(size, self.left + 1)
        data = self.stream.read(want)
        self.left -= len(data)
        if self.left < 0:
            raise _TooBig
        return data


def _decompressing(data: bytes, name: str, where: str) -> _Readable:
    """A stream of the file's content, decompressed as its name says.

    Raises:
        _NotRead: zstd, and no ``zstandard`` module to read it.
    """
    raw = io.BytesIO(data)
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw)
    if name.endswith(".bz2"):
        return bz2.BZ2File(raw)
    if name.endswith(".zst"):
        try:
            zstd = importlib.import_module("zstandard")
        except ImportError:
            raise _NotRead(f"{where}: zstd-compressed, and the zstandard module is not "
                           "installed (pip install zstandard)") from None
        stream: _Readable = zstd.ZstdDecompressor().stream_reader(raw)
        return stream
    return raw


def _decode_errors() -> tuple[type[BaseException], ...]:
    """What a corrupt compressed stream raises (zstandard's own error when it is there)."""
    errors: list[type[BaseException]] = [OSError, EOFError, lzma.LZMAError, zlib.error,
                                         ValueError]
    with contextlib.suppress(ImportError):
        errors.append(importlib.import_module("zstandard").ZstdError)
    return tuple(errors)


def _evr(package: Element) -> str | None:
    version, release = package.get("version"), package.get("release")
    if not version or not release:
        return None
    epoch = (package.get("epoch") or "0").strip()
    return f"{version}-{release}" if epoch in ("0", "", "None") else f"{epoch}:{version}-{release}"


def _fixes(update: Element, advisory: str, repo: str) -> Iterator[tuple[str, Fix]]:
    """Each (package name, version it is fixed in) that an ``<update>`` lists."""
    for pkglist in (c for c in update if _local(c.tag) == "pkglist"):
        for collection in (c for c in pkglist if _local(c.tag) == "collection"):
            module = next((c for c in collection if _local(c.tag) == "module"), None)
            stream = f"{module.get('name', '')}:{module.get('stream', '')}" \
                if module is not None else None
            for package in (c for c in collection if _local(c.tag) == "package"):
                name, arch, evr = package.get("name"), package.get("arch", ""), _evr(package)
                if name and evr and arch not in ("src", "nosrc"):
                    yield name, Fix(advisory, evr, arch, stream, repo)


def _text(update: Element, tag: str) -> str:
    child = next((c for c in update if _local(c.tag) == tag), None)
    return (child.text or "").strip() if child is not None else ""


def _issued(update: Element) -> str | None:
    child = next((c for c in update if _local(c.tag) == "issued"), None)
    if child is None:
        return None
    return (child.get("date") or "").strip() or None


def _parse_updateinfo(stream: _Readable, repo: str, into: _Read, where: str) -> int:
    """Add each security advisory's fixes of an updateinfo stream to ``into``; returns how
    many security advisories it holds.

    Raises:
        SecurityDataUnavailable: it is not an updateinfo, or over :data:`MAX_XML` bytes.
    """
    count = 0
    root_tag = ""
    try:
        events = SafeTree.iterparse(_Bounded(stream, MAX_XML),  # type: ignore[attr-defined]
                                    events=("start", "end"), forbid_dtd=True)
        for event, element in events:
            root_tag = root_tag or _local(element.tag)
            if event != "end" or _local(element.tag) != "update":
                continue
            if element.get("type", "").lower() == "security":
                count += 1
                advisory = _text(element, "id") or "(an advisory without id)"
                for name, fix in _fixes(element, advisory, repo):
                    into.fixes.setdefault(name, []).append(fix)
                issued = _issued(element)
                if issued:
                    into.dates.append(issued)
            element.clear()
    except _TooBig:
        raise SecurityDataUnavailable(f"{where}: more than {MAX_XML} bytes decompressed (a "
                                      "decompression bomb?): refused") from None
    except (ParseError, DefusedXmlException) as exc:
        raise SecurityDataUnavailable(f"{where}: not a readable updateinfo (XML: {exc})") from None
    except _decode_errors() as exc:
        raise SecurityDataUnavailable(f"{where}: cannot be decompressed ({exc})") from None
    if root_tag != "updates":
        raise SecurityDataUnavailable(f"{where}: not an updateinfo (its root is <{root_tag}>)")
    return count


# --- one repository ------------------------------------------------------------------------------


def _read_repo(repo: Repo, variables: list[dict[str, str]], source: Source, into: _Read) -> None:
    """Read one repository's security advisories into ``into``.

    Raises:
        _NotRead: it has none to read (no updateinfo, unreachable: the reason).
        SecurityDataUnavailable: its updateinfo is there but corrupt.
    """
    failed: list[str] = []
    for base in _bases(repo, variables, source)[:MIRRORS_TRIED]:
        where = _under(base, "repodata/repomd.xml")
        try:
            located = parse_repomd(source.get(where), base, where)
        except (FetchFailed, _NotRead) as exc:
            failed.append(str(exc))
            continue
        if located is None:
            raise _NotRead(f"{where} lists no updateinfo (the repository publishes no "
                           "advisories)")
        try:
            data = _fetch(source, located)
        except FetchFailed as exc:
            failed.append(str(exc))
            continue
        stream = _decompressing(data, urlsplit(located.url).path, located.url)
        count = _parse_updateinfo(stream, repo.id, into, located.url)
        shown = urlunsplit(urlsplit(base)._replace(query=""))
        into.said.append(f"{repo.id}: {shown} ({count} security advisories)")
        if base.lower().startswith("http://"):
            into.notes.append(f"{repo.id} was read over plain HTTP, and repository metadata "
                              "carries no signature vmimage checks")
        return
    raise _NotRead("; ".join(failed))


# --- the comparison ------------------------------------------------------------------------------


def _applies(pkg: InstalledPackage, fix: Fix, modules: set[str]) -> bool:
    if fix.arch != pkg.arch and fix.arch != "noarch":
        return False
    if fix.module is not None and fix.module not in modules:
        return False  # another stream's build: dnf would not offer it to this image
    return rpm_compare(fix.evr, pkg.version) > 0


def _update(pkg: InstalledPackage, fixes: list[Fix], modules: set[str]) -> Update | None:
    newer = [f for f in fixes if _applies(pkg, f, modules)]
    if not newer:
        return None
    best = newer[0]
    for fix in newer[1:]:
        if rpm_compare(fix.evr, best.evr) > 0:
            best = fix
    return Update(pkg.name, pkg.version, best.evr, tuple(sorted({f.advisory for f in newer})),
                  best.repo)


def _when(text: str) -> float:
    """A date as updateinfo writes it (``2024-05-01 12:00:00``, ``... UTC``, ``2024-05-01``,
    or SUSE's seconds since 1970) as seconds since 1970, taken as UTC; 0 when unreadable."""
    text = text.strip().removesuffix("UTC").strip()
    if text.isdigit():
        return float(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return 0.0
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def newest(dates: list[str]) -> str | None:
    """The newest advisory's date: as written, or in ISO form when written as seconds."""
    if not dates:
        return None
    date = max(dates, key=_when)
    if date.isdigit():
        return datetime.fromtimestamp(int(date), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return date


def verdict(facts: Facts, source: Source) -> SecurityVerdict:
    """Compare every installed RPM with the security advisories of the image's repositories.

    Raises:
        SecurityDataUnavailable: not an rpm system, no enabled repository, none with security
            data (each repository tried and why), or an updateinfo that cannot be read (its
            URL and the problem, in one line).
    """
    db = facts.packages
    if db.manager != "rpm":
        raise SecurityDataUnavailable(f"not an rpm system (its package database is "
                                      f"{db.manager}): the RPM security data does not apply")
    if not db.packages:
        raise SecurityDataUnavailable(f"{db.path}: no installed package could be read "
                                      f"({db.problem or 'an empty database'})")
    repos, problems = read_repos(facts.target)
    if not repos:
        raise SecurityDataUnavailable("no enabled repository in /etc/yum.repos.d or "
                                      "/etc/zypp/repos.d: nothing to compare with"
                                      + (f" ({'; '.join(problems)})" if problems else ""))
    variables = variable_sets(facts, native_arch(db.packages))
    read = _Read(notes=[*problems, *([f"{db.path}: {db.problem}"] if db.problem else [])])
    tried: list[str] = []
    for repo in repos:
        try:
            _read_repo(repo, variables, source, read)
        except _NotRead as exc:
            tried.append(f"{repo.id} ({repo.where}): {exc}")
    if not read.said:
        raise SecurityDataUnavailable("no enabled repository has security data (updateinfo): "
                                      + "; ".join(tried))
    read.notes += [f"not compared with {line}" for line in tried]
    modules = enabled_modules(facts.target)
    updates = [u for pkg in db.packages.values()
               if (u := _update(pkg, read.fixes.get(pkg.name, []), modules)) is not None]
    return SecurityVerdict(f"updateinfo of {'; '.join(read.said)}. Read: {source.describe()}",
                           newest(read.dates), len(db.packages),
                           tuple(sorted(updates, key=lambda u: u.package)), (),
                           tuple(read.notes))
