"""Windows facts from real hives (hivexregedit, tests/hives.py) and real PE files (mingw-w64
binutils, tests/pefiles.py); damaged and hostile input gives a clean error or None."""

from __future__ import annotations

import os
import random
import shutil
import struct

import pytest

from tests import hives, pefiles
from vmimage.facts.windows import pe, system
from vmimage.facts.windows.registry import Hive, current_control_set, decode, read_hive
from vmimage.targets.base import UnreadableError
from vmimage.targets.rootdir import RootDirTarget

needs_hivex = pytest.mark.skipif(shutil.which("hivexregedit") is None,
                                 reason="hivexregedit (libwin-hivex-perl) is not installed")
needs_mingw = pytest.mark.skipif(not pefiles.have_tools(),
                                 reason="binutils-mingw-w64-x86-64 is not installed")

RDP_RULE = ("v2.30|Action=Allow|Active={}|Dir=In|Protocol=6|LPort=3389|App=%SystemRoot%\\"
            "system32\\svchost.exe|Svc=termservice|Name=@FirewallAPI.dll,-28775|"
            "EmbedCtxt=@FirewallAPI.dll,-28752|")
OTHER_RULE = "v2.30|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=445|EmbedCtxt=@x.dll,-1|"


def _system(current: int = 1, **control: dict[str, hives.Value]) -> Hive:
    cs = f"ControlSet{current:03d}"
    keys: dict[str, dict[str, hives.Value]] = {"Select": {"Current": current, "Default": 1}}
    for path, values in control.items():  # "Control_Terminal__Server": Control\Terminal Server
        keys[cs + "\\" + path.replace("__", " ").replace("_", "\\")] = values
    return Hive(hives.hive("HKEY_LOCAL_MACHINE\\SYSTEM", keys), "SYSTEM")


def _software(keys: dict[str, dict[str, hives.Value]]) -> Hive:
    return Hive(hives.hive("HKEY_LOCAL_MACHINE\\SOFTWARE", keys), "SOFTWARE")


# --- the registry reader ------------------------------------------------------------------------


@needs_hivex
def test_keys_and_values_typed_and_case_insensitive():
    hive = Hive(hives.hive("HKLM\\T", {"Outer\\Inner Key": {
        "D": 5, "S": "text", "M": ["a", "b"], "B": b"\x01\x02\x03", "Q": hives.Qword(2**40),
        "E": hives.ExpandSz("%windir%"), "": "default", "Ünï": "☃"}}), "T")
    key = hive.key("outer\\INNER KEY")
    assert key is not None and key.path == "Outer\\Inner Key" and key.name == "Inner Key"
    assert key.value("d") == 5 and key.value("s") == "text" and key.value("m") == ["a", "b"]
    assert key.value("b") == b"\x01\x02\x03"  # libregf alone gives b"\x02\x03\x00"
    assert key.value("q") == 2**40 and key.value("e") == "%windir%"
    assert key.value("") == "default" and key.value("ünï") == "☃"
    assert key.value("missing") is None and hive.key("Outer\\Nope") is None
    assert hive.key("\\Outer\\") is not None and hive.key("").path == ""
    assert [k.path for k in hive.root.subkeys()] == ["Outer"]
    assert key.values()["D"] == 5 and len(key.values()) == 8


def test_decode_short_and_odd_data():
    assert decode(4, b"\x01\x00") == b"\x01\x00"  # too short for a DWORD: bytes
    assert decode(5, b"\x00\x00\x01\x00") == 256
    assert decode(1, b"a\x00b") == "a"  # an odd byte dropped
    assert decode(1, "ab".encode("utf-16-le")) == "ab"  # no terminator
    assert decode(7, "a\0\0b\0\0\0".encode("utf-16-le")) == ["a"]  # an empty string ends it
    assert decode(7, b"") == []
    assert decode(3, b"\xff") == b"\xff"


@needs_hivex
@pytest.mark.parametrize("current", [1, 2])
def test_current_control_set_follows_select(current):
    hive = _system(current, Control_Terminal__Server={"fDenyTSConnections": current - 1})
    assert current_control_set(hive) == f"ControlSet00{current}"
    assert system.remote_desktop(hive).deny_connections == current - 1


@needs_hivex
def test_current_control_set_without_select():
    hive = Hive(hives.hive("HKLM\\S", {"Select": {"Current": "x", "Default": 3}}), "S")
    assert current_control_set(hive) == "ControlSet003"
    assert current_control_set(Hive(hives.empty_hive(), "S")) == "ControlSet001"


@needs_hivex
def test_read_hive_through_a_target(tmp_path):
    config = tmp_path / "Windows" / "System32" / "config"
    config.mkdir(parents=True)
    (config / "SYSTEM").write_bytes(hives.hive("HKLM\\SYSTEM", {"Select": {"Current": 1}}))
    (config / "SOFTWARE").write_bytes(hives.empty_hive())
    sys_hive, soft = system.read_system_hives(RootDirTarget(tmp_path))
    assert sys_hive.value("Select", "Current") == 1 and soft.key("x") is None
    with pytest.raises(FileNotFoundError):
        read_hive(RootDirTarget(tmp_path), "/Windows/System32/config/SAM")


def _damaged() -> dict[str, bytes]:
    good = hives.empty_hive()
    bad_sum = bytearray(good)
    bad_sum[508] ^= 1
    bad_root = bytearray(good)
    bad_root[4096 + 0x24:4096 + 0x26] = b"xx"
    huge_bins = bytearray(good)  # hbin size far past the end, checksum fixed up
    struct.pack_into("<I", huge_bins, 4096 + 8, 0x7FFFF000)
    rng = random.Random(11)
    return {"empty": b"", "truncated-base": good[:100], "truncated-bin": good[:5000],
            "bad-checksum": bytes(bad_sum), "bad-root": bytes(bad_root),
            "huge-bin": bytes(huge_bins), "random": rng.randbytes(20000),
            "regf-random": b"regf" + rng.randbytes(9000)}


@pytest.mark.parametrize(("name", "data"), list(_damaged().items()))
def test_damaged_hives_give_a_clean_error(name, data):
    with pytest.raises(UnreadableError) as caught:
        hive = Hive(data, "/Windows/System32/config/SYSTEM")
        hive.key("Select\\x")  # a damage met only on the way to a key is as clean
    message = str(caught.value)
    assert message.startswith("/Windows/System32/config/SYSTEM: ")
    assert "\n" not in message and len(message) < 300


@needs_hivex
def test_damaged_cells_after_open_give_a_clean_error():
    data = bytearray(hives.hive("HKLM\\S", {f"K{i}": {"v": "x" * 40} for i in range(20)}))
    rng = random.Random(5)
    for _ in range(200):
        mutated = bytearray(data)
        for _ in range(8):
            mutated[rng.randrange(4096, len(data))] = rng.randrange(256)
        try:
            hive = Hive(bytes(mutated), "S")
            for key in hive.root.subkeys():
                key.values()
                key.subkeys()
        except UnreadableError:
            pass


# --- SYSTEM and SOFTWARE facts ------------------------------------------------------------------


@needs_hivex
def test_product_from_current_version():
    soft = _software({system.CURRENT_VERSION: {
        "ProductName": "Windows Server 2022 Datacenter", "EditionID": "ServerDatacenter",
        "InstallationType": "Server Core", "CurrentBuild": "20348", "UBR": 2227,
        "CurrentMajorVersionNumber": 10, "CurrentMinorVersionNumber": 0,
        "CurrentVersion": "6.3"}})
    product = system.product(soft)
    assert product == system.Product("Windows Server 2022 Datacenter", "ServerDatacenter",
                                     "Server Core", 20348, 2227, 10, 0)
    assert product.version == (10, 0, 20348, 2227)


@needs_hivex
def test_product_of_an_older_windows_and_of_nothing():
    soft = _software({system.CURRENT_VERSION.upper(): {
        "productname": "Windows Server 2012 R2 Standard", "CurrentBuildNumber": "9600",
        "CurrentVersion": "6.3", "UBR": "not a dword"}})
    product = system.product(soft)
    assert (product.name, product.build, product.major, product.minor, product.ubr) == (
        "Windows Server 2012 R2 Standard", 9600, 6, 3, None)
    assert product.version is None
    empty = system.product(_software({}))
    assert empty == system.Product(None, None, None, None, None, None, None)


@needs_hivex
def test_image_state():
    soft = _software({system.SETUP_STATE: {
        "ImageState": "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE"}})
    assert system.image_state(soft) == "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE"
    assert system.image_state(_software({})) is None


@needs_hivex
def test_remote_desktop_and_its_firewall_rules():
    rules = {"RemoteDesktop-UserMode-In-TCP": RDP_RULE.format("TRUE"),
             "RemoteDesktop-UserMode-In-UDP": RDP_RULE.format("FALSE").replace("=6", "=17"),
             "FPS-SMB-In-TCP": OTHER_RULE, "Broken": b"\x00"}
    hive = _system(2, Control_Terminal__Server={"fDenyTSConnections": 0},
                   **{"Services_SharedAccess_Parameters_FirewallPolicy_FirewallRules": rules})
    rdp = system.remote_desktop(hive)
    assert rdp.enabled is True and rdp.firewall_open
    assert [r.id for r in rdp.rules] == ["RemoteDesktop-UserMode-In-TCP",
                                         "RemoteDesktop-UserMode-In-UDP"]
    assert rdp.rules[0].fields["LPort"] == "3389" and not rdp.rules[1].active
    policy = _software({system.TS_POLICY: {"fDenyTSConnections": 1}})
    assert system.remote_desktop(hive, policy).enabled is False


@needs_hivex
def test_remote_desktop_off_and_unknown():
    closed = {"RemoteDesktop-UserMode-In-TCP": RDP_RULE.format("FALSE")}
    hive = _system(1, Control_Terminal__Server={"fDenyTSConnections": 1},
                   **{"Services_SharedAccess_Parameters_FirewallPolicy_FirewallRules": closed})
    rdp = system.remote_desktop(hive)
    assert rdp.enabled is False and not rdp.firewall_open
    unknown = system.remote_desktop(_system(1))
    assert unknown.enabled is None and unknown.rules == ()


@needs_hivex
def test_pagefile_and_architecture():
    hive = _system(2, **{
        "Control_Session__Manager_Memory__Management": {"PagingFiles": ["?:\\pagefile.sys"]},
        "Control_Session__Manager_Environment": {"PROCESSOR_ARCHITECTURE": "AMD64"}})
    assert system.paging_files(hive) == ["?:\\pagefile.sys"]
    assert system.architecture(hive) == "AMD64"
    none = _system(1, **{"Control_Session__Manager_Memory__Management": {"PagingFiles": [""]}})
    assert system.paging_files(none) == []  # an empty string ends a MULTI_SZ
    assert system.paging_files(_system(1)) is None and system.architecture(_system(1)) is None


@needs_hivex
def test_server_features():
    cache = system.SERVER_COMPONENTS
    soft = _software({f"{cache}\\Web-Server": {"InstallState": 1},
                      f"{cache}\\AD-Domain-Services": {"InstallState": 0},
                      f"{cache}\\FS-FileServer": {"InstallState": 1},
                      f"{cache}\\Odd": {"InstallState": "1"}})
    assert system.server_features(soft) == ["FS-FileServer", "Web-Server"]
    assert system.server_features(_software({})) == []


@needs_hivex
def test_update_state():
    soft = _software({f"{system.AUTO_UPDATE}\\Results\\Install": {
                          "LastSuccessTime": "2024-05-14 10:02:11"},
                      f"{system.AUTO_UPDATE}\\RebootRequired": {},
                      f"{system.CBS}\\RebootPending": {}})
    assert system.update_state(soft) == system.UpdateState("2024-05-14 10:02:11", True, True)
    assert system.update_state(_software({})) == system.UpdateState(None, False, False)


# --- PE file versions ---------------------------------------------------------------------------


@needs_mingw
def test_pe_version_matches_windres():
    data = pefiles.pe_with_version("10.0.20348.2227 (WinBuild.160101.0800)",
                                   product_version="10.0.20348.1", original_filename="srv.sys")
    script = pefiles.read_back(data)  # the oracle: binutils reading the resource back
    assert "FILEVERSION 10, 0, 20348, 2227" in script
    assert "PRODUCTVERSION 10, 0, 20348, 1" in script
    info = pe.parse_version_info(data)
    assert info is not None
    assert info.file_version == (10, 0, 20348, 2227) == pe.file_version(data)
    assert info.product_version == (10, 0, 20348, 1)
    assert info.strings["FileVersion"] == "10.0.20348.2227 (WinBuild.160101.0800)"
    assert info.strings["OriginalFilename"] == "srv.sys"


@needs_mingw
def test_pe_version_through_a_target(tmp_path):
    drivers = tmp_path / "Windows" / "System32" / "drivers"
    drivers.mkdir(parents=True)
    (drivers / "srv2.sys").write_bytes(pefiles.pe_with_version("6.3.9600.65535"))
    info = pe.read_version_info(RootDirTarget(tmp_path), "/Windows/System32/drivers/srv2.sys")
    assert info is not None and info.file_version == (6, 3, 9600, 65535)


def test_not_a_pe_file():
    for data in (b"", b"MZ", b"MZ" + b"\0" * 62, b"\x7fELF" + b"\0" * 200, os.urandom(4096)):
        assert pe.file_version(data) is None


@pytest.fixture(scope="module")
def good_pe() -> bytes:
    if not pefiles.have_tools():
        pytest.skip("binutils-mingw-w64-x86-64 is not installed")
    return pefiles.pe_with_version("1.2.3.4")


def _resource_base(data: bytes) -> tuple[int, int]:
    """The file offset of the .rsrc section and its RVA (the test file has them equal-sized)."""
    pe_at = struct.unpack_from("<I", data, 0x3C)[0]
    count, optional_size = struct.unpack_from("<HH", data, pe_at + 6)[0], struct.unpack_from(
        "<H", data, pe_at + 20)[0]
    table = pe_at + 24 + optional_size
    for index in range(count):
        entry = table + 40 * index
        if data[entry:entry + 5] == b".rsrc":
            address, _, raw = struct.unpack_from("<III", data, entry + 12)
            return raw, address
    raise AssertionError("no .rsrc")


def _patched(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def test_hostile_pe_files(good_pe):
    assert pe.file_version(good_pe) == (1, 2, 3, 4)
    pe_at = struct.unpack_from("<I", good_pe, 0x3C)[0]
    rsrc, _ = _resource_base(good_pe)
    hostile = {
        "lfanew past the end": _patched(good_pe, 0x3C, "<I", 0xFFFFFFF0),
        "huge optional header": _patched(good_pe, pe_at + 20, "<H", 0xFFFF),
        "resource rva nowhere": _patched(good_pe, pe_at + 24 + 112 + 16, "<I", 0x7FFFFFFF),
        "subdirectory loop": _patched(good_pe, rsrc + 20, "<I", 0x80000000),
        "subdirectory past end": _patched(good_pe, rsrc + 20, "<I", 0xFFFFFFFF),
        "truncated": good_pe[:rsrc + 40],
    }
    for name, data in hostile.items():
        assert pe.file_version(data) is None, name
    bounded = {  # walked only as far as the format allows (96 sections, 64 entries)
        "huge section count": _patched(good_pe, pe_at + 6, "<H", 0xFFFF),
        "huge entry counts": _patched(good_pe, rsrc + 12, "<HH", 0xFFFF, 0xFFFF),
        "huge entry counts at the end": _patched(good_pe[:rsrc + 24], rsrc + 12, "<HH", 0, 999),
    }
    for name, data in bounded.items():
        assert pe.file_version(data) in (None, (1, 2, 3, 4)), name


def test_hostile_version_blocks(good_pe):
    data = bytearray(good_pe)
    at = data.find("VS_VERSION_INFO".encode("utf-16-le")) - 6
    assert at > 0
    for fmt_values in [(0,), (0xFFFF,), (5,)]:
        patched = _patched(bytes(data), at, "<H", *fmt_values)
        assert pe.file_version(patched) is None
    bad_sig = _patched(bytes(data), at + 40, "<I", 0x12345678)
    assert pe.file_version(bad_sig) is None
    rng = random.Random(3)
    for _ in range(300):  # random damage anywhere: None or a version, never an exception
        mutated = bytearray(good_pe)
        for _ in range(6):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        result = pe.parse_version_info(bytes(mutated))
        assert result is None or isinstance(result.file_version, tuple)
