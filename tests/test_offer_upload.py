"""``vmimage certify --upload`` against Azurite: the package lands beside the VHDs (CRT-ARTIFACTS).

Every run is the real CLI (tests/azurite.py checks that no key or signature is printed). The
manifests name their disks by blob URL only, so certify has nothing to check locally and the
package (INCOMPLETE, exit 1) is written in a second: what is under test is the upload.
"""

from __future__ import annotations

import stat
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
from tests.offer_support import write


def manifest(dir_: Path, os_disk: str, storage: str = "") -> Path:
    return write(dir_, f"""\
publisher: contoso
offer: {{id: contoso-web, title: Contoso Web}}
{storage}skus:
  - id: web
    title: Web
    summary: A web server.
    os: {{family: linux, type: debian, friendly_name: "Debian 12"}}
    recommended_sizes: [A1, A2, A3]
    versions:
      - version: "1.0.0"
        os_disk: {os_disk}
""")


def local_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*")) if p.is_file()}


def uploaded(az: Azurite, container: str) -> dict[str, tuple[bytes, str, str]]:
    """Every blob of the container: content, content type and blob type."""
    service = az.service().get_container_client(container)
    found = {}
    for props in service.list_blobs():
        data = az.download(container, props.name)
        found[props.name] = (data, props.content_settings.content_type,
                             str(props.blob_type.value))
    return found




EXPECTED_TYPES = {".json": "application/json", ".html": "text/html", ".txt": "text/plain",
                  ".log": "text/plain"}


def assert_package_uploaded(az: Azurite, container: str, out: Path, stdout: str) -> None:
    blobs = uploaded(az, container)
    local = local_files(out)
    assert local, "no local package"
    assert {"summary.json", "summary.txt", "summary.html", "logs/certify.log",
            "questionnaire.json", "offer-validation.json"} <= set(local)
    prefixes = {"/".join(name.split("/")[:3]) for name in blobs}
    assert len(prefixes) == 1, prefixes
    prefix = prefixes.pop()
    assert prefix.startswith("certification/contoso-web/")
    assert {name[len(prefix) + 1:] for name in blobs} == set(local)
    for name, (data, ctype, btype) in blobs.items():
        relative = name[len(prefix) + 1:]
        assert data == local[relative], relative
        assert ctype == EXPECTED_TYPES[Path(relative).suffix], relative
        assert btype == "BlockBlob"
    assert f"uploaded {len(local)} files to " in stdout
    assert f"/{container}/{prefix}/" in stdout


def test_default_container_is_the_os_disks(tmp_path: Path, azurite: Azurite) -> None:  # noqa: F811
    container = azurite.container()
    other = azurite.container()  # the data disk's container must not be chosen
    path = manifest(tmp_path, f'{{url: "{azurite.url(container, "os.vhd")}"}}\n'
                              f'        data_disks:\n'
                              f'          - {{lun: 0, url: "{azurite.url(other, "d.vhd")}"}}')
    out = tmp_path / "pkg"
    res = vmimage("certify", path, "--output", out, "--upload", "--quiet", env=azurite.env())
    assert res.returncode == 1, res.stderr  # INCOMPLETE: blob URLs only
    assert res.stdout.startswith("INCOMPLETE: package in ")
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert_package_uploaded(azurite, container, out, res.stdout)
    assert uploaded(azurite, other) == {}


def test_container_from_storage_container_url(tmp_path: Path,
                                              azurite: Azurite) -> None:  # noqa: F811
    """A disk given as a file is at <storage.container_url>/<file name>: that container."""
    container = azurite.container()
    base = f"{azurite.account_url()}/{container}"
    path = manifest(tmp_path, "{file: os.vhd}",
                    storage=f'storage: {{container_url: "{base}"}}\n')
    out = tmp_path / "pkg"
    res = vmimage("certify", path, "--output", out, "--upload", "--quiet", env=azurite.env())
    assert res.returncode == 1, res.stderr  # os.vhd does not exist: not certified
    assert_package_uploaded(azurite, container, out, res.stdout)


def test_sas_from_file_over_https_is_never_printed(tmp_path: Path,
                                                   azurite_tls: Azurite) -> None:  # noqa: F811
    az = azurite_tls
    disks = az.container()
    target = az.container()
    sas_url = az.sas(target, "x", permission="racwl").replace("/x?", "?", 1)
    token = sas_url.split("?", 1)[1]
    url_file = tmp_path / "container.url"
    url_file.write_text(sas_url + "\n")
    path = manifest(tmp_path, f'{{url: "{az.url(disks, "os.vhd")}"}}')
    out = tmp_path / "pkg"
    env = az.env()
    del env["AZURE_STORAGE_KEY"]  # the SAS alone must do
    res = vmimage("certify", path, "--output", out, "--upload",
                  "--container-url", f"@{url_file}", env=env)
    assert res.returncode == 1, res.stderr
    assert token not in res.stdout + res.stderr
    assert "sig=" not in res.stdout
    assert "uploading the package to" in res.stderr
    assert_package_uploaded(az, target, out, res.stdout)
    assert uploaded(az, disks) == {}
    for data in local_files(out).values():
        assert_no_secrets(data.decode("utf-8"))


def test_sas_token_from_environment(tmp_path: Path, azurite: Azurite) -> None:  # noqa: F811
    container = azurite.container()
    token = azurite.sas(container, "x", permission="cw").split("?", 1)[1]
    path = manifest(tmp_path, f'{{url: "{azurite.url(container, "os.vhd")}"}}')
    out = tmp_path / "pkg"
    env = azurite.env(AZURE_STORAGE_SAS_TOKEN=token)
    del env["AZURE_STORAGE_KEY"]
    res = vmimage("certify", path, "--output", out, "--upload", "--quiet", env=env)
    assert res.returncode == 1, res.stderr
    assert token not in res.stdout + res.stderr
    assert_package_uploaded(azurite, container, out, res.stdout)


def test_missing_container_one_line_and_package_kept(tmp_path: Path,
                                                     azurite: Azurite) -> None:  # noqa: F811
    path = manifest(tmp_path, f'{{url: "{azurite.url("nosuchcontainer", "os.vhd")}"}}')
    out = tmp_path / "pkg"
    res = vmimage("certify", path, "--output", out, "--upload", "--quiet",
                  env=azurite.env(), timeout=120)
    line = one_line_error(res)
    assert "ContainerNotFound" in line or "404" in line, line
    assert (out / "summary.json").is_file() and (out / "logs/certify.log").is_file()
    assert res.stdout.startswith("INCOMPLETE: package in ")


def test_no_blob_url_anywhere(tmp_path: Path, azurite: Azurite) -> None:  # noqa: F811
    path = manifest(tmp_path, "{file: os.vhd}")
    out = tmp_path / "pkg"
    res = vmimage("certify", path, "--output", out, "--upload", "--quiet", env=azurite.env())
    line = one_line_error(res)
    assert "--container-url" in line
    assert (out / "summary.json").is_file()


@pytest.mark.parametrize("bad", ["ftp://host/c", "http://127.0.0.1:1/acct"])
def test_bad_container_url_fails_before_the_checks(tmp_path: Path, azurite: Azurite,  # noqa: F811
                                                   bad: str) -> None:
    path = manifest(tmp_path, "{file: os.vhd}")
    out = tmp_path / "pkg"
    res = vmimage("certify", path, "--output", out, "--upload", "--container-url", bad,
                  env=azurite.env())
    one_line_error(res)
    assert not out.exists()


def test_container_url_without_upload_is_refused(tmp_path: Path,
                                                 azurite: Azurite) -> None:  # noqa: F811
    path = manifest(tmp_path, "{file: os.vhd}")
    res = vmimage("certify", path, "--output", tmp_path / "pkg", "--container-url",
                  f"{azurite.account_url()}/c", env=azurite.env())
    assert "only with --upload" in one_line_error(res)
