"""``vmimage security-data fetch IMAGE DIR``: fetch the security data an image needs (from
the archives its own package sources name) into a directory, so that a check without network
(``vmimage check IMAGE --security-data DIR``, air-gapped CI) compares with exactly those bytes.
"""

from __future__ import annotations

from pathlib import Path

from vmimage.errors import InputError
from vmimage.facts import Facts
from vmimage.facts.security import SecurityDataUnavailable, SecurityVerdict
from vmimage.targets.open import open_target


def fetch_security_data(spec: str, out: Path) -> tuple[SecurityVerdict, Path]:
    """Fetch into ``out`` what comparing ``spec``'s packages takes; the comparison and the
    manifest written.

    Raises:
        InputError: the image cannot be opened, or no data can be had for it (the reason).
    """
    from vmimage.secdata import record

    if out.exists() and not out.is_dir():
        raise InputError(out, "is not a directory")
    target = open_target(spec)
    try:
        return record(Facts(target), out)
    except SecurityDataUnavailable as exc:
        raise InputError(spec, str(exc)) from None
    finally:
        target.close()
