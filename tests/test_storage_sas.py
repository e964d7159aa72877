"""``vmimage sas create | verify`` against Azurite, with good and bad URIs.

Good URIs come from ``sas create`` itself; the bad ones the guide warns about are made with the
SDK directly (``sas create`` cannot make them): write permission, expired, too short, not yet
valid, a block blob, a leased blob, a missing blob, a blob that is not a VHD. Each rule is one
finding naming its requirement ID.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.azurite import (
    Azurite,
    assert_no_secrets,
    azurite,  # noqa: F401 - fixture
    azurite_tls,  # noqa: F401 - fixture
    one_line_error,
    vmimage,
)
from vmimage.disk import vhd
from vmimage.findings import worst_exit_code
from vmimage.profiles import load_profile
from vmimage.storage.sas_rules import verify_sas

MiB = 1024 * 1024
SIZE = 20 * MiB


def put_vhd(az: Azurite, container: str, name: str, size: int = SIZE,
            footer: bytes | None = None, length: int | None = None) -> None:
    """A page blob holding a fixed VHD's footer at its end (the data is all zeros)."""
    blob = az.blob(container, name)
    total = length or size + vhd.FOOTER_SIZE
    blob.create_page_blob(total)
    blob.upload_page(footer or vhd.Footer.new(size).pack(), offset=total - 512, length=512)


def verify(az: Azurite, *uris: str, profile: str = "azure-2015") -> tuple[int, dict[str, str]]:
    """Exit code and {check ID: worst status} (a rule runs once per URI)."""
    res = vmimage("sas", "verify", *uris, "--profile", profile, "--format", "json", env=az.env())
    assert res.returncode in (0, 1), res.stderr
    data = json.loads(res.stdout)
    for f in data["findings"]:  # every finding names its requirement
        assert f["covers"] and f["covers"][0].startswith("SAS-")
    rank = ["pass", "skip", "warning", "fail"]
    worst: dict[str, str] = {}
    for f in data["findings"]:
        if rank.index(f["status"]) >= rank.index(worst.get(f["check_id"], "pass")):
            worst[f["check_id"]] = f["status"]
    return res.returncode, worst


def create(az: Azurite, url: str, *extra: str, profile: str = "azure-2015") -> str:
    res = vmimage("sas", "create", url, "--profile", profile, *extra, env=az.env(),
                  secret_stdout=True)
    assert res.returncode == 0, res.stderr
    assert "sig=REDACTED" in res.stderr
    return res.stdout.strip()


ALL_PASS = {"SAS-URI-PERMISSIONS", "SAS-URI-START", "SAS-URI-EXPIRY", "SAS-URI-BLOB-NAME",
            "SAS-URI-SCHEME", "SAS-URI-READABLE", "SAS-URI-PAGE-BLOB", "SAS-URI-NOT-LEASED",
            "SAS-URI-LENGTH", "SAS-URI-FOOTER", "SAS-URI-DISTINCT"}


def test_created_container_sas_passes_2015(azurite: Azurite, tmp_path: Path) -> None:  # noqa: F811
    c = azurite.container()
    put_vhd(azurite, c, "os.vhd")
    uri = create(azurite, azurite.url(c, "os.vhd"))
    assert "sr=c" in uri and "sp=rl" in uri and uri.startswith("http://")
    rc, found = verify(azurite, uri)
    assert rc == 0 and found == {k: "pass" for k in ALL_PASS}
    # The same URI from a file, and from the environment.
    uri_file = tmp_path / "uri.txt"
    uri_file.write_text(f"# the OS disk\n{uri}\n")
    assert verify(azurite, f"@{uri_file}")[0] == 0
    res = vmimage("sas", "verify", "--profile", "azure-2015",
                  env=azurite.env(VMIMAGE_SAS_URI=uri))
    assert res.returncode == 0, res.stdout
    assert f"{len(ALL_PASS)} passed, 0 failed" in res.stdout


def test_blob_scope_and_output_file(azurite: Azurite, tmp_path: Path) -> None:  # noqa: F811
    c = azurite.container()
    put_vhd(azurite, c, "data.vhd")
    out = tmp_path / "sas.txt"
    res = vmimage("sas", "create", azurite.url(c, "data.vhd"), "--blob-scope", "--profile",
                  "azure-2015", "--output", out, env=azurite.env())
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "sig=REDACTED" in res.stdout and "written to" in res.stdout
    uri = out.read_text().strip()
    assert "sr=b" in uri and "sp=r&" in uri
    rc, found = verify(azurite, f"@{out}")
    assert rc == 0 and found["SAS-URI-PERMISSIONS"] == "pass"


def test_current_profile_over_https(azurite_tls: Azurite) -> None:  # noqa: F811
    c = azurite_tls.container()
    put_vhd(azurite_tls, c, "os.vhd")
    uri = create(azurite_tls, azurite_tls.url(c, "os.vhd"), profile="azure-current")
    assert uri.startswith("https://") and "spr=https" in uri
    rc, found = verify(azurite_tls, uri, profile="azure-current")
    assert rc == 0 and found == {k: "pass" for k in ALL_PASS}
    # The 2015 steps said "not https": a warning there, never a failure.
    rc, found = verify(azurite_tls, uri, profile="azure-2015")
    assert rc == 0 and found["SAS-URI-SCHEME"] == "warning"


def test_current_profile_needs_https_longer_and_earlier(azurite: Azurite) -> None:  # noqa: F811
    c = azurite.container()
    put_vhd(azurite, c, "os.vhd")
    uri = create(azurite, azurite.url(c, "os.vhd"))  # made by the 2015 rules, over http
    rc, found = verify(azurite, uri, profile="azure-current")
    assert rc == 1
    assert found["SAS-URI-SCHEME"] == "fail"
    assert found["SAS-URI-EXPIRY"] == "fail"  # 7 business days < 3 weeks
    assert found["SAS-URI-START"] == "fail"   # 15 minutes < 1 day


#: Each bad URI of test_bad_sas_uris and the one rule it fails (tests/test_rule_cases.py counts
#: these as the real failing cases of the online SAS rules).
BAD_URI_RULES = {
    "write": "SAS-URI-PERMISSIONS", "delete": "SAS-URI-PERMISSIONS",
    "read-only-container": "SAS-URI-PERMISSIONS", "expired": "SAS-URI-EXPIRY",
    "too-short": "SAS-URI-EXPIRY", "date-only": "SAS-URI-EXPIRY",
    "not-yet-valid": "SAS-URI-START", "too-late-start": "SAS-URI-START",
    "block-blob": "SAS-URI-PAGE-BLOB", "leased": "SAS-URI-NOT-LEASED",
    "missing": "SAS-URI-READABLE", "not-a-vhd": "SAS-URI-FOOTER",
    "wrong-length": "SAS-URI-LENGTH", "space-in-name": "SAS-URI-BLOB-NAME",
    "not-.vhd": "SAS-URI-BLOB-NAME", "forged": "SAS-URI-READABLE",
}


def test_bad_sas_uris(azurite: Azurite) -> None:  # noqa: F811
    now = datetime.now(UTC)
    c = azurite.container()
    for name in ("os.vhd", "leased.vhd", "bad name.vhd", "disk.img"):
        put_vhd(azurite, c, name)
    azurite.blob(c, "block.vhd").upload_blob(bytes(MiB) + vhd.Footer.new(MiB).pack())
    put_vhd(azurite, c, "junk.vhd", footer=os.urandom(512))
    put_vhd(azurite, c, "short.vhd", length=SIZE // 2 + 512)  # footer claims 20 MiB
    azurite.blob(c, "leased.vhd").acquire_lease()

    uris = {
        "write": azurite.sas(c, "os.vhd", permission="rwl"),
        "delete": azurite.sas(c, "os.vhd", permission="rdl"),
        "read-only-container": azurite.sas(c, "os.vhd", permission="r"),
        "expired": azurite.sas(c, "os.vhd", start=now - timedelta(days=20),
                               expiry=now - timedelta(days=1)),
        "too-short": azurite.sas(c, "os.vhd", expiry=now + timedelta(days=3)),
        "date-only": azurite.sas(c, "os.vhd", expiry=(now + timedelta(days=40))
                                 .strftime("%Y-%m-%d")),
        "not-yet-valid": azurite.sas(c, "os.vhd", start=now + timedelta(hours=2)),
        "too-late-start": azurite.sas(c, "os.vhd", start=now - timedelta(minutes=2)),
        "block-blob": azurite.sas(c, "block.vhd"),
        "leased": azurite.sas(c, "leased.vhd"),
        "missing": azurite.sas(c, "missing.vhd"),
        "not-a-vhd": azurite.sas(c, "junk.vhd"),
        "wrong-length": azurite.sas(c, "short.vhd"),
        "space-in-name": azurite.sas(c, "bad name.vhd"),
        "not-.vhd": azurite.sas(c, "disk.img"),
        "forged": azurite.sas(c, "os.vhd").replace("sig=", "sig=AAAA"),
    }
    assert uris.keys() == BAD_URI_RULES.keys()
    cases = {label: (uri, BAD_URI_RULES[label]) for label, uri in uris.items()}
    profile = load_profile("azure-2015")
    for label, (uri, failing) in cases.items():
        # In-process (16 CLI starts would cost 16 s); the CLI path is covered above.
        findings = verify_sas([uri], profile)
        assert_no_secrets(json.dumps([f.to_dict() for f in findings]))
        found = {f.check_id: str(f.status) for f in findings}
        assert worst_exit_code(findings) == 1, label
        assert found[failing] == "fail", (label, found)
        others = {k for k, v in found.items() if v == "fail"} - {failing}
        # What else fails follows from the case: the service refuses an expired or early SAS.
        allowed = {"expired": {"SAS-URI-READABLE"}, "not-yet-valid": {"SAS-URI-READABLE"}}
        assert others <= allowed.get(label, set()), (label, found)
        if found.get("SAS-URI-READABLE") == "fail":
            assert found["SAS-URI-FOOTER"] == "skip"


def test_several_uris_need_several_vhds(azurite: Azurite) -> None:  # noqa: F811
    c = azurite.container()
    put_vhd(azurite, c, "os.vhd")
    put_vhd(azurite, c, "data.vhd")
    os_uri, data_uri = azurite.sas(c, "os.vhd"), azurite.sas(c, "data.vhd")
    rc, found = verify(azurite, os_uri, data_uri)
    assert rc == 0 and found["SAS-URI-DISTINCT"] == "pass"
    rc, found = verify(azurite, os_uri, os_uri)
    assert rc == 1 and found["SAS-URI-DISTINCT"] == "fail"


def test_create_refusals(azurite: Azurite) -> None:  # noqa: F811
    c = azurite.container()
    put_vhd(azurite, c, "os.vhd")
    url = azurite.url(c, "os.vhd")
    line = one_line_error(vmimage("sas", "create", url, "--user-delegation", env=azurite.env()))
    assert "7 days" in line and "user-delegation" in line
    env = azurite.env()
    del env["AZURE_STORAGE_KEY"]
    line = one_line_error(vmimage("sas", "create", url, env=env))
    assert "AZURE_STORAGE_KEY" in line and "shared-key" in line
    line = one_line_error(vmimage("sas", "create", azurite.url(c, "none.vhd"),
                                  env=azurite.env()))
    assert "no such blob" in line
    line = one_line_error(vmimage("sas", "create", azurite.sas(c, "os.vhd"), env=azurite.env()))
    assert "already carries a SAS" in line
    line = one_line_error(vmimage("sas", "verify", env=azurite.env()))
    assert "VMIMAGE_SAS_URI" in line


@pytest.mark.parametrize("profile", ["azure-2015", "azure-current"])
def test_longer_validity_on_request(azurite: Azurite, profile: str) -> None:  # noqa: F811
    c = azurite.container()
    put_vhd(azurite, c, "os.vhd")
    uri = create(azurite, azurite.url(c, "os.vhd"), "--days", "30", profile=profile)
    expiry = datetime.fromisoformat(uri.split("se=")[1].split("&")[0].replace("%3A", ":")
                                    .replace("Z", "+00:00"))
    assert expiry - datetime.now(UTC) > timedelta(days=30)


# -- sas create --output, and the URIs it makes in a submission ------------------------------


def test_output_is_written_strictly(azurite: Azurite, tmp_path: Path) -> None:  # noqa: F811
    """``-o`` was opened with O_TRUNC and no O_NOFOLLOW: it wrote the URI through a symbolic
    link into whatever file the link named, and blocked for ever on a FIFO."""
    c = azurite.container()
    put_vhd(azurite, c, "os.vhd")
    url = azurite.url(c, "os.vhd")
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "link.txt"
    link.symlink_to(victim)
    fifo = tmp_path / "sas.fifo"
    os.mkfifo(fifo)
    for target, fragment in ((link, "symbolic link"), (fifo, "not a regular file"),
                             (tmp_path / "missing" / "sas.txt", "does not exist"),
                             (tmp_path, "is a directory")):
        line = one_line_error(vmimage("sas", "create", url, "--output", target,
                                      env=azurite.env(), timeout=60))
        assert line.startswith(f"vmimage: {target}: ") and fragment in line
    assert victim.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "sas.fifo", "victim"]


def test_created_sas_uris_render_into_a_submission(azurite: Azurite,  # noqa: F811
                                                   tmp_path: Path) -> None:
    """``sas create`` makes a container SAS with the blob's path appended; ``submit render
    --sas-file`` matched it to nothing, sent the OS disk with no token and exited 0. Now it
    is that blob's token and, being the container's, every other blob's there; the rendered
    URIs open their blobs. A disk the tokens miss is one line, exit 2."""
    from tests.offer_support import GOOD, write

    c = azurite.container()
    for name in ("web-1.0.0-os.vhd", "web-1.0.0-d0.vhd", "web2-1.0.0-os.vhd",
                 "web2-1.0.0-d0.vhd"):
        put_vhd(azurite, c, name)
    base = f"{azurite.account_url()}/{c}"
    manifest = write(tmp_path, GOOD.replace("https://contosovhds.blob.core.windows.net/vhds",
                                            base))
    tokens = tmp_path / "tokens.txt"
    res = vmimage("sas", "create", f"{base}/web-1.0.0-os.vhd", "--profile", "azure-2015",
                  "--output", tokens, env=azurite.env())
    assert res.returncode == 0, res.stderr
    assert "sr=c" in tokens.read_text()

    out = tmp_path / "out"
    res = vmimage("submit", "render", manifest, "--format", "partner-center", "--profile",
                  "azure-2015", "--sas-file", tokens, "--output", out, env=azurite.env())
    assert res.returncode == 0, res.stderr
    assert "warning" not in res.stderr
    images = json.loads((out / "plan-web.json").read_text())["vmImageVersions"][0]["vmImages"]
    uris = [u for image in images for u in
            (image["source"]["osDisk"]["uri"],
             *(d["uri"] for d in image["source"]["dataDisks"]))]
    assert [u.split("?")[0] for u in uris] == [
        f"{base}/web-1.0.0-os.vhd", f"{base}/web-1.0.0-d0.vhd",
        f"{base}/web2-1.0.0-os.vhd", f"{base}/web2-1.0.0-d0.vhd"]
    assert all("sr=c" in u and "sig=" in u for u in uris)
    rendered = tmp_path / "rendered.txt"
    rendered.write_text("\n".join(uris) + "\n")
    rc, found = verify(azurite, f"@{rendered}")
    assert rc == 0 and found["SAS-URI-READABLE"] == "pass" and found["SAS-URI-DISTINCT"] == "pass"

    # The Gen2 disks in another container: the token does not reach them.
    other = azurite.container()
    moved = GOOD.replace("https://contosovhds.blob.core.windows.net/vhds/web2",
                         f"{azurite.account_url()}/{other}/web2").replace(
        "https://contosovhds.blob.core.windows.net/vhds", base)
    res = vmimage("submit", "render", write(tmp_path, moved), "--format", "partner-center",
                  "--profile", "azure-2015", "--sas-file", tokens, "--output",
                  tmp_path / "out2", env=azurite.env())
    line = one_line_error(res)
    assert "no SAS token" in line and "2 disk(s)" in line
    assert f"{other}/web2-1.0.0-os.vhd" in line and f"{other}/web2-1.0.0-d0.vhd" in line
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())
