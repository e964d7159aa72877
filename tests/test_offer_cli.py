"""``vmimage offer validate | urls`` as a user runs them: exit codes, tables, JSON, the example,
the generated schema and the docs kept in step with the code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.offer_support import GOOD, GiB, linux_disk, run_cli, to_vhd, tool, write
from vmimage.disk.convert import create
from vmimage.offer.model import Manifest
from vmimage.offer.schema import schema_text
from vmimage.offer.yamlload import load_yaml
from vmimage.rules import Subject, rules_for

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "offer.yaml"


def test_validate_good_exit_0(tmp_path: Path) -> None:
    res = run_cli("offer", "validate", write(tmp_path, GOOD), "--profile", "azure-2015")
    assert res.code == 0, res.stdout
    assert "0 failed" in res.stdout and "OFFER-SKU-UNIQUE" in res.stdout


def test_validate_failure_exit_1_names_line_and_requirement(tmp_path: Path) -> None:
    text = GOOD.replace("[Standard_D2s_v5, Standard_D4s_v5, Standard_E2s_v5]", "[A1]", 1)
    res = run_cli("offer", "validate", write(tmp_path, text), "--profile", "azure-2015",
                  "--format", "json")
    assert res.code == 1
    data = json.loads(res.stdout)
    failed = [f for f in data["findings"] if f["status"] == "fail"]
    assert {f["check_id"] for f in failed} == {"OFFER-SIZES", "OFFER-PLAN"}
    sizes = next(f for f in failed if f["check_id"] == "OFFER-SIZES")
    assert sizes["covers"] == ["PUB-SIZES"]
    assert sizes["evidence"][0]["line"] == 14
    assert sizes["evidence"][0]["path"].endswith("offer.yaml")
    assert data["summary"]["counts"]["fail"] == 2


def test_validate_bad_manifest_exit_1_no_traceback(tmp_path: Path) -> None:
    res = run_cli("offer", "validate", write(tmp_path, "offer: {id: x}\nfoo: 1\nfoo: 2\n"))
    assert res.code == 1
    assert "given twice" in res.stdout and "Traceback" not in res.stdout + res.stderr


def test_validate_missing_manifest_exit_2(tmp_path: Path) -> None:
    res = run_cli("offer", "validate", tmp_path / "nope.yaml")
    assert res.code == 2
    assert res.stderr.strip() == f"vmimage: {tmp_path / 'nope.yaml'}: no such file"


def test_validate_previous(tmp_path: Path) -> None:
    old = write(tmp_path, GOOD.replace('version: "1.0.0"', 'version: "1.0.5"'), "published.yaml")
    res = run_cli("offer", "validate", write(tmp_path, GOOD), "--previous", old, "--format", "json")
    assert res.code == 1
    messages = [f["message"] for f in json.loads(res.stdout)["findings"]
                if f["check_id"] == "OFFER-VERSION-PATCH" and f["status"] == "fail"]
    assert any("1.0.0 is not higher than published 1.0.5" in m for m in messages)


def test_validate_redacts_tokens(tmp_path: Path) -> None:
    text = GOOD.replace("web-1.0.0-os.vhd", "web-1.0.0-os.vhd?sv=1&sp=rl&sig=TOPSECRET123")
    res = run_cli("offer", "validate", write(tmp_path, text))
    assert res.code == 1 and "holds a SAS token" in res.stdout
    assert "TOPSECRET123" not in res.stdout + res.stderr
    res = run_cli("offer", "validate", write(tmp_path, text), "--format", "json")
    assert "TOPSECRET123" not in res.stdout


def test_urls(tmp_path: Path) -> None:
    res = run_cli("offer", "urls", write(tmp_path, GOOD))
    assert res.code == 0
    lines = res.stdout.splitlines()
    assert lines[0] == "web-gen1"
    assert "https://azuremarketplace.microsoft.com/marketplace/apps/contoso.contoso-web" \
        in lines[1]
    assert "https://portal.azure.com/#create/contoso.contoso-webweb-gen1" in lines[2]
    assert "contoso:contoso-web:web-gen1:latest" in lines[3]
    assert "marketplace/partners" not in res.stdout  # the 2015 URLs only under azure-2015
    res = run_cli("offer", "urls", write(tmp_path, GOOD), "--format", "json")
    data = json.loads(res.stdout)
    assert [u["sku"] for u in data] == ["web-gen1", "web-gen2"]
    assert data[1]["listing"] == \
        "https://azuremarketplace.microsoft.com/marketplace/apps/contoso.contoso-web"
    assert data[1]["urn"] == "contoso:contoso-web:web-gen2:latest"
    assert "marketplace_2015" not in data[1]


def test_urls_2015_under_azure_2015(tmp_path: Path) -> None:
    res = run_cli("offer", "urls", write(tmp_path, GOOD), "--profile", "azure-2015")
    assert res.code == 0, res.stderr
    assert "http://azure.microsoft.com/marketplace/partners/contoso/contoso-web-web-gen1" \
        in res.stdout
    assert "https://portal.azure.com/#gallery/contoso.contoso-webweb-gen1" in res.stdout
    assert "contoso:contoso-web:web-gen1:latest" in res.stdout  # today's stay


def test_urls_of_a_broken_manifest_exit_2(tmp_path: Path) -> None:
    res = run_cli("offer", "urls", write(tmp_path, "publisher: x\n"))
    assert res.code == 2 and "missing key 'offer'" in res.stderr


# ---- the example, the schema, the docs ---------------------------------------------------------

@pytest.mark.skipif(not all(tool(t) for t in ("sfdisk", "mkfs.ext4", "mkfs.vfat", "mmd")),
                    reason="needs sfdisk, e2fsprogs, dosfstools and mtools")
def test_example_validates_with_its_disks_built(tmp_path: Path) -> None:
    """examples/offer.yaml passes every rule once its VHDs exist (built here, not committed)."""
    shutil.copy(EXAMPLE, tmp_path / "offer.yaml")
    build = tmp_path / "build"
    build.mkdir()
    to_vhd(linux_disk(build / "web-gen1-1.0.0-os.raw"))
    to_vhd(linux_disk(build / "web-gen2-1.0.0-os.raw", esp=True))
    for sku in ("gen1", "gen2"):
        create(build / f"web-{sku}-1.0.0-data0.vhd", 1 * GiB)
    for profile in ("azure-2015", "azure-current"):
        res = run_cli("offer", "validate", tmp_path / "offer.yaml", "--profile", profile,
                      "--format", "json")
        data = json.loads(res.stdout)
        problems = [(f["check_id"], f["message"]) for f in data["findings"]
                    if f["status"] in ("fail", "warning")]
        assert res.code == 0 and problems == [], (profile, problems)
        assert data["summary"]["counts"]["skip"] == 0


def test_example_matches_the_json_schema() -> None:
    schema = json.loads((ROOT / "src/vmimage/schemas/offer-manifest.json").read_text())
    Draft202012Validator.check_schema(schema)
    data = load_yaml(EXAMPLE.read_text()).data
    assert list(Draft202012Validator(schema).iter_errors(data)) == []


def test_schema_file_is_up_to_date() -> None:
    current = (ROOT / "src/vmimage/schemas/offer-manifest.json").read_text()
    assert current == schema_text(), "run scripts/gen-offer-schema.py"
    res = subprocess.run([sys.executable, str(ROOT / "scripts/gen-offer-schema.py"), "--check"],
                         capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr


def _all_keys(model: type, seen: set[type] | None = None) -> set[str]:
    from vmimage.offer.manifest import _inner_model

    seen = seen or set()
    keys: set[str] = set()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        keys.add(name)
        inner = _inner_model(field.annotation)
        if inner is not None and inner not in seen:
            seen.add(inner)
            keys |= _all_keys(inner, seen)
    return keys


def test_docs_name_every_key_and_rule() -> None:
    doc = (ROOT / "docs" / "offer.md").read_text()
    missing_keys = sorted(k for k in _all_keys(Manifest) if f"`{k}`" not in doc)
    assert missing_keys == []
    import vmimage.offer.rules  # noqa: F401 - registers the manifest rules
    missing_rules = sorted(m.id for m in rules_for(Subject.MANIFEST) if f"`{m.id}`" not in doc)
    assert missing_rules == []
    for phrase in ("retired", "Partner Center", "Azure Compute Gallery", "0600"):
        assert phrase in doc
