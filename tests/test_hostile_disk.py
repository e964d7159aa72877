"""Issue 17, the disk layer: hostile images and hostile file systems, through the real CLI.

Each test here failed before its fix (data destroyed, a host file copied, a hang, a file left
grown, a traceback). Every refusal must be one line ``vmimage: <input>: <problem>``, exit 2,
with the input byte-identical and nothing left behind in the output's directory. Images are
made by the real tools (sfdisk, mkfs.ext4, qemu-img, qemu-io); only the hostile fields are
then rewritten, with their CRCs and checksums made right again, as an attacker would.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fuzzing import run_bounded
from tests.vhd_util import (
    Extent,
    GiB,
    MiB,
    file_state,
    make_sparse,
    read_footer,
    run,
    write_at,
)
from vmimage.disk import vhd

SECTOR = 512
LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
TiB = 1024 * GiB
_ENV = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}


def cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python3 -m vmimage ARGS`` with no standard input; a hang fails the test."""
    try:
        return subprocess.run([sys.executable, "-m", "vmimage", *map(str, args)],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env=_ENV, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"vmimage {' '.join(map(str, args))} hung for {timeout} s")


def refused(res: subprocess.CompletedProcess[str], name: object, *fragments: str) -> None:
    """Exit 2, one line naming ``name``, no traceback, each fragment in the message."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith(f"vmimage: {name}: "), res.stderr
    for fragment in fragments:
        assert fragment in res.stderr, res.stderr


def listing(directory: Path) -> set[str]:
    """The names in a directory, hidden temporaries included."""
    return set(os.listdir(directory))


# --- 1. resize trusts no GPT: both copies validated before any write -----------------------


@pytest.fixture(scope="module")
def ext4_gpt_vhd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixed VHD of 64 MiB: GPT by sfdisk, an ext4 root with files by mkfs.ext4 -d."""
    work = tmp_path_factory.mktemp("gptdisk")
    tree = work / "tree"
    (tree / "etc").mkdir(parents=True)
    for i in range(40):
        (tree / "etc" / f"file{i}").write_bytes(os.urandom(200_000))
    raw = make_sparse(work / "disk.raw", 64 * MiB, [])
    table = f"label: gpt\nstart=2048, type={LINUX}\n"
    subprocess.run(["sfdisk", "-q", str(raw)], input=table, text=True, check=True,
                   capture_output=True)
    part_kib = (64 * MiB - MiB - 34 * SECTOR) // 1024
    run(["mkfs.ext4", "-q", "-F", "-E", f"offset={MiB},lazy_journal_init=1", "-d", str(tree),
         str(raw), f"{part_kib}k"])
    out = work / "disk.vhd"
    res = cli("vhd", "convert", raw, out)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture
def gpt_vhd(ext4_gpt_vhd: Path, tmp_path: Path) -> Path:
    """A private sparse copy of the ext4 GPT disk."""
    copy = tmp_path / "disk.vhd"
    subprocess.run(["cp", "--sparse=always", str(ext4_gpt_vhd), str(copy)], check=True)
    return copy


def _rewrite_header(path: Path, lba: int, fix_entries_crc: bool = True,
                    fix_header_crc: bool = True, **fields: int) -> None:
    """Set fields of the GPT header at ``lba`` (offsets per the UEFI spec), then make its CRCs
    right again, as an attacker would, so only the sizes and places can give it away."""
    offsets = {"header_size": (12, "<I"), "my_lba": (24, "<Q"), "alternate_lba": (32, "<Q"),
               "entries_lba": (72, "<Q"), "num_entries": (80, "<I"), "entry_size": (84, "<I")}
    with open(path, "r+b") as f:
        f.seek(lba * SECTOR)
        raw = bytearray(f.read(SECTOR))
        for name, value in fields.items():
            offset, fmt = offsets[name]
            struct.pack_into(fmt, raw, offset, value)
        entries_lba, num, size = struct.unpack_from("<QII", raw, 72)
        if fix_entries_crc and num * size <= 64 * MiB:
            f.seek(entries_lba * SECTOR)
            struct.pack_into("<I", raw, 88, zlib.crc32(f.read(num * size)))
        if fix_header_crc:
            header_size = min(struct.unpack_from("<I", raw, 12)[0], SECTOR)
            struct.pack_into("<I", raw, 16, 0)
            struct.pack_into("<I", raw, 16, zlib.crc32(bytes(raw[:header_size])))
        else:
            raw[40] ^= 1  # first usable LBA changed, CRC left as it was
        f.seek(lba * SECTOR)
        f.write(raw)


HOSTILE_GPTS = {
    # The case: 65,536 entries of 512 bytes; zeroed 32 MiB of the root, exit 0.
    "32MiB-entry-array": ({"num_entries": 65536, "entry_size": 512}, True, "entries"),
    # 0xFFFFFFFF x 0xFFFFFFFF: grew the file, moved the footer, then an OverflowError.
    "overflowing-array": ({"num_entries": 0xFFFFFFFF, "entry_size": 0xFFFFFFFF}, True,
                          "entry size"),
    "entry-size-8": ({"entry_size": 8, "num_entries": 2048}, True, "entry size"),
    "entry-size-200": ({"entry_size": 200, "num_entries": 64}, True, "entry size"),
    "header-crc-wrong": ({}, False, "CRC"),
    "array-past-the-end": ({"entries_lba": 64 * MiB // SECTOR - 2}, True, "entry array"),
    "header-size-huge": ({"header_size": 0xFFFF}, True, "header size"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_GPTS))
def test_resize_refuses_a_hostile_primary_gpt(gpt_vhd: Path, case: str) -> None:
    """Before the fix the 32 MiB array destroyed the ext4 root and the overflow left the
    file grown with a traceback; now nothing is written and the message says why."""
    fields, fix_crc, fragment = HOSTILE_GPTS[case]
    _rewrite_header(gpt_vhd, 1, fix_header_crc=fix_crc, **fields)
    before = file_state(gpt_vhd)
    refused(cli("vhd", "resize", gpt_vhd, "--size", "256M"), gpt_vhd, "primary GPT",
            fragment, "refusing to resize")
    assert file_state(gpt_vhd) == before


def test_resize_refuses_a_corrupt_backup_gpt(gpt_vhd: Path) -> None:
    """The backup is validated too: its header CRC is wrong here."""
    last = (gpt_vhd.stat().st_size - vhd.FOOTER_SIZE) // SECTOR - 1
    _rewrite_header(gpt_vhd, last, fix_header_crc=False)
    before = file_state(gpt_vhd)
    refused(cli("vhd", "resize", gpt_vhd, "--size", "128M"), gpt_vhd, "backup GPT", "CRC")
    assert file_state(gpt_vhd) == before


def test_resize_refuses_a_backup_array_over_the_partition(gpt_vhd: Path) -> None:
    """A backup whose array (CRCs right) lies inside the partition: moving it would zero it."""
    last = (gpt_vhd.stat().st_size - vhd.FOOTER_SIZE) // SECTOR - 1
    _rewrite_header(gpt_vhd, last, entries_lba=last - 4096)
    before = file_state(gpt_vhd)
    refused(cli("vhd", "resize", gpt_vhd, "--size", "128M"), gpt_vhd, "backup GPT",
            "entry array")
    assert file_state(gpt_vhd) == before


def test_resize_still_grows_a_valid_gpt_disk(gpt_vhd: Path, tmp_path: Path) -> None:
    """The validation accepts what sfdisk writes: the grown disk's GPT and ext4 are sound."""
    res = cli("vhd", "resize", gpt_vhd, "--size", "128M")
    assert res.returncode == 0, res.stderr
    view = tmp_path / "view.raw"
    subprocess.run(["cp", "--sparse=always", str(gpt_vhd), str(view)], check=True)
    os.truncate(view, 128 * MiB)
    verify = run(["sfdisk", "--verify", str(view)], check=False)
    assert "No errors detected" in verify.stdout + verify.stderr
    fsck = run(["e2fsck", "-fn", f"{view}?offset={MiB}"], check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


# --- 2. VMDK extents stay inside the descriptor's directory --------------------------------


SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- not for the VHD\n"


@pytest.fixture
def flat_vmdk(tmp_path: Path) -> tuple[Path, Path]:
    """A monolithicFlat VMDK by qemu-img (descriptor + flat extent), and a host "secret" of
    the extent's size in another directory."""
    disk = tmp_path / "disk"
    disk.mkdir()
    desc = disk / "d.vmdk"
    run(["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", str(desc),
         "1M"])
    secret = tmp_path / "host" / "id_rsa"
    secret.parent.mkdir()
    secret.write_bytes((SECRET * (MiB // len(SECRET) + 1))[:MiB])
    return desc, secret


def _set_extent(desc: Path, name: str) -> None:
    text = desc.read_text()
    start = text.index('FLAT "') + len('FLAT "')
    end = text.index('"', start)
    desc.write_text(text[:start] + name + text[end:])


def _assert_refused_vmdk(desc: Path, out: Path, *fragments: str) -> None:
    before = listing(out.parent)
    refused(cli("vhd", "convert", desc, out, timeout=30), desc, *fragments)
    assert listing(out.parent) == before
    assert not out.exists()


def test_flat_extent_symlink_to_a_host_file_is_refused(flat_vmdk: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    """Before: the SSH key was copied into the VHD, exit 0."""
    desc, secret = flat_vmdk
    flat = desc.with_name("d-flat.vmdk")
    flat.unlink()
    flat.symlink_to(secret)
    _assert_refused_vmdk(desc, tmp_path / "out.vhd", "outside the descriptor's directory")


@pytest.mark.parametrize("kind", ["absolute", "dotdot"])
def test_flat_extent_path_out_of_the_directory_is_refused(flat_vmdk: tuple[Path, Path],
                                                          tmp_path: Path, kind: str) -> None:
    """Defence in depth: libvmdk 20260714 keeps only the base name (so this passed before),
    but the rule is ours to keep whatever the binding does."""
    desc, secret = flat_vmdk
    _set_extent(desc, str(secret) if kind == "absolute" else "../host/id_rsa")
    _assert_refused_vmdk(desc, tmp_path / "out.vhd", "extent")


def test_flat_extent_naming_a_device_is_refused(flat_vmdk: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    desc, _ = flat_vmdk
    flat = desc.with_name("d-flat.vmdk")
    flat.unlink()
    os.mknod(flat, 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's numbers, inside the dir
    _assert_refused_vmdk(desc, tmp_path / "out.vhd", "not a regular file")


def test_flat_extent_fifo_does_not_hang(flat_vmdk: tuple[Path, Path], tmp_path: Path) -> None:
    desc, _ = flat_vmdk
    flat = desc.with_name("d-flat.vmdk")
    flat.unlink()
    os.mkfifo(flat)
    _assert_refused_vmdk(desc, tmp_path / "out.vhd", "not a regular file")


def test_sparse_extent_symlink_out_is_refused(tmp_path: Path) -> None:
    """twoGbMaxExtentSparse: a SPARSE extent that is a link to another VMDK elsewhere."""
    disk = tmp_path / "disk"
    disk.mkdir()
    desc = disk / "d.vmdk"
    run(["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse",
         str(desc), "4M"])
    other = tmp_path / "elsewhere.vmdk"
    run(["qemu-img", "create", "-q", "-f", "vmdk", str(other), "4M"])
    extent = desc.with_name("d-s001.vmdk")
    extent.unlink()
    extent.symlink_to(other)
    _assert_refused_vmdk(desc, tmp_path / "out.vhd", "outside the descriptor's directory")


def test_flat_extent_link_inside_the_directory_still_converts(flat_vmdk: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    """A link that stays inside the directory is an ordinary layout: it converts."""
    desc, _ = flat_vmdk
    flat = desc.with_name("d-flat.vmdk")
    flat.rename(desc.with_name("real-flat.vmdk"))
    flat.symlink_to("real-flat.vmdk")
    assert cli("vhd", "convert", desc, tmp_path / "out.vhd").returncode == 0


# --- 3. no hangs: FIFOs as inputs, a qcow2 that claims terabytes ---------------------------


@pytest.mark.parametrize("command", [("vhd", "inspect"), ("vhd", "convert", "{}", "out.vhd"),
                                     ("vhd", "convert", "--in-place"),
                                     ("vhd", "resize", "{}", "--size", "64M"),
                                     ("vhd", "validate", "{}", "--role", "data")])
def test_fifo_input_is_refused_without_hanging(tmp_path: Path,
                                               command: tuple[str, ...]) -> None:
    fifo = tmp_path / "in.vhd"
    os.mkfifo(fifo)
    args = [a.replace("{}", str(fifo)).replace("out.vhd", str(tmp_path / "out.vhd"))
            for a in command]
    if "{}" not in command:
        args.append(str(fifo))
    refused(cli(*args, timeout=20), fifo, "FIFO")
    assert listing(tmp_path) == {"in.vhd"}


def test_qcow2_claiming_terabytes_converts_only_its_clusters(tmp_path: Path) -> None:
    """A 10 TiB qcow2 holding two clusters: the old zero scan read 10 TiB through libqcow
    (hours); walking the L1/L2 tables reads two clusters. The data lands where it belongs."""
    img = tmp_path / "big.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "10T"])
    run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 5T 64k", "-c", "write -P 0xcd 0 4k",
         str(img)])
    out = tmp_path / "out.vhd"
    res = cli("vhd", "convert", img, out, timeout=60)
    assert res.returncode == 0, res.stderr
    assert read_footer(out).current_size == 10 * TiB
    with open(out, "rb") as f:
        assert os.pread(f.fileno(), 64 * 1024, 5 * TiB) == b"\xab" * 64 * 1024
        assert os.pread(f.fileno(), 4096, 0) == b"\xcd" * 4096
        assert os.pread(f.fileno(), 4096, 5 * TiB - 4096) == bytes(4096)
    assert out.stat().st_blocks * 512 < MiB


def test_sparse_vmdk_claiming_terabytes_converts_only_its_grains(tmp_path: Path) -> None:
    """The same for a monolithic sparse VMDK: its grain tables are walked, not 10 TiB."""
    img = tmp_path / "big.vmdk"
    run(["qemu-img", "create", "-q", "-f", "vmdk", str(img), "10T"])
    run(["qemu-io", "-f", "vmdk", "-c", "write -P 0xab 5T 64k", "-c", "write -P 0xcd 0 4k",
         str(img)])
    out = tmp_path / "out.vhd"
    res = cli("vhd", "convert", img, out, timeout=60)
    assert res.returncode == 0, res.stderr
    with open(out, "rb") as f:
        assert os.pread(f.fileno(), 64 * 1024, 5 * TiB) == b"\xab" * 64 * 1024
        assert os.pread(f.fileno(), 4096, 0) == b"\xcd" * 4096
    assert out.stat().st_blocks * 512 < MiB


def test_vhdx_claiming_terabytes_converts_only_its_blocks(tmp_path: Path) -> None:
    """The same for a VHDX: its BAT is walked, not 10 TiB through libvhdi."""
    img = tmp_path / "big.vhdx"
    run(["qemu-img", "create", "-q", "-f", "vhdx", str(img), "10T"])
    run(["qemu-io", "-f", "vhdx", "-c", "write -P 0xab 5T 64k", "-c", "write -P 0xcd 0 4k",
         str(img)])
    out = tmp_path / "out.vhd"
    res = cli("vhd", "convert", img, out, timeout=60)
    assert res.returncode == 0, res.stderr
    with open(out, "rb") as f:
        assert os.pread(f.fileno(), 64 * 1024, 5 * TiB) == b"\xab" * 64 * 1024
        assert os.pread(f.fileno(), 4096, 0) == b"\xcd" * 4096
    assert out.stat().st_blocks * 512 < MiB


def test_qcow2_tables_claiming_more_than_the_file_are_refused(tmp_path: Path) -> None:
    """Every L1 entry pointing at the one L2 table: a 1 MiB file claiming 10 TiB of data."""
    img = tmp_path / "loop.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "10T"])
    run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 64k", str(img)])
    raw = img.read_bytes()
    l1_size, l1_offset = struct.unpack_from(">IQ", raw, 36)
    (first,) = struct.unpack_from(">Q", raw, l1_offset)
    write_at(img, l1_offset, struct.pack(">Q", first) * l1_size)
    before = file_state(img)
    refused(cli("vhd", "convert", img, tmp_path / "out.vhd", timeout=60), img, "claim",
            "L2")
    assert file_state(img) == before
    assert listing(tmp_path) == {"loop.qcow2"}


# --- 4. bounded memory: a BAT of 2**32 - 1 entries -----------------------------------------


def test_huge_bat_is_not_materialised(tmp_path: Path) -> None:
    """A dynamic VHD whose header claims 2**32 - 1 BAT entries in a sparse 16 GiB file: the
    old reader unpacked all of them into a list (MemoryError); only what the 64 MiB disk needs
    is read now, within a 256 MiB budget."""
    from vmimage.disk.inspect import inspect_disk

    img = tmp_path / "d.vhd"
    run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", str(img), "64M"])
    footer = read_footer(img)
    with open(img, "rb") as f:
        f.seek(footer.data_offset)
        header = vhd.DynamicHeader.unpack(f.read(1024))
    raw = bytearray(replace(header, max_table_entries=0xFFFFFFFF, checksum=0).pack())
    struct.pack_into(">I", raw, 36, vhd.checksum(bytes(raw), 36))
    write_at(img, footer.data_offset, bytes(raw))
    end = header.table_offset + 0xFFFFFFFF * 4 + SECTOR
    write_at(img, img.stat().st_size - vhd.FOOTER_SIZE, bytes(vhd.FOOTER_SIZE))
    write_at(img, end, footer.pack())
    ending = run_bounded(lambda: inspect_disk(img), seconds=20, memory=256 * MiB)
    assert ending.ok, ending


# --- 5. modified, then failed: never --------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB tmpfs, for running out of space."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(mnt)],
                         capture_output=True, text=True, check=False)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def _fill(directory: Path) -> None:
    """Use every free block of the file system ``directory`` is on."""
    with open(directory / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(bytes(4096))
        except OSError:
            pass


def test_in_place_on_a_full_filesystem_leaves_the_file_alone(tiny_fs: Path) -> None:
    """Before: the raw file was grown to the next MiB, then the footer failed: exit 2."""
    raw = make_sparse(tiny_fs / "disk.raw", MiB + 3 * SECTOR, [Extent(0, os.urandom(8192))])
    _fill(tiny_fs)
    before = file_state(raw)
    refused(cli("vhd", "convert", "--in-place", raw), raw, "space")
    assert file_state(raw) == before


def test_resize_on_a_full_filesystem_leaves_the_file_alone(tiny_fs: Path,
                                                           ext4_gpt_vhd: Path) -> None:
    """Before: the footer went to the new end, then the GPT move failed: a grown file."""
    img = tiny_fs / "disk.vhd"
    with open(ext4_gpt_vhd, "rb") as src, open(img, "wb") as dst:
        for offset, length in ((0, 64 * 1024), (64 * MiB - 64 * 1024, 64 * 1024 + SECTOR)):
            src.seek(offset)
            dst.seek(offset)
            dst.write(src.read(length))
    _fill(tiny_fs)
    os.truncate(tiny_fs / "filler", (tiny_fs / "filler").stat().st_size - 4096)
    before = file_state(img)
    res = cli("vhd", "resize", img, "--size", "128M")
    refused(res, img, "space")
    assert file_state(img) == before


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M,ro", "tmpfs", str(mnt)],
                         capture_output=True, text=True, check=False)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_create_and_convert_on_a_read_only_filesystem(read_only_dir: Path,
                                                      tmp_path: Path) -> None:
    """Before: a traceback from the cleanup's unlink (EROFS)."""
    out = read_only_dir / "x.vhd"
    refused(cli("vhd", "create", out, "--size", "32M"), out, "Read-only file system")
    raw = make_sparse(tmp_path / "in.raw", 32 * MiB, [Extent(0, os.urandom(4096))])
    refused(cli("vhd", "convert", raw, out), out, "Read-only file system")


# --- 6. no symlink followed on write, no device replaced -------------------------------------


def test_partial_symlink_to_the_input_is_not_followed(tmp_path: Path) -> None:
    """Before: ``out.vhd.partial -> in.raw`` made convert truncate its own input, exit 0."""
    raw = make_sparse(tmp_path / "in.raw", 32 * MiB, [Extent(5000, os.urandom(100_000))])
    out = tmp_path / "out.vhd"
    (tmp_path / "out.vhd.partial").symlink_to(raw)
    before = file_state(raw)
    res = cli("vhd", "convert", raw, out)
    assert res.returncode == 0, res.stderr
    assert file_state(raw) == before
    assert read_footer(out).current_size == 32 * MiB
    assert listing(tmp_path) == {"in.raw", "out.vhd", "out.vhd.partial"}


def test_create_does_not_write_through_a_planted_partial(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "new.vhd"
    (tmp_path / "new.vhd.partial").symlink_to(victim)
    assert cli("vhd", "create", out, "--size", "32M").returncode == 0
    assert victim.read_bytes() == b"precious"


@pytest.mark.parametrize("kind", ["device", "fifo", "directory", "link-to-device"])
def test_force_never_replaces_a_non_regular_output(tmp_path: Path, kind: str) -> None:
    """Before: ``--force`` replaced a device node with a regular file (and a FIFO hung)."""
    out = tmp_path / "out.vhd"
    if kind == "device":
        os.mknod(out, 0o600 | 0o020000, os.makedev(1, 3))
    elif kind == "fifo":
        os.mkfifo(out)
    elif kind == "directory":
        out.mkdir()
    else:
        out.symlink_to("/dev/null")
    mode = os.lstat(out).st_mode
    raw = make_sparse(tmp_path / "in.raw", 32 * MiB, [Extent(0, os.urandom(4096))])
    names = listing(tmp_path)
    refused(cli("vhd", "create", out, "--size", "32M", "--force", timeout=20), out)
    refused(cli("vhd", "convert", raw, out, "--force", timeout=20), out)
    assert os.lstat(out).st_mode == mode
    assert listing(tmp_path) == names
