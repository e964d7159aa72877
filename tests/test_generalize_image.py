"""``vmimage generalize IMAGE`` on disk images (issue 10): raw and fixed VHD, every layout
``vmimage check`` reads (MBR, GPT, separate /boot, LVM, XFS), ``--output COPY``, refusals,
dry runs that change no byte, and nothing left mounted or attached however a run ends.

The proof is read back from the image file by vmimage's own readers (``vmimage check``),
never through the mount that wrote it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import imagebuild as ib
from tests.test_generalize import FIXED, dirty, vmimage
from vmimage.disk.sparse import data_extents, is_zero

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="loop mounts need root")]

GiB = 1024**3
MiB = 1024**2


def digest(path: Path) -> tuple[str, int]:
    """The content (its non-zero MiB blocks and where they are: holes and stored zeros are
    the same bytes, and a flush may turn one into the other) and the mtime."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fd = fh.fileno()
        block = 0  # the next MiB block not yet hashed (two extents may share one)
        for start, length in data_extents(fd, 0, os.fstat(fd).st_size):
            block = max(block, start - start % MiB)
            while block < start + length:
                chunk = os.pread(fd, MiB, block)
                if not is_zero(chunk):
                    h.update(f"{block}:".encode() + chunk)
                block += MiB
    return h.hexdigest(), os.stat(path).st_mtime_ns


def attached(image: Path) -> set[str]:
    """Loop devices backed by ``image`` (the worker's mounts live in its own namespace:
    while they exist, so do these)."""
    loops = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True)
    return {ln.split(":")[0] for ln in loops.stdout.splitlines()}


def failing(image: Path, *ids: str) -> set[str]:
    proc = vmimage("check", image, "--format", "json", *[a for i in ids for a in ("--check", i)])
    assert proc.stdout, proc.stderr
    return {f["check_id"] for f in json.loads(proc.stdout)["findings"]
            if f["status"] in ("fail", "warning")}


@pytest.fixture(scope="module")
def dirty_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = ib.clone_tree(tmp_path_factory.mktemp("generalize-img") / "root")
    dirty(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def build(dirty_tree: Path, tmp_path: Path, name: str = "generalize-img.raw", **options: object
          ) -> ib.Disk:
    return ib.build_disk(tmp_path / name, dirty_tree, size=4 * GiB, **options)  # type: ignore[arg-type]


def test_fixed_vhd_dry_run_apply_prove_idempotent(dirty_tree: Path, tmp_path: Path) -> None:
    disk = build(dirty_tree, tmp_path)
    vhd = ib.to_vhd(disk, tmp_path / "generalize-img.vhd")
    assert failing(vhd, *FIXED) >= set(FIXED) - {"LINUX-HOSTNAME-RESET"}
    before = digest(vhd)
    dry = vmimage("generalize", vhd, "--dry-run", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    assert {a["operation"] for a in json.loads(dry.stdout)["plan"]} >= {
        "shell-history", "ssh-hostkeys", "root-password", "machine-id", "waagent-conf"}
    assert digest(vhd) == before  # not a byte, not the mtime: mounted ro, no journal replay
    refused = vmimage("generalize", vhd)  # no terminal to confirm on
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert digest(vhd) == before

    done = vmimage("generalize", vhd, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changes done" in done.stdout
    assert failing(vhd, *FIXED) == set()
    assert not attached(vhd)
    assert vmimage("vhd", "validate", vhd, "--role", "os-linux").returncode == 0  # a valid fixed VHD
    after = digest(vhd)
    again = vmimage("generalize", vhd, "--yes")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert digest(vhd)[0] == after[0]


@pytest.mark.parametrize("name, options", [
    ("gpt-separate-boot", dict(label="gpt", boot=True)),
    ("xfs-root-esp", dict(label="gpt", root_fs="xfs", esp=True, boot=True)),
    ("lvm", dict(lvm=True)),
])
def test_layouts(dirty_tree: Path, tmp_path: Path, name: str, options: dict[str, object]) -> None:
    disk = build(dirty_tree, tmp_path, **options)
    assert failing(disk.path, *FIXED)
    done = vmimage("generalize", disk.path, "--yes", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["verdict"] == "pass", result
    assert failing(disk.path, *FIXED) == set()
    assert not attached(disk.path)
    if "esp" in options:  # vfat: mounted where the kernel has it, else said in the plan
        assert "/boot/efi" in json.dumps(result["warnings"]) or not result["warnings"]


def test_output_copy_leaves_the_input_untouched(dirty_tree: Path, tmp_path: Path) -> None:
    disk = build(dirty_tree, tmp_path)
    disk.path.chmod(0o444)  # a protected image: refused in place, fine as a source
    before = digest(disk.path)
    refused = vmimage("generalize", disk.path, "--yes")
    assert refused.returncode == 2 and "read-only" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    out = tmp_path / "generalize-img-out.raw"
    done = vmimage("generalize", disk.path, "--output", out)  # no --yes needed: a copy
    assert done.returncode == 0, done.stdout + done.stderr
    assert digest(disk.path) == before
    assert failing(out, *FIXED) == set()
    assert failing(disk.path, *FIXED)
    assert os.stat(out).st_blocks * 512 < 2 * GiB  # sparse, not 4 GiB of zeros
    assert not list(tmp_path.glob(".*.partial"))
    exists = vmimage("generalize", disk.path, "--output", out)
    assert exists.returncode == 2 and "already exists" in exists.stderr
    tree_out = tmp_path / "tree-out"
    done = vmimage("generalize", dirty_tree, "--output", tree_out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (dirty_tree / "root/.bash_history").exists()
    assert not (tree_out / "root/.bash_history").exists()


def test_refusals_are_one_line_and_change_nothing(dirty_tree: Path, tmp_path: Path) -> None:
    disk = build(dirty_tree, tmp_path)
    before = digest(disk.path)

    def refused(target: Path, problem: str, *extra: str) -> None:
        proc = vmimage("generalize", target, "--yes", *extra)
        assert proc.returncode == 2 and problem in proc.stderr, proc.stderr
        assert len(proc.stderr.splitlines()) == 1, proc.stderr

    with open(disk.path, "rb") as held:  # another process holding it open
        holder = subprocess.Popen(["sleep", "60"], stdin=held)
    try:
        refused(disk.path, "in use by process")
    finally:
        holder.kill()
        holder.wait()
    loop = subprocess.run(["losetup", "-f", "--show", "-r", disk.path], capture_output=True,
                          text=True, check=True).stdout.strip()
    try:
        refused(disk.path, f"loop device {loop}")
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)
    qcow = tmp_path / "generalize-img.qcow2"
    ib.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", disk.path, qcow])
    refused(qcow, "convert it first")
    blank = tmp_path / "blank.raw"
    with open(blank, "wb") as fh:
        fh.truncate(64 * 1024**2)
    refused(blank, "no Linux root")
    public = Path(tempfile.mkdtemp(prefix="generalize-img-"))  # nobody may not enter tmp_path
    try:
        public.chmod(0o755)
        ib.clone_file(disk.path, public / "disk.raw")
        nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 sys.executable, "-m", "vmimage", "generalize",
                                 str(public / "disk.raw"), "--dry-run"], capture_output=True,
                                text=True, env={**os.environ, "VMIMAGE_CONFIG": ""},
                                check=False)
    finally:
        shutil.rmtree(public)
    assert nobody.returncode == 2 and "needs root" in nobody.stderr, nobody.stderr
    assert digest(disk.path) == before
    assert not attached(disk.path)


def test_boot_link_out_of_the_root_mounts_nothing_on_the_host(dirty_tree: Path,
                                                              tmp_path: Path) -> None:
    """The root's /boot is a link to a host directory: the boot partition must not be
    mounted over it, nor anything there changed."""
    disk = build(dirty_tree, tmp_path, boot=True)
    host = tmp_path / "host-boot"
    host.mkdir()
    (host / "keep").write_text("host file\n")
    ib.inject(disk.path, disk.root_offset, ['rmdir "/boot"', f'symlink "/boot" "{host}"'])
    proc = vmimage("generalize", disk.path, "--yes")
    assert proc.returncode in (0, 1), proc.stderr
    assert (host / "keep").read_text() == "host file\n"
    assert sorted(p.name for p in host.iterdir()) == ["keep"]
    assert not attached(disk.path)


def test_killed_mid_way_leaves_nothing_attached_and_a_rerun_completes(dirty_tree: Path,
                                                                      tmp_path: Path) -> None:
    disk = build(dirty_tree, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "vmimage", "generalize", str(disk.path),
                             "--yes"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "VMIMAGE_CONFIG": ""})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None and not attached(disk.path):
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker, mid-way (mounted)
    proc.wait()
    deadline = time.monotonic() + 10
    while attached(disk.path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not attached(disk.path)  # the namespace died with the worker: unmounted, detached
    again = vmimage("generalize", disk.path, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert failing(disk.path, *FIXED) == set()
    assert vmimage("generalize", disk.path, "--yes").stdout.startswith("nothing to do")


def test_a_swap_partition_is_a_warning_not_an_action(dirty_tree: Path, tmp_path: Path) -> None:
    """fstab's swap line goes, the partition stays: the plan says so, and the run ends with
    LINUX-NO-SWAP still failing (exit 1) rather than pretending."""
    disk = build(dirty_tree, tmp_path, swap="fstab")
    dry = vmimage("generalize", disk.path, "--dry-run", "-f", "json")
    assert dry.returncode == 0, dry.stderr
    warnings = json.loads(dry.stdout)["warnings"]
    assert any("a swap area exists" in w["text"] for w in warnings), warnings
    done = vmimage("generalize", disk.path, "--yes", "-f", "json")
    result = json.loads(done.stdout)
    still = {f["check_id"] for f in result["checks"] if f["status"] == "fail"}
    assert done.returncode == (1 if still else 0)
    assert still <= {"LINUX-NO-SWAP"}
    assert not attached(disk.path)


def break_everything(disk: ib.Disk) -> None:
    """Every fixable violation at once, written into the image's ext4 root by debugfs: the
    leftovers of a build VM and the configuration the checks refuse."""
    path, off = disk.path, disk.root_offset
    ib.put_file(path, off, "/root/.bash_history", "apt-get install nginx\n", mode=0o600)
    ib.put_file(path, off, "/etc/ssh/ssh_host_ed25519_key", "-----BEGIN OPENSSH-----\n",
                mode=0o600)
    ib.put_file(path, off, "/etc/hostname", "builder-vm\n")
    ib.put_file(path, off, "/etc/resolv.conf", "nameserver 10.0.0.2\n")
    ib.put_file(path, off, "/etc/machine-id", "0123456789abcdef0123456789abcdef\n", mode=0o444)
    ib.put_file(path, off, "/etc/udev/rules.d/70-persistent-net.rules", "NAME=\"eth0\"\n")
    ib.put_file(path, off, "/root/.ssh/authorized_keys", "ssh-ed25519 AAAA builder\n",
                mode=0o600)
    ib.edit_file(path, off, "/etc/shadow", lambda t: "\n".join(
        "root:$6$salt$hash:19000:0:99999:7:::" if ln.startswith("root:") else ln
        for ln in t.split("\n")))
    ib.edit_file(path, off, "/etc/ssh/sshd_config", lambda t: "ClientAliveInterval 0\n" + t)
    ib.edit_file(path, off, "/etc/default/grub", lambda t: t + (
        'GRUB_CMDLINE_LINUX="libata.atapi_enabled=0"\n'))
    ib.edit_file(path, off, "/boot/grub/grub.cfg", lambda t: t.replace(
        "console=ttyS0", "libata.atapi_enabled=0"))
    ib.edit_file(path, off, "/etc/waagent.conf", lambda t: t.replace(
        "Provisioning.DeleteRootPassword=y", "Provisioning.DeleteRootPassword=n"))
    with tempfile.TemporaryDirectory() as work:
        swap = Path(work) / "swapfile"
        swap.write_bytes(b"\0" * (1 << 20))
        subprocess.run(["mkswap", str(swap)], capture_output=True, check=True)
        ib.put_file(path, off, "/swapfile", swap.read_bytes(), mode=0o600)
    ib.edit_file(path, off, "/etc/fstab", lambda t: t + "/swapfile none swap sw 0 0\n")


FIXABLE = [*FIXED, "LINUX-SSH-CLIENT-ALIVE", "LINUX-KERNEL-CMDLINE",
           "LINUX-KERNEL-CMDLINE-FORBIDDEN", "LINUX-NO-SWAP", "LINUX-NO-DEFAULT-ACCOUNTS"]


@pytest.mark.parametrize("profile", ["azure-2015", "azure-current"])
def test_every_fixable_violation_at_once(tmp_path: Path, profile: str) -> None:
    disk = ib.compliant_copy(tmp_path / "generalize-img.raw")
    break_everything(disk)
    vhd = ib.to_vhd(disk, tmp_path / "generalize-img.vhd", method="vmimage")
    before = failing(vhd, *FIXABLE)
    assert before >= set(FIXABLE) - {"LINUX-HOSTNAME-RESET", "LINUX-CLOUD-INIT-CLEAN",
                                     "LINUX-DHCP-LEASES-REMOVED", "LINUX-UDEV-PERSISTENT-NET",
                                     "LINUX-AGENT-AUTOUPDATE", "LINUX-AGENT-REGENERATE-HOSTKEYS"}
    done = vmimage("generalize", vhd, "--yes", "--profile", profile, "-f", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert set(FIXABLE) - {"LINUX-DHCP"} <= {f["check_id"] for f in result["checks"]}
    assert result["verdict"] == "pass", [f for f in result["checks"] if f["status"] != "pass"]
    proc = vmimage("check", vhd, "--profile", profile, "--format", "json")
    statuses = {f["check_id"]: f["status"] for f in json.loads(proc.stdout)["findings"]}
    assert {i: statuses[i] for i in FIXABLE if statuses[i] not in ("pass", "skip")} == {}
    assert not attached(vhd)
