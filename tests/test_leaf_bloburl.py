"""``vmimage.bloburl``: one parser for blob URLs, strict for commands that act on a blob or a
container, lenient for ``sas verify`` and token matching; the same core for both."""

from __future__ import annotations

import os

import pytest

from tests.azurite import one_line_error, vmimage
from vmimage.bloburl import is_path_style, join_blob, parse_lenient, parse_strict
from vmimage.errors import InputError
from vmimage.storage.blob_url import parse_blob_url
from vmimage.storage.package_upload import parse_container_url

SIG = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"


@pytest.mark.parametrize(("url", "parts"), [
    ("https://acct.blob.core.windows.net/vhds/dir/os%20x.vhd",
     ("https", "acct", "vhds", "dir/os x.vhd", False, "https://acct.blob.core.windows.net")),
    ("https://acct.blob.core.chinacloudapi.cn/vhds/os.vhd",
     ("https", "acct", "vhds", "os.vhd", False, "https://acct.blob.core.chinacloudapi.cn")),
    ("HTTP://127.0.0.1:10000/devstoreaccount1/vhds/os.vhd",
     ("http", "devstoreaccount1", "vhds", "os.vhd", True,
      "http://127.0.0.1:10000/devstoreaccount1")),
    ("http://azurite:10000/a/c/b.vhd", ("http", "a", "c", "b.vhd", True, "http://azurite:10000/a")),
    ("http://[::1]:10000/a/c/b.vhd", ("http", "a", "c", "b.vhd", True, "http://[::1]:10000/a")),
])
def test_both_parses_agree_on_good_urls(url: str, parts: tuple[object, ...]) -> None:
    for address in (parse_strict(url), parse_lenient(url)):
        assert (address.scheme, address.account, address.container, address.blob,
                address.path_style, address.account_url) == parts
        assert address.query == ""
    assert parse_strict(url).base == parse_lenient(url).base


def test_the_query_is_kept_as_given() -> None:
    url = f"http://127.0.0.1:1/a/c/b.vhd?sv=2022-11-02&sr=c&sp=rl&sig={SIG}"
    address = parse_strict(url)
    assert address.query == url.split("?", 1)[1] and address.url == url
    assert address.signed and address.fields["sr"] == "c" and address.fields["sig"]
    assert parse_lenient(url) == address


@pytest.mark.parametrize(("url", "parts"), [
    ("https://acct.blob.core.windows.net/vhds", ("acct", "vhds", "")),
    ("https://acct.blob.core.windows.net/", ("acct", "", "")),
    ("http://127.0.0.1:1/acct", ("acct", "", "")),
    ("http://127.0.0.1:1/", ("", "", "")),
    ("vhds/os.vhd?sig=x", ("", "", "")),
])
def test_lenient_leaves_missing_parts_empty(url: str, parts: tuple[str, str, str]) -> None:
    address = parse_lenient(url)
    assert (address.account, address.container, address.blob) == parts


@pytest.mark.parametrize(("url", "fragment"), [
    ("ftp://127.0.0.1/vmtest/vhds/disk.vhd", "not an http(s) blob URL"),
    ("http://127.0.0.1:9/vmtest/vhds", "names no account, container and blob"),
    ("https://acct.blob.core.windows.net/vhds", "names no container and blob"),
    ("http://127.0.0.1:9/vmtest/vhds/disk.vhd?sv=1&sp=r", "no SAS signature"),
    (f"https://user:{SIG}@acct.blob.core.windows.net/c/b.vhd", "no user name or password"),
    ("https://acct.blob.core.windows.net:port/c/b.vhd", "not a valid URL"),
    ("http://[::1/vmtest/c/b.vhd", "not a valid URL"),
])
def test_strict_refusals_never_repeat_the_url(url: str, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        parse_strict(url, "BLOB_URL")
    message = str(info.value)
    assert message.startswith("BLOB_URL: ") and fragment in message
    assert SIG not in message and "acct.blob" not in message


@pytest.mark.parametrize("url", [f"https://user:{SIG}@a.blob.core.windows.net/c/b.vhd?sig=x",
                                 "http://[::1/a/c/b.vhd?sig=x"])
def test_lenient_still_refuses_credentials_and_garbage(url: str) -> None:
    with pytest.raises(InputError):
        parse_lenient(url)


def test_container_urls() -> None:
    url = parse_container_url(f"https://acct.blob.core.windows.net/vhds/?sv=1&sig={SIG}")
    assert (url.account, url.container, url.blob) == ("acct", "vhds", "")
    assert "REDACTED" in url.display and SIG not in url.display
    assert parse_container_url("http://127.0.0.1:1/acct/vhds").account_url.endswith("/acct")
    with pytest.raises(InputError, match="names a blob, not a container"):
        parse_container_url("https://acct.blob.core.windows.net/vhds/os.vhd")
    with pytest.raises(InputError, match="names no account and container"):
        parse_container_url("http://127.0.0.1:1/acct")
    with pytest.raises(InputError, match=r"/ACCOUNT/CONTAINER\)"):
        parse_container_url("http://127.0.0.1:1/")


def test_blob_url_registers_its_signature_and_hides_it() -> None:
    url = parse_blob_url(f"http://127.0.0.1:1/a/c/b.vhd?sv=1&sig={SIG}")
    assert url.sas.endswith(SIG) and SIG not in url.display
    assert url.with_sas("?sv=2&sig=another-signature").sas == "sv=2&sig=another-signature"


def test_join_blob_drops_a_token_and_quotes_the_name() -> None:
    assert join_blob(f"https://a.blob.core.windows.net/vhds/?sv=1&sig={SIG}", "os 1.vhd") == \
        "https://a.blob.core.windows.net/vhds/os%201.vhd"


def test_path_style_hosts() -> None:
    assert is_path_style("127.0.0.1") and is_path_style("[::1]") and is_path_style("azurite")
    assert is_path_style("localhost") and not is_path_style("acct.blob.core.windows.net")


@pytest.mark.parametrize("url", ["http://[::1/vmtest/c/b.vhd",
                                 "https://u:p@acct.blob.core.windows.net/c/b.vhd"])
def test_sas_create_refuses_bad_urls_on_one_line(url: str) -> None:
    """A malformed URL was a traceback (ValueError from urlsplit), exit 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_STORAGE")}
    env.update(NO_COLOR="1", AZURE_STORAGE_KEY="a2V5a2V5a2V5a2V5")
    line = one_line_error(vmimage("sas", "create", url, env=env, timeout=60))
    assert line.startswith("vmimage: BLOB_URL: ") and ":p@" not in line


def test_sas_url_for_verify_is_lenient_and_registers_the_signature() -> None:
    from vmimage.secrets import redact
    from vmimage.storage.blob_url import parse_sas_url

    url = parse_sas_url("http://127.0.0.1:1/a/c?sv=1&sp=rl&sig=lenient-signature-1")
    assert (url.account, url.container, url.blob) == ("a", "c", "")
    assert url.sas == "sv=1&sp=rl&sig=lenient-signature-1" and url.fields["sp"] == "rl"
    assert "lenient-signature-1" not in redact("a message quoting lenient-signature-1")
