"""``vm boot --provision``: the compliant Debian image, with Debian's real waagent 2.7.3,
provisions under QEMU as it would on Azure; images that must not provision say why.

Real parts only: the VM boots under qemu (TCG here) in a network namespace of its own, with
dnsmasq handing out Azure's DHCP options and vmimage's emulated WireServer and IMDS; the agent
in the image reads the DVD, creates the user, reports Ready; the login is made by SSH through
the forward on 127.0.0.1. At most two VMs at once (xdist runs two workers); each test stops its
VM and checks that nothing is left.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests import bootimage
from tests.test_vm_boot import running
from tests.test_vm_provnet import host_addresses

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("qemu-system-x86_64") is None
                       or shutil.which("dnsmasq") is None,
                       reason="needs root, qemu and dnsmasq (scripts/install-test-deps.sh)"),
]

BOOT_TIMEOUT = 300
#: How long a VM that will never report Ready is watched: a boot under TCG here takes about a
#: minute, and the compliant image reports Ready about half a minute later. The images that do
#: report Ready (and then refuse the login) get BOOT_TIMEOUT: with two VMs at once on two
#: cores their Ready comes after 120-150 s, and the verdict ends 60 s after it anyway.
SILENT_TIMEOUT = 150


def vmimage(state: Path, *args: str, timeout: float = BOOT_TIMEOUT + 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmimage", *args],
                          env={**os.environ, "VMIMAGE_STATE_DIR": str(state), **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)


def qemus(state: Path) -> list[str]:
    """qemu processes started for VMs under ``state``."""
    return [line for line in running(state) if "qemu-system" in line]


@pytest.fixture
def state(tmp_path):
    path = tmp_path / "state"
    yield path
    for name in (path / "vms").glob("*") if (path / "vms").exists() else []:
        vmimage(path, "vm", "stop", name.name, timeout=60)
    assert qemus(path) == []


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    work = tmp_path_factory.mktemp("keys")
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def test_compliant_image_provisions_like_on_azure(state, keypair, tmp_path):
    image = bootimage.bootable_disk("normal").path
    before = bootimage.content_digest(image)
    proc = vmimage(state, "vm", "boot", str(image), "--provision", "--name", "p1",
                   "--key", f"{keypair}.pub", "--user", "alice", "--hostname", "contoso-vm1",
                   "--console-log", str(tmp_path / "console.log"), "--format", "json",
                   "--timeout", str(BOOT_TIMEOUT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = json.loads(proc.stdout)
    verdict = info["provisioning"]
    print(f"provisioned: Ready after {verdict['seconds_ready']} s, "
          f"login after {verdict['seconds_login']} s")
    assert verdict["provisioned"] is True and verdict["by"] == "waagent"
    assert verdict["login"] == "key"
    # Debian's unit is skipped outside Hyper-V: overridden on the copy, and said so.
    assert verdict["overrides"] == [
        "/etc/systemd/system/walinuxagent.service.d/vmimage-qemu.conf"]
    assert verdict["health"][0].startswith("NotReady (Provisioning")
    assert verdict["health"][-1] == "Ready"
    assert any(line.startswith("DHCPACK(vmtap0) 10.0.0.4") for line in verdict["dhcp"])
    assert "GET /?comp=versions -> 200" in verdict["requests"]
    # The user the agent made, with the host name from ovf-env.xml.
    who = vmimage(state, "vm", "ssh", "p1", "--", "id -un; hostname; "
                  "sudo test -f /var/lib/waagent/ovf-env.xml && echo ovf", timeout=120)
    assert who.returncode == 0, who.stderr
    assert who.stdout.split() == ["alice", "contoso-vm1", "ovf"]
    _guest_reaches_only_the_endpoints(state)
    assert vmimage(state, "vm", "stop", "p1", timeout=60).returncode == 0
    assert qemus(state) == []
    assert bootimage.content_digest(image) == before


def test_cloud_init_image_provisions_by_cloud_init(state, keypair, tmp_path):
    """The second image: Debian's cloud-init 22.4.2 with the Azure datasource provisions it
    (waagent hands over: ``Provisioning.Agent=auto``), finds the platform by the chassis asset
    tag, reads the DVD and IMDS (the key comes from IMDS ``publicKeys``: cloud-init installs
    OVF keys no other way without certificates), reports Ready itself."""
    image = bootimage.bootable_disk("cloud-init").path
    proc = vmimage(state, "vm", "boot", str(image), "--provision", "--name", "c1",
                   "--key", f"{keypair}.pub", "--user", "carol", "--hostname", "contoso-ci",
                   "--console-log", str(tmp_path / "console.log"), "--format", "json",
                   "--timeout", str(BOOT_TIMEOUT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)["provisioning"]
    print(f"cloud-init: Ready after {verdict['seconds_ready']} s, "
          f"login after {verdict['seconds_login']} s")
    (tmp_path / "verdict.json").write_text(json.dumps(verdict, indent=2))
    assert verdict["provisioned"] is True and verdict["by"] == "cloud-init"
    assert verdict["login"] == "key" and verdict["health"][-1] == "Ready"
    assert any(r.startswith("GET /metadata/instance?api-version=") and r.endswith("-> 200")
               for r in verdict["requests"]), verdict["requests"]
    who = vmimage(state, "vm", "ssh", "c1", "--", "id -un; hostname; "
                  "sudo cat /run/cloud-init/status.json", timeout=120)
    assert who.returncode == 0, who.stderr
    user, host, status = who.stdout.split("\n", 2)
    assert (user, host) == ("carol", "contoso-ci")
    assert "DataSourceAzure" in status, status
    assert vmimage(state, "vm", "stop", "c1", timeout=60).returncode == 0


def _guest_reaches_only_the_endpoints(state: Path) -> None:
    """From the guest: the WireServer answers on port 80; the host (on every address it has)
    and the outside do not, and nothing reaches a listener on the host."""
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(4)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    hosts = host_addresses()
    targets = ["168.63.129.16/80", f"10.0.0.1/{port}", "1.1.1.1/80",
               *(f"{h}/{port}" for h in hosts)]
    probe = "; ".join(f'if timeout 3 bash -c "echo hi > /dev/tcp/{t}" 2>/dev/null; '
                      f'then echo "{t} open"; else echo "{t} closed"; fi' for t in targets)
    try:
        proc = vmimage(state, "vm", "ssh", "p1", "--", probe, timeout=120)
        assert proc.returncode == 0, proc.stderr
        said = proc.stdout.strip().splitlines()
        assert said[0] == "168.63.129.16/80 open"
        assert all(line.endswith(" closed") for line in said[1:]), said
        assert accepted == []
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.mark.parametrize(("variant", "reason", "image_says", "timeout"), [
    ("agent-disabled", "no request from the guest reached", "neither the Azure agent",
     SILENT_TIMEOUT),
    ("agent-off", "cannot log in", "Provisioning.Agent=disabled", BOOT_TIMEOUT),
    ("static-ip", "never took an address by DHCP", None, SILENT_TIMEOUT),
    # waagent 2.7.3 finds /var/lib/waagent/provisioned without this VM's ID in it: it
    # reports Ready and skips provisioning (azurelinuxagent/pa/provision/default.py
    # is_provisioned), so nobody can log in
    ("not-generalized", "cannot log in", "not deprovisioned", BOOT_TIMEOUT),
])
def test_images_that_do_not_provision_say_why(state, keypair, tmp_path, variant, reason,
                                              image_says, timeout):
    image = bootimage.bootable_disk(variant).path
    proc = vmimage(state, "vm", "boot", str(image), "--provision", "--key", f"{keypair}.pub",
                   "--console-log", str(tmp_path / "console.log"), "--format", "json",
                   "--timeout", str(timeout))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)["provisioning"]
    assert verdict["provisioned"] is False
    assert reason in verdict["reason"], verdict
    if image_says:
        assert any(image_says in said for said in verdict["image_says"]), verdict
    assert qemus(state) == []
    assert not any((state / "vms").glob("*")) if (state / "vms").exists() else True
    (tmp_path / f"verdict-{variant}.json").write_text(json.dumps(verdict, indent=2))
