"""Verdicts fail closed and rule sets fit the disk: what `vmimage check` says of disks that hold
no operating system, of a disk whose role and system disagree, and of data disks.

Every disk here is made by the real tools (sfdisk, mkswap, mkfs.ntfs, mkfs.ext4) and kept
sparse; the CLI runs as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.offer_support import GiB, MiB, linux_disk, sh, windows_disk
from vmimage.app.check import check_target
from vmimage.disk.convert import convert_in_place, create
from vmimage.findings import Status


def vmimage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmimage", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, check=False)


def _refused(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _partitioned(path: Path, script: str, size: int = 1 * GiB) -> Path:
    with path.open("wb") as fh:
        fh.truncate(size)
    sh("sfdisk", "-q", "--no-reread", "--no-tell-kernel", path, stdin=script.encode())
    return path


def _write_at(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def _swap_partitions(path: Path, count: int) -> Path:
    """A data disk with ``count`` swap partitions, each with a real mkswap signature."""
    size = 8 * MiB
    script = "label: dos\n" + "".join(f"start={2048 + i * (size // 512)}, size={size // 512}, "
                                      "type=82\n" for i in range(min(count, 3)))
    _partitioned(path, script, 64 * MiB)
    swap = path.parent / f".{path.name}.swap"
    with swap.open("wb") as fh:
        fh.truncate(size)
    sh("mkswap", "-q", swap)
    data = swap.read_bytes()
    for i in range(min(count, 3)):
        _write_at(path, 2048 * 512 + i * size, data)
    swap.unlink()
    return path


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("failclosed")
    create(d / "blank.vhd", 30 * GiB)
    _partitioned(d / "empty-partition.raw", "label: dos\nstart=2048, type=83\n")
    unknown = _partitioned(d / "unknown-fs.raw", "label: dos\nstart=2048, type=83\n")
    _write_at(unknown, 2048 * 512, os.urandom(64 * 1024))
    linux_disk(d / "linux.raw", 4 * GiB)
    windows_disk(d / "windows.raw")
    _swap_partitions(d / "swapdata.raw", 3)
    for name in ("empty-partition.raw", "unknown-fs.raw", "linux.raw", "windows.raw",
                 "swapdata.raw"):
        convert_in_place(d / name)
    (d / "README.md").write_text("# not a disk\n")
    return d


@pytest.mark.parametrize(("name", "fragment"), [
    ("blank.vhd", "no partition table and no filesystem"),
    ("empty-partition.raw", "mbr with p1"),
    ("unknown-fs.raw", "mbr with p1"),
])
def test_no_operating_system_is_never_a_pass(disks: Path, name: str, fragment: str) -> None:
    proc = vmimage("check", str(disks / name))
    _refused(proc, str(disks / name), "no operating system found", fragment,
             "a data disk: --role data")
    _refused(vmimage("check", str(disks / name), "--role", "os-linux"),
             "no Linux operating system found", fragment)


@pytest.mark.parametrize("role", ["os-linux", "data"])
def test_a_text_file_is_not_a_disk_image(disks: Path, role: str) -> None:
    before = (disks / "README.md").read_bytes()
    _refused(vmimage("check", str(disks / "README.md"), "--role", role), "not a disk image",
             "13 bytes")
    assert (disks / "README.md").read_bytes() == before


def test_json_format_refuses_too(disks: Path) -> None:
    _refused(vmimage("check", str(disks / "blank.vhd"), "--format", "json"),
             "no operating system found")


def test_role_and_family_must_agree(disks: Path) -> None:
    _refused(vmimage("check", str(disks / "windows.raw"), "--role", "os-linux"),
             "holds a Windows system",
             "--role is os-linux", "use --role os-windows")
    _refused(vmimage("check", str(disks / "linux.raw"), "--role", "os-windows"),
             "holds a Linux system", "use --role os-linux")
    _refused(vmimage("check", str(disks / "linux.raw"), "--role", "data"),
             "holds a Linux operating system, not data", "--role os-linux")


def test_blank_data_disk_gets_data_disk_rules_only(disks: Path) -> None:
    report = check_target(str(disks / "blank.vhd"), "azure-current", role="data")
    ids = {f.check_id for f in report.findings}
    assert ids == {"VHD-FIXED-FORMAT", "VHD-FOOTER-VALID", "VHD-WHOLE-MIB", "VHD-FILE-LENGTH",
                   "VHD-ROLE-SIZE", "VHD-SPARSE", "LINUX-NO-SWAP"}
    assert report.verdict == "pass" and report.exit_code == 0
    assert report.role == "data"
    swap = next(f for f in report.findings if f.check_id == "LINUX-NO-SWAP")
    assert swap.status is Status.PASS and "partitions" in swap.message


def test_swap_on_a_data_disk_is_one_finding_with_all_its_evidence(disks: Path) -> None:
    proc = vmimage("check", str(disks / "swapdata.raw"), "--role", "data", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    swap = [f for f in doc["findings"] if f["check_id"] == "LINUX-NO-SWAP"]
    assert len(swap) == 1 and swap[0]["status"] == "fail"
    assert len(swap[0]["evidence"]) == 3
    assert doc["summary"]["verdict"] == "fail"
    ids = {f["check_id"] for f in doc["findings"]}
    assert not any(i.startswith("LINUX-") and i != "LINUX-NO-SWAP" for i in ids)


def test_os_disk_gets_every_rule_of_its_family(disks: Path) -> None:
    report = check_target(str(disks / "linux.raw"), "azure-current")
    ids = {f.check_id for f in report.findings}
    assert {"LINUX-FIRST-MIB-EMPTY", "LINUX-SINGLE-ROOT-PARTITION", "LINUX-NO-SWAP",
            "VHD-FIXED-FORMAT"} <= ids
    assert len(ids) == len(report.findings)  # one finding per rule
    assert report.system.get("id") == "debian"


def test_directory_verdict_names_the_rules_it_could_not_examine(tmp_path: Path) -> None:
    """A root directory has no disk: the disk rules skip, and the verdict says so."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    report = check_target(str(root), "azure-current")
    assert "VHD-FIXED-FORMAT" in report.skipped_blocking
    assert report.verdict in ("incomplete", "fail")
    if report.verdict == "incomplete":
        assert report.verdict_line.startswith("INCOMPLETE")


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    _refused(vmimage("check", str(tmp_path)), "no operating system found",
             "a directory without /etc/os-release")


@pytest.mark.parametrize("where", ["missing-dir/x.json", "is-a-dir"])
def test_output_that_cannot_be_written_is_one_line(disks: Path, tmp_path: Path,
                                                   where: str) -> None:
    """`check --output /missing-dir/x.json` was a traceback and exit 1; nothing is left behind."""
    (tmp_path / "is-a-dir").mkdir()
    out = tmp_path / where
    proc = vmimage("check", str(disks / "blank.vhd"), "--role", "data", "--format", "json",
                   "--output", str(out))
    _refused(proc, str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["is-a-dir"]
    assert list((tmp_path / "is-a-dir").iterdir()) == []


def test_report_file_is_written_whole(disks: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = vmimage("check", str(disks / "blank.vhd"), "--role", "data", "--format", "json",
                   "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["summary"]["verdict"] == "pass"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


@pytest.mark.parametrize(("path", "rule_id"), [
    ("/etc/machine-id", "LINUX-MACHINE-ID-EMPTY"),
    ("/etc/hostname", "LINUX-HOSTNAME-RESET"),
    ("/etc/resolv.conf", "LINUX-RESOLV-CONF-REMOVED"),
])
def test_an_unreadable_file_is_not_an_absent_one(tmp_path: Path, path: str,
                                                 rule_id: str) -> None:
    """A symlink loop where a generalized image has no file: the rule cannot decide, so it
    skips with the reason; it must not pass as if the file were absent."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    loop = root / path.lstrip("/")
    os.symlink(loop.name, loop)
    report = check_target(str(root), "azure-current")
    [finding] = [f for f in report.findings if f.check_id == rule_id]
    assert finding.status is Status.SKIP, (finding.status, finding.message)
    assert path in finding.message
