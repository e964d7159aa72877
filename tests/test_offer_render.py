"""``vmimage submit render``: the guide's Create VM Image bodies, well-formed and without the
guide's defects, and the Partner Center resource, valid against the pinned schema; SAS tokens
read from the environment or a file, written 0600, redacted everywhere else."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest
from jsonschema import Draft202012Validator

from tests.offer_support import GOOD, run_cli, write
from vmimage.offer.partner_center import RESOURCE_SCHEMA, SCHEMA_FILE

NS = "{http://schemas.microsoft.com/windowsazure}"
URL = "https://contosovhds.blob.core.windows.net/vhds"
SIG = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
CONTAINER_SAS = f"{URL}?sv=2022-11-02&sr=c&sp=rl&st=2024-01-01T00:00:00Z&se=2024-02-01T00:00:00Z&sig={SIG}"
WITH_EMPTY = GOOD.replace(f'{{lun: 0, url: "{URL}/web-1.0.0-d0.vhd"}}',
                          f'{{lun: 1, empty_size: 32GiB}}\n          - {{lun: 0, url: '
                          f'"{URL}/web-1.0.0-d0.vhd"}}').replace("    plan: web\n", "")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def vendored_schema() -> dict[str, object]:
    root = Path(__file__).resolve().parent.parent / "src" / "vmimage"
    loaded: dict[str, object] = json.loads((root / SCHEMA_FILE).read_text())
    return loaded


# ---- classic XML --------------------------------------------------------------------------------

def test_classic_xml_bodies(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_cli("submit", "render", write(tmp_path, WITH_EMPTY), "--format", "classic-xml",
                  "--output", out)
    assert res.code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["web-gen1-1.0.0.xml", "web-gen2-1.0.0.xml"]
    assert mode(out) == 0o700
    body = (out / "web-gen1-1.0.0.xml").read_text()
    assert mode(out / "web-gen1-1.0.0.xml") == 0o600
    root = SafeET.fromstring(body)
    assert root.tag == f"{NS}VMImage"
    assert [c.tag.removeprefix(NS) for c in root] == [
        "Name", "Label", "Description", "OSDiskConfiguration", "DataDiskConfigurations"]
    assert root.findtext(f"{NS}Name") == "contoso-web-web-gen1-1.0.0"
    os_disk = root.find(f"{NS}OSDiskConfiguration")
    assert os_disk is not None
    assert [(c.tag.removeprefix(NS), c.text) for c in os_disk] == [
        ("HostCaching", "ReadWrite"), ("OSState", "Generalized"), ("OS", "Linux"),
        ("MediaLink", f"{URL}/web-1.0.0-os.vhd")]
    data = root.findall(f"{NS}DataDiskConfigurations/{NS}DataDiskConfiguration")
    assert [(c.tag.removeprefix(NS), c.text) for c in data[0]] == [
        ("HostCaching", "None"), ("Lun", "0"), ("MediaLink", f"{URL}/web-1.0.0-d0.vhd")]
    # an empty disk has a size and no MediaLink (the guide's script sent an undefined one)
    assert [(c.tag.removeprefix(NS), c.text) for c in data[1]] == [
        ("HostCaching", "None"), ("Lun", "1"), ("LogicalDiskSizeInGB", "32")]


def test_classic_xml_has_none_of_the_guides_defects(tmp_path: Path) -> None:
    res = run_cli("submit", "render", write(tmp_path, WITH_EMPTY), "--format", "classic-xml")
    assert res.code == 0, res.stderr
    assert res.stdout.isascii()  # the guide had U+2010 and U+2013 for '-'
    assert "+ Name>" not in res.stdout and "<Name>" in res.stdout
    assert "$dataMediaLink" not in res.stdout
    bodies = [b for b in res.stdout.split("# POST ") if b.strip()]
    assert len(bodies) == 2
    for block in bodies:
        head, _, xml = block.partition("\n")
        assert "/services/vmimages" in head and "x-ms-version: 2014-06-01" in head
        SafeET.fromstring(xml.encode())


def test_classic_xml_escapes_text(tmp_path: Path) -> None:
    text = WITH_EMPTY.replace("summary: Nginx on Debian 12, hardened and ready to serve.",
                              "summary: 'Fast & small <web> server \"x\"'")
    out = tmp_path / "out"
    assert run_cli("submit", "render", write(tmp_path, text), "--format", "classic-xml",
                   "--output", out).code == 0
    root = SafeET.fromstring((out / "web-gen1-1.0.0.xml").read_bytes())
    assert root.findtext(f"{NS}Description") == 'Fast & small <web> server "x"'


def test_classic_windows_and_host_caching(tmp_path: Path) -> None:
    text = GOOD.replace('{family: linux, type: debian, friendly_name: "Debian 12 (bookworm)"}',
                        '{family: windows, type: windowsServer2012R2, friendly_name: '
                        '"Windows Server 2012 R2 Datacenter"}').replace(
        f'{{url: "{URL}/web-1.0.0-os.vhd"}}', f'{{url: "{URL}/web-1.0.0-os.vhd", '
                                               'host_caching: ReadOnly}')
    out = tmp_path / "out"
    assert run_cli("submit", "render", write(tmp_path, text), "--format", "classic-xml",
                   "--output", out, "--profile", "azure-2015").code == 0
    root = SafeET.fromstring((out / "web-gen1-1.0.0.xml").read_bytes())
    assert root.findtext(f"{NS}OSDiskConfiguration/{NS}OS") == "Windows"
    assert root.findtext(f"{NS}OSDiskConfiguration/{NS}HostCaching") == "ReadOnly"


def test_classic_file_disks_take_the_container_url(tmp_path: Path) -> None:
    """A disk given as a local file is named by storage.container_url + its file name; the
    file need not be on this machine to render."""
    text = GOOD.replace(f'{{url: "{URL}/web-1.0.0-os.vhd"}}', "{file: build/web os.vhd}")
    out = tmp_path / "out"
    res = run_cli("submit", "render", write(tmp_path, text), "--format", "classic-xml",
                  "--output", out)
    assert res.code == 1 and "whitespace" in res.stderr  # its blob name would hold a space
    text = GOOD.replace(f'{{url: "{URL}/web-1.0.0-os.vhd"}}', "{file: build/web-os.vhd}")
    res = run_cli("submit", "render", write(tmp_path, text), "--format", "classic-xml",
                  "--output", out)
    assert res.code == 0, res.stderr
    root = SafeET.fromstring((out / "web-gen1-1.0.0.xml").read_bytes())
    assert root.findtext(f"{NS}OSDiskConfiguration/{NS}MediaLink") == f"{URL}/web-os.vhd"


def test_classic_refuses_tokens_and_gallery(tmp_path: Path) -> None:
    res = run_cli("submit", "render", write(tmp_path, GOOD), "--format", "classic-xml",
                  "--sas-env", "X")
    assert res.code == 2 and "takes no SAS tokens" in res.stderr
    gallery = GOOD.replace(
        f'os_disk: {{url: "{URL}/web-1.0.0-os.vhd"}}\n        data_disks:\n'
        f'          - {{lun: 0, url: "{URL}/web-1.0.0-d0.vhd"}}',
        "gallery_image: {tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47, resource_id: "
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g/images/i/"
        "versions/1.0.0}").replace("    plan: web\n", "")
    res = run_cli("submit", "render", write(tmp_path, gallery), "--format", "classic-xml")
    assert res.code == 2 and "gallery image cannot be registered" in res.stderr


def test_render_refuses_a_manifest_that_breaks_rules(tmp_path: Path) -> None:
    out = tmp_path / "out"
    text = GOOD.replace("id: web-gen1", "id: Web Gen1")
    res = run_cli("submit", "render", write(tmp_path, text), "--format", "classic-xml",
                  "--output", out)
    assert res.code == 1
    assert "OFFER-SKU-ID" in res.stderr and "nothing rendered" in res.stderr
    assert not out.exists()


def test_render_broken_manifest_is_one_line_exit_2(tmp_path: Path) -> None:
    res = run_cli("submit", "render", write(tmp_path, "publisher: [\n"), "--format",
                  "classic-xml")
    assert res.code == 1 or res.code == 2
    assert "Traceback" not in res.stderr and "offer.yaml" in res.stderr


def test_unknown_format(tmp_path: Path) -> None:
    res = run_cli("submit", "render", write(tmp_path, GOOD), "--format", "pdf")
    assert res.code == 2 and "invalid choice: 'pdf'" in res.stderr


# ---- Partner Center ------------------------------------------------------------------------------

def test_partner_center_resource_is_schema_valid(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_cli("submit", "render", write(tmp_path, GOOD), "--format", "partner-center",
                  "--sas-env", "OFFER_TEST_SAS", "--output", out,
                  env={"OFFER_TEST_SAS": CONTAINER_SAS})
    assert res.code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["configure.json", "plan-web.json"]
    for p in out.iterdir():
        assert mode(p) == 0o600
    resource = json.loads((out / "plan-web.json").read_text())
    validator = Draft202012Validator(vendored_schema())
    assert list(validator.iter_errors(resource)) == []
    assert resource["$schema"] == RESOURCE_SCHEMA
    assert resource["product"] == {"externalId": "contoso-web"}
    assert resource["plan"] == {"externalId": "web"}
    assert resource["skus"] == [{"imageType": "x64Gen1", "skuId": "web-gen1"},
                                {"imageType": "x64Gen2", "skuId": "web-gen2"}]
    [version] = resource["vmImageVersions"]
    assert version["versionNumber"] == "1.0.0"
    gen1, gen2 = version["vmImages"]
    assert gen1["imageType"] == "x64Gen1" and gen2["imageType"] == "x64Gen2"
    query = CONTAINER_SAS.split("?", 1)[1]
    assert gen1["source"] == {
        "sourceType": "sasUri", "osDisk": {"uri": f"{URL}/web-1.0.0-os.vhd?{query}"},
        "dataDisks": [{"lunNumber": 0, "uri": f"{URL}/web-1.0.0-d0.vhd?{query}"}]}
    configure = json.loads((out / "configure.json").read_text())
    assert configure["resources"] == [resource]
    # the token is in the files (0600) and nowhere else
    assert SIG not in res.stdout + res.stderr


def test_partner_center_stdout_is_redacted(tmp_path: Path) -> None:
    res = run_cli("submit", "render", write(tmp_path, GOOD), "--format", "partner-center",
                  "--sas-env", "OFFER_TEST_SAS", env={"OFFER_TEST_SAS": CONTAINER_SAS})
    assert res.code == 0, res.stderr
    assert SIG not in res.stdout + res.stderr
    assert "sig=REDACTED" in res.stdout
    assert "redacted on standard output" in res.stderr
    json.loads(res.stdout)


def test_partner_center_token_file_per_blob(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    names = ["web-1.0.0-os.vhd", "web-1.0.0-d0.vhd", "web2-1.0.0-os.vhd"]
    tokens.write_text("# one SAS URI per blob\n" + "".join(
        f"{URL}/{name}?sv=2022-11-02&sr=b&sp=r&sig={SIG}{i}\n" for i, name in enumerate(names)))
    out = tmp_path / "out"
    res = run_cli("submit", "render", write(tmp_path, GOOD), "--format", "partner-center",
                  "--sas-file", tokens, "--output", out)
    # Tokens were given and one blob has none: a document naming its bare URL would fail
    # certification days later, so nothing is written (it was a warning and exit 0).
    assert res.code == 2
    [line] = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert "no SAS token" in line and f"{URL}/web2-1.0.0-d0.vhd" in line
    assert "web-1.0.0-d0.vhd" not in line and str(tokens) in line
    assert not out.exists() or not any(out.iterdir())
    assert SIG not in res.stdout + res.stderr
    with tokens.open("a") as f:
        f.write(f"{URL}/web2-1.0.0-d0.vhd?sv=2022-11-02&sr=b&sp=r&sig={SIG}3\n")
    res = run_cli("submit", "render", write(tmp_path, GOOD), "--format", "partner-center",
                  "--sas-file", tokens, "--output", out)
    assert res.code == 0, res.stderr
    images = json.loads((out / "plan-web.json").read_text())["vmImageVersions"][0]["vmImages"]
    assert images[0]["source"]["osDisk"]["uri"] == f"{URL}/web-1.0.0-os.vhd?sv=2022-11-02&" \
                                                   f"sr=b&sp=r&sig={SIG}0"
    assert images[1]["source"]["dataDisks"][0]["uri"].endswith(f"sig={SIG}3")
    assert SIG not in res.stdout + res.stderr


def test_without_tokens_the_bare_urls_are_a_warning(tmp_path: Path) -> None:
    """No --sas-env or --sas-file at all: a preview naming the bare URLs, with a warning."""
    out = tmp_path / "out"
    res = run_cli("submit", "render", write(tmp_path, GOOD), "--format", "partner-center",
                  "--output", out)
    assert res.code == 0 and "no SAS token for" in res.stderr
    images = json.loads((out / "plan-web.json").read_text())["vmImageVersions"][0]["vmImages"]
    assert images[0]["source"]["osDisk"]["uri"] == f"{URL}/web-1.0.0-os.vhd"


def _token(line: str, blob_url: str) -> str | None:
    from vmimage.offer.sas import parse_tokens

    return parse_tokens(line, "tokens.txt").token(blob_url)


@pytest.mark.parametrize("base", [URL, "http://127.0.0.1:10000/acct/vhds"])
def test_a_container_sas_with_a_blob_path_covers_its_container(base: str) -> None:
    """What ``sas create`` makes by default: sr=c with the blob's path appended. It is the
    blob's token, and its container's for the other blobs there (it was matched to nothing,
    the path-style form included)."""
    query = f"sv=2022-11-02&sr=c&sp=rl&sig={SIG}"
    line = f"{base}/web-1.0.0-os.vhd?{query}"
    assert _token(line, f"{base}/web-1.0.0-os.vhd") == query
    assert _token(line, f"{base}/web-1.0.0-d0.vhd") == query
    assert _token(line, base.replace("/vhds", "/VHDS") + "/other.vhd") == query  # any case
    assert _token(line, f"{base}2/web-1.0.0-os.vhd") is None  # another container
    assert _token(line.replace("sr=c", "sr=b"), f"{base}/web-1.0.0-d0.vhd") is None


def test_token_scopes_most_specific_first() -> None:
    from vmimage.offer.sas import parse_tokens

    text = "\n".join([
        f"sv=1&sig={SIG}default",
        f"https://contosovhds.blob.core.windows.net/?sv=1&ss=b&srt=co&sp=rl&sig={SIG}account",
        f"{URL}?sv=1&sr=c&sp=rl&sig={SIG}container",
        f"{URL}/os.vhd?sv=1&sr=b&sp=r&sig={SIG}blob",
    ])
    tokens = parse_tokens(text, "tokens.txt")
    assert str(tokens.token(f"{URL}/os.vhd")).endswith("blob")
    assert str(tokens.token(f"{URL}/d0.vhd")).endswith("container")
    assert str(tokens.token("https://contosovhds.blob.core.windows.net/x/d.vhd")).endswith(
        "account")
    assert str(tokens.token("https://other.blob.core.windows.net/x/d.vhd")).endswith("default")


@pytest.mark.parametrize(("text", "fragment"), [
    ("# nothing but comments\n\n", "holds no SAS URI or token"),
    (f"{URL}?sv=1&sr=b&sig={SIG}", "line 1: a blob SAS (sr=b) whose URI names no blob"),
    (f"https://u:p@contosovhds.blob.core.windows.net/vhds?sig={SIG}", "no user name"),
    (f"ftp://a/b/c.vhd?sig={SIG}", "line 1: not an http(s) SAS URI"),
])
def test_bad_token_lines(text: str, fragment: str) -> None:
    from vmimage.errors import InputError
    from vmimage.offer.sas import parse_tokens

    with pytest.raises(InputError) as info:
        parse_tokens(text, "tokens.txt")
    assert fragment in str(info.value) and SIG not in str(info.value)


def test_partner_center_refuses_empty_disks(tmp_path: Path) -> None:
    res = run_cli("submit", "render", write(tmp_path, WITH_EMPTY),
                  "--format", "partner-center")
    assert res.code == 2
    assert "needs a VHD for every data disk" in res.stderr


def test_partner_center_gallery_image(tmp_path: Path) -> None:
    gallery = GOOD.replace(
        f'os_disk: {{url: "{URL}/web-1.0.0-os.vhd"}}\n        data_disks:\n'
        f'          - {{lun: 0, url: "{URL}/web-1.0.0-d0.vhd"}}',
        "gallery_image: {tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47, resource_id: "
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g/images/i/"
        "versions/1.0.0}").replace("    plan: web\n", "", 1)
    out = tmp_path / "out"
    res = run_cli("submit", "render", write(tmp_path, gallery), "--format", "partner-center",
                  "--output", out)
    assert res.code == 0, res.stderr
    resource = json.loads((out / "plan-web-gen1.json").read_text())
    assert list(Draft202012Validator(vendored_schema()).iter_errors(resource)) == []
    source = resource["vmImageVersions"][0]["vmImages"][0]["source"]
    assert source["sourceType"] == "sharedImageGallery"
    assert source["sharedImage"]["tenantId"] == "72f988bf-86f1-41af-91ab-2d7cd011db47"


def test_vm_properties_and_ports(tmp_path: Path) -> None:
    text = GOOD.replace("    image_type: gen1\n", "    image_type: gen1\n"
                        "    properties: {supports_cloud_init: true, "
                        "is_network_virtual_appliance: true}\n"
                        "    open_ports: [{label: web ports, ports: 8000-8080, protocol: tcp}]\n")
    text = text.replace("    plan: web\n", "", 1)
    out = tmp_path / "out"
    assert run_cli("submit", "render", write(tmp_path, text), "--format", "partner-center",
                   "--output", out).code == 0
    resource = json.loads((out / "plan-web-gen1.json").read_text())
    assert resource["vmProperties"]["supportsCloudInit"] is True
    assert resource["vmProperties"]["isNetworkVirtualAppliance"] is True
    assert resource["vmProperties"]["supportsExtensions"] is True
    assert resource["openPorts"] == [{"label": "web ports", "portRange": "8000-8080",
                                      "protocol": "tcp"}]


@pytest.mark.parametrize(("ports", "label"), [("70000", "web"), ("90-80", "web"),
                                              ("80", "w"), ("80", "web!")])
def test_bad_open_ports_are_manifest_findings(tmp_path: Path, ports: str, label: str) -> None:
    text = GOOD.replace("    image_type: gen1\n", "    image_type: gen1\n"
                        f"    open_ports: [{{label: '{label}', ports: '{ports}', "
                        "protocol: tcp}]\n")
    res = run_cli("offer", "validate", write(tmp_path, text), "--no-disks")
    assert res.code == 1 and "open_ports[0]" in res.stdout


@pytest.mark.parametrize(("args", "env", "fragment"), [
    (["--sas-env", "OFFER_TEST_UNSET"], {}, "OFFER_TEST_UNSET is not set"),
    (["--sas-file", "missing.txt"], {}, "no such file"),
    (["--sas-env", "OFFER_TEST_BAD"], {"OFFER_TEST_BAD": "https://a/b/c.vhd?sv=1"},
     "line 1: no 'sig=' in it"),
])
def test_token_sources_errors(tmp_path: Path, args: list[str], env: dict[str, str],
                              fragment: str) -> None:
    res = run_cli("submit", "render", write(tmp_path, GOOD), "--format", "partner-center",
                  *[str(tmp_path / a) if a.endswith(".txt") else a for a in args], env=env)
    assert res.code == 2 and fragment in res.stderr


def test_no_token_argument_exists() -> None:
    """Tokens never come from the command line (ps shows arguments)."""
    res = run_cli("submit", "render", "--help")
    assert "--sas-env" in res.stdout and "--sas-file" in res.stdout
    assert "--sas-token" not in res.stdout and "--token" not in res.stdout


def test_vendored_schemas_match_shared_copy() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "partner-center"
    if not shared.is_dir():
        pytest.skip("shared/ is not beside the repository")
    ours = Path(__file__).resolve().parent.parent / "src/vmimage/schemas/partner-center"
    for path in shared.glob("*.json"):
        assert (ours / path.name).read_bytes() == path.read_bytes(), path.name


def test_a_password_in_a_disk_url_never_reaches_a_submission(tmp_path: Path) -> None:
    text = GOOD.replace("https://contosovhds.blob.core.windows.net/vhds/web-1.0.0-os.vhd",
                        "https://u:hunter2secret@contosovhds.blob.core.windows.net/vhds/x.vhd")
    out = tmp_path / "out"
    for fmt in ("classic-xml", "partner-center"):
        res = run_cli("submit", "render", write(tmp_path, text), "--format", fmt, "--output",
                      out)
        assert res.code != 0 and "user name or password" in res.stderr
        assert "hunter2secret" not in res.stdout + res.stderr
    assert not out.exists() or not any("hunter2secret" in f.read_text()
                                       for f in out.rglob("*") if f.is_file())
