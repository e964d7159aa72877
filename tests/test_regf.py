"""Our regf reader against the two oracles: ``hivexregedit --export`` and libregf (pyregf).

Hives are made by hivex; what hivex never writes (``lf``, ``li`` and ``ri`` subkey lists, big
data in ``db`` segments, as Windows writes them) is added by hand with the cell helpers of
tests/hives.py, and both oracles read the result too.
"""

from __future__ import annotations

import io
import shutil
import struct

import pyregf
import pytest

from tests import hives
from vmimage.facts.windows.regf import SEGMENT, BytesFile, name_hash
from vmimage.facts.windows.registry import Hive, Key
from vmimage.targets.base import UnreadableError

pytestmark = pytest.mark.skipif(shutil.which("hivexregedit") is None,
                                reason="hivexregedit (libwin-hivex-perl) is not installed")

Walk = dict[str, dict[str, tuple[int, bytes]]]


def _walk(key: Key, out: Walk | None = None) -> Walk:
    """Every key below ``key`` (paths as hivexregedit prints them) with its values."""
    out = {} if out is None else out
    out[key.path] = {v.name: (v.type, v.data) for v in key.raw_values()}
    for child in key.subkeys():
        _walk(child, out)
    return out


def _pyregf_walk(data: bytes) -> Walk:
    regf = pyregf.file()
    regf.open_file_object(io.BytesIO(data))
    out: Walk = {}

    def walk(key: pyregf.key, path: str) -> None:
        values = (key.get_value(i) for i in range(key.get_number_of_values()))
        out[path] = {(v.get_name() or ""): (v.get_type(), v.get_data() or b"") for v in values}
        for i in range(key.get_number_of_sub_keys()):
            child = key.get_sub_key(i)
            walk(child, f"{path}\\{child.get_name()}" if path else child.get_name() or "")

    root = regf.get_root_key()
    assert root is not None
    walk(root, "")
    return out


def _without_short_inline(walk: Walk) -> Walk:
    """libregf reads 1-3 byte inline data from the wrong end of its field (registry.py's
    former workaround): those values are compared with hivex only."""
    return {path: {n: v for n, v in values.items() if not 0 < len(v[1]) < 4}
            for path, values in walk.items()}


class Counting(BytesFile):
    """A hive in memory that counts what is read of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read_at(self, offset: int, size: int) -> bytes:
        piece = super().read_at(offset, size)
        self.bytes_read += len(piece)
        return piece


VALUES: dict[str, hives.Value] = {
    "Dword": 7, "Sz": "text ☃", "Multi": ["a", "b"], "Binary": bytes(range(200)),
    "Qword": hives.Qword(2**40), "Expand": hives.ExpandSz("%SystemRoot%"), "Short": b"ab",
    "Three": b"xyz", "Four": b"wxyz", "": "default", "Ünï": 1, "Big": bytes(range(256)) * 40,
}


@pytest.fixture(scope="module")
def many() -> bytes:
    keys: dict[str, dict[str, hives.Value]] = {"Values": VALUES, "Ключ\\子键": {"x": 1}}
    keys.update({f"Many\\Key{i:04d}": {"n": i} for i in range(700)})
    return hives.hive("HKEY_LOCAL_MACHINE\\TEST", keys)


def test_every_key_and_value_as_both_oracles_read_them(many):
    ours = _walk(Hive(many, "T").root)
    assert ours == hives.parse_export(hives.export(many))
    assert _without_short_inline(ours) == _without_short_inline(_pyregf_walk(many))
    assert len(ours) == 700 + 5  # root, Values, Ключ, Ключ\子键, Many and its 700


def test_lookups_fold_case_and_read_only_their_path(many):
    counted = Counting(many)
    hive = Hive(counted, "T", len(many))
    assert hive.value("many\\KEY0699", "N") == 699
    assert hive.value("ключ\\子键", "X") == 1
    assert hive.key("Many\\Key0700") is None and hive.key("Many\\Key0699\\x") is None
    # the hive is ~440 KiB; the lookups read the base block and a few pages of cells
    assert len(many) > 400 * 1024 and counted.bytes_read <= 12 * 4096


def _key_cells(data: bytes, path: str) -> tuple[int, list[int]]:
    """The cell offsets of a key and of its subkeys, as libregf finds them."""
    regf = pyregf.file()
    regf.open_file_object(io.BytesIO(data))
    key = regf.get_key_by_path(path)
    children = [key.get_sub_key(i) for i in range(key.get_number_of_sub_keys())]
    return (hives.cell_offset(key.get_offset()),
            [hives.cell_offset(c.get_offset()) for c in children])


NAMES = ["Alpha", "Beta", "Gamma"]


def _with_list(kind: str) -> bytes:
    """A hive whose key ``L`` lists its three subkeys in a list of ``kind``, made by hand."""
    data = hives.hive("HKLM\\T", {f"L\\{n}": {"v": n} for n in NAMES})
    parent, children = _key_cells(data, "L")
    if kind == "lf":
        payloads = [b"lf" + struct.pack("<H", 3) + b"".join(
            struct.pack("<I", c) + n[:4].encode().ljust(4, b"\0")
            for c, n in zip(children, NAMES, strict=True))]
    elif kind == "li":
        payloads = [b"li" + struct.pack("<H3I", 3, *children)]
    else:  # ri over an li with Alpha and an lh with Beta and Gamma; the ri is the last cell
        payloads = [b"li" + struct.pack("<HI", 1, children[0]),
                    b"lh" + struct.pack("<H", 2) + b"".join(
                        struct.pack("<II", c, name_hash(n))
                        for c, n in zip(children[1:], NAMES[1:], strict=True))]
    data, offsets = hives.append_cells(data, payloads)
    if kind == "ri":
        data, more = hives.append_cells(data, [b"ri" + struct.pack("<H2I", 2, *offsets)])
        offsets = more
    return hives.patch_cell(data, parent, 28, struct.pack("<I", offsets[-1]))


@pytest.mark.parametrize("kind", ["lf", "li", "ri"])
def test_subkey_lists_windows_writes(kind):
    data = _with_list(kind)
    ours = _walk(Hive(data, "T").root)
    assert ours == hives.parse_export(hives.export(data)) == _pyregf_walk(data)
    assert [k.name for k in Hive(data, "T").root.subkey("l").subkeys()] == NAMES
    assert Hive(data, "T").value("L\\gamma", "v") == "Gamma"


def test_an_index_list_inside_an_index_list_is_refused():
    data = hives.hive("HKLM\\T", {"L\\A": {}})
    parent, _ = _key_cells(data, "L")
    data, (inner,) = hives.append_cells(data, [b"ri" + struct.pack("<HI", 1, 0)])
    data, (outer,) = hives.append_cells(data, [b"ri" + struct.pack("<HI", 1, inner)])
    data = hives.patch_cell(data, parent, 28, struct.pack("<I", outer))
    with pytest.raises(UnreadableError, match="an index list inside an index list"):
        Hive(data, "T").key("L\\A")


def _with_big_data(size: int) -> tuple[bytes, bytes]:
    """A hive whose value ``K\\Big`` holds ``size`` bytes in ``db`` segments, and the bytes."""
    content = bytes((i * 7) % 256 for i in range(size))
    data = hives.hive("HKLM\\T", {"K": {"Big": b"placeholder"}})
    value = _value_cell(data, "K", "Big")
    pieces = [content[i:i + SEGMENT] for i in range(0, size, SEGMENT)]
    data, segments = hives.append_cells(data, pieces)
    data, (seglist,) = hives.append_cells(data, [struct.pack(f"<{len(segments)}I", *segments)])
    data, (db,) = hives.append_cells(data, [b"db" + struct.pack("<HII", len(segments),
                                                                 seglist, 0)])
    base = bytearray(data)
    struct.pack_into("<I", base, 24, 5)  # hive version 1.5, as Windows Server writes
    struct.pack_into("<I", base, 508, hives.regf_checksum(bytes(base[:4096])))
    return hives.patch_cell(bytes(base), value, 4, struct.pack("<II", size, db)), content


def test_big_data_in_segments():
    data, content = _with_big_data(40_000)
    assert Hive(data, "T").key("K").raw_value("big").data == content  # type: ignore[union-attr]
    assert hives.parse_export(hives.export(data))["K"]["Big"] == (hives.REG_BINARY, content)
    assert _pyregf_walk(data)["K"]["Big"] == (hives.REG_BINARY, content)


def _value_cell(data: bytes, path: str, name: str) -> int:
    regf = pyregf.file()
    regf.open_file_object(io.BytesIO(data))
    return hives.cell_offset(regf.get_key_by_path(path).get_value_by_name(name).get_offset())


@pytest.fixture(scope="module")
def damaged() -> dict[str, bytes]:
    data = hives.hive("HKLM\\T", {"K\\Sub": {"v": "text", "d": 5}})
    parent, (child,) = _key_cells(data, "K")
    value = _value_cell(data, "K\\Sub", "v")
    big, _ = _with_big_data(40_000)
    big_value = _value_cell(big, "K", "Big")
    return {
        "list is the key itself": hives.patch_cell(data, parent, 28, struct.pack("<I", parent)),
        "list outside the hive": hives.patch_cell(data, parent, 28, struct.pack("<I", 1 << 30)),
        "misaligned list": hives.patch_cell(data, parent, 28, struct.pack("<I", parent + 4)),
        "name overruns": hives.patch_cell(data, child, 72, struct.pack("<H", 60000)),
        "inline of 8 bytes": hives.patch_cell(data, value, 4, struct.pack("<I", 0x8000_0008)),
        "data overruns": hives.patch_cell(data, value, 4, struct.pack("<I", 5000)),
        "too few segments": hives.patch_cell(big, big_value, 4, struct.pack("<I", 90_000)),
    }


@pytest.mark.parametrize("name", [
    "list is the key itself", "list outside the hive", "misaligned list", "name overruns",
    "inline of 8 bytes", "data overruns", "too few segments"])
def test_damaged_cells_name_the_hive_in_one_line(damaged, name):
    with pytest.raises(UnreadableError) as caught:
        hive = Hive(damaged[name], "/Windows/System32/config/SOFTWARE")
        for key in _walk(hive.root):
            assert key is not None
    message = str(caught.value)
    assert message.startswith("/Windows/System32/config/SOFTWARE: damaged registry hive: ")
    assert "\n" not in message and len(message) < 200


def test_a_dirty_hive_is_read_and_said_to_be_dirty():
    data = bytearray(hives.hive("HKLM\\T", {"K": {"v": 1}}))
    secondary = struct.unpack_from("<I", data, 8)[0]
    struct.pack_into("<I", data, 4, secondary + 1)  # the primary sequence ahead
    struct.pack_into("<I", data, 508, hives.regf_checksum(bytes(data[:4096])))
    hive = Hive(bytes(data), "T")
    assert hive.dirty and hive.value("K", "v") == 1
    assert not Hive(hives.hive("HKLM\\T", {}), "T").dirty
