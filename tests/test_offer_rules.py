"""Every offer rule, failing and passing, each finding naming its rule, requirements and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.offer_support import GOOD, write
from vmimage.findings import Finding, Status
from vmimage.offer.manifest import load_manifest
from vmimage.offer.rules import validate_offer
from vmimage.profiles import load_profile
from vmimage.rules import Subject, rules_for

URL = "https://contosovhds.blob.core.windows.net/vhds"


def run(tmp_path: Path, text: str, profile: str = "azure-current",
        previous: str | None = None) -> list[Finding]:
    path = write(tmp_path, text)
    old = load_manifest(write(tmp_path, previous, "published.yaml")) if previous else None
    return validate_offer(load_manifest(path), load_profile(profile), old, probe=None)


def bad(findings: list[Finding], rule: str) -> list[Finding]:
    """The findings of ``rule`` that did not pass (failures and warnings)."""
    return [f for f in findings if f.check_id == rule and f.status in (Status.FAIL,
                                                                       Status.WARNING)]


def only_fail(findings: list[Finding], rule: str) -> Finding:
    problems = [f for f in findings if f.status in (Status.FAIL, Status.WARNING)]
    assert [f.check_id for f in problems] == [rule], [(f.check_id, f.message) for f in problems]
    return problems[0]


@pytest.mark.parametrize("profile", ["azure-2015", "azure-current"])
def test_good_manifest_passes_every_rule(tmp_path: Path, profile: str) -> None:
    findings = run(tmp_path, GOOD, profile)
    statuses = {f.check_id: f.status for f in findings}
    assert set(statuses) == {m.id for m in rules_for(Subject.MANIFEST)}
    assert [f for f in findings if f.status in (Status.FAIL, Status.WARNING)] == []
    # rules that open disks say so rather than pass silently
    assert statuses["OFFER-OS-FAMILY"] is Status.SKIP
    for f in findings:
        assert f.covers and all(c == c.upper() for c in f.covers)


def test_finding_names_file_line_and_key(tmp_path: Path) -> None:
    f = only_fail(run(tmp_path, GOOD.replace("publisher: contoso", "publisher: Contoso Inc")),
                  "OFFER-PUBLISHER-ID")
    assert f.status is Status.FAIL and "OFR-URL" in f.covers
    assert f.evidence[0].path == str(tmp_path / "offer.yaml") and f.evidence[0].line == 1
    assert "publisher 'Contoso Inc'" in f.message and "' '" in f.message


@pytest.mark.parametrize(("offer_id", "fragment"), [
    ("ab", "3 to 50"), ("Web", "'W'"), ("-web", "must start"), ("w" * 51, "3 to 50"),
    ("web.offer", "'.'"),
])
def test_offer_id(tmp_path: Path, offer_id: str, fragment: str) -> None:
    f = only_fail(run(tmp_path, GOOD.replace("id: contoso-web", f"id: {offer_id}")), "OFFER-ID")
    assert fragment in f.message and f.evidence[0].line == 3


@pytest.mark.parametrize(("sku", "profile", "ok"), [
    ("web_gen1", "azure-current", True), ("web_gen1", "azure-2015", False),
    ("web-", "azure-current", False), ("Web1", "azure-current", False),
    ("a" * 50, "azure-current", True), ("a" * 51, "azure-current", False),
    ("w%20b", "azure-current", False),
])
def test_sku_id(tmp_path: Path, sku: str, profile: str, ok: bool) -> None:
    text = GOOD.replace("id: web-gen1", f'id: "{sku}"')
    problems = bad(run(tmp_path, text, profile), "OFFER-SKU-ID")
    assert not problems if ok else problems and problems[0].evidence[0].line == 8


def test_sku_ids_unique(tmp_path: Path) -> None:
    text = GOOD.replace("id: web-gen2", "id: web-gen1").replace("    plan: web\n", "", 1)
    problems = bad(run(tmp_path, text), "OFFER-SKU-UNIQUE")
    assert len(problems) == 1
    assert problems[0].message == ("skus[1].id: SKU ID 'web-gen1' is already used on line 8")
    assert [e.line for e in problems[0].evidence] == [19, 8]


def test_plan_holds_one_of_each_image_type(tmp_path: Path) -> None:
    text = GOOD.replace("image_type: gen2", "image_type: gen1")
    [f] = bad(run(tmp_path, text), "OFFER-PLAN")
    assert "both gen1" in f.message


def test_plan_has_one_technical_configuration(tmp_path: Path) -> None:
    text = GOOD.replace("[Standard_D2s_v5, Standard_D4s_v5, Standard_E2s_v5]\n    versions:\n"
                        "      - version: \"1.0.0\"\n        os_disk: {url: \"https://contosovhds"
                        ".blob.core.windows.net/vhds/web2",
                        "[Standard_D2s_v5]\n    versions:\n      - version: \"1.0.0\"\n"
                        "        os_disk: {url: \"https://contosovhds.blob.core.windows.net/vhds"
                        "/web2")
    [f] = bad(run(tmp_path, text), "OFFER-PLAN")
    assert "differs from 'web-gen1' in recommended_sizes" in f.message
    assert f.evidence[0].line == 26


def test_plan_id_rules(tmp_path: Path) -> None:
    findings = run(tmp_path, GOOD.replace("    plan: web\n", "    plan: w\n"))
    assert any("3 to 50" in f.message for f in bad(findings, "OFFER-PLAN"))


def test_text_lengths(tmp_path: Path) -> None:
    text = GOOD.replace("summary: Nginx on Debian 12, hardened and ready to serve.",
                        "summary: " + "x" * 101).replace("title: Contoso Web Server",
                                                          'title: ""')
    [problem] = bad(run(tmp_path, text), "OFFER-TEXT")  # one rule, one finding, all evidence
    assert set(problem.message.split("; ")) == {"offer.title is empty",
                                                "skus[0].summary is 101 characters: at most 100"}
    assert len(problem.evidence) == 2


@pytest.mark.parametrize("version", ["1.10", "1.0", "01.0.0", "v1.0.0", "1.0.0.0",
                                     "1.0.99999999999"])
def test_version_format(tmp_path: Path, version: str) -> None:
    text = GOOD.replace('version: "1.0.0"', f'version: "{version}"', 1)
    [f] = bad(run(tmp_path, text), "OFFER-VERSION-FORMAT")
    assert f.evidence[0].line == 16 and f.evidence[0].seen == version
    assert "PUB-VERSION" in f.covers


def test_version_written_as_number_is_found_as_written(tmp_path: Path) -> None:
    """1.10 in YAML 1.1 tools is the float 1.1: here it stays '1.10' and fails X.Y.Z."""
    [f] = bad(run(tmp_path, GOOD.replace('version: "1.0.0"', "version: 1.10", 1)),
              "OFFER-VERSION-FORMAT")
    assert "'1.10' is not X.Y.Z" in f.message


def _versions(*numbers: str) -> str:
    entries = "".join(f'      - version: "{n}"\n        os_disk: {{url: "{URL}/v{i}.vhd"}}\n'
                      f'        data_disks: [{{lun: 0, url: "{URL}/d{i}.vhd"}}]\n'
                      for i, n in enumerate(numbers))
    head, _, _ = GOOD.partition("    versions:\n")
    tail = GOOD[GOOD.index("  - id: web-gen2"):]
    return head + "    versions:\n" + entries + tail


def test_only_patch_changes_within_a_sku(tmp_path: Path) -> None:
    problems = bad(run(tmp_path, _versions("1.0.0", "1.1.0", "1.0.1", "1.0.1"), "azure-2015"),
                   "OFFER-VERSION-PATCH")
    messages = [p.message for p in problems]
    assert any("1.1.0 changes the major or minor" in m for m in messages)
    assert any("version 1.0.1 is given twice" in m for m in messages)


@pytest.mark.parametrize(("new", "fragment"), [
    ("1.0.2", "after published 1.0.3"), ("1.1.0", "after published 1.0.3"),
    ("2.0.4", "after published 1.0.3"), ("1.0.4", None),
])
def test_previous_only_patch_rises(tmp_path: Path, new: str, fragment: str | None) -> None:
    """The 2015 guide: within a SKU only the patch number rises."""
    findings = run(tmp_path, _versions("1.0.3", new), "azure-2015", previous=_versions("1.0.3"))
    problems = [p for p in bad(findings, "OFFER-VERSION-PATCH") if p.status is Status.FAIL]
    if fragment is None:
        assert problems == []
    else:
        [f] = [p for p in problems if fragment in p.message]
        assert "1.0.Z with Z > 3" in [e.required for e in f.evidence]


@pytest.mark.parametrize(("new", "fails"), [
    ("1.0.2", True), ("1.0.4", False), ("1.1.0", False), ("2.0.0", False),
])
def test_current_new_version_must_be_higher(tmp_path: Path, new: str, fails: bool) -> None:
    """Partner Center today: a new version must be higher than the published ones (any part)."""
    findings = run(tmp_path, _versions("1.0.3", new), previous=_versions("1.0.3"))
    problems = [p for p in bad(findings, "OFFER-VERSION-PATCH") if p.status is Status.FAIL]
    if fails:
        [f] = problems
        assert "not higher than published 1.0.3" in f.message
        assert f.evidence[0].required == "higher than 1.0.3"
    else:
        assert problems == []


def test_current_allows_a_minor_change_within_a_sku(tmp_path: Path) -> None:
    assert bad(run(tmp_path, _versions("1.0.0", "1.1.0")), "OFFER-VERSION-PATCH") == []


def test_previous_published_versions_are_kept_and_not_edited(tmp_path: Path) -> None:
    old = _versions("1.0.1", "1.0.2")
    new = _versions("1.0.2", "1.0.3").replace(f"{URL}/v0.vhd", f"{URL}/other.vhd")
    problems = bad(run(tmp_path, new, previous=old), "OFFER-VERSION-PATCH")
    messages = sorted(p.message for p in problems)
    assert all(p.status is Status.WARNING for p in problems)
    assert any("published version 1.0.2 was changed" in m for m in messages)
    assert any("published version 1.0.1 of SKU 'web-gen1' is missing" in m for m in messages)


def test_previous_one_new_image_per_submission(tmp_path: Path) -> None:
    findings = run(tmp_path, _versions("1.0.1", "1.0.2", "1.0.3"), previous=_versions("1.0.1"))
    assert any("2 new versions" in p.message for p in bad(findings, "OFFER-VERSION-PATCH"))
    findings = run(tmp_path, _versions("1.0.1", "1.0.2", "1.0.3"), "azure-2015",
                   previous=_versions("1.0.1"))
    assert bad(findings, "OFFER-VERSION-PATCH") == []


def test_previous_with_problems_is_reported_not_compared(tmp_path: Path) -> None:
    findings = run(tmp_path, GOOD, previous="publisher: [\n")
    [f] = bad(findings, "OFFER-MANIFEST")
    assert f.evidence[0].path == str(tmp_path / "published.yaml")


@pytest.mark.parametrize(("sizes", "profile", "fragment"), [
    ("[Standard_D2s_v5, Standard_D4s_v5]", "azure-2015", "2 sizes; azure-2015 asks exactly 3"),
    ("[a1, a2, a3, a4, a5, a6, a7]", "azure-current", "7 sizes; azure-current asks 0 to 6"),
    ("[Standard_D2s_v5, standard_d2s_v5, A1]", "azure-2015", "is listed twice"),
    ("[Standard D2, A1, A2]", "azure-2015", "is not a VM size name"),
])
def test_recommended_sizes(tmp_path: Path, sizes: str, profile: str, fragment: str) -> None:
    text = GOOD.replace("[Standard_D2s_v5, Standard_D4s_v5, Standard_E2s_v5]", sizes)
    problems = bad(run(tmp_path, text, profile), "OFFER-SIZES")
    assert any(fragment in p.message for p in problems), [p.message for p in problems]
    assert all("PUB-SIZES" in p.covers for p in problems)


def test_six_sizes_current_but_not_2015(tmp_path: Path) -> None:
    text = GOOD.replace("[Standard_D2s_v5, Standard_D4s_v5, Standard_E2s_v5]",
                        "[A1, A2, A3, A4, A5, A6]")
    assert bad(run(tmp_path, text, "azure-current"), "OFFER-SIZES") == []
    assert bad(run(tmp_path, text, "azure-2015"), "OFFER-SIZES")


def _data_disks(luns: list[int], sku: int = 0) -> str:
    name = "web" if sku == 0 else "web2"
    old = f'          - {{lun: 0, url: "{URL}/{name}-1.0.0-d0.vhd"}}\n'
    new = "".join(f'          - {{lun: {n}, url: "{URL}/{name}-d{i}.vhd"}}\n'
                  for i, n in enumerate(luns))
    text = GOOD.replace(old, new) if luns else GOOD.replace("        data_disks:\n" + old, "")
    assert text != GOOD
    return text


@pytest.mark.parametrize("luns", [[0, 2], [1], [0, 0], [1, 0, 2, 4]])
def test_luns_without_gaps(tmp_path: Path, luns: list[int]) -> None:
    problems = bad(run(tmp_path, _data_disks(luns)), "OFFER-LUNS")
    assert len(problems) == 1 and problems[0].evidence[0].line == 18


def test_luns_in_any_order(tmp_path: Path) -> None:
    assert bad(run(tmp_path, _data_disks([1, 0])), "OFFER-LUNS") == []


def test_at_most_16_data_disks(tmp_path: Path) -> None:
    findings = run(tmp_path, _data_disks(list(range(17))))
    [f] = bad(findings, "OFFER-DATA-DISKS")
    assert "17 data disks; at most 16" in f.message
    assert bad(run(tmp_path, _data_disks(list(range(16)))), "OFFER-DATA-DISKS") == []


def test_same_data_disk_count_in_a_plan(tmp_path: Path) -> None:
    [f] = bad(run(tmp_path, _data_disks([], sku=1)), "OFFER-PLAN-DISKS")
    assert "0 in web-gen2 1.0.0; 1 in web-gen1 1.0.0" in f.message
    text = _data_disks([], sku=1).replace("    plan: web\n", "", 2)
    assert bad(run(tmp_path, text), "OFFER-PLAN-DISKS") == []


def test_empty_data_disk_is_a_warning(tmp_path: Path) -> None:
    text = GOOD.replace(f'{{lun: 0, url: "{URL}/web-1.0.0-d0.vhd"}}', "{lun: 0, "
                        "empty_size: 32GiB}")
    f = only_fail(run(tmp_path, text), "OFFER-EMPTY-DISK")
    assert f.status is Status.WARNING and f.evidence[0].line == 19


@pytest.mark.parametrize(("url", "fragment"), [
    (f"{URL}/os.vhd?sv=2020-08-04&sr=b&sp=r&sig=SECRETSIG", "holds a SAS token"),
    (f"{URL}/os.img", "must end in .vhd"),
    (f"{URL}/my%20os.vhd", "whitespace, '%'"),
    ("ftp://host/vhds/os.vhd", "not an http(s) URL"),
    ("https://contosovhds.blob.core.windows.net/os.vhd", "no container"),
])
def test_blob_urls(tmp_path: Path, url: str, fragment: str) -> None:
    text = GOOD.replace(f"{URL}/web-1.0.0-os.vhd", url)
    problems = bad(run(tmp_path, text), "OFFER-DISK-SOURCE")
    assert any(fragment in p.message for p in problems), [p.message for p in problems]
    for p in problems:
        assert "SECRETSIG" not in p.message + str(p.evidence)


def test_every_disk_its_own_vhd(tmp_path: Path) -> None:
    text = GOOD.replace(f"{URL}/web-1.0.0-d0.vhd", f"{URL}/web-1.0.0-os.vhd")
    [f] = bad(run(tmp_path, text), "OFFER-DISK-SOURCE")
    assert "the same VHD as skus[0].versions[0].os_disk" in f.message


def test_local_file_missing(tmp_path: Path) -> None:
    text = GOOD.replace(f'{{url: "{URL}/web-1.0.0-os.vhd"}}', "{file: build/os.vhd}")
    f = only_fail(run(tmp_path, text), "OFFER-DISK-FILE")
    assert f.message == "skus[0].versions[0].os_disk.file: build/os.vhd does not exist"
    assert f.evidence[0].line == 17


def test_local_file_without_blob_url_warns(tmp_path: Path) -> None:
    (tmp_path / "os.vhd").write_bytes(b"")
    text = GOOD.replace(f'{{url: "{URL}/web-1.0.0-os.vhd"}}', "{file: os.vhd}").replace(
        "storage:\n  container_url: https://contosovhds.blob.core.windows.net/vhds\n", "")
    [f] = bad(run(tmp_path, text), "OFFER-DISK-SOURCE")
    assert f.status is Status.WARNING and "needs its blob URL" in f.message


def test_gallery_image(tmp_path: Path) -> None:
    good = ("gallery_image: {tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47, resource_id: "
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/"
            "images/web/versions/1.0.0}")
    old = (f'os_disk: {{url: "{URL}/web-1.0.0-os.vhd"}}\n        data_disks:\n'
           f'          - {{lun: 0, url: "{URL}/web-1.0.0-d0.vhd"}}')
    text = GOOD.replace(old, good)
    assert [f for f in run(tmp_path, text) if f.status is Status.FAIL] == []
    broken = text.replace("72f988bf-86f1-41af-91ab-2d7cd011db47", "tenant").replace(
        "/versions/1.0.0", "")
    messages = [p.message for p in bad(run(tmp_path, broken), "OFFER-DISK-SOURCE")]
    assert any("not a tenant GUID" in m for m in messages)
    assert any("not a gallery image version ID" in m for m in messages)


def _windows(os_type: str) -> str:
    return GOOD.replace('{family: linux, type: debian, friendly_name: "Debian 12 (bookworm)"}',
                        f'{{family: windows, type: {os_type}, friendly_name: "Windows Server '
                        '2012 R2 Datacenter"}')


@pytest.mark.parametrize(("os_type", "profile", "status"), [
    ("windowsServer2012R2Datacenter", "azure-2015", None),
    ("windowsServer2019", "azure-2015", Status.FAIL),
    ("windowsServer2019", "azure-current", None),
    ("other", "azure-current", Status.WARNING),
])
def test_windows_base(tmp_path: Path, os_type: str, profile: str,
                      status: Status | None) -> None:
    problems = bad(run(tmp_path, _windows(os_type), profile), "OFFER-WIN-BASE")
    assert [p.status for p in problems] == ([status] if status else [])
    if status:  # one finding for both SKUs, with the evidence of each
        assert len(problems[0].evidence) == 2
    assert all({"OFR-WIN-BASE", "WIN-BASE"} <= set(p.covers) for p in problems)


def test_os_type_must_match_family(tmp_path: Path) -> None:
    text = GOOD.replace("type: debian", "type: windowsServer2019", 1)
    loaded = load_manifest(write(tmp_path, text))
    assert loaded.manifest is None
    assert "not a linux type" in loaded.problems[0].message
    [f] = bad(validate_offer(loaded, load_profile("azure-current"), probe=None), "OFFER-MANIFEST")
    assert "not a linux type" in f.message
    others = [x for x in validate_offer(loaded, load_profile("azure-current"), probe=None)
              if x.check_id != "OFFER-MANIFEST"]
    # nothing else can be judged on a manifest that could not be read: skipped, never passed
    assert others and all(x.status is Status.SKIP for x in others)


def test_friendly_name_without_version_warns(tmp_path: Path) -> None:
    text = GOOD.replace('friendly_name: "Debian 12 (bookworm)"', "friendly_name: Debian", 1)
    [f] = bad(run(tmp_path, text), "OFFER-OS")
    assert f.status is Status.WARNING


def test_profile_severity_overrides_rule_default(tmp_path: Path) -> None:
    """Profiles set severities by rule ID, for offer rules as for checks."""
    from dataclasses import replace

    from vmimage.findings import Severity

    profile = load_profile("azure-current")
    profile = replace(profile, severity={**profile.severity, "OFFER-SIZES": Severity.WARNING})
    text = GOOD.replace("[Standard_D2s_v5, Standard_D4s_v5, Standard_E2s_v5]",
                        "[a1, a2, a3, a4, a5, a6, a7]")
    findings = validate_offer(load_manifest(write(tmp_path, text)), profile, probe=None)
    assert [f.status for f in bad(findings, "OFFER-SIZES")] == [Status.WARNING]


@pytest.mark.parametrize("char", ["\\u202e", "\\u2066", "\\u200f", "\\e", "\\x85"])
def test_titles_refuse_bidi_and_control_characters(tmp_path: Path, char: str) -> None:
    """U+202E shows "Contoso gpj.exe" as "Contoso exe.jpg": OFFER-TEXT refuses it (``char``
    is a YAML escape: a raw control character is already a YAML syntax error)."""
    text = GOOD.replace("title: Contoso Web Server", f'title: "Contoso {char}Web"')
    [problem] = bad(run(tmp_path, text), "OFFER-TEXT")
    assert problem.message.startswith("offer.title holds a")
