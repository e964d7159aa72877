"""The provisioned VM's network without a VM: the keeper builds the namespace, starts dnsmasq,
the endpoints and the SSH forwarder exactly as ``vm boot --provision`` asks, and a stand-in
for qemu plays the guest inside the namespace (10.0.0.4, an "sshd" on port 22).

Real parts: ``unshare --net``, iproute2, dnsmasq, the endpoints server and the forwarder as
they run for a VM. What it proves: the forward from the host's 127.0.0.1 reaches the guest;
inside, the WireServer and IMDS answer; the host's addresses and the outside do not; and when
the keeper's pipe closes, every process it started is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import vmimage
from tests.test_vm_boot import running
from vmimage.app import provision
from vmimage.facts.provisioner import Provisioner
from vmimage.facts.services import ServiceState
from vmimage.vm.keeper import SERVICES

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("dnsmasq") is None or shutil.which("unshare") is None,
    reason="needs root, dnsmasq and unshare (scripts/install-test-deps.sh)")

#: The stand-in guest: takes 10.0.0.4, answers on port 22 with an SSH-like banner and echoes,
#: and writes what it could reach from inside the namespace.
GUEST = r'''
import json, socket, subprocess, sys, threading, urllib.request
out = sys.argv[1]
subprocess.run(["ip", "addr", "add", "10.0.0.4/32", "dev", "lo"], check=True)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("10.0.0.4", 22)); srv.listen(4)
def reach(url, headers={}):
    try:
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return type(e).__name__
def tcp(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close(); return "open"
    except OSError as e:
        return type(e).__name__
seen = {"versions": reach("http://168.63.129.16/?comp=versions"),
        "hostplugin": reach("http://168.63.129.16:32526/vmSettings"),
        "imds": reach("http://169.254.169.254/metadata/instance?api-version=2021-08-01",
                      {"Metadata": "true"}),
        "outside": tcp("1.1.1.1", 80)}
port = int(sys.argv[2])
for i, host in enumerate(sys.argv[3:]):
    seen[f"host{i}"] = tcp(host, port)
open(out, "w").write(json.dumps(seen))
while True:
    conn, _ = srv.accept()
    conn.sendall(b"SSH-2.0-standin\r\n")
    data = conn.recv(100)
    conn.sendall(data.upper())
    conn.close()
'''


def _provisioner() -> Provisioner:
    unit = "/lib/systemd/system/walinuxagent.service"
    agent = ServiceState("walinuxagent.service", True, True, False, unit, unit)
    cloud = ServiceState("cloud-init-local.service", False, False, False, "absent")
    return Provisioner(agent, cloud, "auto", "default", False,
                       (("ConditionVirtualization", "microsoft"),))


#: The user the unprivileged case runs the keeper as (``nobody``).
NOBODY = 65534


def _python(user: str) -> str:
    """The interpreter ``user`` runs the keeper with: pytest's own lives under /root here,
    which nobody may not enter, so ``nobody`` gets Debian's python3 with vmimage's source on
    PYTHONPATH (the keeper and its services need the standard library only)."""
    return sys.executable if user == "root" else "/usr/bin/python3"


def _as_nobody(directory: Path) -> None:
    """Give the VM's directory to nobody, and its services list that user's interpreter."""
    services = directory / SERVICES
    spec = json.loads(services.read_text())
    for service in spec["services"]:
        service["argv"] = [_python("nobody") if a == sys.executable else a
                           for a in service["argv"]]
    services.write_text(json.dumps(spec))
    for path in (directory, *directory.rglob("*")):
        os.chown(path, NOBODY, NOBODY)


def _keeper(directory: Path, cmd: list[str], fd: int, user: str) -> subprocess.Popen[bytes]:
    from vmimage.vm import provnet

    prefix, env = provnet.unshare_prefix(), None
    if user == "nobody":  # as a publisher without root runs it: in a user namespace too
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                  *provnet.unshare_prefix(root=False)]
        env = {**os.environ, "PYTHONPATH": str(Path(vmimage.__file__).parent.parent)}
    return subprocess.Popen([*prefix, _python(user), "-m", "vmimage.vm.keeper",
                             str(directory), *cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=(directory / "keeper.log").open("wb"), pass_fds=(fd,),
                            start_new_session=True, env=env)


def _children(directory: Path) -> list[str]:
    """Processes whose command line names the VM's directory (services, the guest)."""
    return [line for line in running(directory) if "pytest" not in line]


@pytest.fixture
def workdir(tmp_path, request):
    """``(directory, user)``: for ``nobody``, a directory that user may enter (pytest's is
    root's)."""
    if request.param == "root":
        yield tmp_path, "root"
        return
    path = Path(tempfile.mkdtemp(prefix="vmimage-provnet-"))
    path.chmod(0o755)
    try:
        yield path, "nobody"
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("workdir", ["root", "nobody"], indirect=True)
def test_namespace_forward_endpoints_and_isolation(workdir):
    """As root, and as a user without privileges (``unshare --user --map-root-user``: tap,
    addresses and dnsmasq's port 67 inside a user namespace of its own)."""
    tmp_path, user = workdir
    directory = tmp_path / "vm"
    directory.mkdir()
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGp4SRUzmH8j4ZyF7tQ3oRjqCSs2A3kBq3H2zX0zJ1Hk t"
    req = provision.ProvisionRequest("alice", "vm1", key)
    port = provision_port()
    prep = provision.prepare(directory, "vm1", req, _provisioner(), port)
    assert prep.overrides  # Debian's unit condition: overridden
    guest = tmp_path / "guest.py"
    guest.write_text(GUEST)
    seen = directory / "seen.json"
    if user == "nobody":
        _as_nobody(directory)
    hosts = [*host_addresses(), "10.0.0.1"]
    outside = socket.socket()  # a listener on every host address: the guest must not reach it
    outside.bind(("0.0.0.0", 0))
    outside.listen(4)
    outside.settimeout(0.1)
    keeper = _keeper(directory, [_python(user), str(guest), str(seen),
                                 str(outside.getsockname()[1]), *hosts], prep.listener.fileno(),
                     user)
    prep.listener.close()
    try:
        assert keeper.stdout is not None
        pid = keeper.stdout.readline().strip()
        assert pid.isdigit(), (directory / "keeper.log").read_text()
        deadline = time.monotonic() + 30
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        reached = json.loads(seen.read_text())
        assert reached["versions"] == 200 and reached["imds"] == 200
        assert reached["hostplugin"] == 404
        assert reached["outside"] == "OSError" or reached["outside"].endswith("Error")
        assert all(reached[f"host{i}"] != "open" for i in range(len(hosts))), reached
        with pytest.raises(TimeoutError):
            outside.accept()
        # The forward: the host's 127.0.0.1:port reaches the guest's port 22.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            assert conn.recv(100).startswith(b"SSH-2.0-standin")
            conn.sendall(b"hello")
            assert conn.recv(100) == b"HELLO"
        log = [json.loads(line) for line in prep.files.requests.read_text().splitlines()]
        assert {r["path"] for r in log} >= {"/?comp=versions", "/vmSettings"}
    finally:
        assert keeper.stdin is not None
        keeper.stdin.close()  # end of file: the keeper kills the guest and the services
        keeper.wait(30)
        outside.close()
    time.sleep(0.5)
    assert _children(directory) == []


def provision_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def host_addresses() -> list[str]:
    """The host's own IPv4 addresses, loopback aside (``ip -j -4 addr``)."""
    shown = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True,
                                      text=True, check=True).stdout)
    return [a["local"] for link in shown for a in link.get("addr_info", [])
            if not a["local"].startswith("127.")]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "says"), [
    (["--provision"], "--provision: needs --key FILE.pub or --password-env VAR"),
    (["--password-env", "NOPE"], "--password-env: is for --provision"),
    (["--provision", "--password-env", "VMIMAGE_UNSET_PW"], "$VMIMAGE_UNSET_PW is not set"),
])
def test_bad_provisioning_flags_are_one_line(tmp_path, args, says):
    from tests import bootimage

    image = bootimage.bootable_disk("normal").path
    proc = subprocess.run([sys.executable, "-m", "vmimage", "vm", "boot", str(image), *args],
                          env={**os.environ, "VMIMAGE_STATE_DIR": str(tmp_path / "state")},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr, proc.stderr
    assert not any((tmp_path / "state").rglob("*.iso"))


@pytest.mark.parametrize("flags", [["--provision"], []])
def test_vm_boot_refuses_an_image_without_an_os(tmp_path, flags):
    """A data disk (a partition table and an empty ext4, nothing to boot) is refused in one
    line before anything is booted, and left as it was."""
    disk = tmp_path / "data.raw"
    with open(disk, "wb") as fh:
        fh.truncate(64 << 20)
    subprocess.run(["sfdisk", "-q", str(disk)], input=b"start=2048, type=83\n", check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "offset=1048576", str(disk), "60M"],
                   check=True)
    before = disk.read_bytes()
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    proc = subprocess.run([sys.executable, "-m", "vmimage", "vm", "boot", str(disk), *flags,
                           "--key", f"{key}.pub"],
                          env={**os.environ, "VMIMAGE_STATE_DIR": str(tmp_path / "state")},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "no operating system found (a data disk?)" in proc.stderr
    assert disk.read_bytes() == before
    assert not list((tmp_path / "state").rglob("*.iso"))
