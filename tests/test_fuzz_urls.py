"""Fuzzing every parser of blob URLs, SAS URIs and tokens, and size arguments (issue 17).

Each example runs in a forked child bounded in time and memory (:mod:`tests.fuzzing`): the
parsers may return or raise the typed input error (``VmimageError``), nothing else, and a
refusal never repeats the signature it was given. Short in CI; ``VMIMAGE_FUZZ_EXAMPLES=5000``
runs longer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import run_bounded
from vmimage.bloburl import parse_lenient, parse_strict
from vmimage.errors import VmimageError
from vmimage.offer.sas import parse_tokens
from vmimage.profiles import load_profile
from vmimage.secrets import redact
from vmimage.storage.blob_url import parse_blob_url, parse_sas_url
from vmimage.storage.sas_rules import verify_sas
from vmimage.units import parse_size

# Imported here, in the parent, so that each forked child starts with them loaded.
PROFILES = (load_profile("azure-2015"), load_profile("azure-current"))

EXAMPLES = int(os.environ.get("VMIMAGE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_HOSTS = st.one_of(
    st.sampled_from(["127.0.0.1:10000", "acct.blob.core.windows.net", "localhost", "[::1]",
                     "[::1", "[::1]x", "[fe80::1%25eth0]", "h:99999", "h:", ":80", "a..b",
                     "acct.blob.core.chinacloudapi.cn:443", "user:pw@host", "@", "h\x1b]0;x",
                     "bücher.example", "[v1.x]", "", "%41", "h h"]),
    st.text(st.characters(codec="utf-8"), max_size=20),
)
_PATHS = st.lists(st.one_of(st.sampled_from(["acct", "vhds", "os.vhd", "a b.vhd", "%2F",
                                             "%zz", "..", "", "x.VHD", "\u202e.vhd"]),
                            st.text(max_size=12)), max_size=5).map("/".join)
_FIELDS = st.sampled_from(["sv", "sr", "sp", "st", "se", "sig", "spr", "ss", "srt", "foo",
                           "sig", "SIG", "", "snapshot"])
_VALUES = st.one_of(
    st.sampled_from(["rl", "r", "racwdl", "c", "b", "2020-01-01T00:00:00Z",
                     "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2020-13-45T99:99:99Z",
                     "2020-01-01", "https", "c2VjcmV0LXNpZ25hdHVyZS1mdXp6", "%", "%zz", "",
                     "99999999999999999999999", "+1-1-1T1:1:1Z"]),
    st.text(max_size=30),
)
_QUERIES = st.lists(st.tuples(_FIELDS, _VALUES), max_size=8).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))
URLS = st.one_of(
    st.builds(lambda s, h, p, q: f"{s}://{h}/{p}" + (f"?{q}" if q else ""),
              st.sampled_from(["http", "https", "HTTPS", "ftp", "file", ""]), _HOSTS, _PATHS,
              _QUERIES),
    st.text(max_size=200),
    _QUERIES,
)
_SIG = re.compile(r"(?i)(?:^|[?&])sig=([^&#\s]{8,})")


def _typed_only(text: str, *targets: Callable[[str], object]) -> Callable[[], None]:
    """A child's work: every target on ``text``; each may raise only VmimageError, whose
    message must not repeat a signature of 8 characters or more."""
    def work() -> None:
        signatures = {s for m in _SIG.findall(text) for s in (m, unquote(m))
                      if len(s) >= 8 and text.count(s) == 1}  # only in the sig field
        for target in targets:
            try:
                target(text)
            except VmimageError as exc:
                leaked = [s for s in signatures if s in str(exc)]
                assert not leaked, f"a refusal repeated the signature: {exc}"
    return work


def _strict(text: str) -> object:
    parse_strict(text)
    return parse_strict(text, kind="container")


def _lenient(text: str) -> object:
    address = parse_lenient(text)
    return (address.url, address.fields, address.signed, address.account_url)


def _blob_url(text: str) -> object:
    parse_sas_url(text).display  # noqa: B018 - the property is the code under test
    return parse_blob_url(text).display


def _verify_offline(text: str) -> object:
    for profile in PROFILES:
        for finding in verify_sas([text, text], profile, online=False):
            for s in {m for m in _SIG.findall(text) if len(m) >= 8 and text.count(m) == 1}:
                assert s not in finding.message and s not in redact(str(finding.evidence)), \
                    "a finding repeated the signature"
    return None


def _tokens(text: str) -> object:
    tokens = parse_tokens(text, "SAS tokens")
    return tokens.scoped


@FUZZ
@given(URLS)
def test_blob_url_parsers_raise_only_the_typed_error(text: str) -> None:
    ending = run_bounded(_typed_only(text, _strict, _lenient, _blob_url))
    assert ending.ok, ending


@FUZZ
@given(URLS)
def test_sas_verify_offline_and_token_files_raise_only_the_typed_error(text: str) -> None:
    ending = run_bounded(_typed_only(text, _verify_offline, _tokens))
    assert ending.ok, ending


@FUZZ
@given(st.lists(URLS, min_size=1, max_size=4).map("\n".join))
def test_token_files_of_many_lines(text: str) -> None:
    ending = run_bounded(_typed_only(text, _tokens))
    assert ending.ok, ending


SIZES = st.one_of(
    st.text(max_size=40),
    st.builds(lambda n, f, u, b: f"{n}{f}{u}{b}",
              st.one_of(st.integers(0, 10**40).map(str), st.sampled_from(["٣", "１", "9" * 5000,
                                                                           "", "-1", "1e3"])),
              st.sampled_from(["", ".5", ".0000001", ".", ".٣"]),
              st.sampled_from(["", "K", "M", "G", "T", "P", "E", "k", "ǵ"]),
              st.sampled_from(["", "B", "iB", "IB", "ib", " ", "\n"])),
)


@FUZZ
@given(SIZES)
def test_parse_size_returns_bytes_or_the_typed_error(text: str) -> None:
    def work() -> None:
        try:
            value = parse_size(text)
        except VmimageError:
            return
        assert isinstance(value, int) and value >= 0
        assert text.strip().isascii(), f"{text!r} has non-ASCII digits and was read as {value}"

    ending = run_bounded(work)
    assert ending.ok, ending
