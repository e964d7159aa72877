"""``vm boot --provision``: what Azure gives a new VM at first boot, served locally, and the
verdict on whether the image provisions.

Azure deploys an image by attaching a DVD with ``ovf-env.xml`` (host name, user, key or
password), answering the agent on the WireServer and IMDS addresses, and waiting for the agent
(or cloud-init) to report Ready; the deployment fails (``OSProvisioningTimedOut``,
``OSProvisioningClientError``) when no Ready comes or the user cannot log in. The same happens
here, in a network namespace of the VM's own (:mod:`vmimage.vm.provnet`):

- the DVD is an ISO 9660 image holding ``ovf-env.xml`` (:mod:`vmimage.vm.iso`,
  :mod:`vmimage.vm.ovfenv`), attached as ``/dev/sr0``;
- dnsmasq gives the guest its address with Azure's DHCP options; vmimage's endpoints
  (:mod:`vmimage.vm.endpoints`) answer on 168.63.129.16 and 169.254.169.254 and log every
  request and health report;
- what the image needs only because it runs under QEMU is overridden on the private copy and
  listed in the verdict (Debian's agent unit has ``ConditionVirtualization=microsoft``; an empty
  ``ConditionVirtualization=`` in a drop-in resets the unit's conditions, so the others are
  written again); the image itself is never written.

The verdict (:class:`Verdict`) is observed, not predicted: provisioned when a Ready health
report came and the user logs in with the key (or password) given; otherwise the reason seen,
completed with what the image says (:mod:`vmimage.facts.provisioner`), the DHCP exchange, the
console lines of the agent and cloud-init, and the endpoints' request log.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vmimage.errors import InputError
from vmimage.facts.provisioner import Provisioner
from vmimage.secrets import register_secret
from vmimage.vm import endpoints, iso, provnet
from vmimage.vm.keeper import SERVICES
from vmimage.vm.ovfenv import Provisioning, ovf_env_xml
from vmimage.vm.wait import banner, tail

DROP_IN = "vmimage-qemu.conf"
#: How long the login may keep failing after the Ready report before the verdict is "not
#: provisioned" (sshd restarts with new host keys around the report; under TCG that is slow).
LOGIN_GRACE = 60.0
#: The same for cloud-init, which reports Ready from its local stage, before its network
#: stage creates the user and the host keys and sshd starts: measured 38 s later on a quiet
#: 2-core machine under TCG, over 60 s under load.
CLOUD_INIT_LOGIN_GRACE = 240.0
ISO_NAME = "ovf-env.iso"
#: Console lines worth showing when provisioning fails: the agent's, cloud-init's, sshd's.
_RELEVANT = re.compile(r"waagent|walinuxagent|azure|cloud-init|provision|ssh|dhclient|dhcp|"
                       r"networking|eth0|error|exception|traceback", re.I)
#: The exception that ended the agent (its traceback goes to the console).
_CRASH = re.compile(r"^(?:[A-Za-z_.]+\.)?([A-Z][A-Za-z]*(?:Error|Exception)): (.+)$")


@dataclass(frozen=True)
class ProvisionRequest:
    """What the deployment asks for (``vm boot --provision``'s flags)."""

    user: str
    hostname: str
    public_key: str | None = None  # the key's text
    private_key: Path | None = None  # for the login test, when the user has it
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Prepared:
    """The provisioning parts made in the VM's directory before qemu starts."""

    provisioner: Provisioner
    overrides: dict[str, str]  # path in the guest -> text
    cdrom: Path
    files: provnet.NetFiles
    listener: socket.socket
    vm_id: str  # IMDS vmId, and the VM's SMBIOS system UUID, as on Azure


@dataclass(frozen=True)
class Verdict:
    """Whether the VM provisioned as Azure would have it, and what was seen."""

    provisioned: bool
    reason: str
    by: str  # who the image says provisions: waagent, cloud-init, nobody
    seconds_ready: float | None
    seconds_login: float | None
    login: str  # how the login was tested, or why it was not
    health: tuple[str, ...]
    dhcp: tuple[str, ...]
    requests: tuple[str, ...]
    console: tuple[str, ...]
    overrides: tuple[str, ...]
    blockers: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """The JSON form (``vm boot --format json``'s ``provisioning``)."""
        return {"provisioned": self.provisioned, "reason": self.reason, "by": self.by,
                "seconds_ready": self.seconds_ready, "seconds_login": self.seconds_login,
                "login": self.login, "health": list(self.health), "dhcp": list(self.dhcp),
                "requests": list(self.requests), "console": list(self.console),
                "overrides": list(self.overrides), "image_says": list(self.blockers)}


def request_for(user: str, hostname: str | None, key_file: str | None,
                password_env: str | None, vm_name: str) -> ProvisionRequest:
    """The request from the flags: the public key file's text (its private half beside it,
    when present, for the login test), the password from the environment.

    Raises:
        InputError: no key and no password, an unreadable key, an unset variable.
    """
    if key_file is None and password_env is None:
        raise InputError("--provision", "needs --key FILE.pub or --password-env VAR: Azure "
                                        "refuses a VM that no one can log in to")
    public = private = password = None
    if key_file is not None:
        try:
            public = Path(key_file).read_text().strip()
        except OSError as exc:
            raise InputError(key_file, f"cannot read the public key: {exc.strerror}") from None
        half = Path(key_file[:-4]) if key_file.endswith(".pub") else None
        private = half if half is not None and half.is_file() else None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            raise InputError("--password-env", f"${password_env} is not set or empty")
        register_secret(password)
    name = hostname or re.sub(r"[^A-Za-z0-9-]", "-", vm_name).strip("-")[:63] or "vmimage-vm"
    return ProvisionRequest(user, name, public, private, password)


def overrides_for(prov: Provisioner) -> dict[str, str]:
    """The drop-in that lets the agent's unit start under QEMU, when its unit needs one."""
    if prov.virtualization_condition is None or prov.agent.path is None:
        return {}
    unit = prov.agent.path.rsplit("/", 1)[-1]
    kept = [f"{k}={v}" for k, v in prov.conditions if k != "ConditionVirtualization"]
    text = ("# vmimage vm boot --provision: Azure VMs run on Hyper-V, where this unit's\n"
            f"# ConditionVirtualization={prov.virtualization_condition} holds; under QEMU it\n"
            "# does not. An empty Condition resets them all: the others are repeated.\n"
            "[Unit]\nConditionVirtualization=\n" + "".join(f"{c}\n" for c in kept))
    return {f"/etc/systemd/system/{unit}.d/{DROP_IN}": text}


def read_image(image: str) -> Provisioner:
    """The image's provisioning set-up, read offline, before anything is booted: ``vm boot``
    reads it for every image, so that one with nothing to boot is refused at once instead of
    waited for until the timeout.

    Raises:
        InputError: the image holds no Linux system vmimage can read (a data disk), or a
            Windows one (it would never answer on SSH; unattend and the Windows agent are not
            emulated).
    """
    from vmimage.app.check import detect_family
    from vmimage.facts import Facts
    from vmimage.targets.open import open_target

    target = open_target(image)
    try:
        facts = Facts(target)
        family = detect_family(target, facts)
        if family is None:
            raise InputError(image, "no operating system found (a data disk?): vm boot "
                                    "deploys an OS image")
        if family != "linux":
            raise InputError(image, f"holds a {family.capitalize()} system: vm boot deploys "
                                    "Linux images, reached over SSH (Windows' unattend and agent "
                                    "are not emulated)")
        return facts.provisioner
    finally:
        target.close()


def prepare(directory: Path, vm_name: str, req: ProvisionRequest, prov: Provisioner,
            port: int) -> Prepared:
    """Write the DVD, the endpoints' configuration and the services' list; bind the SSH
    listener on 127.0.0.1:``port`` (inherited by the forwarder inside the namespace).

    Raises:
        InputError: a field Azure would refuse, or the port is taken.
    """
    doc = Provisioning(hostname=req.hostname, username=req.user, password=req.password,
                       ssh_public_key=req.public_key,
                       disable_password_auth=req.password is None)
    cdrom = iso.write_iso(directory / ISO_NAME, {"ovf-env.xml": ovf_env_xml(doc)})
    files = provnet.NetFiles(directory)
    keys = ((doc.key_path, req.public_key),) if req.public_key else ()
    vm_id = str(uuid.uuid4())
    config = endpoints.EndpointConfig(
        vm_name=vm_name, container_id=str(uuid.uuid4()), instance_id=vm_id,
        hostname=req.hostname, username=req.user, guest_ip=provnet.GUEST, ssh_keys=keys,
        disable_password_auth=req.password is None)
    files.endpoints_config.write_text(json.dumps(config.to_json()))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
    except OSError as exc:
        listener.close()
        raise InputError("--ssh-port", f"{port} cannot be bound on 127.0.0.1: "
                                        f"{exc.strerror}") from None
    listener.set_inheritable(True)
    fd = listener.fileno()
    python = [sys.executable, "-m"]
    spec = {"services": [
        {"name": "dnsmasq", "argv": provnet.dnsmasq_argv(files, req.hostname)},
        {"name": "endpoints", "argv": [
            *python, "vmimage.vm.endpoints", "--config", str(files.endpoints_config),
            "--log", str(files.requests),
            *(arg for host, p in endpoints.AZURE_ADDRESSES for arg in ("--listen", f"{host}:{p}"))]},
        {"name": "forward", "argv": [*python, "vmimage.vm.forward", str(fd), provnet.GUEST,
                                     "22"], "pass_fds": [fd]}],
        "wait": [f"{host}:{p}" for host, p in endpoints.AZURE_ADDRESSES]}
    (directory / SERVICES).write_text(json.dumps(spec))
    return Prepared(prov, overrides_for(prov), cdrom, files, listener, vm_id)


def _login(port: int, req: ProvisionRequest, timeout: float) -> str | None:
    """Log in as the provisioned user: None when it worked, else why not."""
    from vmimage.targets.sshconnect import login_check

    if req.private_key is None and req.password is None:
        return "not tested"
    return login_check("127.0.0.1", port, req.user, key=req.private_key,
                       password=None if req.private_key else req.password,
                       timeout=max(5.0, min(timeout, 30.0)))


def watch(prep: Prepared, req: ProvisionRequest, port: int, console: Path, qemu_log: Path,
          alive: Callable[[], int | None], started: float, deadline: float) -> Verdict:
    """Wait for a Ready report and a login, or the deadline, a fatal console line or qemu's
    end; then say what happened."""
    from vmimage.vm.wait import fatal

    ready_at = login_at = None
    login_said: str | None = "no SSH answer"
    while time.monotonic() < deadline:
        if alive() is not None or fatal(console, qemu_log) is not None:
            break
        state = endpoints.provisioning_state(prep.files.requests)
        if state.state == "ready" and ready_at is None:
            ready_at = time.monotonic()
            # the agent reports Ready once the user exists and sshd has restarted: a login
            # that still fails a while later will not succeed
            grace = CLOUD_INIT_LOGIN_GRACE if prep.provisioner.by == "cloud-init" \
                else LOGIN_GRACE
            deadline = min(deadline, ready_at + grace)
        if ready_at is not None and banner(port):
            login_said = _login(port, req, deadline - time.monotonic())
            if login_said is None or login_said == "not tested":
                login_at = time.monotonic()
                break
        time.sleep(1.0)
    state = endpoints.provisioning_state(prep.files.requests)
    return _verdict(prep, req, state, ready_at, login_at, login_said, console, started)


def _crash(console: Path) -> str | None:
    """The first exception of a traceback the agent printed (waagent logs an unhandled error
    with its traceback; under Python 3.10+ waagent 2.7.3 then fails formatting it, and the
    first exception is the cause)."""
    lines = tail(console, 2000)
    if not any("Traceback" in ln for ln in lines):
        return None
    for line in lines:
        m = _CRASH.match(line.strip())
        if m and "format_exception" not in line:
            return f"{m.group(1)}: {m.group(2)}"[:300]
    return None


def _verdict(prep: Prepared, req: ProvisionRequest, state: endpoints.ProvisioningState,
             ready_at: float | None, login_at: float | None, login_said: str | None,
             console: Path, started: float) -> Verdict:
    prov = prep.provisioner
    dhcp = tuple(provnet.dhcp_requests(prep.files))
    how = ("key" if req.private_key else "password" if req.password else "not tested")
    if state.state == "ready" and login_at is not None and login_said is None:
        reason = f"{state.describe()} and {req.user} logged in with the {how}"
        ok = True
    elif state.state == "ready" and login_said == "not tested":
        reason = (f"{state.describe()}; the login was not tested (no private key beside the "
                  "public one)")
        ok = True
    elif state.state == "ready":
        reason = f"{state.describe()} but {req.user} cannot log in: {login_said}"
        ok = False
    elif not any(line.startswith("DHCPACK") for line in dhcp):
        probe = (" (the agent's own DHCP probe aside)" if dhcp else "")
        reason = (f"the guest never took an address by DHCP{probe}: its network did not come "
                  "up as Azure's needs it (a static address, or no configuration for eth0?)")
        ok = False
    elif (crash := _crash(console)) is not None:
        reason = f"{state.describe()}: the agent crashed ({crash})"
        ok = False
    else:
        reason = f"{state.describe()} within the time allowed"
        ok = False
    log = endpoints.read_log(prep.files.requests)
    requests = tuple(f"{r.method} {r.path} -> {r.status}" for r in log)
    health = tuple(f"{h.state}" + (f" ({h.substatus}: {h.description})" if h.substatus else "")
                   for h in (r.health for r in log) if h is not None)
    lines = tuple(ln for ln in tail(console, 400) if _RELEVANT.search(ln))[-25:]
    return Verdict(ok, reason, prov.by,
                   round(ready_at - started, 1) if ready_at else None,
                   round(login_at - started, 1) if login_at else None,
                   how if ok or login_said is None else f"{how}: failed", health, dhcp[-6:],
                   requests[-30:], lines, tuple(prep.overrides), tuple(prov.blockers()))
