"""The Packer example (examples/packer/): validated by Debian's packer, offline.

``packer validate`` runs in a network namespace of its own (``unshare -n``) where the kernel
allows it, and with every proxy pointing at a closed local port in any case: validating the
template must never reach the network (a ``file:`` checksum URL would; the template takes a
literal checksum for that reason). Skipped only when ``packer`` is missing outside CI; in CI
(``CI`` set) a missing packer is a failure: scripts/install-test-deps.sh installs it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.test_action import cli_flags, flags_in

EXAMPLE = Path(__file__).resolve().parents[1] / "examples/packer"
TEMPLATE = EXAMPLE / "debian12-azure.pkr.hcl"
CHECKSUM = "sha512:" + "0f" * 64  # validate checks the form; nothing is downloaded
VARS = ["-var", f"image_checksum={CHECKSUM}",
        "-var", "blob_url=https://example.blob.core.windows.net/vhds/debian12-azure.vhd"]

if shutil.which("packer") is None:
    if os.environ.get("CI"):
        raise RuntimeError("packer is not installed (scripts/install-test-deps.sh installs it)")
    pytest.skip("packer is not installed (apt-get install packer)", allow_module_level=True)


@cache
def _isolated() -> list[str]:
    """``unshare -n`` when this kernel lets us: no network at all for packer."""
    if shutil.which("unshare") and subprocess.run(
            ["unshare", "-n", "true"], capture_output=True, check=False).returncode == 0:
        return ["unshare", "-n"]
    return []


def packer(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    closed = "http://127.0.0.1:9"
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "PACKER_NO_COLOR": "1",
           "HTTP_PROXY": closed, "HTTPS_PROXY": closed, "http_proxy": closed,
           "https_proxy": closed, "NO_PROXY": "", "no_proxy": "",
           "PACKER_CACHE_DIR": str(cwd / "packer_cache")}
    env.pop("PACKER_LOG", None)
    return subprocess.run([*_isolated(), "packer", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, stdin=subprocess.DEVNULL, check=False,
                          timeout=120)


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    """The example directory, copied: validate may leave a cache directory behind."""
    dest = tmp_path / "packer"
    shutil.copytree(EXAMPLE, dest)
    return dest


def test_packer_version_is_one_the_template_supports(tmp_path):
    proc = packer("version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    version = re.search(r"Packer v(\d+)\.(\d+)\.(\d+)", proc.stdout)
    assert version and tuple(map(int, version.groups())) >= (1, 6, 6), proc.stdout


def test_syntax_only(example_copy):
    proc = packer("validate", "-syntax-only", example_copy / TEMPLATE.name, cwd=example_copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Syntax-only check passed" in proc.stdout


def test_full_validate_with_the_variables_set(example_copy):
    proc = packer("validate", *VARS, example_copy / TEMPLATE.name, cwd=example_copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_inspect_shows_the_chain_and_masks_the_password(example_copy):
    proc = packer("inspect", example_copy / TEMPLATE.name, cwd=example_copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "qemu.debian12" in proc.stdout
    assert 'var.ssh_password: "<sensitive>"' in proc.stdout
    assert "packer-build-only" not in proc.stdout


def test_the_checksum_is_required_and_never_fetched(example_copy):
    proc = packer("validate", example_copy / TEMPLATE.name, cwd=example_copy)
    assert proc.returncode != 0
    assert 'Unset variable "image_checksum"' in proc.stdout + proc.stderr


def test_a_sas_in_blob_url_is_refused_without_being_printed(example_copy):
    secret = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
    proc = packer("validate", "-var", f"image_checksum={CHECKSUM}", "-var",
                  f"blob_url=https://acct.blob.core.windows.net/vhds/x.vhd?sv=2024-08-04&sig={secret}",
                  example_copy / TEMPLATE.name, cwd=example_copy)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "without a query string" in out and "AZURE_STORAGE_SAS_TOKEN" in out
    assert secret not in out


def test_full_validate_finds_what_syntax_only_cannot(example_copy):
    """A missing provisioner script: the syntax passes, the full validation does not."""
    (example_copy / "scripts/azure-prepare.sh").unlink()
    template = example_copy / TEMPLATE.name
    assert packer("validate", "-syntax-only", template, cwd=example_copy).returncode == 0
    proc = packer("validate", *VARS, template, cwd=example_copy)
    assert proc.returncode != 0
    assert "azure-prepare.sh" in proc.stdout + proc.stderr


def test_template_is_formatted(tmp_path):
    proc = packer("fmt", "-check", "-diff", TEMPLATE, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout


def _post_processor_commands() -> list[list[str]]:
    """The vmimage command lines of the post-processors, as shell-local would run them."""
    text = TEMPLATE.read_text(encoding="utf-8")
    live = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    commands = []
    for literal in re.findall(r'^\s*"(\$\{var\.vmimage\} [^\n]*)",?$', live, re.M):
        line = re.sub(r"\$\{var\.vmimage\}", "vmimage", literal)
        line = re.sub(r"\$\{[^}]+\}", "X", line)
        commands.append(shlex.split(line))
    return commands


def test_post_processors_use_real_vmimage_commands_and_flags():
    commands = _post_processor_commands()
    assert [c[1] for c in commands] == ["vhd", "check", "upload"]
    for words in commands:
        sub = words[1:3] if words[1] == "vhd" else words[1:2]
        assert flags_in(words) <= cli_flags(*sub), words
    check = commands[1]
    assert check[check.index("--fail-on") + 1] == "fail"
    outputs = {Path(check[i + 1]).name for i, w in enumerate(check) if w == "--output"}
    assert outputs == {"vmimage.html", "vmimage.junit.xml", "vmimage.json", "vmimage.sarif"}
    # In one chain, in order: convert, check, upload (a failed check stops the upload).
    text = TEMPLATE.read_text(encoding="utf-8")
    chain = re.findall(r'^\s*name\s*=\s*"([\w-]+)"', text, re.M)
    assert chain == ["vhd-convert", "vmimage-check", "vmimage-upload"]
    assert text.count("post-processors {") == 1


def test_no_credential_in_the_example():
    for path in EXAMPLE.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"sig=[A-Za-z0-9%]{8,}", text), path
            assert not re.search(r"AccountKey=[A-Za-z0-9+/]{8,}", text), path


def test_build_password_matches_the_cloud_init_seed():
    template = TEMPLATE.read_text(encoding="utf-8")
    default = re.search(r'variable "ssh_password" \{.*?default\s*=\s*"([^"]+)"', template, re.S)
    seed = (EXAMPLE / "http/user-data").read_text(encoding="utf-8")
    assert default and f"plain_text_passwd: {default[1]}\n" in seed
    assert seed.startswith("#cloud-config\n")
    assert (EXAMPLE / "http/meta-data").read_text().startswith("instance-id: ")
    # The account it creates is the one deprovision.sh deletes.
    deprovision = (EXAMPLE / "scripts/deprovision.sh").read_text(encoding="utf-8")
    assert "userdel --force --remove packer" in deprovision
    assert 'ssh_username = "packer"' in template


def test_guest_scripts_pass_bash_n_and_shellcheck():
    scripts = sorted((EXAMPLE / "scripts").glob("*.sh"))
    assert [p.name for p in scripts] == ["azure-prepare.sh", "deprovision.sh"]
    for script in scripts:
        proc = subprocess.run(["bash", "-n", script], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 0, proc.stdout


def test_a_checksum_url_would_be_fetched_by_validate(example_copy):
    """Why image_checksum is a literal: Packer fetches a ``file:`` URL while validating. The
    attempt fails here (no network namespace route, or a closed proxy), as it must."""
    proc = packer("validate", "-var",
                  "image_checksum=file:https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS",
                  example_copy / TEMPLATE.name, cwd=example_copy)
    assert proc.returncode != 0
    assert "Error downloading checksum file" in proc.stdout + proc.stderr
