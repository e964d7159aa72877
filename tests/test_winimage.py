"""The Windows image builder of tests/winimage.py, checked with tools that read the formats for
real: ``qemu-img info`` (the VHD), ``sfdisk`` (partition tables), ``blkid`` (volumes, NTFS
serials, BitLocker), ``ntfsls``/``ntfscat`` (NTFS, on a volume cut out of the disk),
``mdir``/``mtype`` (the ESP), ``hivexregedit --export`` (hives) and mingw ``windres``/
``objdump`` (PE files). None of them is the code under test.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import imagebuild as ib
from tests import winimage as wi
from tests.hives import ExpandSz
from tests.imagebuild import SECTOR, GiB, MiB

TOOLS = ("mkntfs", "ntfs-3g", "ntfsls", "ntfscat", "ntfslabel", "fusermount", "sfdisk",
         "mkfs.vfat", "mmd", "mcopy", "mdir", "mtype", "qemu-img", "hivexregedit", "blkid",
         "x86_64-w64-mingw32-windres", "x86_64-w64-mingw32-objdump",
         "x86_64-w64-mingw32-ld", "x86_64-w64-mingw32-as")
_missing = [t for t in TOOLS if shutil.which(t) is None]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="needs root: the NTFS volumes are filled through an ntfs-3g "
                              "FUSE mount"),
    pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse"),
    pytest.mark.skipif(bool(_missing), reason=f"missing tools: {', '.join(_missing)} (apt: "
                       "ntfs-3g libwin-hivex-perl binutils-mingw-w64-x86-64 mtools dosfstools "
                       "qemu-utils)"),
]


def sh(*args: object, check: bool = True) -> str:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=check,
                          stdin=subprocess.DEVNULL).stdout


def sh_bytes(*args: object) -> bytes:
    return subprocess.run([str(a) for a in args], capture_output=True, check=True,
                          stdin=subprocess.DEVNULL).stdout


def extract(disk: Path, start: int, size: int, dest: Path) -> Path:
    """Cut ``size`` bytes at ``start`` out of ``disk`` into a sparse file (holes stay holes)."""
    with open(disk, "rb") as fi, open(dest, "wb") as fo:
        fo.truncate(size)
        pos = start
        end = start + size
        while pos < end:
            try:
                data = os.lseek(fi.fileno(), pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                raise
            if data >= end:
                break
            hole = min(os.lseek(fi.fileno(), data, os.SEEK_HOLE), end)
            fi.seek(data)
            fo.seek(data - start)
            left = hole - data
            while left:
                chunk = fi.read(min(left, 8 * MiB))
                fo.write(chunk)
                left -= len(chunk)
            pos = hole
    return dest


class Volume:
    """An NTFS volume cut out of an image, read with ntfs-3g's user-space tools."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def ls(self, directory: str) -> list[str]:
        out = sh("ntfsls", "-f", "-p", directory, self.path)
        return [name for line in out.splitlines()
                if (name := line.strip()) and name not in (".", "..")]

    def cat(self, path: str) -> bytes:
        return sh_bytes("ntfscat", "-f", self.path, path)

    def regexport(self, hive: str, prefix: str, tmp: Path) -> str:
        local = tmp / f"{hive}.hive"
        local.write_bytes(self.cat(f"/Windows/System32/config/{hive}"))
        out = subprocess.run(["hivexregedit", "--export", "--prefix", prefix, str(local), "\\"],
                             capture_output=True, check=True).stdout
        return out.decode("utf-8", "replace")


def reg_values(export: str, key: str) -> dict[str, str]:
    """The values of ``key`` (full path as hivexregedit prints it) in an export, raw text."""
    out: dict[str, str] = {}
    inside = False
    for line in export.splitlines():
        if line.startswith("["):
            inside = line[1:-1].lower() == key.lower()
        elif inside and line.startswith('"'):
            m = re.match(r'"((?:[^"\\]|\\.)*)"=(.*)$', line)
            assert m, line
            out[m[1].replace('\\\\', '\\').replace('\\"', '"')] = m[2]
    return out


def reg_keys(export: str) -> set[str]:
    return {line[1:-1].lower() for line in export.splitlines() if line.startswith("[")}


def reg_str(raw: str) -> str:
    """A REG_SZ / REG_EXPAND_SZ as hivexregedit exports it (``str(1):`` or ``hex(1):``)."""
    m = re.match(r"str\(\d\):\"(.*)\"$", raw)
    if m:
        return m[1].replace('\\"', '"').replace("\\\\", "\\")
    m = re.match(r"hex\((\d)\):(.*)$", raw)
    assert m, raw
    return bytes.fromhex(m[2].replace(",", "")).decode("utf-16-le").rstrip("\0")


def reg_multi(raw: str) -> list[str]:
    m = re.match(r"hex\(7\):(.*)$", raw)
    assert m, raw
    text = bytes.fromhex(m[1].replace(",", "")).decode("utf-16-le")
    return [s for s in text.split("\0") if s]


def reg_dword(raw: str) -> int:
    assert raw.startswith("dword:"), raw
    return int(raw[6:], 16)


def pe_version(data: bytes, tmp: Path) -> str:
    path = tmp / "pe.sys"
    path.write_bytes(data)
    assert "pei-x86-64" in sh("x86_64-w64-mingw32-objdump", "-p", path)
    rc = sh("x86_64-w64-mingw32-windres", "-i", path, "-O", "rc")
    m = re.search(r"FILEVERSION\s+(\d+),\s*(\d+),\s*(\d+),\s*(\d+)", rc)
    assert m, rc
    return ".".join(m.groups())


OURS = re.compile(r"/(win-|windata-|ntfs-mnt-)|/windows/|winimage")


@contextlib.contextmanager
def no_leftovers() -> Iterator[None]:
    """No ntfs-3g mount, FUSE process or loop device of the builder survives the block.

    Other tests may run at the same time and use loop devices of their own: only those
    backed by the builder's files (work directories ``win-``/``windata-``, the cache's
    ``windows/``, this module's ``winimage`` tmp directory) count.
    """
    yield
    mounts = [m for m in sh("mount").splitlines() if "fuse" in m and OURS.search(m)]
    assert not mounts, f"ntfs-3g mounts left behind: {mounts}"
    loops = [x for x in sh("losetup", "-a").splitlines() if OURS.search(x)]
    assert not loops, f"loop devices left behind: {loops}"
    children = sh("ps", "-o", "pid=,comm=", "--ppid", os.getpid(), check=False)
    assert "ntfs-3g" not in children, children


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("winimage")


@pytest.fixture(scope="module")
def gen1(work: Path) -> Path:
    spec = wi.WinSpec()
    # A cold build: the cache is keyed by the spec, so a fresh key forces one.
    with no_leftovers():
        start = time.monotonic()
        layout = wi.build_windows_raw(work / "cold.raw", spec)
        cold = time.monotonic() - start
        # A cold build_windows (build, VHD, cache, copy) of a spec nobody else uses.
        unique = spec.but(computer_name=f"COLD-{os.getpid()}-{time.time_ns() % 10**6}")
        start = time.monotonic()
        wi.build_windows(work / "cold.vhd", unique).unlink()
        cold_vhd = time.monotonic() - start
        wi.cache_path(unique).unlink()
        dest = wi.build_windows(work / "gen1.vhd", spec)
        start = time.monotonic()
        dest = wi.build_windows(work / "gen1.vhd", spec)
        first = time.monotonic() - start
        start = time.monotonic()
        again = wi.windows_copy(spec)
        cached = time.monotonic() - start
    print(f"\nWindows Gen1 127 GiB: cold raw build {cold:.2f} s, cold build_windows (VHD) "
          f"{cold_vhd:.2f} s, cached build_windows to {work.name} {first:.2f} s, cached "
          f"windows_copy {cached:.3f} s")
    assert layout == wi.plan(spec)
    (work / "cold.raw").unlink()
    again.unlink()
    return dest


@pytest.fixture(scope="module")
def gen2(work: Path) -> Path:
    with no_leftovers():
        start = time.monotonic()
        dest = wi.build_windows(work / "gen2.vhd", wi.WinSpec(generation=2))
    print(f"\nWindows Gen2: build_windows {time.monotonic() - start:.2f} s")
    return dest


def volume_of(disk: Path, part: wi.WinPartition, work: Path) -> Volume:
    return Volume(extract(disk, part.start, part.size, work / f"{disk.stem}-{part.role}.ntfs"))


def check_vhd(path: Path, size: int) -> None:
    info = json.loads(sh("qemu-img", "info", "--output=json", "-f", "vpc", path))
    assert info["format"] == "vpc"
    assert info["virtual-size"] == size == 127 * GiB
    assert path.stat().st_size == size + 512
    assert path.stat().st_blocks * 512 < 512 * MiB, "the image is not sparse"


def sfdisk_json(path: Path) -> dict:
    return json.loads(sh("sfdisk", "-J", path))["partitiontable"]


# --------------------------------------------------------------------------------------------
# Generation 1


def test_gen1_disk_and_partitions(gen1: Path) -> None:
    layout = wi.plan(wi.WinSpec())
    check_vhd(gen1, layout.size)
    table = sfdisk_json(gen1)
    assert table["label"] == "dos"
    assert table["id"] == wi.MBR_DISK_ID
    parts = table["partitions"]
    assert [(p["start"], p["size"], p["type"]) for p in parts] == [
        (2048, 500 * MiB // SECTOR, "7"),
        (2048 + 500 * MiB // SECTOR, (127 * GiB - MiB - 500 * MiB) // SECTOR, "7")]
    assert parts[0].get("bootable") is True and not parts[1].get("bootable")
    with open(gen1, "rb") as fh:
        first = fh.read(MiB)
    assert b"Missing operating system" in first[:446]
    assert first[446 + 64:512] == b"\x55\xaa"
    assert not first[512:].strip(b"\0"), "the first MiB after the MBR is not empty"


def test_gen1_volumes(gen1: Path, work: Path) -> None:
    layout = wi.plan(wi.WinSpec())
    for part in layout.partitions:
        ids = dict(line.split("=", 1) for line in
                   sh("blkid", "-p", "-O", part.start, "-o", "export", gen1).splitlines())
        assert ids["TYPE"] == "ntfs"
        assert ids["LABEL"].replace("\\ ", " ") == part.label
        assert ids["UUID"] == part.serial
    system = volume_of(gen1, layout.part("system"), work)
    assert {"bootmgr", "Boot"} <= set(system.ls("/"))
    assert "BCD" in system.ls("/Boot")
    # The boot sector carries the partition's start and the 255/63 geometry (Windows boots
    # from it only then).
    with open(system.path, "rb") as fh:
        bs = fh.read(512)
    assert bs[3:11] == b"NTFS    "
    assert int.from_bytes(bs[0x18:0x1A], "little") == 63
    assert int.from_bytes(bs[0x1A:0x1C], "little") == 255
    assert int.from_bytes(bs[0x1C:0x20], "little") == 2048


def test_gen1_c_drive(gen1: Path, work: Path) -> None:
    spec = wi.WinSpec()
    c = volume_of(gen1, wi.plan(spec).os, work)
    top = set(c.ls("/"))
    assert {"Windows", "Program Files", "Program Files (x86)", "ProgramData", "Users"} <= top
    assert {"SYSTEM", "SOFTWARE", "SAM", "SECURITY", "DEFAULT"} <= set(
        c.ls("/Windows/System32/config"))
    assert "SysWOW64" in c.ls("/Windows")
    assert "NTUSER.DAT" in c.ls("/Users/Default")
    assert c.cat("/Windows/Setup/State/State.ini") == (
        b"[State]\r\nImageState=IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE\r\n")
    assert c.cat("/Windows/System32/Sysprep/Panther/setuperr.log") == b""
    assert c.cat("/Windows/Panther/setuperr.log") == b""
    for name in ("srv.sys", "srv2.sys"):
        assert pe_version(c.cat(f"/Windows/System32/drivers/{name}"), work) == "10.0.17763.6414"
    task = c.cat(f"/Windows/System32/Tasks/{wi.FIRST_BOOT_TASK}")
    assert task[:2] == b"\xff\xfe"
    xml = task[2:].decode("utf-16-le")
    assert "<BootTrigger>" in xml
    commands = re.findall(r"<Command>(.*?)</Command>\s*<Arguments>(.*?)</Arguments>", xml)
    assert commands[0][0].startswith("C:\\")
    assert commands[-1] == ("C:\\Windows\\System32\\schtasks.exe",
                            f"/Delete /TN {wi.FIRST_BOOT_TASK} /F")


def test_gen1_registry(gen1: Path, work: Path) -> None:
    c = volume_of(gen1, wi.plan(wi.WinSpec()).os, work)
    system = c.regexport("SYSTEM", "HKEY_LOCAL_MACHINE\\SYSTEM", work)
    sel = reg_values(system, "HKEY_LOCAL_MACHINE\\SYSTEM\\Select")
    assert {k: reg_dword(sel[k]) for k in ("Current", "Default", "LastKnownGood")} == {
        "Current": 1, "Default": 1, "LastKnownGood": 1}
    cs = "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\"
    ts = reg_values(system, cs + "Control\\Terminal Server")
    assert reg_dword(ts["fDenyTSConnections"]) == 0
    rules = reg_values(system, cs + "Services\\SharedAccess\\Parameters\\FirewallPolicy\\"
                       "FirewallRules")
    rule = reg_str(rules["RemoteDesktop-UserMode-In-TCP"])
    assert "|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=3389|" in rule
    env = reg_values(system, cs + "Control\\Session Manager\\Environment")
    assert reg_str(env["PROCESSOR_ARCHITECTURE"]) == "AMD64"
    mm = reg_values(system, cs + "Control\\Session Manager\\Memory Management")
    assert reg_multi(mm["PagingFiles"]) == ["?:\\pagefile.sys"]

    software = c.regexport("SOFTWARE", "HKEY_LOCAL_MACHINE\\SOFTWARE", work)
    nt = reg_values(software, "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\"
                    "CurrentVersion")
    assert reg_str(nt["ProductName"]) == "Windows Server 2019 Datacenter"
    assert reg_str(nt["EditionID"]) == "ServerDatacenter"
    assert reg_str(nt["CurrentBuild"]) == "17763"
    assert reg_dword(nt["UBR"]) == 6414
    assert reg_str(nt["InstallationType"]) == "Server"
    assert reg_dword(nt["CurrentMajorVersionNumber"]) == 10
    assert reg_dword(nt["CurrentMinorVersionNumber"]) == 0
    assert reg_str(nt["CurrentVersion"]) == "6.3"
    cv = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\"
    state = reg_values(software, cv + "Setup\\State")
    assert reg_str(state["ImageState"]) == "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE"
    wu = reg_values(software, cv + "WindowsUpdate\\Auto Update\\Results\\Install")
    assert reg_str(wu["LastSuccessTime"]) == wi.WinSpec().windows_update_last_success
    keys = reg_keys(software)
    assert (cv + "WindowsUpdate\\Auto Update\\RebootRequired").lower() not in keys
    assert (cv + "Component Based Servicing\\RebootPending").lower() not in keys
    cache = ("HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\ServerManager\\ServicingStorage\\"
             "ServerComponentCache\\")
    installed = {name for name in (*wi.REJECTED_FEATURES, "FS-FileServer")
                 if (cache + name).lower() in keys
                 and reg_dword(reg_values(software, cache + name)["InstallState"]) == 1}
    assert installed == {"FS-FileServer"}

    sam = c.regexport("SAM", "HKEY_LOCAL_MACHINE\\SAM", work)
    assert "hkey_local_machine\\sam\\sam\\domains\\account\\users\\names\\administrator" in (
        reg_keys(sam))
    assert "hkey_local_machine\\sam\\sam\\domains\\account\\users\\000001f4" in reg_keys(sam)


def test_gen1_cache_and_copies(gen1: Path, work: Path) -> None:
    spec = wi.WinSpec()
    start = time.monotonic()
    master = wi.cached_windows(spec)
    copy = wi.windows_copy(spec)
    took = time.monotonic() - start
    print(f"\ncached Gen1 copy: {took:.3f} s")
    try:
        assert copy != master and copy.parent == ib.scratch_dir()
        assert copy.stat().st_size == master.stat().st_size
        with open(copy, "r+b") as fh:  # changing the copy leaves the cache alone
            fh.write(b"\1" * 16)
        with open(master, "rb") as fh:
            assert fh.read(16) == bytes(16)
    finally:
        copy.unlink()
    raw = wi.build_windows(work / "gen1.raw", spec, vhd=False)
    assert raw.stat().st_size == 127 * GiB
    assert sfdisk_json(raw)["label"] == "dos"
    raw.unlink()
    assert wi.WinSpec().key() == spec.key() != wi.WinSpec(rdp_enabled=False).key()


# --------------------------------------------------------------------------------------------
# Generation 2


def test_gen2_partitions(gen2: Path) -> None:
    layout = wi.plan(wi.WinSpec(generation=2))
    check_vhd(gen2, layout.size)
    raw = gen2  # sfdisk reads the VHD's data directly; the footer is one sector past the end
    table = json.loads(subprocess.run(["sfdisk", "-J", str(raw)], capture_output=True,
                                      text=True, check=True).stdout)["partitiontable"]
    assert table["label"] == "gpt"
    types = [(p["start"], p["size"], p["type"], p.get("name", "")) for p in table["partitions"]]
    assert types == [
        (2048, 100 * MiB // SECTOR, wi.TYPE_ESP, "EFI system partition"),
        (2048 + 100 * MiB // SECTOR, 16 * MiB // SECTOR, wi.TYPE_MSR,
         "Microsoft reserved partition"),
        (layout.os.start_sector, layout.os.size // SECTOR, wi.TYPE_BASIC_DATA,
         "Basic data partition"),
        (layout.part("recovery").start_sector, 500 * MiB // SECTOR, wi.TYPE_RECOVERY, ""),
    ]
    rec = table["partitions"][3]
    assert "RequiredPartition" in rec.get("attrs", "")
    # C: fills the space up to the recovery partition, which ends in the last usable MiB.
    assert layout.os.start + layout.os.size == layout.part("recovery").start
    assert layout.size - (layout.part("recovery").start + 500 * MiB) < MiB + 34 * SECTOR


def test_gen2_volumes(gen2: Path, work: Path) -> None:
    spec = wi.WinSpec(generation=2)
    layout = wi.plan(spec)
    kinds = {}
    for part in layout.partitions:
        ids = dict(line.split("=", 1) for line in
                   sh("blkid", "-p", "-O", part.start, "-o", "export", gen2,
                      check=False).splitlines() if "=" in line)
        kinds[part.role] = ids.get("TYPE")
    assert kinds == {"esp": "vfat", "msr": None, "os": "ntfs", "recovery": "ntfs"}
    esp = extract(gen2, layout.part("esp").start, layout.part("esp").size, work / "esp.img")
    with open(esp, "rb") as fh:
        boot = fh.read(512)
    assert boot[0x52:0x5A] == b"FAT32   "
    assert int.from_bytes(boot[0x1C:0x20], "little") == 2048  # hidden sectors: the start
    listing = sh("mdir", "-b", "-i", esp, "::/EFI/Microsoft/Boot")
    assert "bootmgfw.efi" in listing and "BCD" in listing
    efi = sh_bytes("mtype", "-i", esp, "::/EFI/Microsoft/Boot/bootmgfw.efi")
    assert pe_version(efi, work) == "10.0.17763.6414"
    assert "bootx64.efi" in sh("mdir", "-b", "-i", esp, "::/EFI/Boot").lower()
    recovery = volume_of(gen2, layout.part("recovery"), work)
    assert "Winre.wim" in recovery.ls("/Recovery/WindowsRE")
    c = volume_of(gen2, layout.os, work)
    assert "SOFTWARE" in c.ls("/Windows/System32/config")
    software = c.regexport("SOFTWARE", "HKEY_LOCAL_MACHINE\\SOFTWARE", work)
    nt = reg_values(software, "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\"
                    "CurrentVersion")
    assert reg_str(nt["ProductName"]) == "Windows Server 2019 Datacenter"
    with open(c.path, "rb") as fh:
        bs = fh.read(512)
    assert int.from_bytes(bs[0x1C:0x20], "little") == layout.os.start_sector


# --------------------------------------------------------------------------------------------
# Violations: one field changed, and the change is on the disk


def test_violations_in_the_registry(work: Path) -> None:
    spec = wi.WinSpec(
        rdp_enabled=False, select_current=2, image_state="IMAGE_STATE_COMPLETE",
        features={**wi.DEFAULT_FEATURES, "DHCP": True, "Failover-Clustering": True},
        reboot_pending=True, reboot_required=True, windows_update_last_success=None,
        pagefile=("C:\\pagefile.sys 0 0",), architecture="x86",
        sysprep_errors=("2026-11-01 03:00:00, Error SYSPRP Package Foo was installed for a "
                        "user, but not provisioned for all users.",))
    with no_leftovers():
        disk = wi.windows_copy(spec, vhd=False)
    try:
        c = volume_of(disk, wi.plan(spec).os, work)
        system = c.regexport("SYSTEM", "HKEY_LOCAL_MACHINE\\SYSTEM", work)
        sel = reg_values(system, "HKEY_LOCAL_MACHINE\\SYSTEM\\Select")
        assert reg_dword(sel["Current"]) == 2
        base = "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet00{}\\Control\\Terminal Server"
        assert reg_dword(reg_values(system, base.format(2))["fDenyTSConnections"]) == 1
        assert reg_dword(reg_values(system, base.format(1))["fDenyTSConnections"]) == 0
        rules = reg_values(system, "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet002\\Services\\"
                           "SharedAccess\\Parameters\\FirewallPolicy\\FirewallRules")
        assert "|Active=FALSE|" in reg_str(rules["RemoteDesktop-UserMode-In-TCP"])
        mm = reg_values(system, "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet002\\Control\\"
                        "Session Manager\\Memory Management")
        assert reg_multi(mm["PagingFiles"]) == ["C:\\pagefile.sys 0 0"]
        assert "SysWOW64" not in c.ls("/Windows")
        software = c.regexport("SOFTWARE", "HKEY_LOCAL_MACHINE\\SOFTWARE", work)
        cv = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\"
        assert reg_str(reg_values(software, cv + "Setup\\State")["ImageState"]) == (
            "IMAGE_STATE_COMPLETE")
        keys = reg_keys(software)
        assert (cv + "WindowsUpdate\\Auto Update\\RebootRequired").lower() in keys
        assert (cv + "Component Based Servicing\\RebootPending").lower() in keys
        assert (cv + "WindowsUpdate\\Auto Update\\Results\\Install").lower() not in keys
        cache = ("HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\ServerManager\\ServicingStorage\\"
                 "ServerComponentCache\\")
        for name in ("DHCP", "Failover-Clustering"):
            assert reg_dword(reg_values(software, cache + name)["InstallState"]) == 1
        assert c.cat("/Windows/Setup/State/State.ini") == (
            b"[State]\r\nImageState=IMAGE_STATE_COMPLETE\r\n")
        for log in ("/Windows/Panther/setuperr.log",
                    "/Windows/System32/Sysprep/Panther/setuperr.log"):
            assert b"Error SYSPRP Package Foo" in c.cat(log)
    finally:
        disk.unlink()


def test_violations_in_files(work: Path) -> None:
    bad_task = wi.task_xml("Backdoor", "D:\\tools\\agent.exe", "--serve",
                           trigger="LogonTrigger", self_delete=False)
    spec = wi.WinSpec.server("2016", srv_versions={"srv.sys": "10.0.14393.0",
                                                   "srv2.sys": "10.0.14393.0"},
                             scheduled_tasks={"Backdoor": bad_task},
                             bitlocker_volumes=frozenset({"C:"}),
                             files={"Program Files/Microsoft SQL Server/MSSQL/sqlservr.exe":
                                    b"MZ"},
                             registry={"SYSTEM": {"ControlSet001\\Services\\SNMP": {
                                 "Start": 2, "ImagePath": ExpandSz("%SystemRoot%\\snmp.exe")}}})
    disk = wi.windows_copy(spec, vhd=False)
    try:
        layout = wi.plan(spec)
        ids = dict(line.split("=", 1) for line in
                   sh("blkid", "-p", "-O", layout.os.start, "-o", "export", disk,
                      check=False).splitlines() if "=" in line)
        assert ids.get("TYPE") != "ntfs"
        with open(disk, "rb") as fh:
            fh.seek(layout.os.start + 3)
            assert fh.read(8) == wi.BITLOCKER_OEM_ID
        # Undo the BitLocker mark on a cut-out copy of the volume to read the rest.
        c = volume_of(disk, layout.os, work)
        ib.write_at(c.path, 3, b"NTFS    ")
        assert pe_version(c.cat("/Windows/System32/drivers/srv.sys"), work) == "10.0.14393.0"
        assert c.ls("/Windows/System32/Tasks") == ["Backdoor"]
        xml = c.cat("/Windows/System32/Tasks/Backdoor")[2:].decode("utf-16-le")
        assert "<LogonTrigger>" in xml and "schtasks" not in xml
        assert c.cat("/Program Files/Microsoft SQL Server/MSSQL/sqlservr.exe") == b"MZ"
        software = c.regexport("SOFTWARE", "HKEY_LOCAL_MACHINE\\SOFTWARE", work)
        nt = reg_values(software, "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\"
                        "CurrentVersion")
        assert reg_str(nt["ProductName"]) == "Windows Server 2016 Datacenter"
        assert reg_str(nt["CurrentBuild"]) == "14393"
        system = c.regexport("SYSTEM", "HKEY_LOCAL_MACHINE\\SYSTEM", work)
        snmp = reg_values(system, "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\SNMP")
        assert reg_dword(snmp["Start"]) == 2
        assert snmp["ImagePath"].startswith("hex(2):")
        assert reg_str(snmp["ImagePath"]) == "%SystemRoot%\\snmp.exe"
    finally:
        disk.unlink()


# --------------------------------------------------------------------------------------------
# Data disks


@pytest.mark.parametrize("label", ["gpt", "dos"])
def test_ntfs_data_disk(work: Path, label: str) -> None:
    with no_leftovers():
        start = time.monotonic()
        disk = wi.build_ntfs_data_disk(work / f"data-{label}.vhd", 32 * GiB, label=label,
                                       vhd=True)
    print(f"\nNTFS data disk ({label}, 32 GiB VHD): {time.monotonic() - start:.2f} s")
    info = json.loads(sh("qemu-img", "info", "--output=json", "-f", "vpc", disk))
    assert info["virtual-size"] == 32 * GiB
    table = sfdisk_json(disk)
    assert table["label"] == label
    (part,) = table["partitions"]
    assert part["start"] == 2048
    assert part["type"] == (wi.TYPE_BASIC_DATA if label == "gpt" else "7")
    layout = wi.data_layout(32 * GiB, label=label)
    vol = volume_of(disk, layout.partitions[0], work)
    assert "Windows" not in vol.ls("/")
    assert {"SQLData", "Backups"} <= set(vol.ls("/"))
    disk.unlink()


def test_bitlocker_data_disk(work: Path) -> None:
    disk = wi.build_ntfs_data_disk(work / "data-bl.raw", 1 * GiB, bitlocker=True)
    with open(disk, "rb") as fh:
        fh.seek(MiB + 3)
        assert fh.read(8) == wi.BITLOCKER_OEM_ID
    disk.unlink()
