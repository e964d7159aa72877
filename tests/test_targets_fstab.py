"""fstab read as util-linux reads it, with ``findmnt --tab-file`` (libmount) as the oracle.

An fstab is image content: odd escapes (``\\089``, a bare ``\\0``), bytes that are not UTF-8 and
malformed lines must give what libmount gives, never an exception, whether the file is parsed
alone or while the image target mounts what it names.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import targets_images as ti
from vmimage.facts import Facts
from vmimage.targets.fstab import parse_fstab, unmangle
from vmimage.targets.image import ImageTarget

needs_findmnt = pytest.mark.skipif(shutil.which("findmnt") is None, reason="no findmnt")
_PAIR = re.compile(r'(\w+)="((?:[^"\\]|\\x[0-9a-fA-F]{2})*)"')

ODD_FSTAB = (
    "# odd but real\n"
    "UUID=abc /mnt\\089x ext4 defaults 0 2\n"  # 8 and 9 are not octal: kept as written
    "LABEL=a\\040b /srv/with\\040space\\0 xfs rw\\054noatime 0 0\n"  # \0 alone stays
    "/dev/sdb1 /caf\\303\\251 ext4 defaults\n"  # two escaped bytes: UTF-8 é
    "/x /big\\777 ext4\n"  # 0o777 keeps its low byte, 0xFF: not UTF-8
    "/y /tab\\011x\\12 swap sw 0 0\n"  # \12 is two digits: literal
    "\t/dev/z\t/z\tauto\r\n"  # tabs, and a carriage return libmount drops
    "/onlytwo /f\n"  # too few fields: ignored
    "/bad /dump ext4 rw x\n"  # a dump field that is not a number: ignored
    "/nul\0ignored /after ext4\n"  # a NUL byte: libmount ignores the line
    "\\\\101 /back\\\\\\\\ ext4 rw 1 2 trailing\n"
)


def findmnt(fstab: Path) -> list[tuple[str, str, str, str]]:
    """What libmount parses: (source, target, type, options), bytes decoded as read_text does."""
    done = subprocess.run(["findmnt", "--fstab", "--tab-file", str(fstab), "-P", "-o",
                           "SOURCE,TARGET,FSTYPE,OPTIONS"], capture_output=True, check=False)
    out = []
    for line in done.stdout.decode("ascii").splitlines():
        fields = {}
        for key, value in _PAIR.findall(line):
            raw = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)
            fields[key] = raw.encode("latin-1").decode("utf-8", "replace")
        out.append((fields["SOURCE"], fields["TARGET"], fields["FSTYPE"], fields["OPTIONS"]))
    return out


def ours(text: str) -> list[tuple[str, str, str, str]]:
    return [(e.spec, e.file, e.vfstype, ",".join(e.options)) for e in parse_fstab(text)]


@needs_findmnt
def test_odd_escapes_as_findmnt_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "fstab"
    path.write_bytes(ODD_FSTAB.encode())
    expected = [(s, t, f, o or "defaults") for s, t, f, o in findmnt(path)]
    assert ours(path.read_bytes().decode("utf-8", "replace")) == expected
    entries = parse_fstab(ODD_FSTAB)
    assert [e.line for e in entries] == [2, 3, 4, 5, 6, 7, 11]
    assert entries[0].file == "/mnt\\089x" and entries[1].file == "/srv/with space\\0"
    assert entries[2].file == "/café" and entries[3].file == "/big\ufffd"
    assert entries[1].options == ("rw", "noatime") and entries[6].spec == "\\A"


def test_unmangle_never_raises_on_any_backslash_run() -> None:
    for text in ("\\", "\\0", "\\08", "\\089", "\\0899", "\\9999", "\\٣٣٣", "a\\", "\\\\\\"):
        assert unmangle(text) == text  # none of these is a backslash and three octal digits
    assert unmangle("\\101\\x41\\1010") == "A\\x41A0"


_FSTAB_CHARS = st.sampled_from([*" \t\\#01234789abUL=/\r\0é,", "\\040", "\\303", "\\251"])
_LINES = st.lists(st.lists(_FSTAB_CHARS, max_size=40).map("".join), max_size=8)


@needs_findmnt
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_LINES)
def test_any_text_parses_as_findmnt_parses_it(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "fstab"
    text = "\n".join(lines) + "\n"
    path.write_bytes(text.encode())
    expected = [(s, t, f, o or "defaults") for s, t, f, o in findmnt(path)]
    assert ours(text) == expected


# ---- through the image target ---------------------------------------------------------------

def test_image_with_odd_fstab_opens_and_mounts_escaped_points(tmp_path: Path) -> None:
    """The root's fstab once crashed the image target on ``\\089`` (int('089', 8))."""
    root, data = tmp_path / "root", tmp_path / "data"
    (root / "etc").mkdir(parents=True)
    (root / "srv/with space").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\n")
    (root / "etc/fstab").write_text(
        "LABEL=root / ext4 defaults 0 1\n"
        "LABEL=data /srv/with\\040space ext4 defaults 0 2\n"
        "UUID=0000 /mnt\\089x ext4 defaults 0 2\n"
        "/swap\\0file none swap sw 0 0\n")
    (data / "inside").mkdir(parents=True)
    (data / "inside/file").write_text("on the data partition\n")
    disk = ti.blank(tmp_path / "disk.raw", 20 * ti.MiB)
    ti.sfdisk(disk, "label: gpt\nstart=2048, size=16384, type=L\nstart=18432, type=L\n")
    ti.mkfs_ext(disk, ti.MiB, 8 * ti.MiB, root, "ext4", "root")
    ti.mkfs_ext(disk, 9 * ti.MiB, 8 * ti.MiB, data, "ext4", "data")
    with ImageTarget(disk) as target:
        assert [e.file for e in target.fstab] == ["/", "/srv/with space", "/mnt\\089x", "none"]
        assert sorted(target.mounts()) == ["/", "/srv/with space"]
        assert target.read_text("/srv/with space/inside/file") == "on the data partition\n"
        assert any("/mnt\\089x" in n for n in target.layout().notes)
        facts = Facts(target)
        assert [e.spec for e in facts.fstab if e.is_swap] == ["/swap\\0file"]
