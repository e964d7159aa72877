"""Declared versus found, on real disks made with sfdisk, mkfs.ext4 -d, mkfs.vfat, mtools and
mkfs.ntfs: OS family and type, disk sizes per profile, Gen1/Gen2 boot layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.offer_support import GiB, linux_disk, to_vhd, tool, windows_disk, write
from vmimage.disk.convert import create
from vmimage.findings import Finding, Status
from vmimage.offer.esp import efi_loaders
from vmimage.offer.manifest import load_manifest
from vmimage.offer.probe import probe_disk
from vmimage.offer.rules import validate_offer
from vmimage.profiles import load_profile

pytestmark = pytest.mark.skipif(
    not all(tool(t) for t in ("sfdisk", "mkfs.ext4", "mkfs.vfat", "mmd", "mcopy", "mkfs.ntfs")),
    reason="needs sfdisk, e2fsprogs, dosfstools, mtools and ntfs-3g")


@pytest.fixture(scope="module")
def disks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every disk the tests name, built once (sparse: a few MiB on disk in all)."""
    d = tmp_path_factory.mktemp("disks")
    to_vhd(linux_disk(d / "debian.raw"))
    linux_disk(d / "ubuntu.raw", os_id="ubuntu")
    linux_disk(d / "small.raw", size=20 * GiB)
    linux_disk(d / "big.raw", size=60 * GiB)
    linux_disk(d / "gen2.raw", esp=True)
    linux_disk(d / "gen2-noloader.raw", esp=True, loader=False)
    linux_disk(d / "gpt-noesp.raw", gpt=True)
    windows_disk(d / "windows.raw")
    create(d / "data.vhd", 1 * GiB)
    create(d / "blank.vhd", 30 * GiB)
    (d / "notes.vhd").write_text("not a disk\n")
    return d


def manifest(dir_: Path, os_file: str, *, family: str = "linux", os_type: str = "debian",
             image_type: str = "gen1", data: list[str] | None = None,
             empty: str | None = None) -> Path:
    friendly = "Debian 12" if family == "linux" else "Windows Server 2012 R2 Datacenter"
    disks = "".join(f"          - {{lun: {i}, file: {name}}}\n"
                    for i, name in enumerate(data or []))
    if empty:
        disks += f"          - {{lun: {len(data or [])}, empty_size: {empty}}}\n"
    text = f"""\
        publisher: contoso
        offer: {{id: contoso-web, title: Contoso Web}}
        storage: {{container_url: "https://acct.blob.core.windows.net/vhds"}}
        skus:
          - id: web
            title: Web
            summary: A web server.
            os: {{family: {family}, type: {os_type}, friendly_name: "{friendly}"}}
            image_type: {image_type}
            recommended_sizes: [A1, A2, A3]
            versions:
              - version: "1.0.0"
                os_disk: {{file: {os_file}}}
"""
    text = "\n".join(line[8:] for line in text.splitlines()) + "\n"
    if disks:
        text += "        data_disks:\n" + disks
    return write(dir_, text)


def findings_of(path: Path, profile: str = "azure-current") -> list[Finding]:
    return validate_offer(load_manifest(path), load_profile(profile))


def of(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.check_id == rule]


def test_probe_reads_what_check_reads(disks: Path) -> None:
    linux = probe_disk(disks / "debian.vhd")
    assert (linux.family, linux.os_id, linux.scheme, linux.format_name) == \
        ("linux", "debian", "mbr", "fixed VHD")
    assert linux.virtual_size == 30 * GiB
    windows = probe_disk(disks / "windows.raw")
    assert windows.family == "windows" and windows.os_id is None
    assert windows.os_name == "Windows Server 2019 Datacenter"  # the registry's ProductName
    gen2 = probe_disk(disks / "gen2.raw")
    assert gen2.scheme == "gpt" and gen2.esp is not None
    assert gen2.uefi_loaders == ("/EFI/BOOT/BOOTX64.EFI",)
    assert probe_disk(disks / "gen2-noloader.raw").uefi_loaders == ()
    assert probe_disk(disks / "notes.vhd").error


def test_check_target_agrees_on_the_os(disks: Path) -> None:
    """OS family as `vmimage check` reports it in report.system."""
    from vmimage.app.check import check_target

    report = check_target(str(disks / "debian.vhd"), "azure-current")
    assert report.system.get("id") == probe_disk(disks / "debian.vhd").os_id


def test_declared_family_matches(disks: Path) -> None:
    findings = findings_of(manifest(disks, "debian.vhd"))
    assert [f.status for f in of(findings, "OFFER-OS-FAMILY")] == [Status.PASS]


def test_linux_declared_windows_found(disks: Path) -> None:
    path = manifest(disks, "windows.raw")
    [f] = of(findings_of(path), "OFFER-OS-FAMILY")
    assert f.status is Status.FAIL
    assert "declares linux, the disk holds windows" in f.message
    assert f.evidence[0].line == 8 and f.evidence[0].path == str(path)
    assert "PUB-OS" in f.covers


def test_windows_declared_linux_found(disks: Path) -> None:
    path = manifest(disks, "debian.vhd", family="windows", os_type="windowsServer2019")
    [f] = of(findings_of(path), "OFFER-OS-FAMILY")
    assert f.status is Status.FAIL and "declares windows, the disk holds linux" in f.message


def test_os_type_mismatch_warns(disks: Path) -> None:
    [f] = of(findings_of(manifest(disks, "ubuntu.raw")), "OFFER-OS-FAMILY")
    assert f.status is Status.WARNING and "(ubuntu)" in f.message


def test_unreadable_disk(disks: Path) -> None:
    findings = findings_of(manifest(disks, "notes.vhd"))
    [size] = of(findings, "OFFER-DISK-SIZE")
    assert size.status is Status.FAIL and "cannot be read as a disk" in size.message
    # Fail closed: an OS disk that cannot be read holds no OS of the declared family.
    [family] = of(findings, "OFFER-OS-FAMILY")
    assert family.status is Status.FAIL and "no operating system found" in family.message


def test_blank_os_disk_cannot_skip_its_way_to_a_pass(disks: Path) -> None:
    """A blank VHD named as the OS disk: OFFER-OS-FAMILY fails, it does not skip."""
    [f] = of(findings_of(manifest(disks, "blank.vhd")), "OFFER-OS-FAMILY")
    assert f.status is Status.FAIL and "no operating system found on blank.vhd" in f.message


#: The real failing case of each rule that opens local disks (tests/test_rule_cases.py counts
#: them): the OS disk file, the manifest options, the profile.
LOCAL_DISK_CASES: dict[str, tuple[str, dict[str, str], str]] = {
    "OFFER-DISK-SIZE": ("small.raw", {}, "azure-2015"),
    "OFFER-OS-FAMILY": ("windows.raw", {}, "azure-current"),
    "OFFER-IMAGE-TYPE": ("debian.vhd", {"image_type": "gen2"}, "azure-current"),
}


@pytest.mark.parametrize("rule_id", sorted(LOCAL_DISK_CASES))
def test_local_disk_rule_fails_on_its_case(disks: Path, rule_id: str) -> None:
    disk, options, profile = LOCAL_DISK_CASES[rule_id]
    [f] = of(findings_of(manifest(disks, disk, **options), profile), rule_id)
    assert f.status is Status.FAIL, f.message


@pytest.mark.parametrize(("disk", "profile", "status"), [
    ("debian.vhd", "azure-2015", Status.PASS),
    ("small.raw", "azure-2015", Status.FAIL),      # below 30 GiB
    ("small.raw", "azure-current", Status.PASS),   # 1 to 1023 GiB today
    ("big.raw", "azure-2015", Status.WARNING),     # above 50 GiB: case by case
])
def test_os_disk_size_per_profile(disks: Path, disk: str, profile: str,
                                  status: Status) -> None:
    [f] = of(findings_of(manifest(disks, disk), profile), "OFFER-DISK-SIZE")
    assert f.status is status, f.message
    assert "LNX-OS-SIZE" in f.covers


def test_windows_os_disk_size(disks: Path) -> None:
    path = manifest(disks, "windows.raw", family="windows", os_type="windowsServer2012R2")
    [f] = of(findings_of(path, "azure-2015"), "OFFER-DISK-SIZE")
    assert f.status is Status.PASS
    [f] = of(findings_of(path, "azure-current"), "OFFER-DISK-SIZE")
    assert f.status is Status.PASS  # 127 GiB: within 30-250 GiB


def test_data_disk_sizes(disks: Path) -> None:
    path = manifest(disks, "debian.vhd", data=["data.vhd"], empty="2048GiB")
    [f] = of(findings_of(path), "OFFER-DISK-SIZE")
    assert f.status is Status.FAIL
    assert "data_disks[1]: 2 TiB is above 1023 GiB for data" in f.message


@pytest.mark.parametrize(("disk", "image_type", "status", "fragment"), [
    ("gen2.raw", "gen2", Status.PASS, ""),
    ("debian.vhd", "gen2", Status.FAIL, "the partition table is mbr, gen2 needs GPT"),
    ("gpt-noesp.raw", "gen2", Status.FAIL, "no EFI system partition"),
    ("gen2-noloader.raw", "gen2", Status.FAIL, "no UEFI loader"),
    ("debian.vhd", "gen1", Status.PASS, ""),
    ("gen2.raw", "gen1", Status.WARNING, "it looks like gen2"),
])
def test_image_type_matches_disk(disks: Path, disk: str, image_type: str, status: Status,
                                 fragment: str) -> None:
    [f] = of(findings_of(manifest(disks, disk, image_type=image_type)), "OFFER-IMAGE-TYPE")
    assert f.status is status and fragment in f.message
    if status is not Status.PASS:
        assert f.evidence[0].line == 9  # the SKU's image_type


def test_no_disks_option_skips(disks: Path) -> None:
    loaded = load_manifest(manifest(disks, "debian.vhd"))
    findings = validate_offer(loaded, load_profile("azure-current"), probe=None)
    for rule in ("OFFER-OS-FAMILY", "OFFER-IMAGE-TYPE", "OFFER-DISK-SIZE"):
        [f] = of(findings, rule)
        assert f.status is Status.SKIP and f.message == "local disks were not opened"


def test_efi_loaders_on_fat12_16_32(tmp_path: Path) -> None:
    """The FAT reader against mkfs.vfat's three FAT types."""
    from tests.offer_support import sh

    for bits, mib in ((12, 4), (16, 32), (32, 64)):
        img = tmp_path / f"fat{bits}.img"
        with img.open("wb") as fh:
            fh.truncate(mib * 1024 * 1024)
        sh("mkfs.vfat", "-F", str(bits), img)
        sh("mmd", "-i", img, "::/EFI", "::/EFI/BOOT", "::/EFI/debian")
        blob = tmp_path / "x.efi"
        blob.write_bytes(b"MZ")
        sh("mcopy", "-i", img, blob, "::/EFI/debian/shimx64.efi")
        for i in range(40):  # a directory larger than one cluster (FAT12/16 root is fixed)
            sh("mcopy", "-i", img, blob, f"::/EFI/debian/a-long-file-name-{i}.cfg")
        sh("mcopy", "-i", img, blob, "::/EFI/BOOT/BOOTX64.EFI")
        data = img.read_bytes()
        assert efi_loaders(lambda off, n, d=data: d[off:off + n]) == \
            ["/EFI/BOOT/BOOTX64.EFI", "/EFI/DEBIAN/SHIMX64.EFI"], bits


def test_an_ntfs_data_disk_is_not_a_windows_os_disk(disks: Path) -> None:
    """OFFER-OS-FAMILY uses the family `vmimage check` detects: NTFS without Windows is data."""
    from tests import winimage

    winimage.build_ntfs_data_disk(disks / "ntfs-data.raw")
    assert probe_disk(disks / "ntfs-data.raw").family is None
    path = manifest(disks, "ntfs-data.raw", family="windows", os_type="windowsServer2019")
    [f] = of(findings_of(path), "OFFER-OS-FAMILY")
    assert f.status is Status.FAIL and "no operating system found" in f.message
