"""The operations: waagent's deprovision and the leftovers it misses (research §4.1).

Each plans from what it finds and names the checks it makes pass, so ``vmimage check`` proves
the result. The configuration fixes are in :mod:`~vmimage.generalize.ops_config`, the build
user and the build's other leftovers in :mod:`~vmimage.generalize.ops_cleanup`; both remove
through :func:`remove_existing`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from vmimage.facts.accounts import HISTORY_NAMES
from vmimage.facts.network import DHCP_LEASE_GLOBS, UDEV_PERSISTENT_NET
from vmimage.facts.waagent import PATH as WAAGENT_CONF
from vmimage.facts.waagent import parse_waagent_conf
from vmimage.generalize.plan import Action, Options, operation
from vmimage.generalize.rootfs import WritableRoot

LOCKED_ROOT = "root:*LOCK*:14600::::::"  # the line waagent writes (research §4.1, action 5)


def distinct_entries(root: WritableRoot, paths: Iterable[str]) -> list[str]:
    """The paths that exist, each directory entry once (``/var/spool/mail`` is often a link
    to ``/var/mail``, ``/var/tmp`` may be one to ``/tmp``: one entry, two paths). An entry is
    its directory and its name, not its inode: two hard links are two entries to remove."""
    seen: set[tuple[int, int, str]] = set()
    out = []
    for path in paths:
        with root.parent(path) as where:
            if where is None:
                continue
            fd, name = where
            try:
                os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            directory = os.fstat(fd)
        key = (directory.st_dev, directory.st_ino, name)
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out


def remove_existing(root: WritableRoot, op: str, paths: Iterable[str], reason: str,
                    kinds: tuple[str, ...] = ("file", "link", "other", "dir")
                    ) -> Iterator[Action]:
    """A removal of each of ``paths`` that exists (as one of ``kinds``), each directory
    entry once; shared by every operation that removes."""
    for path in distinct_entries(root, paths):
        entry = root.entry(path)
        if entry is not None and entry.kind in kinds:
            yield Action(op, "remove", path, reason)


def _homes(root: WritableRoot) -> list[str]:
    return ["/root", *root.glob("/home/*")]


@operation("shell-history", "Remove every user's shell and REPL history",
           fixes=("LINUX-SHELL-HISTORY-EMPTY",), waagent="only /root/.bash_history")
def shell_history(root: WritableRoot, options: Options) -> Iterator[Action]:
    """Histories of root and of every home directory (waagent removes root's bash history
    only; LISA fails any non-empty history)."""
    for home in _homes(root):
        histories = [*(f"{home}/{n}" for n in HISTORY_NAMES),
                     f"{home}/.local/share/fish/fish_history"]
        yield from remove_existing(root, "shell-history", histories,
                                   "a build session's history")


@operation("ssh-hostkeys", "Remove the SSH host keys (each VM makes its own)",
           fixes=("LINUX-SSH-HOSTKEYS-ABSENT",), waagent="rm /etc/ssh/ssh_host_*key*")
def ssh_hostkeys(root: WritableRoot, options: Options) -> Iterator[Action]:
    """Every VM from the image would share the builder's host keys."""
    yield from remove_existing(root, "ssh-hostkeys", root.glob("/etc/ssh/ssh_host_*key*"),
                       "host keys shared by every VM made from the image")


@operation("dhcp-client-state", "Remove DHCP leases", fixes=("LINUX-DHCP-LEASES-REMOVED",),
           waagent="rm -rf /var/lib/dhclient /var/lib/dhcpcd /var/lib/dhcp, leases")
def dhcp_client_state(root: WritableRoot, options: Options) -> Iterator[Action]:
    """A stale lease makes the first boot ask for the builder's address."""
    for pattern in DHCP_LEASE_GLOBS:
        yield from remove_existing(root, "dhcp-client-state", root.glob(pattern), "a cached lease")


@operation("hostname", "Reset the hostname to localhost.localdomain",
           fixes=("LINUX-HOSTNAME-RESET",), waagent="writes localhost.localdomain")
def hostname(root: WritableRoot, options: Options) -> Iterator[Action]:
    """The agent sets the VM's name at provisioning; the builder's must not stay."""
    entry = root.entry("/etc/hostname")
    if entry is None:
        return
    if entry.kind == "link":  # never followed: replaced by a file of our own
        yield Action("hostname", "write", "/etc/hostname", "a symbolic link",
                     "localhost.localdomain\n")
        return
    current = root.read_text("/etc/hostname")
    if current is not None and current.strip() != "localhost.localdomain":
        yield Action("hostname", "write", "/etc/hostname", f"was {current.strip()!r}",
                     "localhost.localdomain\n")


@operation("root-password", "Lock root's password", fixes=("LINUX-ROOT-PASSWORD-LOCKED",),
           waagent="root:*LOCK*:14600:::::: in /etc/shadow (DeleteRootPassword=y)")
def root_password(root: WritableRoot, options: Options) -> Iterator[Action]:
    """A root password set while building would be the same on every VM."""
    shadow = root.read_text("/etc/shadow")
    if shadow is None:
        return
    lines = shadow.splitlines()
    for i, line in enumerate(lines):
        fields = line.split(":")
        if fields[0] == "root" and len(fields) > 1 and not fields[1].startswith(("*", "!")):
            lines[i] = LOCKED_ROOT
            yield Action("root-password", "write", "/etc/shadow", "root has a password",
                         "\n".join(lines) + "\n")
            return


@operation("resolv-conf", "Remove /etc/resolv.conf (DHCP writes it at boot)",
           fixes=("LINUX-RESOLV-CONF-REMOVED",), waagent="rm /etc/resolv.conf")
def resolv_conf(root: WritableRoot, options: Options) -> Iterator[Action]:
    """The builder's name servers must not reach the customer's network."""
    entry = root.entry("/etc/resolv.conf")
    if entry is not None and entry.kind != "link":  # a link to systemd-resolved is kept
        yield Action("resolv-conf", "remove", "/etc/resolv.conf", "the builder's name servers")


@operation("machine-id", "Empty /etc/machine-id (systemd makes a new one at first boot)",
           fixes=("LINUX-MACHINE-ID-EMPTY",))
def machine_id(root: WritableRoot, options: Options) -> Iterator[Action]:
    """Every VM would share one machine ID (journal, DHCP client ID)."""
    text = root.read_text("/etc/machine-id")
    if text:
        yield Action("machine-id", "write", "/etc/machine-id", "the builder's machine ID", "")
    dbus = root.entry("/var/lib/dbus/machine-id")
    if dbus is not None and dbus.kind == "file":  # Debian links it to /etc/machine-id
        yield Action("machine-id", "remove", "/var/lib/dbus/machine-id",
                     "a copy of the machine ID")


@operation("cloud-init-state", "Remove cloud-init's instance state",
           fixes=("LINUX-CLOUD-INIT-CLEAN",))
def cloud_init_state(root: WritableRoot, options: Options) -> Iterator[Action]:
    """cloud-init would believe the first boot in Azure is not a first boot."""
    yield from remove_existing(root, "cloud-init-state",
                       [*root.glob("/var/lib/cloud/instances/*"), "/var/lib/cloud/instance"],
                       "the build VM's instance state")


@operation("udev-persistent-net", "Remove udev's persistent network rules",
           fixes=("LINUX-UDEV-PERSISTENT-NET",))
def udev_persistent_net(root: WritableRoot, options: Options) -> Iterator[Action]:
    """A rule bound to the builder's MAC renames the NIC and leaves the VM offline."""
    yield from remove_existing(root, "udev-persistent-net",
                       [f"/etc/udev/rules.d/{n}" for n in UDEV_PERSISTENT_NET],
                       "names a NIC by the builder's MAC address")


#: The unit the agent installs to restore its firewall rules at boot (OS.EnableFirewall):
#: ``<agent service>-network-setup.service``, and the link that enables it.
AGENT_NETWORK_SETUP = tuple(
    f"{d}/{svc}-network-setup.service"
    for d in ("/lib/systemd/system", "/usr/lib/systemd/system", "/etc/systemd/system",
              "/etc/systemd/system/network.target.wants")
    for svc in ("walinuxagent", "waagent"))


@operation("waagent-state", "Remove the agent's state, logs and firewall-setup unit",
           waagent="empties /var/lib/waagent and /var/log/azure; rm /var/log/waagent.log "
                   "and the network-setup unit")
def waagent_state(root: WritableRoot, options: Options) -> Iterator[Action]:
    """Goal state, certificates and ovf-env.xml of the build VM; and the unit that would
    restore the build VM's firewall rules at the customer's first boot (its script lived in
    /var/lib/waagent: left alone, it fails every boot)."""
    yield from remove_existing(root, "waagent-state",
                       ["/var/lib/waagent", "/var/log/azure", "/var/log/waagent.log"],
                       "the build VM's agent state")
    yield from remove_existing(root, "waagent-state", list(AGENT_NETWORK_SETUP),
                       "the build VM's firewall rules, restored at boot")


#: waagent.conf switches the checks require on, set to ``y`` where they are off.
AGENT_SWITCHES = ("Provisioning.RegenerateSshHostKeyPair", "Provisioning.DeleteRootPassword",
                  "AutoUpdate.Enabled")


@operation("waagent-conf", "Turn on the agent's provisioning switches the checks require",
           fixes=("LINUX-AGENT-REGENERATE-HOSTKEYS", "LINUX-AGENT-DELETE-ROOT-PASSWORD",
                  "LINUX-AGENT-AUTOUPDATE"))
def waagent_conf(root: WritableRoot, options: Options) -> Iterator[Action]:
    """Set each switch where it is, or append it: the rest of the file, comments included,
    stays as the publisher wrote it."""
    text = root.read_text(WAAGENT_CONF)
    if text is None:
        return
    conf = parse_waagent_conf(text, WAAGENT_CONF)
    lines = text.split("\n")
    changed = []
    for key in AGENT_SWITCHES:
        if conf.flag(key):
            continue
        setting = conf.get(key)
        if setting is not None:
            lines[setting.line - 1] = f"{key}=y"
        else:
            if lines and lines[-1] == "":
                lines.pop()
            lines += [f"{key}=y", ""]
        changed.append(key)
    if changed:
        yield Action("waagent-conf", "write", WAAGENT_CONF, f"{', '.join(changed)} off",
                     "\n".join(lines))
