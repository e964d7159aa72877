"""Our ISO 9660 + Joliet writer, read back by independent readers (no mock):

- ``isoinfo`` (genisoimage): the volume descriptors (``-d``), both directory listings (``-l``,
  ``-J -l``) and each file's bytes (``-x``) through both hierarchies; ``isovfy``, its verifier;
- ``xorriso`` (libisofs): the tree it loads and the files it extracts, and no complaint;
- pycdlib (Debian's python3-pycdlib, run by the system's Python): a strict parser that checks
  every both-endian field and that the M path tables mirror the L ones, which the Linux kernel
  (it reads the little-endian halves only) and the tools above do not;
- ``blkid -p`` (libblkid): what udev and cloud-init see, TYPE and LABEL;
- the Linux kernel's isofs: ``mount -o loop,ro -t iso9660`` with Joliet and without
  (``nojoliet``, ``map=normal``), as waagent mounts the DVD; skipped when the running kernel has
  no iso9660 driver (this project's Firecracker kernels have none, and no modules);
- cloud-init's ``ds-identify`` (Debian 12's, from the package): its VMware-OVF check on the
  image, for the choice of the label.

Every reader is also run on genisoimage's image of the same files (``-J -relaxed-filenames``),
so a reader that fails on ours but not on genisoimage's points at our writer, not at the test.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests import imagebuild as ib
from tests.test_vm_ovfenv import ED25519, cloud_init_path
from vmimage.errors import InputError
from vmimage.vm.iso import DEFAULT_VOLUME_ID, PAD_SECTORS, SECTOR, iso_image, write_iso
from vmimage.vm.ovfenv import Provisioning, ovf_env_xml

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
OVF = ovf_env_xml(Provisioning("vm-1", "alice", password="Secret-pass9", ssh_public_key=ED25519))
FILES = {
    "ovf-env.xml": OVF,
    "big.bin": bytes(range(256)) * 19 + b"tail",  # 4868 bytes: three sectors, the last partly used
    "exact.bin": b"\xa5" * (2 * SECTOR),  # exactly two sectors
    "empty": b"",
    "readme": b"no extension\n",
    "Z_last": b"z",
}
MANY = {f"file-{i:03d}.txt": f"{i}\n".encode() * i for i in range(120)}  # a 4-sector directory


def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install genisoimage xorriso)")


def primary_name(name: str) -> str:
    upper = name.upper()
    return (upper if "." in upper else upper + ".") + ";1"


def genisoimage(tmp: Path, files: dict[str, bytes]) -> Path:
    """genisoimage's image of ``files``: the sanity check of every reader below."""
    need("genisoimage")
    src = tmp / "genisoimage-src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    out = tmp / "genisoimage.iso"
    ib.run(["genisoimage", "-quiet", "-J", "-relaxed-filenames", "-V", DEFAULT_VOLUME_ID, "-o", out, src])
    return out


@pytest.fixture(params=["vmimage", "genisoimage"])
def image(request, tmp_path) -> Path:
    """Our image of FILES, and genisoimage's (the readers' sanity check)."""
    if request.param == "genisoimage":
        return genisoimage(tmp_path, FILES)
    path = tmp_path / "ours.iso"
    path.write_bytes(iso_image(FILES, created=WHEN))
    return path


# --------------------------------------------------------------------------------------------
# isoinfo and isovfy

_LISTING = re.compile(r"^([-d])\S{9}\s+\d+\s+\d+\s+\d+\s+(\d+) (\w{3} [ \d]\d \d{4}) "
                      r"\[\s*(\d+) \d+\]  (.*) $")


def isoinfo_listing(iso: Path, joliet: bool) -> dict[str, tuple[int, str, int]]:
    """name -> (size, date, extent) of the files in the root, as ``isoinfo -l`` lists them."""
    out = ib.run(["isoinfo", *(["-J"] if joliet else []), "-l", "-i", iso]).stdout.decode()
    files = {}
    for line in out.splitlines():
        m = _LISTING.match(line)
        if m and m.group(1) == "-":
            files[m.group(5)] = (int(m.group(2)), m.group(3), int(m.group(4)))
    assert "Directory listing of /" in out
    return files


def isoinfo_extract(iso: Path, name: str, joliet: bool) -> bytes:
    return ib.run(["isoinfo", *(["-J"] if joliet else []), "-i", iso, "-x", f"/{name}"]).stdout


def isoinfo_read(iso: Path, joliet: bool) -> dict[str, bytes]:
    return {name: isoinfo_extract(iso, name, joliet) for name in isoinfo_listing(iso, joliet)}


def test_isoinfo_descriptors(image):
    need("isoinfo")
    out = ib.run(["isoinfo", "-d", "-i", image]).stdout.decode()
    assert f"Volume id: {DEFAULT_VOLUME_ID}\n" in out
    assert "Logical block size is: 2048\n" in out
    assert "Volume set size is: 1\n" in out
    assert "Joliet with UCS level 3 found" in out
    blocks = int(re.search(r"Volume size is: (\d+)", out).group(1))
    assert blocks * SECTOR == image.stat().st_size


def test_isoinfo_primary_hierarchy(image):
    need("isoinfo")
    listing = isoinfo_listing(image, joliet=False)
    assert {name: size for name, (size, _, _) in listing.items()} == {
        primary_name(n): len(d) for n, d in FILES.items()}
    assert isoinfo_read(image, joliet=False) == {primary_name(n): d for n, d in FILES.items()}


def test_isoinfo_joliet_hierarchy(image):
    need("isoinfo")
    listing = isoinfo_listing(image, joliet=True)
    assert {name: size for name, (size, _, _) in listing.items()} == {n: len(d) for n, d in FILES.items()}
    assert isoinfo_read(image, joliet=True) == FILES


ORDER = {name: b"" for name in ("a-b", "a_b", "ab", "a.b", "A0", "_x.tar", "b-a.c", "-", "z9.Q", "a.bc",
                                "a.b-")}


@pytest.mark.parametrize("files", [FILES, MANY, ORDER], ids=["files", "many", "order"])
def test_record_order_is_genisoimages(tmp_path, files):
    """ECMA-119 9.3 orders the records (names, then extensions, padded with spaces); Joliet by
    UCS-2 name. Readers do not check it, so the order is compared with genisoimage's own."""
    need("isoinfo")
    ours = tmp_path / "ours.iso"
    ours.write_bytes(iso_image(files, created=WHEN))
    theirs = genisoimage(tmp_path, files)
    for joliet in (False, True):
        assert list(isoinfo_listing(ours, joliet)) == list(isoinfo_listing(theirs, joliet))


def test_isovfy_finds_no_error(image):
    need("isovfy")
    out = ib.run(["isovfy", image]).stdout.decode()
    assert "No errors found" in out


def test_many_files_span_directory_sectors(tmp_path):
    """120 records need four directory sectors: no record may cross a sector boundary."""
    need("isoinfo", "isovfy")
    iso = tmp_path / "many.iso"
    iso.write_bytes(iso_image(MANY, created=WHEN))
    assert "No errors found" in ib.run(["isovfy", iso]).stdout.decode()
    assert isoinfo_read(iso, joliet=True) == MANY
    assert isoinfo_read(iso, joliet=False) == {primary_name(n): d for n, d in MANY.items()}
    need("xorriso")
    assert xorriso_extract(iso, tmp_path / "x") == MANY


def test_dates_and_extents(tmp_path):
    need("isoinfo", "xorriso")
    iso = tmp_path / "dated.iso"
    # A time zone other than UTC is converted: 09:08:09+02:00 is 07:08:09 UTC.
    iso.write_bytes(iso_image(FILES, created=WHEN.astimezone(timezone(timedelta(hours=2)))))
    for joliet in (False, True):
        listing = isoinfo_listing(iso, joliet)
        assert {date for _, date, _ in listing.values()} == {"May  6 2024"}
    # every file starts on its own sector, after the directories, in order, none overlapping
    extents = sorted((extent, size) for size, _, extent in isoinfo_listing(iso, False).values())
    for (start, size), (following, _) in itertools.pairwise(extents):
        assert following >= start + -(-size // SECTOR)
    pvd = ib.run(["xorriso", "-indev", iso, "-pvd_info"]).stdout.decode()
    assert "Creation Time: 2024050607080900" in pvd
    assert "Modif. Time  : 2024050607080900" in pvd
    assert "Expir. Time  : 0000000000000000" in pvd


# --------------------------------------------------------------------------------------------
# xorriso


def xorriso_extract(iso: Path, dest: Path) -> dict[str, bytes]:
    proc = ib.run(["xorriso", "-abort_on", "FAILURE", "-indev", iso, "-osirrox", "on", "-extract", "/", dest])
    messages = proc.stderr.decode() + proc.stdout.decode()
    assert not re.search(r"\b(WARNING|SORRY|FAILURE|FATAL)\b", messages), messages
    return {p.name: p.read_bytes() for p in dest.iterdir()}


def test_xorriso_loads_and_extracts(image, tmp_path):
    need("xorriso")
    proc = ib.run(["xorriso", "-indev", image, "-ls", "/"])
    assert sorted(re.findall(r"^'(.*)'$", proc.stdout.decode(), re.M)) == sorted(FILES)
    assert f"Volume id    : '{DEFAULT_VOLUME_ID}'" in proc.stderr.decode()  # xorriso's messages
    assert xorriso_extract(image, tmp_path / "out") == FILES


# --------------------------------------------------------------------------------------------
# pycdlib

_PYCDLIB = """
import base64, io, json, sys
import pycdlib
iso = pycdlib.PyCdlib()
iso.open(sys.argv[1])
out = {"joliet": iso.has_joliet(), "rock_ridge": iso.has_rock_ridge(),
       "pvd_label": iso.pvd.volume_identifier.decode("ascii").rstrip(" "),
       "joliet_label": iso.joliet_vd.volume_identifier.decode("utf-16-be").rstrip(" ")}
for key, arg, codec in (("primary", "iso_path", "ascii"), ("joliet", "joliet_path", "utf-16-be")):
    files = {}
    for child in iso.list_children(**{arg: "/"}):
        if not (child.is_dot() or child.is_dotdot()):
            name = child.file_identifier().decode(codec)
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, **{arg: "/" + name})
            files[name] = base64.b64encode(buf.getvalue()).decode()
    out[key + "_files"] = files
iso.close()
json.dump(out, sys.stdout)
"""
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, where python3-pycdlib is installed


def pycdlib_read(iso: Path) -> dict:
    if subprocess.run([SYSTEM_PYTHON, "-c", "import pycdlib"], capture_output=True, check=False).returncode:
        pytest.skip("pycdlib is not installed for /usr/bin/python3 (apt-get install python3-pycdlib)")
    proc = subprocess.run([SYSTEM_PYTHON, "-I", "-c", _PYCDLIB, str(iso)], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for key in ("primary_files", "joliet_files"):
        got[key] = {name: base64.b64decode(data) for name, data in got[key].items()}
    return got


def test_pycdlib_strict_parse(image):
    got = pycdlib_read(image)
    assert got["joliet"] is True and got["rock_ridge"] is False
    assert got["pvd_label"] == got["joliet_label"] == DEFAULT_VOLUME_ID
    assert got["primary_files"] == {primary_name(n): d for n, d in FILES.items()}
    assert got["joliet_files"] == FILES


def test_pycdlib_many_files(tmp_path):
    iso = tmp_path / "many.iso"
    iso.write_bytes(iso_image(MANY, created=WHEN))
    assert pycdlib_read(iso)["joliet_files"] == MANY


# --------------------------------------------------------------------------------------------
# blkid


def test_blkid_type_and_label(image):
    need("blkid")
    out = ib.run(["blkid", "-p", "-o", "export", image]).stdout.decode()
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert fields["TYPE"] == "iso9660"
    assert fields["LABEL"] == DEFAULT_VOLUME_ID
    assert fields["VERSION"] == r"Joliet\ Extension"  # export format escapes spaces
    assert fields["USAGE"] == "filesystem"


def test_blkid_uuid_is_the_creation_date(tmp_path):
    need("blkid")
    iso = tmp_path / "d.iso"
    iso.write_bytes(iso_image(FILES, created=WHEN))
    out = ib.run(["blkid", "-p", "-s", "UUID", "-o", "value", iso]).stdout.decode().strip()
    assert out == "2024-05-06-07-08-09-00"


# --------------------------------------------------------------------------------------------
# The kernel


def kernel_iso9660_missing() -> str | None:
    """Why the running kernel cannot mount iso9660 here, or None."""
    if os.geteuid() != 0:
        return "mounting needs root"

    def known() -> bool:
        return "iso9660" in Path("/proc/filesystems").read_text().split()

    if not known():
        subprocess.run(["modprobe", "isofs"], capture_output=True, check=False)
    if not known():
        return (f"the running kernel ({os.uname().release}) has no iso9660 driver and modprobe isofs "
                "found none")
    return None


@contextlib.contextmanager
def mounted(iso: Path, where: Path, options: str = "") -> Iterator[Path]:
    where.mkdir()
    proc = subprocess.run(["mount", "-o", f"loop,ro{options}", "-t", "iso9660", str(iso), str(where)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot loop-mount: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.parametrize("options", ["", ",nojoliet"])
def test_kernel_mount(image, tmp_path, options):
    """As waagent mounts the DVD; without Joliet, map=normal still gives the exact names."""
    why = kernel_iso9660_missing()
    if why:
        pytest.skip(why)
    with mounted(image, tmp_path / "mnt", options) as mnt:
        got = {p.name: p.read_bytes() for p in mnt.iterdir()}
        assert got == FILES
        if image.name == "ours.iso":
            assert {int(p.stat().st_mtime) for p in mnt.iterdir()} == {int(WHEN.timestamp())}


# --------------------------------------------------------------------------------------------
# The label, and cloud-init's ds-identify


def is_cdrom_ovf(iso: Path, label: str, root: Path) -> bool:
    """Debian 12's ds-identify ``is_cdrom_ovf`` on the image as /dev/sr0 (its VMware OVF check)."""
    script = cloud_init_path().parents[2] / "lib/cloud-init/ds-identify"
    (root / "dev").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(iso, root / "dev/sr0")
    block = root / "sys/class/block/sr0"
    block.mkdir(parents=True, exist_ok=True)
    (block / "size").write_text(f"{iso.stat().st_size // 512}\n")
    proc = subprocess.run(["sh", "-c", f'. "{script}"; is_cdrom_ovf /dev/sr0 "$1"', "ds-identify", label],
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DI_MAIN": "noop",
                               "PATH_ROOT": str(root), "DI_LOG": "stderr"},
                          capture_output=True, text=True, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode == 0


def test_ds_identify_does_not_take_the_dvd_for_vmware_ovf(tmp_path):
    """With Azure's label the DVD is not mistaken for a VMware OVF transport; with any other
    label (the control: same image, same check) ds-identify would enable the OVF datasource."""
    need("blkid")
    iso = tmp_path / "ovf.iso"
    iso.write_bytes(iso_image({"ovf-env.xml": OVF}))
    label = ib.run(["blkid", "-p", "-s", "LABEL", "-o", "value", iso]).stdout.decode().strip()
    assert label == DEFAULT_VOLUME_ID
    assert not is_cdrom_ovf(iso, label, tmp_path / "root")
    assert is_cdrom_ovf(iso, "OVF_ENV", tmp_path / "root")


# --------------------------------------------------------------------------------------------
# The writer's own contract


def test_layout_and_determinism():
    raw = iso_image(FILES, created=WHEN)
    assert raw == iso_image(dict(reversed(list(FILES.items()))), created=WHEN)  # order-independent
    assert len(raw) % SECTOR == 0
    assert raw[:16 * SECTOR] == bytes(16 * SECTOR)
    descriptors = [raw[s * SECTOR:s * SECTOR + 6] for s in (16, 17, 18)]
    assert descriptors == [b"\x01CD001", b"\x02CD001", b"\xffCD001"]
    assert raw[-PAD_SECTORS * SECTOR:] == bytes(PAD_SECTORS * SECTOR)
    assert iso_image(FILES, created=WHEN) != iso_image(FILES, created=WHEN + timedelta(seconds=1))


def test_empty_image(tmp_path):
    need("isoinfo", "isovfy")
    iso = tmp_path / "empty.iso"
    iso.write_bytes(iso_image({}, created=WHEN))
    assert "No errors found" in ib.run(["isovfy", iso]).stdout.decode()
    assert isoinfo_listing(iso, joliet=True) == {}


def test_write_iso_is_private_and_atomic(tmp_path):
    path = tmp_path / "ovf.iso"
    old = os.umask(0)
    try:
        assert write_iso(path, FILES, created=WHEN) == path
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == iso_image(FILES, created=WHEN)
    assert [p.name for p in tmp_path.iterdir()] == ["ovf.iso"]  # no temporary file left
    write_iso(path, {"ovf-env.xml": b"new"}, created=WHEN)  # replaced, still private
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    link = tmp_path / "link.iso"
    link.symlink_to(path)
    with pytest.raises(InputError, match="symbolic link"):
        write_iso(link, FILES)


@pytest.mark.parametrize(("files", "words"), [
    ({"dir/ovf-env.xml": b""}, "root directory"),
    ({"": b""}, "empty"),
    ({"..": b""}, "directory reference"),
    ({"a.b.c": b""}, "at most one"),
    ({"trailing.": b""}, "at most one"),
    ({".hidden": b""}, "at most one"),
    ({"white space": b""}, "only A-Z"),
    ({"née.txt": b""}, "only A-Z"),
    ({"a;1": b""}, "only A-Z"),
    ({"x" * 31: b""}, "30 characters"),
    ({"OVF-ENV.XML": b"", "ovf-env.xml": b""}, "differ only in case"),
])
def test_names_that_cannot_be_written(files, words):
    with pytest.raises(ValueError, match=words):
        iso_image(files)


def test_longest_name(tmp_path):
    need("isoinfo")
    name = "n" * 26 + ".ext"  # 30 characters without the dot
    iso = tmp_path / "long.iso"
    iso.write_bytes(iso_image({name: b"x"}))
    assert isoinfo_read(iso, joliet=True) == {name: b"x"}


@pytest.mark.parametrize("volume_id", ["", "x" * 17, "has space", "é"])
def test_bad_volume_ids(volume_id):
    with pytest.raises(ValueError, match="volume identifier"):
        iso_image(FILES, volume_id)


def test_other_volume_id(tmp_path):
    need("blkid")
    iso = tmp_path / "v.iso"
    iso.write_bytes(iso_image(FILES, "Mixed.Case-16chr"))
    label = ib.run(["blkid", "-p", "-s", "LABEL", "-o", "value", iso]).stdout.decode().strip()
    assert label == "Mixed.Case-16chr"


def test_bad_dates():
    with pytest.raises(ValueError, match="1900-2155"):
        iso_image(FILES, created=datetime(1899, 12, 31, tzinfo=UTC))
