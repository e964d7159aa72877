"""``vmimage certify``: vhd validate and check on each local disk, and the package the guide asks
for (results in JSON and HTML, log, questionnaire, summary), every file 0600."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.offer_support import GiB, linux_disk, run_cli, to_vhd, tool, write
from vmimage.disk.convert import create
from vmimage.report.json_report import schema as report_schema

needs_tools = pytest.mark.skipif(not all(tool(t) for t in ("sfdisk", "mkfs.ext4")),
                                 reason="needs sfdisk and e2fsprogs")


def manifest(dir_: Path, os_file: str, data_file: str | None = None,
             empty: bool = False, explain: str = "LINUX-DHCP") -> Path:
    data = ""
    if data_file:
        data += f"          - {{lun: 0, file: {data_file}}}\n"
    if empty:
        data += f"          - {{lun: {1 if data_file else 0}, empty_size: 32GiB}}\n"
    text = f"""\
publisher: contoso
offer: {{id: contoso-web, title: Contoso Web}}
storage: {{container_url: "https://acct.blob.core.windows.net/vhds"}}
skus:
  - id: web
    title: Web
    summary: A web server.
    os: {{family: linux, type: debian, friendly_name: "Debian 12"}}
    recommended_sizes: [A1, A2, A3]
    questionnaire:
      remote_access: SSH on port 22.
      answers: [{{question: "Latest security updates installed?", answer: "yes"}}]
      explanations: {{{explain}: "static addressing is configured by the customer"}}
    versions:
      - version: "1.0.0"
        os_disk: {{file: {os_file}}}
"""
    if data:
        text += "        data_disks:\n" + data
    return write(dir_, text)


def files_and_modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
            for p in sorted(root.rglob("*"))}


@needs_tools
def test_package_of_a_failing_image(tmp_path: Path) -> None:
    to_vhd(linux_disk(tmp_path / "os.raw"))
    create(tmp_path / "data.vhd", 1 * GiB)
    out = tmp_path / "pkg"
    res = run_cli("certify", manifest(tmp_path, "os.vhd", "data.vhd", empty=True),
                  "--output", out)
    assert res.code == 1, res.stderr
    assert "NOT CERTIFIED" in res.stdout
    assert "check --role os-linux" in res.stderr  # progress
    modes = files_and_modes(out)
    assert {name for name, m in modes.items() if (out / name).is_file()} == {
        "summary.json", "summary.txt", "summary.html", "offer-validation.json",
        "questionnaire.json", "logs/certify.log",
        "results/web/1.0.0/os/vhd-validate.json", "results/web/1.0.0/os/vhd-validate.html",
        "results/web/1.0.0/os/check.json", "results/web/1.0.0/os/check.html",
        "results/web/1.0.0/lun0/vhd-validate.json", "results/web/1.0.0/lun0/vhd-validate.html",
        "results/web/1.0.0/lun0/check.json", "results/web/1.0.0/lun0/check.html"}
    for name, m in modes.items():
        assert m == (0o700 if (out / name).is_dir() else 0o600), name
    assert stat.S_IMODE(out.stat().st_mode) == 0o700

    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "NOT CERTIFIED" and summary["certified"] is False
    [image] = summary["images"]
    os_disk, data, empty = image["disks"]
    assert os_disk["check"]["fail"] > 0 and os_disk["system"]["id"] == "debian"
    assert data["vhd_validate"]["fail"] == 0
    assert empty["info"] and empty["vhd_validate"] is None
    assert summary["complete"] is True

    check = json.loads((out / "results/web/1.0.0/os/check.json").read_text())
    assert list(Draft202012Validator(report_schema()).iter_errors(check)) == []
    html = (out / "results/web/1.0.0/os/check.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html")

    answers = json.loads((out / "questionnaire.json").read_text())["web"]
    assert answers["remote_access"] == "SSH on port 22."
    assert answers["explanations"] == [{"check": "LINUX-DHCP", "explanation":
                                        "static addressing is configured by the customer",
                                        "check_failed": True}]
    assert "LINUX-DHCP" not in answers["unexplained_failures"]
    assert answers["unexplained_failures"]

    text = (out / "summary.txt").read_text()
    assert text.startswith("NOT CERTIFIED: contoso.contoso-web")
    log = (out / "logs/certify.log").read_text()
    assert "verdict: NOT CERTIFIED" in log and "vhd validate --role data" in log


@needs_tools
def test_blob_only_disks_leave_the_package_incomplete(tmp_path: Path) -> None:
    text = manifest(tmp_path, "os.vhd").read_text().replace(
        "os_disk: {file: os.vhd}", 'os_disk: {url: "https://acct.blob.core.windows.net/vhds/'
                                   'os.vhd"}')
    out = tmp_path / "pkg"
    res = run_cli("certify", write(tmp_path, text), "--output", out, "--quiet")
    assert res.code == 1 and res.stderr == ""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "INCOMPLETE" and summary["complete"] is False
    assert "blob URL only" in summary["images"][0]["disks"][0]["note"]


def test_missing_disk_file_fails(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    res = run_cli("certify", manifest(tmp_path, "missing.vhd"), "--output", out, "--quiet")
    assert res.code == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "NOT CERTIFIED"
    assert summary["images"][0]["disks"][0]["error"] == "missing.vhd: no such file"
    findings = json.loads((out / "offer-validation.json").read_text())["findings"]
    assert any(f["check_id"] == "OFFER-DISK-FILE" and f["status"] == "fail" for f in findings)


def test_invalid_manifest_is_exit_2_without_package(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    res = run_cli("certify", write(tmp_path, "publisher: contoso\n"), "--output", out)
    assert res.code == 2 and "missing key 'offer'" in res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()


def test_output_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "pkg").write_text("x")
    res = run_cli("certify", manifest(tmp_path, "missing.vhd"), "--output", tmp_path / "pkg",
                  "--quiet")
    assert res.code == 2 and (tmp_path / "pkg").read_text() == "x", res.stderr


@pytest.mark.slow
def test_compliant_image_is_certified(tmp_path: Path, compliant_vhd: Path) -> None:
    """The compliant Debian 12 image (tests/imagebuild.py) and an empty data VHD: certified."""
    create(tmp_path / "data.vhd", 1 * GiB)
    path = manifest(tmp_path, str(compliant_vhd), "data.vhd", explain="NONE-X")
    out = tmp_path / "pkg"
    res = run_cli("certify", path, "--output", out, "--quiet")
    summary = json.loads((out / "summary.json").read_text())
    assert res.code == 0, (out / "summary.txt").read_text()
    assert summary["verdict"] == "CERTIFIED" and summary["complete"] is True
    explanation = json.loads((out / "questionnaire.json").read_text())["web"]["explanations"]
    assert explanation[0]["check_failed"] is False


def test_blank_os_disk_is_not_certified(tmp_path: Path) -> None:
    """Fail closed: an OS disk in which no OS is found fails both the offer rule and the disk."""
    create(tmp_path / "os.vhd", 30 * GiB)
    out = tmp_path / "pkg"
    res = run_cli("certify", manifest(tmp_path, "os.vhd"), "--output", out)
    assert res.code == 1, res.stderr
    assert "NOT CERTIFIED" in res.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["certified"] is False
    [image] = summary["images"]
    [disk] = image["disks"]
    assert "no Linux operating system found" in (disk.get("error") or "")
    offer = json.loads((out / "offer-validation.json").read_text())
    family = [f for f in offer["findings"] if f["check_id"] == "OFFER-OS-FAMILY"]
    assert [f["status"] for f in family] == ["fail"]
