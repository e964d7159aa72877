"""``vmimage generalize`` on a root directory (issue 10, first part): the plan, dry runs that
change nothing, applying, the checks as proof, idempotence, and links that point out of the
root never touching the host."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import imagebuild as ib

pytestmark = pytest.mark.slow

FIXED = ["LINUX-AGENT-AUTOUPDATE", "LINUX-AGENT-DELETE-ROOT-PASSWORD",
         "LINUX-AGENT-REGENERATE-HOSTKEYS", "LINUX-CLOUD-INIT-CLEAN", "LINUX-DHCP-LEASES-REMOVED",
         "LINUX-HOSTNAME-RESET",
         "LINUX-MACHINE-ID-EMPTY", "LINUX-RESOLV-CONF-REMOVED", "LINUX-ROOT-PASSWORD-LOCKED",
         "LINUX-SHELL-HISTORY-EMPTY", "LINUX-SSH-HOSTKEYS-ABSENT", "LINUX-UDEV-PERSISTENT-NET"]


def vmimage(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmimage", *map(str, args)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
                          env={**os.environ, "VMIMAGE_CONFIG": ""})


def put(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    target.write_text(text)
    target.chmod(mode)


def dirty(root: Path) -> None:
    """Every leftover the default operations remove, as a build VM leaves them."""
    put(root, "/root/.bash_history", "apt-get install nginx\n", 0o600)
    (root / "home/builder").mkdir(parents=True, exist_ok=True)
    put(root, "/home/builder/.zsh_history", ": 1700000000:0;sudo reboot\n", 0o600)
    put(root, "/etc/ssh/ssh_host_ed25519_key", "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0o600)
    put(root, "/etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA builder\n")
    put(root, "/var/lib/dhcp/dhclient.eth0.leases", "lease { fixed-address 10.0.0.4; }\n")
    put(root, "/etc/hostname", "builder-vm\n")
    shadow = (root / "etc/shadow").read_text().splitlines()
    shadow = ["root:$6$salt$hash:19000:0:99999:7:::" if ln.startswith("root:") else ln
              for ln in shadow]
    put(root, "/etc/shadow", "\n".join(shadow) + "\n", 0o640)
    put(root, "/etc/resolv.conf", "nameserver 10.0.0.2\n")
    put(root, "/etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444)
    put(root, "/var/lib/cloud/instances/iid-build/obj.pkl", "state")
    put(root, "/etc/udev/rules.d/70-persistent-net.rules", 'SUBSYSTEM=="net", NAME="eth0"\n')
    put(root, "/var/lib/waagent/ovf-env.xml", "<Environment/>")
    conf = (root / "etc/waagent.conf").read_text()
    for key in ("Provisioning.RegenerateSshHostKeyPair", "Provisioning.DeleteRootPassword"):
        conf = "\n".join(f"{key}=n" if ln.startswith(f"{key}=") else ln
                         for ln in conf.split("\n"))
    put(root, "/etc/waagent.conf", conf + "# kept comment\nAutoUpdate.Enabled=n\n")


def tree_hash(root: Path, *, by_inode: bool = False) -> str:
    """Every path's type, mode, owner, size, mtime and content (links: their target).

    ``by_inode``: the inode instead of the content, for trees hard-linked to a cache (reading
    800 MB costs more than the test): a file written in place changes its mtime, a file
    replaced its inode. (Never ctime: other tests change the shared inodes' link counts.)"""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            ident = st.st_ino if by_inode else ""
            h.update(f"{p.relative_to(root)}|{ident}|{st.st_mode}|{st.st_uid}|{st.st_size}|"
                     f"{st.st_mtime_ns}".encode())
            if p.is_symlink():
                h.update(os.readlink(p).encode())
            elif p.is_file() and not by_inode:
                h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = ib.clone_tree(tmp_path / "root")
    dirty(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def failed_ids(target: Path) -> set[str]:
    """The fixable rules that fail or warn on ``target``."""
    proc = vmimage("check", target, "--format", "json", *[a for i in FIXED
                                                           for a in ("--check", i)])
    return {f["check_id"] for f in json.loads(proc.stdout)["findings"]
            if f["status"] in ("fail", "warning")}


def test_plan_apply_prove_and_idempotent(tree: Path) -> None:
    assert failed_ids(tree) >= set(FIXED) - {"LINUX-HOSTNAME-RESET"}
    before = tree_hash(tree)
    dry = vmimage("generalize", tree, "--dry-run", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert {a["operation"] for a in planned["plan"]} >= {
        "shell-history", "ssh-hostkeys", "dhcp-client-state", "hostname", "root-password",
        "resolv-conf", "machine-id", "cloud-init-state", "udev-persistent-net", "waagent-state",
        "waagent-conf"}
    assert tree_hash(tree) == before  # a dry run changes no byte, mode or timestamp
    refused = vmimage("generalize", tree)  # no terminal to confirm on, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert tree_hash(tree) == before

    done = vmimage("generalize", tree, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changes done" in done.stdout and "PASSES" not in done.stdout.splitlines()[0]
    assert failed_ids(tree) == set()
    assert (tree / "etc/machine-id").read_text() == ""
    assert (tree / "etc/machine-id").stat().st_mode & 0o777 == 0o444  # mode kept
    assert "root:*LOCK*:14600::::::" in (tree / "etc/shadow").read_text()
    assert not (tree / "home/builder/.zsh_history").exists()
    assert not (tree / "var/lib/waagent").exists()
    assert not list((tree / "etc").glob(".*.vmimage-tmp"))
    assert "# kept comment" in (tree / "etc/waagent.conf").read_text()

    after = tree_hash(tree)
    again = vmimage("generalize", tree, "--yes")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert tree_hash(tree) == after


def test_links_out_of_the_root_never_touch_the_host(tree: Path, tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "dhcp").mkdir(parents=True)
    canaries = {host / "passwd": "root:x:0:0::/root:/bin/bash\n",
                host / "hostname": "the-host\n",
                host / "dhcp/dhclient.leases": "host lease\n",
                host / "waagent/keep": "host agent state\n"}
    for path, text in canaries.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    links = {"root/.bash_history": str(host / "passwd"),                 # absolute
             "etc/resolv.conf": "../" * 12 + str(host / "passwd")[1:],   # relative, climbing
             "etc/hostname": str(host / "hostname"),
             "var/lib/dhcp": str(host / "dhcp"),                         # a directory
             "var/lib/waagent": str(host / "waagent"),
             "etc/machine-id": "../" * 12 + str(host / "passwd")[1:]}
    for rel, target in links.items():
        p = tree / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(target)
    done = vmimage("generalize", tree, "--yes")
    assert done.returncode in (0, 1), done.stderr
    for path, text in canaries.items():
        assert path.read_text() == text, path
    assert not (tree / "root/.bash_history").is_symlink()
    assert (tree / "etc/hostname").read_text() == "localhost.localdomain\n"
    assert not (tree / "etc/hostname").is_symlink()
    assert not (tree / "var/lib/waagent").exists()  # the link itself went, not its target


@pytest.mark.parametrize("make, problem", [
    (lambda p: p, "not a Linux root"),
    (lambda p: Path("/"), "running system's own root"),
    (lambda p: p / "nope", "neither a root directory nor a disk image"),
])
def test_refusals_are_one_line(tmp_path: Path, make, problem: str) -> None:
    proc = vmimage("generalize", make(tmp_path), "--yes")
    assert proc.returncode == 2 and problem in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_list_operations() -> None:
    text = vmimage("generalize", "--list-operations")
    assert text.returncode == 0 and "shell-history" in text.stdout
    ops = json.loads(vmimage("generalize", "--list-operations", "-f", "json").stdout)
    fixes = {c for op in ops for c in op["fixes"]}
    assert set(FIXED) <= fixes
    assert all(op["heading"] for op in ops)
    known = {r["id"] for r in json.loads(vmimage("checks", "list", "-f", "json").stdout)}
    assert fixes <= known  # every claimed check exists in the one registry
    shown = json.loads(vmimage("checks", "show", "LINUX-SSH-HOSTKEYS-ABSENT", "-f", "json").stdout)
    assert shown["fixed_by"] == ["ssh-hostkeys"]
    bad = vmimage("generalize", "/tmp", "--operations", "bogus")
    assert bad.returncode == 2 and "unknown operation(s) bogus" in bad.stderr


def test_killed_mid_way_a_rerun_completes(tree: Path) -> None:
    """SIGKILL at some point of applying (many files to remove), then a rerun: everything
    done, no temporary file left, and the files written are whole."""
    for i in range(400):
        home = tree / f"home/user{i}"
        home.mkdir(parents=True, exist_ok=True)
        for name in (".bash_history", ".zsh_history", ".python_history"):
            (home / name).write_text("x" * 100)
    proc = subprocess.Popen([sys.executable, "-m", "vmimage", "generalize", str(tree), "--yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env={**os.environ, "VMIMAGE_CONFIG": ""})
    deadline = 30.0
    import time

    start = time.monotonic()
    while time.monotonic() - start < deadline:  # kill once the first history is gone
        if not (tree / "home/user0/.bash_history").exists() or proc.poll() is not None:
            break
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    again = vmimage("generalize", tree, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert not list(tree.glob("home/*/.*_history"))
    assert (tree / "etc/hostname").read_text() == "localhost.localdomain\n"
    assert not list(tree.rglob(".*.vmimage-tmp"))
    assert vmimage("generalize", tree, "--yes").stdout.startswith("nothing to do")


def test_the_running_system_only_with_live_host() -> None:
    """Inside the build VM, as waagent is run: allowed with --live-host (a dry run here: it
    must plan from this machine's own files and change nothing)."""
    refused = vmimage("generalize", "/", "--dry-run")
    assert refused.returncode == 2 and "--live-host" in refused.stderr
    planned = vmimage("generalize", "/", "--live-host", "--dry-run", "-f", "json")
    assert planned.returncode == 0, planned.stderr
    assert isinstance(json.loads(planned.stdout)["plan"], list)
