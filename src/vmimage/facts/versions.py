"""Package version ordering exactly as dpkg and rpm order them.

The agent, OpenSSL, Python and kernel minimums are package versions. ``packaging.version`` and
naive splitting get ``2.2.53.1~rc1`` or ``1:0.9.8-1`` wrong, and a check that says "too old"
about an image the distribution considers new enough is worse than no check (rulings): so this
module re-implements dpkg's ``verrevcmp`` (lib/dpkg/version.c) and rpm's ``rpmvercmp`` and
``rpmverCmp`` (rpmio/rpmvercmp.c, lib/rpmver.c) character for character. The tests hold them
against ``dpkg --compare-versions`` and rpm's own ``rpm.vercmp``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Evr:
    """A version split the way the package manager splits it."""

    epoch: str  # "" when absent (dpkg and rpm both treat that as 0)
    version: str
    release: str | None  # Debian revision / RPM release; None when the version has none


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


# --- dpkg -------------------------------------------------------------------------------------


def parse_dpkg(version: str) -> Evr:
    """``[epoch:]upstream[-revision]``: epoch before the first colon, revision after the last -."""
    version = version.strip()
    epoch = ""
    colon = version.find(":")
    if colon >= 0:
        epoch, version = version[:colon], version[colon + 1:]
    dash = version.rfind("-")
    if dash >= 0:
        return Evr(epoch, version[:dash], version[dash + 1:])
    return Evr(epoch, version, None)


def _dpkg_order(char: str) -> int:
    """As dpkg's ``order()``: digits 0, letters their code, ``~`` first, other signs after."""
    if char.isascii() and char.isdigit():
        return 0
    if char.isascii() and char.isalpha():
        return ord(char)
    if char == "~":
        return -1
    return ord(char) + 256


def _verrevcmp(a: str, b: str) -> int:
    """As dpkg's ``verrevcmp``: alternating non-digit and digit runs, ``~`` sorting lowest."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not _isdigit(a[i])) or (j < len(b) and not _isdigit(b[j])):
            ac = _dpkg_order(a[i]) if i < len(a) else 0
            bc = _dpkg_order(b[j]) if j < len(b) else 0
            if ac != bc:
                return _sign(ac - bc)
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and _isdigit(a[i]) and j < len(b) and _isdigit(b[j]):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and _isdigit(a[i]):
            return 1
        if j < len(b) and _isdigit(b[j]):
            return -1
        if first_diff:
            return _sign(first_diff)
    return 0


def _isdigit(char: str) -> bool:
    return "0" <= char <= "9"


def _epoch_int(epoch: str) -> int:
    try:
        return int(epoch) if epoch else 0
    except ValueError:
        return 0


def dpkg_compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``dpkg --compare-versions a lt/eq/gt b`` would answer."""
    va, vb = parse_dpkg(a), parse_dpkg(b)
    ea, eb = _epoch_int(va.epoch), _epoch_int(vb.epoch)
    if ea != eb:
        return _sign(ea - eb)
    rc = _verrevcmp(va.version, vb.version)
    if rc:
        return rc
    return _verrevcmp(va.release or "", vb.release or "")


# --- rpm --------------------------------------------------------------------------------------


def parse_rpm(evr: str) -> Evr:
    """As rpm's ``rpmverParse``: digits then ``:`` are the epoch; the last ``-`` the release."""
    evr = evr.strip()
    k = 0
    while k < len(evr) and _isdigit(evr[k]):
        k += 1
    rest = evr
    epoch = ""
    if k < len(evr) and evr[k] == ":":
        epoch, rest = evr[:k] or "0", evr[k + 1:]
    dash = rest.rfind("-")
    if dash >= 0:
        return Evr(epoch, rest[:dash], rest[dash + 1:])
    return Evr(epoch, rest, None)


def _isalnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def rpmvercmp(a: str, b: str) -> int:
    """As rpm's ``rpmvercmp``: one version or release string (``~`` low, ``^`` high-ish)."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not _isalnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < len(b) and not _isalnum(b[j]) and b[j] not in "~^":
            j += 1
        ca = a[i] if i < len(a) else ""
        cb = b[j] if j < len(b) else ""
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i += 1
            j += 1
            continue
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i += 1
            j += 1
            continue
        if not (ca and cb):
            break
        si, sj = i, j
        isnum = _isdigit(ca)
        kind = _isdigit if isnum else (lambda c: c.isascii() and c.isalpha())
        while i < len(a) and kind(a[i]):
            i += 1
        while j < len(b) and kind(b[j]):
            j += 1
        seg_a, seg_b = a[si:i], b[sj:j]
        if not seg_a:
            return -1  # cannot happen: ca is alphanumeric
        if not seg_b:
            return 1 if isnum else -1
        if isnum:
            seg_a = seg_a.lstrip("0")
            seg_b = seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def rpm_compare(a: str, b: str) -> int:
    """-1, 0 or 1 over ``[epoch:]version[-release]`` as rpm's ``rpmverCmp`` orders them.

    A missing epoch is 0. A missing release sorts below any release (rpm's
    ``compare_values``), so ``2.2.41-1.el8`` is at least the bare minimum ``2.2.41``.
    """
    va, vb = parse_rpm(a), parse_rpm(b)
    rc = rpmvercmp(va.epoch or "0", vb.epoch or "0")
    if rc:
        return rc
    rc = rpmvercmp(va.version, vb.version)
    if rc:
        return rc
    if va.release is None or vb.release is None:
        return (va.release is not None) - (vb.release is not None)
    return rpmvercmp(va.release, vb.release)


# --- both -------------------------------------------------------------------------------------


def upstream_version(version: str) -> str:
    """The upstream part, no epoch, revision or release (``1:2.2.53-1`` -> ``2.2.53``)."""
    return parse_dpkg(version).version


def version_at_least(kind: str, installed: str, minimum: str) -> bool:
    """Whether ``installed`` is at or above ``minimum`` under the named ordering.

    ``kind`` is ``dpkg`` or ``rpm`` for package versions, ``plain`` for a version from
    elsewhere (``openssl version``, a kernel release): its upstream parts under dpkg's rules.
    """
    if kind == "dpkg":
        return dpkg_compare(installed, minimum) >= 0
    if kind == "rpm":
        return rpm_compare(installed, minimum) >= 0
    if kind == "plain":
        return _verrevcmp(upstream_version(installed), upstream_version(minimum)) >= 0
    raise ValueError(f"unknown version kind {kind!r}: expected dpkg, rpm or plain")
