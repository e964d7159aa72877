"""SAS tokens for a submission: read from an environment variable or a file, never from the
command line (``ps`` shows arguments), and never shown: every text that leaves vmimage other
than a submission file passes through :func:`vmimage.secrets.redact` (rulings).

A token source holds one entry per line (blank lines and ``#`` comments ignored):

- a blob's SAS URI, ``https://acct.blob.core.windows.net/vhds/os.vhd?sv=...&sr=b&sig=...``:
  used for that blob;
- a container SAS URI with a blob's path appended,
  ``https://acct.blob.core.windows.net/vhds/os.vhd?sv=...&sr=c&sig=...``, which is what
  ``vmimage sas create`` makes by default (the guide's Storage Explorer steps made it so): used
  for that blob, and, since the token is the container's, for every other blob of that
  container that has no token of its own;
- a container SAS URI, ``https://acct.blob.core.windows.net/vhds?sv=...&sr=c&sig=...``: used
  for every blob in that container;
- an account SAS URI, ``https://acct.blob.core.windows.net/?sv=...&ss=b&sig=...``: used for
  every blob of that account;
- a bare token, ``sv=...&sig=...`` (with or without ``?``): used for every other blob.

The most specific one wins: blob, container, account, then the bare token. URLs are matched by
their parts (:mod:`vmimage.bloburl`), host- or path-style, not by their spelling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from vmimage.bloburl import BlobAddress, parse_lenient
from vmimage.errors import InputError
from vmimage.findings import Finding
from vmimage.inputs import read_bounded_text
from vmimage.secrets import has_token, redact, register_sas

__all__ = ["SasTokens", "parse_tokens", "read_tokens", "redact_finding", "scopes"]

Scope = tuple[str, ...]


def scopes(address: BlobAddress) -> tuple[Scope, Scope, Scope]:
    """The blob's, its container's and its account's keys, most specific first.

    Host, account and container are case-insensitive in Azure (container names are lower
    case); blob names are not.
    """
    account = (address.scheme, address.netloc.lower(), address.account.lower())
    container = (*account, address.container.lower())
    return (*container, address.blob), container, account


@dataclass
class SasTokens:
    """Tokens by blob, container or account (:func:`scopes`), and one for every other blob."""

    source: str
    scoped: dict[Scope, str] = field(default_factory=dict)
    default: str | None = None

    def token(self, blob_url: str) -> str | None:
        """The token that applies to ``blob_url`` (a URL without a token), or None."""
        address = parse_lenient(blob_url, "the disk's blob URL")
        for scope in scopes(address):
            if scope in self.scoped:
                return self.scoped[scope]
        return self.default

    def sas_uri(self, blob_url: str) -> str | None:
        """The SAS URI of ``blob_url`` (a URL without a token), or None when none applies."""
        token = self.token(blob_url)
        if token is None:
            return None
        base = blob_url.split("?", 1)[0].split("#", 1)[0]
        return f"{base}?{token}"

    def update(self, other: SasTokens) -> None:
        """Add ``other``'s tokens; where both have one for the same scope, ``other``'s wins."""
        self.source = f"{self.source} and {other.source}"
        self.scoped.update(other.scoped)
        self.default = other.default or self.default


def _add_uri(tokens: SasTokens, line: str, where: str) -> None:
    """File a SAS URI's token under the scope its URL and ``sr`` name."""
    try:
        address = parse_lenient(line, tokens.source)
    except InputError as exc:
        raise InputError(tokens.source, f"{where}: {exc.problem}") from None
    if address.scheme not in ("http", "https") or not address.netloc or not address.query:
        raise InputError(tokens.source, f"{where}: not an http(s) SAS URI")
    if not address.account:
        raise InputError(tokens.source, f"{where}: names no storage account")
    blob, container, account = scopes(address)
    resource = address.fields.get("sr")
    if address.blob:
        tokens.scoped[blob] = address.query
        if resource == "c":  # a container token, the blob's path appended (sas create)
            tokens.scoped[container] = address.query
    elif resource == "b":
        raise InputError(tokens.source, f"{where}: a blob SAS (sr=b) whose URI names no blob")
    elif address.container:
        tokens.scoped[container] = address.query
    elif resource is not None:
        raise InputError(tokens.source, f"{where}: a container SAS (sr={resource}) whose URI "
                                        "names no container")
    else:
        tokens.scoped[account] = address.query


def parse_tokens(text: str, source: str) -> SasTokens:
    """Read token lines; errors name ``source`` and the line, never the token.

    Raises:
        InputError: a line is neither a SAS URI nor a token, or no line holds one.
    """
    tokens = SasTokens(source)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        register_sas(line.partition("?")[2] if "://" in line else line)
        if not has_token(line):
            raise InputError(source, f"line {number}: no 'sig=' in it: not a SAS URI or token")
        if "://" in line:
            _add_uri(tokens, line, f"line {number}")
        else:
            tokens.default = line.removeprefix("?")
    if not tokens.scoped and tokens.default is None:
        raise InputError(source, "holds no SAS URI or token")
    return tokens


def read_tokens(env: str | None, file: Path | None) -> SasTokens | None:
    """Tokens from the environment variable named ``env`` and/or ``file`` (None: neither); the
    file's win where both name the same blob.

    Raises:
        InputError: the variable is unset or empty, the file cannot be read
            (:mod:`vmimage.inputs`), or a line is bad.
    """
    sources: list[tuple[str, str]] = []
    if env is not None:
        value = os.environ.get(env, "")
        if not value.strip():
            raise InputError("--sas-env", f"environment variable {env} is not set or empty")
        sources.append((f"${env}", value))
    if file is not None:
        sources.append((str(file), read_bounded_text(file)))
    merged: SasTokens | None = None
    for name, text in sources:
        tokens = parse_tokens(text, name)
        if merged is None:
            merged = tokens
        else:
            merged.update(tokens)
    return merged


def redact_finding(finding: Finding) -> Finding:
    """A finding with every signature in its message and evidence redacted."""
    def clean(text: str | None) -> str | None:
        return None if text is None else redact(text)

    evidence = tuple(replace(e, path=clean(e.path), seen=clean(e.seen),
                             required=clean(e.required)) for e in finding.evidence)
    return replace(finding, message=redact(finding.message), evidence=evidence)
