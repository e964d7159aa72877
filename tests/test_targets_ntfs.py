"""Windows disks read offline: real NTFS volumes in real MBR and GPT disks, checked against
ntfs-3g's own tools.

Volumes are made by ``mkntfs --fast`` and filled through an ``ntfs-3g`` FUSE mount (rulings,
"Windows-format fixtures"), with mixed-case names, a DOS short name, junctions and symbolic
links written as raw reparse data, an alternate data stream and a sparse 100 MiB file. They
are cached under ``tests.imagebuild.cache_dir()`` by a hash of the recipe. ``ntfsls``,
``ntfscat`` and ``ntfsinfo`` are the oracles for what the target lists, reads and stats.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.imagebuild import cache_dir, locked, run, sparse_copy
from vmimage.app.check import detect_family
from vmimage.facts import Facts
from vmimage.targets.base import BYTES_MAX, UnreadableError
from vmimage.targets.image import ImageTarget

MiB = 1024 * 1024
TOOLS = ("mkntfs", "ntfs-3g", "ntfsls", "ntfscat", "ntfsinfo", "ntfslabel", "setfattr",
         "fusermount", "sfdisk", "mkfs.vfat")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS) or not os.path.exists("/dev/fuse"),
    reason="needs ntfs-3g (FUSE), ntfsprogs, sfdisk and dosfstools")

SYSTEM_HIVE = b"regf" + bytes(range(256)) * 32
C_SIZE = 200 * MiB
FIRST = 2048  # first partition's sector: Azure wants the first MiB empty


def _junction(target: str) -> bytes:
    """IO_REPARSE_TAG_MOUNT_POINT data, as Windows writes for ``mklink /J``."""
    sub, show = ("\\??\\" + target).encode("utf-16-le"), target.encode("utf-16-le")
    body = struct.pack("<HHHH", 0, len(sub), len(sub) + 2, len(show)) + sub + b"\0\0" + show
    return struct.pack("<IHH", 0xA0000003, len(body) + 2, 0) + body + b"\0\0"


def _symlink(target: str, relative: bool) -> bytes:
    """IO_REPARSE_TAG_SYMLINK data, as Windows writes for ``mklink``."""
    sub = (target if relative else "\\??\\" + target).encode("utf-16-le")
    show = target.encode("utf-16-le")
    body = struct.pack("<HHHHI", 0, len(sub), len(sub), len(show), int(relative)) + sub + show
    return struct.pack("<IHH", 0xA000000C, len(body), 0) + body


def _fill_windows(root: Path) -> None:
    win = root / "Windows"
    (win / "System32" / "config").mkdir(parents=True)
    (win / "System32" / "config" / "SYSTEM").write_bytes(SYSTEM_HIVE)
    (win / "System32" / "drivers" / "etc").mkdir(parents=True)
    (win / "System32" / "drivers" / "etc" / "hosts").write_text("127.0.0.1 localhost\r\n")
    (win / "MixedCase.TXT").write_text("Mixed\r\n")
    (root / "Users" / "Public" / "Documents").mkdir(parents=True)
    doc = root / "Users" / "Public" / "Documents" / "data.bin"
    doc.write_bytes(b"main stream")
    Path(f"{doc}:Zone.Identifier").write_bytes(b"[ZoneTransfer]\r\nZoneId=3\r\n")
    (root / "Users" / "Ünïcode.txt").write_text("ü")
    (root / "Program Files").mkdir()
    run(["setfattr", "-n", "system.ntfs_dos_name", "-v", "PROGRA~1", root / "Program Files"])
    with (root / "pagefile.sys").open("wb") as fh:
        fh.truncate(100 * MiB)  # sparse, over BYTES_MAX
    for name, data in (("Documents and Settings", _junction("C:\\Users")),
                       ("Users/All Users", _junction("C:\\ProgramData"))):
        (root / name).mkdir()
        run(["setfattr", "-n", "system.ntfs_reparse_data", "-v", "0x" + data.hex(),
             root / name])
    for name, data in (("sys32", _symlink("C:\\Windows\\System32", False)),
                       ("Users/up", _symlink("..\\Windows", True))):
        (root / name).touch()
        run(["setfattr", "-n", "system.ntfs_reparse_data", "-v", "0x" + data.hex(),
             root / name])
    (root / "interix").symlink_to("/Windows")  # ntfs-3g's own: an Interix system file


def _fill_reserved(root: Path) -> None:
    (root / "Boot").mkdir()
    (root / "Boot" / "BCD").write_bytes(b"regf" + bytes(4092))
    (root / "bootmgr").write_bytes(b"MZ" + bytes(1022))


def _fill_recovery(root: Path) -> None:
    (root / "Recovery" / "WindowsRE").mkdir(parents=True)
    (root / "Recovery" / "WindowsRE" / "Winre.wim").write_bytes(b"MSWIM\0\0\0" + bytes(504))


def _fill_data(root: Path) -> None:
    (root / "Data").mkdir()
    (root / "Data" / "x.txt").write_text("data\r\n")


FILLS = {"windows": _fill_windows, "reserved": _fill_reserved, "recovery": _fill_recovery,
         "data": _fill_data}


def _ntfs(path: Path, size: int, start: int, label: str, fill: str) -> None:
    """A volume in ``path`` made for a partition at sector ``start``, filled over FUSE."""
    with path.open("wb") as fh:
        fh.truncate(size)
    run(["mkntfs", "-q", "--fast", "-F", "-p", str(start), "-H", "255", "-S", "63",
         "-L", label, path])
    run(["ntfslabel", "--new-serial", path])
    mnt = path.with_suffix(".mnt")
    mnt.mkdir()
    proc = subprocess.Popen(["ntfs-3g", "-o", "no_detach,streams_interface=windows", str(path),
                             str(mnt)],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mnt):
            assert proc.poll() is None and time.monotonic() < deadline, "ntfs-3g did not mount"
            time.sleep(0.05)
        FILLS[fill](mnt)
    finally:
        subprocess.run(["fusermount", "-u", str(mnt)], check=False)
        proc.wait(timeout=60)  # its last writes land before it exits
        mnt.rmdir()


# (name, MBR type or GPT type code, size in MiB, what is in it, label, active)
Part = tuple[str, str, int, str, str, bool]
RECIPES: dict[str, tuple[str, tuple[Part, ...]]] = {
    "mbr": ("dos", (("reserved", "7", 500, "ntfs", "System Reserved", True),
                    ("windows", "7", 200, "ntfs", "Windows", False))),
    "gpt": ("gpt", (("esp", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", 100, "vfat", "", False),
                    ("msr", "E3C9E316-0B5C-4DB8-817D-F92DF00215AE", 16, "none", "", False),
                    ("windows", "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", 200, "ntfs",
                     "Windows", False),
                    ("recovery", "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", 500, "ntfs",
                     "Recovery", False))),
    "data": ("dos", (("data", "7", 200, "ntfs", "Data", False),)),
}
#: Bump when a fill function changes: the cache key is the recipe and this.
RECIPE_VERSION = 4


def _build(dest: Path, label: str, parts: tuple[Part, ...]) -> dict[str, object]:
    """The disk, and each NTFS volume beside it (``<dest>.<name>.ntfs``) for the oracles."""
    total = FIRST * 512 + sum(p[2] for p in parts) * MiB + MiB  # room for GPT's backup
    script, start, starts = [f"label: {label}"], FIRST, {}
    for name, kind, size, _fs, _label, active in parts:
        script.append(f"start={start}, size={size * 2048}, type={kind}"
                      + (", bootable" if active else ""))
        starts[name] = start
        start += size * 2048
    tmp = dest.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        fh.truncate(total)
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", tmp],
        input="\n".join(script).encode() + b"\n")
    for name, _kind, size, fs, fs_label, _active in parts:
        vol = Path(f"{dest}.{name}.ntfs" if fs == "ntfs" else f"{dest}.{name}.img")
        vol.unlink(missing_ok=True)
        if fs == "ntfs":
            _ntfs(vol, size * MiB, starts[name], fs_label, name if name in FILLS else "data")
        elif fs == "vfat":
            with vol.open("wb") as fh:
                fh.truncate(size * MiB)
            run(["mkfs.vfat", "-F", "32", "-n", "SYSTEM", vol])
        else:
            continue
        sparse_copy(vol, tmp, dst_offset=starts[name] * 512, truncate=False)
    tmp.rename(dest)
    return {"starts": starts}


@pytest.fixture(scope="session")
def disks() -> dict[str, Path]:
    """The three disks, built once per recipe and cached."""
    out = {}
    for key, (label, parts) in RECIPES.items():
        digest = hashlib.sha256(json.dumps([RECIPE_VERSION, label, parts]).encode())
        dest = cache_dir() / "ntfs" / f"{key}-{digest.hexdigest()[:16]}.raw"
        dest.parent.mkdir(parents=True, exist_ok=True)
        with locked(f"ntfs-{key}"):
            if not dest.exists():
                _build(dest, label, parts)
        out[key] = dest
    return out


@pytest.fixture(params=["mbr", "gpt"])
def windows(request: pytest.FixtureRequest, disks: dict[str, Path]) -> Iterator[ImageTarget]:
    with ImageTarget(disks[request.param]) as target:
        yield target


def _volume(disks: dict[str, Path], key: str, name: str = "windows") -> Path:
    return Path(f"{disks[key]}.{name}.ntfs")


# ---- finding Windows --------------------------------------------------------------------


def test_mbr_layout_and_windows_volume(disks: dict[str, Path]) -> None:
    with ImageTarget(disks["mbr"]) as target:
        parts = target.layout().partitions
        assert [(p.name, p.fs_type, p.bootable) for p in parts] == \
            [("p1", "ntfs", True), ("p2", "ntfs", False)]
        assert [p.label for p in parts] == ["System Reserved", "Windows"]
        assert target.os_family == "windows"
        assert target.windows_volume is not None and target.windows_volume.name == "p2"
        assert [p.mountpoint for p in parts] == [None, "/"]
        assert "filesystem" in target.capabilities
        assert detect_family(target, Facts(target)) == "windows"
        assert not target.exists("/Boot/BCD")  # System Reserved is not mounted


def test_gpt_layout_lists_every_partition(disks: dict[str, Path]) -> None:
    with ImageTarget(disks["gpt"]) as target:
        parts = target.layout().partitions
        assert [(p.name, p.fs_type, p.mountpoint) for p in parts] == [
            ("p1", "vfat", None), ("p2", "unknown", None), ("p3", "ntfs", "/"),
            ("p4", "ntfs", None)]
        assert target.windows_volume == parts[2]
        assert target.os_family == "windows"
        uuids = {p.uuid for p in parts[2:]}
        assert len(uuids) == 2  # distinct serials (ntfslabel --new-serial)


def test_ntfs_data_disk_is_no_system(disks: dict[str, Path]) -> None:
    with ImageTarget(disks["data"]) as target:
        assert target.os_family is None and target.windows_volume is None
        assert target.layout().partitions[0].fs_type == "ntfs"
        assert target.layout().partitions[0].mountpoint is None
        assert "filesystem" not in target.capabilities
        assert detect_family(target, Facts(target)) is None


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmimage", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, check=False, timeout=120)


def _one_line(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_says_windows(disks: dict[str, Path]) -> None:
    _one_line(_cli("check", str(disks["mbr"]), "--role", "os-linux"),
              "holds a Windows system", "os-windows")
    for args in (("--role", "os-windows"), ()):  # the family is found without --role
        checked = _cli("check", str(disks["gpt"]), *args)
        assert checked.returncode in (0, 1) and "Windows" in checked.stdout, checked.stderr
    _one_line(_cli("check", str(disks["data"])), "no operating system found",
              "--role data")


# ---- reading, against ntfs-3g's tools ---------------------------------------------------


def test_lookups_ignore_case(windows: ImageTarget) -> None:
    assert windows.read_bytes("/windows/system32/CONFIG/system") == SYSTEM_HIVE
    assert windows.read_bytes("/WINDOWS/mixedcase.txt") == b"Mixed\r\n"
    assert windows.read_text("/users/ÜNÏCODE.TXT") == "ü"
    assert windows.stat("/program files").is_dir
    assert windows.exists("/PROGRA~1")  # the DOS name Windows also accepts
    assert windows.resolve("/windows/System32/drivers/ETC/HOSTS") == \
        "/windows/System32/drivers/ETC/HOSTS"


def _ntfsls(volume: Path, path: str) -> dict[str, bool]:
    out = run(["ntfsls", "-F", "-p", path, volume]).stdout.decode()
    # ntfsls lists alternate data streams as "name:stream": not files, to Windows or us
    return {line.rstrip("/"): line.endswith("/") for line in out.splitlines()
            if line and ":" not in line and line not in ("./", "../", ".", "..")}


def _walk(target: ImageTarget, path: str = "/") -> Iterator[tuple[str, list[str]]]:
    names = target.iterdir(path)
    yield path, names
    for name in names:
        child = path.rstrip("/") + "/" + name
        if target.stat(child, follow=False).is_dir:
            yield from _walk(target, child)


def test_listings_match_ntfsls(disks: dict[str, Path], windows: ImageTarget) -> None:
    volume = _volume(disks, "mbr" if windows.layout().scheme == "mbr" else "gpt")
    walked = list(_walk(windows))
    assert len(walked) >= 10
    for path, names in walked:
        oracle = _ntfsls(volume, path)
        assert sorted(oracle) == names, path
        for name, is_dir in oracle.items():
            child = path.rstrip("/") + "/" + name
            assert windows.stat(child, follow=False).is_dir == is_dir, child
    root = windows.iterdir("/")
    assert "$MFT" not in root and "Windows" in root and "PROGRA~1" not in root
    assert not any(":" in n for _p, names in walked for n in names)  # no ADS


def _files(target: ImageTarget) -> list[str]:
    return [f"{p.rstrip('/')}/{n}" for p, names in _walk(target) for n in names
            if target.stat(f"{p.rstrip('/')}/{n}", follow=False).is_file]


def test_reads_match_ntfscat(disks: dict[str, Path], windows: ImageTarget) -> None:
    volume = _volume(disks, "mbr" if windows.layout().scheme == "mbr" else "gpt")
    files = _files(windows)
    assert "/Windows/System32/config/SYSTEM" in files and "/interix" in files
    for path in files:
        size = windows.stat(path).size
        if size > BYTES_MAX:
            continue
        assert windows.read_bytes(path) == run(["ntfscat", "-f", volume, path]).stdout, path
    # the Interix link ntfs-3g makes is a system file to Windows: read as one
    assert windows.read_bytes("/interix").startswith(b"IntxLNK\x01")


def _ntfsinfo(volume: Path, path: str) -> str:
    return run(["ntfsinfo", "-F", path, volume]).stdout.decode()


def test_stat_matches_ntfsinfo(disks: dict[str, Path], windows: ImageTarget) -> None:
    volume = _volume(disks, "mbr" if windows.layout().scheme == "mbr" else "gpt")
    for path in ("/Windows/System32/config/SYSTEM", "/Users/Public/Documents/data.bin",
                 "/pagefile.sys", "/Documents and Settings", "/sys32", "/Windows"):
        info = _ntfsinfo(volume, path)
        st = windows.stat(path, follow=False)
        assert st.is_symlink == ("REPARSE_POINT" in info.split("$FILE_NAME")[0]), path
        altered = info.split("File Altered Time:", 1)[1].split("\n", 1)[0].strip()
        when = time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(st.mtime))
        assert " ".join(when.split()) == " ".join(altered.split()), path
        if st.is_file:
            data = info.split("Dumping attribute $DATA", 1)[1]
            assert f"Data size:\t\t {st.size} " in data, path


def test_alternate_streams_are_ignored(windows: ImageTarget) -> None:
    assert windows.read_bytes("/Users/Public/Documents/data.bin") == b"main stream"
    assert windows.stat("/Users/Public/Documents/data.bin").size == len(b"main stream")
    with pytest.raises(FileNotFoundError):
        windows.read_bytes("/Users/Public/Documents/data.bin:Zone.Identifier")
    assert windows.iterdir("/Users/Public/Documents") == ["data.bin"]


def test_big_sparse_file_is_refused_whole(windows: ImageTarget) -> None:
    assert windows.stat("/pagefile.sys").size == 100 * MiB
    with pytest.raises(UnreadableError, match="over the"):
        windows.read_bytes("/pagefile.sys")
    assert windows.read_bytes("/pagefile.sys", 4096) == bytes(4096)


@pytest.mark.parametrize(("path", "stored"), [
    ("/Documents and Settings", "\\??\\C:\\Users"),
    ("/Users/All Users", "\\??\\C:\\ProgramData"),
    ("/sys32", "\\??\\C:\\Windows\\System32"),
    ("/Users/up", "..\\Windows"),
])
def test_reparse_points_are_never_followed(windows: ImageTarget, path: str,
                                           stored: str) -> None:
    assert windows.stat(path, follow=False).is_symlink
    assert windows.readlink(path.upper()) == stored
    assert not windows.exists(path)
    with pytest.raises(UnreadableError, match="not followed"):
        windows.stat(path)
    with pytest.raises(UnreadableError, match="not followed"):
        windows.read_bytes(path + "/config/SYSTEM")
    with pytest.raises(UnreadableError, match="not followed"):
        windows.iterdir(path)
    assert path.rsplit("/", 1)[1] in windows.iterdir(path.rsplit("/", 1)[0] or "/")
    assert path in windows.glob(path.rsplit("/", 1)[0].rstrip("/") + "/*")


def test_missing_and_not_a_directory(windows: ImageTarget) -> None:
    with pytest.raises(FileNotFoundError):
        windows.read_bytes("/Windows/System32/config/SAM")
    with pytest.raises(NotADirectoryError):
        windows.read_bytes("/Windows/MixedCase.TXT/x")
    with pytest.raises(IsADirectoryError):
        windows.read_bytes("/WINDOWS")
    with pytest.raises(FileNotFoundError):
        windows.read_bytes("/Windows\\System32\\config\\SYSTEM")


# ---- hostile volumes --------------------------------------------------------------------


def _mft_record(volume: Path, number: int) -> int:
    """Byte offset in the volume of MFT record ``number`` (a fresh MFT is contiguous)."""
    with volume.open("rb") as fh:
        boot = fh.read(512)
    sector, cluster = struct.unpack_from("<HB", boot, 0x0B)
    mft_cluster = struct.unpack_from("<Q", boot, 0x30)[0]
    return mft_cluster * sector * cluster + number * 1024


def _inode(volume: Path, path: str) -> int:
    info = _ntfsinfo(volume, path)
    return int(info.split("Dumping Inode ", 1)[1].split()[0])


@pytest.fixture
def damaged(disks: dict[str, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "gpt.raw"
    sparse_copy(disks["gpt"], copy)
    return copy


def _partition_offset(disk: Path, name: str) -> int:
    with ImageTarget(disk) as target:
        return next(p.start for p in target.layout().partitions if p.name == name)


def test_corrupted_mft_record_of_the_hive(disks: dict[str, Path], damaged: Path) -> None:
    volume = _volume(disks, "gpt")
    start = _partition_offset(damaged, "p3")
    record = _mft_record(volume, _inode(volume, "/Windows/System32/config/SYSTEM"))
    with damaged.open("r+b") as fh:
        fh.seek(start + record)
        fh.write(b"BAAD" + b"\xff" * 1020)
    with ImageTarget(damaged) as target:
        # without its hive this is no Windows volume: told, not crashed
        assert target.os_family is None
        assert any("p3: ntfs" in n and "damaged MFT record" in n for n in target.notes)
    _one_line(_cli("check", str(damaged), "--role", "os-windows"),
              "no Windows operating system found")


def test_corrupted_mft_record_of_a_file(disks: dict[str, Path], damaged: Path) -> None:
    volume = _volume(disks, "gpt")
    start = _partition_offset(damaged, "p3")
    record = _mft_record(volume, _inode(volume, "/Windows/MixedCase.TXT"))
    with damaged.open("r+b") as fh:
        fh.seek(start + record + 0x38)  # the first attribute's header
        fh.write(b"\xff" * 64)
    with ImageTarget(damaged) as target:
        assert target.os_family == "windows"
        with pytest.raises(UnreadableError, match="ntfs"):
            target.read_bytes("/Windows/MixedCase.TXT")
        assert target.read_bytes("/Windows/System32/config/SYSTEM") == SYSTEM_HIVE


def test_truncated_volume(disks: dict[str, Path], damaged: Path) -> None:
    start = _partition_offset(damaged, "p3")
    os.truncate(damaged, start + 64 * 1024)  # the boot sector, not the MFT
    with ImageTarget(damaged) as target:
        assert target.os_family is None
        assert target.layout().partitions[2].fs_type == "ntfs"
    _one_line(_cli("check", str(damaged), "--role", "os-windows"),
              "no Windows operating system found")


def test_damaged_mft_itself(disks: dict[str, Path], damaged: Path) -> None:
    volume = _volume(disks, "gpt")
    start = _partition_offset(damaged, "p3")
    with damaged.open("r+b") as fh:
        fh.seek(start + _mft_record(volume, 0))
        fh.write(os.urandom(4096))
    with ImageTarget(damaged) as target:
        assert target.os_family is None
        assert any("p3: ntfs" in n for n in target.notes), target.notes
    _one_line(_cli("check", str(damaged), "--role", "os-windows"),
              "no Windows operating system found")
