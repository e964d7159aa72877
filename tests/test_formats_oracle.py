"""Every format vmimage reads, in the variants that take other code paths, checked against
qemu-img: qemu-img writes the image from a raw disk, vmimage converts it to a fixed VHD, and
``qemu-img compare`` must find the output equal to the raw source and to qemu-img's own file.

Why these variants: each one is read by different code (vmimage's own qcow2 reader, the libyal
bindings for VMDK and VHDX), and a change can break one alone (libqcow-python 20260703 read
compressed qcow2 clusters as zeros, measured: one reason vmimage reads qcow2 itself now;
test_formats_qcow2.py has the reader's own oracle tests). Compressed qcow2 clusters and
stream-optimized VMDK grains are deflated; VHDX blocks of 1 MiB and 256 MiB give chunk ratios
of 4096 and 16 (a sector bitmap entry after every chunk in the BAT); plain qcow2 and dynamic VHD
are the common cases. test_vhd_oracle.py covers the default variants of each format.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.vhd_util import (
    Extent,
    KiB,
    MiB,
    assert_sparse,
    data_bytes,
    inspect_json,
    make_sparse,
    qemu_compare,
    qemu_info,
    read_footer,
    run,
    scattered,
    vmimage_ok,
)
from vmimage.disk import vhd
from vmimage.disk.convert import round_up_mib

#: Past 256 MiB so that a 256 MiB-block VHDX has three blocks; three sectors past a whole MiB
#: so that every conversion rounds up.
SIZE = 520 * MiB + 3 * 512


def _text(n: int, tag: str) -> bytes:
    """Compressible bytes (qemu-img stores a cluster compressed only if it shrinks)."""
    line = f"vmimage oracle {tag}: the quick brown fox jumps over the lazy dog\n".encode()
    return (line * (n // len(line) + 1))[:n]


#: name: (qemu-img output format, its -o options, extra arguments, format qemu-img reads it
#: as, the format ``vmimage vhd inspect`` reports)
FORMATS = {
    "raw": ("raw", None, (), "raw", "raw"),
    "vhd-fixed": ("vpc", "subformat=fixed,force_size=on", (), "vpc", "vhd-fixed"),
    "vhd-dynamic": ("vpc", "subformat=dynamic", (), "vpc", "vhd-dynamic"),
    "qcow2": ("qcow2", None, (), "qcow2", "qcow2"),
    "qcow2-compressed": ("qcow2", None, ("-c",), "qcow2", "qcow2"),
    "vhdx-block-1m": ("vhdx", "block_size=1M", (), "vhdx", "vhdx"),
    "vhdx-block-256m": ("vhdx", "block_size=256M", (), "vhdx", "vhdx"),
    "vmdk-sparse": ("vmdk", "subformat=monolithicSparse", (), "vmdk", "vmdk"),
    "vmdk-stream-optimized": ("vmdk", "subformat=streamOptimized", (), "vmdk", "vmdk"),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Extent]]:
    """Random data at scattered, unaligned offsets (first and last sectors included), and
    compressible text at others: across a 256 MiB block boundary, inside a qcow2 cluster,
    straddling two."""
    extents = scattered(SIZE, seed=11, count=6, max_len=300 * KiB)
    extents += [Extent(MiB + 17, _text(200 * KiB, "a")),
                Extent(256 * MiB - 3000, _text(70 * KiB, "b")),
                Extent(300 * MiB + 65536 - 100, _text(1000, "c")),
                Extent(SIZE - 200 * KiB, _text(100 * KiB, "d"))]
    path = tmp_path_factory.mktemp("oracle") / "src.raw"
    return make_sparse(path, SIZE, extents), extents


def _qemu_image(raw: Path, out: Path, name: str) -> None:
    fmt, options, extra, _, _ = FORMATS[name]
    cmd = ["qemu-img", "convert", *extra, "-f", "raw", "-O", fmt]
    if options:
        cmd += ["-o", options]
    run([*cmd, str(raw), str(out)])


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_convert_matches_qemu(tmp_path: Path, source: tuple[Path, list[Extent]],
                              name: str) -> None:
    raw, extents = source
    _, _, _, read_fmt, reported = FORMATS[name]
    theirs = tmp_path / f"theirs.{name}"
    _qemu_image(raw, theirs, name)
    qemu_size = qemu_info(theirs, read_fmt)["virtual-size"]
    assert isinstance(qemu_size, int)
    info = inspect_json(theirs)
    assert (info["format"], info["virtual_size"]) == (reported, qemu_size)
    problems = info["problems"]
    assert isinstance(problems, list)
    assert all("whole number of MiB" in p for p in problems), problems  # nothing else wrong

    out = tmp_path / "ours.vhd"
    vmimage_ok("vhd", "convert", theirs, out)

    footer = read_footer(out)
    assert footer.problems() == [] and footer.disk_type == vhd.DISK_FIXED
    assert footer.current_size == round_up_mib(qemu_size)
    assert out.stat().st_size == footer.current_size + vhd.FOOTER_SIZE
    assert qemu_compare(raw, "raw", out, "vpc") == 0
    assert qemu_compare(theirs, read_fmt, out, "vpc") == 0
    assert_sparse(out, data_bytes(extents))
    assert not out.with_name(out.name + ".partial").exists()


def test_compressed_qcow2_really_is_compressed(tmp_path: Path,
                                               source: tuple[Path, list[Extent]]) -> None:
    """The compressed case must exercise compressed clusters, or it proves nothing."""
    raw, _ = source
    theirs = tmp_path / "c.qcow2"
    _qemu_image(raw, theirs, "qcow2-compressed")
    report = run(["qemu-img", "check", "-f", "qcow2", str(theirs)]).stdout
    match = re.search(r"([\d.]+)% compressed clusters", report)
    assert match and float(match.group(1)) > 0, report


@pytest.mark.parametrize(("name", "block_size"), [("vhdx-block-1m", MiB),
                                                  ("vhdx-block-256m", 256 * MiB)])
def test_vhdx_block_size_is_what_was_asked(tmp_path: Path, source: tuple[Path, list[Extent]],
                                           name: str, block_size: int) -> None:
    """qemu-img honours ``-o block_size`` (it reports the block size as cluster-size)."""
    raw, _ = source
    theirs = tmp_path / "b.vhdx"
    _qemu_image(raw, theirs, name)
    assert qemu_info(theirs, "vhdx")["cluster-size"] == block_size
