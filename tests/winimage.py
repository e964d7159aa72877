"""Windows Server disk images for the offline Windows checks, built with real tools, no licence.

There is no Windows in them: the image is what a sysprepped Windows Server leaves on its OS
disk, as far as an offline certifier reads it. Real partition tables (``sfdisk``), real NTFS
(``mkntfs --fast`` with the partition's start sector and 255/63 geometry in the boot sector,
filled through an ``ntfs-3g`` FUSE mount), a real FAT32 EFI system partition (``mkfs.vfat``,
``mtools``), real registry hives (``tests/hives.py``) and real PE files with version resources
(``tests/pefiles.py``). A 127 GiB image is sparse: it costs a few tens of MB.

``WinSpec`` describes the image; its defaults are a compliant Windows Server 2019 Datacenter
for azure-current. Change one field with ``dataclasses.replace`` (or ``spec.but(...)``) to make
a violation. ``build_windows(dest, spec)`` gives a fixed VHD (raw with ``vhd=False``), built
once per spec and cached beside imagebuild's disks (keyed by the spec and by the text of this
file, ``hives.py`` and ``pefiles.py``); ``windows_copy(spec)`` gives a private reflink or sparse
copy in ``imagebuild.scratch_dir()``; ``build_ntfs_data_disk(dest, size)`` an NTFS data disk
(no Windows directory). ``plan(spec)`` says where every partition and volume is.

Layouts (sectors of 512 bytes, first partition at 1 MiB as Azure wants):

- Generation 1, MBR (disk signature ``MBR_DISK_ID``): 1 "System Reserved" NTFS, 500 MiB, type
  07, active (``bootmgr``, ``Boot\\BCD``); 2 C: NTFS, type 07, to the end of the disk. The MBR
  carries the three messages of the Windows MBR boot code at 0x163 (no code).
- Generation 2, GPT: 1 EFI system partition 100 MiB FAT32 (``EFI\\Microsoft\\Boot\\
  bootmgfw.efi``, ``EFI\\Boot\\bootx64.efi``, ``BCD``); 2 Microsoft reserved 16 MiB (no
  filesystem); 3 C: NTFS, basic data; 4 recovery NTFS 500 MiB at the end (``DE94BBA4-...``,
  attributes RequiredPartition + no drive letter, ``Recovery\\WindowsRE\\Winre.wim``).

What C: holds: ``Windows\\System32\\config\\{SYSTEM,SOFTWARE,SAM,SECURITY,DEFAULT}``,
``Windows\\System32\\drivers\\srv.sys``/``srv2.sys``, ``Windows\\SysWOW64`` (AMD64 only),
``Windows\\Setup\\State\\State.ini``, the two ``setuperr.log``, scheduled tasks in
``Windows\\System32\\Tasks``, ``Program Files``, ``Program Files (x86)``, ``ProgramData``,
``Users\\Default\\NTUSER.DAT``, ``Users\\Public``. See ``WinSpec`` for the registry values.

Command line: ``python3 -m tests.winimage build OUT [--gen2] [--raw]``, ``data OUT``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import imagebuild as ib
from tests.imagebuild import SECTOR, GiB, ImageBuildError, MiB

HERE = Path(__file__).resolve().parent
WIN_FORMAT = 1  # bump to rebuild every cached Windows image

MBR_DISK_ID = "0x2b8e1a54"
GPT_DISK_ID = ib.fixed_uuid("windows-gpt-disk").upper()

# Partition types, as sfdisk prints them.
TYPE_NTFS_MBR = "7"
TYPE_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
TYPE_MSR = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE"
TYPE_BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
TYPE_RECOVERY = "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC"

BITLOCKER_OEM_ID = b"-FVE-FS-"

# The messages of the Windows 7+ MBR boot code, at the offset Windows writes them.
_MBR_MESSAGES_OFFSET = 0x163
_MBR_MESSAGES = (b"Invalid partition table\0Error loading operating system\0"
                 b"Missing operating system\0")

RDP_FIREWALL_RULE = (
    "v2.30|Action=Allow|Active={active}|Dir=In|Protocol=6|LPort=3389|"
    "App=%SystemRoot%\\system32\\svchost.exe|Svc=termservice|Name=@FirewallAPI.dll,-28775|"
    "Desc=@FirewallAPI.dll,-28756|EmbedCtxt=@FirewallAPI.dll,-28752|")

#: Roles and features Azure certification rejects (research §2.1), by their Server Manager
#: names; the compliant default has none of them installed.
REJECTED_FEATURES: tuple[str, ...] = (
    "Failover-Clustering", "DHCP", "RemoteAccess", "ADRMS", "WDS", "ISNS", "Multipath-IO",
    "NLB", "PNRP", "SNMP-Service", "WINS", "Wireless-Networking", "Hyper-V",
)
DEFAULT_FEATURES: Mapping[str, bool] = {
    "FS-FileServer": True, "NET-Framework-45-Core": True, "PowerShellRoot": True,
    "PowerShell": True, "WoW64-Support": True, "Windows-Defender": True,
    "Failover-Clustering": False, "DHCP": False, "Hyper-V": False, "SNMP-Service": False,
}

#: Product presets: (ProductName, CurrentBuild, UBR, CurrentVersion, major, minor, srv version)
#: with srv.sys/srv2.sys at or above the WannaCry minimum of each release (research §2.2).
PRODUCTS: dict[str, tuple[str, str, int, str, int | None, int | None, str]] = {
    "2008r2": ("Windows Server 2008 R2 Datacenter", "7601", 24546, "6.1", None, None,
               "6.1.7601.24546"),
    "2012": ("Windows Server 2012 Datacenter", "9200", 24523, "6.2", None, None,
             "6.2.9200.24523"),
    "2012r2": ("Windows Server 2012 R2 Datacenter", "9600", 21620, "6.3", None, None,
               "6.3.9600.21620"),
    "2016": ("Windows Server 2016 Datacenter", "14393", 7428, "6.3", 10, 0,
             "10.0.14393.7428"),
    "2019": ("Windows Server 2019 Datacenter", "17763", 6414, "6.3", 10, 0,
             "10.0.17763.6414"),
    "2022": ("Windows Server 2022 Datacenter", "20348", 2762, "6.3", 10, 0,
             "10.0.20348.2762"),
}


def task_xml(name: str, command: str = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\"
             "powershell.exe", arguments: str = "-NoProfile -ExecutionPolicy Bypass -File "
             "C:\\ProgramData\\FirstBoot\\setup.ps1", *, trigger: str = "BootTrigger",
             self_delete: bool = True, user: str = "S-1-5-18") -> str:
    """Task Scheduler 1.2 XML as ``schtasks /Create /XML`` stores it: one ``Exec`` action
    running ``command arguments``, then (``self_delete``) ``schtasks /Delete /TN name /F``.

    ``trigger``: ``BootTrigger`` (at startup), ``LogonTrigger``, ``TimeTrigger``, ...
    """
    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    actions = [f"    <Exec>\r\n      <Command>{esc(command)}</Command>\r\n"
               f"      <Arguments>{esc(arguments)}</Arguments>\r\n    </Exec>\r\n"]
    if self_delete:
        actions.append("    <Exec>\r\n      <Command>C:\\Windows\\System32\\schtasks.exe"
                       f"</Command>\r\n      <Arguments>/Delete /TN {esc(name)} /F</Arguments>"
                       "\r\n    </Exec>\r\n")
    trig = (f"    <{trigger}>\r\n      <Enabled>true</Enabled>\r\n"
            + ("      <StartBoundary>2026-11-01T03:00:00</StartBoundary>\r\n"
               if trigger == "TimeTrigger" else "")
            + f"    </{trigger}>\r\n")
    return (
        '<?xml version="1.0" encoding="UTF-16"?>\r\n'
        '<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">\r\n'
        f"  <RegistrationInfo>\r\n    <URI>\\{esc(name)}</URI>\r\n  </RegistrationInfo>\r\n"
        f"  <Triggers>\r\n{trig}  </Triggers>\r\n"
        '  <Principals>\r\n    <Principal id="Author">\r\n'
        f"      <UserId>{esc(user)}</UserId>\r\n      <RunLevel>HighestAvailable</RunLevel>\r\n"
        "    </Principal>\r\n  </Principals>\r\n"
        "  <Settings>\r\n    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\r\n"
        "    <StartWhenAvailable>true</StartWhenAvailable>\r\n"
        "    <ExecutionTimeLimit>PT1H</ExecutionTimeLimit>\r\n    <Enabled>true</Enabled>\r\n"
        "  </Settings>\r\n"
        f'  <Actions Context="Author">\r\n{"".join(actions)}  </Actions>\r\n'
        "</Task>\r\n")


FIRST_BOOT_TASK = "AzureImageFirstBoot"


def _recent_update() -> str:
    """Ten days ago at 03:00 UTC, as Windows Update writes LastSuccessTime."""
    import datetime

    day = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=10)
    return f"{day.isoformat()} 03:00:00"


def _default_tasks() -> dict[str, str]:
    return {FIRST_BOOT_TASK: task_xml(FIRST_BOOT_TASK)}


@dataclass(frozen=True)
class WinSpec:
    """A Windows Server OS disk. Defaults: compliant Windows Server 2019 Datacenter, Gen1.

    Registry paths below are relative to the hive (``SYSTEM``: ``ControlSet00N`` is the set
    ``select_current`` names).
    """

    #: 1: MBR, System Reserved + C:; 2: GPT, ESP + MSR + C: + recovery.
    generation: int = 1
    #: Virtual size in bytes (a whole number of MiB); Azure's Windows images are 127 GiB.
    size: int = 127 * GiB
    # SOFTWARE\Microsoft\Windows NT\CurrentVersion
    product_name: str = "Windows Server 2019 Datacenter"
    edition_id: str = "ServerDatacenter"
    current_build: str = "17763"
    ubr: int = 6414
    installation_type: str = "Server"  # "Server Core" on a Core image
    major_version: int | None = 10  # CurrentMajorVersionNumber (absent before 2016)
    minor_version: int | None = 0
    current_version: str = "6.3"
    #: SOFTWARE\...\Setup\State ImageState and C:\Windows\Setup\State\State.ini (ANSI).
    #: None: neither exists (never sysprepped).
    image_state: str | None = "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE"
    #: Lines of C:\Windows\System32\Sysprep\Panther\setuperr.log and
    #: C:\Windows\Panther\setuperr.log (both written, CRLF, ANSI; empty files by default).
    sysprep_errors: tuple[str, ...] = ()
    #: SYSTEM Control\Terminal Server fDenyTSConnections 0 (True) / 1, and the firewall rule
    #: RemoteDesktop-UserMode-In-TCP Active=TRUE / FALSE.
    rdp_enabled: bool = True
    #: SYSTEM\Select Current/Default/LastKnownGood. When not 1, ControlSet001 is a stale decoy
    #: holding the opposite RDP setting: a checker must follow Select.
    select_current: int = 1
    #: Session Manager\Environment PROCESSOR_ARCHITECTURE; "AMD64" also makes Windows\SysWOW64.
    architecture: str = "AMD64"
    #: Memory Management PagingFiles. Azure's own images since 2019 say "?:\pagefile.sys"
    #: (system-managed, on the temporary disk D: that Azure provisions); "D:\pagefile.sys 0 0"
    #: is the older form; "C:\pagefile.sys ..." is the violation.
    pagefile: tuple[str, ...] = ("?:\\pagefile.sys",)
    #: SOFTWARE\Microsoft\ServerManager\ServicingStorage\ServerComponentCache\<name>
    #: InstallState: True -> 1 (installed), False -> 0 (available). Absent names: no key.
    features: Mapping[str, bool] = field(default_factory=lambda: dict(DEFAULT_FEATURES))
    #: C:\Windows\System32\drivers\<name> -> FileVersion of a real PE with a version resource.
    srv_versions: Mapping[str, str] = field(default_factory=lambda: {
        "srv.sys": "10.0.17763.6414", "srv2.sys": "10.0.17763.6414"})
    #: SOFTWARE\...\WindowsUpdate\Auto Update\Results\Install LastSuccessTime (None: absent).
    #: Default: ten days before the build (a date, so the cached image changes once a day and
    #: the recency rule judges it as recent whenever the tests run).
    windows_update_last_success: str | None = field(default_factory=_recent_update)
    #: SOFTWARE\...\WindowsUpdate\Auto Update\RebootRequired (key with a value) when True.
    reboot_required: bool = False
    #: SOFTWARE\...\Component Based Servicing\RebootPending (key with a value) when True.
    reboot_pending: bool = False
    #: C:\Windows\System32\Tasks\<name>, UTF-16LE with BOM (plus TaskCache\Tree\<name> in
    #: SOFTWARE). Default: one compliant first-boot task that deletes itself.
    scheduled_tasks: Mapping[str, str] = field(default_factory=_default_tasks)
    #: Volumes whose boot sector OEM ID is "-FVE-FS-" (BitLocker): "C:", "System Reserved"
    #: (Gen1), "Recovery" (Gen2).
    bitlocker_volumes: frozenset[str] = frozenset()
    #: Extra SOFTWARE keys (``Classes\.extNNNNNN`` with a 3 KB value; one
    #: ``Microsoft\VendorNNNNN`` per ten): the size and fan-out of a real hive (Classes has
    #: tens of thousands of keys, a patched Server's hive is 50-100 MiB), for the benchmark.
    filler_keys: int = 0
    #: MiB of free hive bins appended to SOFTWARE (``hives.pad``): a real hive's size.
    software_padding_mib: int = 0
    #: SAM accounts (name -> (RID, disabled)); Administrator and Guest as Windows has them.
    accounts: Mapping[str, tuple[int, bool]] = field(default_factory=lambda: {
        "Administrator": (500, False), "Guest": (501, True), "DefaultAccount": (503, True)})
    #: Extra files on C: ("Program Files/Microsoft SQL Server/x.dll" -> content).
    files: Mapping[str, bytes | str] = field(default_factory=dict)
    #: Extra registry keys merged into a hive: {"SYSTEM": {"ControlSet001\\...": {...}}};
    #: hives: SYSTEM, SOFTWARE, SAM, SECURITY, DEFAULT.
    registry: Mapping[str, Mapping[str, Mapping[str, object]]] = field(default_factory=dict)
    computer_name: str = "WIN-GENERALIZED"

    @classmethod
    def server(cls, release: str, **changes: Any) -> WinSpec:
        """A compliant spec for a release in ``PRODUCTS`` ("2012r2", "2016", "2022", ...)."""
        name, build, ubr, cur, major, minor, srv = PRODUCTS[release]
        base: dict[str, Any] = dict(
            product_name=name, current_build=build, ubr=ubr, current_version=cur,
            major_version=major, minor_version=minor,
            srv_versions={"srv.sys": srv, "srv2.sys": srv})
        return cls(**{**base, **changes})

    def but(self, **changes: Any) -> WinSpec:
        """A copy with these fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (sets and tuples as sorted lists / lists)."""
        out = dataclasses.asdict(self)
        out["bitlocker_volumes"] = sorted(self.bitlocker_volumes)
        out["files"] = {k: (v.hex() if isinstance(v, bytes) else v)
                        for k, v in self.files.items()}
        out["registry"] = json.loads(json.dumps(self.registry, default=_json_default))
        return out

    def key(self) -> str:
        """Cache key: this spec, WIN_FORMAT and the text of the builder files."""
        h = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True,
                                      default=_json_default).encode())
        h.update(str(WIN_FORMAT).encode())
        for name in ("winimage.py", "hives.py", "pefiles.py"):
            path = HERE / name
            h.update(path.read_bytes() if path.exists() else b"-")
        return h.hexdigest()[:16]

    def __hash__(self) -> int:
        return hash(self.key())

    @property
    def file_version(self) -> str:
        """The version Windows's own binaries carry, e.g. ``10.0.17763.6414``."""
        if self.major_version is not None:
            return f"{self.major_version}.{self.minor_version or 0}.{self.build_number}"
        return f"{self.current_version}.{self.build_number}"

    @property
    def build_number(self) -> str:
        """``CurrentBuild.UBR``, e.g. ``17763.6414``."""
        return f"{self.current_build}.{self.ubr}"


def _json_default(obj: object) -> object:
    if isinstance(obj, bytes):
        return {"bytes": obj.hex()}
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return {type(obj).__name__: repr(obj)}


# --------------------------------------------------------------------------------------------
# Layout


@dataclass(frozen=True)
class WinPartition:
    """One partition and the volume in it (``fs`` None: no filesystem, e.g. the MSR)."""

    number: int
    role: str  # "system" (System Reserved), "esp", "msr", "os" (C:), "recovery", "data"
    start: int  # bytes from the start of the disk
    size: int
    type: str  # as sfdisk -d prints it
    fs: str | None  # "ntfs", "vfat" or None
    label: str  # volume label
    name: str = ""  # GPT partition name
    serial: str = ""  # NTFS serial (16 hex digits) or vfat volume ID (8)

    @property
    def start_sector(self) -> int:
        return self.start // SECTOR


@dataclass(frozen=True)
class WinLayout:
    """Where everything is on a Windows disk."""

    label: str  # "dos" or "gpt"
    size: int
    disk_id: str
    partitions: tuple[WinPartition, ...]

    def part(self, role: str) -> WinPartition:
        """The partition with this role."""
        for p in self.partitions:
            if p.role == role:
                return p
        raise KeyError(role)

    @property
    def os(self) -> WinPartition:
        """The C: partition."""
        return self.part("os")


def _serial(name: str, digits: int = 16) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:digits].upper()


def plan(spec: WinSpec = WinSpec()) -> WinLayout:
    """The partitions ``build_windows(spec)`` makes."""
    if spec.size % MiB:
        raise ValueError("size must be a whole number of MiB")
    sectors = spec.size // SECTOR
    first = 2048
    key = spec.key()
    parts: list[WinPartition] = []
    if spec.generation == 1:
        sys_size = 500 * MiB
        parts.append(WinPartition(1, "system", first * SECTOR, sys_size, TYPE_NTFS_MBR, "ntfs",
                                  "System Reserved", serial=_serial(key + "system")))
        os_start = first * SECTOR + sys_size
        parts.append(WinPartition(2, "os", os_start, spec.size - os_start, TYPE_NTFS_MBR,
                                  "ntfs", "Windows", serial=_serial(key + "os")))
        return WinLayout("dos", spec.size, MBR_DISK_ID, tuple(parts))
    if spec.generation != 2:
        raise ValueError(f"generation must be 1 or 2, not {spec.generation}")
    esp_size, msr_size, rec_size = 100 * MiB, 16 * MiB, 500 * MiB
    last_usable = sectors - 34  # the backup GPT: 32 sectors of entries and the header
    rec_start = ((last_usable + 1) * SECTOR - rec_size) // MiB * MiB
    esp_start = first * SECTOR
    msr_start = esp_start + esp_size
    os_start = msr_start + msr_size
    parts += [
        WinPartition(1, "esp", esp_start, esp_size, TYPE_ESP, "vfat", "SYSTEM",
                     "EFI system partition", _serial(key + "esp", 8)),
        WinPartition(2, "msr", msr_start, msr_size, TYPE_MSR, None, "",
                     "Microsoft reserved partition"),
        WinPartition(3, "os", os_start, rec_start - os_start, TYPE_BASIC_DATA, "ntfs",
                     "Windows", "Basic data partition", _serial(key + "os")),
        WinPartition(4, "recovery", rec_start, rec_size, TYPE_RECOVERY, "ntfs", "Recovery",
                     "", _serial(key + "recovery")),
    ]
    return WinLayout("gpt", spec.size, GPT_DISK_ID, tuple(parts))


def _sfdisk_script(layout: WinLayout) -> str:
    lines = [f"label: {layout.label}", f"label-id: {layout.disk_id}", "unit: sectors", ""]
    for p in layout.partitions:
        fields = [f"start={p.start // SECTOR}", f"size={p.size // SECTOR}", f"type={p.type}"]
        if layout.label == "dos" and p.role == "system":
            fields.append("bootable")
        if layout.label == "gpt":
            fields.append(f"uuid={ib.fixed_uuid('windows-part-' + p.role).upper()}")
            if p.name:
                fields.append(f'name="{p.name}"')
            if p.role == "recovery":
                fields.append('attrs="RequiredPartition,GUID:63"')
            if p.role == "msr":
                fields.append('attrs="GUID:63"')  # no drive letter, as Windows sets it
        lines.append(", ".join(fields))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Registry and file contents


def _hives_module() -> Any:
    from tests import hives  # written alongside; imported late so this module loads without it
    return hives


def _pe(version: str, name: str) -> bytes:
    from tests import pefiles
    return bytes(pefiles.pe_with_version(version, original_filename=name))


def _merge(base: dict[str, dict[str, object]],
           extra: Mapping[str, Mapping[str, object]]) -> dict[str, dict[str, object]]:
    out = {k: dict(v) for k, v in base.items()}
    for key, values in extra.items():
        out.setdefault(key, {}).update(values)
    return out


def _system_keys(spec: WinSpec) -> dict[str, dict[str, object]]:
    hv = _hives_module()

    def control_set(rdp: bool) -> dict[str, dict[str, object]]:
        active = "TRUE" if rdp else "FALSE"
        return {
            "Control\\ComputerName\\ComputerName": {"ComputerName": spec.computer_name},
            "Control\\Terminal Server": {"fDenyTSConnections": 0 if rdp else 1},
            "Control\\Terminal Server\\WinStations\\RDP-Tcp": {
                "PortNumber": 3389, "UserAuthentication": 1, "SecurityLayer": 1,
                "LanAdapter": 0},
            "Control\\Session Manager\\Environment": {
                "PROCESSOR_ARCHITECTURE": spec.architecture,
                "OS": "Windows_NT",
                "Path": hv.ExpandSz("%SystemRoot%\\system32;%SystemRoot%;"
                                    "%SystemRoot%\\System32\\Wbem"),
            },
            "Control\\Session Manager\\Memory Management": {
                "PagingFiles": list(spec.pagefile), "ClearPageFileAtShutdown": 0},
            "Control\\TimeZoneInformation": {"RealTimeIsUniversal": 1,
                                             "TimeZoneKeyName": "UTC"},
            "Services\\TermService": {"Start": 3, "Type": 32},
            "Services\\WinRM": {"Start": 2, "Type": 32},
            "Services\\MpsSvc": {"Start": 2, "Type": 32},
            "Services\\SharedAccess\\Parameters\\FirewallPolicy\\FirewallRules": {
                "RemoteDesktop-UserMode-In-TCP": RDP_FIREWALL_RULE.format(active=active)},
            "Services\\SharedAccess\\Parameters\\FirewallPolicy\\StandardProfile": {
                "EnableFirewall": 1},
            "Services\\SharedAccess\\Parameters\\FirewallPolicy\\PublicProfile": {
                "EnableFirewall": 1},
            "Services\\SharedAccess\\Parameters\\FirewallPolicy\\DomainProfile": {
                "EnableFirewall": 1},
        }

    cur = spec.select_current
    keys: dict[str, dict[str, object]] = {
        "Select": {"Current": cur, "Default": cur, "LastKnownGood": cur, "Failed": 0},
        "MountedDevices": {},
    }
    sets = {cur: spec.rdp_enabled}
    if cur != 1:
        sets[1] = not spec.rdp_enabled  # a stale control set saying the opposite
    for n, rdp in sorted(sets.items()):
        for sub, values in control_set(rdp).items():
            keys[f"ControlSet{n:03d}\\{sub}"] = values
    return keys


def _software_keys(spec: WinSpec) -> dict[str, dict[str, object]]:
    nt: dict[str, object] = {
        "ProductName": spec.product_name, "EditionID": spec.edition_id,
        "CurrentBuild": spec.current_build, "CurrentBuildNumber": spec.current_build,
        "UBR": spec.ubr, "InstallationType": spec.installation_type,
        "CurrentVersion": spec.current_version, "CurrentType": "Multiprocessor Free",
        "SystemRoot": "C:\\Windows", "PathName": "C:\\Windows",
        "RegisteredOwner": "Windows User",
    }
    if spec.major_version is not None:
        nt["CurrentMajorVersionNumber"] = spec.major_version
    if spec.minor_version is not None:
        nt["CurrentMinorVersionNumber"] = spec.minor_version
    cv = "Microsoft\\Windows\\CurrentVersion"
    keys: dict[str, dict[str, object]] = {
        "Microsoft\\Windows NT\\CurrentVersion": nt,
        cv: {"ProgramFilesDir": "C:\\Program Files",
             "ProgramFilesDir (x86)": "C:\\Program Files (x86)"},
    }
    if spec.image_state is not None:
        keys[f"{cv}\\Setup\\State"] = {"ImageState": spec.image_state}
    for name, installed in sorted(spec.features.items()):
        keys["Microsoft\\ServerManager\\ServicingStorage\\ServerComponentCache\\"
             + name] = {"InstallState": 1 if installed else 0}
    wu = f"{cv}\\WindowsUpdate\\Auto Update"
    if spec.windows_update_last_success is not None:
        keys[f"{wu}\\Results\\Install"] = {
            "LastSuccessTime": spec.windows_update_last_success, "LastError": 0}
    if spec.reboot_required:
        keys[f"{wu}\\RebootRequired"] = {
            "9a2fd5d1-b7cb-4c43-9e3f-7c2a4c84cfe1": 1}
    if spec.reboot_pending:
        keys[f"{cv}\\Component Based Servicing\\RebootPending"] = {
            "Package_for_RollupFix~31bf3856ad364e35~amd64~~17763.6414.1.8": 1}
    for name in sorted(spec.scheduled_tasks):
        keys["Microsoft\\Windows NT\\CurrentVersion\\Schedule\\TaskCache\\Tree\\" + name] = {
            "Id": "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, "task:" + name)).upper() + "}",
            "Index": 3}
    for index in range(spec.filler_keys):
        keys[f"Classes\\.ext{index:06d}"] = {"": f"file{index}",
                                              "Blob": bytes([index % 251]) * 3000}
        if index % 10 == 0:
            keys[f"Microsoft\\Vendor{index // 10:05d}"] = {"Data": bytes(2000)}
    return keys


def _sam_keys(spec: WinSpec) -> dict[str, dict[str, object]]:
    users = "SAM\\Domains\\Account\\Users"
    keys: dict[str, dict[str, object]] = {
        "SAM\\Domains\\Account": {"F": bytes(0x68)},
        f"{users}\\Names": {},
    }
    for name, (rid, disabled) in sorted(spec.accounts.items()):
        f = bytearray(0x50)
        f[0x30:0x34] = rid.to_bytes(4, "little")
        acb = 0x0210 | (0x0001 if disabled else 0)  # normal account, password never expires
        f[0x38:0x3A] = acb.to_bytes(2, "little")
        keys[f"{users}\\{rid:08X}"] = {"F": bytes(f), "V": name.encode("utf-16-le")}
        keys[f"{users}\\Names\\{name}"] = {}
    return keys


def _hive_bytes(spec: WinSpec) -> dict[str, bytes]:
    hv = _hives_module()
    base: dict[str, tuple[str, dict[str, dict[str, object]]]] = {
        "SYSTEM": ("HKEY_LOCAL_MACHINE\\SYSTEM", _system_keys(spec)),
        "SOFTWARE": ("HKEY_LOCAL_MACHINE\\SOFTWARE", _software_keys(spec)),
        "SAM": ("HKEY_LOCAL_MACHINE\\SAM", _sam_keys(spec)),
        "SECURITY": ("HKEY_LOCAL_MACHINE\\SECURITY", {"Policy": {}}),
        "DEFAULT": ("HKEY_USERS\\.DEFAULT",
                    {"Control Panel\\International": {"LocaleName": "en-US"}}),
    }
    unknown = set(spec.registry) - set(base)
    if unknown:
        raise ValueError(f"registry: unknown hives {sorted(unknown)}")
    out = {}
    for name, (prefix, keys) in base.items():
        out[name] = bytes(hv.hive(prefix, _merge(keys, spec.registry.get(name, {}))))
    if spec.software_padding_mib:
        out["SOFTWARE"] = bytes(hv.pad(out["SOFTWARE"], spec.software_padding_mib))
    out["NTUSER.DAT"] = bytes(hv.hive("HKEY_USERS\\DefaultUser", {
        "Control Panel\\Desktop": {"WallPaper": ""}}))
    return out


def _crlf(lines: Sequence[str]) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode("cp1252", errors="replace")


def os_files(spec: WinSpec) -> tuple[list[str], dict[str, bytes]]:
    """``(directories, files)`` of C:, paths with ``/`` and Windows's capitalisation."""
    dirs = ["Windows/System32/config", "Windows/System32/drivers", "Windows/System32/Tasks",
            "Windows/System32/Sysprep/Panther", "Windows/Panther", "Windows/Setup/State",
            "Windows/Temp", "Program Files/Common Files", "ProgramData/FirstBoot",
            "Users/Default", "Users/Public", "PerfLogs"]
    if spec.architecture.upper() == "AMD64":
        dirs += ["Windows/SysWOW64", "Program Files (x86)"]
    hives = _hive_bytes(spec)
    files: dict[str, bytes] = {
        f"Windows/System32/config/{name}": data for name, data in hives.items()
        if name != "NTUSER.DAT"}
    files["Users/Default/NTUSER.DAT"] = hives["NTUSER.DAT"]
    for name, version in sorted(spec.srv_versions.items()):
        files[f"Windows/System32/drivers/{name}"] = _pe(version, name)
    if spec.image_state is not None:
        files["Windows/Setup/State/State.ini"] = _crlf(["[State]",
                                                        f"ImageState={spec.image_state}"])
    log = _crlf(spec.sysprep_errors)
    files["Windows/System32/Sysprep/Panther/setuperr.log"] = log
    files["Windows/Panther/setuperr.log"] = log
    for name, xml in sorted(spec.scheduled_tasks.items()):
        files[f"Windows/System32/Tasks/{name}"] = b"\xff\xfe" + xml.encode("utf-16-le")
    files["ProgramData/FirstBoot/setup.ps1"] = _crlf([
        "# First-boot configuration, run once by the scheduled task",
        "Set-Service -Name WinRM -StartupType Automatic"])
    for path, data in spec.files.items():
        files[path.replace("\\", "/").lstrip("/")] = (
            data.encode() if isinstance(data, str) else bytes(data))
    return dirs, files


# --------------------------------------------------------------------------------------------
# Filesystems


def _ntfs_volume(vol: Path, part: WinPartition, dirs: Sequence[str],
                 files: Mapping[str, bytes], work: Path) -> None:
    """An NTFS volume of the partition's size in ``vol``, holding ``dirs`` and ``files``."""
    vol.unlink(missing_ok=True)
    with open(vol, "wb") as fh:
        fh.truncate(part.size)
    ib.run(["mkntfs", "--fast", "--force", "--quiet", "--label", part.label,
            "--partition-start", str(part.start_sector), "--heads", "255",
            "--sectors-per-track", "63", "--sector-size", "512", vol])
    ib.run(["ntfslabel", "--quiet", f"--new-serial={part.serial}", vol])
    if dirs or files:
        _fill_ntfs(vol, dirs, files, work)


def _fill_ntfs(vol: Path, dirs: Sequence[str], files: Mapping[str, bytes],
               work: Path) -> None:
    mnt = Path(tempfile.mkdtemp(dir=work, prefix="ntfs-mnt-"))
    log = mnt.with_suffix(".log")
    with open(log, "wb") as logfh:
        proc = subprocess.Popen(["ntfs-3g", "-o", "no_detach", os.fspath(vol), os.fspath(mnt)],
                                stdin=subprocess.DEVNULL, stdout=logfh, stderr=logfh)
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ImageBuildError(f"ntfs-3g {vol}: not mounted: "
                                      f"{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.01)
        for d in dirs:
            (mnt / d).mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            path = mnt / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    finally:
        if os.path.ismount(mnt):
            ib.run(["fusermount", "-u", mnt])
        try:
            proc.wait(timeout=60)  # the last writes are flushed when ntfs-3g exits
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise ImageBuildError(f"ntfs-3g {vol}: did not exit after unmount") from None
        mnt.rmdir()
    if proc.returncode != 0:
        raise ImageBuildError(f"ntfs-3g {vol} exited {proc.returncode}: "
                              f"{log.read_text(errors='replace')[-2000:]}")


def _vfat_volume(vol: Path, part: WinPartition, files: Mapping[str, bytes],
                 work: Path) -> None:
    vol.unlink(missing_ok=True)
    with open(vol, "wb") as fh:
        fh.truncate(part.size)
    ib.run(["mkfs.vfat", "-F", "32", "-S", "512", "-s", "1", "-h", str(part.start_sector),
            "-i", part.serial, "-n", part.label, vol])
    made: set[str] = set()
    for rel in sorted(files):
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                ib.run(["mmd", "-i", vol, f"::/{d}"])
                made.add(d)
        src = work / "vfat-file"
        src.write_bytes(files[rel])
        ib.run(["mcopy", "-i", vol, src, f"::/{rel}"])
        src.unlink()


def _bcd_placeholder(spec: WinSpec) -> bytes:
    # The BCD store is a registry hive; an empty one under its usual mount name.
    return bytes(_hives_module().hive("HKEY_LOCAL_MACHINE\\BCD00000000", {
        "Description": {"KeyName": "BCD00000000", "System": 1, "TreatAsSystem": 1}}))


def _write_volume(disk: Path, vol: Path, part: WinPartition, bitlocker: bool) -> None:
    if bitlocker:
        ib.write_at(vol, 3, BITLOCKER_OEM_ID)
    ib.sparse_copy(vol, disk, dst_offset=part.start, truncate=False)


# --------------------------------------------------------------------------------------------
# Disks


def _bitlocker_role(name: str) -> str:
    return {"c:": "os", "c": "os", "os": "os", "system reserved": "system",
            "system": "system", "recovery": "recovery"}.get(name.lower(), name.lower())


def build_windows_raw(dest: Path, spec: WinSpec = WinSpec()) -> WinLayout:
    """Build the raw disk of ``spec`` in ``dest`` (uncached). Returns its layout."""
    layout = plan(spec)
    bitlocker = {_bitlocker_role(v) for v in spec.bitlocker_volumes}
    unknown = bitlocker - {p.role for p in layout.partitions if p.fs == "ntfs"}
    if unknown:
        raise ValueError(f"bitlocker_volumes: no NTFS volume {sorted(unknown)} on this layout")
    dest = Path(dest)
    dest.unlink(missing_ok=True)
    with open(dest, "wb") as fh:
        fh.truncate(spec.size)
    ib.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", dest],
           input=_sfdisk_script(layout).encode())
    if layout.label == "dos":
        ib.write_at(dest, _MBR_MESSAGES_OFFSET, _MBR_MESSAGES)
    work = Path(tempfile.mkdtemp(dir=ib.scratch_dir(), prefix="win-"))
    try:
        bcd = _bcd_placeholder(spec)
        bootmgr = _pe(spec.file_version, "bootmgr.exe")
        for part in layout.partitions:
            vol = work / f"{part.role}.img"
            if part.role == "os":
                dirs, files = os_files(spec)
            elif part.role == "system":
                dirs, files = ["Boot"], {"bootmgr": bootmgr, "Boot/BCD": bcd}
            elif part.role == "recovery":
                dirs, files = ["Recovery/WindowsRE"], {
                    "Recovery/WindowsRE/Winre.wim": b"MSWIM\0\0\0" + bytes(200),
                    "Recovery/WindowsRE/ReAgent.xml": b"\xff\xfe" + (
                        '<?xml version="1.0" encoding="utf-16"?><WindowsRE version="2.0">'
                        '<WinreBCD id="{00000000-0000-0000-0000-000000000000}"/>'
                        "</WindowsRE>").encode("utf-16-le")}
            elif part.role == "esp":
                efi = _pe(spec.file_version, "bootmgfw.efi")
                _vfat_volume(vol, part, {"EFI/Microsoft/Boot/bootmgfw.efi": efi,
                                         "EFI/Microsoft/Boot/BCD": bcd,
                                         "EFI/Boot/bootx64.efi": efi}, work)
                _write_volume(dest, vol, part, False)
                vol.unlink()
                continue
            else:
                continue  # the MSR: no filesystem
            _ntfs_volume(vol, part, dirs, files, work)
            _write_volume(dest, vol, part, part.role in bitlocker)
            vol.unlink()
    finally:
        ib._rmtree(work)
    return layout


def _store() -> Path:
    path = ib.store_dir() / "windows"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_path(spec: WinSpec = WinSpec(), *, vhd: bool = True) -> Path:
    """Where ``cached_windows(spec)`` keeps the image (it may not exist yet)."""
    return _store() / f"win{spec.generation}-{spec.key()}.{'vhd' if vhd else 'raw'}"


def cached_windows(spec: WinSpec = WinSpec(), *, vhd: bool = True) -> Path:
    """The cached image of ``spec`` (read only!): built once, under a lock."""
    key = spec.key()
    path = cache_path(spec, vhd=vhd)
    if not path.exists():
        with ib.locked(f"windows-{key}"):
            if not path.exists():
                ib._prune(path.parent, key)
                start = time.monotonic()
                raw = path.with_name(f".{path.stem}.{os.getpid()}.raw")
                try:
                    build_windows_raw(raw, spec)
                    if vhd:
                        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                        ib.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o",
                                "subformat=fixed,force_size=on", raw, tmp])
                        tmp.rename(path)
                    else:
                        raw.rename(path)
                finally:
                    raw.unlink(missing_ok=True)
                ib._log(f"Windows Gen{spec.generation} image built in "
                        f"{time.monotonic() - start:.1f} s: {path}")
    ib._touch(path)
    return path


def build_windows(dest: Path, spec: WinSpec = WinSpec(), *, vhd: bool = True) -> Path:
    """A Windows Server image of ``spec`` at ``dest``: a fixed VHD (``vhd=False``: raw),
    a reflink or sparse copy of the cached build. Returns ``dest``."""
    dest = Path(dest)
    ib.clone_file(cached_windows(spec, vhd=vhd), dest)
    return dest


def windows_copy(spec: WinSpec = WinSpec(), *, vhd: bool = True) -> Path:
    """A private copy of the image of ``spec`` in ``imagebuild.scratch_dir()`` (delete it when
    done)."""
    suffix = "vhd" if vhd else "raw"
    dest = ib.scratch_dir() / f"win{spec.generation}-{uuid.uuid4().hex[:12]}.{suffix}"
    return build_windows(dest, spec, vhd=vhd)


def data_layout(size: int, *, label: str = "gpt") -> WinLayout:
    """The layout ``build_ntfs_data_disk`` makes: one NTFS partition from 1 MiB to the end."""
    start = MiB
    end = size - (34 * SECTOR if label == "gpt" else 0)
    end = end // MiB * MiB if label == "gpt" else end
    ptype = TYPE_BASIC_DATA if label == "gpt" else TYPE_NTFS_MBR
    disk_id = ib.fixed_uuid("windows-data-disk").upper() if label == "gpt" else "0x4d415441"
    part = WinPartition(1, "data", start, end - start, ptype, "ntfs", "Data",
                        "Basic data partition" if label == "gpt" else "",
                        _serial(f"data-{size}-{label}"))
    return WinLayout(label, size, disk_id, (part,))


def build_ntfs_data_disk(dest: Path, size: int = 4 * GiB, *, label: str = "gpt",
                         vhd: bool = False, bitlocker: bool = False,
                         files: Mapping[str, bytes] | None = None) -> Path:
    """An NTFS data disk: one partition at 1 MiB (GPT basic data, or MBR type 07 with
    ``label="dos"``), volume label "Data", a few data files and no Windows directory.
    ``bitlocker``: the volume's OEM ID is "-FVE-FS-" (allowed on data disks). Raw by
    default; ``vhd``: a fixed VHD. Returns ``dest``."""
    if size % MiB:
        raise ValueError("size must be a whole number of MiB")
    layout = data_layout(size, label=label)
    dest = Path(dest)
    raw = dest.with_name(f".{dest.name}.{os.getpid()}.raw") if vhd else dest
    raw.unlink(missing_ok=True)
    with open(raw, "wb") as fh:
        fh.truncate(size)
    work = Path(tempfile.mkdtemp(dir=ib.scratch_dir(), prefix="windata-"))
    try:
        ib.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", raw],
               input=_sfdisk_script(layout).encode())
        part = layout.partitions[0]
        vol = work / "data.img"
        content = dict(files) if files is not None else {
            "SQLData/master.mdf": b"\x01\x0f" + bytes(8190),
            "Backups/readme.txt": b"Nightly backups land here.\r\n"}
        _ntfs_volume(vol, part, ["SQLData", "Backups"], content, work)
        _write_volume(raw, vol, part, bitlocker)
        if vhd:
            ib.to_vhd(raw, dest)
    finally:
        ib._rmtree(work)
        if vhd:
            raw.unlink(missing_ok=True)
    return dest


# --------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m tests.winimage {build,data}``."""
    parser = argparse.ArgumentParser(prog="python3 -m tests.winimage",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_build = sub.add_parser("build", help="a compliant Windows Server 2019 OS disk")
    p_build.add_argument("out", type=Path)
    p_build.add_argument("--gen2", action="store_true", help="GPT/UEFI layout")
    p_build.add_argument("--raw", action="store_true", help="raw, not a fixed VHD")
    p_data = sub.add_parser("data", help="an NTFS data disk")
    p_data.add_argument("out", type=Path)
    p_data.add_argument("--size", type=int, default=4, help="GiB (default 4)")
    p_data.add_argument("--vhd", action="store_true")
    args = parser.parse_args(argv)
    start = time.monotonic()
    if args.cmd == "build":
        spec = WinSpec(generation=2 if args.gen2 else 1)
        build_windows(args.out, spec, vhd=not args.raw)
        print(json.dumps({"path": str(args.out), "layout": dataclasses.asdict(plan(spec)),
                          "seconds": round(time.monotonic() - start, 2)}, indent=1))
    else:
        build_ntfs_data_disk(args.out, args.size * GiB, vhd=args.vhd)
        print(f"{args.out}: NTFS data disk, {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
