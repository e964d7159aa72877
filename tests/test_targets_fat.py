"""The EFI system partition read through the image target: FAT12, FAT16 and FAT32.

Each disk is a GPT made by sfdisk with an ESP made by ``mkfs.vfat`` and filled by mtools
(``mcopy -s -m`` keeps the host's times), beside an ext4 root whose fstab mounts the ESP at
``/boot/efi`` by UUID. The host tree copied in is the oracle for names, contents and times;
``mshowfat`` shows that a file really is fragmented, and damage is written into the FAT by
hand to show it becomes an ``OSError`` (EIO), never a crash.
"""

from __future__ import annotations

import errno
import os
import random
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import targets_images as ti
from vmimage.facts.bootcfg import read_kernel_cmdlines
from vmimage.targets.fat import FatEntry, FatVolume
from vmimage.targets.image import ImageTarget

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("mkfs.vfat", "mcopy", "mshowfat", "mattrib", "sfdisk")),
    reason="needs dosfstools, mtools and sfdisk")

MiB = ti.MiB
SERIAL = "7E1F00D5"
ESP_UUID = "7E1F-00D5"
ESP_START = 2048  # sectors
ESP_SIZES = {12: 8 * MiB, 16: 32 * MiB, 32: 64 * MiB}
GRUB_CFG = """search.fs_uuid 5a0c2c34-0d4e-4f0e-9a51-7d2b8c1e0a01 root
set prefix=($root)'/boot/grub'
menuentry 'Debian GNU/Linux' --id debian {
    linux /boot/vmlinuz-6.1.0-13-cloud-amd64 root=LABEL=root console=ttyS0 earlyprintk=ttyS0
}
"""
FSTAB = f"""LABEL=root  /          ext4  errors=remount-ro  0 1
UUID={ESP_UUID}  /boot/efi  vfat  umask=0077  0 1
"""
LONG_DIR = "EFI/debian/Many long names in one directory"
MTIME = 1_600_000_000  # even: FAT keeps two-second steps


def _esp_tree(dest: Path, cluster: int) -> dict[str, bytes]:
    """The files of the ESP (path -> content), written under ``dest`` with whole-second times."""
    rng = random.Random(4)
    files = {
        "EFI/debian/grub.cfg": GRUB_CFG.encode(),
        "EFI/debian/shimx64.efi": rng.randbytes(300_000),  # many clusters on every FAT type
        "EFI/debian/grubx64.efi": b"MZ" + rng.randbytes(cluster * 3),  # exactly 3 + a bit
        "EFI/debian/empty.cfg": b"",
        "EFI/debian/exact.bin": rng.randbytes(cluster),  # exactly one cluster
        "EFI/BOOT/BOOTX64.EFI": b"MZ" + rng.randbytes(5000),
        "EFI/BOOT/A Very Long File Name With Spaces.efi": b"long\n",
        "EFI/Linux/ünïcödé naïve.conf": "ünïcödé\n".encode(),
        "EFI/Linux/MixedCase.Conf": b"mixed\n",
        "startup.nsh": b"\\EFI\\BOOT\\BOOTX64.EFI\n",
    }
    for i in range(120):  # several clusters of directory, with LFN slots crossing them
        files[f"{LONG_DIR}/entry number {i:03d} with a long name.cfg"] = f"{i}\n".encode()
    for rel, content in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(content)
    stamp = MTIME
    for path in sorted(dest.rglob("*"), key=str, reverse=True):
        os.utime(path, (stamp, stamp))
        stamp += 3602  # an hour and two seconds: every time differs
    return files


def _mtools(*args: str | Path) -> str:
    return ti.run(*args, env={**os.environ, "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1"})


def _cluster_bytes(image: Path) -> int:
    with image.open("rb") as fh:
        sector, per_cluster = struct.unpack_from("<HB", fh.read(64), 11)
    return int(sector * per_cluster)


def _make_esp(work: Path, bits: int) -> tuple[Path, Path, dict[str, bytes]]:
    """A FAT image filled by mcopy, with one file fragmented, one deleted, one read-only."""
    image = ti.blank(work / f"esp{bits}.img", ESP_SIZES[bits])
    ti.run("mkfs.vfat", "-F", str(bits), "-i", SERIAL, "-n", "EFI", image)
    cluster = _cluster_bytes(image)
    tree = work / f"esp{bits}-tree"
    files = _esp_tree(tree, cluster)
    _mtools("mcopy", "-s", "-m", "-i", image, tree / "EFI", tree / "startup.nsh", "::/")
    # a hole of 2 clusters, then a 5-cluster file: its chain fills the hole and goes on
    rng = random.Random(bits)
    efi_time = os.stat(tree / "EFI").st_mtime
    hole, blocker = work / "hole.bin", tree / "EFI/blocker.bin"
    hole.write_bytes(rng.randbytes(2 * cluster))
    blocker.write_bytes(rng.randbytes(cluster))
    fragmented = tree / "EFI/fragmented.bin"
    fragmented.write_bytes(rng.randbytes(5 * cluster - 7))
    for path in (blocker, fragmented):
        os.utime(path, (MTIME, MTIME))
    os.utime(tree / "EFI", (efi_time, efi_time))  # as mcopy -s -m wrote it
    _mtools("mcopy", "-m", "-i", image, hole, "::/EFI/hole.bin")
    _mtools("mcopy", "-m", "-i", image, blocker, "::/EFI/blocker.bin")
    _mtools("mdel", "-i", image, "::/EFI/hole.bin")  # leaves a deleted (0xE5) entry
    if bits == 32:  # mtools allocates after FSInfo's next-free hint: make it search from 2
        head = image.read_bytes()[:512]
        fsinfo = struct.unpack_from("<H", head, 48)[0] * struct.unpack_from("<H", head, 11)[0]
        _patch(image, fsinfo + 492, (0xFFFFFFFF).to_bytes(4, "little"))
    _mtools("mcopy", "-m", "-i", image, fragmented, "::/EFI/fragmented.bin")
    files["EFI/blocker.bin"] = blocker.read_bytes()
    files["EFI/fragmented.bin"] = fragmented.read_bytes()
    _mtools("mattrib", "-i", image, "+r", "::/EFI/debian/grub.cfg")
    return image, tree, files


def _make_disk(work: Path, bits: int) -> tuple[Path, Path, Path, dict[str, bytes]]:
    esp, tree, files = _make_esp(work, bits)
    root = work / "root"
    (root / "etc").mkdir(parents=True)
    (root / "boot/efi").mkdir(parents=True)
    (root / "etc/fstab").write_text(FSTAB)
    (root / "etc/os-release").write_text("ID=debian\n")
    esp_sectors = ESP_SIZES[bits] // ti.SECTOR
    disk = ti.blank(work / "disk.raw", 2 * MiB + ESP_SIZES[bits] + 8 * MiB)
    ti.sfdisk(disk, f"label: gpt\nstart={ESP_START}, size={esp_sectors}, type=U, name=esp\n"
                    f"start={ESP_START + esp_sectors}, size={8 * MiB // ti.SECTOR}, type=L\n")
    ti.copy_in(esp, disk, ESP_START * ti.SECTOR)
    ti.mkfs_ext(disk, ESP_START * ti.SECTOR + ESP_SIZES[bits], 8 * MiB, root, "ext4", "root")
    return disk, esp, tree, files


@pytest.fixture(scope="module", params=[12, 16, 32], ids=["fat12", "fat16", "fat32"])
def esp_disk(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Path, Path,
                                                                         dict[str, bytes]]]:
    bits = request.param
    disk, esp, tree, files = _make_disk(tmp_path_factory.mktemp(f"fat{bits}"), bits)
    yield bits, disk, esp, tree, files


def test_the_fat_type_is_the_one_made(esp_disk) -> None:
    bits, _, esp, _, _ = esp_disk
    data = esp.read_bytes()
    volume = FatVolume(lambda offset, length: data[offset:offset + length])
    assert volume.bits == bits and volume.get_label() == "EFI"
    chain = _mtools("mshowfat", "-i", esp, "::/EFI/fragmented.bin")
    assert len(re.findall(r"<\d+(?:-\d+)?>", chain)) >= 2, chain  # really fragmented


def test_files_read_as_the_tree_holds_them(esp_disk) -> None:
    _, disk, _, tree, files = esp_disk
    with ImageTarget(disk) as target:
        assert target.layout().notes == ()
        assert sorted(target.mounts()) == ["/", "/boot/efi"]
        assert target.capabilities == {"disk", "filesystem"}
        for rel, content in files.items():
            path = f"/boot/efi/{rel}"
            assert target.read_bytes(path) == content, rel
            got, want = target.stat(path), os.stat(tree / rel)
            assert (got.size, got.mtime) == (len(content), want.st_mtime), rel
            assert (got.uid, got.gid) == (0, 0)
        shim = files["EFI/debian/shimx64.efi"]
        assert target.read_bytes("/boot/efi/EFI/debian/shimx64.efi", limit=70_000) == shim[:70_000]


def test_directories_list_as_the_tree(esp_disk) -> None:
    _, disk, _, tree, _ = esp_disk
    with ImageTarget(disk) as target:
        for directory in [tree, *sorted(p for p in tree.rglob("*") if p.is_dir())]:
            rel = directory.relative_to(tree).as_posix()
            path = "/boot/efi" + ("/" + rel if rel != "." else "")
            assert target.iterdir(path) == sorted(os.listdir(directory)), rel
            if rel != ".":  # mcopy -m keeps a directory's time too
                assert target.stat(path).mtime == os.stat(directory).st_mtime, rel
        assert "hole.bin" not in target.iterdir("/boot/efi/EFI")  # deleted, and skipped
        assert len(target.glob(f"/boot/efi/{LONG_DIR}/entry number *")) == 120


def test_modes_come_from_the_mount_options_and_attributes(esp_disk) -> None:
    _, disk, _, _, _ = esp_disk
    with ImageTarget(disk) as target:  # fstab: umask=0077
        assert target.stat("/boot/efi").mode == 0o40700
        assert target.stat("/boot/efi/EFI/debian").mode == 0o40700
        assert target.stat("/boot/efi/EFI/debian/shimx64.efi").mode == 0o100700
        assert target.stat("/boot/efi/EFI/debian/grub.cfg").mode == 0o100500  # read-only
        assert not target.stat("/boot/efi/EFI").is_symlink


def test_names_are_looked_up_as_vfat_does(esp_disk) -> None:
    _, disk, esp, _, _ = esp_disk
    short = _mtools("mdir", "-i", esp, "::/EFI/BOOT")
    assert "AVERYL~1 EFI" in short  # the 8.3 name mtools stored beside the long one
    with ImageTarget(disk) as target:
        assert target.read_text("/boot/efi/efi/DEBIAN/Grub.CFG") == GRUB_CFG
        assert target.read_bytes("/boot/efi/EFI/BOOT/AVERYL~1.EFI") == b"long\n"
        assert target.read_text("/boot/efi/EFI/debian/grub.cfg.") == GRUB_CFG
        assert target.iterdir("/boot/efi/EFI/Linux") == ["MixedCase.Conf", "ünïcödé naïve.conf"]
        assert target.glob("/boot/efi/EFI/*/grub.cfg") == ["/boot/efi/EFI/debian/grub.cfg"]
        assert not target.exists("/boot/efi/EFI/debian/grub.cfg/inside")
        with pytest.raises(NotADirectoryError):
            target.iterdir("/boot/efi/startup.nsh")
        with pytest.raises(IsADirectoryError):
            target.read_bytes("/boot/efi/EFI")
        with pytest.raises(FileNotFoundError):
            target.read_bytes("/boot/efi/EFI/nothing.efi")
        with pytest.raises(OSError) as not_link:
            target.readlink("/boot/efi/startup.nsh")
        assert not_link.value.errno == errno.EINVAL


def test_the_esp_grub_cfg_is_a_boot_entry(esp_disk) -> None:
    """A UEFI image whose only grub.cfg is on the ESP (RHEL's layout): its menu is found."""
    _, disk, _, _, _ = esp_disk
    with ImageTarget(disk) as target:
        [entry] = read_kernel_cmdlines(target)
        assert entry.path == "/boot/efi/EFI/debian/grub.cfg" and entry.line == 4
        assert entry.value("console") == "ttyS0" and entry.default


# ---- damage ---------------------------------------------------------------------------------

def _fat_entry_offset(image: Path, cluster: int) -> tuple[int, int]:
    """Where cluster's FAT entry lies in the first FAT (FAT16 and FAT32), and its width."""
    head = image.read_bytes()[:512]
    sector, _, reserved = struct.unpack_from("<HBH", head, 11)
    width = 4 if struct.unpack_from("<H", head, 22)[0] == 0 else 2
    return reserved * sector + cluster * width, width


def _patch(path: Path, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


@pytest.mark.parametrize("bits", [16, 32])
def test_a_looping_chain_is_an_io_error(tmp_path: Path, bits: int) -> None:
    disk, esp, _, files = _make_disk(tmp_path, bits)
    chain = _mtools("mshowfat", "-i", esp, "::/EFI/debian/shimx64.efi")
    first = int(re.search(r"<(\d+)", chain).group(1))  # type: ignore[union-attr]
    offset, width = _fat_entry_offset(esp, first + 1)
    _patch(disk, ESP_START * ti.SECTOR + offset, first.to_bytes(width, "little"))  # 2nd -> 1st
    with ImageTarget(disk) as target:
        with pytest.raises(OSError) as broken:
            target.read_bytes("/boot/efi/EFI/debian/shimx64.efi")
        assert broken.value.errno == errno.EIO and "vfat" in str(broken.value)
        assert target.read_text("/boot/efi/EFI/debian/grub.cfg") == GRUB_CFG  # the rest reads
        assert target.read_bytes("/boot/efi/EFI/BOOT/BOOTX64.EFI") == files["EFI/BOOT/BOOTX64.EFI"]


def test_a_bad_boot_sector_is_a_note(tmp_path: Path) -> None:
    disk, _, _, _ = _make_disk(tmp_path, 16)
    _patch(disk, ESP_START * ti.SECTOR + 13, b"\x03")  # 3 sectors per cluster: not a power of 2
    with ImageTarget(disk) as target:
        assert target.layout().partitions[0].fs_type == "vfat"  # the signature still says so
        assert target.layout().notes == (
            "p1: vfat cannot be opened: FAT: the boot sector's geometry is not valid",)
        assert target.iterdir("/boot/efi") == []  # the root's empty mount point
        assert target.read_text("/etc/os-release") == "ID=debian\n"


def _walk(entry: FatEntry, depth: int = 0) -> int:
    """Read everything below ``entry`` (bounded: a damaged tree may loop)."""
    count = 0
    for index in range(min(entry.get_number_of_sub_file_entries(), 200)):
        child = entry.get_sub_file_entry(index)
        child.get_name(), child.get_file_mode(), child.get_size()
        child.get_modification_time_as_integer()
        if child.get_file_mode() & 0o40000:
            if depth < 4:
                count += _walk(child, depth + 1)
        else:
            count += len(child.read_buffer_at_offset(1 << 20, 0))
    return count


@pytest.fixture(scope="module")
def fat16_image(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    image, _, _ = _make_esp(tmp_path_factory.mktemp("fuzz"), 16)
    return image.read_bytes()[:4 * MiB]  # boot sector, FATs, root directory and early data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 96 * 1024), st.integers(0, 255)), min_size=1,
                      max_size=40))
def test_damaged_fat_raises_only_oserror(fat16_image: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(fat16_image)
    for offset, value in flips:
        data[offset] = value
    blob = bytes(data)
    try:
        volume = FatVolume(lambda offset, length: blob[offset:offset + length])
        root = volume.get_file_entry_by_path("/")
        assert root is not None
        _walk(root)
        volume.get_file_entry_by_path("/EFI/debian/grub.cfg")
    except OSError:
        pass
