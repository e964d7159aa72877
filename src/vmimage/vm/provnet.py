"""The network a provisioned VM sees: Azure's addresses, in a namespace with no way out.

An Azure VM finds the WireServer (168.63.129.16) through DHCP (option 245, and a classless
static route, option 121) and the Instance Metadata Service at 169.254.169.254. QEMU's user
networking can give neither: its DHCP server sends no option 245 or 121, and its ``guestfwd``
accepts only addresses inside its own virtual network (provisioning-protocol.md §2, §5). So a
provisioned VM gets a network of its own instead:

- a **network namespace** made for this VM (``unshare --net``; ``--user --map-root-user`` too
  when not run as root), holding only ``lo`` and a tap device, with no route and no interface
  to anything else: whatever the guest sends ends there;
- on the tap, the gateway ``10.0.0.1/24``; the guest gets ``10.0.0.4`` (the first address
  Azure hands out in a subnet) from **dnsmasq** with option 245 (the WireServer) and option
  121 (host routes to the WireServer and IMDS, and the default route) as Azure's DHCP does;
- ``168.63.129.16`` and ``169.254.169.254`` on the namespace's ``lo``, where vmimage's
  emulated endpoints (:mod:`vmimage.vm.endpoints`) listen on port 80; dnsmasq answers DNS on
  168.63.129.16 as Azure's resolver does, from nothing (no upstream);
- SSH comes in through a socket bound to 127.0.0.1 *outside* the namespace (the forwarder,
  :mod:`vmimage.vm.forward`, inherits it and connects to the guest inside).

The keeper (:mod:`vmimage.vm.keeper`) is the namespace's first process: it builds this with
:func:`setup`, starts dnsmasq, the endpoints and the forwarder, then qemu; they all die with it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vmimage.errors import InputError

TAP = "vmtap0"
GATEWAY = "10.0.0.1"
GUEST = "10.0.0.4"
PREFIX = 24
WIRESERVER = "168.63.129.16"
IMDS = "169.254.169.254"
#: What Azure's DHCP hands out besides the address: option 245 (the WireServer, which
#: waagent finds in its lease or in its own DHCP exchange) and option 121, classless
#: routes to the WireServer, IMDS and everywhere (a client that gets 121 ignores option 3).
DHCP_OPTIONS = (f"option:router,{GATEWAY}",
                f"option:dns-server,{WIRESERVER}",
                f"121,{WIRESERVER}/32,{GATEWAY},{IMDS}/32,{GATEWAY},0.0.0.0/0,{GATEWAY}")
FORCED_OPTIONS = (f"245,{WIRESERVER}",)
INSTALL_HINT = "apt-get install dnsmasq-base iproute2 util-linux"
#: The chassis asset tag every Azure VM's DMI carries: cloud-init's ds-identify and its Azure
#: datasource look for it (provisioning-protocol.md §4); qemu sets it with ``-smbios``.
AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"


@dataclass(frozen=True)
class NetFiles:
    """Where the namespace's services keep their state, inside the VM's directory."""

    directory: Path

    @property
    def leases(self) -> Path:
        """dnsmasq's lease file (the guest's address, once it asked)."""
        return self.directory / "dnsmasq.leases"

    @property
    def dhcp_log(self) -> Path:
        """dnsmasq's log: every DHCP message, and the DNS queries."""
        return self.directory / "dnsmasq.log"

    @property
    def endpoints_config(self) -> Path:
        """The endpoints' configuration (who the VM is)."""
        return self.directory / "endpoints.json"

    @property
    def requests(self) -> Path:
        """The endpoints' request log (JSON lines)."""
        return self.directory / "endpoints.jsonl"


def require_tools() -> None:
    """Refuse early, in one line, when what the namespace needs is not installed.

    Raises:
        InputError: naming the missing program and the packages that bring it.
    """
    for tool in ("dnsmasq", "ip", "unshare"):
        if _which(tool) is None:
            raise InputError(tool, f"not found: --provision needs it ({INSTALL_HINT})")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise InputError("/dev/net/tun", "cannot be opened: --provision gives the VM a tap "
                                         "device (load the tun module, or run as root)")


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def unshare_prefix(root: bool | None = None) -> list[str]:
    """The command that puts the keeper in a new network namespace (and, for a user who is
    not root, a user namespace where it may configure it). ``root``: whether the keeper runs
    as root (default: whether this process does)."""
    unshare = _which("unshare") or "/usr/bin/unshare"
    if (os.geteuid() == 0) if root is None else root:
        return [unshare, "--net"]
    return [unshare, "--user", "--map-root-user", "--net"]


def setup_commands() -> list[list[str]]:
    """The ``ip`` commands that build the namespace's network (run inside it)."""
    ip = _which("ip") or "/usr/sbin/ip"
    return [[ip, "link", "set", "lo", "up"],
            [ip, "addr", "add", f"{WIRESERVER}/32", "dev", "lo"],
            [ip, "addr", "add", f"{IMDS}/32", "dev", "lo"],
            [ip, "tuntap", "add", "dev", TAP, "mode", "tap"],
            [ip, "addr", "add", f"{GATEWAY}/{PREFIX}", "dev", TAP],
            [ip, "link", "set", TAP, "up"]]


def setup() -> None:
    """Build the network (inside the namespace).

    Raises:
        OSError: a command failed (its message says which and why).
    """
    for argv in setup_commands():
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise OSError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")


def dnsmasq_argv(files: NetFiles, hostname: str) -> list[str]:
    """dnsmasq in the foreground, for the tap only: one address (the guest's), Azure's
    options, DNS on the WireServer's address answered from nothing, everything logged.

    Empty ``--user=`` and ``--group=``: dnsmasq keeps the identity it starts with (it needs
    to write the VM directory's lease and log files). Naming root fails in a user namespace
    (``setgroups`` is denied there): a user without root would get no DHCP at all."""
    argv = [_which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground",
            "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
            "--bind-interfaces", f"--interface={TAP}", "--except-interface=lo",
            f"--listen-address={WIRESERVER}", "--user=", "--group=",
            "--pid-file=", f"--dhcp-leasefile={files.leases}",
            f"--dhcp-range={GUEST},{GUEST},255.255.255.0,1h",
            f"--dhcp-host=*:*:*:*:*:*,{GUEST},{hostname}", "--dhcp-authoritative",
            "--log-dhcp", "--log-queries", f"--log-facility={files.dhcp_log}"]
    argv += [f"--dhcp-option={o}" for o in DHCP_OPTIONS]
    argv += [f"--dhcp-option-force={o}" for o in FORCED_OPTIONS]
    return argv


_DHCP_MESSAGE = re.compile(r"DHCP(DISCOVER|OFFER|REQUEST|ACK|NAK|DECLINE|RELEASE|INFORM)\(.*$")


def dhcp_requests(files: NetFiles) -> list[str]:
    """The DHCP messages dnsmasq logged (``DHCPDISCOVER(vmtap0) ...``): none means the
    guest's network never asked for an address."""
    try:
        text = files.dhcp_log.read_text(errors="replace")
    except OSError:
        return []
    return [m.group(0).strip() for m in map(_DHCP_MESSAGE.search, text.splitlines()) if m]
