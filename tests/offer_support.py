"""Helpers for the offer tests: manifests written as text, small real disks, and the CLI.

The CLI is run in-process through an app that mounts exactly what ``vmimage`` mounts for
``offer``, ``submit`` and ``certify``, with the same error mapping as ``vmimage.cli.main``,
so the tests do not depend on the order in which the commands are registered.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

KiB, MiB, GiB = 1024, 1024**2, 1024**3

#: A manifest every rule accepts (under both profiles), with blob URLs only.
GOOD = """\
publisher: contoso
offer:
  id: contoso-web
  title: Contoso Web Server
storage:
  container_url: https://contosovhds.blob.core.windows.net/vhds
skus:
  - id: web-gen1
    plan: web
    title: Contoso Web on Debian 12
    summary: Nginx on Debian 12, hardened and ready to serve.
    os: {family: linux, type: debian, friendly_name: "Debian 12 (bookworm)"}
    image_type: gen1
    recommended_sizes: [Standard_D2s_v5, Standard_D4s_v5, Standard_E2s_v5]
    versions:
      - version: "1.0.0"
        os_disk: {url: "https://contosovhds.blob.core.windows.net/vhds/web-1.0.0-os.vhd"}
        data_disks:
          - {lun: 0, url: "https://contosovhds.blob.core.windows.net/vhds/web-1.0.0-d0.vhd"}
  - id: web-gen2
    plan: web
    title: Contoso Web on Debian 12 (Gen2)
    summary: Nginx on Debian 12 for UEFI (Gen2) VMs.
    os: {family: linux, type: debian, friendly_name: "Debian 12 (bookworm)"}
    image_type: gen2
    recommended_sizes: [Standard_D2s_v5, Standard_D4s_v5, Standard_E2s_v5]
    versions:
      - version: "1.0.0"
        os_disk: {url: "https://contosovhds.blob.core.windows.net/vhds/web2-1.0.0-os.vhd"}
        data_disks:
          - {lun: 0, url: "https://contosovhds.blob.core.windows.net/vhds/web2-1.0.0-d0.vhd"}
"""


def write(dir_: Path, text: str, name: str = "offer.yaml") -> Path:
    """Write a manifest (dedented) and return its path."""
    path = dir_ / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@dataclass
class Result:
    """What a user sees: the exit code, standard output, standard error."""

    code: int
    stdout: str
    stderr: str


def run_cli(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> Result:
    """Run ``vmimage ARGS`` in-process through ``vmimage.cli.main`` (its mapping of errors to
    exit codes included), with ``env`` added to the environment for the call."""
    from vmimage.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Result(code, out.getvalue(), err.getvalue())


def tool(name: str) -> str | None:
    """A tool on PATH or in the sbin directories (tests run as root)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def sh(*cmd: str | os.PathLike[str], stdin: bytes | None = None) -> None:
    """Run a command that must succeed, without reading the terminal."""
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True,
                   input=stdin if stdin is not None else b"", timeout=300)


def linux_tree(root: Path, os_id: str = "debian") -> Path:
    """A tiny root a disk target recognises: /etc/fstab and /etc/os-release."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/fstab").write_text("LABEL=root / ext4 defaults 0 1\n")
    (root / "etc/os-release").write_text(
        f'PRETTY_NAME="Test {os_id} 12"\nID={os_id}\nVERSION_ID="12"\n')
    return root


def to_vhd(raw: Path) -> Path:
    """Append a fixed-VHD footer in place (vmimage's own writer) and rename to ``.vhd``."""
    from vmimage.disk.convert import convert_in_place

    convert_in_place(raw)
    return raw.rename(raw.with_suffix(".vhd"))


def linux_disk(path: Path, size: int = 30 * GiB, *, gpt: bool = False, esp: bool = False,
               loader: bool = True, os_id: str = "debian") -> Path:
    """A sparse raw disk: one ext4 root (a tiny Linux tree) at 1 MiB; with ``esp`` (GPT),
    a FAT32 EFI system partition first, holding ``EFI/BOOT/BOOTX64.EFI`` if ``loader``."""
    work = path.parent / f".{path.name}.work"
    work.mkdir()
    try:
        tree = linux_tree(work / "root", os_id)
        with path.open("wb") as fh:
            fh.truncate(size)
        esp_size = 64 * MiB
        root_start = 2048 + (esp_size // 512 if esp else 0)
        label = "gpt" if gpt or esp else "dos"
        lines = [f"label: {label}"]
        if esp:
            lines.append(f"start=2048, size={esp_size // 512}, "
                         "type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
        lines.append(f"start={root_start}, size={256 * MiB // 512}, type=" +
                     ("0FC63DAF-8483-4772-8E79-3D69D8477DE4" if label == "gpt" else "83"))
        sh("sfdisk", "-q", "--no-reread", "--no-tell-kernel", path,
           stdin="\n".join(lines).encode() + b"\n")
        root_img = work / "root.img"
        with root_img.open("wb") as fh:
            fh.truncate(256 * MiB)
        sh("mkfs.ext4", "-q", "-F", "-L", "root", "-d", tree, root_img)
        _place(root_img, path, root_start * 512)
        if esp:
            esp_img = work / "esp.img"
            with esp_img.open("wb") as fh:
                fh.truncate(esp_size)
            sh("mkfs.vfat", "-F", "32", "-n", "EFI", esp_img)
            sh("mmd", "-i", esp_img, "::/EFI", "::/EFI/BOOT")
            if loader:
                blob = work / "BOOTX64.EFI"
                blob.write_bytes(b"MZ fake UEFI loader\n")
                sh("mcopy", "-i", esp_img, blob, "::/EFI/BOOT/BOOTX64.EFI")
            _place(esp_img, path, 2048 * 512)
    finally:
        shutil.rmtree(work)
    return path


def windows_disk(path: Path, size: int = 127 * GiB) -> Path:
    """A sparse raw Windows Server OS disk (System Reserved + C: holding Windows and its
    registry hives), as tests.winimage builds it: an NTFS volume alone is a data disk."""
    from tests import winimage

    return winimage.build_windows(path, winimage.WinSpec(size=size), vhd=False)


def _place(src: Path, disk: Path, offset: int) -> None:
    """Copy ``src`` into ``disk`` at ``offset`` without filling holes."""
    sh("dd", f"if={src}", f"of={disk}", "bs=1M", f"seek={offset}", "oflag=seek_bytes",
       "conv=notrunc,sparse", "status=none")
