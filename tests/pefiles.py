"""Real PE files with a version resource, built by Debian's mingw-w64 binutils.

``binutils-mingw-w64-x86-64`` has everything without a C compiler: ``windres`` compiles a
``VERSIONINFO`` script (run with ``--preprocessor=cat``, so no ``cpp`` is needed; the script
uses no macros), ``as`` a two-instruction ``DriverEntry``, and ``ld`` links them into a
native-subsystem DLL shaped like a driver (``srv.sys``). A build takes about 30 ms, so nothing
is cached. ``windres -i FILE -O rc`` reads the resource back: the tests' independent oracle.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

TOOL_PREFIX = "x86_64-w64-mingw32-"
_ENTRY = ".text\n.globl DriverEntry\nDriverEntry:\n xor %eax,%eax\n ret\n"


class PeBuildError(RuntimeError):
    """A binutils tool failed or is missing."""


def have_tools() -> bool:
    """Whether the mingw-w64 binutils are installed (tests skip without them)."""
    return all(shutil.which(TOOL_PREFIX + t) for t in ("windres", "as", "ld"))


def _numbers(version: str) -> tuple[int, int, int, int]:
    """The four 16-bit numbers a version string starts with (``10.0.20348.2227 (WinBuild)``)."""
    found = re.match(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?", version)
    if not found:
        raise ValueError(f"no version number in {version!r}")
    parts = tuple(int(p or 0) for p in found.groups())
    if any(p > 0xFFFF for p in parts):
        raise ValueError(f"a version part of {version!r} is over 65535")
    return parts[0], parts[1], parts[2], parts[3]


def _rc_string(text: str) -> str:
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"a resource script cannot carry {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '""') + '"'


def version_script(file_version: str, product_version: str, original_filename: str) -> str:
    """The ``VERSIONINFO`` resource script: fixed info and the US-English/Unicode strings."""
    fixed = ",".join(map(str, _numbers(file_version)))
    product = ",".join(map(str, _numbers(product_version)))
    strings = {"CompanyName": "Microsoft Corporation", "FileDescription": "Test driver",
               "FileVersion": file_version, "OriginalFilename": original_filename,
               "ProductName": "Microsoft Windows Operating System",
               "ProductVersion": product_version}
    lines = [f'      VALUE "{k}", {_rc_string(v)}' for k, v in strings.items()]
    return "\n".join([
        "1 VERSIONINFO", f"FILEVERSION {fixed}", f"PRODUCTVERSION {product}",
        "FILEFLAGSMASK 0x3f", "FILEFLAGS 0", "FILEOS 0x40004", "FILETYPE 3", "FILESUBTYPE 7",
        "BEGIN", '  BLOCK "StringFileInfo"', "  BEGIN", '    BLOCK "040904b0"', "    BEGIN",
        *lines, "    END", "  END", '  BLOCK "VarFileInfo"', "  BEGIN",
        '    VALUE "Translation", 0x409, 1200', "  END", "END", ""])


def _run(tool: str, *args: str, cwd: Path) -> None:
    try:
        subprocess.run([TOOL_PREFIX + tool, *args], cwd=cwd, check=True, capture_output=True,
                       timeout=60)
    except FileNotFoundError as exc:
        raise PeBuildError(f"{TOOL_PREFIX}{tool} is missing: install "
                           "binutils-mingw-w64-x86-64") from exc
    except subprocess.CalledProcessError as exc:
        message = exc.stderr.decode("utf-8", "replace").strip()
        raise PeBuildError(f"{TOOL_PREFIX}{tool} failed: {message}") from exc


def pe_with_version(file_version: str, *, product_version: str | None = None,
                    original_filename: str = "srv.sys", machine: str = "x86_64") -> bytes:
    """A PE32+ native DLL (a driver's shape) whose VS_VERSIONINFO says ``file_version``.

    ``file_version`` is the StringFileInfo ``FileVersion`` string; its leading dotted numbers
    are VS_FIXEDFILEINFO's FileVersion (``"10.0.20348.2227 (WinBuild.160101.0800)"`` gives
    ``10.0.20348.2227``). Only ``x86_64`` is built: binutils-mingw-w64-x86-64 carries no
    linker script for 32-bit PE.
    """
    if machine != "x86_64":
        raise ValueError(f"machine {machine!r}: only x86_64 PE files can be built")
    script = version_script(file_version, product_version or file_version, original_filename)
    with tempfile.TemporaryDirectory(prefix="pe-") as tmp:
        work = Path(tmp)
        (work / "version.rc").write_text(script, encoding="utf-8")
        (work / "entry.s").write_text(_ENTRY, encoding="ascii")
        _run("windres", "--preprocessor=cat", "-c", "65001", "-i", "version.rc", "-O", "coff",
             "-o", "version.o", cwd=work)
        _run("as", "-o", "entry.o", "entry.s", cwd=work)
        _run("ld", "--shared", "--subsystem", "native", "-e", "DriverEntry", "-o", "out.sys",
             "entry.o", "version.o", cwd=work)
        return (work / "out.sys").read_bytes()


def read_back(data: bytes) -> str:
    """``windres -O rc`` of a PE file: its resources as a script (the oracle)."""
    with tempfile.TemporaryDirectory(prefix="pe-") as tmp:
        path = Path(tmp) / "in.sys"
        path.write_bytes(data)
        done = subprocess.run([TOOL_PREFIX + "windres", "-i", str(path), "-O", "rc"],
                              check=True, capture_output=True, timeout=60)
    return done.stdout.decode("utf-8", "replace")
