"""Real Windows registry hive files for tests, built the way Windows' own tools would read them.

hivex cannot create a hive and ships no template (rulings, "Windows-format fixtures"), so
:func:`empty_hive` writes the smallest valid regf file itself: a base block with its checksum
and one hbin holding the root key and its security cell. :func:`hive` then adds keys and values
with ``hivexregedit --merge`` (Debian's ``libwin-hivex-perl``) from generated ``.reg`` text,
listing every parent key, which ``--merge`` needs.

Strings are written as ``hex(1)``/``hex(2)``/``hex(7)`` bytes in UTF-16LE, never as quoted
``.reg`` strings: hivexregedit reads the ``.reg`` file as bytes and would encode a non-ASCII
quoted string as Latin-1 code points. Key and value names are written as UTF-8, which hivex
stores as Latin-1 when it fits and as UTF-16LE otherwise.
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_QWORD = 1, 2, 3, 4, 7, 11
HBIN_SIZE = 4096
ROOT_NAME = "ROOT"
# 2024-01-01T00:00:00Z as a FILETIME, so that two builds of one hive are byte-identical.
_FILETIME = (1704067200 + 11644473600) * 10_000_000


@dataclass(frozen=True)
class Qword:
    """A REG_QWORD value (a plain ``int`` is a REG_DWORD)."""

    value: int


@dataclass(frozen=True)
class ExpandSz:
    """A REG_EXPAND_SZ value (a plain ``str`` is a REG_SZ)."""

    value: str


@dataclass(frozen=True)
class Raw:
    """A value of any type with exactly these data bytes (``REG_NONE``, damaged data...)."""

    type: int
    data: bytes


Value = int | str | list[str] | bytes | Qword | ExpandSz | Raw


class HiveBuildError(RuntimeError):
    """hivexregedit refused the generated ``.reg`` text."""


# --- the empty hive -----------------------------------------------------------------------------


def _sid(authority: int, *subs: int) -> bytes:
    return struct.pack(">BB", 1, len(subs)) + authority.to_bytes(6, "big") + \
        b"".join(struct.pack("<I", s) for s in subs)


def _security_descriptor() -> bytes:
    """Self-relative: owner Administrators, group SYSTEM, a DACL giving Everyone full access."""
    owner, group = _sid(5, 32, 544), _sid(5, 18)
    everyone = _sid(1, 0)
    ace = struct.pack("<BBHI", 0, 0x02, 8 + len(everyone), 0xF003F) + everyone  # KEY_ALL_ACCESS
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(ace), 1, 0) + ace
    header = 20
    return struct.pack("<BBHIIII", 1, 0, 0x8004, header, header + len(owner), 0,
                       header + len(owner) + len(group)) + owner + group + acl


def _cell(payload: bytes) -> bytes:
    """An allocated cell: negative size (header included), padded to 8 bytes."""
    size = (4 + len(payload) + 7) // 8 * 8
    return struct.pack("<i", -size) + payload.ljust(size - 4, b"\0")


def empty_hive(name: str = ROOT_NAME) -> bytes:
    """A valid regf file whose root key has no subkeys and no values."""
    root_at = 0x20  # cell offsets count from the first hbin; its header is 32 bytes
    encoded = name.encode("ascii")
    nk_size = len(_cell(b"\0" * (76 + len(encoded))))
    sk_at = root_at + nk_size
    descriptor = _security_descriptor()
    sk = _cell(b"sk" + struct.pack("<HIIII", 0, sk_at, sk_at, 1, len(descriptor)) + descriptor)
    nk = _cell(b"nk" + struct.pack(
        "<HQIIIIIIIIIIIIIIIHH",
        0x2C,  # KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME
        _FILETIME, 0, 0xFFFFFFFF,  # access bits, parent (none)
        0, 0, 0xFFFFFFFF, 0xFFFFFFFF,  # subkeys, volatile subkeys, their lists
        0, 0xFFFFFFFF, sk_at, 0xFFFFFFFF,  # values, value list, security, class name
        0, 0, 0, 0, 0,  # largest subkey name, class name, value name, value data; workvar
        len(encoded), 0) + encoded)
    cells = nk + sk
    free = HBIN_SIZE - 0x20 - len(cells)
    hbin = (b"hbin" + struct.pack("<IIQQI", 0, HBIN_SIZE, 0, _FILETIME, 0) + cells
            + struct.pack("<i", free) + b"\0" * (free - 4))
    base = bytearray(4096)
    struct.pack_into("<4sIIQIIIIIII", base, 0, b"regf", 1, 1, _FILETIME, 1, 3, 0, 1,
                     root_at, HBIN_SIZE, 1)
    base[48:48 + 64] = "\\??\\C:\\Windows\\System32\\config\\TEST".encode("utf-16-le")[:64]
    struct.pack_into("<I", base, 508, regf_checksum(bytes(base)))
    return bytes(base) + hbin


def regf_checksum(base_block: bytes) -> int:
    """The base block's checksum: the XOR of its first 127 dwords, never 0 or 0xFFFFFFFF."""
    value = 0
    for (word,) in struct.iter_unpack("<I", base_block[:508]):
        value ^= word
    return {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(value, value)


# --- hand-made cells (what hivex never writes: lf, li and ri lists, big data) ------------------


def append_cells(data: bytes, payloads: list[bytes]) -> tuple[bytes, list[int]]:
    """The hive with a new hbin at its end holding these payloads as allocated cells, and
    their cell offsets (from the first hbin); the base block's bins size and checksum are
    updated, as Windows would leave them."""
    base = bytearray(data[:4096])
    bins_size = struct.unpack_from("<I", base, 40)[0]
    cells, offsets = b"", []
    for payload in payloads:
        offsets.append(bins_size + 0x20 + len(cells))
        cells += _cell(payload)
    size = (0x20 + len(cells) + 4 + HBIN_SIZE - 1) // HBIN_SIZE * HBIN_SIZE
    free = size - 0x20 - len(cells)
    hbin = (b"hbin" + struct.pack("<IIQQI", bins_size, size, 0, _FILETIME, 0) + cells
            + struct.pack("<i", free) + b"\0" * (free - 4))
    struct.pack_into("<I", base, 40, bins_size + size)
    struct.pack_into("<I", base, 508, regf_checksum(bytes(base)))
    return bytes(base) + data[4096:4096 + bins_size] + hbin, offsets


def pad(data: bytes, mib: int) -> bytes:
    """The hive grown by ``mib`` MiB of 4 KiB hive bins holding one free cell each, as the
    free space of a real hive that has lived (a patched Server's SOFTWARE is 50-100 MiB)."""
    base = bytearray(data[:4096])
    bins_size = struct.unpack_from("<I", base, 40)[0]
    count = mib * 256
    out = bytearray(data[:4096 + bins_size])
    for index in range(count):
        out += (b"hbin" + struct.pack("<IIQQI", bins_size + index * HBIN_SIZE, HBIN_SIZE, 0,
                                      _FILETIME, 0)
                + struct.pack("<i", HBIN_SIZE - 0x20) + bytes(HBIN_SIZE - 0x24))
    struct.pack_into("<I", base, 40, bins_size + count * HBIN_SIZE)
    struct.pack_into("<I", base, 508, regf_checksum(bytes(base)))
    out[:4096] = base
    return bytes(out)


def patch_cell(data: bytes, cell: int, at: int, value: bytes) -> bytes:
    """The hive with ``value`` written ``at`` bytes into the payload of the cell at ``cell``."""
    out = bytearray(data)
    start = 4096 + cell + 4 + at
    out[start:start + len(value)] = value
    return bytes(out)


def cell_offset(file_offset: int) -> int:
    """The cell offset of a cell whose signature is at ``file_offset`` (pyregf's offsets)."""
    return file_offset - 4096 - 4


# --- .reg text ----------------------------------------------------------------------------------


def _hex(data: bytes) -> str:
    return ",".join(f"{b:02x}" for b in data)


def _utf16z(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def encode_value(value: Value) -> tuple[int, bytes]:
    """The registry type and data bytes of one test value."""
    if isinstance(value, bool):
        raise TypeError("a registry value cannot be a bool; use 0 or 1")
    if isinstance(value, int):
        return REG_DWORD, struct.pack("<I", value)
    if isinstance(value, str):
        return REG_SZ, _utf16z(value)
    if isinstance(value, list):
        return REG_MULTI_SZ, b"".join(_utf16z(s) for s in value) + b"\0\0"
    if isinstance(value, bytes):
        return REG_BINARY, value
    if isinstance(value, Qword):
        return REG_QWORD, struct.pack("<Q", value.value)
    if isinstance(value, ExpandSz):
        return REG_EXPAND_SZ, _utf16z(value.value)
    return value.type, value.data


def _quote(name: str) -> str:
    if any(c in name for c in "\r\n\0"):
        raise ValueError(f"a .reg file cannot carry the name {name!r}")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_key(path: str) -> None:
    if any(c in path for c in "\r\n\0[]") or any(not p for p in path.split("\\")):
        raise ValueError(f"a .reg file cannot carry the key {path!r}")


def reg_text(prefix: str, keys: dict[str, dict[str, Value]]) -> str:
    """The ``.reg`` text that makes ``keys`` under ``prefix``, every parent listed first."""
    wanted: dict[str, dict[str, Value]] = {}
    for path, values in keys.items():
        path = path.strip("\\")
        if path:
            _check_key(path)
        parts = path.split("\\") if path else []
        for depth in range(1, len(parts)):
            wanted.setdefault("\\".join(parts[:depth]), {})
        wanted.setdefault(path, {}).update(values)
    lines = ["Windows Registry Editor Version 5.00", ""]
    for path in sorted(wanted, key=lambda p: (p.count("\\"), p.lower())) if wanted else []:
        lines.append(f"[{prefix}\\{path}]" if path else f"[{prefix}]")
        for name, value in wanted[path].items():
            kind, data = encode_value(value)
            lines.append(f"{_quote(name) if name else '@'}=hex({kind:x}):{_hex(data)}")
        lines.append("")
    return "\n".join(lines) + "\n"


def hive(prefix: str, keys: dict[str, dict[str, Value]]) -> bytes:
    """A hive file with ``keys`` (paths relative to the root, backslash-separated) and their
    values; parents are made automatically, and ``{}`` makes just the key. ``prefix`` is the
    hive's place in the registry (``HKEY_LOCAL_MACHINE\\SYSTEM``); it is not stored."""
    text = reg_text(prefix.rstrip("\\"), keys)
    with tempfile.TemporaryDirectory(prefix="hive-") as tmp:
        path = Path(tmp) / "hive"
        path.write_bytes(empty_hive())
        done = subprocess.run(["hivexregedit", "--merge", "--prefix", prefix.rstrip("\\"),
                               os.fspath(path)], input=text.encode("utf-8"),
                              capture_output=True, check=False, timeout=60)
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()[:3]
            raise HiveBuildError("hivexregedit --merge failed: " + " / ".join(message))
        return path.read_bytes()


def export(data: bytes, prefix: str = "HKEY_LOCAL_MACHINE\\TEST") -> str:
    """``hivexregedit --export`` of the whole hive (the oracle the tests compare against),
    its strings as ``str:``/``hex(N):`` exactly as hivexregedit prints them."""
    with tempfile.TemporaryDirectory(prefix="hive-") as tmp:
        path = Path(tmp) / "hive"
        path.write_bytes(data)
        done = subprocess.run(["hivexregedit", "--export", "--prefix", prefix, os.fspath(path),
                               "\\"], capture_output=True, check=True, timeout=60)
    return "\n".join(_decode_line(line) for line in done.stdout.split(b"\n"))


def _decode_line(line: bytes) -> str:
    """Perl prints a line as Latin-1 unless it holds a character over U+00FF, then as UTF-8."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def parse_export(text: str) -> dict[str, dict[str, tuple[int, bytes]]]:
    """The keys (paths below the root, ``""`` for the root) and their values' types and data
    from :func:`export`'s text."""
    keys: dict[str, dict[str, tuple[int, bytes]]] = {}
    current: dict[str, tuple[int, bytes]] = {}
    for line in text.splitlines():
        if line.startswith("["):
            path = line[1:-1].split("\\", 2)[2] if line.count("\\") >= 2 else ""
            current = keys.setdefault(path.strip("\\"), {})
        elif line.startswith(("@=", '"')):
            name, rest = _split_value(line)
            current[name] = _parse_data(rest)
    return keys


def _split_value(line: str) -> tuple[str, str]:
    if line.startswith("@="):
        return "", line[2:]
    out, index = [], 1
    while line[index] != '"':
        if line[index] == "\\":
            index += 1
        out.append(line[index])
        index += 1
    return "".join(out), line[index + 2:]


def _parse_data(text: str) -> tuple[int, bytes]:
    if text.startswith("dword:"):
        return REG_DWORD, struct.pack("<I", int(text[6:], 16))
    kind, _, digits = text.partition(":")
    number = REG_BINARY if kind == "hex" else int(kind[4:-1], 16)
    return number, bytes.fromhex(digits.replace(",", ""))
