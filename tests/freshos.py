"""Stock operating systems for the install tests: Debian 12 or Ubuntu 24.04 in a chroot.

``root_tarball(release)`` builds, once, what a fresh cloud VM of that release holds for our
purpose: ``mmdebstrap --variant=minbase`` plus ``python3``, ``sudo`` and ``ca-certificates``,
nothing of vmimage's. It is cached as a zstd tarball in ``<cache>/freshos`` (``cache_dir()`` of
``tests.imagebuild``), keyed by the release and the package list, built under a file lock.

``fresh_root(release, dest)`` extracts it into ``dest`` and yields a ``FreshRoot`` whose
``run()`` executes a shell script in it, as root or as ``alice`` (a normal user with
passwordless sudo, as cloud-init makes the default user), with a clean environment (no
variable of this machine leaks in: no pip configuration, no PATH of pyenv's). Every ``run()``
happens in a private mount namespace (``unshare --mount``) where ``/proc``, ``/sys``, ``/dev``
and ``/dev/pts`` are mounted for apt: the mounts die with the command, so nothing can stay
mounted on the host, whatever happens. ``/etc/resolv.conf`` is a copy of the host's, and the
certificate authorities the host trusts beyond the stock ones (a TLS-inspecting proxy's) are
added, as they would be to a VM in the same network. No service starts (``policy-rc.d``).

Debian's packages come from the mirror apt is configured with here (``imagebuild.mirrors()``);
Ubuntu's from mmdebstrap's own default for ``noble`` (``VMIMAGE_UBUNTU_MIRROR`` overrides it),
verified with the ``ubuntu-keyring`` package of Debian's ``bookworm-backports``.

Command line: ``python3 -m tests.freshos {debian12,ubuntu2404} [--shell]`` builds the tarball
(and, with ``--shell``, opens a root shell in a fresh copy).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests import imagebuild as ib

FORMAT = 1  # bump to rebuild the cached tarballs
USER = "alice"
PACKAGES = ("python3", "sudo", "ca-certificates")
REPO = Path(__file__).resolve().parent.parent

# What a copy of the checkout leaves out: what install.sh or the tests make, and caches.
CHECKOUT_IGNORE = (".git", ".venv", "node_modules", "out", "__pycache__", ".mypy_cache",
                   ".ruff_cache", ".pytest_cache", ".hypothesis", ".benchmarks",
                   ".import_linter_cache", "build", "dist", "*.egg-info", ".cache", "*.partial")


@dataclass(frozen=True)
class Release:
    """A distribution release as mmdebstrap builds it."""

    name: str
    suite: str
    components: tuple[str, ...]
    title: str
    extra: tuple[str, ...] = ()  # packages its minbase lacks that a stock system has

    @property
    def packages(self) -> tuple[str, ...]:
        """What goes into the root beyond minbase."""
        return PACKAGES + self.extra


RELEASES = {
    "debian12": Release("debian12", "bookworm", ("main",), "Debian 12"),
    # A stock Ubuntu has universe enabled (mmdebstrap is there); apt is not "required" there.
    "ubuntu2404": Release("ubuntu2404", "noble", ("main", "universe"), "Ubuntu 24.04",
                          extra=("apt",)),
}


class FreshOsUnavailable(RuntimeError):
    """The release's archive cannot be reached from here."""


def _key(release: Release) -> str:
    spec = {"suite": release.suite, "components": release.components,
            "packages": sorted(release.packages), "format": FORMAT}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def root_tarball(name: str) -> Path:
    """The cached tarball of a stock ``name`` root (``debian12`` or ``ubuntu2404``)."""
    release = RELEASES[name]
    key = _key(release)
    path = ib.cache_dir() / "freshos" / f"{name}-{key}.tar.zst"
    if path.exists():
        return path
    with ib.locked(f"freshos-{name}-{key}"):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            for old in path.parent.glob(f"{name}-*.tar.zst*"):  # other keys: outdated
                old.unlink(missing_ok=True)
            _build(release, path)
    return path


def _debian_sources(release: Release) -> list[str]:
    main, security = ib.mirrors()
    comps = " ".join(release.components)
    sources = [f"deb {main} {release.suite} {comps}"]
    for suite, uri in ((f"{release.suite}-updates", main),
                       (f"{release.suite}-security", security)):
        if uri and ib._suite_reachable(uri, suite):
            sources.append(f"deb {uri} {suite} {comps}")
    return sources


def _ubuntu_keyring(work: Path) -> Path:
    """Ubuntu's archive keyring, from Debian's ``ubuntu-keyring`` package in bookworm-backports
    (downloaded and verified by apt with a private state directory: the host is not touched)."""
    main, _ = ib.mirrors()
    state = work / "apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text(f"deb {main} bookworm-backports main\n")
    opts = ["-o", f"Dir::Etc::SourceList={state / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/nonexistent", "-o", f"Dir::State::Lists={state / 'lists'}",
            "-o", f"Dir::Cache={state / 'cache'}", "-o", "Debug::NoLocking=1",
            "-o", 'Acquire::Languages=none', "-q"]
    ib.run(["apt-get", *opts, "update"], timeout=300)
    debs = work / "debs"
    debs.mkdir(exist_ok=True)
    subprocess.run(["apt-get", *opts, "download", "ubuntu-keyring/bookworm-backports"],
                   cwd=debs, check=True, capture_output=True, stdin=subprocess.DEVNULL,
                   timeout=300)
    deb = next(debs.glob("ubuntu-keyring_*.deb"))
    ib.run(["dpkg-deb", "-x", deb, work / "keyring"])
    keyring = work / "keyring/usr/share/keyrings/ubuntu-archive-keyring.gpg"
    if not keyring.is_file():
        raise ib.ImageBuildError(f"{deb}: no ubuntu-archive-keyring.gpg")
    return keyring


def _build(release: Release, out: Path) -> None:
    tmpdir = ib.cache_dir() / "tmp"
    tmpdir.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=tmpdir, prefix=f"freshos-{release.name}-"))
    partial = out.with_name(f".{out.stem}.{os.getpid()}.tar.zst")
    try:
        cmd: list[str | os.PathLike[str]] = [
            "mmdebstrap", "--mode=root", "--variant=minbase", "--format=tar",
            "--include=" + ",".join(release.packages), "--components=" + ",".join(release.components),
            '--aptopt=Acquire::Retries "3"', '--aptopt=Acquire::Languages "none"']
        hook = Path("/usr/share/mmdebstrap/hooks/eatmydata")
        if hook.is_dir() and release.name.startswith("debian"):  # Ubuntu's: "not found"
            cmd.append(f"--hook-dir={hook}")
        if release.name.startswith("ubuntu"):
            cmd.append(f"--keyring={_ubuntu_keyring(work)}")
            cmd += [release.suite, partial]
            mirror = os.environ.get("VMIMAGE_UBUNTU_MIRROR")
            if mirror:
                comps = " ".join(release.components)
                cmd += [f"deb {mirror} {s} {comps}" for s in
                        (release.suite, f"{release.suite}-updates", f"{release.suite}-security")]
        else:
            cmd += [release.suite, partial, *_debian_sources(release)]
        start = time.monotonic()
        proc = ib.run(cmd, env={"TMPDIR": str(work)}, check=False, timeout=1800)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")
            if any(s in err for s in ("Failed to fetch", "Could not resolve", "Temporary failure",
                                      "Unable to connect", "Connection failed")):
                raise FreshOsUnavailable(f"{release.title}'s archive is not reachable: "
                                         f"{err.strip()[-600:]}")
            raise ib.ImageBuildError(f"mmdebstrap {release.suite} exited {proc.returncode}: "
                                     f"{err.strip()[-4000:]}")
        partial.rename(out)
        Path(f"{out}.json").write_text(json.dumps({
            "release": release.name, "packages": list(release.packages), "bytes": out.stat().st_size,
            "seconds": round(time.monotonic() - start, 1),
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
        ib._log(f"{release.title} root built in {time.monotonic() - start:.1f} s: {out}")
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# A fresh root to run things in


def copy_checkout(dest: Path, src: Path = REPO) -> Path:
    """Copy the checkout's files (not ``.git``, ``.venv``, ``node_modules``, ``out``, caches)."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(*CHECKOUT_IGNORE))
    return dest


ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"

# Run inside the new mount namespace: mount what apt and sudo need, then chroot.
ENTER_CHROOT = r"""
set -e
r=$1; shift
mount -t proc proc "$r/proc"
mount -t sysfs -o ro sysfs "$r/sys"
mount --bind /dev "$r/dev"
mount --bind /dev/pts "$r/dev/pts"
mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
exec chroot "$r" "$@"
"""


@dataclass
class FreshRoot:
    """An extracted stock root; ``run()`` executes in it."""

    path: Path
    release: Release

    def home(self, user: str | None) -> str:
        """The home directory (inside the root) of ``user`` (None: root)."""
        return "/root" if user is None else f"/home/{user}"

    def host_path(self, inner: str) -> Path:
        """The host path of a path inside the root."""
        return self.path / inner.lstrip("/")

    def run(self, script: str, *, user: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 900, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a bash script in the root (``user``: None for root, else a user name), with a
        login-like clean environment and no standard input; output captured as text."""
        home = self.home(user)
        base = {"PATH": USER_PATH if user else ROOT_PATH, "HOME": home,
                "USER": user or "root", "LOGNAME": user or "root", "LANG": "C.UTF-8",
                "SHELL": "/bin/bash", "TERM": "dumb", **(env or {})}
        inner = ["env", "-i", *(f"{k}={v}" for k, v in base.items()),
                 "bash", "-c", f"cd {shlex.quote(home)} && {script}"]
        if user:
            inner = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *inner]
        cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", ENTER_CHROOT,
               "enter", str(self.path), *inner]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=timeout, check=False, env={"PATH": ROOT_PATH})
        if check and proc.returncode != 0:
            raise ib.ImageBuildError(f"in {self.release.title}: {script!r} exited "
                                     f"{proc.returncode}: {(proc.stdout + proc.stderr)[-4000:]}")
        return proc

    def put(self, src: Path, inner: str, *, user: str | None = None, sparse: bool = False) -> str:
        """Copy a file or a directory tree into the root at ``inner``, owned by ``user``."""
        dest = self.host_path(inner)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            copy_checkout(dest, src)
        elif sparse:
            ib.sparse_copy(src, dest)
        else:
            shutil.copy2(src, dest)
        if user:
            self.run(f"chown -R {user}: {shlex.quote(inner)}", check=True)
        return inner


def _pem_blocks(path: Path) -> list[str]:
    text = path.read_text(errors="replace") if path.is_file() else ""
    return [f"-----BEGIN CERTIFICATE-----{body.split('-----END CERTIFICATE-----')[0]}"
            "-----END CERTIFICATE-----\n"
            for body in text.split("-----BEGIN CERTIFICATE-----")[1:]]


def _trust_host_cas(dest: Path) -> bool:
    """Give the root the certificate authorities this machine trusts beyond the stock ones (a
    TLS-inspecting proxy's), as a VM in the same network would be given them: otherwise pip
    cannot reach the package index through it. Returns whether there were any."""
    bundle = "etc/ssl/certs/ca-certificates.crt"
    stock = {"".join(b.split()) for b in _pem_blocks(dest / bundle)}
    extra = [b for b in _pem_blocks(Path("/") / bundle) if "".join(b.split()) not in stock]
    local = dest / "usr/local/share/ca-certificates"
    local.mkdir(parents=True, exist_ok=True)
    for i, block in enumerate(extra):
        (local / f"host-{i}.crt").write_text(block)
    return bool(extra)


@contextlib.contextmanager
def fresh_root(name: str, dest: Path) -> Iterator[FreshRoot]:
    """A stock ``name`` root extracted into ``dest`` (must not exist); removed afterwards."""
    tarball = root_tarball(name)
    ib.extract_root(tarball, dest)
    try:
        shutil.copyfile("/etc/resolv.conf", dest / "etc/resolv.conf")
        hostname = (dest / "etc/hostname").read_text().strip() or "localhost"
        with open(dest / "etc/hosts", "a") as fh:  # as cloud-init writes it: sudo resolves it
            fh.write(f"127.0.1.1\t{hostname}\n")
        # No service starts in a chroot (a VM would start them; here nobody would stop them).
        policy = dest / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        root = FreshRoot(dest, RELEASES[name])
        if _trust_host_cas(dest):
            root.run("update-ca-certificates >/dev/null", check=True)
        # The default user of a cloud image: in group sudo, no password needed.
        root.run(f"useradd -m -s /bin/bash -G sudo {USER} && "
                 f"echo '{USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-init-users && "
                 f"chmod 440 /etc/sudoers.d/90-cloud-init-users", check=True)
        yield root
    finally:
        leftover = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                    if line.split()[1].startswith(str(dest))]
        for mnt in reversed(leftover):  # never happens (private namespaces); just in case
            subprocess.run(["umount", "-l", mnt], check=False)
        ib.run(["rm", "-rf", "--one-file-system", dest], check=False)


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m tests.freshos NAME [--shell]``."""
    parser = argparse.ArgumentParser(prog="python3 -m tests.freshos",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(RELEASES))
    parser.add_argument("--shell", action="store_true", help="a root shell in a fresh copy")
    args = parser.parse_args(argv)
    print(root_tarball(args.name))
    if args.shell:
        (ib.cache_dir() / "tmp").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir=ib.cache_dir() / "tmp") as tmp, \
                fresh_root(args.name, Path(tmp) / "root") as root:
            subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                            ENTER_CHROOT, "enter", str(root.path), "bash", "-l"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
