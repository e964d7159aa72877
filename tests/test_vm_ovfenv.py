"""ovf-env.xml as the real readers see it: Debian 12's waagent and cloud-init, no mock.

- waagent 2.7.3: ``azurelinuxagent.common.protocol.ovfenv.OvfEnv`` from the Debian package in
  the cached compliant tree (``ib.compliant_tree()``), run with ``chroot TREE python3`` on the
  document fed through standard input, exactly as the agent reads the DVD's file.
- cloud-init 22.4.2 (Debian 12's): ``OvfEnvXml`` and ``DataSourceAzure.read_azure_ovf`` from
  the Debian package, fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` (with
  python3-configobj and python3-six, which the venv lacks), run in a subprocess of the venv's
  Python 3.11 (Debian 12's Python version). Skipped when apt cannot download it.

Then every refusal: Azure's rules and waagent's, and the password in no message and no repr.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests import imagebuild as ib
from vmimage.errors import InputError
from vmimage.vm.ovfenv import (
    AZURE_RESERVED_USERNAMES,
    OVF_NS,
    WA_NS,
    Provisioning,
    key_fingerprint,
    ovf_env_xml,
)

# Real keys (ssh-keygen output), fixed so the tests need no ssh-keygen for the common cases.
ED25519 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDEmLloV7gRVyYyzQ2JQmPZv1FUQDTW8d2GhkXoKnL1n "
           "alice@laptop")
PASSWORD = 'Pa<&>"]]>\'x1 ;'  # every character XML must escape, and a CDATA end
CUSTOM = b"#cloud-config\nruncmd: [[touch, /x]]\n\x00\xff binary too\n"

CASES = {
    "everything": Provisioning("vm-1", "alice", password=PASSWORD, ssh_public_key=ED25519,
                               disable_password_auth=True, custom_data=CUSTOM),
    "key only, no agent": Provisioning("Host2", "bob_2", ssh_public_key=ED25519 + "\n",
                                       ssh_key_path="/home/bob_2/.ssh/other_keys",
                                       provision_guest_agent=False),
    "password only": Provisioning("h" * 63, "c" * 32, password="Secret-pass9",
                                  disable_password_auth=False),
}


# --------------------------------------------------------------------------------------------
# The readers


_WAAGENT = """
import json, sys
from azurelinuxagent.common.protocol.ovfenv import OvfEnv
o = OvfEnv(sys.stdin.buffer.read().decode("utf-8"))
json.dump({"hostname": o.hostname, "username": o.username, "password": o.user_password,
           "customdata": o.customdata, "disable": o.disable_ssh_password_auth,
           "pubkeys": o.ssh_pubkeys, "keypairs": o.ssh_keypairs,
           "agent": o.provision_guest_agent}, sys.stdout)
"""


@pytest.fixture(scope="module")
def waagent_tree() -> Path:
    tree = ib.compliant_tree()
    if not (tree / "usr/lib/python3/dist-packages/azurelinuxagent/common/protocol/ovfenv.py").is_file():
        pytest.fail(f"{tree}: no waagent in the compliant tree")
    return tree


def waagent_reads(tree: Path, document: bytes) -> dict:
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    proc = subprocess.run([chroot, str(tree), "python3", "-B", "-I", "-c", _WAAGENT], input=document,
                          capture_output=True, check=False, timeout=120,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout)


CLOUD_INIT_DEBS = ("cloud-init", "python3-configobj", "python3-six")


def cloud_init_path() -> Path:
    """The dist-packages of Debian's cloud-init (unpacked once into the test cache), or skip."""
    dest = ib.cache_dir() / "debs" / "cloud-init"
    packages = dest / "usr/lib/python3/dist-packages"
    if (dest / ".complete").exists():
        return packages
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("cloud-init is taken from Debian's package: needs apt-get and dpkg-deb")
    with ib.locked("cloud-init-debs"):
        if not (dest / ".complete").exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
                os.chmod(tmp, 0o755)  # apt's _apt user downloads into it
                proc = subprocess.run(["apt-get", "download", *CLOUD_INIT_DEBS], cwd=tmp,
                                      capture_output=True, text=True, check=False, timeout=300)
                if proc.returncode != 0:
                    pytest.skip(f"apt-get download {' '.join(CLOUD_INIT_DEBS)} failed: "
                                f"{proc.stderr.strip()[-300:]}")
                root = Path(tmp) / "root"
                for deb in sorted(Path(tmp).glob("*.deb")):
                    ib.run(["dpkg-deb", "-x", deb, root])
                (root / ".complete").write_text("\n".join(p.name for p in Path(tmp).glob("*.deb")))
                shutil.rmtree(dest, ignore_errors=True)
                root.rename(dest)
    return packages


_CLOUD_INIT = """
import base64, crypt, json, sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[1])
try:
    from cloudinit.sources.helpers.azure import OvfEnvXml
    from cloudinit.sources.DataSourceAzure import read_azure_ovf
except ImportError as exc:
    print(json.dumps({"import_error": str(exc)}))
    sys.exit(0)
request = json.load(sys.stdin)
text = request["xml"]
o = OvfEnvXml.parse_text(text)
md, ud, cfg = read_azure_ovf(text)
user = cfg.get("system_info", {}).get("default_user", {})
hashed = user.get("hashed_passwd")
json.dump({"hostname": o.hostname, "username": o.username, "password": o.password,
           "custom_data": None if o.custom_data is None else base64.b64encode(o.custom_data).decode(),
           "disable": o.disable_ssh_password_auth, "pubkeys": o.public_keys,
           "preprovisioned": o.preprovisioned_vm,
           "md": md, "ud": base64.b64encode(ud if isinstance(ud, bytes) else ud.encode()).decode(),
           "ssh_pwauth": cfg.get("ssh_pwauth"), "user": user.get("name"),
           "lock_passwd": user.get("lock_passwd"),
           "hash_matches": None if hashed is None else crypt.crypt(request["password"], hashed) == hashed},
          sys.stdout)
"""


def cloud_init_reads(document: bytes, password: str | None) -> dict:
    packages = cloud_init_path()
    request = json.dumps({"xml": document.decode("utf-8"), "password": password or ""})
    proc = subprocess.run([sys.executable, "-I", "-c", _CLOUD_INIT, str(packages)], input=request,
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    if "import_error" in result:
        pytest.skip(f"Debian's cloud-init does not import in this Python: {result['import_error']}")
    return result


# --------------------------------------------------------------------------------------------
# waagent


@pytest.mark.slow  # builds the compliant Debian tree unless it is cached
@pytest.mark.parametrize("name", list(CASES))
def test_waagent_reads_what_was_given(waagent_tree, name):
    p = CASES[name]
    got = waagent_reads(waagent_tree, ovf_env_xml(p))
    assert got["hostname"] == p.hostname
    assert got["username"] == p.username
    assert got["password"] == p.password
    assert got["disable"] is p.disable_password_auth
    assert got["agent"] == ("true" if p.provision_guest_agent else "false")
    if p.ssh_public_key is None:
        assert got["pubkeys"] == []
    else:
        [(path, fingerprint, value)] = got["pubkeys"]
        assert path == p.key_path
        assert value == p.ssh_public_key.strip()
        assert value.startswith("ssh-")  # waagent's deploy_ssh_pubkey refuses anything else
        assert fingerprint == key_fingerprint(p.ssh_public_key)
    assert got["keypairs"] == []
    # Debian's waagent.conf has Provisioning.DecodeCustomData=n: the text is saved as it is,
    # and cloud-init (below) decodes it: base64 of the bytes given.
    if p.custom_data is None:
        assert got["customdata"] is None
    else:
        assert base64.b64decode(got["customdata"], validate=True) == p.custom_data


@pytest.mark.slow  # builds the compliant Debian tree unless it is cached
def test_waagent_default_key_path_is_the_users_authorized_keys(waagent_tree):
    p = Provisioning("vm", "carol", ssh_public_key=ED25519)
    [(path, _, _)] = waagent_reads(waagent_tree, ovf_env_xml(p))["pubkeys"]
    assert path == "/home/carol/.ssh/authorized_keys"


@pytest.mark.slow  # builds the compliant Debian tree unless it is cached
def test_waagent_refuses_a_document_without_its_required_elements(waagent_tree):
    """The oracle has teeth: without ProvisionGuestAgent waagent raises (ProtocolError)."""
    doc = ovf_env_xml(CASES["everything"]).replace(b"ProvisionGuestAgent", b"SomethingElse")
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    proc = subprocess.run([chroot, str(waagent_tree), "python3", "-B", "-I", "-c", _WAAGENT], input=doc,
                          capture_output=True, check=False, timeout=120,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    assert proc.returncode != 0
    assert b"ProvisionGuestAgent not found" in proc.stderr


# --------------------------------------------------------------------------------------------
# cloud-init


@pytest.mark.parametrize("name", list(CASES))
def test_cloud_init_reads_what_was_given(name):
    p = CASES[name]
    got = cloud_init_reads(ovf_env_xml(p), p.password)
    assert got["hostname"] == p.hostname
    assert got["md"] == {"local-hostname": p.hostname}
    assert got["username"] == p.username
    assert got["user"] == p.username
    assert got["password"] == p.password
    assert got["disable"] is p.disable_password_auth
    assert got["ssh_pwauth"] is (not p.disable_password_auth)
    assert got["preprovisioned"] is False
    if p.password is None:
        assert got["hash_matches"] is None
    else:  # cloud-init hashes what it read: the hash verifies against the password given
        assert got["hash_matches"] is True
        assert got["lock_passwd"] is False
    if p.ssh_public_key is None:
        assert got["pubkeys"] == []
    else:
        assert got["pubkeys"] == [{"fingerprint": key_fingerprint(p.ssh_public_key),
                                   "path": p.key_path, "value": p.ssh_public_key.strip()}]
    expected = base64.b64encode(p.custom_data).decode() if p.custom_data else None
    assert got["custom_data"] == expected
    assert got["ud"] == (expected or "")


# --------------------------------------------------------------------------------------------
# The document itself


def test_structure_namespaces_and_order():
    """What section 1 of the protocol notes asks, checked directly (the readers above accept
    more: waagent finds elements at any depth)."""
    root = ET.fromstring(ovf_env_xml(CASES["everything"]))
    wa = {"wa": WA_NS}
    assert root.tag == f"{{{OVF_NS}}}Environment"
    assert [c.tag for c in root] == [f"{{{WA_NS}}}ProvisioningSection", f"{{{WA_NS}}}PlatformSettingsSection"]
    conf = root.find("wa:ProvisioningSection/wa:LinuxProvisioningConfigurationSet", wa)
    assert root.findtext("wa:ProvisioningSection/wa:Version", namespaces=wa) == "1.0"
    assert [c.tag.split("}")[1] for c in conf] == [
        "ConfigurationSetType", "HostName", "UserName", "UserPassword",
        "DisableSshPasswordAuthentication", "SSH", "CustomData"]
    assert conf.findtext("wa:ConfigurationSetType", namespaces=wa) == "LinuxProvisioningConfiguration"
    key = conf.find("wa:SSH/wa:PublicKeys/wa:PublicKey", wa)
    assert [c.tag.split("}")[1] for c in key] == ["Fingerprint", "Path", "Value"]
    assert len(key.findtext("wa:Fingerprint", namespaces=wa)) == 40
    settings = root.find("wa:PlatformSettingsSection/wa:PlatformSettings", wa)
    assert settings.findtext("wa:ProvisionGuestAgent", namespaces=wa) == "true"
    text = ovf_env_xml(CASES["everything"]).decode()
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    assert "<wa:ProvisioningSection>" in text  # Azure's prefix


def test_optional_elements_are_left_out():
    root = ET.fromstring(ovf_env_xml(CASES["key only, no agent"]))
    tags = {e.tag.split("}")[1] for e in root.iter()}
    assert "UserPassword" not in tags
    assert "CustomData" not in tags
    root = ET.fromstring(ovf_env_xml(CASES["password only"]))
    assert "SSH" not in {e.tag.split("}")[1] for e in root.iter()}


def test_empty_custom_data_is_none():
    p = Provisioning("vm", "dave", ssh_public_key=ED25519, custom_data=b"")
    assert b"CustomData" not in ovf_env_xml(p)


def test_real_ssh_keygen_keys(tmp_path):
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed (openssh-client)")
    keys = {}
    for kind, bits in (("rsa", "2048"), ("ed25519", None), ("ecdsa", "256")):
        path = tmp_path / kind
        ib.run(["ssh-keygen", "-q", "-t", kind, *(["-b", bits] if bits else []), "-N", "", "-C",
                f"me@{kind}", "-f", path])
        keys[kind] = (tmp_path / f"{kind}.pub").read_text()
    for kind in ("rsa", "ed25519"):
        p = Provisioning("vm", "erin", ssh_public_key=keys[kind])
        assert p.ssh_public_key is not None
        assert f"<wa:Value>{keys[kind].strip()}</wa:Value>".encode() in ovf_env_xml(p)
    with pytest.raises(InputError) as info:
        Provisioning("vm", "erin", ssh_public_key=keys["ecdsa"])
    assert info.value.source == "ssh_public_key"
    assert "ecdsa-sha2-nistp256" in str(info.value)
    assert "'ssh-'" in str(info.value) and "waagent" in str(info.value)


# --------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize("hostname", ["", "-vm", "vm-", "vm_1", "vm.example.com", "h" * 64, "vé",
                                      "vm 1", "vm\n"])
def test_bad_hostnames(hostname):
    with pytest.raises(InputError) as info:
        Provisioning(hostname, "alice", ssh_public_key=ED25519)
    assert info.value.source == "hostname"
    assert "RFC 1123" in str(info.value)


@pytest.mark.parametrize("hostname", ["a", "A1", "1vm", "web-01", "h" * 63])
def test_good_hostnames(hostname):
    assert Provisioning(hostname, "alice", ssh_public_key=ED25519).hostname == hostname


@pytest.mark.parametrize("username", ["admin", "Administrator", "ROOT", "root", "guest", "user", "test",
                                      "user1", "sql", "support_388945a0"])
def test_reserved_usernames(username):
    with pytest.raises(InputError, match="Azure refuses") as info:
        Provisioning("vm", username, ssh_public_key=ED25519)
    assert info.value.source == "username"


def test_reserved_list_is_azures():
    assert len(AZURE_RESERVED_USERNAMES) == 32
    assert {"administrator", "admin", "root", "guest", "user5", "david", "john"} <= AZURE_RESERVED_USERNAMES


@pytest.mark.parametrize("username", ["daemon", "sshd", "www-data", "nobody", "_apt", "messagebus"])
def test_debian_system_accounts(username):
    with pytest.raises(InputError, match="system account") as info:
        Provisioning("vm", username, ssh_public_key=ED25519)
    assert info.value.source == "username"


@pytest.mark.parametrize("username", ["", "1alice", "-alice", "al ice", "alice:x", "alice.b", "élodie",
                                      "a" * 33])
def test_bad_usernames(username):
    with pytest.raises(InputError) as info:
        Provisioning("vm", username, ssh_public_key=ED25519)
    assert info.value.source == "username"


@pytest.mark.parametrize("username", ["alice", "Alice", "_svc", "a-b_c9", "a" * 32])
def test_good_usernames(username):
    assert Provisioning("vm", username, ssh_public_key=ED25519).username == username


def _blob_key(kind: str, blob_kind: str) -> str:
    name = blob_kind.encode()
    blob = len(name).to_bytes(4, "big") + name + b"\x00\x00\x00\x20" + b"k" * 32
    return f"{kind} {base64.b64encode(blob).decode()} c"


@pytest.mark.parametrize(("key", "words"), [
    ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= x", "'ssh-'"),
    ("sk-ssh-ed25519@openssh.com AAAA x", "'ssh-'"),
    ('from="10.0.0.1" ' + ED25519, "no options"),
    ("ssh-ed25519", "without its base64"),
    ("ssh-ed25519 not*base64 c", "not base64"),
    (_blob_key("ssh-rsa", "ssh-ed25519"), "not a ssh-rsa key"),
    (ED25519 + "\n" + ED25519, "one line"),
    ("", "one line"),
    ("ssh-ed25519 AAAA\x01 c", "one line"),
])
def test_bad_keys(key, words):
    with pytest.raises(InputError) as info:
        Provisioning("vm", "alice", ssh_public_key=key)
    assert info.value.source == "ssh_public_key"
    assert words in str(info.value)


@pytest.mark.parametrize("password", [
    "Ab1!x",  # too short
    "Abcdefg1!" * 9,  # too long (81)
    "qwzxqwzxqwzx",  # one class
    "qwzxQWZX",  # two classes
    "P@ssw0rd",  # Azure's disallowed list
    "Tab\there1",  # control character
    "Unicodé-pass1",
])
def test_bad_passwords_are_never_quoted(password):
    with pytest.raises(InputError) as info:
        Provisioning("vm", "alice", password=password, disable_password_auth=False)
    assert info.value.source == "password"
    message = str(info.value)
    assert password not in message
    for piece in (password[:4], password[-4:]):
        assert piece not in message


def test_password_is_not_in_the_repr():
    p = CASES["everything"]
    assert PASSWORD not in repr(p) and "password=" not in repr(p)
    assert "custom_data" not in repr(p)


def test_disabled_password_logins_need_a_key():
    with pytest.raises(InputError, match="no SSH public key") as info:
        Provisioning("vm", "alice", password="Secret-pass9", disable_password_auth=True)
    assert info.value.source == "ssh_public_key"


def test_password_logins_need_a_password():
    with pytest.raises(InputError, match="no password") as info:
        Provisioning("vm", "alice", ssh_public_key=ED25519, disable_password_auth=False)
    assert info.value.source == "password"


def test_custom_data_limit():
    Provisioning("vm", "alice", ssh_public_key=ED25519, custom_data=b"x" * 65535)
    with pytest.raises(InputError, match="at most 65535") as info:
        Provisioning("vm", "alice", ssh_public_key=ED25519, custom_data=b"x" * 65536)
    assert info.value.source == "custom_data"


@pytest.mark.parametrize("path", ["home/alice/.ssh/authorized_keys", "~/.ssh/authorized_keys",
                                  "/home/alice/\n/keys"])
def test_bad_key_paths(path):
    with pytest.raises(InputError) as info:
        Provisioning("vm", "alice", ssh_public_key=ED25519, ssh_key_path=path)
    assert info.value.source == "ssh_key_path"


def test_frozen():
    with pytest.raises(AttributeError):
        CASES["everything"].hostname = "other"  # type: ignore[misc]
