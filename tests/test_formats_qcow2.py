"""vmimage's own qcow2 reader (:mod:`vmimage.disk.qcow2`), checked against qemu-img.

qemu-img writes every variant the reader has a code path for, from a raw disk (or qemu-io
writes into one): versions 2 and 3, clusters of 512 bytes to 2 MiB, compressed clusters,
extended L2 entries (subclusters), zero clusters with and without a host cluster, discarded
clusters. The oracle is ``qemu-img convert -O raw`` of the same file: every byte the library
reads, and every byte of ``vmimage vhd convert``'s output, must equal it.

Then the refusals: a backing file, encryption, zstd, an external data file, the corrupt bit,
a truncated file, tables and clusters outside the file, a compressed cluster that does not
inflate. Each is one line, exit 2, with the input unchanged and nothing left in the output's
directory; the ones whose header is sound are still described by ``vhd inspect``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.vhd_util import (
    Extent,
    KiB,
    MiB,
    file_state,
    inspect_json,
    make_sparse,
    qemu_compare,
    qemu_info,
    read_footer,
    run,
    scattered,
    vmimage,
    vmimage_ok,
    write_at,
)
from vmimage.disk import qcow2, vhd
from vmimage.disk.convert import round_up_mib

#: Not a whole MiB, nor a whole 2 MiB cluster: the last cluster is read in part.
SIZE = 24 * MiB + 3 * 512
QEMU_IO = shutil.which("qemu-io")
needs_qemu_io = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io is not installed")


def _text(n: int, tag: str) -> bytes:
    """Compressible bytes (qemu-img stores a cluster compressed only if it shrinks)."""
    line = f"vmimage qcow2 {tag}: the quick brown fox jumps over the lazy dog\n".encode()
    return (line * (n // len(line) + 1))[:n]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random bytes at scattered, unaligned offsets (first and last sectors included), and
    compressible text straddling 512-byte, 64 KiB and 2 MiB cluster boundaries."""
    extents = scattered(SIZE, seed=23, count=6, max_len=400 * KiB)
    extents += [Extent(MiB - 300, _text(5000, "a")),
                Extent(4 * MiB - 100, _text(200 * KiB, "b")),
                Extent(10 * MiB + 65536 - 7, _text(1000, "c")),
                Extent(SIZE - 100 * KiB, _text(90 * KiB, "d"))]
    return make_sparse(tmp_path_factory.mktemp("qcow2") / "src.raw", SIZE, extents)


#: name: (-o options, extra qemu-img convert arguments)
VARIANTS = {
    "v3": ("compat=1.1", ()),
    "v2": ("compat=0.10", ()),
    "cluster-512": ("cluster_size=512", ()),
    "cluster-2m": ("cluster_size=2M", ()),
    "extended-l2": ("extended_l2=on", ()),
    "extended-l2-2m": ("extended_l2=on,cluster_size=2M", ()),
    "compressed": ("compat=1.1", ("-c",)),
    "compressed-v2": ("compat=0.10", ("-c",)),
    "compressed-512": ("cluster_size=512", ("-c",)),
    "compressed-2m": ("cluster_size=2M", ("-c",)),
    "compressed-extended-l2": ("extended_l2=on", ("-c",)),
}


def _qcow2_from(raw: Path, out: Path, name: str) -> Path:
    options, extra = VARIANTS[name]
    run(["qemu-img", "convert", *extra, "-f", "raw", "-O", "qcow2", "-o", options, str(raw),
         str(out)])
    return out


def _qemu_raw(image: Path) -> Path:
    """The oracle: qemu-img's reading of ``image``, as a raw file beside it."""
    out = image.with_name(image.name + ".qemu.raw")
    run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(image), str(out)])
    return out


@contextmanager
def _opened(image: Path) -> Iterator[qcow2.Qcow2Image]:
    fd = os.open(image, os.O_RDONLY)
    try:
        yield qcow2.Qcow2Image(lambda offset, n: os.pread(fd, n, offset), os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _digest(read: Callable[[int, int], bytes], size: int, step: int) -> str:
    """SHA-256 of ``size`` bytes read ``step`` at a time (steps that straddle clusters)."""
    h = hashlib.sha256()
    for offset in range(0, size, step):
        h.update(read(offset, min(step, size - offset)))
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_reads_like_qemu(image: Path, steps: tuple[int, ...] = (MiB + 333, 4 * MiB)
                            ) -> None:
    """Every byte the library reads equals qemu-img's raw conversion, and the clusters the
    tables say hold no data read as zeros."""
    theirs = _qemu_raw(image)
    expected = _file_digest(theirs)
    with _opened(image) as disk:
        assert disk.size == theirs.stat().st_size
        for step in steps:
            assert _digest(disk.read, disk.size, step) == expected, (image, step)
        _assert_holes_are_zeros(disk, theirs)


def _assert_holes_are_zeros(disk: qcow2.Qcow2Image, oracle: Path) -> None:
    """What ``allocated_ranges`` leaves out is zeros in qemu's reading: a converter that reads
    only the ranges loses nothing."""
    data = oracle.read_bytes()
    end = 0
    for offset, length in disk.allocated_ranges():
        assert offset >= end and length > 0 and offset + length <= disk.size
        assert data[end:offset].count(0) == offset - end, (end, offset)
        end = offset + length
    assert data[end:].count(0) == len(data) - end


def _assert_converts_like_qemu(image: Path, tmp: Path) -> None:
    """``vmimage vhd convert`` writes qemu-img's reading of the image into a fixed VHD."""
    theirs = _qemu_raw(image)
    out = tmp / "ours.vhd"
    vmimage_ok("vhd", "convert", image, out)
    footer = read_footer(out)
    assert footer.disk_type == vhd.DISK_FIXED and footer.problems() == []
    assert footer.current_size == round_up_mib(theirs.stat().st_size)
    assert qemu_compare(theirs, "raw", out, "vpc") == 0
    with open(out, "rb") as f:
        assert hashlib.sha256(f.read(theirs.stat().st_size)).hexdigest() == _file_digest(theirs)


# --- images qemu-img converts from a raw disk -----------------------------------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_reads_every_byte_as_qemu_does(tmp_path: Path, source: Path, name: str) -> None:
    image = _qcow2_from(source, tmp_path / f"{name}.qcow2", name)
    _assert_reads_like_qemu(image)
    assert _file_digest(_qemu_raw(image)) == _file_digest(source)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_convert_matches_qemu(tmp_path: Path, source: Path, name: str) -> None:
    image = _qcow2_from(source, tmp_path / f"{name}.qcow2", name)
    info = inspect_json(image)
    assert (info["format"], info["virtual_size"]) == ("qcow2",
                                                     qemu_info(image, "qcow2")["virtual-size"])
    _assert_converts_like_qemu(image, tmp_path)


@pytest.mark.parametrize("name", ["compressed", "compressed-v2", "compressed-512",
                                  "compressed-2m", "compressed-extended-l2"])
def test_compressed_variants_hold_compressed_clusters(tmp_path: Path, source: Path,
                                                      name: str) -> None:
    """The compressed cases must exercise compressed clusters, or they prove nothing."""
    image = _qcow2_from(source, tmp_path / f"{name}.qcow2", name)
    report = run(["qemu-img", "check", "-f", "qcow2", str(image)]).stdout
    assert "compressed clusters" in report and " 0.00% compressed" not in report, report


def test_small_reads_read_each_table_and_cluster_once(tmp_path: Path, source: Path) -> None:
    """Reading the disk in 4 KiB pieces, as the filesystem readers do, reads each L2 table and
    inflates each compressed cluster once: the LRU caches keep sequential reads cheap."""
    image = _qcow2_from(source, tmp_path / "c.qcow2", "compressed")
    fd = os.open(image, os.O_RDONLY)
    reads: list[tuple[int, int]] = []

    def counted(offset: int, n: int) -> bytes:
        reads.append((offset, n))
        return os.pread(fd, n, offset)

    try:
        disk = qcow2.Qcow2Image(counted, os.fstat(fd).st_size)
        assert _digest(disk.read, disk.size, 4 * KiB) == _file_digest(source)
    finally:
        os.close(fd)
    assert len(reads) == len(set(reads)), "a table or a cluster was read twice"


# --- images qemu-io writes into: zero clusters, subclusters, discards ------------------------


def _qemu_io(image: Path, *commands: str) -> None:
    assert QEMU_IO is not None
    args = [arg for command in commands for arg in ("-c", command)]
    run([QEMU_IO, "-f", "qcow2", *args, str(image)])


@needs_qemu_io
@pytest.mark.parametrize("options", ["compat=1.1", "compat=0.10", "cluster_size=512",
                                     "extended_l2=on", "extended_l2=on,cluster_size=2M"])
def test_written_by_qemu_io(tmp_path: Path, options: str) -> None:
    """Zero writes over data (zero flag with a host cluster) and over nothing (without),
    discards, partial subcluster writes that end the file inside a cluster, a compressed write
    among plain ones. A version 2 image has no zero flag: qemu writes zeros instead."""
    image = tmp_path / "io.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", options, str(image), "8M"])
    _qemu_io(image,
             "write -P 0x11 0 192k", "write -z 64k 64k", "write -z 1M 128k",
             "write -P 0x22 2M 4k", "write -P 0x33 2052k 1k", "write -P 0x44 3M 64k",
             "discard 3M 64k", "write -P 0x55 4M 64k", "write -z -u 4M 32k",
             "write -c -P 0x66 6M 2M", "write -P 0x77 8188k 4k")
    _assert_reads_like_qemu(image, steps=(4 * KiB + 512, 3 * MiB))
    _assert_converts_like_qemu(image, tmp_path)


@needs_qemu_io
def test_zero_clusters_are_not_data(tmp_path: Path) -> None:
    """Clusters flagged "reads as zeros", allocated or not, are left out of the ranges a
    converter reads."""
    image = tmp_path / "z.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "4M"])
    _qemu_io(image, "write -P 1 0 64k", "write -P 2 1M 64k", "write -z 1M 64k",
             "write -z 2M 64k")
    with _opened(image) as disk:
        assert list(disk.allocated_ranges()) == [(0, 64 * KiB)]


@needs_qemu_io
def test_internal_snapshot_reads_the_active_state(tmp_path: Path, source: Path) -> None:
    """Writes after an internal snapshot go to new clusters (the old ones are shared with the
    snapshot's L1 table): vmimage reads the active L1 table, as qemu-img does."""
    image = _qcow2_from(source, tmp_path / "snap.qcow2", "v3")
    run(["qemu-img", "snapshot", "-c", "before", str(image)])
    _qemu_io(image, "write -P 0x5a 0 100k", "write -z 4M 64k", "discard 10M 1M")
    _assert_reads_like_qemu(image)
    _assert_converts_like_qemu(image, tmp_path)


def test_dirty_image_is_read(tmp_path: Path, source: Path) -> None:
    """The dirty bit (lazy refcounts) says only the refcounts may be stale: qemu-img reads such
    an image, and so does vmimage."""
    image = _qcow2_from(source, tmp_path / "dirty.qcow2", "v3")
    _set_incompatible(image, 1)
    _assert_reads_like_qemu(image)
    _assert_converts_like_qemu(image, tmp_path)


# --- refusals -------------------------------------------------------------------------------


#: What ``vhd inspect`` does with a refused image: list the problem and exit 0 (the header is
#: sound, the data cannot be read), refuse it as ``convert`` does (the header or the L1 table
#: cannot be trusted), or see nothing wrong (only reading the data finds it).
DESCRIBES, REFUSES, PASSES = "describes", "refuses", "passes"


def _refused(tmp: Path, image: Path, *fragments: str, inspect: str = DESCRIBES) -> None:
    """``vhd convert`` refuses with one line naming the image, exit 2, the image unchanged and
    nothing left in the output's directory; ``vhd inspect`` does what ``inspect`` says."""
    before = file_state(image)
    outdir = tmp / "out"
    outdir.mkdir(exist_ok=True)
    _assert_one_line(vmimage("vhd", "convert", image, outdir / "out.vhd"), image, fragments)
    if inspect == REFUSES:
        _assert_one_line(vmimage("vhd", "inspect", image), image, fragments)
    else:
        problems = inspect_json(image)["problems"]
        assert isinstance(problems, list)
        found = any(all(f in p for f in fragments) for p in problems)
        assert found == (inspect == DESCRIBES), problems
    assert list(outdir.iterdir()) == []
    assert file_state(image) == before


def _assert_one_line(res: subprocess.CompletedProcess[str], image: Path,
                     fragments: tuple[str, ...]) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
    assert res.stderr.startswith(f"vmimage: {image}: "), res.stderr
    for fragment in fragments:
        assert fragment in res.stderr, res.stderr


def _header(image: Path) -> tuple[int, int, int, int]:
    """``(cluster bits, L1 entries, L1 offset, incompatible features)``."""
    raw = image.read_bytes()[:80]
    cluster_bits, = struct.unpack_from(">I", raw, 20)
    l1_size, l1_offset = struct.unpack_from(">IQ", raw, 36)
    incompatible, = struct.unpack_from(">Q", raw, 72)
    return cluster_bits, l1_size, l1_offset, incompatible


def _set_incompatible(image: Path, bits: int) -> None:
    write_at(image, 72, struct.pack(">Q", _header(image)[3] | bits))


def _l2_entries(image: Path) -> tuple[int, list[tuple[int, int]]]:
    """The first L2 table's offset and its ``(byte offset in the table, entry)`` in use."""
    cluster_bits, _, l1_offset, _ = _header(image)
    with open(image, "rb") as f:
        f.seek(l1_offset)
        l2_offset = struct.unpack(">Q", f.read(8))[0] & 0x00FFFFFFFFFFFE00
        f.seek(l2_offset)
        table = f.read(1 << cluster_bits)
    used = [(i, e) for i in range(0, len(table), 8) if (e := struct.unpack_from(">Q", table, i)[0])]
    return l2_offset, used


def test_backing_file_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"])
    over = tmp_path / "over.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", str(over)])
    _refused(tmp_path, over, "backing file ('base.qcow2')", "qemu-img convert")


def test_encrypted_image_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "luks.qcow2"
    run(["qemu-img", "create", "-q", "--object", "secret,id=sec0,data=vmimage", "-f", "qcow2",
         "-o", "encrypt.format=luks,encrypt.key-secret=sec0", str(image), "16M"])
    _refused(tmp_path, image, "encrypted qcow2 (LUKS)", "qemu-img convert")


def test_zstd_image_is_refused(tmp_path: Path, source: Path) -> None:
    image = tmp_path / "zstd.qcow2"
    res = run(["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
               "compression_type=zstd", str(source), str(image)], check=False)
    if res.returncode:
        pytest.skip(f"this qemu-img has no zstd: {res.stderr.strip()}")
    _refused(tmp_path, image, "zstd", "qemu-img convert")


def test_external_data_file_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "ext.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={tmp_path / 'd.raw'}",
         str(image), "16M"])
    _refused(tmp_path, image, "external data file", "qemu-img convert")


def test_corrupt_bit_is_refused_until_qemu_repairs_it(tmp_path: Path, source: Path) -> None:
    """qemu-img would read it; vmimage asks for ``qemu-img check -r all`` first, which clears
    the bit, and then converts the image as qemu reads it."""
    image = _qcow2_from(source, tmp_path / "corrupt.qcow2", "v3")
    _set_incompatible(image, 2)
    _refused(tmp_path, image, "corrupt", "qemu-img check -r all")
    run(["qemu-img", "check", "-q", "-r", "all", "-f", "qcow2", str(image)])
    assert not _header(image)[3] & 2
    _assert_converts_like_qemu(image, tmp_path)


def test_unknown_incompatible_feature_is_refused(tmp_path: Path, source: Path) -> None:
    image = _qcow2_from(source, tmp_path / "future.qcow2", "v3")
    _set_incompatible(image, 1 << 5)
    _refused(tmp_path, image, "unknown incompatible qcow2 features 0x20", "qemu-img convert",
             inspect=REFUSES)


@pytest.mark.parametrize("name", ["v3", "compressed"])
def test_truncated_file_is_refused(tmp_path: Path, source: Path, name: str) -> None:
    """Cut inside the last clusters: those past the end are refused, not read as zeros
    (qemu-img would read zeros there). A deeper cut is refused too, by the walk: the tables
    then claim more than the file holds (test_hostile_disk.py)."""
    image = _qcow2_from(source, tmp_path / "cut.qcow2", name)
    os.truncate(image, image.stat().st_size - 100 * KiB - 100)
    _refused(tmp_path, image, "read error at virtual offset", "end of the file",
             inspect=PASSES)


def test_l1_table_outside_the_file_is_refused(tmp_path: Path, source: Path) -> None:
    image = _qcow2_from(source, tmp_path / "l1.qcow2", "v3")
    write_at(image, 40, struct.pack(">Q", 1 << 40))
    _refused(tmp_path, image, "cannot be read as qcow2", "L1 table", "outside the file",
             inspect=REFUSES)


def test_l2_table_outside_the_file_is_refused(tmp_path: Path, source: Path) -> None:
    image = _qcow2_from(source, tmp_path / "l2.qcow2", "v3")
    _, _, l1_offset, _ = _header(image)
    write_at(image, l1_offset, struct.pack(">Q", 1 << 63 | 1 << 40))
    _refused(tmp_path, image, "corrupt qcow2", "L2 table", "outside the file",
             inspect=PASSES)


def test_data_cluster_outside_the_file_is_refused(tmp_path: Path, source: Path) -> None:
    image = _qcow2_from(source, tmp_path / "data.qcow2", "v3")
    l2_offset, used = _l2_entries(image)
    write_at(image, l2_offset + used[-1][0], struct.pack(">Q", 1 << 63 | 1 << 40))
    _refused(tmp_path, image, "read error at virtual offset", "end of the file",
             inspect=PASSES)


def test_compressed_cluster_that_does_not_inflate_is_refused(tmp_path: Path,
                                                             source: Path) -> None:
    image = _qcow2_from(source, tmp_path / "bad.qcow2", "compressed")
    cluster_bits = _header(image)[0]
    entry = next(e for _, e in _l2_entries(image)[1] if e & 1 << 62)
    start = entry & ((1 << (62 - (cluster_bits - 8))) - 1)
    write_at(image, start, b"\xff" * 64)  # not a deflate stream
    _refused(tmp_path, image, "read error", "does not inflate", inspect=PASSES)


def test_compressed_cluster_claiming_too_much_is_bounded(tmp_path: Path,
                                                         source: Path) -> None:
    """A compressed entry claiming the most sectors its field holds, pointed at the start of
    the file: the input read is cut at the file's end and the output at one cluster, and the
    stream is refused (it is no deflate stream)."""
    image = _qcow2_from(source, tmp_path / "big.qcow2", "compressed")
    l2_offset, used = _l2_entries(image)
    index, _ = next((i, e) for i, e in used if e & 1 << 62)
    write_at(image, l2_offset + index, struct.pack(">Q", 1 << 62 | (2**62 - 1) & ~(2**54 - 1)))
    _refused(tmp_path, image, "read error", "compressed cluster", inspect=PASSES)
