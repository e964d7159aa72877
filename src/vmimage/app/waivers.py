"""Waivers: a publisher's written, dated acceptance of one rule's violation.

A team that knows why an image breaks a rule (Microsoft granted an exception, a fix is
scheduled) must not be forced to disable the rule in its profile, which hides the violation
from every later reader. A waiver keeps the finding visible, marked *waived* with its reason,
stops it from failing the run, and **expires**: on the day after ``expires`` the finding
fails again and the run says why. The file is TOML, kept in the repository beside the image's
build::

    [[waiver]]
    rule = "LINUX-PYTHON-VERSION"
    reason = "Python 3.8 is pinned by our agent; case 2211 with Microsoft"
    expires = 2027-03-01                 # a TOML date; required
    path = "out/*.vhd"                   # optional: only targets matching this glob

A waiver that names no known rule, has no reason or no expiry is an input error (exit 2): a
typo must not silently waive nothing, and a waiver without an end is a disabled rule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vmimage import log
from vmimage.errors import InputError
from vmimage.findings import Finding, Status

_KEYS = {"rule", "reason", "expires", "path"}
MAX_WAIVER_FILE = 1 << 20
_log = log.get("waivers")


@dataclass(frozen=True)
class Waiver:
    """One entry of a waiver file."""

    rule: str
    reason: str
    expires: dt.date
    path: str | None
    where: str  # "waivers.toml, waiver 2": where a reader finds it

    def matches(self, finding: Finding, target: str) -> bool:
        """The same rule, and the target matches ``path`` (when given)."""
        if finding.check_id != self.rule:
            return False
        return self.path is None or _path_matches(self.path, target)


def _path_matches(pattern: str, target: str) -> bool:
    """The glob against the target as given, its absolute path, and its file name."""
    names = {target, os.path.abspath(target), os.path.basename(target)}  # noqa: PTH100
    return any(fnmatch.fnmatchcase(name, pattern) for name in names)


def load_waivers(path: str | os.PathLike[str], known: Iterable[str]) -> list[Waiver]:
    """Read and check a waiver file against the registered rule IDs.

    Raises:
        InputError: unreadable, not TOML, or an entry with an unknown key or rule ID, no
            reason, or no date in ``expires``.
    """
    from vmimage.inputs import read_bounded_text

    source = Path(path)
    try:
        raw = tomllib.loads(read_bounded_text(source, limit=MAX_WAIVER_FILE))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(source, f"not a TOML waiver file: {exc}") from None
    extra = sorted(set(raw) - {"waiver"})
    entries = raw.get("waiver", [])
    if extra or not isinstance(entries, list):
        raise InputError(source, "a waiver file holds only [[waiver]] entries "
                                 f"(found {', '.join(extra) or 'waiver = ...'})")
    rules = set(known)
    return [_entry(source, i, entry, rules) for i, entry in enumerate(entries, 1)]


def _entry(source: Path, index: int, entry: object, rules: set[str]) -> Waiver:
    where = f"{source}, waiver {index}"
    if not isinstance(entry, dict):
        raise InputError(where, "is not a table")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise InputError(where, f"unknown key(s) {', '.join(unknown)} (known: "
                                f"{', '.join(sorted(_KEYS))})")
    rule = str(entry.get("rule", "")).upper()
    if rule not in rules:
        raise InputError(where, f"rule {entry.get('rule')!r} is no rule vmimage has "
                                "(vmimage checks list)")
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InputError(where, "has no reason: say why the rule may be broken")
    expires = entry.get("expires")
    if isinstance(expires, dt.datetime) or not isinstance(expires, dt.date):
        raise InputError(where, "needs expires = YYYY-MM-DD (a TOML date, unquoted): a "
                                "waiver without an end is a disabled rule")
    pattern = entry.get("path")
    if pattern is not None and (not isinstance(pattern, str) or not pattern):
        raise InputError(where, "path must be a non-empty glob")
    return Waiver(rule, " ".join(reason.split()), expires, pattern, where)


def apply_waivers(findings: list[Finding], waivers: list[Waiver], target: str,
                  today: dt.date | None = None) -> list[Finding]:
    """The findings with each violation a live waiver covers marked waived.

    An expired waiver changes nothing but the message, which says it expired, so the run that
    starts failing explains itself. A waiver on a rule that passed is noted on ``--verbose``
    (it can be removed).
    """
    day = today or dt.datetime.now(dt.UTC).date()
    out: list[Finding] = []
    for finding in findings:
        match = next((w for w in waivers if w.matches(finding, target)), None)
        if match is None:
            out.append(finding)
        elif finding.status not in (Status.FAIL, Status.WARNING):
            _log.info("%s: %s holds; its waiver can go", match.where, match.rule)
            out.append(finding)
        elif match.expires < day:
            _log.warning("%s: the waiver of %s expired on %s: the finding counts again",
                         match.where, match.rule, match.expires)
            out.append(dataclasses.replace(
                finding, message=f"{finding.message} (its waiver expired on {match.expires}: "
                                 f"{match.where})"))
        else:
            out.append(dataclasses.replace(
                finding, waiver=f"{match.reason} (waived until {match.expires}, {match.where})"))
    return out
