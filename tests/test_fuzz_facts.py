"""Fuzzers over the parsers of untrusted image content (issue 17, "Keep it so").

Each feeds Hypothesis-made input to one parser in a forked child bounded in time and memory
(:func:`tests.fuzzing.run_bounded`) and asserts what every hostile input must get: a result
or the typed input error (:class:`vmimage.errors.VmimageError`), never another exception, a
hang or a runaway allocation; and the input unchanged. CI runs a short campaign
(``VMIMAGE_FUZZ_EXAMPLES``, default 60); a long one sets it higher.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import struct
import zlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import MiB, run_bounded
from vmimage.disk.gpt import GptHeader
from vmimage.facts import _grub, packages, rpmdb
from vmimage.facts.accounts import read_sudoers
from vmimage.facts.bootcfg import read_kernel_cmdlines
from vmimage.facts.network import ifupdown_interfaces
from vmimage.facts.sshd import read_sshd_config
from vmimage.targets.fstab import parse_fstab
from vmimage.targets.partitions import read_table
from vmimage.targets.rootdir import RootDirTarget

EXAMPLES = int(os.environ.get("VMIMAGE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
SECTOR = 512
DISK_SECTORS = 4096  # a 2 MiB disk: big enough for a GPT and a partition or two


class MemoryDisk:
    """A disk image held in memory, read as the block cache reads a file."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, offset: int, length: int) -> bytes:
        """Bytes at ``offset``, cut short at the end."""
        return self.data[offset:offset + length]


def _bounded(call: object) -> None:
    assert callable(call)
    ending = run_bounded(call, seconds=10, memory=384 * MiB)
    assert ending.ok, ending


# --- GPT and MBR -----------------------------------------------------------------------------------

#: Hostile values for each header field; a case changes one or two fields of a valid header,
#: so that the others (CRCs included) let the parser reach the field under test.
_HOSTILE = {
    "header_size": [91, 0, 513, 0xFFFFFFFF],
    "num_entries": [0, 1, 4096, 4097, 65536, 0xFFFFFFFF],
    "entry_size": [0, 8, 16, 127, 256, 4096, 8192, 0xFFFFFFFF],
    "entries_lba": [0, 1, 3, DISK_SECTORS - 2, DISK_SECTORS, 2**64 - 1],
    "my_lba": [0, DISK_SECTORS - 1, 2**64 - 1],
}
_HEADER_FIELDS = st.lists(st.one_of(*[st.tuples(st.just(k), st.sampled_from(v))
                                      for k, v in _HOSTILE.items()]), max_size=2).map(dict)


def _gpt_disk(fields: dict[str, int], entries: bytes, mbr: bytes, valid_array_crc: bool) -> bytes:
    header = GptHeader(b"EFI PART", 0x10000, 92, 0, 0, 1, DISK_SECTORS - 1, 34,
                       DISK_SECTORS - 34, bytes(16), 2, 128, 128, 0)
    header = dataclasses.replace(header, **fields)
    array_size = min(header.num_entries * header.entry_size, 1 << 20)
    array = entries.ljust(array_size, b"\0")[:array_size]
    if valid_array_crc:
        header = dataclasses.replace(header, entries_crc=zlib.crc32(array))
    disk = bytearray(DISK_SECTORS * SECTOR)
    disk[:SECTOR] = mbr.ljust(SECTOR, b"\0")[:SECTOR]
    disk[SECTOR:2 * SECTOR] = header.pack()[:SECTOR]
    start = min(header.entries_lba, DISK_SECTORS) * SECTOR
    disk[start:start + len(array)] = array[:max(0, len(disk) - start)]
    return bytes(disk[:DISK_SECTORS * SECTOR])


@FUZZ
@given(fields=_HEADER_FIELDS, entries=st.binary(min_size=16, max_size=2048),
       mbr=st.binary(max_size=512), valid=st.booleans())
def test_gpt_headers_with_hostile_sizes(fields: dict[str, int], entries: bytes, mbr: bytes,
                                        valid: bool) -> None:
    data = _gpt_disk(fields, entries, mbr, valid)
    digest = hashlib.sha256(data).digest()
    _bounded(lambda: read_table(MemoryDisk(data), len(data)))
    assert hashlib.sha256(data).digest() == digest


_MBR_ENTRY = st.tuples(st.sampled_from([0, 0x80, 0x7F]),
                       st.sampled_from([0x00, 0x83, 0x05, 0x0F, 0x85, 0xEE, 0x82, 0x8E]),
                       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))


@FUZZ
@given(entries=st.lists(_MBR_ENTRY, min_size=4, max_size=4),
       ebrs=st.lists(st.tuples(st.integers(1, DISK_SECTORS - 1), st.lists(_MBR_ENTRY, min_size=2,
                                                                          max_size=2)),
                     max_size=6))
def test_mbr_and_extended_chains(entries: list[tuple[int, int, int, int]],
                                 ebrs: list[tuple[int, list[tuple[int, int, int, int]]]]) -> None:
    disk = bytearray(DISK_SECTORS * SECTOR)

    def sector(rows: list[tuple[int, int, int, int]]) -> bytes:
        raw = bytearray(SECTOR)
        for i, (status, ptype, lba, count) in enumerate(rows):
            struct.pack_into("<B3xB3xII", raw, 446 + 16 * i, status, ptype, lba, count)
        raw[510:512] = b"\x55\xaa"
        return bytes(raw)

    disk[:SECTOR] = sector(entries)
    for lba, rows in ebrs:
        disk[lba * SECTOR:(lba + 1) * SECTOR] = sector(rows)
    data = bytes(disk)
    _bounded(lambda: read_table(MemoryDisk(data), len(data)))


# --- include graphs on a root directory ------------------------------------------------------------

_NAMES = ("a", "b", "c", "d")
_INCLUDE_LINE = st.sampled_from(_NAMES).map(lambda n: n)


def _root(tmp: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _graph(directive: str, where: str) -> st.SearchStrategy[dict[str, str]]:
    """Four files, each a few lines of includes of the others (or itself) and settings."""
    line = st.one_of(st.sampled_from(_NAMES).map(lambda n: f"{directive} {where}/{n}"),
                     st.just(f"{directive} {where}/*"), st.just(f"{directive} {where}/../x"),
                     st.text(alphabet="ab =#\\\"'\t", max_size=20))
    body = st.lists(line, max_size=6).map(lambda ls: "\n".join(ls) + "\n")
    return st.fixed_dictionaries({f"{where}/{n}": body for n in _NAMES})


@FUZZ
@given(files=_graph("Include", "/etc/ssh"), main=st.sampled_from(_NAMES))
def test_sshd_include_graphs(tmp_path_factory, files: dict[str, str], main: str) -> None:
    root = _root(tmp_path_factory.mktemp("sshd"), {**files, "/etc/ssh/sshd_config":
                                                   f"Include /etc/ssh/{main}\nPort 22\n"})
    before = _snapshot(root)
    _bounded(lambda: read_sshd_config(RootDirTarget(root)))
    assert _snapshot(root) == before


@FUZZ
@given(files=_graph("@include", "/etc/sudoers.d"),
       head=st.sampled_from(["@includedir /etc/sudoers.d", "#include /etc/sudoers",
                             "@include sudoers.d/a"]))
def test_sudoers_include_graphs(tmp_path_factory, files: dict[str, str], head: str) -> None:
    root = _root(tmp_path_factory.mktemp("sudo"), {**files, "/etc/sudoers": f"{head}\n"})
    before = _snapshot(root)
    _bounded(lambda: read_sudoers(RootDirTarget(root)))
    assert _snapshot(root) == before


@FUZZ
@given(files=_graph("source", "/etc/network/interfaces.d"),
       head=st.sampled_from(["source-directory interfaces.d", "source interfaces.d/*",
                             "source /etc/network/interfaces"]))
def test_ifupdown_source_graphs(tmp_path_factory, files: dict[str, str], head: str) -> None:
    root = _root(tmp_path_factory.mktemp("ifup"),
                 {**files, "/etc/network/interfaces": f"{head}\nauto eth0\n"})
    before = _snapshot(root)
    _bounded(lambda: ifupdown_interfaces(RootDirTarget(root)))
    assert _snapshot(root) == before


# --- GRUB, fstab, dpkg status, RPM headers ---------------------------------------------------------

_GRUB_TOKENS = st.sampled_from([
    "if", "[", "]", "then", "else", "elif", "fi", "{", "}", "menuentry 'x'", "submenu 's'",
    "function f", "linux /vmlinuz", "set a=$a$a", "set default=0", "${", "${a}", "$a", '"',
    "'", "\\", ";", "\n", " ", "blscfg", "for", "do", "done", "x=1", "default=1>0"])


@FUZZ
@given(tokens=st.lists(_GRUB_TOKENS, max_size=200),
       repeat=st.integers(1, 400))
def test_grub_cfg(tmp_path_factory, tokens: list[str], repeat: int) -> None:
    text = " ".join(tokens) * repeat
    root = _root(tmp_path_factory.mktemp("grub"), {"/boot/grub/grub.cfg": text,
                                                   "/etc/default/grub": text[:2000]})
    before = _snapshot(root)
    _bounded(lambda: read_kernel_cmdlines(RootDirTarget(root)))
    _bounded(lambda: _grub.run(text, {}))
    assert _snapshot(root) == before


@FUZZ
@given(text=st.text(max_size=4000))
def test_fstab(text: str) -> None:
    _bounded(lambda: parse_fstab(text))


_DEB822 = st.lists(st.one_of(
    st.sampled_from(["Package: p", "Status: install ok installed", "Version: 1.0", " cont",
                     "", "Architecture: amd64", ":", "Package:", "\t", "Status: x y z"]),
    st.text(max_size=40)), max_size=300)


@FUZZ
@given(lines=_DEB822, repeat=st.integers(1, 200))
def test_dpkg_status(tmp_path_factory, lines: list[str], repeat: int) -> None:
    text = "\n".join(lines) * repeat
    root = _root(tmp_path_factory.mktemp("dpkg"), {packages.DPKG_STATUS: text})
    before = _snapshot(root)
    _bounded(lambda: packages.read_packages(RootDirTarget(root)))
    assert _snapshot(root) == before


@st.composite
def _rpm_header(draw: st.DrawFn) -> bytes:
    """A header blob with hostile counts, tags, types and offsets."""
    count = draw(st.integers(0, 8))
    store = draw(st.binary(max_size=256))
    il = draw(st.sampled_from([count, 0, 0xFFFF, 0xFFFFFFFF]))
    dl = draw(st.sampled_from([len(store), 0, len(store) + 1, 0xFFFFFFFF]))
    index = b"".join(struct.pack(">iIiI", draw(st.sampled_from([1000, 1001, 1002, 1003, 1022,
                                                                -1])),
                                 draw(st.sampled_from([4, 6, 9, 0, 0xFFFFFFFF])),
                                 draw(st.integers(-(2**31), 2**31 - 1)),
                                 draw(st.integers(0, 2**32 - 1))) for _ in range(count))
    return struct.pack(">II", il, dl) + index + store


@FUZZ
@given(blob=_rpm_header())
def test_rpm_header_blobs(blob: bytes) -> None:
    def parse() -> None:
        with contextlib.suppress(rpmdb.RpmDbError):  # its refusal: read_rpm reports it
            rpmdb.parse_header(blob)
    _bounded(parse)


@FUZZ
@given(data=st.binary(min_size=512, max_size=8192), magic=st.sampled_from([0x061561, 0x053162]),
       pagesize=st.sampled_from([512, 1024, 4096]), endian=st.sampled_from(["<", ">"]))
def test_berkeley_db_pages(data: bytes, magic: int, pagesize: int, endian: str) -> None:
    raw = bytearray(data.ljust(pagesize * 3, b"\0"))
    struct.pack_into(endian + "I", raw, 12, magic)
    struct.pack_into(endian + "I", raw, 20, pagesize)
    raw[24] = 0
    blob = bytes(raw)

    def parse() -> None:
        with contextlib.suppress(rpmdb.RpmDbError):
            rpmdb.bdb_blobs(blob)
    _bounded(parse)
