"""Hostile images and roots (issue 17): no hang, no traceback, no unbounded memory.

Each case is a real image (the compliant Debian disk, or the small GPT disk of the target
tests, edited with debugfs or by rewriting its GPT) or a real root directory, made the way an
attacker would make it. Every one must be judged within a time and memory bound (in a forked
child: :mod:`tests.fuzzing`), the rule that needs the hostile file skipped with the reason,
and ``vmimage check`` must exit 0/1 with findings or 2 with one line, never a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import imagebuild as ib
from tests import targets_images as ti
from tests.fuzzing import MiB, run_bounded
from vmimage.app.check import check_target
from vmimage.disk.gpt import GptHeader
from vmimage.errors import VmimageError
from vmimage.facts import _grub
from vmimage.facts._includes import IncludeError
from vmimage.facts.accounts import read_sudoers
from vmimage.facts.network import ifupdown_interfaces
from vmimage.facts.sshd import read_sshd_config
from vmimage.findings import Status
from vmimage.targets.base import UnreadableError
from vmimage.targets.image import ImageTarget
from vmimage.targets.rootdir import RootDirTarget

pytestmark = pytest.mark.slow

SECTOR = 512
#: Before the fixes these cases hung, or ran past a minute; now each takes about a second.
BOUND_SECONDS = 45.0
BOUND_MEMORY = 1024 * MiB


def put(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


# --- include graphs on a root directory: cycles and fan-out --------------------------------------


def _sudoers_self(root: Path) -> Callable[[], object]:
    put(root, "/etc/sudoers", "@include /etc/sudoers\n@include /etc/sudoers\nroot ALL=(ALL) ALL\n")
    return lambda: read_sudoers(RootDirTarget(root))


def _interfaces_self(root: Path) -> Callable[[], object]:
    put(root, "/etc/network/interfaces",
        "source /etc/network/interfaces\nsource interfaces\nauto eth0\niface eth0 inet dhcp\n")
    return lambda: ifupdown_interfaces(RootDirTarget(root))


def _sshd_three(root: Path) -> Callable[[], object]:
    put(root, "/etc/ssh/sshd_config", "Include a.conf b.conf c.conf\nPort 22\n")
    for name in "abc":
        put(root, f"/etc/ssh/{name}.conf", "Include a.conf b.conf c.conf\n")
    return lambda: read_sshd_config(RootDirTarget(root))


def _sudoers_diamond(root: Path) -> Callable[[], object]:
    """No cycle at all: each of 40 levels includes the next one twice (2^40 reads)."""
    put(root, "/etc/sudoers", "@include /etc/s1\n@include /etc/s1\n")
    for level in range(1, 40):
        put(root, f"/etc/s{level}", f"@include /etc/s{level + 1}\n@include /etc/s{level + 1}\n")
    put(root, "/etc/s40", "root ALL=(ALL) ALL\n")
    return lambda: read_sudoers(RootDirTarget(root))


@pytest.mark.parametrize("make", [_sudoers_self, _interfaces_self, _sshd_three, _sudoers_diamond],
                         ids=["sudoers-self", "interfaces-self", "sshd-three", "sudoers-diamond"])
def test_include_graphs_end_with_the_typed_error(tmp_path: Path,
                                                 make: Callable[[Path], Callable[[], object]]):
    call = make(tmp_path)
    ending = run_bounded(call, seconds=10)
    assert ending.kind == "input-error", ending
    with pytest.raises(IncludeError, match=r"cycle|more than 256 files"):
        call()


def test_include_graphs_still_read_what_real_systems_hold(tmp_path: Path):
    put(tmp_path, "/etc/sudoers", "@includedir /etc/sudoers.d\n@include /etc/extra\n")
    put(tmp_path, "/etc/extra", "Defaults env_reset\n")
    for n in range(20):
        put(tmp_path, f"/etc/sudoers.d/rule{n}", f"user{n} ALL=(ALL) ALL\n@include /etc/extra\n")
    lines = read_sudoers(RootDirTarget(tmp_path))
    assert len(lines) == 20 * 2 + 1  # a file included many times (not in a cycle) is fine


# --- the directory target: FIFOs and device nodes are never opened ---------------------------------


def test_fifo_in_a_root_directory_does_not_hang(tmp_path: Path):
    os.makedirs(tmp_path / "etc/ssh")
    os.mkfifo(tmp_path / "etc/ssh/sshd_config")
    target = RootDirTarget(tmp_path)
    ending = run_bounded(lambda: target.read_text("/etc/ssh/sshd_config"), seconds=5)
    assert ending.kind == "input-error" and "FIFO" in ending.detail, ending
    with pytest.raises(UnreadableError, match="is a FIFO, not a regular file"):
        read_sshd_config(target)


def test_device_node_in_a_root_directory_is_not_opened(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    os.mknod(tmp_path / "etc/passwd", stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero
    os.symlink("passwd", tmp_path / "etc/shadow")
    target = RootDirTarget(tmp_path)
    ending = run_bounded(lambda: target.read_bytes("/etc/shadow"), seconds=5, memory=256 * MiB)
    assert ending.kind == "input-error" and "character device" in ending.detail, ending


def test_large_file_in_a_root_directory_is_refused(tmp_path: Path):
    put(tmp_path, "/etc/ssh/sshd_config", "Port 22\n")
    os.truncate(tmp_path / "etc/ssh/sshd_config", 1 << 30)  # 1 GiB, sparse
    ending = run_bounded(lambda: read_sshd_config(RootDirTarget(tmp_path)), seconds=10,
                         memory=256 * MiB)
    assert ending.kind == "input-error" and "limit" in ending.detail, ending


# --- GRUB: linear in the size of grub.cfg ----------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    # every ${ searched the whole rest of the text for its }: 20 s before, 3 s now
    ("${" * 650_000, 10),
    # each command walked the whole block stack: past a minute before; refused now
    ("if [ a ]; then\n" * 90_000 + "menuentry x {\nlinux /vmlinuz quiet\n}\n" * 2000, 10),
    ("submenu s {\n" * 250 + "menuentry x {\nlinux /v\n}\n" + "}\n" * 250, 10),
    ("set a=xxxxxxxxxxxxxxxx\n" + 'set a="$a$a"\n' * 60, 10),  # doubles to 16 EiB
], ids=["unclosed-braces", "deep-ifs", "deep-submenus", "doubling"])
def test_grub_cfg_walk_is_bounded(tmp_path: Path, text: str, seconds: float):
    put(tmp_path, "/boot/grub/grub.cfg", text)
    from vmimage.facts.bootcfg import read_kernel_cmdlines

    ending = run_bounded(lambda: read_kernel_cmdlines(RootDirTarget(tmp_path)), seconds=seconds,
                         memory=512 * MiB)
    assert ending.ok, ending


def test_grub_nesting_over_the_bound_is_the_typed_error():
    with pytest.raises(_grub.GrubError, match="nested deeper"):
        _grub.run("if [ a ]; then\n" * 300, {})


# --- hostile disk images ---------------------------------------------------------------------------

LOOPS = ("/etc/fstab", "/etc/shadow", "/etc/sudoers", "/boot/grub/grub.cfg", "/etc/waagent.conf",
         "/etc/network/interfaces")


def _symlink_loops(disk: ib.Disk) -> None:
    """Self-loops at six files the checks read, and a chain of 41 links at /etc/passwd."""
    commands = [f"rm {p}" for p in LOOPS if ib.exists(disk.path, disk.root_offset, p)]
    commands += [f"symlink {p} {p}" for p in LOOPS]
    commands += ["rm /etc/passwd", "symlink /etc/passwd /etc/chain1"]
    commands += [f"symlink /etc/chain{n} /etc/chain{n + 1}" for n in range(1, 41)]
    commands += ["symlink /etc/chain41 /etc/group"]
    disk.inject(commands)


def _os_release_loop(disk: ib.Disk) -> None:
    disk.inject(["rm /etc/os-release", "symlink /etc/os-release /etc/os-release"])


def _huge_sshd_config(disk: ib.Disk) -> None:
    """sshd_config claims 1 GiB (sparse: the rest reads as zeros) in a few-MiB image write."""
    disk.inject([f"set_inode_field /etc/ssh/sshd_config size {1 << 30}"])


def _terabyte_inode(disk: ib.Disk) -> None:
    disk.inject([f"set_inode_field /etc/waagent.conf size {1 << 40}"])


def _huge_dpkg_status(disk: ib.Disk) -> None:
    disk.inject([f"set_inode_field /var/lib/dpkg/status size {200 * 1000 * 1000}"])


def _corrupt_inode_blocks(disk: ib.Disk) -> None:
    """The extent headers of two files' inodes overwritten: reads fail with EIO."""
    disk.inject(["set_inode_field /etc/shadow block[0] 0xdeadbeef",
                 "set_inode_field /var/lib/dpkg/status block[0] 0xdeadbeef"])


def _sudoers_cycle(disk: ib.Disk) -> None:
    ib.put_file(disk.path, disk.root_offset, "/etc/sudoers",
                "@include /etc/sudoers\n@include /etc/sudoers\nroot ALL=(ALL) ALL\n", mode=0o440)


def _fifo_config(disk: ib.Disk) -> None:
    disk.inject(["cd /etc/ssh/sshd_config.d", "mknod fifo.conf p"])


DEBIAN_CASES: dict[str, Callable[[ib.Disk], None]] = {
    "symlink-loops": _symlink_loops, "os-release-loop": _os_release_loop,
    "huge-sshd-config": _huge_sshd_config, "terabyte-inode": _terabyte_inode,
    "huge-dpkg-status": _huge_dpkg_status, "corrupt-inode-blocks": _corrupt_inode_blocks,
    "sudoers-cycle": _sudoers_cycle, "fifo-config": _fifo_config,
}


def _rewrite_gpt(disk: Path, change: Callable[[GptHeader, bytes], tuple[GptHeader, bytes]]
                 ) -> None:
    """Rewrite the primary and the backup GPT header (and the array of the primary) with
    ``change``, CRCs recomputed: each stays a header whose checksums are right."""
    size = disk.stat().st_size
    with open(disk, "r+b") as fh:
        for lba in (1, size // SECTOR - 1):
            fh.seek(lba * SECTOR)
            header = GptHeader.unpack(fh.read(SECTOR))
            assert header is not None
            fh.seek(header.entries_lba * SECTOR)
            array = fh.read(header.num_entries * header.entry_size)
            new, new_array = change(header, array)
            if lba == 1 and new.entries_lba == header.entries_lba:
                fh.seek(new.entries_lba * SECTOR)
                fh.write(new_array[:max(0, size - new.entries_lba * SECTOR)])
            fh.seek(lba * SECTOR)
            fh.write(new.pack())


def _entry_size(size: int) -> Callable[[GptHeader, bytes], tuple[GptHeader, bytes]]:
    def change(header: GptHeader, array: bytes) -> tuple[GptHeader, bytes]:
        count = len(array) // size
        return dataclasses.replace(header, entry_size=size, num_entries=count,
                                   entries_crc=zlib.crc32(array)), array
    return change


def _array_past_end(disk_size: int) -> Callable[[GptHeader, bytes], tuple[GptHeader, bytes]]:
    def change(header: GptHeader, array: bytes) -> tuple[GptHeader, bytes]:
        lba = disk_size // SECTOR - 4  # 3 sectors before the backup header, 32 needed
        readable = array[:(disk_size - lba * SECTOR)]
        return dataclasses.replace(header, entries_lba=lba,
                                   entries_crc=zlib.crc32(readable)), array
    return change


def _same_root_everywhere(header: GptHeader, array: bytes) -> tuple[GptHeader, bytes]:
    """4096 entries, all the root partition: every one a candidate root."""
    root = array[3 * 128:4 * 128]
    many = root * 4096
    return dataclasses.replace(header, num_entries=4096, first_usable_lba=2048,
                               entries_crc=zlib.crc32(many)), many


def _gpt_case(name: str, dest: Path) -> None:
    disk = dest
    ib.clone_file(ti.gpt_image(), disk)
    size = disk.stat().st_size
    if name == "gpt-entry-size-8":
        _rewrite_gpt(disk, _entry_size(8))
    elif name == "gpt-entry-size-16":
        _rewrite_gpt(disk, _entry_size(16))
    elif name == "gpt-array-past-end":
        _rewrite_gpt(disk, _array_past_end(size))
    else:  # the root's own fstab names "/" by a PARTUUID no entry has: each copy scores 2
        root = ti.GPT_PARTS["p4"][0] * SECTOR
        ib.edit_file(disk, root, "/etc/fstab",
                     lambda t: t.replace(f"UUID={ti.ROOT_UUID}",
                                         "PARTUUID=00000000-0000-0000-0000-000000000000"))
        with open(disk, "r+b") as fh:  # only the primary: the backup stays the real table
            fh.seek(SECTOR)
            header = GptHeader.unpack(fh.read(SECTOR))
            assert header is not None
            fh.seek(header.entries_lba * SECTOR)
            new, array = _same_root_everywhere(header, fh.read(16384))
            fh.seek(new.entries_lba * SECTOR)
            fh.write(array)
            fh.seek(SECTOR)
            fh.write(new.pack())


GPT_CASES = ("gpt-entry-size-8", "gpt-entry-size-16", "gpt-array-past-end", "gpt-4096-roots")
ALL_CASES = (*DEBIAN_CASES, *GPT_CASES)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Build a hostile image by name, once per module (and worker)."""
    built: dict[str, Path] = {}
    where = tmp_path_factory.mktemp("hostile")

    def get(name: str) -> Path:
        if name not in built:
            dest = where / f"{name}.raw"
            if name in DEBIAN_CASES:
                disk = ib.compliant_copy(dest)
                DEBIAN_CASES[name](disk)
            else:
                _gpt_case(name, dest)
            built[name] = dest
        return built[name]
    return get


@pytest.mark.parametrize("name", ALL_CASES)
def test_hostile_image_is_judged_within_bounds(hostile: Callable[[str], Path], name: str):
    path = str(hostile(name))
    ending = run_bounded(lambda: check_target(path, "azure-current"), seconds=BOUND_SECONDS,
                         memory=BOUND_MEMORY)
    assert ending.ok, ending


#: For each Debian case: a file whose fact the rules needed, which must now be named in a
#: skipped rule's reason (the checks never pass or fail on what they could not read).
SKIPPED_FOR = {
    "symlink-loops": ("/etc/shadow", "/etc/sudoers", "/etc/waagent.conf",
                      "/etc/network/interfaces"),
    "huge-sshd-config": ("/etc/ssh/sshd_config",),
    "terabyte-inode": ("/etc/waagent.conf",),
    "huge-dpkg-status": ("/var/lib/dpkg/status",),
    "corrupt-inode-blocks": ("/etc/shadow", "/var/lib/dpkg/status"),
    "sudoers-cycle": ("/etc/sudoers",),
    "fifo-config": ("/etc/ssh/sshd_config.d/fifo.conf",),
}


@pytest.mark.parametrize("name", sorted(SKIPPED_FOR))
def test_unreadable_content_skips_the_rules_that_need_it(hostile: Callable[[str], Path],
                                                          name: str):
    report = check_target(str(hostile(name)), "azure-current")
    skipped = " | ".join(f.message for f in report.findings if f.status is Status.SKIP)
    for path in SKIPPED_FOR[name]:
        assert path in skipped, (path, skipped)


def test_symlink_loops_and_long_chains_are_the_typed_error(hostile: Callable[[str], Path]):
    with ImageTarget(hostile("symlink-loops")) as target:
        for path in (*LOOPS, "/etc/passwd"):  # /etc/passwd: a chain of 41 links
            with pytest.raises(UnreadableError, match="too many levels") as caught:
                target.read_text(path)
            assert caught.value.errno == 40 and str(caught.value).startswith(path)
        assert target.read_text("/etc/chain2") == target.read_text("/etc/group")  # 40 links


def test_os_release_loop_is_refused_in_one_line(hostile: Callable[[str], Path]):
    with pytest.raises(VmimageError, match="/etc/os-release: too many levels of symbolic"):
        check_target(str(hostile("os-release-loop")), "azure-current")


@pytest.mark.parametrize("name", GPT_CASES[:3])
def test_gpt_with_bad_sizes_is_ignored_with_a_note(hostile: Callable[[str], Path], name: str):
    with ImageTarget(hostile(name)) as target:
        layout = target.layout()
    assert layout.scheme == "none" and layout.partitions == ()
    assert any("GPT header at LBA 1 ignored" in note for note in layout.notes), layout.notes


def test_gpt_with_4096_copies_of_the_root_opens_in_bounded_time(hostile: Callable[[str], Path]):
    started = time.monotonic()
    with ImageTarget(hostile("gpt-4096-roots")) as target:
        assert target.root_partition is not None
        assert len(target.layout().partitions) == 4096
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("name", ALL_CASES)
def test_cli_on_hostile_image_exits_cleanly(hostile: Callable[[str], Path], name: str):
    proc = subprocess.run([sys.executable, "-m", "vmimage", "check", str(hostile(name))],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=120, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode in (0, 1, 2), (proc.returncode, proc.stderr[-2000:])
    if proc.returncode == 2:
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("vmimage: ")
    else:
        assert "passed" in proc.stdout and "failed" in proc.stdout
