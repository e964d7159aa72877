"""Keep secrets out of everything vmimage prints: SAS signatures, account keys, connection strings.

The one redactor. The SDK's exceptions carry the full request URL, ``sig=`` included; a
connection string holds the account key in clear; a submission holds SAS URIs. We cannot make
every library careful, so every text that leaves vmimage (messages, errors, logs, reports,
stdout) other than a file written on purpose with mode 0600 passes through :func:`redact`,
which removes both the known secret values (registered as soon as they are read) and anything
shaped like one.

A leaf: it imports nothing from vmimage, so every layer can use it.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qs, quote, unquote

REDACTED = "REDACTED"

#: ``sig=VALUE`` in a URL, a bare query, a header or escaped text: ``?sig=``, ``&sig=``,
#: ``&amp;sig=``, ``%26sig%3D``, ``\u0026sig=``. Not preceded by a letter, so ``xsig=`` is left.
_SIG = re.compile(r"(?i)((?<![a-z])sig(?:=|%3D))[^&\s'\"<>\\]+")
_PATTERNS = (
    _SIG,
    re.compile(r"(?i)(AccountKey=)[^;\s'\"<>]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s'\"<>]+"),
    re.compile(r"(?i)(Authorization['\"]?\s*[:=]\s*['\"]?\w+\s)[^\s'\",}]+"),
    re.compile(r"(?i)(SharedKey(?:Lite)?\s+[\w-]+:)[^\s'\",}]+"),
)
#: Shorter values would redact ordinary words; every real key and signature is longer.
_MIN_SECRET = 8

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value (a key, a signature) so that :func:`redact` removes it anywhere,
    as written and percent-encoded (the SDK quotes it in URLs)."""
    if not value or len(value) < _MIN_SECRET:
        return
    with _lock:
        _secrets.update((value, quote(value, safe=""), quote(value, safe="/")))


def register_sas(query: str) -> None:
    """Register the signature of a SAS query (``sv=...&sig=...``, with or without ``?``), both
    as written and decoded, so that it is redacted even where no ``sig=`` precedes it."""
    for raw in re.findall(r"(?i)(?:^|[?&])sig=([^&]*)", query):
        register_secret(raw)
        register_secret(unquote(raw))
    for signature in parse_qs(query.lstrip("?")).get("sig", []):
        register_secret(signature)


def has_token(text: str) -> bool:
    """Whether a URL, a query or any text carries a SAS signature (``sig=``)."""
    return _SIG.search(text) is not None


def redact(text: str) -> str:
    """``text`` with every registered secret and every ``sig=``/``AccountKey=``/... value
    replaced by ``REDACTED``."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def one_line(text: str, limit: int = 300) -> str:
    """The first meaningful line of a message (an SDK's runs over several: request ID, time,
    the XML body), redacted and cut to ``limit`` characters: the CLI promises one line per
    error."""
    lines = [ln.strip() for ln in redact(text).splitlines() if ln.strip()]
    first = lines[0] if lines else "unknown error"
    return first if len(first) <= limit else first[:limit - 3] + "..."
