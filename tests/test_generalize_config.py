"""``vmimage generalize``'s configuration fixes (issue 10): sshd's keep-alive, the kernel command
line, swap, NetworkManager and MAC-pinned NIC configurations, on real roots.

Each violation is made on a copy of the compliant Debian root (or a RHEL/SUSE-like root of
``tests/distro_roots.py``), ``vmimage check`` fails it, the one operation fixes it, the check
passes under both profiles, the rest of the file is as it was, a second run plans nothing and a
dry run changes nothing. The programs that read these files are the oracles where they run
here: ``sshd -T`` in the root (chroot), ``sh`` sourcing /etc/default/grub,
``grub-script-check`` on grub.cfg, ``grub-editenv`` on grubenv, ``systemctl --root``.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import distro_roots as dr
from tests.test_generalize import tree_hash as generalize_tree_hash

pytestmark = pytest.mark.slow

OURS = ("sshd-client-alive", "kernel-cmdline", "swap", "networkmanager", "net-hwaddr")
BOTH = ("azure-2015", "azure-current")
CMDLINE = ("LINUX-KERNEL-CMDLINE", "LINUX-KERNEL-CMDLINE-FORBIDDEN")


def vmimage(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmimage", *map(str, args)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
                          env={**os.environ, "VMIMAGE_CONFIG": ""})


def put(root: Path, path: str, text: str, mode: int = 0o644) -> Path:
    """Replace a file (unlinked first: a hard-linked tree is never written through)."""
    return dr.put(root, path, text, mode)


def read(root: Path, path: str) -> str:
    return (root / path.lstrip("/")).read_text()


def tree_hash(root: Path) -> str:
    """The tree's shape by inode (the roots are hard-linked copies of the cache)."""
    return generalize_tree_hash(root, by_inode=True)


def statuses(root: Path, profile: str, *ids: str) -> dict[str, str]:
    """Each check's worst status on ``root`` (fail > warning > skip > pass)."""
    proc = vmimage("check", root, "--profile", profile, "--format", "json",
                   *[a for i in ids for a in ("--check", i)])
    assert proc.returncode in (0, 1), proc.stderr
    rank = {"pass": 0, "skip": 1, "warning": 2, "fail": 3}
    worst: dict[str, str] = {}
    for f in json.loads(proc.stdout)["findings"]:
        if rank[f["status"]] >= rank[worst.get(f["check_id"], "pass")]:
            worst[f["check_id"]] = f["status"]
    return worst


def generalize(root: Path, *ops: str, profile: str = "azure-current",
               dry: bool = False) -> dict[str, object]:
    """Run the operations (all defaults when none) and return the JSON answer."""
    chosen = ("--operations", ",".join(ops)) if ops else ()
    proc = vmimage("generalize", root, "--dry-run" if dry else "--yes", "--format", "json",
                   "--profile", profile, *chosen)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    answer: dict[str, object] = json.loads(proc.stdout)
    return answer


def fixed_and_idempotent(root: Path, op: str, ids: tuple[str, ...], profile: str
                         ) -> dict[str, object]:
    """The check fails, a dry run changes nothing, the operation fixes it, a second run plans
    nothing: the answer of the run that fixed it."""
    assert set(statuses(root, profile, *ids).values()) - {"pass", "skip"}, "no violation made"
    before = tree_hash(root)
    dry = generalize(root, op, profile=profile, dry=True)
    assert dry["plan"], dry
    assert tree_hash(root) == before  # no byte, mode or timestamp changed
    done = generalize(root, op, profile=profile)
    assert done["done"], done
    for other in BOTH:
        assert set(statuses(root, other, *ids).values()) <= {"pass"}, (other, done)
    again = vmimage("generalize", root, "--yes", "--operations", op, "--profile", profile)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
    assert "warning:" not in again.stdout
    return done


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(lines removed, lines added) between two texts."""
    removed, added = [], []
    for line in difflib.ndiff(before.split("\n"), after.split("\n")):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


@pytest.fixture
def tree() -> Iterator[Path]:
    """The compliant Debian 12 root, hard-linked (``distro_roots.debian_copy``: a full copy
    takes a minute under parallel load). Safe because nothing writes a file in place: vmimage
    replaces files by rename, these tests by unlink and write."""
    root = dr.debian_copy()
    yield root
    dr.discard(root)

# --- sshd -------------------------------------------------------------------------------------


def sshd_t(root: Path) -> dict[str, str]:
    """``sshd -T`` run in the root (its own sshd, its own Include paths): the oracle."""
    key = root / "tmp/vmimage-test-hostkey"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    run_dir = root / "run/sshd"
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(["chroot", root, "/usr/sbin/sshd", "-T", "-h",
                               "/tmp/vmimage-test-hostkey"], capture_output=True, text=True,
                              check=False)
    finally:
        run_dir.rmdir()
        for k in (key, key.with_suffix(".pub")):
            k.unlink()
    assert proc.returncode == 0, proc.stderr
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


def set_main(root: Path, text_before_include: str, text_after_include: str) -> str:
    """Debian's sshd_config with its ClientAliveInterval line taken out and the given text put
    above and below its ``Include``."""
    lines = [ln for ln in read(root, "/etc/ssh/sshd_config").split("\n")
             if not ln.startswith("ClientAliveInterval")]
    at = next(i for i, ln in enumerate(lines) if ln.startswith("Include "))
    lines[at:at + 1] = [*filter(None, text_before_include.split("\n")), lines[at],
                        *filter(None, text_after_include.split("\n"))]
    text = "\n".join(lines)
    put(root, "/etc/ssh/sshd_config", text)
    return text


@pytest.mark.parametrize("profile", BOTH)
@pytest.mark.parametrize(("above", "below", "dropin", "removed", "added"), [
    # a drop-in read first sets 300, the main file's 0 comes too late: a line above Include
    ("", "ClientAliveInterval 0", "ClientAliveInterval 300\n", [], ["ClientAliveInterval 180"]),
    # set nowhere: sshd's default 0
    ("", "", "", [], ["ClientAliveInterval 180"]),
    # set in the main file before any drop-in: that line, in place
    ("ClientAliveInterval 0", "", "ClientAliveInterval 60\n", ["ClientAliveInterval 0"],
     ["ClientAliveInterval 180"]),
    # the one setting read first, after Include (no drop-in sets it): replaced in place
    ("", "ClientAliveInterval 0", "", ["ClientAliveInterval 0"], ["ClientAliveInterval 180"]),
    # sshd reads 3m as 180 s, the check wants a number: written as one
    ("", "\tClientAliveInterval 3m", "", ["\tClientAliveInterval 3m"],
     ["\tClientAliveInterval 180"]),
    # Match all overrides for every connection: that value too
    ("", "Match all\n  ClientAliveInterval 20", "ClientAliveInterval 300\n",
     ["  ClientAliveInterval 20"], ["ClientAliveInterval 180", "  ClientAliveInterval 180"]),
], ids=["dropin-first", "unset", "main-first", "after-include", "time-format", "match-all"])
def test_sshd_client_alive(tree: Path, profile: str, above: str, below: str, dropin: str,
                           removed: list[str], added: list[str]) -> None:
    before = set_main(tree, above, below)
    if dropin:
        put(tree, "/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication no\n"
            + dropin)
    was = sshd_t(tree)["clientaliveinterval"]
    assert was == "180" if "3m" in below else was != "180"
    done = fixed_and_idempotent(tree, "sshd-client-alive", ("LINUX-SSH-CLIENT-ALIVE",), profile)
    assert [a["path"] for a in done["done"]] == ["/etc/ssh/sshd_config"]
    after = read(tree, "/etc/ssh/sshd_config")
    assert changed_lines(before, after) == (removed, added)
    assert sshd_t(tree)["clientaliveinterval"] == "180"
    if dropin:  # the drop-in is kept as written
        assert read(tree, "/etc/ssh/sshd_config.d/50-cloud-init.conf").endswith(dropin)


def test_sshd_compliant_value_kept_where_the_profile_accepts_it(tree: Path) -> None:
    """120 passes the 2015 guide (30 to 235) but today's tool warns on anything but 180."""
    set_main(tree, "ClientAliveInterval 120", "")
    before = tree_hash(tree)
    assert generalize(tree, "sshd-client-alive", profile="azure-2015", dry=True)["plan"] == []
    assert generalize(tree, "sshd-client-alive", profile="azure-current")["done"]
    assert tree_hash(tree) != before
    assert sshd_t(tree)["clientaliveinterval"] == "180"


# --- the kernel command line ------------------------------------------------------------------


def shell_values(root: Path) -> tuple[str, str]:
    """GRUB_CMDLINE_LINUX and _DEFAULT as grub-mkconfig's shell sources the files."""
    script = ('. ./etc/default/grub; for f in ./etc/default/grub.d/*.cfg; do [ -e "$f" ] && '
              '. "$f"; done; printf "%s\\n%s\\n" "$GRUB_CMDLINE_LINUX" '
              '"$GRUB_CMDLINE_LINUX_DEFAULT"')
    proc = subprocess.run(["sh", "-c", script], cwd=root, capture_output=True, text=True,
                          check=False, env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    linux, default = proc.stdout.split("\n")[:2]
    return linux, default


def grub_line(root: Path, name: str, value: str) -> None:
    text = read(root, "/etc/default/grub")
    lines = [value if ln.startswith(f"{name}=") else ln for ln in text.split("\n")]
    put(root, "/etc/default/grub", "\n".join(lines))


def break_grub_cfg(root: Path) -> str:
    """The Debian grub.cfg with the forbidden parameters in, the required ones out."""
    text = read(root, "/boot/grub/grub.cfg")
    text = text.replace("ro console=ttyS0 earlyprintk=ttyS0 rootdelay=300 quiet",
                        "ro libata.atapi_enabled=0 quiet reserve=0x1f0,0x8 rootdelay=10")
    text = text.replace("ro single console=ttyS0 earlyprintk=ttyS0 rootdelay=300",
                        "ro single libata.atapi_enabled=0")
    put(root, "/boot/grub/grub.cfg", text, 0o444)
    return text


def words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize("profile", BOTH)
@pytest.mark.parametrize(("linux", "default", "want_linux", "want_default"), [
    ('GRUB_CMDLINE_LINUX="libata.atapi_enabled=0"',
     'GRUB_CMDLINE_LINUX_DEFAULT="quiet reserve=0x1f0,0x8 net.ifnames=0"',
     "console=ttyS0 earlyprintk=ttyS0 rootdelay=300", "quiet net.ifnames=0"),
    ("GRUB_CMDLINE_LINUX='rootdelay=10 quiet'", 'GRUB_CMDLINE_LINUX_DEFAULT=""',
     "quiet console=ttyS0 earlyprintk=ttyS0 rootdelay=300", ""),
    ("GRUB_CMDLINE_LINUX=", "GRUB_CMDLINE_LINUX_DEFAULT=quiet",
     "console=ttyS0 earlyprintk=ttyS0 rootdelay=300", "quiet"),
    # Debian sets _DEFAULT first: "$GRUB_CMDLINE_LINUX" is still empty there
    ("GRUB_CMDLINE_LINUX=console=tty0", 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX x=1"',
     "console=tty0 console=ttyS0 earlyprintk=ttyS0 rootdelay=300", "x=1"),
    ('export GRUB_CMDLINE_LINUX="console=ttyS0,115200n8 libata.atapi_enabled=0 ro"',
     "GRUB_CMDLINE_LINUX_DEFAULT='quiet'",
     "console=ttyS0,115200n8 ro earlyprintk=ttyS0 rootdelay=300", "quiet"),
], ids=["double", "single-empty", "unquoted-empty", "unquoted-var", "export"])
def test_kernel_cmdline_debian(tree: Path, profile: str, linux: str, default: str,
                               want_linux: str, want_default: str) -> None:
    grub_line(tree, "GRUB_CMDLINE_LINUX", linux)
    grub_line(tree, "GRUB_CMDLINE_LINUX_DEFAULT", default)
    grub_before = read(tree, "/etc/default/grub")
    cfg_before = break_grub_cfg(tree)
    done = fixed_and_idempotent(tree, "kernel-cmdline", CMDLINE, profile)
    assert {a["path"] for a in done["done"]} == {"/boot/grub/grub.cfg", "/etc/default/grub"}
    assert tuple(map(words, shell_values(tree))) == (words(want_linux), words(want_default))
    removed, added = changed_lines(grub_before, read(tree, "/etc/default/grub"))
    assert all(ln.startswith(("GRUB_CMDLINE_LINUX", "export GRUB_CMDLINE_LINUX"))
               for ln in removed + added), (removed, added)
    cfg = read(tree, "/boot/grub/grub.cfg")
    removed, added = changed_lines(cfg_before, cfg)
    assert len(removed) == len(added) == 3 and all(ln.lstrip().startswith("linux\t")
                                                   for ln in removed + added)
    for line in added:
        assert line.endswith("console=ttyS0 earlyprintk=ttyS0 rootdelay=300")
        assert "libata" not in line and "reserve=" not in line and "rootdelay=10" not in line
    assert (tree / "boot/grub/grub.cfg").stat().st_mode & 0o777 == 0o444
    check = subprocess.run(["grub-script-check", tree / "boot/grub/grub.cfg"],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_kernel_cmdline_from_default_grub_and_a_dropin(tree: Path) -> None:
    """Without grub.cfg the check reads what update-grub would write: /etc/default/grub, then
    grub.d/*.cfg, which appends a forbidden word to the variable set before it."""
    (tree / "boot/grub/grub.cfg").unlink()
    grub_line(tree, "GRUB_CMDLINE_LINUX", 'GRUB_CMDLINE_LINUX="quiet"')
    dropin = 'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX reserve=0x1f0,0x8" # cloud image\n'
    put(tree, "/etc/default/grub.d/50-cloudimg.cfg", dropin)
    fixed_and_idempotent(tree, "kernel-cmdline", CMDLINE, "azure-2015")
    assert read(tree, "/etc/default/grub.d/50-cloudimg.cfg") == (
        'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX console=ttyS0 earlyprintk=ttyS0 '
        'rootdelay=300" # cloud image\n')
    assert 'GRUB_CMDLINE_LINUX="quiet"' in read(tree, "/etc/default/grub")
    assert words(shell_values(tree)[0]) == words("quiet console=ttyS0 earlyprintk=ttyS0 "
                                                 "rootdelay=300")


def test_kernel_cmdline_a_value_it_cannot_edit_is_noted(tree: Path) -> None:
    (tree / "boot/grub/grub.cfg").unlink()
    grub_line(tree, "GRUB_CMDLINE_LINUX", 'GRUB_CMDLINE_LINUX="$(cat /etc/cmdline) quiet"')
    before = tree_hash(tree)
    plan = generalize(tree, "kernel-cmdline", dry=True)
    assert plan["plan"] == [] and tree_hash(tree) == before
    assert any("not a value vmimage edits" in w["text"] for w in plan["warnings"])


def grubenv(path: Path, **values: str) -> None:
    """A grubenv made and set by the real grub-editenv."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["grub-editenv", path, "create"], check=True)
    subprocess.run(["grub-editenv", path, "set", *[f"{k}={v}" for k, v in values.items()]],
                   check=True)


def grubenv_list(path: Path) -> dict[str, str]:
    out = subprocess.run(["grub-editenv", path, "list"], capture_output=True, text=True,
                         check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


RHEL8_GRUB_CFG = """\
set pager=1
if [ -f ${config_directory}/grubenv ]; then
  load_env -f ${config_directory}/grubenv
fi
if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
if [ -z "${kernelopts}" ]; then
  set kernelopts="root=/dev/mapper/rhel-root ro crashkernel=auto "
fi
insmod blscfg
blscfg
"""

BLS = """\
title Red Hat Enterprise Linux (4.18.0-513.5.1.el8_9.x86_64) 8.9 (Ootpa)
version 4.18.0-513.5.1.el8_9.x86_64
linux /vmlinuz-4.18.0-513.5.1.el8_9.x86_64
initrd /initramfs-4.18.0-513.5.1.el8_9.x86_64.img $tuned_initrd
options {options}
id rhel-20231110120000-4.18.0-513.5.1.el8_9.x86_64
grub_users $grub_users
grub_arg --unrestricted
grub_class kernel
"""

RHEL_DEFAULT_GRUB = """\
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR="$(sed 's, release .*$,,g' /etc/system-release)"
GRUB_DEFAULT=saved
GRUB_DISABLE_SUBMENU=true
GRUB_TERMINAL_OUTPUT="console"
GRUB_CMDLINE_LINUX="crashkernel=auto resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root rhgb quiet"
GRUB_DISABLE_RECOVERY="true"
GRUB_ENABLE_BLSCFG=true
"""


@pytest.mark.parametrize("profile", BOTH)
def test_kernel_cmdline_rhel8_bls_and_grubenv(profile: str, rpms, made) -> None:
    """RHEL 8 (UEFI): BLS entries say ``options $kernelopts``, kernelopts lives in the EFI
    grubenv, and /boot/grub2/grubenv is a link to it: the block is edited, the link kept."""
    root = made(dr.rhel_root(rpms, dr.RHEL_8))
    put(root, "/boot/grub2/grub.cfg", RHEL8_GRUB_CFG, 0o700)
    efi_env = root / "boot/efi/EFI/redhat/grubenv"
    grubenv(efi_env, saved_entry="rhel-20231110120000-4.18.0-513.5.1.el8_9.x86_64",
            kernelopts="root=/dev/mapper/rhel-root ro crashkernel=auto libata.atapi_enabled=0 "
                       "rhgb quiet")
    dr.symlink(root, "/boot/grub2/grubenv", "../efi/EFI/redhat/grubenv")
    entries = "/boot/loader/entries/rhel-20231110120000-4.18.0-513.5.1.el8_9.x86_64.conf"
    put(root, entries, BLS.format(options="$kernelopts $tuned_params"))
    put(root, "/etc/default/grub", RHEL_DEFAULT_GRUB)
    done = fixed_and_idempotent(root, "kernel-cmdline", CMDLINE, profile)
    assert {a["path"] for a in done["done"]} == {"/boot/efi/EFI/redhat/grubenv",
                                                  "/etc/default/grub"}
    assert (root / "boot/grub2/grubenv").is_symlink()
    assert efi_env.stat().st_size == 1024
    env = grubenv_list(efi_env)
    assert env["kernelopts"] == ("root=/dev/mapper/rhel-root ro crashkernel=auto rhgb quiet "
                                 "console=ttyS0 earlyprintk=ttyS0 rootdelay=300")
    assert env["saved_entry"].startswith("rhel-")
    assert read(root, entries) == BLS.format(options="$kernelopts $tuned_params")
    assert 'GRUB_CMDLINE_LINUX="crashkernel=auto resume=/dev/mapper/rhel-swap ' \
           'rd.lvm.lv=rhel/root rhgb quiet console=ttyS0 earlyprintk=ttyS0 rootdelay=300"' \
           in read(root, "/etc/default/grub")


def test_kernel_cmdline_rhel9_bls_options_and_kernel_cmdline(rpms, made) -> None:
    """RHEL 9: the options are written into each BLS entry, and /etc/kernel/cmdline is what
    kernel-install writes into the next kernel's."""
    root = made(dr.rhel_root(rpms, dr.RHEL_9))
    opts = "root=UUID=0b6f reserve=0x1f0,0x8 ro crashkernel=1G-4G:192M"
    entry = "/boot/loader/entries/abc-5.14.0-427.13.1.el9_4.x86_64.conf"
    rescue = "/boot/loader/entries/abc-0-rescue.conf"
    put(root, entry, BLS.format(options=opts))
    put(root, rescue, BLS.format(options=opts).replace("Red Hat", "Rescue Red Hat"))
    put(root, "/etc/kernel/cmdline", opts + "\n")
    done = fixed_and_idempotent(root, "kernel-cmdline", CMDLINE, "azure-current")
    assert {a["path"] for a in done["done"]} == {entry, rescue, "/etc/kernel/cmdline"}
    fixed = "root=UUID=0b6f ro crashkernel=1G-4G:192M console=ttyS0 earlyprintk=ttyS0 " \
            "rootdelay=300"
    assert read(root, entry) == BLS.format(options=fixed)
    assert read(root, "/etc/kernel/cmdline") == fixed + "\n"


def test_kernel_cmdline_without_boot_files_plans_nothing(rpms, made) -> None:
    root = made(dr.rhel_root(rpms))
    plan = generalize(root, "kernel-cmdline", dry=True)
    assert plan["plan"] == []
    assert any("no boot entry found" in w["text"] for w in plan["warnings"])


# --- swap -------------------------------------------------------------------------------------

def swapfile(root: Path, path: str) -> None:
    """A swap file as the build made it: the real mkswap's signature in it."""
    put(root, path, "\0" * (1 << 20), 0o600)
    subprocess.run(["mkswap", root / path.lstrip("/")], capture_output=True, check=True)


SWAP_UNIT = """\
[Unit]
Description=Swap file made by the build

[Swap]
What=/var/swap.img

[Install]
WantedBy=swap.target
"""


@pytest.mark.parametrize("profile", BOTH)
def test_swap(tree: Path, profile: str) -> None:
    fstab = read(tree, "/etc/fstab")
    put(tree, "/etc/fstab", fstab + "/swapfile none swap sw 0 0\n"
        "# the build VM's swap partition\nUUID=5b1c-swap none swap sw,noauto 0 0\n")
    swapfile(tree, "/swapfile")
    swapfile(tree, "/var/swap.img")
    put(tree, "/etc/systemd/system/var-swap.img.swap", SWAP_UNIT)
    dr.systemctl(tree, "enable", "var-swap.img.swap")
    assert (tree / "etc/systemd/system/swap.target.wants/var-swap.img.swap").is_symlink()
    conf = read(tree, "/etc/waagent.conf")
    put(tree, "/etc/waagent.conf", conf.replace("ResourceDisk.EnableSwap=n",
                                                "ResourceDisk.EnableSwap=y"))
    done = fixed_and_idempotent(tree, "swap", ("LINUX-NO-SWAP",), profile)
    assert read(tree, "/etc/fstab") == fstab + "# the build VM's swap partition\n"
    assert read(tree, "/etc/waagent.conf") == conf
    for gone in ("swapfile", "var/swap.img", "etc/systemd/system/var-swap.img.swap",
                 "etc/systemd/system/swap.target.wants/var-swap.img.swap"):
        assert not (tree / gone).exists() and not (tree / gone).is_symlink(), gone
    assert done["warnings"] == [{
        "operation": "swap", "text": "a swap partition exists (UUID=5b1c-swap, /etc/fstab line "
        f"{fstab.count(chr(10)) + 3}): removing a partition is not done; see remediation (its "
        "fstab line is removed)"}]


def test_swap_never_deletes_a_file_that_is_not_swap(tree: Path) -> None:
    """fstab names /etc/shadow as swap (a typo, or a hostile image): its line goes, the file
    stays."""
    fstab = read(tree, "/etc/fstab")
    put(tree, "/etc/fstab", fstab + "/etc/shadow none swap sw 0 0\n")
    shadow = read(tree, "/etc/shadow")
    done = generalize(tree, "swap")
    assert [(a["action"], a["path"]) for a in done["done"]] == [("write", "/etc/fstab")]
    assert [w["text"] for w in done["warnings"]] == [
        "/etc/shadow is named as swap but holds no swap signature: kept"]
    assert read(tree, "/etc/shadow") == shadow and read(tree, "/etc/fstab") == fstab


def test_swap_from_cloud_init_is_noted_not_edited(tree: Path) -> None:
    cfg = "#cloud-config\nswap:\n  filename: /swap.img\n  size: 2G\n"
    put(tree, "/etc/cloud/cloud.cfg.d/90-swap.cfg", cfg)
    plan = generalize(tree, "swap", dry=True)
    assert plan["plan"] == []
    assert [w["text"] for w in plan["warnings"]] == [
        "cloud-init makes swap (cloud-init swap: filename=/swap.img size=2G; "
        "/etc/cloud/cloud.cfg.d/90-swap.cfg line 4): remove that setting (YAML is not edited)"]
    assert read(tree, "/etc/cloud/cloud.cfg.d/90-swap.cfg") == cfg


# --- NetworkManager ---------------------------------------------------------------------------

NM = ("LINUX-NETWORKMANAGER-DISABLED",)


def is_enabled(root: Path, unit: str) -> str:
    return subprocess.run(["systemctl", f"--root={root}", "is-enabled", unit],
                          capture_output=True, text=True, check=False).stdout.strip()


@pytest.mark.parametrize("profile", BOTH)
def test_networkmanager_debian(tree: Path, profile: str) -> None:
    """NetworkManager beside ifupdown, which brings eth0 up: disabled as systemctl does."""
    dr.install_nm_stub(tree)
    put(tree, "/usr/lib/systemd/system/NetworkManager-wait-online.service", dr.unit(
        "Network Manager Wait Online", "/usr/bin/nm-online -s -q",
        "[Install]\nWantedBy=network-online.target\n"))
    dr.systemctl(tree, "enable", "NetworkManager.service", "NetworkManager-wait-online.service")
    assert is_enabled(tree, "NetworkManager.service") == "enabled"
    done = fixed_and_idempotent(tree, "networkmanager", NM, profile)
    assert sorted(a["path"] for a in done["done"]) == [
        "/etc/systemd/system/dbus-org.freedesktop.NetworkManager.service",
        "/etc/systemd/system/multi-user.target.wants/NetworkManager.service",
        "/etc/systemd/system/network-online.target.wants/NetworkManager-wait-online.service"]
    assert is_enabled(tree, "NetworkManager.service") == "disabled"
    assert is_enabled(tree, "NetworkManager-wait-online.service") == "disabled"
    assert is_enabled(tree, "networking.service") == "enabled"
    assert (tree / "usr/sbin/NetworkManager").exists()  # installed, only not started


def test_networkmanager_rhel9_by_profile(rpms, made) -> None:
    """Today's rules keep NetworkManager on RHEL 9 (nothing to do); the 2015 guide wants it
    off, but it is the only stack that brings eth0 up: noted, not disabled."""
    root = made(dr.rhel_root(rpms))
    before = tree_hash(root)
    current = generalize(root, "networkmanager", profile="azure-current", dry=True)
    assert current["plan"] == [] and current["warnings"] == []
    legacy = generalize(root, "networkmanager", profile="azure-2015")
    assert legacy["plan"] == [] and "no other network stack" in legacy["warnings"][0]["text"]
    assert tree_hash(root) == before
    assert is_enabled(root, "NetworkManager.service") == "enabled"


@pytest.mark.parametrize("profile", BOTH)
def test_networkmanager_centos7_is_kept(profile: str, rpms, made) -> None:
    root = made(dr.rhel_root(rpms, dr.CENTOS_7, keyfile=None, ifcfg=dr.IFCFG_RHEL_DHCP,
                             legacy_network=True))
    assert statuses(root, profile, *NM) == {NM[0]: "pass"}
    plan = generalize(root, "networkmanager", profile=profile, dry=True)
    assert plan["plan"] == [] and plan["warnings"] == []


def test_networkmanager_as_netplan_renderer_is_not_disabled(made) -> None:
    yaml = dr.NETPLAN_AZURE.replace("    version: 2\n", "    version: 2\n    renderer: "
                                                       "NetworkManager\n")
    root = made(dr.ubuntu_root(yaml, renderer_nm=True))
    plan = generalize(root, "networkmanager", profile="azure-current", dry=True)
    assert plan["plan"] == [] and "no other network stack" in plan["warnings"][0]["text"]


def test_networkmanager_beside_networkd_on_ubuntu(made) -> None:
    root = made(dr.ubuntu_root())
    dr.install_nm_stub(root)
    dr.systemctl(root, "enable", "NetworkManager.service")
    fixed_and_idempotent(root, "networkmanager", NM, "azure-current")
    assert is_enabled(root, "systemd-networkd.service") == "enabled"


# --- NIC configurations pinned to a MAC address ----------------------------------------------

DHCP = ("LINUX-DHCP",)


@pytest.mark.parametrize("profile", BOTH)
def test_net_hwaddr_suse(profile: str, rpms, made) -> None:
    pinned = "LLADDR='00:0d:3a:11:22:33'\n"
    root = made(dr.suse_root(rpms, dr.IFCFG_SUSE_DHCP + pinned))
    fixed_and_idempotent(root, "net-hwaddr", DHCP, profile)
    assert read(root, "/etc/sysconfig/network/ifcfg-eth0") == dr.IFCFG_SUSE_DHCP


def test_net_hwaddr_rhel7_network_scripts(rpms, made) -> None:
    ifcfg = dr.IFCFG_RHEL_DHCP.replace("ONBOOT=yes\n", 'ONBOOT=yes\nHWADDR="00:15:5D:01:02:03"\n'
                                                       "MACADDR=00:15:5d:01:02:03\n")
    root = made(dr.rhel_root(rpms, dr.CENTOS_7, keyfile=None, ifcfg=ifcfg, legacy_network=True,
                             nm_enabled=False))
    done = fixed_and_idempotent(root, "net-hwaddr", DHCP, "azure-2015")
    assert done["done"][0]["reason"] == "pinned to the builder's MAC (HWADDR, MACADDR)"
    assert read(root, "/etc/sysconfig/network-scripts/ifcfg-eth0") == dr.IFCFG_RHEL_DHCP


def test_net_hwaddr_networkmanager_keyfile(rpms, made) -> None:
    keyfile = dr.NM_KEYFILE_DHCP.replace("[ethernet]\n", "[ethernet]\nmac-address=00:0D:3A:11:"
                                                         "22:33\nmtu=1500\n")
    root = made(dr.rhel_root(rpms, keyfile=keyfile))
    put(root, "/etc/NetworkManager/conf.d/no-auto.conf", "[main]\nno-auto-default=*\n")
    fixed_and_idempotent(root, "net-hwaddr", DHCP, "azure-current")
    path = root / "etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection"
    assert path.read_text() == dr.NM_KEYFILE_DHCP.replace("[ethernet]\n",
                                                          "[ethernet]\nmtu=1500\n")
    assert path.stat().st_mode & 0o777 == 0o600  # NetworkManager ignores a readable keyfile


# --- all at once, and links out of the root --------------------------------------------------


def every_violation(root: Path) -> None:
    set_main(root, "", "ClientAliveInterval 0")
    grub_line(root, "GRUB_CMDLINE_LINUX", 'GRUB_CMDLINE_LINUX="libata.atapi_enabled=0"')
    break_grub_cfg(root)
    put(root, "/etc/fstab", read(root, "/etc/fstab") + "/swapfile none swap sw 0 0\n")
    swapfile(root, "/swapfile")
    put(root, "/etc/waagent.conf", read(root, "/etc/waagent.conf").replace(
        "ResourceDisk.EnableSwap=n", "ResourceDisk.EnableSwap=y"))
    dr.install_nm_stub(root)
    dr.systemctl(root, "enable", "NetworkManager.service")


@pytest.mark.parametrize("profile", BOTH)
def test_every_violation_default_operations(tree: Path, profile: str) -> None:
    every_violation(tree)
    dry = generalize(tree, profile=profile, dry=True)
    claimed = dry["checks"]
    assert isinstance(claimed, list)
    ours = ["LINUX-DHCP", *CMDLINE, "LINUX-NETWORKMANAGER-DISABLED", "LINUX-NO-SWAP",
            "LINUX-SSH-CLIENT-ALIVE"]
    assert set(ours) <= set(claimed)
    assert set(statuses(tree, profile, *ours).values()) - {"pass"}
    assert {a["operation"] for a in dry["plan"]} >= set(OURS) - {"net-hwaddr"}
    done = generalize(tree, profile=profile)
    assert done["verdict"] == "pass", done["checks"]
    for other in BOTH:
        assert set(statuses(tree, other, *claimed).values()) <= {"pass", "skip"}, other
    assert sshd_t(tree)["clientaliveinterval"] == "180"
    again = vmimage("generalize", tree, "--yes", "--profile", profile)
    assert again.returncode == 0 and again.stdout.startswith("nothing to do"), again.stdout


def test_agent_switches_and_agent_swap_in_one_run(tree: Path) -> None:
    conf = read(tree, "/etc/waagent.conf")
    conf = conf.replace("ResourceDisk.EnableSwap=n", "ResourceDisk.EnableSwap=y")
    put(tree, "/etc/waagent.conf", conf + "AutoUpdate.Enabled=n\n")
    generalize(tree, "waagent-conf", "swap")
    assert statuses(tree, "azure-current", "LINUX-AGENT-AUTOUPDATE", "LINUX-NO-SWAP") == {
        "LINUX-AGENT-AUTOUPDATE": "pass", "LINUX-NO-SWAP": "pass"}


def test_links_out_of_the_root_are_never_followed(tree: Path, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    canaries = {"sshd_config": "ClientAliveInterval 0\n",
                "grub": 'GRUB_CMDLINE_LINUX="libata.atapi_enabled=0"\n',
                "fstab": "/swapfile none swap sw 0 0\n",
                "swapfile": "host data\n",
                "ifcfg-eth0": "DEVICE=eth0\nHWADDR=00:15:5d:01:02:03\n"}
    for name, text in canaries.items():
        (host / name).write_text(text)
    dr.symlink(tree, "/etc/ssh/sshd_config", str(host / "sshd_config"))
    dr.symlink(tree, "/etc/default/grub", "../" * 10 + str(host / "grub")[1:])
    put(tree, "/etc/fstab", read(tree, "/etc/fstab") + "/swapfile none swap sw 0 0\n")
    dr.symlink(tree, "/swapfile", str(host / "swapfile"))
    dr.symlink(tree, "/etc/sysconfig/network-scripts/ifcfg-eth0", str(host / "ifcfg-eth0"))
    done = generalize(tree, *OURS)
    for name, text in canaries.items():
        assert (host / name).read_text() == text, name
    assert (tree / "etc/ssh/sshd_config").is_symlink()
    assert (tree / "etc/default/grub").is_symlink()
    assert (tree / "swapfile").is_symlink()  # no swap signature inside the root: kept
    warned = " ".join(w["text"] for w in done["warnings"])
    assert "/swapfile is named as swap but holds no swap signature" in warned
    for path in ("/etc/ssh/sshd_config", "/etc/default/grub",
                 "/etc/sysconfig/network-scripts/ifcfg-eth0"):
        assert f"{path} is a symbolic link that does not resolve inside the image" in warned


def test_a_link_inside_the_root_is_replaced_by_an_edited_file(tree: Path) -> None:
    """/etc/ssh/sshd_config pointing into /usr/share: the file is written at the link's
    place, the shared copy is not touched."""
    text = set_main(tree, "", "")
    put(tree, "/usr/share/openssh/sshd_config.image", text)
    dr.symlink(tree, "/etc/ssh/sshd_config", "../../usr/share/openssh/sshd_config.image")
    done = fixed_and_idempotent(tree, "sshd-client-alive", ("LINUX-SSH-CLIENT-ALIVE",),
                                "azure-current")
    assert "replaced by a file" in done["done"][0]["reason"]
    assert not (tree / "etc/ssh/sshd_config").is_symlink()
    assert read(tree, "/usr/share/openssh/sshd_config.image") == text
    assert sshd_t(tree)["clientaliveinterval"] == "180"
