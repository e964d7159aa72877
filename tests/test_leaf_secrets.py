"""``vmimage.secrets``: the one redactor, and the old module names that now lead to it.

There were two copies: ``storage.redact`` (keys, connection strings, ``sig=`` after a word
boundary) and ``offer.sas`` (``sig=`` only). Each missed what the other caught: a submission's
error could print an account key, and a percent-encoded URL in an SDK message (``%26sig%3D``)
kept its signature.
"""

from __future__ import annotations

import pytest

from vmimage.secrets import REDACTED, has_token, one_line, redact, register_sas, register_secret

SIG = "c2lnbmF0dXJlLXZhbHVl"  # base64 of "signature-value"


@pytest.mark.parametrize("text", [
    f"https://a.blob.core.windows.net/c/b.vhd?sv=2022-11-02&sig={SIG}&se=x",
    f"sig={SIG}&sv=1",
    f"?SIG={SIG}",
    f"<MediaLink>https://a/c/b.vhd?sv=1&amp;sig={SIG}</MediaLink>",
    f'{{"uri": "https://a/c/b.vhd?sv=1\\u0026sig={SIG}"}}',
    f"GET https%3A%2F%2Fa%2Fc%2Fb.vhd%3Fsv%3D1%26sig%3D{SIG} failed",
    f"Authorization: SharedKey acct:{SIG}",
    f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={SIG};EndpointSuffix=x",
    f"BlobEndpoint=https://a/;SharedAccessSignature=sv=1&sig={SIG}",
])
def test_every_shape_of_secret_is_redacted(text: str) -> None:
    out = redact(text)
    assert SIG not in out and REDACTED in out


def test_what_is_not_a_secret_stays() -> None:
    text = "https://a/c/b.vhd?sv=2022-11-02&sr=c&sp=rl&se=2030-01-01 xsig=keep design=ok"
    assert redact(text) == text
    assert not has_token(text)


def test_registered_values_are_redacted_anywhere() -> None:
    register_secret("Registered-Secret-1")
    register_secret("short")  # too short: it would redact ordinary words
    assert redact("x Registered-Secret-1 y Registered-Secret-1") == f"x {REDACTED} y {REDACTED}"
    register_secret("key/with+base64=")  # also found percent-encoded, as the SDK quotes it
    assert redact("url key%2Fwith%2Bbase64%3D end") == f"url {REDACTED} end"
    assert redact("a short word") == "a short word"
    register_sas("?sv=1&sig=Zm9vYmFy%2Bs%3D")
    assert "Zm9vYmFy+s=" not in redact("the decoded value Zm9vYmFy+s= alone")


@pytest.mark.parametrize(("text", "signed"), [
    ("https://a/c/b.vhd?sv=1&sig=x", True), ("sv=1&sig=x", True), ("sig=x", True),
    ("https://a/c/b.vhd?sv=1", False), ("https://a/c/designs.vhd", False),
])
def test_has_token(text: str, signed: bool) -> None:
    assert has_token(text) is signed


def test_one_line_is_first_line_redacted_and_cut() -> None:
    assert one_line(f"\n  first sig={SIG}\nsecond") == f"first sig={REDACTED}"
    assert len(one_line("x" * 1000, limit=50)) == 50
    assert one_line("") == "unknown error"
