"""The Azure agent as the oracle for ``vmimage generalize`` (issue 10).

``vmimage generalize ROOT --yes --user NAME`` claims to be a superset of ``waagent -force
-deprovision+user``. This test holds it to that with the real agent: Debian's own ``waagent``
package (2.7.3.0 in bookworm), installed by mmdebstrap from the mirror apt uses here, in the
cached test root of ``tests/imagebuild.py`` (its package list has ``waagent``).

1. ``build_vm_tree()``: that root as a build VM leaves it, cached in the store beside the
   compliant tree and keyed by it and by the recipe below (``BUILD_VM_SCRIPT``,
   ``build_vm_files()``): a build user made the way the agent provisions one (``useradd -m``,
   in group ``sudo``, a password, authorized_keys, shell history, the agent's
   ``/etc/sudoers.d/waagent`` line, the ``ovf-env.xml`` naming it), a root password, SSH host
   keys, root's history and keys, a DHCP lease, ``/etc/resolv.conf``, a hostname, a machine ID,
   cloud-init instance state, the agent's state, extension logs and network-setup unit (as the
   agent writes them with ``OS.EnableFirewall=y``, the upstream default), system logs, temporary
   files and package caches.
2. Copy A: the real ``waagent -force -deprovision+user`` in a chroot (``run_in_chroot``).
   Copy B: ``python -m vmimage generalize B --yes --user builder``.
3. Every path of the original, A and B as (type, mode, owner, content hash or link target);
   the test asserts that what waagent removed vmimage removed too, that what waagent changed
   vmimage changed to the same meaning (root locked, the user gone from every account file,
   its sudoers line gone, the hostname reset), and that every change vmimage made is one it
   reported. What vmimage did beyond waagent is printed by operation, with vmimage's reasons,
   and written as JSON (``$VMIMAGE_WAAGENT_ORACLE_REPORT``, else the test's tmp_path): it is
   the table "Beyond waagent -deprovision+user" of docs/generalize.md.

What fails in the chroot, and why that does not matter: the agent's first action is
``systemctl stop walinuxagent``, which exits 1 there ("System has not been booted with systemd
as init system (PID 1). Can't operate."); the agent runs it without checking and goes on, and
an image has no running agent to stop. The agent also runs ``hostname localhost.localdomain``:
the chroot has its own UTS namespace (``unshare --uts``), so the host keeps its name, and
``/etc/hostname``, the file that matters in an image, is what is compared. ``/proc``, ``/sys``
(read-only) and ``/dev`` are mounted in a private mount namespace that dies with the command,
so nothing stays mounted on the host; an empty network namespace keeps the agent from reaching
anything. Note that the agent's "delete" of ``/var/lib/waagent``, ``/var/log/azure`` and
``/var/lib/dhcp`` empties those directories (``fileutil.rm_dirs``) and keeps them.

Run: ``pytest -q tests/test_generalize_waagent.py -s`` prints the agent's output and the
comparison. ``python3 -m tests.test_generalize_waagent`` builds (or finds) the build-VM tree
and prints its path.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import imagebuild as ib
from tests.freshos import ENTER_CHROOT, ROOT_PATH

pytestmark = pytest.mark.slow

BUILD_USER = "builder"
FORMAT = 1  # bump to rebuild the cached build-VM tree
HOST_NAME = "builder-vm"
VM_ID = "3b2c6a1e-7d4f-4c1a-9e8b-5f0a2d6c4e19"
MACHINE_ID = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99"
PUBKEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb0m2fZ8v0YV1xQpWbN3r1mEJ9tCqz8zC3aYQn0kq7x "
          "publisher@laptop")

# What the agent's provisioning and a build session do, run in the chroot as root.
BUILD_VM_SCRIPT = f"""
set -eu
useradd -m -s /bin/bash -c 'build user' -G sudo {BUILD_USER}
echo '{BUILD_USER}:Build-only-passw0rd' | chpasswd
echo 'root:Root-build-passw0rd' | chpasswd
echo '{BUILD_USER} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/waagent
chmod 0440 /etc/sudoers.d/waagent
install -d -m 0700 -o {BUILD_USER} -g {BUILD_USER} /home/{BUILD_USER}/.ssh
ssh-keygen -A -q
"""


def ovf_env(user: str) -> str:
    """The ``ovf-env.xml`` the agent keeps after provisioning ``user`` (the password is left
    out here)."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" \
xmlns:oe="http://schemas.dmtf.org/ovf/environment/1" \
xmlns:wa="http://schemas.microsoft.com/windowsazure" \
xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
  <wa:ProvisioningSection>
    <wa:Version>1.0</wa:Version>
    <LinuxProvisioningConfigurationSet xmlns="http://schemas.microsoft.com/windowsazure" \
xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
      <ConfigurationSetType>LinuxProvisioningConfiguration</ConfigurationSetType>
      <HostName>{HOST_NAME}</HostName>
      <UserName>{user}</UserName>
      <DisableSshPasswordAuthentication>false</DisableSshPasswordAuthentication>
      <SSH><PublicKeys><PublicKey>
        <Fingerprint>6BE7A7C3C8A8F4B123CCA5D0C2F1BE4CA7B63ED7</Fingerprint>
        <Path>/home/{user}/.ssh/authorized_keys</Path>
        <Value>{PUBKEY}</Value>
      </PublicKey></PublicKeys></SSH>
    </LinuxProvisioningConfigurationSet>
  </wa:ProvisioningSection>
  <wa:PlatformSettingsSection>
    <wa:Version>1.0</wa:Version>
    <PlatformSettings xmlns="http://schemas.microsoft.com/windowsazure" \
xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
      <KmsServerHostname>kms.core.windows.net</KmsServerHostname>
      <ProvisionGuestAgent>true</ProvisionGuestAgent>
      <GuestAgentPackageName i:nil="true" />
      <PreprovisionedVm>false</PreprovisionedVm>
    </PlatformSettings>
  </wa:PlatformSettingsSection>
</Environment>
"""


@dataclass(frozen=True)
class Put:
    """A file the build VM leaves: its content, mode and owner (names looked up in the tree;
    directories made for it get the same owner below ``/home``)."""

    text: str | bytes
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"


def build_vm_files() -> dict[str, Put]:
    """The leftovers of the build session, beyond what ``BUILD_VM_SCRIPT`` makes."""
    u, home = BUILD_USER, f"/home/{BUILD_USER}"
    ext = "Microsoft.Azure.Extensions.CustomScript"
    lease = ("lease {\n  interface \"eth0\";\n  fixed-address 10.1.0.4;\n"
             f"  option host-name \"{HOST_NAME}\";\n  renew 4 2026/11/26 10:01:02;\n}}\n")
    return {
        # Histories, keys and files of root and of the build user.
        "/root/.bash_history": Put("apt-get update\napt-get install -y nginx\n", 0o600),
        "/root/.python_history": Put("import os\n", 0o600),
        "/root/.ssh/authorized_keys": Put(PUBKEY + "\n", 0o600),
        "/root/.ssh/known_hosts": Put("|1|abc= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB\n"),
        f"{home}/.bash_history": Put("sudo -i\nls\n", 0o600, u, u),
        f"{home}/.ssh/authorized_keys": Put(PUBKEY + "\n", 0o600, u, u),
        f"{home}/.sudo_as_admin_successful": Put("", 0o644, u, u),
        f"{home}/build/setup.sh": Put("#!/bin/sh\napt-get install -y nginx\n", 0o755, u, u),
        # Identity of the build VM.
        "/etc/hostname": Put(HOST_NAME + "\n"),
        "/etc/machine-id": Put(MACHINE_ID + "\n", 0o444),
        "/etc/resolv.conf": Put("search reddog.microsoft.com\nnameserver 168.63.129.16\n"),
        "/var/lib/dhcp/dhclient.eth0.leases": Put(lease),
        "/etc/udev/rules.d/70-persistent-net.rules": Put(
            'SUBSYSTEM=="net", ACTION=="add", ATTR{address}=="00:0d:3a:12:34:56", '
            'NAME="eth0"\n'),
        # cloud-init's state (an image that was once provisioned by it).
        f"/var/lib/cloud/instances/{VM_ID}/boot-finished": Put("1764150000.0\n"),
        f"/var/lib/cloud/instances/{VM_ID}/obj.pkl": Put(b"\x80\x04\x95state", 0o600),
        f"/var/lib/cloud/instances/{VM_ID}/user-data.txt": Put("#cloud-config\n", 0o600),
        "/var/log/cloud-init.log": Put("cloud-init ran\n", 0o640, "root", "adm"),
        # The agent: its state, goal state, certificates, extensions, logs, network setup.
        "/var/lib/waagent/ovf-env.xml": Put(ovf_env(u), 0o600),
        "/var/lib/waagent/provisioned": Put(""),
        "/var/lib/waagent/Incarnation": Put("1"),
        "/var/lib/waagent/GoalState.1.xml": Put("<GoalState/>\n"),
        "/var/lib/waagent/HostingEnvironmentConfig.xml": Put("<HostingEnvironmentConfig/>\n"),
        "/var/lib/waagent/SharedConfig.xml": Put("<SharedConfig/>\n"),
        "/var/lib/waagent/Certificates.pem": Put("-----BEGIN PRIVATE KEY-----\n", 0o600),
        "/var/lib/waagent/TransportPrivate.pem": Put("-----BEGIN PRIVATE KEY-----\n", 0o600),
        "/var/lib/waagent/WireServerEndpoint": Put("168.63.129.16"),
        "/var/lib/waagent/published_hostname": Put(HOST_NAME),
        "/var/lib/waagent/waagent-network-setup.py": Put("# agent firewall setup\n", 0o755),
        f"/var/lib/waagent/{ext}-2.1.10/config/0.settings": Put("{}\n", 0o600),
        f"/var/lib/waagent/{ext}-2.1.10/status/0.status": Put("[]\n"),
        "/usr/lib/systemd/system/walinuxagent-network-setup.service": Put(
            "[Unit]\nDescription=Setup network rules for WALinuxAgent\n\n[Service]\n"
            "Type=oneshot\nExecStart=/usr/bin/python3 /var/lib/waagent/waagent-network-setup.py"
            "\n\n[Install]\nWantedBy=network.target\n"),
        "/var/log/waagent.log": Put("2026-11-26T10:00:00Z INFO Daemon Azure Linux Agent\n"),
        f"/var/log/azure/{ext}/handler.log": Put("handler ran\n"),
        # The system's own logs, temporary files and package caches.
        "/var/log/syslog": Put("Nov 26 builder-vm systemd[1]: Started\n", 0o640, "root", "adm"),
        "/var/log/auth.log": Put("sshd: Accepted publickey for builder\n", 0o640, "root", "adm"),
        "/var/log/dpkg.log": Put("2026-11-26 10:02:00 install nginx:amd64\n"),
        "/var/log/apt/history.log": Put("Commandline: apt-get install -y nginx\n"),
        "/var/log/wtmp": Put(b"\x07\x00\x00\x00builder", 0o664, "root", "utmp"),
        "/var/log/lastlog": Put(b"\x00" * 16 + b"builder", 0o664, "root", "utmp"),
        "/tmp/packer-shell-1234.sh": Put("#!/bin/sh\necho build\n", 0o700),
        "/var/tmp/build-cache/blob": Put("cache\n"),
        "/var/cache/apt/archives/nginx_1.22.1-9_amd64.deb": Put(b"!<arch>\n"),
        "/var/cache/apt/pkgcache.bin": Put(b"\x00cache"),
        "/var/cache/apt/srcpkgcache.bin": Put(b"\x00cache"),
    }


#: Symbolic links the build VM leaves: cloud-init's current instance, the agent's unit
#: enabled.
BUILD_VM_LINKS = {
    "/var/lib/cloud/instance": f"/var/lib/cloud/instances/{VM_ID}",
    "/etc/systemd/system/network.target.wants/walinuxagent-network-setup.service":
        "/lib/systemd/system/walinuxagent-network-setup.service",
}


def recipe_key() -> str:
    """Cache key of the build-VM tree: the compliant tree's key and this recipe."""
    spec = {"format": FORMAT, "compliant": ib.compliant_key(), "script": BUILD_VM_SCRIPT,
            "links": BUILD_VM_LINKS,
            "files": {p: [repr(f.text), f.mode, f.owner, f.group]
                      for p, f in sorted(build_vm_files().items())}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Running a command in a chroot


def run_in_chroot(tree: Path, argv: list[str], *, timeout: float = 300
                  ) -> subprocess.CompletedProcess[str]:
    """``argv`` in ``tree`` as root: private mount, UTS and network namespaces (``unshare``),
    ``/proc``, ``/sys`` and ``/dev`` mounted there, a clean environment, no standard input."""
    env = ["env", "-i", f"PATH={ROOT_PATH}", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb"]
    cmd = ["unshare", "--mount", "--uts", "--net", "--propagation", "private", "--",
           "sh", "-c", ENTER_CHROOT, "enter", str(tree), *env, *argv]
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=timeout, check=False, env={"PATH": ROOT_PATH, "LC_ALL": "C"})


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this (the host's) mount namespace."""
    base = str(path)
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return [p for p in points if p == base or p.startswith(base + "/")]


# --------------------------------------------------------------------------------------------
# The build-VM tree


def _id_of(tree: Path, table: str, name: str) -> int:
    for line in (tree / "etc" / table).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise ib.ImageBuildError(f"{tree}: no {name} in /etc/{table}")


def make_build_vm(tree: Path) -> None:
    """Turn a writable copy of the compliant tree into what a build VM leaves."""
    proc = run_in_chroot(tree, ["bash", "-c", BUILD_VM_SCRIPT])
    if proc.returncode != 0:
        raise ib.ImageBuildError(f"build-VM script exited {proc.returncode}: "
                                 f"{(proc.stdout + proc.stderr)[-3000:]}")
    for inner, put in build_vm_files().items():
        path = tree / inner.lstrip("/")
        uid, gid = _id_of(tree, "passwd", put.owner), _id_of(tree, "group", put.group)
        made = [p for p in reversed(path.parents) if not p.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        if inner.startswith("/home/"):
            for directory in made:
                os.chown(directory, uid, gid)
        if path.is_symlink() or path.exists():
            path.unlink()  # never write through a (hard) link into the cache
        path.write_bytes(put.text.encode() if isinstance(put.text, str) else put.text)
        os.chown(path, uid, gid)
        path.chmod(put.mode)
    for inner, target in BUILD_VM_LINKS.items():
        link = tree / inner.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    conf = tree / "etc/waagent.conf"  # the agent wrote its network-setup unit: firewall on
    text = conf.read_text().replace("OS.EnableFirewall=n", "OS.EnableFirewall=y")
    conf.unlink()
    conf.write_text(text)
    conf.chmod(0o644)


def build_vm_tree() -> Path:
    """The cached build-VM tree (read only: ``clone()`` it); built when missing."""
    ckey, key = ib.compliant_key(), recipe_key()
    final = ib.store_dir() / "trees" / f"buildvm-{key}-on-{ckey}"
    if final.is_dir():
        ib._touch(final)  # in use: not pruned as an outdated recipe
        return final
    with ib.locked(f"buildvm-{key}"):
        if not final.is_dir():
            src = ib.compliant_tree()
            start = time.monotonic()
            for old in final.parent.glob("buildvm-*"):  # other recipes, unused for an hour
                if key not in old.name and time.time() - old.stat().st_mtime > 3600:
                    ib.run(["rm", "-rf", "--one-file-system", old], check=False)
            tmp = final.with_name(f".{final.name}.tmp")
            ib.run(["rm", "-rf", "--one-file-system", tmp], check=False)
            ib.run(["cp", "-a", "--reflink=auto", src, tmp])
            make_build_vm(tmp)
            tmp.rename(final)
            ib._log(f"build-VM tree in {final}: {time.monotonic() - start:.1f} s")
    return final


def clone(src: Path, dest: Path) -> Path:
    """A writable copy of ``src`` at ``dest`` (reflinks where the store can)."""
    ib.run(["cp", "-a", "--reflink=auto", src, dest])
    return dest


def waagent_version(tree: Path) -> str:
    """The Debian package's version, as dpkg records it in ``tree``."""
    status = (tree / "var/lib/dpkg/status").read_text()
    stanza = next(s for s in status.split("\n\n") if s.startswith("Package: waagent\n"))
    return next(ln.split(": ", 1)[1] for ln in stanza.splitlines()
                if ln.startswith("Version: "))


# --------------------------------------------------------------------------------------------
# Snapshots and their differences


@dataclass(frozen=True)
class Node:
    """What a path is: type, permission bits, owner, and its content's SHA-256 (a link: its
    target; a device: its number; a directory: nothing)."""

    kind: str
    mode: int
    uid: int
    gid: int
    content: str


def snapshot(root: Path) -> dict[str, Node]:
    """Every path below ``root`` (keys like ``/etc/shadow``), links never followed."""
    nodes: dict[str, Node] = {}
    base = len(str(root))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as fh:
                    kind, content = "file", hashlib.file_digest(fh, "sha256").hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                kind, content = "link", os.readlink(full)
            elif stat.S_ISDIR(st.st_mode):
                kind, content = "dir", ""
            else:
                kind, content = "other", str(st.st_rdev)
            nodes[full[base:]] = Node(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                      content)
    return nodes


@dataclass
class Diff:
    """How a copy differs from the original tree."""

    removed: set[str]
    changed: set[str]
    added: set[str]

    @classmethod
    def of(cls, before: dict[str, Node], after: dict[str, Node]) -> Diff:
        """``after`` compared with ``before``."""
        return cls(removed=before.keys() - after.keys(), added=after.keys() - before.keys(),
                   changed={p for p in before.keys() & after.keys() if before[p] != after[p]})


def tops(paths: set[str]) -> list[str]:
    """The paths whose parent is not in ``paths`` (a removed tree named by its top)."""
    return sorted(p for p in paths if os.path.dirname(p) not in paths)


# --------------------------------------------------------------------------------------------
# Comparing meanings: where vmimage may reach waagent's end another way

Meaning = Callable[[str, "str | None", "str | None"], "str | None"]


def _records(text: str | None) -> dict[str, list[str]]:
    """A colon-separated account file (passwd, shadow, group, ...) by its first field."""
    rows = [ln.split(":") for ln in (text or "").splitlines() if ln.strip()]
    return {r[0]: r[1:] for r in rows}


def _locked(fields: list[str] | None) -> bool:
    return fields is not None and fields[0].startswith(("*", "!"))


def same_accounts(path: str, a: str | None, b: str | None) -> str | None:
    """Account files: the same entries in any order. In shadow, root must be locked in both;
    its other fields are free (waagent writes a fixed date)."""
    ra, rb = _records(a), _records(b)
    if path == "/etc/shadow":
        la, lb = _locked(ra.pop("root", None)), _locked(rb.pop("root", None))
        if not (la and lb):
            return f"root locked: waagent {la}, vmimage {lb}"
    differ = sorted(k for k in ra.keys() | rb.keys() if ra.get(k) != rb.get(k))
    return "; ".join(f"{k}: waagent {ra.get(k)}, vmimage {rb.get(k)}" for k in differ) or None


def no_user_line(path: str, a: str | None, b: str | None) -> str | None:
    """The agent's sudoers file: no line naming the build user, the others kept (vmimage may
    remove the file when nothing else is in it)."""
    if b is not None and BUILD_USER in b:
        return f"still names {BUILD_USER}: {b!r}"
    kept_a = [ln for ln in (a or "").splitlines() if ln.strip()]
    kept_b = [ln for ln in (b or "").splitlines() if ln.strip()]
    return None if kept_a == kept_b else f"other lines: waagent {kept_a}, vmimage {kept_b}"


def same_text(path: str, a: str | None, b: str | None) -> str | None:
    """The same text, give or take a final newline."""
    return None if (a or "").rstrip("\n") == (b or "").rstrip("\n") else f"{a!r} vs {b!r}"


#: Files waagent changes whose meaning, not bytes, vmimage must match.
MEANINGS: dict[str, Meaning] = {
    "/etc/shadow": same_accounts, "/etc/passwd": same_accounts, "/etc/group": same_accounts,
    "/etc/gshadow": same_accounts, "/etc/subuid": same_accounts, "/etc/subgid": same_accounts,
    "/etc/sudoers.d/waagent": no_user_line, "/etc/hostname": same_text,
}

#: Backups that userdel rewrites with the accounts as they were (the build user, root's
#: password hash): removing them instead is better.
BACKUPS = frozenset({"/etc/passwd-", "/etc/shadow-", "/etc/group-", "/etc/gshadow-",
                     "/etc/subuid-", "/etc/subgid-"})

def _read(root: Path, inner: str) -> str | None:
    path = root / inner.lstrip("/")
    if path.is_symlink() or not path.is_file():
        return None
    return path.read_text(errors="replace")


def gaps(original: dict[str, Node], a_root: Path, a: dict[str, Node], b_root: Path,
         b: dict[str, Node]) -> list[str]:
    """Every way B (vmimage) falls short of A (waagent), one line each."""
    da, db = Diff.of(original, a), Diff.of(original, b)
    out = []
    for top in tops(da.removed):
        left = sorted(p for p in da.removed if (p == top or p.startswith(top + "/"))
                      and p in b)
        if left:
            out.append(f"{top}: waagent removed it; vmimage left {len(left)} path(s): "
                       + ", ".join(left[:4]) + (" ..." if len(left) > 4 else ""))
    for path in sorted(da.changed):
        if path in BACKUPS and path in db.removed:
            continue
        meaning = MEANINGS.get(path)
        if meaning is not None:
            problem = meaning(path, _read(a_root, path), _read(b_root, path))
            if problem:
                out.append(f"{path}: waagent changed it; vmimage's differs: {problem}")
        elif b.get(path) != a[path]:
            state = "removed it" if path not in b else \
                "left it as it was" if b[path] == original[path] else "wrote something else"
            out.append(f"{path}: waagent changed it ({original[path]} -> {a[path]}); "
                       f"vmimage {state}")
    return out


def attribute(paths: list[str], done: list[dict[str, str]]) -> dict[str, list[str]]:
    """Each path under the vmimage action that did it (the action's own path, or a parent it
    removed whole), as ``{"operation: action path (reason)": [paths]}``; changes no action
    explains go under ``"(not reported)"``."""
    grouped: dict[str, list[str]] = {}
    for path in paths:
        hit = next((d for d in done if path == d["path"]
                    or path.startswith(d["path"].rstrip("/") + "/")), None)
        label = "(not reported)" if hit is None else \
            f"{hit['operation']}: {hit['action']} {hit['path']} ({hit['reason']})"
        grouped.setdefault(label, []).append(path)
    return grouped


# --------------------------------------------------------------------------------------------
# The test


def vmimage_generalize(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m vmimage generalize TARGET --yes ARGS`` (no configuration file)."""
    return subprocess.run([sys.executable, "-m", "vmimage", "generalize", str(target), "--yes",
                           *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          check=False, env={**os.environ, "VMIMAGE_CONFIG": ""}, timeout=600)


def run_waagent(tree: Path) -> subprocess.CompletedProcess[str]:
    """The real ``waagent -force -deprovision+user``, in ``tree``."""
    return run_in_chroot(tree, ["waagent", "-force", "-deprovision+user"])


@pytest.fixture
def work() -> Iterator[Path]:
    """A scratch directory in the store (copies are reflinks there), removed afterwards."""
    path = Path(tempfile.mkdtemp(dir=ib.scratch_dir(), prefix="waagent-oracle-"))
    try:
        yield path
    finally:
        leftover = mounts_under(path)
        ib.run(["rm", "-rf", "--one-file-system", path], check=False)
        assert not leftover, f"left mounted: {leftover}"


def test_vmimage_does_all_that_waagent_deprovision_user_does(work: Path,
                                                               tmp_path: Path) -> None:
    original = build_vm_tree()
    assert (original / "usr/sbin/waagent").is_file(), "the cached root has no waagent"
    version = waagent_version(original)
    a_root, b_root = clone(original, work / "a"), clone(original, work / "b")

    agent = run_waagent(a_root)
    print(f"--- waagent {version}: -force -deprovision+user (exit {agent.returncode})\n"
          f"{agent.stdout}{agent.stderr}")
    assert agent.returncode == 0, agent.stdout + agent.stderr
    assert f"{BUILD_USER} account and entire home directory will be deleted" in agent.stdout
    assert not mounts_under(a_root)

    proc = vmimage_generalize(b_root, "--user", BUILD_USER, "--format", "json")
    print(f"--- vmimage generalize --user {BUILD_USER} (exit {proc.returncode})\n"
          f"{proc.stderr[-3000:]}")
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    done: list[dict[str, str]] = result["done"]

    before, a, b = snapshot(original), snapshot(a_root), snapshot(b_root)
    da, db = Diff.of(before, a), Diff.of(before, b)
    beyond = attribute(tops((db.removed - da.removed) | (db.changed - da.changed) | db.added),
                       done)
    shortfalls = gaps(before, a_root, a, b_root, b)

    record = {
        "waagent": version,
        "waagent_output": agent.stdout + agent.stderr,
        "waagent_removed": tops(da.removed),
        "waagent_changed": sorted(da.changed),
        "waagent_added": sorted(da.added),
        "vmimage_done": done,
        "vmimage_verdict": result.get("verdict"),
        "beyond": beyond,
        "gaps": shortfalls,
    }
    out = Path(os.environ.get("VMIMAGE_WAAGENT_ORACLE_REPORT") or tmp_path / "oracle.json")
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"--- waagent removed: {record['waagent_removed']}\n"
          f"--- waagent changed: {record['waagent_changed']}\n"
          f"--- waagent added (traces of its own run, not asked of vmimage): "
          f"{record['waagent_added']}\n--- vmimage beyond waagent:")
    for label, paths in sorted(beyond.items()):
        print(f"  {label}\n    " + "\n    ".join(paths))
    print(f"--- record: {out}")

    assert not shortfalls, "vmimage fell short of waagent:\n" + "\n".join(shortfalls)
    assert "(not reported)" not in beyond, \
        f"vmimage changed paths it did not report: {beyond['(not reported)']}"
    assert beyond, "vmimage did nothing beyond waagent?"
    assert proc.returncode == 0 and result.get("verdict") == "pass", \
        [f for f in result.get("checks") or [] if f.get("status") in ("fail", "warning")]
    again = vmimage_generalize(b_root, "--user", BUILD_USER)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout


def main() -> int:
    """``python3 -m tests.test_generalize_waagent``: build (or find) the build-VM tree."""
    start = time.monotonic()
    path = build_vm_tree()
    print(f"{path} ({time.monotonic() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
