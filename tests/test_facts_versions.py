"""Version ordering checked against dpkg and rpm: known cases, then hypothesis with the tools as oracles."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmimage.facts.versions import (
    dpkg_compare,
    parse_dpkg,
    parse_rpm,
    rpm_compare,
    rpmvercmp,
    upstream_version,
    version_at_least,
)

# rpm's own test table (tests/rpmvercmp.at), version strings only.
RPMVERCMP_CASES = [
    ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0", "1.0", 1), ("2.0.1", "2.0.1", 0),
    ("2.0", "2.0.1", -1), ("2.0.1", "2.0", 1), ("2.0.1a", "2.0.1a", 0), ("2.0.1a", "2.0.1", 1),
    ("2.0.1", "2.0.1a", -1), ("5.5p1", "5.5p1", 0), ("5.5p1", "5.5p2", -1),
    ("5.5p2", "5.5p1", 1), ("5.5p10", "5.5p10", 0), ("5.5p1", "5.5p10", -1),
    ("5.5p10", "5.5p1", 1), ("10xyz", "10.1xyz", -1), ("10.1xyz", "10xyz", 1),
    ("xyz10", "xyz10", 0), ("xyz10", "xyz10.1", -1), ("xyz10.1", "xyz10", 1),
    ("xyz.4", "xyz.4", 0), ("xyz.4", "8", -1), ("8", "xyz.4", 1), ("xyz.4", "2", -1),
    ("2", "xyz.4", 1), ("5.5p2", "5.6p1", -1), ("5.6p1", "5.5p2", 1), ("5.6p1", "6.5p1", -1),
    ("6.5p1", "5.6p1", 1), ("6.0.rc1", "6.0", 1), ("6.0", "6.0.rc1", -1),
    ("10b2", "10a1", 1), ("10a2", "10b2", -1), ("1.0aa", "1.0aa", 0), ("1.0a", "1.0aa", -1),
    ("1.0aa", "1.0a", 1), ("10.0001", "10.0001", 0), ("10.0001", "10.1", 0),
    ("10.1", "10.0001", 0), ("10.0001", "10.0039", -1), ("10.0039", "10.0001", 1),
    ("4.999.9", "5.0", -1), ("5.0", "4.999.9", 1), ("20101121", "20101121", 0),
    ("20101121", "20101122", -1), ("20101122", "20101121", 1), ("2_0", "2_0", 0),
    ("2.0", "2_0", 0), ("2_0", "2.0", 0), ("a", "a", 0), ("a+", "a+", 0), ("a+", "a_", 0),
    ("a_", "a+", 0), ("+a", "+a", 0), ("+a", "_a", 0), ("_a", "+a", 0), ("+_", "+_", 0),
    ("_+", "+_", 0), ("_+", "_", 0), ("+", "_", 0), ("_", "+", 0),
    ("1.0~rc1", "1.0~rc1", 0), ("1.0~rc1", "1.0", -1), ("1.0", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc2", -1), ("1.0~rc2", "1.0~rc1", 1),
    ("1.0~rc1~git123", "1.0~rc1~git123", 0), ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0~rc1", "1.0~rc1~git123", 1), ("1.0^", "1.0^", 0), ("1.0^", "1.0", 1),
    ("1.0", "1.0^", -1), ("1.0^git1", "1.0^git1", 0), ("1.0^git1", "1.0", 1),
    ("1.0", "1.0^git1", -1), ("1.0^git1", "1.0^git2", -1), ("1.0^git2", "1.0^git1", 1),
    ("1.0^git1", "1.01", -1), ("1.01", "1.0^git1", 1), ("1.0^20160101", "1.0^20160101", 0),
    ("1.0^20160101", "1.0.1", -1), ("1.0.1", "1.0^20160101", 1),
    ("1.0^20160101^git1", "1.0^20160101^git1", 0), ("1.0^20160102", "1.0^20160101^git1", 1),
    ("1.0^20160101^git1", "1.0^20160102", -1), ("1.0~rc1^git1", "1.0~rc1^git1", 0),
    ("1.0~rc1^git1", "1.0~rc1", 1), ("1.0~rc1", "1.0~rc1^git1", -1),
    ("1.0^git1~pre", "1.0^git1~pre", 0), ("1.0^git1", "1.0^git1~pre", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
]

# dpkg's semantics as Debian policy §5.6.12 states them, on real package versions.
DPKG_CASES = [
    ("1.0", "1.0-0", 0), ("1.0", "1.0-1", -1), ("1.0~rc1", "1.0", -1), ("1.0~~", "1.0~", -1),
    ("1.0~", "1.0", -1), ("1.0", "1.0a", -1), ("1.0a", "1.0+", -1), ("1.0+dfsg-1", "1.0-1", 1),
    ("1:0.9", "2.0", 1), ("0:1.0", "1.0", 0), ("2.2.53.1-1", "2.2.53-1", 1),
    ("2.7.3.0-1", "2.2.41", 1), ("3.0.11-1~deb12u2", "3.0.11-1", -1),
    ("1.1.1n-0+deb11u5", "1.1.1", 1), ("1.0-1", "1.0-1+b1", -1), ("1.00", "1.0", 0),
    ("1.0.0", "1.0", 1), ("9", "10", -1), ("1.2-3-4", "1.2-3", 1), ("a", "0a", 1),
]


@pytest.mark.parametrize(("a", "b", "expected"), RPMVERCMP_CASES)
def test_rpmvercmp_matches_rpms_own_table(a, b, expected):
    assert rpmvercmp(a, b) == expected


@pytest.mark.parametrize(("a", "b", "expected"), DPKG_CASES)
def test_dpkg_compare_known_cases(a, b, expected):
    assert dpkg_compare(a, b) == expected
    assert dpkg_compare(b, a) == -expected


def test_rpm_compare_uses_epoch_then_version_then_release():
    assert rpm_compare("1:1.0-1", "2.0-1") == 1
    assert rpm_compare("0:1.0-1", "1.0-1") == 0
    assert rpm_compare("1.0-2.el8", "1.0-10.el8") == -1
    # a missing release sorts below any release, as rpm's compare_values does
    assert rpm_compare("2.2.41-1.el8", "2.2.41") == 1
    assert rpm_compare("2.2.41", "2.2.41") == 0


def test_parsing_splits_like_the_tools():
    assert parse_dpkg("1:2.2.53-1ubuntu1").epoch == "1"
    assert parse_dpkg("1.2-3-4").version == "1.2-3"
    assert parse_dpkg("1.2-3-4").release == "4"
    assert parse_dpkg("2.2.53").release is None
    assert parse_rpm("3:1.1.1k-9.el8_7").epoch == "3"
    assert parse_rpm("3:1.1.1k-9.el8_7").release == "9.el8_7"
    assert parse_rpm(":1.0").epoch == "0"


def test_upstream_version():
    assert upstream_version("1:2.2.53.1-1ubuntu1~20.04") == "2.2.53.1"
    assert upstream_version("3.0.11-1~deb12u2") == "3.0.11"
    assert upstream_version("2.7.3.0") == "2.7.3.0"
    assert upstream_version("1:1.1.1k-9.el8_7") == "1.1.1k"


def test_version_at_least():
    assert version_at_least("dpkg", "2.7.3.0-1", "2.2.41")
    assert not version_at_least("dpkg", "2.2.41~rc1-1", "2.2.41")
    assert version_at_least("rpm", "2.2.53.1-1.el8", "2.2.53.1")
    assert not version_at_least("rpm", "2.2.49.2-1.el8", "2.2.53.1")
    assert version_at_least("plain", "3.0.11", "3.0.0")
    assert version_at_least("plain", "1:1.1.1n-0+deb11u5", "1.1.1")
    assert not version_at_least("plain", "0.9.7m", "0.9.8")
    with pytest.raises(ValueError, match="unknown version kind"):
        version_at_least("pip", "1", "2")


# --- the tools as oracles ---------------------------------------------------------------------

_dpkg_tail = st.text(alphabet="0123456789abzAZ.+~", min_size=0, max_size=6)
_dpkg_epoch = st.one_of(st.none(), st.integers(0, 3))
_dpkg_rev = st.one_of(st.none(), st.text(alphabet="0123456789ab.+~", min_size=1, max_size=4))


def _dpkg_version(epoch: int | None, upstream: str, rev: str | None) -> str:
    return (f"{epoch}:" if epoch is not None else "") + upstream + (f"-{rev}" if rev else "")


_dpkg_versions = st.builds(lambda e, head, tail, r: _dpkg_version(e, head + tail, r),
                           _dpkg_epoch, st.sampled_from("0123456789"), _dpkg_tail, _dpkg_rev)
# pairs sharing epoch and a prefix, so the comparison goes past the first differing character
_dpkg_close_pairs = st.builds(
    lambda e, head, t1, t2, r1, r2: (_dpkg_version(e, head + t1, r1),
                                     _dpkg_version(e, head + t2, r2)),
    _dpkg_epoch, st.text(alphabet="0123456789.", min_size=1, max_size=4).filter(
        lambda h: h[0].isdigit()), _dpkg_tail, _dpkg_tail, _dpkg_rev, _dpkg_rev)


def _dpkg_oracle(pairs: list[tuple[str, str]]) -> list[int]:
    script = "\n".join(
        f"if dpkg --compare-versions '{a}' lt '{b}'; then echo -1; "
        f"elif dpkg --compare-versions '{a}' eq '{b}'; then echo 0; else echo 1; fi"
        for a, b in pairs)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    return [int(x) for x in out.stdout.split()]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg not installed")
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.tuples(_dpkg_versions, _dpkg_versions), _dpkg_close_pairs),
                min_size=1, max_size=20))
def test_dpkg_compare_agrees_with_dpkg(pairs):
    assert [dpkg_compare(a, b) for a, b in pairs] == _dpkg_oracle(pairs)


_rpm_versions = st.builds(
    lambda epoch, version, release: (f"{epoch}:" if epoch is not None else "")
    + version + (f"-{release}" if release else ""),
    st.one_of(st.none(), st.integers(0, 2)),
    st.text(alphabet="0123456789abAB._~^+", min_size=1, max_size=7),
    st.one_of(st.none(), st.text(alphabet="0123456789el._~^", min_size=1, max_size=5)))


def _rpm_oracle(pairs: list[tuple[str, str]]) -> list[int]:
    table = ",".join(f"{{[==[{a}]==],[==[{b}]==]}}" for a, b in pairs)
    lua = f"%{{lua: for _, p in ipairs({{{table}}}) do print(rpm.vercmp(p[1], p[2]) .. ' ') end}}"
    out = subprocess.run(["rpm", "--eval", lua], capture_output=True, text=True, check=True)
    return [int(x) for x in out.stdout.split()]


@pytest.mark.skipif(shutil.which("rpm") is None, reason="rpm not installed")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_rpm_versions, _rpm_versions), min_size=1, max_size=25))
def test_rpm_compare_agrees_with_rpm(pairs):
    pairs = pairs + [(a, a + b) for a, b in pairs if "-" not in a + b]
    assert [rpm_compare(a, b) for a, b in pairs] == _rpm_oracle(pairs)


@pytest.mark.skipif(shutil.which("rpm") is None, reason="rpm not installed")
def test_rpm_oracle_agrees_with_the_table():
    pairs = [(a, b) for a, b, _ in RPMVERCMP_CASES]
    assert _rpm_oracle(pairs) == [expected for _, _, expected in RPMVERCMP_CASES]
