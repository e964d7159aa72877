"""Shared helpers for the VHD tests: run the real CLI and qemu-img, build sparse images.

Every image here is a real file made by real tools (qemu-img, sfdisk) or written with
``os.pwrite`` at scattered offsets, so a hole stays a hole and the tests can check that our
outputs stay as sparse as their inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vmimage.disk import vhd
from vmimage.disk.sparse import data_extents, nonzero_runs

KiB, MiB, GiB = 1024, 1024**2, 1024**3
BLOCK = 4096

#: The console script next to the interpreter (skips pyenv's shell shim, about 0.1 s a call).
_SCRIPT = Path(sys.executable).with_name("vmimage")
VMIMAGE = str(_SCRIPT) if _SCRIPT.exists() else (shutil.which("vmimage") or "vmimage")
_ENV = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}


def run(cmd: list[str], check: bool = True, prefix: tuple[str, ...] = ()
        ) -> subprocess.CompletedProcess[str]:
    """Run a command, never reading standard input, and capture its text output."""
    return subprocess.run([*prefix, *cmd], capture_output=True, text=True, check=check,
                          stdin=subprocess.DEVNULL, env=_ENV, timeout=600)


def vmimage(*args: str | os.PathLike[str], prefix: tuple[str, ...] = ()
            ) -> subprocess.CompletedProcess[str]:
    """The real ``vmimage`` console script, as a user runs it; the caller checks the code."""
    return run([VMIMAGE, *map(str, args)], check=False, prefix=prefix)


def vmimage_ok(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """``vmimage`` that must succeed; on failure the assertion shows its stderr."""
    res = vmimage(*args)
    assert res.returncode == 0, f"vmimage {args} exited {res.returncode}: {res.stderr}"
    return res


def inspect_json(path: str | os.PathLike[str]) -> dict[str, object]:
    """``vmimage vhd inspect --json``, decoded."""
    res = vmimage_ok("vhd", "inspect", "--format", "json", path)
    data: dict[str, object] = json.loads(res.stdout)
    return data


def qemu_info(path: str | os.PathLike[str], fmt: str) -> dict[str, object]:
    """``qemu-img info`` with the format given (a fixed VHD is probed as raw otherwise)."""
    res = run(["qemu-img", "info", "-f", fmt, "--output", "json", str(path)])
    data: dict[str, object] = json.loads(res.stdout)
    return data


def qemu_compare(a: str | os.PathLike[str], fa: str, b: str | os.PathLike[str], fb: str) -> int:
    """``qemu-img compare``: 0 identical (a longer image must hold zeros beyond), 1 different.

    ``-s`` (strict) is not used: our outputs round up to a whole MiB, and the padding is zeros.
    """
    res = run(["qemu-img", "compare", "-f", fa, "-F", fb, str(a), str(b)], check=False)
    assert res.returncode in (0, 1), f"qemu-img compare failed: {res.stderr}{res.stdout}"
    return res.returncode


def qemu_convert(src: str | os.PathLike[str], fin: str, dst: str | os.PathLike[str],
                 fout: str, options: str | None = None) -> None:
    """``qemu-img convert -f FIN -O FOUT [-o OPTIONS]``."""
    cmd = ["qemu-img", "convert", "-f", fin, "-O", fout]
    if options:
        cmd += ["-o", options]
    run([*cmd, str(src), str(dst)])


@dataclass(frozen=True)
class Extent:
    """Data written into a sparse image: where, and what."""

    offset: int
    data: bytes


def make_sparse(path: Path, size: int, extents: list[Extent]) -> Path:
    """A sparse file of ``size`` bytes holding ``extents``, with holes everywhere else."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        for e in extents:
            os.pwrite(fd, e.data, e.offset)
    finally:
        os.close(fd)
    return path


def scattered(size: int, seed: int, count: int = 5, max_len: int = 700 * KiB) -> list[Extent]:
    """Random bytes at scattered offsets: the first and last sectors, unaligned starts, and
    lengths that are not whole blocks, so converters cannot get away with block-aligned copies.
    """
    rnd = random.Random(seed)
    extents = [Extent(0, rnd.randbytes(4096 + 17)), Extent(size - 1000, rnd.randbytes(1000))]
    for _ in range(count):
        length = rnd.randrange(1, max_len)
        offset = rnd.randrange(8192, size - length - 1000)
        extents.append(Extent(offset, rnd.randbytes(length)))
    return extents


def data_bytes(extents: list[Extent]) -> int:
    """Bytes of data the extents hold (overlaps counted twice: an upper bound)."""
    return sum(len(e.data) for e in extents)


def allocated(path: str | os.PathLike[str]) -> int:
    """Bytes the file occupies on disk (``st_blocks``)."""
    return os.stat(path).st_blocks * 512


def assert_sparse(path: str | os.PathLike[str], data: int, slack: int = 256 * KiB) -> None:
    """The file occupies about as much as its data: every extent rounds up to 4 KiB blocks at
    each end, plus the footer's block; ``slack`` allows for that and for filesystem metadata.
    """
    used = allocated(path)
    assert used <= data + slack, f"{path}: {used} bytes allocated for {data} bytes of data"


@dataclass(frozen=True)
class FileState:
    """What must not change when a command refuses an input."""

    sha256: str
    size: int
    mtime_ns: int
    mode: int


def file_state(path: str | os.PathLike[str]) -> FileState:
    """Hash, size, mtime and mode of a file (of a directory: its listing's hash).

    The hash covers every non-zero 4 KiB block with its offset, found through SEEK_DATA, so a
    byte written anywhere (into a hole included) changes it without reading gigabytes of holes,
    and it does not depend on how the filesystem happens to report its extents (delayed
    allocation changes that after writeback).
    """
    p = Path(path)
    st = os.stat(p)
    h = hashlib.sha256()
    if p.is_dir():
        h.update("\0".join(sorted(os.listdir(p))).encode())
    else:
        fd = os.open(p, os.O_RDONLY)
        try:
            for offset, length in data_extents(fd, 0, st.st_size):
                start = offset - offset % BLOCK
                for pos in range(start, offset + length, 4 * MiB):
                    chunk = os.pread(fd, min(4 * MiB, offset + length - pos), pos)
                    for run_start, run_length in nonzero_runs(chunk, BLOCK):
                        for b in range(run_start, run_start + run_length, BLOCK):
                            h.update(f"@{pos + b}:".encode() + chunk[b:b + BLOCK])
        finally:
            os.close(fd)
    return FileState(h.hexdigest(), st.st_size, st.st_mtime_ns, st.st_mode)


def read_footer(path: str | os.PathLike[str]) -> vhd.Footer:
    """The last 512 bytes of a file, decoded with our own Footer."""
    with open(path, "rb") as f:
        f.seek(-vhd.FOOTER_SIZE, os.SEEK_END)
        return vhd.Footer.unpack(f.read(vhd.FOOTER_SIZE))


def write_at(path: str | os.PathLike[str], offset: int, data: bytes) -> None:
    """Overwrite bytes in place (``conv=notrunc``), for crafting corrupt files."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)
