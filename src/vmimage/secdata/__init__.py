"""The distribution's own security data, compared with what an image has installed
(LNX-PATCHES, rule LINUX-SECURITY-PATCHES): ``--security-data auto|DIR|off``.

- ``auto``: fetched from the archives the image's own package sources name (HTTPS where the
  archive answers it, the environment's proxy), through a cache directory;
- ``DIR``: what ``vmimage security-data fetch IMAGE DIR`` wrote earlier (air-gapped CI);
- ``off``: not compared (the rule skips, saying so).

Debian and Ubuntu: :mod:`.debian` (the ``-security`` suite's index, the tracker's DSA/DLA);
RHEL family and SUSE: :mod:`.rpm` (``updateinfo.xml`` of the image's repositories).
"""

from __future__ import annotations

import os
from pathlib import Path

from vmimage.errors import InputError
from vmimage.facts import Facts
from vmimage.facts.security import SecurityDataUnavailable, SecurityProvider, SecurityVerdict
from vmimage.secdata.fetch import CachedWeb, Prepared, Recording, Source, default_cache

#: The variable that sets the default of ``--security-data`` (``auto`` without it).
ENV = "VMIMAGE_SECURITY_DATA"
MODES = ("auto", "off")


def verdict(facts: Facts, source: Source) -> SecurityVerdict:
    """The comparison for this system's package manager.

    Raises:
        SecurityDataUnavailable: no package database the data applies to, or no data.
    """
    manager = facts.packages.manager
    if manager == "dpkg":
        from vmimage.secdata import debian

        return debian.verdict(facts, source)
    if manager == "rpm":
        from vmimage.secdata import rpm

        return rpm.verdict(facts, source)
    raise SecurityDataUnavailable("no dpkg or rpm package database in the image")


def setting(given: str | None) -> str:
    """``--security-data`` as given, else ``$VMIMAGE_SECURITY_DATA``, else ``auto``."""
    return (given or os.environ.get(ENV) or "auto").strip()


def provider(given: str | None, cache: Path | None = None) -> SecurityProvider | None:
    """What the check context carries for ``--security-data`` (None: ``off``).

    Raises:
        InputError: ``DIR`` is not a directory prepared by ``vmimage security-data fetch``.
    """
    chosen = setting(given)
    if chosen == "off":
        return None
    if chosen == "auto":
        source: Source = CachedWeb(cache or default_cache())
    else:
        try:
            source = Prepared.open(Path(chosen))
        except SecurityDataUnavailable as exc:
            raise InputError("--security-data", str(exc)) from None
    return lambda facts: verdict(facts, source)


def record(facts: Facts, out: Path) -> tuple[SecurityVerdict, Path]:
    """``vmimage security-data fetch``: fetch the data the image needs into ``out`` (and
    compare, so the user sees at once what it says).

    Raises:
        SecurityDataUnavailable: the data cannot be had (the reason).
    """
    recording = Recording(out)
    found = verdict(facts, recording)
    return found, recording.save()
