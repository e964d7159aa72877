"""``vmimage vhd validate`` per role and profile, and the CLI's promises about outputs and sizes.

The size bounds come from the rulings (binary units; 1 TB = 1023 GiB) and the two profiles.
Every disk here is an empty sparse VHD, so a 1 TiB disk costs one inode.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.vhd_util import (
    Extent,
    GiB,
    MiB,
    file_state,
    make_sparse,
    qemu_compare,
    qemu_convert,
    qemu_info,
    read_footer,
    run,
    vmimage,
    vmimage_ok,
    write_at,
)
from vmimage.disk import convert as conv
from vmimage.disk import vhd

# (profile, role, size, expected VHD-ROLE-SIZE status, the role's requirement ID)
MATRIX = [
    ("azure-2015", "os-linux", 29 * GiB, "fail", "LNX-OS-SIZE"),
    ("azure-2015", "os-linux", 30 * GiB, "pass", "LNX-OS-SIZE"),
    ("azure-2015", "os-linux", 50 * GiB, "pass", "LNX-OS-SIZE"),
    ("azure-2015", "os-linux", 51 * GiB, "warning", "LNX-OS-SIZE"),
    ("azure-2015", "os-windows", 126 * GiB, "fail", "WIN-OS-SIZE"),
    ("azure-2015", "os-windows", 127 * GiB, "pass", "WIN-OS-SIZE"),
    ("azure-2015", "os-windows", 128 * GiB, "pass", "WIN-OS-SIZE"),
    ("azure-2015", "os-windows", 129 * GiB, "fail", "WIN-OS-SIZE"),
    ("azure-2015", "data", 19 * MiB, "fail", "DSK-DATA"),
    ("azure-2015", "data", 20 * MiB, "pass", "DSK-DATA"),
    ("azure-2015", "data", 1023 * GiB, "pass", "DSK-DATA"),
    ("azure-2015", "data", 1024 * GiB, "fail", "DSK-DATA"),
    ("azure-current", "os-linux", 1023 * MiB, "fail", "LNX-OS-SIZE"),
    ("azure-current", "os-linux", 1 * GiB, "pass", "LNX-OS-SIZE"),
    ("azure-current", "os-linux", 1023 * GiB, "pass", "LNX-OS-SIZE"),
    ("azure-current", "os-linux", 1024 * GiB, "fail", "LNX-OS-SIZE"),
    ("azure-current", "os-windows", 29 * GiB, "fail", "WIN-OS-SIZE"),
    ("azure-current", "os-windows", 30 * GiB, "pass", "WIN-OS-SIZE"),
    ("azure-current", "os-windows", 250 * GiB, "pass", "WIN-OS-SIZE"),
    ("azure-current", "os-windows", 251 * GiB, "fail", "WIN-OS-SIZE"),
    ("azure-current", "data", 19 * MiB, "fail", "DSK-DATA"),
    ("azure-current", "data", 20 * MiB, "pass", "DSK-DATA"),
    ("azure-current", "data", 1023 * GiB, "pass", "DSK-DATA"),
    ("azure-current", "data", 1024 * GiB, "fail", "DSK-DATA"),
]


def _empty_vhd(path: Path, size: int) -> Path:
    """An empty sparse fixed VHD of any size, 19 MiB included (below ``create``'s minimum):
    a raw hole turned into a VHD in place."""
    if size >= 20 * MiB:
        conv.create(path, size)
    else:
        make_sparse(path.with_suffix(".raw"), size, [])
        conv.convert_in_place(path.with_suffix(".raw"))
        path.with_suffix(".raw").rename(path)
    return path


def _validate(path: Path, role: str, profile: str | None = None
              ) -> tuple[int, dict[str, dict[str, object]]]:
    args = ["vhd", "validate", str(path), "--role", role, "--format", "json"]
    if profile:
        args += ["--profile", profile]
    res = vmimage(*args)
    assert res.returncode in (0, 1), res.stderr
    assert res.stderr == ""
    doc = json.loads(res.stdout)
    assert doc["target"]["role"] == role
    return res.returncode, {f["check_id"]: f for f in doc["findings"]}


@pytest.mark.parametrize(("profile", "role", "size", "status", "requirement"), MATRIX,
                         ids=[f"{p}-{r}-{s // MiB}MiB" for p, r, s, _, _ in MATRIX])
def test_validate_role_size(tmp_path: Path, profile: str, role: str, size: int, status: str,
                            requirement: str) -> None:
    """Exit 0 when the size holds (a warning included), 1 when it fails; every finding names
    the requirements it covers, and the size finding names the role's own."""
    disk = _empty_vhd(tmp_path / "d.vhd", size)
    code, findings = _validate(disk, role, profile)
    assert code == (1 if status == "fail" else 0)
    size_finding = findings["VHD-ROLE-SIZE"]
    assert size_finding["status"] == status
    assert requirement in size_finding["covers"]  # type: ignore[operator]
    if status != "pass":
        assert requirement in str(size_finding["message"])
        assert size_finding["remediation"]
    for check_id, finding in findings.items():
        assert finding["covers"], f"{check_id} names no requirement"
        if check_id != "VHD-ROLE-SIZE":
            assert finding["status"] == "pass", finding


def test_validate_default_profile_is_current(tmp_path: Path) -> None:
    """A 10 GiB Linux OS disk: fine today, too small for the 2015 guide."""
    disk = _empty_vhd(tmp_path / "d.vhd", 10 * GiB)
    assert _validate(disk, "os-linux")[0] == 0
    assert _validate(disk, "os-linux", "azure-current")[0] == 0
    assert _validate(disk, "os-linux", "azure-2015")[0] == 1


def _finding_status(path: Path, check_id: str) -> tuple[int, str]:
    code, findings = _validate(path, "data")
    return code, str(findings[check_id]["status"])


def test_validate_dynamic_vhd_fails_fixed_format(tmp_path: Path) -> None:
    disk = tmp_path / "d.vhd"
    run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", str(disk), "64M"])
    assert _finding_status(disk, "VHD-FIXED-FORMAT") == (1, "fail")


def test_validate_raw_fails_format_and_footer(tmp_path: Path) -> None:
    disk = make_sparse(tmp_path / "d.img", 64 * MiB, [])
    code, findings = _validate(disk, "data")
    assert code == 1
    for check_id in ("VHD-FIXED-FORMAT", "VHD-FOOTER-VALID", "VHD-FILE-LENGTH"):
        assert findings[check_id]["status"] == "fail"


def test_validate_chs_sized_vhd_is_not_whole_mib(tmp_path: Path) -> None:
    """qemu-img without force_size rounds to the CHS geometry: Azure refuses that size."""
    disk = tmp_path / "d.vhd"
    run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", str(disk), "64M"])
    assert _finding_status(disk, "VHD-WHOLE-MIB") == (1, "fail")


def test_validate_file_length(tmp_path: Path) -> None:
    """A footer that claims 32 MiB at the end of a 64 MiB file: length != size + 512."""
    disk = _empty_vhd(tmp_path / "d.vhd", 64 * MiB)
    footer = replace(read_footer(disk), current_size=32 * MiB).with_checksum()
    write_at(disk, 64 * MiB, footer.pack())
    assert _finding_status(disk, "VHD-FILE-LENGTH") == (1, "fail")


def test_validate_dense_file_warns(tmp_path: Path) -> None:
    """A fully written disk passes, with a warning that a sparse copy would upload faster."""
    raw = make_sparse(tmp_path / "d.raw", 20 * MiB, [Extent(0, os.urandom(20 * MiB))])
    conv.convert_in_place(raw)
    assert _finding_status(raw, "VHD-SPARSE") == (0, "warning")


def test_validate_small_dynamic_vhd_is_sparse(tmp_path: Path) -> None:
    """A dynamic VHD stores only its written blocks: an empty 64 MiB one is a 2.5 KiB file,
    every byte of it allocated, and sparse by any measure that matters (the disk it describes)."""
    disk = tmp_path / "d.vhd"
    run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", str(disk), "64M"])
    assert os.stat(disk).st_blocks * 512 >= disk.stat().st_size  # "full", as a file
    assert _finding_status(disk, "VHD-SPARSE") == (1, "pass")  # 1: VHD-FIXED-FORMAT fails


def test_validate_dynamic_vhd_full_of_data_warns(tmp_path: Path) -> None:
    """Every block of the dynamic disk written: its file is as large as the disk."""
    disk = tmp_path / "d.vhd"
    run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", str(disk), "32M"])
    run(["qemu-io", "-f", "vpc", "-c", "write -P 0x5a 0 32M", str(disk)])
    assert _finding_status(disk, "VHD-SPARSE") == (1, "warning")


@pytest.mark.parametrize(("args", "problem"), [
    (["--role", "swap"], "invalid choice: 'swap'"),
    (["--role", "data", "--profile", "azure-1999"], "unknown profile"),
])
def test_validate_bad_arguments(tmp_path: Path, args: list[str], problem: str) -> None:
    disk = _empty_vhd(tmp_path / "d.vhd", 64 * MiB)
    res = vmimage("vhd", "validate", disk, *args)
    assert res.returncode == 2
    assert len(res.stderr.splitlines()) == 1 and problem in res.stderr


# --- convert: never clobber, never leave a half-written file -------------------------------


@pytest.fixture
def raw_disk(tmp_path: Path) -> Path:
    return make_sparse(tmp_path / "in.raw", 64 * MiB,
                       [Extent(12345, os.urandom(200_000)), Extent(50 * MiB, os.urandom(9000))])


def test_convert_refuses_existing_output(tmp_path: Path, raw_disk: Path) -> None:
    out = tmp_path / "out.vhd"
    out.write_bytes(b"keep me")
    before = file_state(out)
    res = vmimage("vhd", "convert", raw_disk, out)
    assert res.returncode == 2
    assert len(res.stderr.splitlines()) == 1
    assert str(out) in res.stderr and "--force" in res.stderr
    assert file_state(out) == before
    assert not out.with_name("out.vhd.partial").exists()

    vmimage_ok("vhd", "convert", "--force", raw_disk, out)
    assert qemu_compare(raw_disk, "raw", out, "vpc") == 0


def test_convert_refuses_to_overwrite_its_input(tmp_path: Path, raw_disk: Path) -> None:
    before = file_state(raw_disk)
    res = vmimage("vhd", "convert", "--force", raw_disk, raw_disk)
    assert res.returncode == 2 and "--in-place" in res.stderr
    assert file_state(raw_disk) == before


def test_convert_read_error_leaves_no_partial(tmp_path: Path, raw_disk: Path) -> None:
    """A qcow2 whose L2 table points outside the file fails in the middle of the copy: one
    line naming the input, exit 2, and neither OUT nor OUT.partial remain."""
    qcow = tmp_path / "bad.qcow2"
    qemu_convert(raw_disk, "raw", qcow, "qcow2")
    with open(qcow, "rb") as f:
        header = f.read(72)
    cluster_bits, = struct.unpack_from(">I", header, 20)
    l1_offset, = struct.unpack_from(">Q", header, 40)
    with open(qcow, "rb") as f:
        f.seek(l1_offset)
        l2_offset = struct.unpack(">Q", f.read(8))[0] & 0x00FFFFFFFFFFFE00
        f.seek(l2_offset)
        l2 = f.read(1 << cluster_bits)
    used = [i for i in range(0, len(l2), 8) if struct.unpack_from(">Q", l2, i)[0]]
    write_at(qcow, l2_offset + used[-1], struct.pack(">Q", (1 << 63) | (1 << 40)))
    before = file_state(qcow)
    outdir = tmp_path / "out"
    outdir.mkdir()
    res = vmimage("vhd", "convert", qcow, outdir / "out.vhd")
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert str(qcow) in res.stderr and "read error" in res.stderr
    assert list(outdir.iterdir()) == []
    assert file_state(qcow) == before


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB tmpfs: the output filesystem runs out of space mid-copy."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(mnt)],
                         capture_output=True, text=True, check=False)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_convert_disk_full_leaves_no_partial(tmp_path: Path, tiny_fs: Path) -> None:
    raw = make_sparse(tmp_path / "big.raw", 64 * MiB, [Extent(MiB, os.urandom(8 * MiB))])
    out = tiny_fs / "out.vhd"
    res = vmimage("vhd", "convert", raw, out)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert str(out) in res.stderr and "No space left on device" in res.stderr
    assert list(tiny_fs.iterdir()) == []


def test_convert_needs_out_or_in_place(raw_disk: Path, tmp_path: Path) -> None:
    res = vmimage("vhd", "convert", raw_disk)
    assert res.returncode == 2 and "missing OUT" in res.stderr
    res = vmimage("vhd", "convert", "--in-place", raw_disk, tmp_path / "x.vhd")
    assert res.returncode == 2 and "--in-place" in res.stderr


def test_convert_refuses_size_below_the_disk(raw_disk: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.vhd"
    res = vmimage("vhd", "convert", raw_disk, out, "--size", "32M")
    assert res.returncode == 2 and "smaller than" in res.stderr
    assert not out.exists()


# --- size arguments are binary -------------------------------------------------------------


@pytest.mark.parametrize("text", ["32G", "32GiB", "32GB"])
def test_size_arguments_are_binary(tmp_path: Path, raw_disk: Path, text: str) -> None:
    """``G``, ``GB`` and ``GiB`` all mean 2**30 (rulings), for create and convert alike."""
    created = tmp_path / "c.vhd"
    vmimage_ok("vhd", "create", created, "--size", text)
    assert qemu_info(created, "vpc")["virtual-size"] == 32 * GiB
    converted = tmp_path / "v.vhd"
    vmimage_ok("vhd", "convert", raw_disk, converted, "--size", text)
    assert read_footer(converted).current_size == 32 * GiB
    assert converted.stat().st_size == 32 * GiB + vhd.FOOTER_SIZE


@pytest.mark.parametrize("text", ["lots", "32X", "-5G", "1.5K"])
def test_bad_size_is_one_line(tmp_path: Path, text: str) -> None:
    out = tmp_path / "c.vhd"
    res = vmimage("vhd", "create", out, "--size", text)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.splitlines()) == 1 and "--size" in res.stderr
    assert not out.exists()


def test_create_refuses_existing_and_small(tmp_path: Path) -> None:
    out = tmp_path / "c.vhd"
    vmimage_ok("vhd", "create", out, "--size", "64M")
    before = file_state(out)
    res = vmimage("vhd", "create", out, "--size", "128M")
    assert res.returncode == 2 and "already exists" in res.stderr
    assert file_state(out) == before
    res = vmimage("vhd", "create", tmp_path / "small.vhd", "--size", "10M")
    assert res.returncode == 2 and "smaller than" in res.stderr
    vmimage_ok("vhd", "create", out, "--size", "128M", "--force")
    assert qemu_info(out, "vpc")["virtual-size"] == 128 * MiB
