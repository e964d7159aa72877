"""Every rule of every family has a real failing case.

The cases for manifest rules, offline SAS rules and disk rules run here; the cases for system
rules (a violating copy of the compliant Debian image, or a disk layout), for manifest rules
that open local disks, and for the SAS rules that open a blob in Azurite run in their family's
tests, whose tables are imported here. The last test fails when a rule is registered without a
case, in any family.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.offer_support import GOOD, write
from tests.test_offer_rules import URL, _data_disks, _versions, _windows
from tests.vhd_util import Extent, make_sparse, read_footer, write_at
from vmimage.app.catalog import all_rules
from vmimage.app.disk import validate_disk
from vmimage.disk import convert
from vmimage.findings import Finding, Status
from vmimage.offer.manifest import load_manifest
from vmimage.offer.rules import validate_offer
from vmimage.profiles import load_profile
from vmimage.storage.sas_rules import verify_sas
from vmimage.units import MiB

#: A rule here cannot fail on any input yet; the reason says why.
EXEMPT = {
    "LINUX-SECURITY-PATCHES": "fails only against a distribution's security data: "
                              "tests/test_secdata_debian.py and tests/test_secdata_rpm.py "
                              "fail it (a real archive, a real repository)",
}

# -- manifest rules --------------------------------------------------------------------------

#: rule ID -> (manifest text, profile)
MANIFEST_CASES: dict[str, tuple[str, str]] = {
    "OFFER-MANIFEST": (GOOD + "colour: blue\n", "azure-current"),
    "OFFER-PUBLISHER-ID": (GOOD.replace("publisher: contoso", "publisher: Contoso Inc"),
                           "azure-current"),
    "OFFER-ID": (GOOD.replace("id: contoso-web", "id: ab"), "azure-current"),
    "OFFER-SKU-ID": (GOOD.replace("id: web-gen1", 'id: "-web"'), "azure-current"),
    "OFFER-SKU-UNIQUE": (GOOD.replace("id: web-gen2", "id: web-gen1")
                         .replace("    plan: web\n", "", 1), "azure-current"),
    "OFFER-PLAN": (GOOD.replace("image_type: gen2", "image_type: gen1"), "azure-current"),
    "OFFER-TEXT": (GOOD.replace("title: Contoso Web Server", 'title: ""'), "azure-current"),
    "OFFER-VERSION-FORMAT": (GOOD.replace('version: "1.0.0"', 'version: "1.10"', 1),
                             "azure-current"),
    "OFFER-VERSION-PATCH": (_versions("1.0.0", "1.1.0"), "azure-2015"),
    "OFFER-SIZES": (GOOD.replace("[Standard_D2s_v5, Standard_D4s_v5, Standard_E2s_v5]",
                                 "[A1, A2, A3, A4, A5, A6, A7]"), "azure-current"),
    "OFFER-OS": (GOOD.replace('friendly_name: "Debian 12 (bookworm)"', "friendly_name: Debian",
                              1), "azure-current"),
    "OFFER-WIN-BASE": (_windows("windowsServer2019"), "azure-2015"),
    "OFFER-LUNS": (_data_disks([0, 2]), "azure-current"),
    "OFFER-DATA-DISKS": (_data_disks(list(range(17))), "azure-current"),
    "OFFER-PLAN-DISKS": (_data_disks([], sku=1), "azure-current"),
    "OFFER-EMPTY-DISK": (GOOD.replace(f'{{lun: 0, url: "{URL}/web-1.0.0-d0.vhd"}}',
                                      "{lun: 0, empty_size: 32GiB}"), "azure-current"),
    "OFFER-DISK-FILE": (GOOD.replace(f'{{url: "{URL}/web-1.0.0-os.vhd"}}',
                                     "{file: build/os.vhd}"), "azure-current"),
    "OFFER-DISK-SOURCE": (GOOD.replace(f"{URL}/web-1.0.0-os.vhd", f"{URL}/os.img"),
                          "azure-current"),
}


def _violations(findings: list[Finding], rule_id: str) -> list[Finding]:
    return [f for f in findings if f.check_id == rule_id
            and f.status in (Status.FAIL, Status.WARNING)]


@pytest.mark.parametrize("rule_id", sorted(MANIFEST_CASES))
def test_manifest_rule_fails_on_its_case(tmp_path: Path, rule_id: str) -> None:
    text, profile = MANIFEST_CASES[rule_id]
    findings = validate_offer(load_manifest(write(tmp_path, text)), load_profile(profile),
                              probe=None)
    assert [f.check_id for f in findings].count(rule_id) == 1  # one rule, one finding
    assert _violations(findings, rule_id), [(f.check_id, f.status, f.message)
                                            for f in findings]


# -- SAS URI rules that read the URI alone -----------------------------------------------------

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday
_OK_QUERY = "sv=2020-10-02&sr=c&sp=rl&st=2026-03-01T00:00:00Z&se=2026-05-01T00:00:00Z&sig=abc"
_OK = f"https://a.blob.core.windows.net/vhds/os.vhd?{_OK_QUERY}"

#: rule ID -> (URIs, profile); the URIs are verified offline at NOW.
SAS_CASES: dict[str, tuple[list[str], str]] = {
    "SAS-URI-PERMISSIONS": ([_OK.replace("sp=rl", "sp=rwl")], "azure-current"),
    "SAS-URI-START": ([_OK.replace("st=2026-03-01", "st=2026-03-09")], "azure-current"),
    "SAS-URI-EXPIRY": ([_OK.replace("se=2026-05-01", "se=2026-03-06")], "azure-current"),
    "SAS-URI-BLOB-NAME": ([_OK.replace("os.vhd", "os.img")], "azure-current"),
    "SAS-URI-SCHEME": ([_OK.replace("https://", "http://")], "azure-current"),
    "SAS-URI-DISTINCT": ([_OK, _OK.replace("sig=abc", "sig=def")], "azure-current"),
}


@pytest.mark.parametrize("rule_id", sorted(SAS_CASES))
def test_sas_rule_fails_on_its_case(rule_id: str) -> None:
    uris, profile = SAS_CASES[rule_id]
    findings = verify_sas(uris, load_profile(profile), online=False, now=NOW)
    assert [f.check_id for f in findings].count(rule_id) == len(uris)  # one per URI
    assert _violations(findings, rule_id), [(f.check_id, f.status, f.message)
                                            for f in findings]
    clean = verify_sas([_OK], load_profile(profile), online=False, now=NOW)
    assert not _violations(clean, rule_id)  # the same URI without the defect passes


# -- disk rules ----------------------------------------------------------------------------------

def _dynamic(tmp: Path) -> Path:
    path = tmp / "dynamic.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic",
                    str(path), "64M"], check=True)
    return path


def _raw(tmp: Path) -> Path:
    return make_sparse(tmp / "disk.raw", 64 * MiB, [])


def _chs_sized(tmp: Path) -> Path:
    path = tmp / "chs.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed",
                    str(path), "64M"], check=True)
    return path


def _wrong_length(tmp: Path) -> Path:
    path = tmp / "length.vhd"
    convert.create(path, 64 * MiB)
    footer = replace(read_footer(path), current_size=32 * MiB).with_checksum()
    write_at(path, 64 * MiB, footer.pack())
    return path


def _small(tmp: Path) -> Path:
    path = tmp / "small.vhd"
    convert.create(path, 64 * MiB)  # a Linux OS disk is at least 1 GiB today
    return path


def _dense(tmp: Path) -> Path:
    raw = make_sparse(tmp / "dense.raw", 20 * MiB, [Extent(0, os.urandom(20 * MiB))])
    convert.convert_in_place(raw)
    return raw


#: rule ID -> (a builder of a disk that violates it, the disk's role)
DISK_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "VHD-FIXED-FORMAT": (_dynamic, "data"),
    "VHD-FOOTER-VALID": (_raw, "data"),
    "VHD-WHOLE-MIB": (_chs_sized, "data"),
    "VHD-FILE-LENGTH": (_wrong_length, "data"),
    "VHD-ROLE-SIZE": (_small, "os-linux"),
    "VHD-SPARSE": (_dense, "data"),
}


@pytest.mark.parametrize("rule_id", sorted(DISK_CASES))
def test_disk_rule_fails_on_its_case(tmp_path: Path, rule_id: str) -> None:
    build, role = DISK_CASES[rule_id]
    findings = validate_disk(build(tmp_path), role, "azure-current")
    assert _violations(findings, rule_id), [(f.check_id, f.status, f.message)
                                            for f in findings]


# -- the registry as a whole ---------------------------------------------------------------------

def test_every_rule_has_a_real_failing_case() -> None:
    from tests.test_checks_layouts import LAYOUTS
    from tests.test_checks_linux import CASES
    from tests.test_checks_windows import CASES as WINDOWS_CASES
    from tests.test_offer_disks import LOCAL_DISK_CASES
    from tests.test_storage_sas import BAD_URI_RULES

    covered = set(MANIFEST_CASES) | set(SAS_CASES) | set(DISK_CASES) | set(LOCAL_DISK_CASES)
    covered |= {c.check_id for c in CASES} | {c.check_id for c in WINDOWS_CASES}
    covered |= {rule_id for _, failing, _ in LAYOUTS.values() for rule_id in failing}
    covered |= set(BAD_URI_RULES.values())
    registered = {m.id for m in all_rules()}
    assert covered <= registered, sorted(covered - registered)
    assert registered - covered == set(EXEMPT), sorted(registered - covered - set(EXEMPT))


def test_rule_ids_in_docstrings_and_readme_exist() -> None:
    """The example IDs a newcomer copies from the docs must be real rules."""
    import re

    import vmimage.checks
    import vmimage.rules.registry

    registered = {m.id for m in all_rules()}
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    texts = [vmimage.rules.registry.__doc__ or "", vmimage.checks.__doc__ or "",
             *re.findall(r"checks show [^\n]*", readme)]
    named = {m for text in texts
             for m in re.findall(r"\b(?:LINUX|VHD|OFFER|SAS-URI)-[A-Z0-9-]*[A-Z0-9]\b", text)}
    assert named, "the docs should name at least one example rule"
    assert named <= registered, sorted(named - registered)
