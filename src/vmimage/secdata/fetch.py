"""Getting a distribution's security data: over HTTP(S) through a cache directory (``auto``),
or from a directory prepared earlier (``DIR``, for air-gapped CI: ``vmimage security-data
fetch IMAGE DIR`` writes one).

Both are a :class:`Source`: the loaders (:mod:`.debian`, :mod:`.rpm`) ask for URLs and never
know where the bytes came from, so what a directory replays is exactly what a fetch read.

A fetch follows the environment's proxy settings (``HTTPS_PROXY``, ``NO_PROXY``), ends by a
timeout, reads at most :data:`MAX_BYTES`, and follows redirects only to http(s). What is named
by its SHA-256 (an index listed in a signed release file) is kept in the cache under that
digest and never fetched twice; the rest is fetched each time, and kept as the fallback when
the network is gone (the report then says the data is the cached copy, and of what date).
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Protocol

from vmimage.facts.security import SecurityDataUnavailable
from vmimage.privatefile import private_dir, write_private

#: The largest file read (Debian's biggest Packages index is ~50 MiB uncompressed; it is
#: fetched compressed).
MAX_BYTES = 256 * 1024 * 1024
TIMEOUT = 30.0
MANIFEST = "manifest.json"


class FetchFailed(SecurityDataUnavailable):
    """A URL could not be read (offline, refused, not found, too big)."""


class Source(Protocol):
    """Where the loaders get the data's bytes."""

    def get(self, url: str, sha256: str | None = None, fresh_for: float = 0.0) -> bytes:
        """The bytes at ``url`` (checked against ``sha256`` when given); a copy at most
        ``fresh_for`` seconds old may be given without asking the server again.

        Raises:
            FetchFailed: they cannot be had.
        """

    def describe(self) -> str:
        """Where the data came from, for the report."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _age(path: Path) -> float:
    """Seconds since ``path`` was written (infinite when it is not there)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def _checked(url: str, data: bytes, sha256: str | None) -> bytes:
    if sha256 is not None and _digest(data) != sha256:
        raise FetchFailed(f"{url}: its SHA-256 is not the one its release file lists (a "
                          "mirror in the middle of an update, or tampering): try again later")
    return data


class _NoOtherSchemes(urllib.request.HTTPRedirectHandler):
    """Redirects to http(s) only."""

    def redirect_request(self, req: urllib.request.Request, fp: object, code: int, msg: str,
                         headers: object, newurl: str) -> urllib.request.Request | None:
        if not newurl.lower().startswith(("http://", "https://")):
            raise urllib.error.HTTPError(newurl, code, "redirect to another scheme refused",
                                         None, None)  # type: ignore[arg-type]
        return super().redirect_request(req, fp, code, msg, headers, newurl)  # type: ignore[arg-type]


@cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: it loads the system's CAs once (~0.1 s each)."""
    return ssl.create_default_context()


def _opener() -> urllib.request.OpenerDirector:
    """An opener with the environment's proxies as they are now."""
    return urllib.request.build_opener(urllib.request.ProxyHandler(),
                                       urllib.request.HTTPSHandler(context=_tls()),
                                       _NoOtherSchemes())


def http_get(url: str, timeout: float = TIMEOUT, max_bytes: int = MAX_BYTES) -> bytes:
    """GET ``url`` (proxies from the environment, redirects to http(s) only).

    Raises:
        FetchFailed: naming the URL and why (the status, the network error, the size).
    """
    opener = _opener()
    request = urllib.request.Request(url, headers={"User-Agent": "vmimage security-data"})
    try:
        with opener.open(request, timeout=timeout) as answer:
            data: bytes = answer.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise FetchFailed(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchFailed(f"{url}: cannot be reached ({reason}); offline? set HTTPS_PROXY, or "
                          "prepare the data elsewhere with `vmimage security-data fetch IMAGE "
                          "DIR` and pass --security-data DIR") from None
    if len(data) > max_bytes:
        raise FetchFailed(f"{url}: larger than {max_bytes} bytes: refused")
    return data


@dataclass
class CachedWeb:
    """``auto``: the network, through a cache directory."""

    cache: Path
    timeout: float = TIMEOUT
    #: Each URL read and whether it came from the cache (for the report).
    read: dict[str, str] = field(default_factory=dict)

    def _path(self, name: str) -> Path:
        return self.cache / name[:2] / name

    def get(self, url: str, sha256: str | None = None, fresh_for: float = 0.0) -> bytes:
        """The bytes at ``url``: by digest from the cache, or a copy younger than
        ``fresh_for`` seconds, else fetched (and kept). A failure is remembered as long:
        an unreachable host costs one attempt, not one per run."""
        if sha256 is not None:
            kept = self._path(sha256)
            if kept.is_file():
                self.read[url] = "cache"
                return _checked(url, kept.read_bytes(), sha256)
        by_url = self._path(_key(url))
        failed = self._path(_key(url) + ".failed")
        if fresh_for and _age(by_url) < fresh_for:
            self.read[url] = f"cached, {_age(by_url) / 60:.0f} min old"
            return by_url.read_bytes()
        if fresh_for and _age(failed) < fresh_for:
            raise FetchFailed(failed.read_text(encoding="utf-8", errors="replace").strip())
        try:
            data = _checked(url, http_get(url, self.timeout), sha256)
        except FetchFailed as exc:
            if fresh_for:
                self._keep(_key(url) + ".failed", str(exc).encode())
            if sha256 is None and by_url.is_file():
                age = time.time() - by_url.stat().st_mtime
                self.read[url] = f"cached copy, {age / 3600:.0f} h old (the network failed)"
                return by_url.read_bytes()
            raise
        self._keep(sha256 or _key(url), data)
        self.read[url] = "fetched"
        return data

    def _keep(self, name: str, data: bytes) -> None:
        try:
            private_dir(self._path(name).parent)
            write_private(self._path(name), data)
        except (OSError, ValueError):
            pass  # a cache that cannot be written costs a fetch next time, nothing else

    def describe(self) -> str:
        """The URLs, fetched now or taken from the cache."""
        return "; ".join(f"{u} ({how})" for u, how in self.read.items())


@dataclass
class Recording:
    """``vmimage security-data fetch``: the network, each file also written into ``out``
    with a manifest, so that ``--security-data out`` replays the same bytes later."""

    out: Path
    timeout: float = TIMEOUT
    files: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, url: str, sha256: str | None = None, fresh_for: float = 0.0) -> bytes:
        """Fetch ``url`` and record it (always fresh: the directory is made now)."""
        data = _checked(url, http_get(url, self.timeout), sha256)
        name = _digest(data)
        private_dir(self.out / "files")
        write_private(self.out / "files" / name, data)
        self.files[url] = {"sha256": name, "fetched": datetime.now(UTC).isoformat(
            timespec="seconds")}
        return data

    def save(self) -> Path:
        """Write the manifest (what was fetched, when)."""
        path = self.out / MANIFEST
        write_private(path, json.dumps({"files": self.files}, indent=2) + "\n")
        return path

    def describe(self) -> str:
        """The URLs fetched."""
        return "; ".join(self.files)


@dataclass
class Prepared:
    """``--security-data DIR``: what ``vmimage security-data fetch`` wrote there."""

    root: Path
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    read: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, root: Path) -> Prepared:
        """The directory's manifest.

        Raises:
            SecurityDataUnavailable: no manifest, or one that is not ours.
        """
        path = root / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            files = {str(u): {"sha256": str(v["sha256"]), "fetched": str(v.get("fetched", ""))}
                     for u, v in data["files"].items()}
        except FileNotFoundError:
            raise SecurityDataUnavailable(f"{path}: no such file: prepare the directory with "
                                          "`vmimage security-data fetch IMAGE DIR`") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SecurityDataUnavailable(f"{path}: not a manifest of vmimage security-data "
                                          f"fetch ({type(exc).__name__})") from None
        return cls(root, files)

    def get(self, url: str, sha256: str | None = None, fresh_for: float = 0.0) -> bytes:
        """The recorded bytes of ``url`` (as old as the directory: its date is reported)."""
        entry = self.files.get(url)
        if entry is None:
            raise FetchFailed(f"{url}: not in {self.root} (prepared for another image or "
                              "before its sources changed: run `vmimage security-data fetch` "
                              "again)")
        try:
            data = (self.root / "files" / entry["sha256"]).read_bytes()
        except OSError as exc:
            raise FetchFailed(f"{self.root}: the file of {url} cannot be read "
                              f"({exc.strerror})") from None
        if _digest(data) != entry["sha256"]:
            raise FetchFailed(f"{self.root}: the file of {url} was changed since it was fetched")
        self.read.append(url)
        return _checked(url, data, sha256)

    def describe(self) -> str:
        """The directory and when its files were fetched."""
        dates = sorted({self.files[u]["fetched"] for u in self.read if self.files[u]["fetched"]})
        when = f", fetched {dates[0]}" if dates else ""
        return f"{self.root}{when}: " + "; ".join(self.read)


def default_cache() -> Path:
    """``$VMIMAGE_CACHE/security-data``, else ``~/.cache/vmimage/security-data``."""
    base = os.environ.get("VMIMAGE_CACHE")
    if base:
        return Path(base) / "security-data"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path("~/.cache").expanduser()) / "vmimage" / "security-data"
