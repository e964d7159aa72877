"""``vmimage check`` as a user runs it: formats, output files, exit codes, bad targets."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import defusedxml.ElementTree as ET
import jsonschema
import pytest

from tests import imagebuild as ib
from vmimage.disk.convert import convert_in_place

pytestmark = pytest.mark.slow
SCHEMA = Path(__file__).parents[1] / "src/vmimage/schemas/report-v1.json"


def vmimage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmimage", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, check=False)


def test_text_report_of_compliant_image(compliant_vhd: Path) -> None:
    proc = vmimage("check", str(compliant_vhd))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSES vmimage's offline checks for azure-current" in proc.stdout
    assert "FAILS" not in proc.stdout and "INCOMPLETE" not in proc.stdout
    assert "LINUX-NO-SWAP" in proc.stdout


def test_json_report_validates_against_its_schema(compliant_vhd: Path) -> None:
    proc = vmimage("check", str(compliant_vhd), "--format", "json", "--profile", "azure-2015")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert doc["profile"] == "azure-2015"
    ids = {f["check_id"] for f in doc["findings"]}
    assert {"LINUX-NO-SWAP", "VHD-ROLE-SIZE", "LINUX-KERNEL-CMDLINE"} <= ids


def test_junit_sarif_and_html_files(compliant_vhd: Path, tmp_path: Path) -> None:
    for fmt in ("junit", "sarif", "html"):
        out = tmp_path / f"report.{fmt}"
        proc = vmimage("check", str(compliant_vhd), "--format", fmt, "--output", str(out))
        assert proc.returncode == 0, proc.stderr
        assert str(out) in proc.stdout
        text = out.read_text()
        if fmt == "junit":
            root = ET.fromstring(text)
            cases = root.findall(".//testcase")
            assert len(cases) >= 40 and not root.findall(".//failure")
        elif fmt == "sarif":
            log = json.loads(text)
            assert log["version"] == "2.1.0"
            rules = {r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
            assert "LINUX-SHELL-HISTORY-EMPTY" in rules
        else:
            HTMLParser().feed(text)
            assert "LINUX-SSH-CLIENT-ALIVE" in text and "<script" not in text


def test_violation_exits_1_and_names_the_requirement(tmp_path: Path) -> None:
    disk = ib.compliant_copy(tmp_path / "bad.raw")
    ib.put_file(disk.path, disk.root_offset, "/root/.bash_history", "sudo reboot\n", mode=0o600)
    convert_in_place(disk.path)
    proc = vmimage("check", str(disk.path), "--format", "json")
    assert proc.returncode == 1
    failed = [f for f in json.loads(proc.stdout)["findings"] if f["status"] == "fail"]
    assert [f["check_id"] for f in failed] == ["LINUX-SHELL-HISTORY-EMPTY"]
    assert "LNX-HISTORY" in failed[0]["covers"] and "MS-48" in failed[0]["covers"]


@pytest.mark.parametrize("make, problem", [
    (lambda p: p, "no such file"),
    (lambda p: (p.write_bytes(b""), p)[1], "is empty"),
    (lambda p: (p.write_bytes(b"conectiy" + bytes(504)), p.rename(p.with_suffix(".vhd")),
                p.with_suffix(".vhd"))[2], "no VHD footer"),
])
def test_unusable_target_is_one_line_exit_2(tmp_path: Path, make, problem: str) -> None:
    target = make(tmp_path / "disk.img")
    before = target.read_bytes() if target.exists() else None
    proc = vmimage("check", str(target))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0] and problem in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    if before is not None:
        assert target.read_bytes() == before


def test_btrfs_root_is_a_clear_cannot_read(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/os-release").write_text("ID=debian\n")
    fs = tmp_path / "fs.img"
    ib.run(["mkfs.btrfs", "-q", "--rootdir", tree, fs, "-b", "128M"])
    disk = tmp_path / "disk.raw"
    with open(disk, "wb") as f:
        f.truncate(256 * 1024**2)
    ib.run(["sfdisk", "--no-reread", "--no-tell-kernel", disk], input=b"label: dos\n2048,,L\n")
    ib.sparse_copy(fs, disk, dst_offset=1024**2, truncate=False)
    proc = vmimage("check", str(disk))
    assert proc.returncode == 2
    assert "btrfs" in proc.stderr and "cannot read" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_root_directory_target(tmp_path: Path) -> None:
    tree = ib.clone_tree(tmp_path / "root")
    proc = vmimage("check", str(tree), "--format", "json")
    doc = json.loads(proc.stdout)
    status = {f["check_id"]: f["status"] for f in doc["findings"]}
    assert status["LINUX-NO-LVM"] == "skip"  # needs a disk
    assert status["LINUX-SSH-CLIENT-ALIVE"] == "pass"
    assert proc.returncode == 0, [f for f in doc["findings"] if f["status"] == "fail"]
