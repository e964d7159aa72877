"""Real Debian 12 disk images for the tests, built with the tools that build them in the wild.

Three cached layers, each built once under a file lock (pytest-xdist runs a session fixture in
every worker) and keyed so that a change rebuilds it:

1. ``root_tarball()``: a Debian 12 root made by ``mmdebstrap --variant=minbase`` with the
   kernel, sshd, the Azure agent (``waagent``), ifupdown, iptables, GRUB and friends, kept as a
   zstd tarball. Keyed by the package list. The mirror is read from apt's own sources at run
   time; the ``-updates`` and ``-security`` suites are used when they answer.
2. ``compliant_tree()``: that root extracted and put through ``make_compliant``: every Linux
   rule of the guide and of today's certification (waagent.conf, sshd, kernel command line,
   no host keys, no history, no resolv.conf, ...). Keyed by the root and by this file's text.
3. ``compliant_disk()``: a 30 GiB sparse raw disk, MBR, one ext4 root partition at 1 MiB,
   written with ``sfdisk`` and ``mkfs.ext4 -d``. Read-only: take a copy with
   ``compliant_copy()`` and change the copy (``inject()`` runs ``debugfs -w`` on it).

The cache lives in ``${VMIMAGE_CACHE:-~/.cache/vmimage}``. When that directory cannot share
blocks between files, the cached trees and disks go into an XFS filesystem in a sparse file
there (``pool.img``, loop-mounted on ``pool/``) so that a copy of a disk or a tree is a reflink:
2 ms instead of 3 s for the 800 MB a Debian root holds. ``VMIMAGE_REFLINK=0`` turns the pool
off (copies are then sparse copies), ``python3 -m tests.imagebuild clean`` unmounts and deletes
everything.

``build_disk()`` makes the other layouts (GPT, XFS root, separate ``/boot``, swap partitions,
LVM, BIOS-boot and EFI system partitions); ``to_vhd()`` converts to a fixed VHD. Every builder
returns a ``Disk``: the path and a ``Layout`` naming every partition and filesystem with its
byte offset and UUID.

Command line (``python3 -m tests.imagebuild --help``): ``root``, ``tree``, ``disk``, ``sample``,
``clean``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
SECTOR = 512

SUITE = "bookworm"
# What the compliant image needs (the guide's LNX-* rules and today's tests), plus GRUB's
# tools and modules so that a test can make real boot code.
PACKAGES: tuple[str, ...] = (
    "linux-image-amd64", "initramfs-tools", "openssh-server", "systemd-sysv", "udev",
    "ifupdown", "isc-dhcp-client", "iproute2", "netbase", "kmod", "dbus", "python3",
    "python3-pyasn1", "openssl", "iptables", "sudo", "waagent", "hyperv-daemons", "eject",
    "grub2-common", "grub-pc-bin", "grub-efi-amd64-bin",
)
#: The second image's: the same with cloud-init, which provisions it as Azure's own Debian
#: images are provisioned (``vm boot --provision``'s cloud-init test).
CLOUD_INIT_PACKAGES: tuple[str, ...] = (*PACKAGES, "cloud-init")
ROOT_FORMAT = 1  # bump to rebuild every cached root tarball

# Fixed identifiers, so that fstab and grub.cfg can be written before the filesystems exist.
_NAMESPACE = uuid.UUID("0b7a6c52-31d4-4d8e-9a0e-6f1d2c3b4a59")


def fixed_uuid(name: str) -> str:
    """A UUID derived from ``name``: the same in every build."""
    return str(uuid.uuid5(_NAMESPACE, name))


ROOT_UUID = fixed_uuid("root")
BOOT_UUID = fixed_uuid("boot")
SWAP_UUID = fixed_uuid("swap")
ESP_VOLUME_ID = "7E1F00D5"  # vfat serial; blkid and fstab write it as 7E1F-00D5
ESP_UUID = f"{ESP_VOLUME_ID[:4]}-{ESP_VOLUME_ID[4:]}"
MBR_DISK_ID = "0x5f3a9c21"
GPT_DISK_ID = fixed_uuid("gpt-disk").upper()
VG_NAME = "debian-vg"  # what the Debian installer calls it, for a host named "debian"

GRUB_CMDLINE_LINUX = "console=ttyS0 earlyprintk=ttyS0 rootdelay=300"
# net.ifnames=0 makes the NIC eth0, the name /etc/network/interfaces uses; normal entries only.
GRUB_CMDLINE_LINUX_DEFAULT = "quiet net.ifnames=0"

WAAGENT_SETTINGS = {
    "Provisioning.Agent": "auto",  # Debian ships "cloud-init", which this image does not have
    "Provisioning.RegenerateSshHostKeyPair": "y",
    "Provisioning.DeleteRootPassword": "y",
    "ResourceDisk.Format": "y",
    "ResourceDisk.EnableSwap": "n",
    "AutoUpdate.Enabled": "y",
}

# sfdisk partition types: (MBR, GPT)
_PART_TYPES: dict[str, tuple[str | None, str]] = {
    "bios_boot": (None, "21686148-6449-6E6F-744E-656564454649"),
    "esp": ("ef", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
    "boot": ("83", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
    "root": ("83", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
    "lvm": ("8e", "E6D6D379-F507-44C2-A23C-238F2A3DF928"),
    "swap": ("82", "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"),
}
_PART_SIZES = {"bios_boot": 1 * MiB, "esp": 128 * MiB, "boot": 256 * MiB, "swap": 256 * MiB}
_PART_NAMES = {"bios_boot": "BIOS boot", "esp": "EFI System", "boot": "boot", "root": "root",
               "lvm": "lvm", "swap": "swap"}

FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


class ImageBuildError(RuntimeError):
    """A tool failed while building an image."""


# --------------------------------------------------------------------------------------------
# Layout description


@dataclass(frozen=True)
class Partition:
    """One partition-table entry."""

    number: int
    role: str  # "bios_boot", "esp", "boot", "root", "lvm" or "swap"
    start: int  # bytes from the start of the disk
    size: int  # bytes
    type: str  # as sfdisk prints it: "83" on MBR, a type GUID on GPT
    uuid: str | None = None  # GPT partition UUID (PARTUUID); None on MBR


@dataclass(frozen=True)
class Volume:
    """A filesystem or swap area, in a partition or in a logical volume."""

    role: str  # "root", "boot", "efi" or "swap"
    fs: str  # "ext4", "xfs", "vfat" or "swap"
    offset: int  # bytes from the start of the disk to the filesystem's first byte
    size: int
    uuid: str  # as blkid prints it
    partition: int  # the partition holding it (for a logical volume: the PV's partition)
    lv: str | None = None  # "vg/lv" when it is a logical volume
    fstab_spec: str | None = None  # how /etc/fstab names it; None when fstab does not


@dataclass(frozen=True)
class LogicalVolume:
    """A linear logical volume, one segment on the one PV."""

    name: str
    uuid: str
    first_extent: int
    extents: int
    offset: int  # bytes from the start of the disk
    size: int


@dataclass(frozen=True)
class Lvm:
    """The volume group on the disk's LVM partition, as lvm2 reports it."""

    vg: str
    vg_uuid: str
    pv_uuid: str
    partition: int
    pe_start: int  # bytes from the start of the partition to extent 0
    extent_size: int
    lvs: tuple[LogicalVolume, ...]


@dataclass(frozen=True)
class Layout:
    """What a built disk holds and where."""

    label: str  # "dos" or "gpt"
    size: int  # virtual size in bytes (a VHD adds its 512-byte footer)
    disk_id: str  # MBR disk signature ("0x...") or GPT disk GUID
    kernel: str  # e.g. "6.1.0-28-amd64"
    partitions: tuple[Partition, ...]
    volumes: tuple[Volume, ...]
    lvm: Lvm | None = None

    def volume(self, role: str) -> Volume | None:
        """The volume with this role ("root", "boot", "efi", "swap"), if any."""
        return next((v for v in self.volumes if v.role == role), None)

    def partition(self, role: str) -> Partition | None:
        """The first partition with this role, if any."""
        return next((p for p in self.partitions if p.role == role), None)

    @property
    def root(self) -> Volume:
        """The root filesystem."""
        vol = self.volume("root")
        assert vol is not None
        return vol

    @property
    def boot_volume(self) -> Volume:
        """The filesystem holding /boot: the separate /boot, else the root."""
        return self.volume("boot") or self.root

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        """The inverse of ``to_dict``."""
        lvm = data.get("lvm")
        return cls(
            label=data["label"], size=data["size"], disk_id=data["disk_id"],
            kernel=data["kernel"],
            partitions=tuple(Partition(**p) for p in data["partitions"]),
            volumes=tuple(Volume(**v) for v in data["volumes"]),
            lvm=None if lvm is None else Lvm(
                **{**lvm, "lvs": tuple(LogicalVolume(**lv) for lv in lvm["lvs"])}),
        )


class Disk(NamedTuple):
    """A built disk image: ``path, layout = build_disk(...)`` works too."""

    path: Path
    layout: Layout

    @property
    def root_offset(self) -> int:
        """Byte offset of the root filesystem (what ``inject`` needs)."""
        return self.layout.root.offset

    def inject(self, commands: Sequence[str], role: str = "root") -> str:
        """``inject()`` on the filesystem with this role (an ext4 one)."""
        vol = self.layout.volume(role)
        if vol is None:
            raise ImageBuildError(f"{self.path}: no {role} volume")
        return inject(self.path, vol.offset, commands)


# --------------------------------------------------------------------------------------------
# Small helpers


def cache_dir() -> Path:
    """``$VMIMAGE_CACHE``, else ``~/.cache/vmimage``; created if missing."""
    env = os.environ.get("VMIMAGE_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "vmimage"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(cmd: Sequence[str | os.PathLike[str]], *, input: bytes | None = None,
        env: dict[str, str] | None = None, check: bool = True,
        timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a tool with no standard input (unless ``input``), capture its output.

    Raises ``ImageBuildError`` with the tool's stderr when it fails and ``check`` is true.
    """
    args = [os.fspath(c) for c in cmd]
    full_env = {**os.environ, "LC_ALL": "C", "LVM_SUPPRESS_FD_WARNINGS": "1", **(env or {})}
    proc = _run_with_heartbeat(args, full_env, timeout, input)
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-4000:]
        raise ImageBuildError(f"{' '.join(args)} exited {proc.returncode}: {err}")
    return proc


#: Seconds between "still running" lines for a long tool (mmdebstrap takes about 90 s), so a
#: CI log shows the sample build going on; VMIMAGE_PROGRESS_INTERVAL as for vmimage itself.
HEARTBEAT = float(os.environ.get("VMIMAGE_PROGRESS_INTERVAL", "10") or 10)


def _run_with_heartbeat(args: list[str], env: dict[str, str], timeout: float | None,
                        data: bytes | None) -> subprocess.CompletedProcess[bytes]:
    """``subprocess.run`` with output captured, and a line on stderr every ``HEARTBEAT``
    seconds while the tool runs."""
    start = time.monotonic()
    with subprocess.Popen(args, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        pending = data
        while True:
            left = None if timeout is None else timeout - (time.monotonic() - start)
            if left is not None and left <= 0:
                proc.kill()
                proc.communicate()
                raise subprocess.TimeoutExpired(args, timeout or 0)
            wait = HEARTBEAT if left is None else min(HEARTBEAT, left)
            try:
                out, err = proc.communicate(pending, timeout=max(wait, 0.1))
                break
            except subprocess.TimeoutExpired:
                pending = None  # communicate() keeps feeding input it already started on
                _log(f"still running {os.path.basename(args[0])} "
                     f"({time.monotonic() - start:.0f} s)")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<cache>/locks/<name>.lock`` (other processes wait)."""
    path = cache_dir() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _log(message: str) -> None:
    if os.environ.get("VMIMAGE_BUILD_QUIET") != "1":
        print(f"imagebuild: {message}", file=sys.stderr, flush=True)


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        run(["rm", "-rf", "--one-file-system", path])


def sparse_copy(src: Path, dst: Path, *, dst_offset: int = 0, truncate: bool = True) -> int:
    """Copy the data regions of ``src`` into ``dst`` at ``dst_offset``; holes stay holes.

    The destination range must already read as zeros (a fresh sparse file does). With
    ``truncate`` a new ``dst`` gets the length of ``src``. Returns the bytes copied.
    """
    copied = 0
    flags = os.O_WRONLY | os.O_CREAT
    with contextlib.ExitStack() as stack:
        fi = os.open(src, os.O_RDONLY)
        stack.callback(os.close, fi)
        fo = os.open(dst, flags, 0o644)
        stack.callback(os.close, fo)
        size = os.fstat(fi).st_size
        if truncate and os.fstat(fo).st_size < dst_offset + size:
            os.ftruncate(fo, dst_offset + size)
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fi, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                raise
            hole = min(os.lseek(fi, data, os.SEEK_HOLE), size)
            _copy_range(fi, fo, data, dst_offset + data, hole - data)
            copied += hole - data
            pos = hole
    return copied


def _copy_range(fi: int, fo: int, src_pos: int, dst_pos: int, length: int) -> None:
    while length > 0:
        try:
            n = os.copy_file_range(fi, fo, min(length, 1 << 30), src_pos, dst_pos)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            n = 0
        if n <= 0:  # no copy_file_range here: plain reads and writes
            chunk = os.pread(fi, min(length, 8 * MiB), src_pos)
            if not chunk:
                raise ImageBuildError("unexpected end of file while copying")
            n = os.pwrite(fo, chunk, dst_pos)
        src_pos += n
        dst_pos += n
        length -= n


def clone_file(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst``: a reflink (``FICLONE``) where the filesystem can, else sparse.

    Returns ``"reflink"`` or ``"sparse"``. ``dst`` is replaced if it exists.
    """
    dst.unlink(missing_ok=True)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        try:
            fcntl.ioctl(fo.fileno(), FICLONE, fi.fileno())
            return "reflink"
        except OSError:
            pass
    sparse_copy(src, dst)
    return "sparse"


def _supports_reflink(directory: Path) -> bool:
    with tempfile.TemporaryDirectory(dir=directory, prefix=".reflink-probe-") as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        a.write_bytes(b"x" * 4096)
        try:
            clone = clone_file(a, b)
        except OSError:
            return False
        return clone == "reflink"


# --------------------------------------------------------------------------------------------
# The store: where cached trees, disks and scratch copies live (reflink-capable if possible)

_STORE: Path | None = None


def store_dir() -> Path:
    """The directory holding cached trees and disks and the scratch copies.

    The cache directory itself when it can reflink; else the XFS pool mounted on
    ``<cache>/pool`` (created on first use); else ``<cache>/store`` with plain copies.
    """
    global _STORE
    if _STORE is not None:
        return _STORE
    base = cache_dir()
    with locked("store"):
        _STORE = _choose_store(base)
    return _STORE


def _choose_store(base: Path) -> Path:
    plain = base / "store"
    if os.environ.get("VMIMAGE_REFLINK", "1") == "0":
        plain.mkdir(exist_ok=True)
        return plain
    mnt = base / "pool"
    if os.path.ismount(mnt):
        return mnt
    if _supports_reflink(base):
        plain.mkdir(exist_ok=True)
        return plain
    image = base / "pool.img"
    for attempt in (1, 2):
        try:
            if not image.exists():
                tmp = image.with_suffix(".tmp")
                tmp.unlink(missing_ok=True)
                with open(tmp, "wb") as fh:
                    fh.truncate(256 * GiB)
                run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", "-L", "vmimagepool", tmp])
                tmp.rename(image)
            mnt.mkdir(exist_ok=True)
            run(["mount", "-o", "loop,discard,noatime", image, mnt])
            _log(f"reflink pool mounted on {mnt}")
            return mnt
        except (ImageBuildError, OSError) as exc:
            _log(f"no reflink pool ({exc}); plain copies")
            if attempt == 1 and image.exists():
                image.unlink()  # perhaps damaged: make a new one once
                continue
    plain.mkdir(exist_ok=True)
    return plain


_SCRATCH: Path | None = None


def scratch_dir() -> Path:
    """A directory for this process's copies, next to the cache (so copies are reflinks).

    Removed by ``clean``; directories of processes that no longer run are removed here.
    """
    global _SCRATCH
    if _SCRATCH is not None and _SCRATCH.is_dir():
        return _SCRATCH
    parent = store_dir() / "scratch"
    parent.mkdir(exist_ok=True)
    for old in parent.iterdir():
        pid = old.name.split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _rmtree(old)
    _SCRATCH = Path(tempfile.mkdtemp(dir=parent, prefix=f"{os.getpid()}-"))
    return _SCRATCH


# --------------------------------------------------------------------------------------------
# 1. The Debian root


def apt_sources(root: Path = Path("/")) -> list[tuple[str, tuple[str, ...]]]:
    """``(URI, suites)`` of every ``deb`` source apt is configured with, deb822 files first."""
    entries: list[tuple[str, tuple[str, ...]]] = []
    etc = root / "etc/apt"
    for file in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n[ \t]*\n", file.read_text(errors="replace")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                m = re.match(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$", line)
                if m and not line.startswith("#"):
                    fields[m[1].lower()] = m[2].strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            suites = tuple(fields.get("suites", "").split())
            entries += [(uri.rstrip("/"), suites) for uri in fields.get("uris", "").split()]
    lists = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for file in lists:
        if not file.is_file():
            continue
        for line in file.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                entries.append((words[1].rstrip("/"), (words[2],)))
    return entries


def mirrors() -> tuple[str, str | None]:
    """The Debian mirror and the security mirror apt uses here (``VMIMAGE_MIRROR``,
    ``VMIMAGE_SECURITY_MIRROR`` override them)."""
    sources = apt_sources()
    main = os.environ.get("VMIMAGE_MIRROR") or next(
        (uri for uri, suites in sources
         if not suites or not all(s.endswith("-security") for s in suites)), None)
    if not main:
        raise ImageBuildError("no Debian mirror in apt's sources; set VMIMAGE_MIRROR")
    security = os.environ.get("VMIMAGE_SECURITY_MIRROR") or next(
        (uri for uri, suites in sources if any(s.endswith("-security") for s in suites)), None)
    if security is None and main.endswith("/debian"):
        security = main + "-security"
    return main.rstrip("/"), security.rstrip("/") if security else None


def _suite_reachable(uri: str, suite: str) -> bool:
    if uri.startswith("file:"):
        return (Path(urllib.parse.urlparse(uri).path) / "dists" / suite).is_dir()
    if not uri.startswith(("http:", "https:")):
        return True  # let apt try
    for name in ("InRelease", "Release"):
        req = urllib.request.Request(f"{uri}/dists/{suite}/{name}", method="HEAD")
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError, ValueError):
            continue
    return False


def root_key(packages: Sequence[str] = PACKAGES) -> str:
    """Cache key of the root tarball: the suite, variant and package list."""
    spec = {"suite": SUITE, "variant": "minbase", "packages": sorted(packages),
            "format": ROOT_FORMAT}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def root_tarball(packages: Sequence[str] = PACKAGES) -> Path:
    """The cached Debian root tarball of ``packages``; built (about 90 s, needs the mirror)
    when missing."""
    key = root_key(packages)
    path = cache_dir() / "roots" / f"debian12-{key}.tar.zst"
    if path.exists():
        return path
    with locked(f"root-{key}"):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            build_root_tarball(path, packages)
    return path


def build_root_tarball(out: Path, packages: Sequence[str] = PACKAGES) -> dict[str, Any]:
    """Run mmdebstrap into ``out`` (a ``.tar.zst``); write ``out.json`` with what was used."""
    if os.environ.get("VMIMAGE_MIRROR") or any(
            s.startswith(SUITE) for _, host_suites in apt_sources() for s in host_suites):
        main, security = mirrors()
        sources = [f"deb {main} {SUITE} main"]
        suites = [SUITE]
        extra = [(f"{SUITE}-updates", main), (f"{SUITE}-security", security)]
        for suite, uri in extra:
            if uri and _suite_reachable(uri, suite):
                sources.append(f"deb {uri} {suite} main")
                suites.append(suite)
            else:
                _log(f"{suite} not reachable: left out")
    else:  # not a Debian 12 host (Ubuntu): mmdebstrap's own default mirrors and keyring
        sources = []
        suites = [SUITE, f"{SUITE}-updates", f"{SUITE}-security"]
    tmpdir = cache_dir() / "tmp"
    tmpdir.mkdir(exist_ok=True)
    partial = out.with_name(f".{out.stem}.{os.getpid()}.tar.zst")  # mmdebstrap wants .tar.zst
    cmd: list[str | os.PathLike[str]] = [
        "mmdebstrap", "--mode=root", "--variant=minbase", "--format=tar",
        "--include=" + ",".join(packages),
        '--aptopt=Acquire::Retries "3"', '--aptopt=Acquire::Languages "none"',
    ]
    hook = Path("/usr/share/mmdebstrap/hooks/eatmydata")
    if hook.is_dir():
        cmd.append(f"--hook-dir={hook}")
    cmd += [SUITE, partial, *sources]
    _log(f"building the Debian root ({', '.join(suites)}): about 90 s")
    start = time.monotonic()
    try:
        run(cmd, env={"TMPDIR": str(tmpdir), "ZSTD_NBTHREADS": "0"}, timeout=1800)
        partial.rename(out)
    finally:
        partial.unlink(missing_ok=True)
    manifest = {"packages": list(packages), "suites": suites, "key": root_key(packages),
                "seconds": round(time.monotonic() - start, 1), "bytes": out.stat().st_size,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(f"{out}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    _log(f"root tarball built in {manifest['seconds']} s: {out}")
    return manifest


def extract_root(tarball: Path, dest: Path) -> Path:
    """Extract a root tarball into ``dest`` (created; must not exist), owners and xattrs kept."""
    dest.mkdir(parents=True)
    run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--zstd", "-x",
         "-f", tarball, "-C", dest])
    return dest


# --------------------------------------------------------------------------------------------
# 2. Compliance


def kernel_version(tree: Path) -> str:
    """The newest kernel in ``tree/boot`` (``6.1.0-28-amd64`` for ``vmlinuz-6.1.0-28-amd64``)."""
    versions = [p.name[len("vmlinuz-"):] for p in (tree / "boot").glob("vmlinuz-*")]
    if not versions:
        raise ImageBuildError(f"{tree}: no /boot/vmlinuz-*")

    def order(v: str) -> list[tuple[int, str]]:
        return [(int(x), "") if x.isdigit() else (-1, x) for x in re.split(r"[.-]", v)]

    return max(versions, key=order)


def _replace(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write a file by replacing it (never writes through a hard link into a cached tree)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    raw = data.encode() if isinstance(data, str) else data
    path.write_bytes(raw)
    path.chmod(mode)


def _set_conf(text: str, settings: dict[str, str], sep: str = "=") -> str:
    """Set ``key<sep>value`` lines, replacing an existing or commented-out line in place."""
    lines = text.splitlines()
    for key, value in settings.items():
        pattern = re.compile(rf"^\s*#?\s*{re.escape(key)}(\s*=|\s)")
        wanted = f"{key}{sep}{value}"
        idx = next((i for i, line in enumerate(lines) if pattern.match(line)), None)
        if idx is None:
            lines.append(wanted)
        else:
            lines[idx] = wanted
            lines[idx + 1:] = [ln for ln in lines[idx + 1:] if not pattern.match(ln)
                               or ln.lstrip().startswith("#")]
    return "\n".join(lines) + "\n"


#: Host keys made at boot when the image has none (a generalized image), before sshd starts.
SSH_HOSTKEYS_UNIT = """[Unit]
Description=Generate the SSH host keys a generalized image lacks
Before=ssh.service
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""


def enable_units(tree: Path, *units: str) -> None:
    """Enable ``units`` in ``tree`` the way ``systemctl enable`` does (the host's systemctl
    with ``--root``, or the tree's own in a chroot)."""
    if shutil.which("systemctl"):
        run(["systemctl", f"--root={tree}", "enable", *units])
    else:
        run(["chroot", tree, "systemctl", "enable", *units])


def make_compliant(tree: Path, layout: Layout | None = None) -> None:
    """Make an extracted Debian root meet every Linux rule of the guide and of today's tests.

    ``layout`` decides /etc/fstab and /boot/grub/grub.cfg (default: the layout of
    ``compliant_disk()``: MBR, one ext4 root with ``ROOT_UUID``). Idempotent; never writes
    through a hard link.
    """
    etc = tree / "etc"
    # The Azure agent (LNX-AGENT, LNX-SSH-HOSTKEYS, LNX-ROOT-PASSWORD, LNX-SWAP, test 51).
    conf = etc / "waagent.conf"
    if not conf.is_file():
        raise ImageBuildError(f"{tree}: no /etc/waagent.conf: is waagent installed?")
    _replace(conf, _set_conf(conf.read_text(), WAAGENT_SETTINGS))
    # sshd (LNX-SSH): ClientAliveInterval 180 in the main file, no drop-in overriding it.
    sshd = etc / "ssh/sshd_config"
    _replace(sshd, _set_conf(sshd.read_text(), {"ClientAliveInterval": "180"}, sep=" "))
    for dropin in (etc / "ssh/sshd_config.d").glob("*.conf"):
        if re.search(r"(?im)^\s*ClientAliveInterval", dropin.read_text()):
            dropin.unlink()
    for key in etc.glob("ssh/ssh_host_*"):  # LNX-SSH-HOSTKEYS
        key.unlink()
    # ... and made again at first boot before sshd starts: Debian's ssh.service fails without
    # host keys, and waagent 2.7.3 regenerates them only after multi-user.target, then runs
    # `systemctl try-reload-or-restart ssh`, which does not start a failed unit (seen by
    # `vm boot --provision`: Ready, but no SSH). Fedora's sshd-keygen does the same.
    (etc / "systemd/system/ssh-hostkeys.service").write_text(SSH_HOSTKEYS_UNIT)
    # Services enabled the way `systemctl enable` does it.
    enable_units(tree, "ssh.service", "ssh-hostkeys.service", "walinuxagent.service",
                 "networking.service")
    # Networking (LNX-NM, LNX-IFUPDOWN, LNX-DHCP, LNX-NET-CUSTOM, LNX-GENERALIZED).
    for nm in ("NetworkManager", "systemd/system/multi-user.target.wants/NetworkManager.service"):
        if (etc / nm).exists() or (etc / nm).is_symlink():
            _rmtree(etc / nm)
    _replace(etc / "network/interfaces",
             "# interfaces(5) file used by ifup(8) and ifdown(8)\n"
             "# Include files from /etc/network/interfaces.d:\n"
             "source /etc/network/interfaces.d/*\n\n"
             "# The loopback network interface\nauto lo\niface lo inet loopback\n\n"
             "# The primary network interface\nauto eth0\niface eth0 inet dhcp\n")
    for path in [etc / "resolv.conf", *(tree / "var/lib/dhcp").glob("*.lease*"),
                 *(tree / "var/lib/dhclient").glob("*"),
                 etc / "udev/rules.d/70-persistent-net.rules",
                 tree / "usr/lib/udev/rules.d/75-persistent-net-generator.rules",
                 etc / "udev/rules.d/75-persistent-net-generator.rules"]:
        if path.is_symlink() or path.exists():
            _rmtree(path)
    _replace(etc / "hostname", "localhost.localdomain\n")
    _replace(etc / "hosts",
             "127.0.0.1\tlocalhost localhost.localdomain\n"
             "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
             "ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n")
    # Accounts (LNX-ROOT-PASSWORD, LNX-DEFAULT-ACCOUNTS, LISA's pre-existing users).
    shadow = etc / "shadow"
    rows = []
    for line in shadow.read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 1 and not fields[1].startswith(("*", "!")):
            fields[1] = "*"  # locked: no password login for root or anyone
        rows.append(":".join(fields))
    _replace(shadow, "\n".join(rows) + "\n", 0o640)
    homes = [tree / "root", *[p for p in (tree / "home").glob("*") if p.is_dir()]]
    for home in homes:
        for name in (".bash_history", ".zsh_history", ".sh_history", ".history",
                     ".ksh_history", ".python_history", ".lesshst", ".viminfo"):
            if (home / name).exists() or (home / name).is_symlink():
                (home / name).unlink()
        for name in ("authorized_keys", "authorized_keys2", "known_hosts", "known_hosts.old"):
            if (home / ".ssh" / name).exists():
                (home / ".ssh" / name).unlink()
    # sudo without `Defaults targetpw`; iptables installed, no saved rules.
    sudoers = etc / "sudoers"
    text = sudoers.read_text()
    if re.search(r"(?m)^\s*Defaults\s+.*targetpw", text):
        _replace(sudoers, re.sub(r"(?m)^(\s*Defaults\s+.*targetpw.*)$", r"# \1", text), 0o440)
    for rules in ("iptables/rules.v4", "iptables/rules.v6", "sysconfig/iptables"):
        (etc / rules).unlink(missing_ok=True)
    # No swap anywhere (LNX-SWAP): no swap file, no .swap unit.
    for unit in list(etc.glob("systemd/system/*.swap")) + list(
            etc.glob("systemd/system/*/*.swap")):
        unit.unlink()
    for swapfile in ("swapfile", "swap.img"):
        (tree / swapfile).unlink(missing_ok=True)
    # What waagent -deprovision and a careful publisher leave behind: nothing.
    _replace(etc / "machine-id", "", 0o444)
    dbus_id = tree / "var/lib/dbus/machine-id"
    if dbus_id.exists() and not dbus_id.is_symlink():
        dbus_id.unlink()
    for sub in ("var/lib/waagent", "var/lib/cloud", "tmp", "var/tmp"):
        d = tree / sub
        if d.is_dir():
            for child in d.iterdir():
                _rmtree(child)
    for log in (tree / "var/log").rglob("*"):
        if log.is_file() and not log.is_symlink() and log.stat().st_size:
            _replace(log, b"", log.stat().st_mode & 0o7777)
    for f in (tree / "var/log/apt").glob("*"):
        f.unlink()
    configure_boot(tree, layout or plan_layout(kernel=kernel_version(tree)))


#: cloud-init as Azure's images configure it: only the Azure datasource (ds-identify then
#: needs the chassis asset tag, which Azure's hypervisor and ``vm boot --provision`` set), and
#: the network left to the image's own ifupdown (eth0 by DHCP, as the LNX-* rules want it).
CLOUD_INIT_CONFIG = {
    "90_dpkg.cfg": "# vmimage test image: Azure only\ndatasource_list: [ Azure ]\n",
    "99-network.cfg": "# eth0 is configured by /etc/network/interfaces (DHCP)\n"
                      "network: {config: disabled}\n",
}
CLOUD_INIT_UNITS = ("cloud-init-local.service", "cloud-init.service", "cloud-config.service",
                    "cloud-final.service")


def make_cloud_init(tree: Path) -> None:
    """Let cloud-init provision a compliant tree: the Azure datasource only, its units enabled
    (``Provisioning.Agent=auto`` in waagent.conf then hands provisioning to it), no state."""
    cfg = tree / "etc/cloud/cloud.cfg.d"
    if not (tree / "etc/cloud/cloud.cfg").is_file():
        raise ImageBuildError(f"{tree}: no /etc/cloud/cloud.cfg: is cloud-init installed?")
    for name, text in CLOUD_INIT_CONFIG.items():
        _replace(cfg / name, text)
    enable_units(tree, *CLOUD_INIT_UNITS)
    for child in (tree / "var/lib/cloud").glob("*"):
        _rmtree(child)


def _mapper_name(vg: str, lv: str) -> str:
    return f"/dev/mapper/{vg.replace('-', '--')}-{lv.replace('-', '--')}"


def configure_boot(tree: Path, layout: Layout) -> None:
    """Write /etc/fstab, /etc/default/grub and /boot/grub/grub.cfg for ``layout``.

    grub.cfg is what ``grub-mkconfig`` writes on Debian 12 for that layout; the kernel command
    line is ``GRUB_CMDLINE_LINUX`` (plus ``GRUB_CMDLINE_LINUX_DEFAULT`` on normal entries).
    """
    etc = tree / "etc"
    rows = []
    for vol in layout.volumes:
        if vol.fstab_spec is None:
            continue
        mount, opts, passno = {
            "root": ("/", "errors=remount-ro" if vol.fs == "ext4" else "defaults",
                     1 if vol.fs == "ext4" else 0),
            "boot": ("/boot", "defaults", 2),
            "efi": ("/boot/efi", "umask=0077", 1),
            "swap": ("none", "sw", 0),
        }[vol.role]
        comment = f"# {mount} was on {vol.lv or 'partition ' + str(vol.partition)} during build"
        rows.append(f"{comment}\n{vol.fstab_spec:<41} {mount:<15} {vol.fs:<7} "
                    f"{opts:<15} 0       {passno}")
    _replace(etc / "fstab",
             "# /etc/fstab: static file system information.\n#\n"
             "# Use 'blkid' to print the universally unique identifier for a\n"
             "# device; this may be used with UUID= as a more robust way to name devices\n"
             "# that works even if disks are added and removed. See fstab(5).\n#\n"
             "# systemd generates mount units based on this file, see systemd.mount(5).\n"
             "# Please run 'systemctl daemon-reload' after you make changes here.\n#\n"
             "# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n"
             + "\n".join(rows) + "\n")
    _replace(etc / "default/grub",
             "# If you change this file, run 'update-grub' afterwards to update\n"
             "# /boot/grub/grub.cfg.\n# For full documentation of the options in this file, "
             "see:\n#   info -f grub -n 'Simple configuration'\n\n"
             "GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\n"
             "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
             f'GRUB_CMDLINE_LINUX_DEFAULT="{GRUB_CMDLINE_LINUX_DEFAULT}"\n'
             f'GRUB_CMDLINE_LINUX="{GRUB_CMDLINE_LINUX}"\n\n'
             "# Serial console for the Azure portal's boot diagnostics\n"
             'GRUB_TERMINAL="console serial"\n'
             'GRUB_SERIAL_COMMAND="serial --speed=115200"\n')
    _replace(tree / "boot/grub/grub.cfg", grub_cfg(layout), 0o444)
    grubenv = tree / "boot/grub/grubenv"
    if not grubenv.exists():
        head = b"# GRUB Environment Block\n# WARNING: Do not edit this file by tools other " \
               b"than grub-editenv!!!\n"
        _replace(grubenv, head + b"#" * (1024 - len(head)))


def grub_cfg(layout: Layout) -> str:
    """The grub.cfg ``grub-mkconfig`` (Debian 12, GRUB 2.06) writes for ``layout``."""
    root, bootvol = layout.root, layout.boot_volume
    kver = layout.kernel
    rel = "" if layout.volume("boot") else "/boot"
    if root.lv and root.fstab_spec and root.fstab_spec.startswith("/dev/mapper/"):
        root_dev = root.fstab_spec  # grub-mkconfig names an LV root by its device
    else:
        root_dev = f"UUID={root.uuid}"
    mods = [f"part_{'gpt' if layout.label == 'gpt' else 'msdos'}"]
    if bootvol.lv:
        mods.append("lvm")
    mods.append({"ext4": "ext2", "xfs": "xfs"}[bootvol.fs])
    cls = "--class debian --class gnu-linux --class gnu --class os $menuentry_id_option"

    def entry(title: str, ident: str, args: str, indent: str) -> str:
        body = [
            "load_video", "insmod gzio",
            "if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi",
            *[f"insmod {m}" for m in mods],
            f"search --no-floppy --fs-uuid --set=root {bootvol.uuid}",
            f"echo\t'Loading Linux {kver} ...'",
            f"linux\t{rel}/vmlinuz-{kver} root={root_dev} ro {args}",
            "echo\t'Loading initial ramdisk ...'",
            f"initrd\t{rel}/initrd.img-{kver}",
        ]
        inner = "".join(f"{indent}\t{line}\n" for line in body)
        return f"{indent}menuentry '{title}' {cls} '{ident}' {{\n{inner}{indent}}}\n"

    normal = f"{GRUB_CMDLINE_LINUX} {GRUB_CMDLINE_LINUX_DEFAULT}"
    entries = (
        entry("Debian GNU/Linux", f"gnulinux-simple-{root.uuid}", normal, "")
        + f"submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option "
          f"'gnulinux-advanced-{root.uuid}' {{\n"
        + entry(f"Debian GNU/Linux, with Linux {kver}",
                f"gnulinux-{kver}-advanced-{root.uuid}", normal, "\t")
        + entry(f"Debian GNU/Linux, with Linux {kver} (recovery mode)",
                f"gnulinux-{kver}-recovery-{root.uuid}", f"single {GRUB_CMDLINE_LINUX}", "\t")
        + "}\n"
    )
    return _GRUB_HEADER + entries + _GRUB_FOOTER


_GRUB_HEADER = """\
#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi

if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi

export menuentry_id_option

if [ "${prev_saved_entry}" ]; then
  set saved_entry="${prev_saved_entry}"
  save_env saved_entry
  set prev_saved_entry=
  save_env prev_saved_entry
  set boot_once=true
fi

function savedefault {
  if [ -z "${boot_once}" ]; then
    saved_entry="${chosen}"
    save_env saved_entry
  fi
}
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  else
    insmod efi_gop
    insmod efi_uga
    insmod ieee1275_fb
    insmod vbe
    insmod vga
    insmod video_bochs
    insmod video_cirrus
  fi
}

serial --speed=115200
terminal_input console serial
terminal_output console serial
if [ x$feature_timeout_style = xy ] ; then
  set timeout_style=menu
  set timeout=1
# Fallback normal timeout code in case the timeout_style feature is
# unavailable.
else
  set timeout=1
fi
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/05_debian_theme ###
set menu_color_normal=cyan/blue
set menu_color_highlight=white/blue
### END /etc/grub.d/05_debian_theme ###

### BEGIN /etc/grub.d/10_linux ###
function gfxmode {
\tset gfxpayload="${1}"
}
set linux_gfx_mode=
export linux_gfx_mode
"""

_GRUB_FOOTER = """
### END /etc/grub.d/10_linux ###

### BEGIN /etc/grub.d/10_linux_xen ###

### END /etc/grub.d/10_linux_xen ###

### BEGIN /etc/grub.d/30_os-prober ###
### END /etc/grub.d/30_os-prober ###

### BEGIN /etc/grub.d/30_uefi-firmware ###
### END /etc/grub.d/30_uefi-firmware ###

### BEGIN /etc/grub.d/40_custom ###
# This file provides an easy way to add custom menu entries.  Simply type the
# menu entries you want to add after this comment.  Be careful not to change
# the 'exec tail' line above.
### END /etc/grub.d/40_custom ###

### BEGIN /etc/grub.d/41_custom ###
if [ -f  ${config_directory}/custom.cfg ]; then
  source ${config_directory}/custom.cfg
elif [ -z "${config_directory}" -a -f  $prefix/custom.cfg ]; then
  source $prefix/custom.cfg
fi
### END /etc/grub.d/41_custom ###
"""


# --------------------------------------------------------------------------------------------
# 3. Disks

Label = Literal["dos", "gpt"]
RootFs = Literal["ext4", "xfs"]
SwapMode = Literal["fstab", "hidden"]


def plan_layout(*, size: int = 30 * GiB, label: Label = "dos", root_fs: RootFs = "ext4",
                boot: bool = False, swap: SwapMode | None = None, lvm: bool = False,
                bios_boot: bool = False, esp: bool = False, root_spec: str = "auto",
                kernel: str = "") -> Layout:
    """The layout ``build_disk`` makes with these options, without building anything.

    With ``lvm`` the logical volumes' offsets are lvm2's defaults (1 MiB data start, 4 MiB
    extents); ``build_disk`` replaces them with what lvm2 reports.
    """
    if label != "gpt" and (bios_boot or esp):
        raise ImageBuildError("a BIOS-boot or EFI system partition needs label='gpt'")
    if size % MiB:
        raise ImageBuildError("the disk size must be a whole number of MiB")
    roles = [r for r, on in (("bios_boot", bios_boot), ("esp", esp), ("boot", boot)) if on]
    roles.append("lvm" if lvm else "root")
    if swap and not lvm:
        roles.append("swap")
    end = size // SECTOR - (34 if label == "gpt" else 0)
    end -= end % 2048
    start = 2048
    fixed = sum(_PART_SIZES[r] for r in roles if r in _PART_SIZES) // SECTOR
    big = end - start - fixed  # the root (or the PV) takes the rest
    if big * SECTOR < 1 * GiB:
        raise ImageBuildError(f"{size} bytes leave {big * SECTOR} for the root: too small")
    parts: list[Partition] = []
    for num, role in enumerate(roles, 1):
        sectors = _PART_SIZES.get(role, 0) // SECTOR if role in _PART_SIZES else big
        mbr_type, gpt_type = _PART_TYPES[role]
        ptype = gpt_type if label == "gpt" else mbr_type
        assert ptype is not None
        parts.append(Partition(number=num, role=role, start=start * SECTOR,
                               size=sectors * SECTOR, type=ptype,
                               uuid=fixed_uuid(f"part-{role}") if label == "gpt" else None))
        start += sectors
    volumes: list[Volume] = []
    by_role = {p.role: p for p in parts}
    if esp:
        p = by_role["esp"]
        volumes.append(Volume("efi", "vfat", p.start, p.size, ESP_UUID, p.number,
                              fstab_spec=f"UUID={ESP_UUID}"))
    if boot:
        p = by_role["boot"]
        volumes.append(Volume("boot", "ext4", p.start, p.size, BOOT_UUID, p.number,
                              fstab_spec=f"UUID={BOOT_UUID}"))
    lvm_info = None
    if lvm:
        pv = by_role["lvm"]
        extent, pe_start = 4 * MiB, 1 * MiB
        total = (pv.size - pe_start) // extent
        swap_ext = _PART_SIZES["swap"] // extent if swap else 0
        lvs = [("root", 0, total - swap_ext)] + ([("swap_1", total - swap_ext, swap_ext)]
                                                 if swap else [])
        lvm_info = Lvm(vg=VG_NAME, vg_uuid="", pv_uuid="", partition=pv.number,
                       pe_start=pe_start, extent_size=extent, lvs=tuple(
                           LogicalVolume(name, "", first, count,
                                         pv.start + pe_start + first * extent, count * extent)
                           for name, first, count in lvs))
        rlv = lvm_info.lvs[0]
        spec = _mapper_name(VG_NAME, "root") if root_spec in ("auto", "mapper") \
            else f"UUID={ROOT_UUID}"
        volumes.append(Volume("root", root_fs, rlv.offset, rlv.size, ROOT_UUID, pv.number,
                              lv=f"{VG_NAME}/root", fstab_spec=spec))
        if swap:
            slv = lvm_info.lvs[1]
            sspec = _mapper_name(VG_NAME, "swap_1") if root_spec in ("auto", "mapper") \
                else f"UUID={SWAP_UUID}"
            volumes.append(Volume("swap", "swap", slv.offset, slv.size, SWAP_UUID, pv.number,
                                  lv=f"{VG_NAME}/swap_1",
                                  fstab_spec=sspec if swap == "fstab" else None))
    else:
        p = by_role["root"]
        volumes.append(Volume("root", root_fs, p.start, p.size, ROOT_UUID, p.number,
                              fstab_spec=f"UUID={ROOT_UUID}"))
        if swap:
            p = by_role["swap"]
            volumes.append(Volume("swap", "swap", p.start, p.size, SWAP_UUID, p.number,
                                  fstab_spec=f"UUID={SWAP_UUID}" if swap == "fstab" else None))
    order = {"root": 0, "boot": 1, "efi": 2, "swap": 3}
    volumes.sort(key=lambda v: order[v.role])
    return Layout(label=label, size=size, disk_id=GPT_DISK_ID if label == "gpt" else MBR_DISK_ID,
                  kernel=kernel, partitions=tuple(parts), volumes=tuple(volumes), lvm=lvm_info)


def _sfdisk_script(layout: Layout) -> str:
    lines = [f"label: {layout.label}", f"label-id: {layout.disk_id}", "unit: sectors",
             "sector-size: 512"]
    if layout.label == "gpt":
        lines.append("first-lba: 2048")
    bootable = next((p.number for p in layout.partitions if p.role in ("boot", "root", "lvm")),
                    None)
    for p in layout.partitions:
        row = f"start={p.start // SECTOR}, size={p.size // SECTOR}, type={p.type}"
        if layout.label == "gpt":
            row += f', uuid={p.uuid}, name="{_PART_NAMES[p.role]}"'
        elif p.number == bootable:
            row += ", bootable"
        lines.append(row)
    return "\n".join(lines) + "\n"


def _lvm_config(device: str) -> str:
    # Only this loop device is scanned: two builds at once never see each other's VG.
    accept = '"a|^' + device + '$|", "r|.*|"'
    return (f"devices {{ use_devicesfile=0 filter=[ {accept} ] }} "
            "backup { backup=0 archive=0 } activation { udev_sync=0 udev_rules=0 }")


def _make_lvm(disk: Path, layout: Layout) -> Layout:
    """pvcreate/vgcreate/lvcreate on a loop device over the PV partition; real offsets back."""
    assert layout.lvm is not None
    pv = next(p for p in layout.partitions if p.role == "lvm")
    dev = run(["losetup", "-f", "--show", "-o", str(pv.start), "--sizelimit", str(pv.size),
               disk]).stdout.decode().strip()
    try:
        cfg = ["--config", _lvm_config(dev)]
        run(["pvcreate", *cfg, "-ff", "-y", "--dataalignment", "1m", dev])
        run(["vgcreate", *cfg, "-s", "4m", layout.lvm.vg, dev])
        lvopts = ["--driverloaded", "n", "-an", "-Zn", "-Wn", "-y"]
        want = layout.lvm.lvs
        for i, lv in enumerate(want):
            size = ["-l", "100%FREE"] if i == len(want) - 1 else ["-l", str(lv.extents)]
            run(["lvcreate", *cfg, *lvopts, *size, "-n", lv.name, layout.lvm.vg])
        report = run(["pvs", *cfg, "--noheadings", "--units", "b", "--nosuffix", "-o",
                      "pv_uuid,pe_start,vg_uuid,vg_extent_size", dev]).stdout.decode().split()
        pv_uuid, pe_start, vg_uuid, extent = report[0], int(report[1]), report[2], int(report[3])
        rows = run(["lvs", *cfg, "--noheadings", "-o", "lv_name,lv_uuid,seg_pe_ranges",
                    layout.lvm.vg]).stdout.decode().splitlines()
    finally:
        run(["losetup", "-d", dev], check=False)
    lvs = []
    for row in rows:
        name, lv_uuid, ranges = row.split()
        first, last = (int(x) for x in ranges.rsplit(":", 1)[1].split("-"))
        lvs.append(LogicalVolume(name, lv_uuid, first, last - first + 1,
                                 pv.start + pe_start + first * extent,
                                 (last - first + 1) * extent))
    order = [lv.name for lv in want]
    lvs.sort(key=lambda lv: order.index(lv.name))
    new_lvm = Lvm(layout.lvm.vg, vg_uuid, pv_uuid, pv.number, pe_start, extent, tuple(lvs))
    by_name = {f"{new_lvm.vg}/{lv.name}": lv for lv in lvs}
    volumes = tuple(dataclasses.replace(v, offset=by_name[v.lv].offset, size=by_name[v.lv].size)
                    if v.lv else v for v in layout.volumes)
    return dataclasses.replace(layout, lvm=new_lvm, volumes=volumes)


def _check_partitions(disk: Path, layout: Layout) -> None:
    table = json.loads(run(["sfdisk", "-J", disk]).stdout)["partitiontable"]
    got = [(int(p["start"]) * SECTOR, int(p["size"]) * SECTOR) for p in table["partitions"]]
    want = [(p.start, p.size) for p in layout.partitions]
    if got != want:
        raise ImageBuildError(f"{disk}: sfdisk made {got}, expected {want}")


def _mkfs_ext4(disk: Path, offset: int, size: int, fs_uuid: str, label: str,
               tree: Path | None) -> None:
    cmd: list[str | os.PathLike[str]] = [
        "mkfs.ext4", "-q", "-F", "-U", fs_uuid, "-L", label,
        "-E", f"offset={offset},lazy_journal_init=1"]
    if tree is not None:
        cmd += ["-d", tree]
    run([*cmd, disk, f"{size // KiB}k"])


def _loop_mount(image: Path, mnt: Path) -> None:
    """``mount -o loop,nouuid``: the image builder gives a layout's root the same UUID every
    time, and XFS refuses to mount a second filesystem with a UUID already mounted ("duplicate
    UUID", seen when two pytest workers build XFS roots at once)."""
    run(["mount", "-o", "loop,nouuid", image, mnt])


def _mkfs_xfs(disk: Path, offset: int, size: int, fs_uuid: str, label: str,
              tree: Path, work: Path) -> None:
    """mkfs.xfs on a partition-sized file, ``cp -a`` the tree in through a loop mount, then
    copy the file's data into the disk at ``offset``."""
    part = work / f"{label}.xfs"
    with open(part, "wb") as fh:
        fh.truncate(size)
    run(["mkfs.xfs", "-q", "-f", "-m", f"uuid={fs_uuid}", "-L", label, part])
    mnt = work / f"{label}.mnt"
    mnt.mkdir()
    _loop_mount(part, mnt)
    try:
        run(["cp", "-a", f"{tree}/.", mnt])
    finally:
        run(["umount", mnt])
    _loop_released(part)
    sparse_copy(part, disk, dst_offset=offset, truncate=False)
    part.unlink()


def _loop_released(image: Path, timeout: float = 30.0) -> None:
    """Wait until no loop device holds ``image`` any more, then flush it: since Linux 5.17 a
    loop device's autoclear after ``umount`` is asynchronous, and copying the file before the
    device lets go of it once gave an XFS root that no reader found (a loaded CI run)."""
    deadline = time.monotonic() + timeout
    while subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True,
                         check=False).stdout.strip():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{image}: a loop device still holds it after {timeout:.0f} s")
        time.sleep(0.05)
    fd = os.open(image, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkswap(disk: Path, vol: Volume, work: Path) -> None:
    part = work / "swap.img"
    with open(part, "wb") as fh:
        fh.truncate(vol.size)
    run(["mkswap", "-U", vol.uuid, "-L", "swap", part])
    sparse_copy(part, disk, dst_offset=vol.offset, truncate=False)
    part.unlink()


def _efi_loader(stage: Path, work: Path) -> Path | None:
    """A GRUB EFI image made by the tree's own grub-mkimage (None without its modules)."""
    if not (stage / "usr/lib/grub/x86_64-efi").is_dir():
        return None
    name = f"grubx64-{os.getpid()}.efi"
    mods = ["part_gpt", "part_msdos", "fat", "ext2", "xfs", "lvm", "normal", "linux", "boot",
            "configfile", "search", "search_fs_uuid", "search_label", "echo", "test", "gzio",
            "all_video", "efi_gop", "serial", "terminal", "loadenv", "sleep", "reboot", "halt"]
    run(["chroot", stage, "grub-mkimage", "-O", "x86_64-efi", "-p", "/EFI/debian",
         "-o", f"/tmp/{name}", *mods])
    out = work / "grubx64.efi"
    shutil.move(stage / "tmp" / name, out)
    return out


def _make_esp(disk: Path, vol: Volume, layout: Layout, stage: Path, work: Path) -> None:
    part = work / "esp.img"
    with open(part, "wb") as fh:
        fh.truncate(vol.size)
    run(["mkfs.vfat", "-F", "32", "-i", ESP_VOLUME_ID, "-n", "EFI", part])
    img = ["-i", str(part)]
    run(["mmd", *img, "::/EFI", "::/EFI/BOOT", "::/EFI/debian"])
    bootvol = layout.boot_volume
    prefix = "/grub" if layout.volume("boot") else "/boot/grub"
    stub = work / "grub.cfg"
    stub.write_text(f"search.fs_uuid {bootvol.uuid} root\n"
                    f"set prefix=($root)'{prefix}'\nconfigfile $prefix/grub.cfg\n")
    run(["mcopy", *img, stub, "::/EFI/debian/grub.cfg"])
    loader = _efi_loader(stage, work)
    if loader is not None:
        run(["mcopy", *img, loader, "::/EFI/debian/grubx64.efi"])
        run(["mcopy", *img, loader, "::/EFI/BOOT/BOOTX64.EFI"])
    sparse_copy(part, disk, dst_offset=vol.offset, truncate=False)
    part.unlink()


def build_disk(dest: Path, tree: Path | None = None, *, size: int = 30 * GiB,
               label: Label = "dos", root_fs: RootFs = "ext4", boot: bool = False,
               swap: SwapMode | None = None, lvm: bool = False, bios_boot: bool = False,
               esp: bool = False, root_spec: str = "auto", configure: bool = True) -> Disk:
    """Build a raw disk image from ``tree`` (default: ``compliant_tree()``, read only).

    - ``size``: virtual size, a whole number of MiB (sparse: costs only the data).
    - ``label``: ``"dos"`` (MBR) or ``"gpt"``; the first partition starts at sector 2048.
    - ``root_fs``: ``"ext4"`` (``mkfs.ext4 -d``) or ``"xfs"`` (mkfs.xfs, loop mount, cp -a).
    - ``boot``: a separate ext4 ``/boot`` partition (256 MiB) before the root.
    - ``swap``: a 256 MiB swap area made by mkswap, after the root (a logical volume
      ``swap_1`` with ``lvm``); ``"fstab"`` names it in /etc/fstab, ``"hidden"`` does not.
    - ``lvm``: the root in ``debian-vg/root`` on an LVM partition; fstab and grub.cfg name it
      ``/dev/mapper/debian--vg-root`` as the Debian installer does (``root_spec="uuid"``: by
      UUID).
    - ``bios_boot``, ``esp`` (GPT only): a 1 MiB BIOS-boot partition (left empty: no GRUB core
      image) and a 128 MiB FAT32 EFI system partition holding a GRUB EFI loader made with the
      tree's ``grub-mkimage`` (``EFI/BOOT/BOOTX64.EFI``, ``EFI/debian/grubx64.efi``) and the
      usual ``EFI/debian/grub.cfg`` stub.
    - ``configure``: write /etc/fstab, /etc/default/grub and /boot/grub/grub.cfg for this
      layout (on a hard-linked staging copy: the tree is not changed). ``False`` keeps the
      tree's own files (a test that wants a wrong fstab).

    Returns ``Disk(path, layout)``.
    """
    tree = tree or compliant_tree()
    layout = plan_layout(size=size, label=label, root_fs=root_fs, boot=boot, swap=swap,
                         lvm=lvm, bios_boot=bios_boot, esp=esp, root_spec=root_spec,
                         kernel=kernel_version(tree))
    dest = Path(dest)
    dest.unlink(missing_ok=True)
    with open(dest, "wb") as fh:
        fh.truncate(size)
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", dest],
        input=_sfdisk_script(layout).encode())
    _check_partitions(dest, layout)
    if lvm:
        layout = _make_lvm(dest, layout)
    work = Path(tempfile.mkdtemp(dir=scratch_dir(), prefix="build-"))
    # A hard-linked copy beside the tree (0.5 s; its files are replaced, never edited).
    staging = Path(tempfile.mkdtemp(dir=tree.parent, prefix=f".stage-{tree.name}-"))
    stage = staging / "root"
    try:
        run(["cp", "-al", tree, stage])
        if configure:
            configure_boot(stage, layout)
        boot_stage = None
        if boot:
            boot_stage = staging / "boot"
            st = (stage / "boot").stat()
            (stage / "boot").rename(boot_stage)
            (stage / "boot").mkdir()
            os.chmod(stage / "boot", st.st_mode & 0o7777)
        if esp:
            (boot_stage or stage / "boot").joinpath("efi").mkdir(exist_ok=True)
            vol = layout.volume("efi")
            assert vol is not None
            _make_esp(dest, vol, layout, stage, work)
        root = layout.root
        if root.fs == "ext4":
            _mkfs_ext4(dest, root.offset, root.size, root.uuid, "root", stage)
        else:
            _mkfs_xfs(dest, root.offset, root.size, root.uuid, "root", stage, work)
        bvol = layout.volume("boot")
        if bvol is not None:
            _mkfs_ext4(dest, bvol.offset, bvol.size, bvol.uuid, "boot", boot_stage)
        svol = layout.volume("swap")
        if svol is not None:
            _mkswap(dest, svol, work)
    finally:
        _rmtree(staging)
        _rmtree(work)
    return Disk(dest, layout)


def compliant_key() -> str:
    """Cache key of the compliant tree and disk: the root key and this file's text."""
    text = Path(__file__).read_bytes()
    return hashlib.sha256(root_key().encode() + text).hexdigest()[:16]


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _prune(directory: Path, keep: str, max_idle: float = 2 * 3600, prefix: str = "") -> None:
    """Delete cached trees or disks named ``prefix*`` of other keys not used for ``max_idle``
    seconds."""
    now = time.time()
    for entry in directory.glob(f"{prefix}*"):
        if keep in entry.name or entry.name.startswith("."):
            continue
        with contextlib.suppress(OSError):
            if now - entry.stat().st_mtime > max_idle:
                _rmtree(entry)


def compliant_tree() -> Path:
    """The cached compliant Debian tree (extracted once, then ``make_compliant``). Read only:
    use ``clone_tree()`` for a tree to change."""
    return _cached_tree("compliant", PACKAGES, make_compliant)


def cloud_init_tree() -> Path:
    """The cached compliant tree with cloud-init provisioning it (``make_cloud_init``), as
    Azure's own Debian images are made. Read only."""
    return _cached_tree("cloud-init", CLOUD_INIT_PACKAGES,
                        lambda tree: (make_compliant(tree), make_cloud_init(tree)))


def _cached_tree(name: str, packages: Sequence[str], finish: Callable[[Path], object]) -> Path:
    """Extract the root tarball of ``packages`` once and ``finish`` it, under a lock; cached
    by this file's text and the package list."""
    key = hashlib.sha256(compliant_key().encode() + root_key(packages).encode()
                         ).hexdigest()[:16] if packages != PACKAGES else compliant_key()
    final = store_dir() / "trees" / f"debian12-{name}-{key}"
    if final.is_dir():
        _touch(final)
        return final
    with locked(f"tree-{name}-{key}"):
        if not final.is_dir():
            tarball = root_tarball(packages)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.tmp")
            _rmtree(tmp)
            start = time.monotonic()
            _prune(final.parent, key, prefix=f"debian12-{name}-")
            extract_root(tarball, tmp)
            extracted = time.monotonic()
            finish(tmp)
            tmp.rename(final)
            _log(f"{name} tree in {final}: extract {extracted - start:.1f} s, "
                 f"finish {time.monotonic() - extracted:.1f} s")
    return final


def clone_tree(dest: Path | None = None) -> Path:
    """A private, writable copy of the compliant tree (``cp -a --reflink=auto``).

    Default ``dest``: a new directory in ``scratch_dir()``. Delete it when done
    (``shutil.rmtree``); pass it to ``build_disk(tree=...)``.
    """
    src = compliant_tree()
    if dest is None:
        dest = Path(tempfile.mkdtemp(dir=scratch_dir(), prefix="tree-")) / "root"
    run(["cp", "-a", "--reflink=auto", src, dest])
    return dest


def compliant_disk() -> Disk:
    """The cached compliant disk: 30 GiB sparse raw, MBR, ext4 root at 1 MiB (read only!)."""
    key = compliant_key()
    path = store_dir() / "disks" / f"compliant-{key}.raw"
    meta = path.with_suffix(".json")
    if not meta.exists():
        with locked(f"disk-{key}"):
            if not meta.exists():
                tree = compliant_tree()
                path.parent.mkdir(parents=True, exist_ok=True)
                _prune(path.parent, key)
                tmp = path.with_name(f".{path.name}.tmp")
                start = time.monotonic()
                disk = build_disk(tmp, tree)
                tmp.rename(path)
                meta_tmp = meta.with_name(f".{meta.name}.tmp")
                meta_tmp.write_text(json.dumps(disk.layout.to_dict(), indent=1))
                meta_tmp.rename(meta)
                _log(f"compliant disk built in {time.monotonic() - start:.1f} s: {path}")
    _touch(meta)
    _touch(path)
    return Disk(path, Layout.from_dict(json.loads(meta.read_text())))


def compliant_copy(dest: Path | None = None) -> Disk:
    """A private copy of ``compliant_disk()`` to change (a reflink or a sparse copy).

    Default ``dest``: a new file in ``scratch_dir()``; delete it when done, or use
    ``compliant_disk_copy()``.
    """
    master = compliant_disk()
    if dest is None:
        dest = scratch_dir() / f"compliant-{uuid.uuid4().hex[:12]}.raw"
    clone_file(master.path, Path(dest))
    return Disk(Path(dest), master.layout)


@contextlib.contextmanager
def compliant_disk_copy() -> Iterator[Disk]:
    """``with compliant_disk_copy() as disk:`` a private copy, deleted afterwards."""
    disk = compliant_copy()
    try:
        yield disk
    finally:
        disk.path.unlink(missing_ok=True)


def to_vhd(src: Disk | Path, dest: Path | None = None, *,
           method: Literal["qemu-img", "vmimage"] = "qemu-img") -> Path:
    """Convert a raw disk to a fixed VHD (size = raw size, + 512-byte footer), sparse.

    ``qemu-img``: ``convert -O vpc -o subformat=fixed,force_size=on``. ``vmimage``: a clone
    of the raw file, then ``vmimage vhd convert --in-place`` (the project's own writer).
    Default ``dest``: the raw path with ``.vhd``.
    """
    raw = src.path if isinstance(src, Disk) else Path(src)
    dest = Path(dest) if dest is not None else raw.with_suffix(".vhd")
    dest.unlink(missing_ok=True)
    if method == "qemu-img":
        run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o",
             "subformat=fixed,force_size=on", raw, dest])
    else:  # vmimage refuses a ".vhd" without a footer: convert under a raw name
        partial = dest.with_name(f".{dest.name}.{os.getpid()}.raw")
        try:
            clone_file(raw, partial)
            run([sys.executable, "-m", "vmimage", "vhd", "convert", "--in-place", partial])
            partial.rename(dest)
        finally:
            partial.unlink(missing_ok=True)
    return dest


# --------------------------------------------------------------------------------------------
# Violations: edit a copy in place


def debugfs(disk: Path, offset: int, commands: Sequence[str], *, write: bool = False,
            check: bool = True) -> str:
    """Run debugfs commands on the ext2/3/4 filesystem at ``offset`` of ``disk``.

    Returns stdout. With ``check``, any message on stderr (other than the version banner)
    raises ``ImageBuildError``: debugfs itself always exits 0.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs", delete=False) as fh:
        fh.write("\n".join(commands) + "\n")
        cmdfile = fh.name
    try:
        args = ["debugfs", *(["-w"] if write else []), "-f", cmdfile, f"{disk}?offset={offset}"]
        proc = run(args)
    finally:
        os.unlink(cmdfile)
    errors = [ln for ln in proc.stderr.decode(errors="replace").splitlines()
              if ln.strip() and not ln.startswith("debugfs ")]
    if check and errors:
        raise ImageBuildError(f"debugfs on {disk}: {'; '.join(errors)}")
    return proc.stdout.decode(errors="replace")


def inject(disk: Path, offset: int, commands: Sequence[str]) -> str:
    """``debugfs -w 'disk?offset=N' -f cmds``: edit an ext4 filesystem in place.

    Commands as debugfs takes them, e.g. ``rm /etc/resolv.conf``,
    ``symlink /etc/foo /target``, ``write /local/file /etc/new``,
    ``set_inode_field /etc/shadow mode 0100644``, ``mkdir /home/alice``.
    """
    return debugfs(Path(disk), offset, commands, write=True)


def exists(disk: Path, offset: int, path: str) -> bool:
    """Whether ``path`` exists in the ext4 filesystem at ``offset`` (no symlink following)."""
    out = debugfs(Path(disk), offset, [f'stat "{path}"'], check=False)
    return "Inode:" in out


def resolve(disk: Path, offset: int, path: str) -> str:
    """``path`` with its final symlinks followed inside the filesystem (debugfs follows only
    the links of the parent directories)."""
    for _ in range(40):
        out = debugfs(Path(disk), offset, [f'stat "{path}"'], check=False)
        link = re.search(r'Fast link dest: "(.*)"', out)
        if "Type: symlink" not in out or not link:
            return path
        target = link[1]
        path = posixpath.normpath(target if target.startswith("/") else
                                  posixpath.join(posixpath.dirname(path), target))
    raise ImageBuildError(f"{path}: too many levels of symbolic links")


def read_file(disk: Path, offset: int, path: str, *, follow: bool = True) -> bytes:
    """A file's content from the ext4 filesystem at ``offset`` (``debugfs -R cat``),
    following symlinks such as ``/etc/os-release -> ../usr/lib/os-release``."""
    if follow:
        path = resolve(disk, offset, path)
    proc = run(["debugfs", "-R", f'cat "{path}"', f"{disk}?offset={offset}"])
    errors = [ln for ln in proc.stderr.decode(errors="replace").splitlines()
              if ln.strip() and not ln.startswith("debugfs ")]
    if errors:
        raise ImageBuildError(f"debugfs cat {path}: {'; '.join(errors)}")
    return proc.stdout


def put_file(disk: Path, offset: int, path: str, data: bytes | str, *, mode: int = 0o644,
             uid: int = 0, gid: int = 0) -> None:
    """Create or replace a regular file in the ext4 filesystem at ``offset``."""
    raw = data.encode() if isinstance(data, str) else data
    parent, _, name = path.rstrip("/").rpartition("/")
    with tempfile.NamedTemporaryFile(delete=False) as fh:
        fh.write(raw)
        local = fh.name
    try:
        cmds = []
        if exists(disk, offset, path):
            cmds.append(f'rm "{path}"')
        cmds += [f'cd "{parent or "/"}"', f'write "{local}" "{name}"',
                 f'set_inode_field "{path}" mode 0{0o100000 | mode:o}',
                 f'set_inode_field "{path}" uid {uid}', f'set_inode_field "{path}" gid {gid}']
        out = debugfs(Path(disk), offset, cmds, write=True)
        if "Allocated inode" not in out:
            raise ImageBuildError(f"debugfs write {path}: {out.strip()}")
    finally:
        os.unlink(local)


def stat(disk: Path, offset: int, path: str) -> tuple[int, int, int]:
    """``(mode, uid, gid)`` of ``path`` in the ext4 filesystem at ``offset`` (mode with type
    bits, e.g. ``0o100644``)."""
    out = debugfs(Path(disk), offset, [f'stat "{path}"'])
    mode = re.search(r"Mode:\s+(\d+)", out)
    ids = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", out)
    ftype = re.search(r"Type: (\w+)", out)
    if not (mode and ids and ftype):
        raise ImageBuildError(f"debugfs stat {path}: {out.strip()[:200]}")
    kind = {"regular": 0o100000, "directory": 0o040000, "symlink": 0o120000}.get(ftype[1], 0)
    return kind | int(mode[1], 8), int(ids[1]), int(ids[2])


def edit_file(disk: Path, offset: int, path: str, change: Callable[[str], str]) -> str:
    """Rewrite a text file in the ext4 filesystem at ``offset`` with ``change(old_text)``,
    keeping its mode and owner. Returns the new text."""
    mode, uid, gid = stat(disk, offset, path)
    text = change(read_file(disk, offset, path).decode())
    put_file(disk, offset, path, text, mode=mode & 0o7777, uid=uid, gid=gid)
    return text


def remove_file(disk: Path, offset: int, path: str) -> None:
    """Delete a file or symlink from the ext4 filesystem at ``offset``."""
    inject(disk, offset, [f'rm "{path}"'])


def write_at(disk: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes of the disk image at ``offset`` (nothing else changes)."""
    with open(disk, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


MBR_GAP_JUNK = (b"GRUB core.img stand-in: boot code in the MBR gap\0" * 11)[:SECTOR]


def write_mbr_gap(disk: Path, lba: int = 100, data: bytes = MBR_GAP_JUNK) -> None:
    """Write ``data`` at ``lba`` (default 100: boot code in the gap before sector 2048)."""
    write_at(disk, lba * SECTOR, data)


# --------------------------------------------------------------------------------------------
# Command line


def _cmd_sample(out: Path) -> None:
    start = time.monotonic()
    disk = compliant_disk()
    # vmimage's own writer (a clone and a footer): the main job needs no qemu-img.
    to_vhd(disk, out, method="vmimage")
    print(f"{out}: compliant Debian 12, fixed VHD of {disk.layout.size // GiB} GiB "
          f"(MBR, ext4 root UUID {disk.layout.root.uuid} at 1 MiB), "
          f"{time.monotonic() - start:.1f} s")


def _cmd_clean() -> None:
    base = cache_dir()
    mnt = base / "pool"
    if os.path.ismount(mnt):
        run(["umount", mnt])
    for name in ("pool", "pool.img", "store", "tmp"):
        _rmtree(base / name)
    print(f"removed trees, disks and scratch copies under {base} (root tarballs kept)")


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m tests.imagebuild {root,tree,disk,sample,clean}``."""
    parser = argparse.ArgumentParser(prog="python3 -m tests.imagebuild",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_root = sub.add_parser("root", help="build (or find) the cached Debian root tarball")
    p_root.add_argument("out", nargs="?", type=Path, help="also copy it here")
    p_tree = sub.add_parser("tree", help="print the cached compliant tree's path")
    p_tree.add_argument("--cloud-init", action="store_true", help="the cloud-init one")
    p_disk = sub.add_parser("disk", help="build a disk image")
    p_disk.add_argument("out", type=Path)
    p_disk.add_argument("--size", type=int, default=30, help="GiB (default 30)")
    p_disk.add_argument("--label", choices=["dos", "gpt"], default="dos")
    p_disk.add_argument("--root-fs", choices=["ext4", "xfs"], default="ext4")
    p_disk.add_argument("--boot", action="store_true")
    p_disk.add_argument("--swap", choices=["fstab", "hidden"])
    p_disk.add_argument("--lvm", action="store_true")
    p_disk.add_argument("--bios-boot", action="store_true")
    p_disk.add_argument("--esp", action="store_true")
    p_disk.add_argument("--vhd", action="store_true", help="convert to a fixed VHD")
    p_sample = sub.add_parser("sample", help="a compliant 30 GiB sparse fixed VHD")
    p_sample.add_argument("out", type=Path)
    sub.add_parser("clean", help="unmount the pool, delete cached trees, disks and copies")
    args = parser.parse_args(argv)
    if args.cmd == "root":
        path = root_tarball()
        if args.out:
            shutil.copyfile(path, args.out)
        print(path)
    elif args.cmd == "tree":
        print(cloud_init_tree() if args.cloud_init else compliant_tree())
    elif args.cmd == "disk":
        disk = build_disk(args.out, size=args.size * GiB, label=args.label,
                          root_fs=args.root_fs, boot=args.boot, swap=args.swap, lvm=args.lvm,
                          bios_boot=args.bios_boot, esp=args.esp)
        path = to_vhd(disk, args.out.with_suffix(".vhd")) if args.vhd else disk.path
        print(json.dumps({"path": str(path), "layout": disk.layout.to_dict()}, indent=1))
    elif args.cmd == "sample":
        _cmd_sample(args.out.resolve())
    elif args.cmd == "clean":
        _cmd_clean()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
