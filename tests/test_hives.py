"""tests/hives.py builds real hives: pyregf reads them, and hivexregedit --export (the oracle)
prints every value back with the type and bytes that were asked for."""

from __future__ import annotations

import io
import shutil
import struct

import pyregf
import pytest

from tests import hives
from vmimage.facts.windows.registry import Hive

pytestmark = pytest.mark.skipif(shutil.which("hivexregedit") is None,
                                reason="hivexregedit (libwin-hivex-perl) is not installed")

PREFIX = "HKEY_LOCAL_MACHINE\\SYSTEM"
VALUES: dict[str, hives.Value] = {
    "Dword": 0xDEADBEEF,
    "Zero": 0,
    "Sz": "C:\\Windows \"quoted\"",
    "Empty": "",
    "Multi": ["C:\\pagefile.sys 0 0", "D:\\x"],
    "MultiEmpty": [],
    "Binary": bytes(range(256)),
    "Qword": hives.Qword(2**63 + 5),
    "Expand": hives.ExpandSz("%SystemRoot%\\system32"),
    "Raw": hives.Raw(0, b"\x01\x02"),
    "": "the default value",
    'quote"and\\back': 1,
    "ünïcødé ☃ 名前": "wért ☃ 名前",
}


def _open(data: bytes) -> pyregf.file:
    regf = pyregf.file()
    regf.open_file_object(io.BytesIO(data))
    return regf


def test_empty_hive_is_valid():
    data = hives.empty_hive()
    assert len(data) == 8192
    assert struct.unpack_from("<I", data, 508)[0] == hives.regf_checksum(data)
    root = _open(data).get_root_key()
    assert root.get_number_of_sub_keys() == 0 and root.get_number_of_values() == 0
    assert hives.parse_export(hives.export(data)) == {"": {}}


def test_every_value_type_round_trips():
    data = hives.hive(PREFIX, {"Key": VALUES})
    expected = {name: hives.encode_value(value) for name, value in VALUES.items()}
    assert hives.parse_export(hives.export(data))["Key"] == expected
    # pyregf itself, through the reader that corrects its inline-data slip (1-3 byte values)
    key = Hive(data, "SYSTEM").key("Key")
    assert {v.name: (v.type, v.data) for v in key.raw_values()} == expected


def test_parents_unicode_and_deep_paths():
    deep = "\\".join(f"Level{i}" for i in range(20))
    data = hives.hive(PREFIX, {
        "Select": {"Current": 2},
        "ControlSet002\\Control\\Terminal Server": {"fDenyTSConnections": 0},
        "Ключ\\子键\\ü": {},
        deep: {"Leaf": "yes"},
    })
    exported = hives.parse_export(hives.export(data))
    assert exported["ControlSet002"] == {} and exported["ControlSet002\\Control"] == {}
    assert exported["Ключ\\子键\\ü"] == {}
    assert exported[deep] == {"Leaf": hives.encode_value("yes")}
    regf = _open(data)
    assert regf.get_key_by_path("ключ\\子键\\Ü") is not None
    assert regf.get_key_by_path(deep).get_value_by_name("Leaf").get_data() == "yes\0".encode(
        "utf-16-le")


def test_values_on_the_root_and_merging_one_key_twice():
    data = hives.hive(PREFIX, {"": {"RootValue": 7}, "A": {"x": 1}, "a\\B": {}, "A ": {}})
    exported = hives.parse_export(hives.export(data))
    assert exported[""] == {"RootValue": hives.encode_value(7)}
    assert exported["A"] == {"x": hives.encode_value(1)}
    assert "A\\B" in exported


@pytest.mark.parametrize("keys", [{"a\\\\b": {}}, {"a]": {}}, {"a": {"x\ny": 1}},
                                  {"a": {"x": True}}])
def test_what_a_reg_file_cannot_carry_is_refused(keys):
    with pytest.raises((ValueError, TypeError)):
        hives.hive(PREFIX, keys)


def test_it_is_deterministic():
    keys = {f"Key{i}\\Sub": {f"v{j}": j for j in range(20)} for i in range(50)}
    assert hives.hive(PREFIX, keys) == hives.hive(PREFIX, keys)
