"""Real BitLocker volumes for the tests, from a package registry.

No Linux tool writes a BitLocker volume, so the volumes come from where Windows made them:
the test data of dissect.fve (Fox-IT's BitLocker and LUKS parser), which its sdist on PyPI
ships under ``tests/_data/bde/`` (about 60 MiB volumes gzipped to 90 KiB each: AES-CBC and
AES-XTS, 128 and 256 bits, with and without the Elephant diffuser, password, recovery
password and startup-key protectors, a suspended volume (clear key), a decrypted one and a
truncated Vista volume). The sdist is fetched once with pip (the ordinary client), checked
against a pinned SHA-256, and the volumes are unpacked, sparse, into
``<cache>/bitlocker/<sdist>/`` (:func:`tests.imagebuild.cache_dir`), under a file lock so
xdist workers fetch it once. Nothing of it is committed (the data is AGPL-3.0 dissect.fve's).

When the sdist cannot be had, a test fails with the reason under CI (CI=true) and is skipped
elsewhere (no network on a developer's machine); a checksum mismatch always fails.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests import imagebuild as ib

REQUIREMENT = "dissect.fve==4.6"
SDIST = "dissect_fve-4.6.tar.gz"
SHA256 = "49141e62cd3cc735c324f3c76c8635b3fbd0613316b2f823ee78a481c7c543fe"
MEMBER = "dissect_fve-4.6/tests/_data/bde/{name}.bin.gz"
#: The volumes the tests use (win7_partial, 2.8 GB unpacked, and eow_partial are left out).
VOLUMES = ("aes-xts_128", "aes-xts_256", "aes_128", "aes_256", "aes_128_diffuser",
           "aes_256_diffuser", "recovery_password", "recovery_key", "startup_key",
           "suspended", "decrypted", "vista")
_CHUNK = 1 << 16


def fixture_dir() -> Path:
    """Where the unpacked volumes live (read only)."""
    return ib.cache_dir() / "bitlocker" / SDIST.removesuffix(".tar.gz")


def volume(name: str) -> Path:
    """The unpacked BitLocker volume ``name`` (one of :data:`VOLUMES`; read only!),
    fetched and unpacked on first use."""
    if name not in VOLUMES:
        raise ValueError(f"no BitLocker fixture {name!r}")
    path = fixture_dir() / f"{name}.bin"
    if not path.exists():
        with ib.locked("bitlocker-fixture"):
            if not path.exists():
                _unpack(_sdist())
    return path


def _unavailable(reason: str) -> None:
    message = (f"the BitLocker fixture volumes ({REQUIREMENT}'s sdist from PyPI) cannot be "
               f"fetched: {reason}")
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must reach PyPI)")
    pytest.skip(message + "; CI runs these tests")


def _sdist() -> Path:
    """The sdist, downloaded once into the cache and checked against :data:`SHA256`."""
    dest = fixture_dir().parent / SDIST
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                     "--no-binary", ":all:", "--disable-pip-version-check", "--dest", tmp,
                     REQUIREMENT], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                    timeout=600, check=False)
            except subprocess.TimeoutExpired:
                _unavailable("pip download timed out after 600 s")
            got = Path(tmp) / SDIST
            if proc.returncode != 0 or not got.exists():
                lines = (proc.stderr or proc.stdout).strip().splitlines()
                _unavailable(f"pip download exited {proc.returncode}: "
                             f"{lines[-1] if lines else 'no output'}")
            _verify(got)
            got.rename(dest)
    _verify(dest)
    return dest


def _verify(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        path.unlink(missing_ok=True)
        pytest.fail(f"{path.name}: SHA-256 {digest}, expected {SHA256}: not the sdist these "
                    "tests were written against")


def _unpack(sdist: Path) -> None:
    """Every volume of :data:`VOLUMES`, gunzipped into a sparse file (zero runs as holes)."""
    out = fixture_dir()
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as tar:
        for name in VOLUMES:
            member = tar.extractfile(MEMBER.format(name=name))
            if member is None:
                pytest.fail(f"{sdist.name} has no {MEMBER.format(name=name)}")
            tmp = out / f".{name}.{os.getpid()}.tmp"
            with gzip.GzipFile(fileobj=member) as src, tmp.open("wb") as dst:
                size = 0
                while chunk := src.read(_CHUNK):
                    if chunk.count(0) == len(chunk):
                        dst.seek(len(chunk), os.SEEK_CUR)
                    else:
                        dst.write(chunk)
                    size += len(chunk)
                dst.truncate(size)
            tmp.rename(out / f"{name}.bin")


def copy_into(name: str, disk: Path, offset: int, length: int) -> None:
    """Put volume ``name`` into ``disk`` at ``offset``, replacing ``length`` bytes there (the
    rest of the range is zeroed, so no byte of what was there before survives)."""
    if volume(name).stat().st_size > length:
        raise ValueError(f"the {name} volume does not fit in {length} bytes")
    subprocess.run(["fallocate", "--punch-hole", "--keep-size", "--offset", str(offset),
                    "--length", str(length), str(disk)], check=True)
    with volume(name).open("rb") as src, disk.open("r+b") as dst:
        dst.seek(offset)
        shutil.copyfileobj(src, dst, _CHUNK)
