"""Installing vmimage the ways docs/install.md gives, on machines that have nothing of ours.

- ``scripts/install.sh`` on a stock Debian 12 and Ubuntu 24.04 (``tests.freshos``: minbase +
  python3, sudo, ca-certificates, in a chroot), as root and as a normal user with sudo: it
  succeeds with no standard input, installs nothing into the system Python, and the venv's
  ``vmimage`` checks a compliant 30 GiB image. The time it took is printed (the issue's aim is
  under a minute), never asserted: run with ``-rP`` to see it.
- The wheel and sdist that ``python -m build`` makes: only the package and its data, and as an
  unprivileged user, in a fresh venv and with pipx, ``vmimage check`` passes the sample image
  with no root and no qemu on PATH.
- ``scripts/certify.sh`` builds the sample image and leaves no loop device and no mount.

They need root, the network (the distributions' archives, the package index) and mmdebstrap.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import freshos
from tests import imagebuild as ib

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, mmdebstrap, setpriv)"),
    pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="needs mmdebstrap"),
]


def _report(what: str, seconds: float, record: object) -> None:
    line = f"{what}: {seconds:.1f} s"
    print(line)
    record(what, round(seconds, 1))  # type: ignore[operator]


# --------------------------------------------------------------------------------------------
# a. scripts/install.sh on a stock Debian 12 / Ubuntu 24.04, as root and as a user with sudo

# Ubuntu as root costs another minute of CI for little more than Debian as root proves.
_CASES = [("debian12", "root"), ("debian12", "user"), ("ubuntu2404", "user"),
          pytest.param("ubuntu2404", "root", marks=pytest.mark.skipif(
              os.environ.get("VMIMAGE_TEST_ALL_OS") != "1",
              reason="set VMIMAGE_TEST_ALL_OS=1 to run install.sh as root on Ubuntu too"))]


# The system Python knows no vmimage (-I: not the checkout in the current directory either).
NO_VMIMAGE = "cd / && /usr/bin/python3 -I -c 'import vmimage'"


@pytest.mark.parametrize(("release", "who"), _CASES)
def test_install_script_on_a_stock_system(release: str, who: str, compliant_vhd: Path,
                                          tmp_path: Path, record_property: object) -> None:
    try:
        freshos.root_tarball(release)
    except freshos.FreshOsUnavailable as exc:
        pytest.skip(str(exc))
    user = None if who == "root" else freshos.USER
    title = f"{freshos.RELEASES[release].title} as {'root' if user is None else 'a user with sudo'}"
    with freshos.fresh_root(release, tmp_path / "root") as root:
        home = root.home(user)
        root.put(REPO, f"{home}/vmimage", user=user)
        root.put(compliant_vhd, f"{home}/sample.vhd", user=user, sparse=True)
        assert root.run(NO_VMIMAGE).returncode != 0

        start = time.monotonic()
        first = root.run("cd vmimage && ./scripts/install.sh", user=user)
        took = time.monotonic() - start
        assert first.returncode == 0, first.stdout + first.stderr
        _report(f"install.sh on {title}", took, record_property)
        print(first.stderr)
        venv = f"{home}/vmimage/.venv"
        assert f"is installed: {venv}/bin/vmimage" in first.stdout

        start = time.monotonic()
        again = root.run("cd vmimage && ./scripts/install.sh", user=user)
        _report(f"install.sh again on {title}", time.monotonic() - start, record_property)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "apt-get" not in again.stderr and "install -e" not in again.stderr

        # Nothing of ours in the system Python (PEP 668), nothing of root's in the checkout.
        assert root.run(NO_VMIMAGE).returncode != 0
        if user is not None:
            owned = root.run("find vmimage -user root", user=user)
            assert owned.stdout == "", owned.stdout
        version = root.run(f"{venv}/bin/vmimage --version || {venv}/bin/vmimage --help")
        assert version.returncode == 0, version.stdout + version.stderr
        check = root.run(f"{venv}/bin/vmimage check sample.vhd", user=user)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "PASSES" in check.stdout


# --------------------------------------------------------------------------------------------
# b. The wheel and the sdist, installed as an unprivileged user

PACKAGE_DATA = ("vmimage/py.typed", "vmimage/profiles/azure-current.toml",
                "vmimage/profiles/azure-2015.toml", "vmimage/report/templates/",
                "vmimage/schemas/")


@contextlib.contextmanager
def _nobody_dir() -> Iterator[Path]:
    """A directory ``nobody`` owns, under a path it can reach (pytest's tmp is root's 0700)."""
    base = Path(tempfile.mkdtemp(prefix="vmimage-nobody-"))
    try:
        base.chmod(0o755)
        home = base / "home"
        home.mkdir()
        shutil.chown(home, "nobody", "nogroup")
        yield home
    finally:
        shutil.rmtree(base, ignore_errors=True)


SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"


def _as_nobody(cmd: list[str], home: Path, path: str, timeout: float = 600,
               **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {"HOME": str(home), "PATH": path, "LANG": "C.UTF-8", "TERM": "dumb",
                "NO_COLOR": "1", "COLUMNS": "200", **env}
    return subprocess.run([SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "--", *cmd], capture_output=True, text=True, env=full_env,
                          cwd=home, stdin=subprocess.DEVNULL, timeout=timeout, check=False)


def _wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return {n for n in zf.namelist() if ".dist-info/" not in n}


def test_wheel_installs_and_checks_without_root_or_qemu(compliant_vhd: Path, tmp_path: Path,
                                                        record_property: object) -> None:
    pytest.importorskip("build")
    python = Path("/usr/bin/python3")
    if not python.exists() or subprocess.run([python, "-c", "import ensurepip"],
                                             check=False).returncode != 0:
        pytest.skip("needs the distribution's python3 with python3-venv")
    src = freshos.copy_checkout(tmp_path / "src")
    dist = tmp_path / "dist"
    start = time.monotonic()
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(src)],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=600, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    _report("python -m build (sdist, then the wheel from it)", time.monotonic() - start,
            record_property)
    (wheel,) = dist.glob("vmimage-*.whl")
    (sdist,) = dist.glob("vmimage-*.tar.gz")

    files = _wheel_files(wheel)
    tops = {name.split("/")[0] for name in files}
    assert tops == {"vmimage"}, tops  # no tests/, scripts/, bench/, typings/
    for data in PACKAGE_DATA:
        assert any(name.startswith(data) for name in files), data
    assert any(n.startswith("vmimage/schemas/") and n.endswith(".json") for n in files)
    assert any(n.startswith("vmimage/report/templates/") for n in files)
    with zipfile.ZipFile(wheel) as zf:
        entry = next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))
        assert "vmimage = vmimage.cli:main" in zf.read(entry).decode()

    # The sdist builds the same wheel.
    again = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(tmp_path / "from-sdist"), str(sdist)], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    (wheel2,) = (tmp_path / "from-sdist").glob("vmimage-*.whl")
    assert _wheel_files(wheel2) == files

    with _nobody_dir() as home:
        shutil.copy(wheel, home / wheel.name)
        image = home / "sample.vhd"
        try:
            os.link(compliant_vhd, image)
        except OSError:
            ib.sparse_copy(compliant_vhd, image)
        image.chmod(0o644)
        system_path = "/usr/bin:/bin"

        # A fresh venv (pip from the package index), the wheel into it.
        start = time.monotonic()
        venv = home / "venv"
        made = _as_nobody([str(python), "-m", "venv", "--upgrade-deps", str(venv)], home,
                          system_path)
        assert made.returncode == 0, made.stderr[-3000:]
        # --only-binary: every dependency has a wheel, nothing needs a compiler.
        pip = _as_nobody([str(venv / "bin/pip"), "install", "-q", "--only-binary=:all:",
                          str(home / wheel.name)], home, system_path)
        assert pip.returncode == 0, pip.stderr[-3000:]
        _report("venv + pip install of the wheel as nobody", time.monotonic() - start,
                record_property)
        _check_as_nobody(venv / "bin", image, home)

        # pipx (itself from the package index) with its home and bin in nobody's home.
        start = time.monotonic()
        tools = home / "tools"
        made = _as_nobody([str(python), "-m", "venv", str(tools)], home, system_path)
        assert made.returncode == 0, made.stderr[-3000:]
        got = _as_nobody([str(tools / "bin/pip"), "install", "-q", "pipx"], home, system_path)
        assert got.returncode == 0, got.stderr[-3000:]
        pipx_env = {"PIPX_HOME": str(home / "pipx"), "PIPX_BIN_DIR": str(home / "bin"),
                    "PIPX_MAN_DIR": str(home / "man")}
        pipx = _as_nobody([str(tools / "bin/pipx"), "install", "--pip-args=--only-binary=:all:",
                           str(home / wheel.name)], home,
                          f"{tools / 'bin'}:{system_path}", **pipx_env)
        assert pipx.returncode == 0, pipx.stdout[-3000:] + pipx.stderr[-3000:]
        _report("pipx install of the wheel as nobody", time.monotonic() - start, record_property)
        _check_as_nobody(home / "bin", image, home)


def _check_as_nobody(bindir: Path, image: Path, home: Path) -> None:
    path = str(bindir)
    assert shutil.which("qemu-img", path=path) is None
    assert shutil.which("qemu-io", path=path) is None
    proc = _as_nobody([str(bindir / "vmimage"), "check", str(image)], home, path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "PASSES" in proc.stdout


# --------------------------------------------------------------------------------------------
# c. certify.sh: the sample image is built, checked, and nothing stays mounted


def _mounts_and_loops() -> list[str]:
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True,
                           check=False).stdout.splitlines()
    return Path("/proc/mounts").read_text().splitlines() + loops


def test_certify_builds_the_sample_and_leaves_no_mount(tmp_path: Path,
                                                       record_property: object) -> None:
    # A cache of its own (the root tarball copied in): a reflink pool mounted by this run would
    # show under tmp_path, and nothing another test mounts at the same time is mistaken for it.
    cache = tmp_path / "cache"
    (cache / "roots").mkdir(parents=True)
    tarball = ib.root_tarball()
    shutil.copyfile(tarball, cache / "roots" / tarball.name)
    checkout = freshos.copy_checkout(tmp_path / "vmimage")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VMIMAGE_", "VIRTUAL_ENV"))}
    env.update(VMIMAGE_CACHE=str(cache), VMIMAGE_VENV=str(tmp_path / "venv"))
    try:
        before = set(_mounts_and_loops())
        start = time.monotonic()
        proc = subprocess.run([str(checkout / "scripts/certify.sh"), "--format", "json"],
                              capture_output=True, text=True, env=env, cwd=tmp_path,
                              stdin=subprocess.DEVNULL, timeout=900, check=False)
        _report("certify.sh: install into a new venv, build the sample, check it",
                time.monotonic() - start, record_property)
        print(proc.stderr[-3000:])
        after = set(_mounts_and_loops())
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        # stdout is the report alone: the install's and the build's messages went to stderr.
        report = json.loads(proc.stdout)
        assert report["summary"]["verdict"] == "pass"
        assert (checkout / "out/sample.vhd").is_file()
        assert [line for line in after - before if str(tmp_path) in line] == []
        assert [line for line in after if str(tmp_path) in line] == []
        assert not (cache / "pool.img").exists()
        assert (cache / "store").is_dir()  # the plain store, no pool
    finally:  # 2.5 GB of trees and disks: not left for pytest's last three runs
        for big in (cache, checkout / "out", tmp_path / "venv"):
            ib.run(["rm", "-rf", "--one-file-system", big], check=False)
