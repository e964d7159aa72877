"""SAS tokens for a submission: read from an environment variable or a file, never from the
command line (``ps`` shows arguments), and never shown: every text that leaves vmimage other
than a submission file passes through :func:`redact` (rulings).

A token source holds one entry per line (blank lines and ``#`` comments ignored):

- a blob's SAS URI, ``https://acct.blob.core.windows.net/vhds/os.vhd?sv=...&sig=...``:
  used for that blob;
- a container SAS URI, ``https://acct.blob.core.windows.net/vhds?sv=...&sr=c&sig=...``
  (what ``vmimage sas create`` makes by default): used for every blob in that container,
  the blob path appended before the token, as the guide's Storage Explorer steps did;
- a bare token, ``sv=...&sig=...`` (with or without ``?``): used for every other blob.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path

from vmimage.errors import InputError
from vmimage.findings import Finding

_SIG = re.compile(r"(?i)((?:[?&;]|&amp;)sig=)[^&\s\"'<>]*")
_SIG_START = re.compile(r"(?i)^(sig=)[^&\s\"'<>]*")
REDACTED = "REDACTED"


def redact(text: str) -> str:
    """``text`` with the value of every ``sig=`` replaced by ``REDACTED``."""
    return _SIG_START.sub(rf"\g<1>{REDACTED}", _SIG.sub(rf"\g<1>{REDACTED}", text))


def has_token(url: str) -> bool:
    """Whether a URL (or a bare query) carries a signature."""
    return _SIG.search(url) is not None or _SIG_START.search(url) is not None


def bare(url: str) -> str:
    """The URL without query or fragment: how blobs are matched to their tokens."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(),
                                    parts.path.rstrip("/"), "", ""))


@dataclass
class SasTokens:
    """Tokens by blob, by container, and one for every other blob."""

    source: str
    by_blob: dict[str, str] = field(default_factory=dict)
    by_container: dict[str, str] = field(default_factory=dict)
    default: str | None = None

    def sas_uri(self, blob_url: str) -> str | None:
        """The SAS URI of ``blob_url`` (a URL without a token), or None when none applies."""
        key = bare(blob_url)
        token = self.by_blob.get(key)
        if token is None:
            container = key.rsplit("/", 1)[0]
            token = self.by_container.get(container, self.default)
        if token is None:
            return None
        base = blob_url.split("?", 1)[0].split("#", 1)[0]
        return f"{base}?{token}"


def parse_tokens(text: str, source: str) -> SasTokens:
    """Read token lines; errors name ``source`` and the line, never the token.

    Raises:
        InputError: a line is neither a SAS URI nor a token.
    """
    tokens = SasTokens(source)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not has_token(line):
            raise InputError(source, f"line {number}: no 'sig=' in it: not a SAS URI or token")
        if "://" not in line:
            tokens.default = line.removeprefix("?")
            continue
        parts = urllib.parse.urlsplit(line)
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.query:
            raise InputError(source, f"line {number}: not an http(s) SAS URI")
        query = parts.query
        fields = urllib.parse.parse_qs(query)
        segments = [s for s in parts.path.split("/") if s]
        if fields.get("sr") == ["c"] or len(segments) <= 1:
            tokens.by_container[bare(line)] = query
        else:
            tokens.by_blob[bare(line)] = query
    return tokens


def read_tokens(env: str | None, file: Path | None) -> SasTokens | None:
    """Tokens from the environment variable named ``env`` and/or ``file`` (None: neither).

    Raises:
        InputError: the variable is unset or empty, the file cannot be read, or a line is bad.
    """
    merged: SasTokens | None = None
    sources: list[tuple[str, str]] = []
    if env is not None:
        value = os.environ.get(env, "")
        if not value.strip():
            raise InputError("--sas-env", f"environment variable {env} is not set or empty")
        sources.append((f"${env}", value))
    if file is not None:
        try:
            sources.append((str(file), file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise InputError(file, "no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(file, f"cannot read: {getattr(exc, 'strerror', None) or exc}"
                             ) from None
    for name, text in sources:
        tokens = parse_tokens(text, name)
        if merged is None:
            merged = tokens
        else:
            merged.by_blob.update(tokens.by_blob)
            merged.by_container.update(tokens.by_container)
            merged.default = tokens.default or merged.default
    return merged


def redact_finding(finding: Finding) -> Finding:
    """A finding with every signature in its message and evidence redacted."""
    def clean(text: str | None) -> str | None:
        return None if text is None else redact(text)

    evidence = tuple(replace(e, path=clean(e.path), seen=clean(e.seen),
                             required=clean(e.required)) for e in finding.evidence)
    return replace(finding, message=redact(finding.message), evidence=evidence)
