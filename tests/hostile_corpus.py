"""A corpus of hostile inputs, made by the tools that make such files in the wild.

    python3 -m tests.hostile_corpus DIR     # write the corpus into DIR (it must not exist)

Disk images (a corrupt footer, a BAT past the end, a 60 TiB qcow2 of 200 KiB, a VMDK whose
extent is a host file or a symlink out, GPT headers with absurd entry counts, an MBR that
loops, FIFOs, links to /etc/passwd and /dev/zero...), offer manifests (a YAML bomb, a
5,000-digit integer, a lone surrogate, bidi overrides, a password in a URL, a FIFO...) and URLs.
tests/test_hostile_corpus.py runs every command on every one of them: one line on stderr and
exit 2, or a finding; never a traceback, a hang or a changed input.

Every file of the corpus lies in DIR; ``canary`` files lie beside DIR, outside it, and nothing
vmimage does with the corpus may open them.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KiB, MiB, GiB = 1024, 1024**2, 1024**3
CANARY = "canary-secret.txt"
#: The disk images' role in the corpus: what commands they are given to.
DISK, MANIFEST = "disk", "manifest"


@dataclass(frozen=True)
class Item:
    """One hostile input: its file name in the corpus and what kind of input it is."""

    name: str
    kind: str


def _run(*cmd: str | os.PathLike[str]) -> None:
    subprocess.run([os.fspath(c) for c in cmd], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL, timeout=120)


def _footer(size: int, disk_type: int = 2, data_offset: int = 0xFFFFFFFFFFFFFFFF,
            fix_checksum: bool = True) -> bytes:
    """A VHD footer (big-endian, as the specification lays it out)."""
    raw = bytearray(512)
    struct.pack_into(">8sIIQI4sI4sQQHBBII16sB", raw, 0, b"conectix", 2, 0x00010000,
                     data_offset, 0, b"win ", 0x000A0000, b"Wi2k", size, size, 65535, 16, 255,
                     disk_type, 0, os.urandom(16), 0)
    if fix_checksum:
        struct.pack_into(">I", raw, 64, ~sum(raw) & 0xFFFFFFFF)
    return bytes(raw)


def _dynamic(bat_offset: int, entries: int, size: int = 64 * MiB) -> bytes:
    """A dynamic VHD: footer copy, dynamic header pointing at a BAT, footer."""
    footer = _footer(size, disk_type=3, data_offset=512)
    header = bytearray(1024)
    struct.pack_into(">8sQQIIII", header, 0, b"cxsparse", 0xFFFFFFFFFFFFFFFF, bat_offset,
                     0x00010000, entries, 2 * MiB, 0)
    struct.pack_into(">I", header, 36, ~sum(header) & 0xFFFFFFFF)
    bat = b"\xff" * 512
    return footer + bytes(header) + bat + footer


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _manifest(path: Path, title: str = "Contoso Web", version: str = '"1.0.0"',
              url: str = "https://acct.blob.core.windows.net/vhds/os.vhd",
              extra: str = "") -> None:
    path.write_text(textwrap.dedent(f"""\
        publisher: contoso
        offer: {{id: contoso-web, title: {title}}}
        storage: {{container_url: "https://acct.blob.core.windows.net/vhds"}}
        skus:
          - id: web
            title: Web
            summary: A web server.
            os: {{family: linux, type: debian, friendly_name: "Debian 12"}}
            recommended_sizes: [A1, A2, A3]
            versions:
              - version: {version}
                os_disk: {{url: "{url}"}}
        """) + extra, encoding="utf-8")


#: name -> maker, for every hostile disk image (names known without making anything).
DISK_FILES: dict[str, Callable[[Path], object]] = {}


def _declare_disks() -> None:
    def add(name: str, make: Callable[[Path], object]) -> None:
        DISK_FILES[name] = make

    add("empty.vhd", lambda p: p.write_bytes(b""))
    add("one-byte.raw", lambda p: p.write_bytes(b"\0"))
    add("text.raw", lambda p: p.write_text("# not a disk\n"))
    add("zeros-1k.raw", lambda p: p.write_bytes(bytes(1024)))
    add("random-1m.raw", lambda p: p.write_bytes(os.urandom(MiB)))
    add("fifo.raw", lambda p: os.mkfifo(p))
    add("dir.vhd", lambda p: p.mkdir())
    add("link-passwd.vhd", lambda p: p.symlink_to("/etc/passwd"))
    add("link-canary.vhd", lambda p: p.symlink_to(Path("..") / CANARY))
    add("link-loop.vhd", lambda p: p.symlink_to(p.name))
    add("link-devzero.raw", lambda p: p.symlink_to("/dev/zero"))
    add("sparse-1t.raw", lambda p: _sparse(p, 1024 * GiB))
    add("footer-bad-checksum.vhd", lambda p: _write(p, bytes(MiB) + bytes(
        b ^ (0xFF if i == 70 else 0) for i, b in enumerate(_footer(MiB)))))
    add("footer-size-zero.vhd", lambda p: _write(p, bytes(MiB) + _footer(0)))
    add("footer-huge-size.vhd", lambda p: _write(p, bytes(MiB) + _footer(2**63 - 512)))
    add("dynamic-bat-past-eof.vhd", lambda p: _write(p, _dynamic(1 << 40, 32)))
    add("dynamic-bat-4g-entries.vhd", lambda p: _write(p, _dynamic(1536, 0xFFFFFFFF)))
    add("qcow2-60t.qcow2", lambda p: _run("qemu-img", "create", "-q", "-f", "qcow2", p, "60T"))
    add("vmdk-extent-passwd.vmdk", lambda p: p.write_text(
        '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
        'createType="monolithicFlat"\nRW 2048 FLAT "/etc/passwd" 0\n'
        f'RW 2048 FLAT "../{CANARY}" 0\nddb.virtualHWVersion = "4"\n'))
    add("vmdk-extent-link.vmdk", _vmdk_extent_link)
    add("gpt-65536-entries.vhd", lambda p: _gpt(p, 65536, 512))
    add("gpt-4g-entries.vhd", lambda p: _gpt(p, 0xFFFFFFFF, 0xFFFFFFFF))
    add("gpt-entry-size-8.vhd", lambda p: _gpt(p, 128, 8))
    add("mbr-loop.vhd", _mbr_loop)
    add("vhdx-truncated.vhdx", _vhdx_truncated)


def _sparse(p: Path, size: int) -> None:
    with p.open("wb") as fh:
        fh.truncate(size)


def _vmdk_extent_link(p: Path) -> None:
    flat = p.with_name("vmdk-extent-link-flat.bin")
    flat.symlink_to(Path("..") / CANARY)
    p.write_text('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
                 f'createType="monolithicFlat"\nRW 2048 FLAT "{flat.name}" 0\n')


def _gpt(p: Path, entries: int, entry_size: int) -> None:
    size = 64 * MiB
    with p.open("wb") as fh:
        fh.truncate(size)
    subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(p)], check=True,
                   capture_output=True, input=b"label: gpt\nstart=2048, type=L\n", timeout=60)
    with p.open("r+b") as fh:
        fh.seek(512)
        header = bytearray(fh.read(92))
        struct.pack_into("<II", header, 80, entries, entry_size)
        struct.pack_into("<I", header, 16, 0)
        struct.pack_into("<I", header, 16, zlib.crc32(bytes(header)) & 0xFFFFFFFF)
        fh.seek(512)
        fh.write(header)
        fh.seek(size)
        fh.write(_footer(size))


def _mbr_loop(p: Path) -> None:
    """An extended partition whose EBR's next link points back at itself."""
    size = 64 * MiB
    mbr = bytearray(512)
    struct.pack_into("<B3sB3sII", mbr, 446, 0, b"\0\0\0", 0x05, b"\0\0\0", 2048, 4096)
    mbr[510:512] = b"\x55\xaa"
    ebr = bytearray(512)
    struct.pack_into("<B3sB3sII", ebr, 446, 0, b"\0\0\0", 0x83, b"\0\0\0", 63, 1000)
    struct.pack_into("<B3sB3sII", ebr, 462, 0, b"\0\0\0", 0x05, b"\0\0\0", 0, 4096)
    ebr[510:512] = b"\x55\xaa"
    with p.open("wb") as fh:
        fh.truncate(size)
        fh.write(mbr)
        fh.seek(2048 * 512)
        fh.write(ebr)
        fh.seek(size)
        fh.write(_footer(size))


def _vhdx_truncated(p: Path) -> None:
    raw = p.with_suffix(".src")
    with raw.open("wb") as fh:
        fh.truncate(64 * MiB)
        fh.seek(3 * MiB)
        fh.write(os.urandom(MiB))
    _run("qemu-img", "convert", "-q", "-f", "raw", "-O", "vhdx", raw, p)
    raw.unlink()
    with p.open("r+b") as fh:
        fh.truncate(os.fstat(fh.fileno()).st_size // 2)


#: name -> maker, for every hostile manifest.
MANIFEST_FILES: dict[str, Callable[[Path], object]] = {}


def _declare_manifests() -> None:
    def add(name: str, make: Callable[[Path], object]) -> None:
        MANIFEST_FILES[name] = make

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9))
    add("yaml-bomb.yaml", lambda p: p.write_text(bomb))
    add("deep-nesting.yaml", lambda p: p.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n"))
    add("huge-int.yaml", lambda p: _manifest(p, version="1" * 5000))
    add("lone-surrogate.yaml", lambda p: _manifest(p, title='"Contoso \\ud800 Web"'))
    add("bidi-title.yaml", lambda p: _manifest(p, title='"Contoso \u202egnp.exe"'))
    add("escape-title.yaml", lambda p: _manifest(p, title='"Contoso \\e]52;c;SGVsbG8=\\a"'))
    add("userinfo-url.yaml", lambda p: _manifest(
        p, url="https://user:hunter2@acct.blob.core.windows.net/vhds/os.vhd"))
    add("local-file-passwd.yaml", _local_link_manifest)
    add("binary.yaml", lambda p: p.write_bytes(os.urandom(4096)))
    add("big.yaml", lambda p: p.write_text("k: v\n" * (5 * MiB // 5)))
    add("fifo.yaml", lambda p: os.mkfifo(p))
    add("link-canary.yaml", lambda p: p.symlink_to(Path("..") / CANARY))


def _local_link_manifest(p: Path) -> None:
    """A manifest whose OS disk is a local file that is a link to a host file."""
    link = p.with_name("local-os-link.vhd")
    link.symlink_to("/etc/passwd")
    _manifest(p)
    p.write_text(p.read_text().replace(
        '{url: "https://acct.blob.core.windows.net/vhds/os.vhd"}', f"{{file: {link.name}}}"))


#: URLs given to the URL-taking commands (sas verify, upload).
URLS = (
    "http://[::1/vhds/os.vhd",
    "https://user:hunter2@acct.blob.core.windows.net/vhds/os.vhd?sv=1&sr=b&sp=r&sig=c2VjcmV0",
    "",
    "ftp://acct.blob.core.windows.net/vhds/os.vhd",
    "https://acct.blob.core.windows.net/vhds/os.vhd?" + "x=" + "a" * 100_000,
    "https://acct.blob.core.windows.net/vhds/\x1b]52;c;SGVsbG8=\x07.vhd?sig=abc",
    "https://acct.blob.core.windows.net:99999/vhds/os.vhd",
)


def make_corpus(d: Path) -> list[Item]:
    """Write every hostile file into the new directory ``d``; the canary beside it."""
    d.mkdir()
    (d.parent / CANARY).write_text("if you can read this, vmimage opened a file it must not\n")
    items = []
    for kind, table in ((DISK, DISK_FILES), (MANIFEST, MANIFEST_FILES)):
        for name, make in table.items():
            make(d / name)
            items.append(Item(name, kind))
    return items


_declare_disks()
_declare_manifests()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python3 -m tests.hostile_corpus DIR")
    for item in make_corpus(Path(sys.argv[1])):
        print(item.kind, item.name)
