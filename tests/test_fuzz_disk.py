"""Fuzzers over the disk layer's parsers of untrusted bytes (issue 17, "Keep it so").

VHD footer, dynamic header and BAT (through :func:`vmimage.disk.inspect.open_disk` on a real
file, data read to the end), GPT validation and the backup move it plans, VMDK descriptors
and their extent names, qcow2 L1/L2 tables. Each runs in a forked child bounded in time and
memory (:func:`tests.fuzzing.run_bounded`) and must end with a result or the typed error
(:class:`vmimage.errors.VmimageError`), leaving its input unchanged. Hypothesis builds inputs
that are *nearly* valid (checksums and CRCs made right) so the fuzzing reaches past the first
check. Short in CI; ``VMIMAGE_FUZZ_EXAMPLES=5000`` for a long run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import tempfile
import zlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import MiB, run_bounded
from vmimage.disk import gpt, qcow2, vhd, vmdk
from vmimage.disk.inspect import open_disk
from vmimage.errors import InputError

EXAMPLES = int(os.environ.get("VMIMAGE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SECTOR = 512
U32 = st.one_of(st.sampled_from([0, 1, 2, 511, 512, 4096, 2**20, 2**31, 2**32 - 1]),
                st.integers(0, 2**32 - 1))
U64 = st.one_of(st.sampled_from([0, 1, 512, 1536, 2**32, 2**63, 2**64 - 1]),
                st.integers(0, 2**64 - 1))


def _bounded(call: object, seconds: float = 10) -> None:
    assert callable(call)
    ending = run_bounded(call, seconds=seconds, memory=384 * MiB)
    assert ending.ok, ending


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- VHD footer ---------------------------------------------------------------------------


@FUZZ
@given(st.one_of(st.binary(min_size=512, max_size=512),
                 st.builds(lambda size, kind, off, flip: (flip, vhd.Footer.new(
                     size, disk_type=kind, data_offset=off)), U64, st.integers(0, 7), U64,
                           st.integers(0, 511))))
def test_fuzz_vhd_footer(data: bytes | tuple[int, vhd.Footer]) -> None:
    """Any 512 bytes decode and are judged without an exception."""
    if isinstance(data, tuple):
        flip, footer = data
        raw = bytearray(footer.with_checksum().pack())
        raw[flip] ^= 0x40
        data = bytes(raw)

    def call() -> None:
        footer = vhd.Footer.unpack(data)
        footer.problems()
        footer.to_dict()

    _bounded(call)


# --- dynamic VHD: header and BAT, read through open_disk ------------------------------------


@st.composite
def dynamic_vhds(draw: st.DrawFn) -> bytes:
    """A small dynamic VHD whose header and BAT fields are fuzzed, checksums made right."""
    size = draw(st.sampled_from([MiB, 4 * MiB, 3 * MiB + SECTOR]) | U64.map(lambda v: v & ~511))
    block = draw(st.sampled_from([2 * MiB, 512, 4096, 2**31]) | U32)
    entries = draw(st.sampled_from([1, 2, 4, 2**20, 2**32 - 1]) | U32)
    table_offset = draw(st.sampled_from([1536, 2048, 0, 2**63]) | U64)
    footer = vhd.Footer.new(size, disk_type=vhd.DISK_DYNAMIC, data_offset=512)
    header = vhd.DynamicHeader.new(table_offset, entries, block)
    bat = draw(st.lists(st.sampled_from([vhd.BAT_UNUSED, 3, 4, 8, 2**31]) | U32, max_size=8))
    body = bytearray(footer.pack() + header.pack())
    body += vhd.pack_bat(bat or [vhd.BAT_UNUSED])
    body += draw(st.binary(max_size=4096))
    body += bytes(-len(body) % SECTOR)
    return bytes(body + footer.pack())


@FUZZ
@given(dynamic_vhds())
def test_fuzz_dynamic_vhd(image: bytes) -> None:
    """Open the image and read every range it says may hold data: the typed error or data,
    within the bounds, and the file unchanged."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.vhd"
        path.write_bytes(image)
        before = _digest(path)

        def call() -> None:
            _, source = open_disk(path)
            try:
                for offset, length in source.data_ranges():
                    for pos in range(offset, offset + min(length, 64 * MiB), MiB):
                        source.read(pos, MiB)
            finally:
                source.close()

        _bounded(call)
        assert _digest(path) == before


# --- GPT: validation, and the move planned from a valid table -------------------------------

DISK_SECTORS = 8192


@st.composite
def gpt_disks(draw: st.DrawFn) -> bytes:
    """A 4 MiB disk with a GPT whose header fields are fuzzed, both CRCs made right."""
    last = DISK_SECTORS - 1
    fields = draw(st.fixed_dictionaries({
        "header_size": st.sampled_from([92, 91, 128, 512, 513, 0]) | U32,
        "num_entries": st.sampled_from([128, 1, 0, 4096, 65536, 2**32 - 1]) | U32,
        "entry_size": st.sampled_from([128, 256, 8, 16, 200, 4096, 8192]) | U32,
        "entries_lba": st.sampled_from([2, 0, 1, 34, 100, last - 32, last]) | U64,
        "alternate_lba": st.sampled_from([last, 1, 0, last + 1]) | U64,
        "first_usable_lba": st.sampled_from([34, 0, 2048, last]) | U64,
        "last_usable_lba": st.sampled_from([last - 33, last, 33]) | U64,
    }))
    partitions = draw(st.lists(st.tuples(st.integers(0, DISK_SECTORS + 10),
                                         st.integers(0, DISK_SECTORS + 10)), max_size=3))
    disk = bytearray(DISK_SECTORS * SECTOR)
    disk[446 + 4] = 0xEE
    disk[510:512] = b"\x55\xaa"
    header = gpt.GptHeader(gpt.SIGNATURE, 0x10000, 92, 0, 0, 1, last, 34, last - 33,
                           os.urandom(16), 2, 128, 128, 0)
    header = dataclasses.replace(header, **fields)
    size = min(header.num_entries * header.entry_size, 2 * MiB)
    entries = bytearray(size)
    for i, (first, end) in enumerate(partitions):
        if i * header.entry_size + 48 <= size:
            struct.pack_into("<16s16sQQ", entries, i * header.entry_size, b"\x01" * 16,
                             b"\x02" * 16, first, end)
    header = dataclasses.replace(header, entries_crc=zlib.crc32(entries))
    backup = dataclasses.replace(header, my_lba=header.alternate_lba, alternate_lba=1,
                                 entries_lba=last - 32)
    for h in (header, backup):
        for lba, data in ((h.entries_lba, entries), (h.my_lba, h.pack())):
            if lba * SECTOR < len(disk):
                start = lba * SECTOR
                disk[start:start + len(data)] = data[:len(disk) - start]
    if draw(st.booleans()):
        spot = draw(st.integers(0, 40 * SECTOR))
        disk[spot] ^= 0x10
    return bytes(disk)


@FUZZ
@given(gpt_disks(), st.sampled_from([DISK_SECTORS * SECTOR * 2, DISK_SECTORS * SECTOR + MiB]))
def test_fuzz_gpt_relocation(disk: bytes, new_size: int) -> None:
    """A table is either refused (GptError) or valid, and then every write the move plans
    lies outside its partitions and its usable area, inside the new disk."""
    def read(offset: int, length: int) -> bytes:
        return disk[offset:offset + length]

    def call() -> None:
        try:
            table = gpt.read_gpt(read, len(disk))
        except gpt.GptError as exc:
            raise InputError("fuzz", str(exc)) from None
        h = table.primary
        usable = range(h.first_usable_lba * SECTOR, (h.last_usable_lba + 1) * SECTOR)
        writes = [*gpt.relocation(table, len(disk), new_size),
                  *gpt.protective_mbr(read, new_size // SECTOR)]
        for w in writes:
            end = w.offset + len(w.data)
            assert end <= new_size
            overlap = max(w.offset, usable.start) < min(end, usable.stop)
            assert not overlap or w.offset >= len(disk), (w.offset, end, usable)

    _bounded(call)


# --- VMDK descriptors and extent names ------------------------------------------------------

_NAMES = st.sampled_from(["d-flat.vmdk", "/etc/passwd", "../secret", "sub/../../secret",
                          "link-out", "fifo", "dev", "C:\\x", "..", ".", "", "a\\..\\..\\b",
                          "missing"]) | st.text(max_size=20)
_LINES = st.one_of(
    st.builds(lambda acc, n, kind, name: f'{acc} {n} {kind} "{name}" 0',
              st.sampled_from(["RW", "RDONLY", "NOACCESS"]), st.integers(0, 2**40),
              st.sampled_from(["FLAT", "SPARSE", "ZERO", "VMFS", "VMFSRDM", "SESPARSE", "X"]),
              _NAMES),
    st.sampled_from(["# Disk DescriptorFile", "version=1", 'createType="monolithicFlat"',
                     'parentFileNameHint="../parent.vmdk"', "RW 10 FLAT", "RW 10 ZERO"]),
    st.text(max_size=60))


@FUZZ
@given(st.lists(_LINES, max_size=12), st.binary(max_size=64))
def test_fuzz_vmdk_descriptor(lines: list[str], junk: bytes) -> None:
    """Whatever the descriptor says, an extent that passes is a regular file inside the
    descriptor's directory, and nothing there is opened or changed."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        disk = base / "disk"
        disk.mkdir()
        (base / "secret").write_bytes(b"host secret")
        (disk / "d-flat.vmdk").write_bytes(bytes(4096))
        (disk / "link-out").symlink_to(base / "secret")
        os.mkfifo(disk / "fifo")
        os.mknod(disk / "dev", 0o600 | 0o020000, os.makedev(1, 3))
        desc = disk / "d.vmdk"
        text = "# Disk DescriptorFile\n" + "\n".join(lines) + "\n"
        desc.write_bytes(text.encode("utf-8", "surrogatepass") + junk)
        before = {p.name: _digest(p) for p in (desc, disk / "d-flat.vmdk", base / "secret")}

        def call() -> None:
            data = desc.read_bytes()
            try:
                found = vmdk.check_extents(desc, lambda o, n: data[o:o + n], len(data))
            except vmdk.VmdkError as exc:
                raise InputError(desc, str(exc)) from None
            for extent in found:
                if extent.file is not None:
                    real = vmdk.check_extent_file(disk, extent.file)
                    assert real.parent == disk.resolve() or disk.resolve() in real.parents
                    assert real.is_file() and not real.is_symlink()

        _bounded(call)
        after = {p.name: _digest(p) for p in (desc, disk / "d-flat.vmdk", base / "secret")}
        assert after == before


# --- qcow2 L1 and L2 tables -----------------------------------------------------------------


@st.composite
def qcow2_files(draw: st.DrawFn) -> bytes:
    """A small qcow2 (64 KiB clusters by default) with fuzzed header fields and tables.

    Cluster 3 holds a deflate stream of one cluster, or junk, and L2 entries may point at it
    as compressed clusters claiming one sector or as many as their field holds.
    """
    bits = draw(st.sampled_from([16, 9, 21, 8, 22, 0, 63]))
    cs = 1 << min(bits, 21)
    shift = 62 - (min(max(bits, 9), 21) - 8)  # where a compressed entry's sector count starts
    most_sectors = ((1 << 62) - 1) >> shift << shift
    version = draw(st.sampled_from([3, 2, 1, 4]))
    size = draw(st.sampled_from([MiB, 2**40, 60 * 2**40]) | U64)
    l1_size = draw(st.sampled_from([1, 2, 0, 2**20, 2**32 - 1]) | U32)
    l1_offset = draw(st.sampled_from([cs, 0, 3 * cs, 2**63]) | U64)
    incompat = draw(st.sampled_from([0, 1, 2, 4, 16, 2**40]))
    header = struct.pack(">4sIQIIQIIQQIIQ", qcow2.MAGIC, version, 0, 0, bits, size, 0,
                         l1_size, l1_offset, 0, 0, 0, 0)
    header += struct.pack(">QQQII", incompat, 0, 0, 4, 104)
    l1 = draw(st.lists(st.sampled_from([2 * cs, 3 * cs, 0, 1 << 63 | 2 * cs, 2**64 - 1]) | U64,
                       max_size=4))
    l2 = draw(st.lists(st.sampled_from([0, 1, 3 * cs, 1 << 63 | 3 * cs, 1 << 62 | 5,
                                        1 << 62 | 3 * cs, 1 << 62 | most_sectors | 3 * cs,
                                        2**32 - 1, 2**64 - 1]) | U64, max_size=16))
    image = bytearray(4 * cs)
    stream = _deflated_cluster(cs) if draw(st.booleans()) else os.urandom(64)
    image[3 * cs:3 * cs + len(stream)] = stream
    image[:len(header)] = header
    raw_l1 = b"".join(struct.pack(">Q", e) for e in l1)
    raw_l2 = b"".join(struct.pack(">Q", e) for e in l2)
    image[cs:cs + len(raw_l1)] = raw_l1
    image[2 * cs:2 * cs + len(raw_l2)] = raw_l2
    return bytes(image)


@FUZZ
@given(qcow2_files())
def test_fuzz_qcow2_tables(image: bytes) -> None:
    """The ranges walked from the tables stay inside the virtual disk and add up to no more
    than the file can store; anything else is the typed refusal."""
    def call() -> None:
        read = lambda o, n: image[o:o + n]  # noqa: E731 - the reader the walker takes
        try:
            header = qcow2.read_header(read, len(image))
            total = 0
            for offset, length in qcow2.allocated_ranges(read, len(image)):
                assert offset >= 0 and length > 0 and offset + length <= header.size
                total += length
            cs = header.cluster_size
            assert total <= len(image) * cs / max(1, cs // qcow2.DEFLATE_MAX_RATIO)
        except qcow2.Qcow2Error as exc:
            raise InputError("fuzz.qcow2", str(exc)) from None

    _bounded(call)


def _deflated_cluster(cs: int) -> bytes:
    """One cluster of text as qemu compresses it: raw deflate, 4 KiB window."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -12)
    return deflate.compress((b"vmimage fuzz " * (cs // 13 + 1))[:cs]) + deflate.flush()


@st.composite
def readable_qcow2_files(draw: st.DrawFn) -> bytes:
    """A qcow2 whose header opens (versions 2 and 3, clusters of 512 bytes to 2 MiB, extended
    L2 entries, the dirty bit) with fuzzed L1 and L2 entries, one cluster of deflated or junk
    data, and sometimes the end of the file cut off: what reaches the data reader."""
    bits = draw(st.sampled_from([16, 9, 14, 21]))
    cs = 1 << bits
    version = draw(st.sampled_from([3, 2]))
    incompat = draw(st.sampled_from([0, 1] + ([16, 17] if bits >= 14 else []))) \
        if version == 3 else 0
    per_l2 = cs // (16 if incompat & 16 else 8)
    size = draw(st.sampled_from([MiB, 3 * MiB + 512] + ([2**40] if bits >= 16 else [])))
    clusters = -(-size // cs)
    l1_size = -(-clusters // per_l2)
    l2_at = (1 + -(-l1_size * 8 // cs)) * cs
    data_at = l2_at + cs
    header = struct.pack(">4sIQIIQIIQQIIQ", qcow2.MAGIC, version, 0, 0, bits, size, 0,
                         l1_size, cs, 0, 0, 0, 0)
    header += struct.pack(">QQQII", incompat, 0, 0, 4, 104) if version == 3 else b""
    shift = 62 - (bits - 8)
    compressed = [1 << 62 | data_at, 1 << 62 | ((1 << 62) - 1) >> shift << shift | data_at,
                  1 << 62 | 5, 1 << 62 | data_at + 3]
    l1 = draw(st.lists(st.sampled_from([l2_at, 1 << 63 | l2_at, 0, data_at, l2_at + 512])
                       | U64, min_size=1, max_size=4))
    l2 = draw(st.lists(st.tuples(
        st.sampled_from([0, 1, data_at, 1 << 63 | data_at, data_at | 1, *compressed]) | U64,
        st.sampled_from([0, 2**32 - 1, 1, 1 << 32, (2**32 - 1) << 32, 3 | 1 << 33]) | U64),
        min_size=1, max_size=16))
    image = bytearray(data_at + cs)
    image[:len(header)] = header
    image[cs:cs + 8 * len(l1)] = b"".join(struct.pack(">Q", e) for e in l1)
    entries = (struct.pack(">QQ", *pair) if incompat & 16 else struct.pack(">Q", pair[0])
               for pair in l2)
    raw_l2 = b"".join(entries)
    image[l2_at:l2_at + len(raw_l2)] = raw_l2
    data = _deflated_cluster(cs) if draw(st.booleans()) else os.urandom(64)
    image[data_at:data_at + len(data)] = data
    cut = draw(st.sampled_from([0, 0, 100, cs // 2, cs]))
    return bytes(image[:len(image) - cut])


@FUZZ
@given(readable_qcow2_files(), st.lists(st.tuples(st.integers(0, 4 * MiB) | U64,
                                                   st.integers(0, 4 * MiB)), max_size=4))
def test_fuzz_qcow2_reader(image: bytes, reads: list[tuple[int, int]]) -> None:
    """Reading the virtual disk, its data ranges and arbitrary offsets, returns as many bytes
    as asked (cut at the disk's end) or the typed refusal, within the time and memory bounds,
    whatever the tables and compressed clusters say."""
    def call() -> None:
        read = lambda o, n: image[o:o + n]  # noqa: E731 - the reader the image takes
        try:
            disk = qcow2.Qcow2Image(read, len(image))
            for offset, length in reads:
                assert len(disk.read(offset, length)) == max(0, min(length, disk.size - offset))
            for offset, length in disk.allocated_ranges():
                assert len(disk.read(offset, min(length, 4 * MiB))) == min(length, 4 * MiB)
        except qcow2.Qcow2Error as exc:
            raise InputError("fuzz.qcow2", str(exc)) from None

    _bounded(call)


@st.composite
def sparse_vmdks(draw: st.DrawFn) -> bytes:
    """A small monolithic sparse extent header with fuzzed geometry and tables."""
    grain = draw(st.sampled_from([128, 8, 1, 0, 3, 1 << 13]) | U32)
    per_gt = draw(st.sampled_from([512, 1, 0, 513, 2**32 - 1]))
    capacity = draw(st.sampled_from([2048, 2**31, 2**40]) | U64)
    gd_sector = draw(st.sampled_from([2, 0, 2**32, 2**64 - 1]) | U64)
    header = struct.pack("<4sIIQQQQIQQQ", vmdk.SPARSE_MAGIC, 1, draw(st.sampled_from(
        [3, 3 | 1 << 16])), capacity, grain, 0, 0, per_gt, 0, gd_sector, 0)
    gd = draw(st.lists(st.sampled_from([0, 4, 8, 2**32 - 1]) | U32, max_size=4))
    gt = draw(st.lists(st.sampled_from([0, 1, 16, 2**32 - 1]) | U32, max_size=16))
    image = bytearray(16 * SECTOR)
    image[:len(header)] = header
    raw_gd = b"".join(struct.pack("<I", e) for e in gd)
    raw_gt = b"".join(struct.pack("<I", e) for e in gt)
    image[2 * SECTOR:2 * SECTOR + len(raw_gd)] = raw_gd
    image[4 * SECTOR:4 * SECTOR + len(raw_gt)] = raw_gt
    return bytes(image)


@FUZZ
@given(sparse_vmdks())
def test_fuzz_vmdk_grain_tables(image: bytes) -> None:
    """The grain walk stays inside the virtual disk and within what the file can store."""
    def call() -> None:
        read = lambda o, n: image[o:o + n]  # noqa: E731 - the reader the walker takes
        try:
            walk = vmdk.allocated_ranges(read, len(image))
            for offset, length in walk or ():
                assert offset >= 0 and length > 0
        except vmdk.VmdkError as exc:
            raise InputError("fuzz.vmdk", str(exc)) from None

    _bounded(call)
