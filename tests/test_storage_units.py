"""The storage package's pure parts: business days, page ranges, chunking, URLs, redaction,
retry waits, and the SAS rules that need no service (with a fixed "now")."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmimage.errors import InputError
from vmimage.findings import Status
from vmimage.profiles import load_profile
from vmimage.secrets import redact, register_secret
from vmimage.storage import business_days as bd
from vmimage.storage.blob_url import parse_blob_url
from vmimage.storage.credentials import parse_connection_string, resolve
from vmimage.storage.pages import MAX_PUT, PAGE, RangeSet, aligned_extents, chunks
from vmimage.storage.retry import RetryPolicy
from vmimage.storage.sas import SasRule, iso
from vmimage.storage.sas_rules import verify_sas

MiB = 1024 * 1024
moments = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2035, 1, 1),
                       timezones=st.just(UTC))

# -- business days ------------------------------------------------------------------------------

MONDAY = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def test_business_days_skip_weekends() -> None:
    assert bd.add_business_days(MONDAY, 7) == datetime(2025, 3, 12, 10, 0, tzinfo=UTC)  # Wed
    friday_evening = datetime(2025, 3, 7, 22, 0, tzinfo=UTC)
    # Friday 22:00 + 1 business day: 2 h on Friday, 22 h on Monday.
    assert bd.add_business_days(friday_evening, 1) == datetime(2025, 3, 10, 22, tzinfo=UTC)
    saturday = datetime(2025, 3, 8, 12, tzinfo=UTC)
    assert bd.add_business_days(saturday, 5) == datetime(2025, 3, 15, 0, tzinfo=UTC)
    assert bd.business_days(saturday, saturday + timedelta(days=1)) == 0
    # The guide's Storage Explorer example (7 to 8 calendar days) is not 7 business days.
    assert bd.business_days(MONDAY, MONDAY + timedelta(days=8)) == 6


@settings(max_examples=300, deadline=None)
@given(moments, st.integers(min_value=0, max_value=40))
def test_adding_then_counting_business_days(start: datetime, days: int) -> None:
    end = bd.add_business_days(start, days)
    assert bd.business_time(start, end) == timedelta(days=days)
    assert end - start >= timedelta(days=days)


@settings(max_examples=200, deadline=None)
@given(moments, st.sampled_from(["azure-2015", "azure-current"]), st.integers(0, 23 * 3600))
def test_created_expiry_satisfies_verify_for_the_rest_of_the_day(
        now: datetime, profile_name: str, later: int) -> None:
    """``create`` counts from the start, ``verify`` from now: a URI made now still passes a
    verify run later that day."""
    profile = load_profile(profile_name)
    rule = SasRule.of(profile)
    now = now.replace(microsecond=0)
    start = now - rule.start_before
    expiry = rule.expiry(start, now)
    assert expiry.hour == expiry.minute == expiry.second == 0
    if rule.min_business_days is not None:
        assert bd.business_days(start, expiry) >= rule.min_business_days
        assert bd.business_days(now, expiry) >= rule.min_business_days
    else:
        assert expiry - start >= timedelta(days=21)
    check = min(now + timedelta(seconds=later), bd.end_of_day(now))
    uri = (f"https://a.blob.core.windows.net/vhds/os.vhd?sv=2020-10-02&sr=c&sp=rl"
           f"&st={iso(start)}&se={iso(expiry)}&sig=abc")
    found = {f.check_id: f.status for f in verify_sas([uri], profile, online=False, now=check)}
    assert found["SAS-URI-EXPIRY"] is Status.PASS, (now, check, expiry)
    assert found["SAS-URI-START"] is Status.PASS


# -- page ranges and chunks ---------------------------------------------------------------------


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 50)), max_size=20),
       st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 50)), max_size=20))
def test_rangeset_minus_matches_sets(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    ra = RangeSet((s, s + n) for s, n in a)
    rb = RangeSet((s, s + n) for s, n in b)
    bytes_a = {i for s, e in ra for i in range(s, e)}
    bytes_b = {i for s, e in rb for i in range(s, e)}
    diff = ra.minus(rb)
    assert {i for s, e in diff for i in range(s, e)} == bytes_a - bytes_b
    for s, n in a:
        assert ra.covers(s, s + n)
    assert rb.total == len(bytes_b)


@given(st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 30000)), max_size=12))
def test_chunks_are_aligned_and_at_most_4_mib(raw: list[tuple[int, int]]) -> None:
    extents = list(RangeSet((s * PAGE, (s + n) * PAGE) for s, n in raw))
    cut = list(chunks(extents))
    assert sum(c.length for c in cut) == sum(e - s for s, e in extents)
    for c in cut:
        assert c.offset % PAGE == 0 and c.length % PAGE == 0 and 0 < c.length <= MAX_PUT
        assert c.offset // MAX_PUT == (c.end - 1) // MAX_PUT  # never crosses the grid


def test_aligned_extents_of_a_sparse_file(tmp_path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.ftruncate(fd, 64 * MiB)
        os.pwrite(fd, b"x", 10 * MiB + 7)
        found = aligned_extents(fd, 64 * MiB)
    finally:
        os.close(fd)
    assert len(found) == 1
    start, end = found[0]
    assert start <= 10 * MiB + 7 < end and start % PAGE == 0 and end % PAGE == 0
    assert end - start <= MiB


# -- URLs, credentials, redaction -------------------------------------------------------------


def test_blob_urls_host_and_path_style() -> None:
    cloud = parse_blob_url("https://acct.blob.core.chinacloudapi.cn/vhds/dir/os%20x.vhd")
    assert (cloud.account, cloud.container, cloud.blob) == ("acct", "vhds", "dir/os x.vhd")
    assert cloud.account_url == "https://acct.blob.core.chinacloudapi.cn"
    assert not cloud.path_style
    emu = parse_blob_url("http://127.0.0.1:10000/devstoreaccount1/vhds/os.vhd?sv=1&sig=abc%2Bd")
    assert emu.path_style and emu.account == "devstoreaccount1"
    assert emu.account_url == "http://127.0.0.1:10000/devstoreaccount1"
    assert "abc" not in emu.display and "sig=REDACTED" in emu.display
    assert parse_blob_url("http://azurite:10000/a/c/b.vhd").path_style
    with pytest.raises(InputError):
        parse_blob_url("https://acct.blob.core.windows.net/onlycontainer")


def test_connection_strings_and_environment() -> None:
    key = "a2V5a2V5a2V5a2V5a2V5a2V5"
    fields = parse_connection_string(f"DefaultEndpointsProtocol=https;AccountName=acct;"
                                     f"AccountKey={key};EndpointSuffix=core.windows.net")
    assert fields["AccountKey"] == key and fields["AccountName"] == "acct"
    assert key not in redact(f"oops AccountKey={key}; and {key}")
    url = parse_blob_url("https://acct.blob.core.windows.net/vhds/os.vhd")
    auth = resolve(url, {"AZURE_STORAGE_CONNECTION_STRING": f"AccountName=acct;AccountKey={key}"})
    assert auth.kind == "key" and auth.account_key == key
    assert resolve(url, {"AZURE_STORAGE_KEY": key}).kind == "key"
    assert resolve(url, {}).kind == "entra"
    sas = resolve(url, {"AZURE_STORAGE_SAS_TOKEN": "?sv=1&sp=r&sig=zzzzzzzzzz"})
    assert sas.kind == "sas" and "zzzzzzzzzz" not in sas.url.display
    with pytest.raises(InputError, match="not base64"):
        resolve(url, {"AZURE_STORAGE_KEY": "not base64!"})


def test_redact_removes_every_shape() -> None:
    register_secret("SuperSecretValue123")
    text = ("GET https://a/b?sv=1&sig=AbC%2Fd%3D&se=x failed; sig%3Dqwerty; "
            "AccountKey=k1k1k1==;SharedAccessSignature=sv=1&sig=zz; Authorization: SharedKey "
            "acct:signature== SuperSecretValue123")
    out = redact(text)
    for secret in ("AbC", "qwerty", "k1k1k1", "signature==", "SuperSecretValue123"):
        assert secret not in out
    assert "se=x" in out


def test_retry_waits_grow_and_stay_bounded() -> None:
    policy = RetryPolicy(attempts=8, first_wait=0.25, max_wait=15)
    waits = [policy.wait(n) for n in range(1, 12)]
    assert all(0 < w <= 15 for w in waits)
    assert policy.wait(1) <= 0.25 and policy.wait(8) >= 15 * 0.5
    assert policy.wait(1, retry_after=3) == 3


# -- offline SAS rules with a fixed clock --------------------------------------------------------


def _uri(**fields: str) -> str:
    base = {"sv": "2020-10-02", "sr": "c", "sp": "rl", "sig": "abcdef"}
    base.update(fields)
    query = "&".join(f"{k}={v}" for k, v in base.items() if v)
    return f"https://acct.blob.core.windows.net/vhds/os.vhd?{query}"


def test_offline_rules_count_business_days_from_now() -> None:
    friday = datetime(2025, 3, 7, 12, tzinfo=UTC)
    profile = load_profile("azure-2015")
    start = iso(friday - timedelta(hours=1))
    # Friday noon to the Tuesday after next, noon: 7 business days exactly.
    enough = _uri(st=start, se=iso(datetime(2025, 3, 18, 12, tzinfo=UTC)))
    short = _uri(st=start, se=iso(datetime(2025, 3, 17, 12, tzinfo=UTC)))
    found = {f.check_id: f for f in verify_sas([enough], profile, online=False, now=friday)}
    assert found["SAS-URI-EXPIRY"].status is Status.PASS
    assert found["SAS-URI-SCHEME"].status is Status.WARNING  # https in the 2015 profile
    assert found["SAS-URI-READABLE"].status is Status.SKIP
    found = {f.check_id: f for f in verify_sas([short], profile, online=False, now=friday)}
    assert found["SAS-URI-EXPIRY"].status is Status.FAIL
    assert "6.00 business days" in found["SAS-URI-EXPIRY"].message


@pytest.mark.parametrize(("fields", "status"), [
    ({"sp": "rl"}, Status.PASS),
    ({"sp": "lr"}, Status.PASS),
    ({"sp": "r"}, Status.FAIL),
    ({"sp": "rwl"}, Status.FAIL),
    ({"sp": "racwdl"}, Status.FAIL),
    ({"sr": "b", "sp": "r"}, Status.PASS),
    ({"sr": "b", "sp": "rw"}, Status.FAIL),
    ({"sr": "", "ss": "b", "srt": "sco", "sp": "rl"}, Status.WARNING),
    ({"sp": "", "si": "policy1"}, Status.SKIP),
    ({"sig": ""}, Status.FAIL),
])
def test_permission_rule(fields: dict[str, str], status: Status) -> None:
    now = datetime(2025, 3, 3, tzinfo=UTC)
    uri = _uri(st=iso(now - timedelta(days=2)), se=iso(now + timedelta(days=30)), **fields)
    found = {f.check_id: f.status for f in
             verify_sas([uri], load_profile("azure-current"), online=False, now=now)}
    assert found["SAS-URI-PERMISSIONS"] is status


@pytest.mark.parametrize(("name", "status"), [
    ("os.vhd", Status.PASS), ("dir/os.VHD", Status.PASS), ("os.vhdx", Status.FAIL),
    ("os%20disk.vhd", Status.FAIL), ("os%25.vhd", Status.FAIL), ("os%22.vhd", Status.FAIL),
    ("", Status.FAIL),
])
def test_blob_name_rule(name: str, status: Status) -> None:
    uri = f"https://acct.blob.core.windows.net/vhds/{name}?sr=c&sp=rl&sig=x"
    found = {f.check_id: f.status for f in
             verify_sas([uri], load_profile("azure-current"), online=False)}
    assert found["SAS-URI-BLOB-NAME"] is status


def test_business_time_up_to_the_last_day_a_datetime_holds():
    """``se=9999-12-31T23:59:59Z`` (found by the URL fuzzer): no midnight after it exists."""
    start = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday
    last = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert 2_080_000 < bd.business_days(start, last) < 2_080_100
    assert bd.end_of_day(last) == datetime.max.replace(tzinfo=UTC)
