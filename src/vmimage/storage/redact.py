"""Keep secrets out of everything we print: SAS signatures, account keys, connection strings.

The SDK's exceptions carry the full request URL, ``sig=`` included, and a connection string
holds the account key in clear. We cannot make every library careful, so every message we
print passes through :func:`redact`, which removes both the known secret values (registered
as soon as we read them) and anything shaped like one.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote

REDACTED = "REDACTED"

_PATTERNS = (
    # sig=... in a URL or a header, plain or percent-encoded (sig%3D...).
    re.compile(r"(?i)(\bsig(?:=|%3D))[^&\s'\"<>]+"),
    re.compile(r"(?i)(AccountKey=)[^;\s'\"<>]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s'\"<>]+"),
    re.compile(r"(?i)(Authorization['\"]?\s*[:=]\s*['\"]?\w+\s)[^\s'\",}]+"),
    re.compile(r"(?i)(SharedKey(?:Lite)?\s+[\w-]+:)[^\s'\",}]+"),
)

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value (a key, a SAS token) so that :func:`redact` removes it anywhere."""
    if not value or len(value) < 8:  # a short value would redact ordinary words
        return
    with _lock:
        _secrets.add(value)
        _secrets.add(quote(value, safe=""))
        _secrets.add(quote(value, safe="/"))


def redact(text: str) -> str:
    """``text`` with every registered secret and every ``sig=``/``AccountKey=`` value replaced."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def one_line(text: str, limit: int = 300) -> str:
    """The first meaningful line of an SDK message, redacted and cut to ``limit`` characters.

    The SDK's messages run over several lines (request ID, time, the XML body); the CLI promises
    one line per error.
    """
    lines = [ln.strip() for ln in redact(text).splitlines() if ln.strip()]
    first = lines[0] if lines else "unknown error"
    return first if len(first) <= limit else first[:limit - 3] + "..."
