"""LINUX-SECURITY-PATCHES on Debian, against the real ``bookworm-security`` suite of the mirror
the test root's own sources name (deb.debian.org: a package registry), with apt as the oracle.

- The compliant root, built from the security suite, is compared: the packages named are
  exactly those apt itself (``apt list --upgradable`` over the root, security suite only) says
  are upgradable: none when the root is current.
- A copy holding an older version of a package that has a security update, installed from
  the main suite with the real dpkg in a chroot: exactly that package is named, with the
  installed and the fixed version, and the check fails.
- ``vmimage security-data fetch`` then ``--security-data DIR`` gives the same verdict with
  the network cut (every request sent to a dead proxy); ``auto`` with the network cut and an
  empty cache skips with the reason; a file of DIR changed since it was fetched is one line
  naming it; ``off`` skips saying so.
- Advisories come from Debian's security tracker (``data/DSA/list``), which is not a package
  archive: these tests point it at a closed port on 127.0.0.1 (``VMIMAGE_DEBIAN_TRACKER``), so
  they reach no other host, and the verdict says the advisories are not named (the machine
  they were written on cannot resolve the tracker's host anyway). The mapping of a tracker
  list to the update is tested with a list in the tracker's format naming the real fixed
  version (the advisory number in it is not a real one).
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import imagebuild as ib
from tests.offer_support import run_cli
from vmimage.facts.versions import dpkg_compare

MAIN = "https://deb.debian.org/debian"
#: Packages safe to downgrade in a chroot (nothing else pins their exact version), in the
#: order tried: the first whose security version is newer than the main suite's is used.
CANDIDATES = ("python3-pyasn1", "libpng16-16", "libexpat1", "tzdata", "libbrotli1")
DEAD_PROXY = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
              "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
              "NO_PROXY": "", "no_proxy": ""}


@pytest.fixture(autouse=True, scope="module")
def _no_tracker() -> Iterator[None]:
    """Debian's tracker is not a package archive: point it at a closed port for this module."""
    saved = os.environ.get("VMIMAGE_DEBIAN_TRACKER")
    os.environ["VMIMAGE_DEBIAN_TRACKER"] = "http://127.0.0.1:9/security-tracker/data"
    yield
    if saved is None:
        os.environ.pop("VMIMAGE_DEBIAN_TRACKER", None)
    else:
        os.environ["VMIMAGE_DEBIAN_TRACKER"] = saved


def _index(url: str) -> dict[str, tuple[str, str]]:
    """A Packages index: name -> (version, Filename)."""
    with urllib.request.urlopen(url, timeout=120) as answer:
        text = lzma.decompress(answer.read()).decode()
    found = {}
    for block in text.split("\n\n"):
        fields = dict(re.findall(r"^(Package|Version|Filename): (.*)$", block, re.M))
        if "Package" in fields:
            found[fields["Package"]] = (fields["Version"], fields.get("Filename", ""))
    return found


def _installed(root: Path) -> dict[str, str]:
    status = (root / "var/lib/dpkg/status").read_text()
    return dict(re.findall(r"^Package: (.*)\n(?:.+\n)*?Version: (.*)", status, re.M))


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str, str, str]]:
    """(the compliant root, a copy with one package downgraded, its name, the installed
    (main suite) version, the security suite's version)."""
    current = ib.clone_tree()
    older = ib.clone_tree()
    try:
        security = _index(f"{MAIN}-security/dists/bookworm-security/main/binary-amd64/"
                          "Packages.xz")
        main = _index(f"{MAIN}/dists/bookworm/main/binary-amd64/Packages.xz")
        have = _installed(current)
        name = next((p for p in CANDIDATES if p in have and p in security and p in main
                     and dpkg_compare(security[p][0], main[p][0]) > 0
                     and have[p] == security[p][0]), None)
        if name is None:
            pytest.skip("no candidate package has a security update over the main suite now")
        deb = older / "tmp" / Path(main[name][1]).name
        urllib.request.urlretrieve(f"{MAIN}/{main[name][1]}", deb)
        ib.run(["chroot", str(older), "dpkg", "-i", "--force-downgrade",
                f"/tmp/{deb.name}"])
        deb.unlink()
        assert _installed(older)[name] == main[name][0]
        yield current, older, name, main[name][0], security[name][0]
    finally:
        shutil.rmtree(current.parent, ignore_errors=True)
        shutil.rmtree(older.parent, ignore_errors=True)


def _check(root: Path, *extra: str, env: dict[str, str] | None = None,
           profile: str = "azure-2015") -> tuple[int, Any]:
    """The rule alone, as JSON (azure-2015: the guide's "must", a fail; azure-current makes it
    a warning, as Microsoft's current tool does)."""
    res = run_cli("check", root, "--check", "LINUX-SECURITY-PATCHES", "--format", "json",
                  "--profile", profile, *extra, env=env)
    assert res.code in (0, 1), res.stderr
    finding = json.loads(res.stdout)["findings"][0]
    assert finding["check_id"] == "LINUX-SECURITY-PATCHES"
    return res.code, finding


def _apt_upgradable(root: Path, work: Path) -> set[str]:
    """What apt itself says is upgradable from the security suite (the oracle)."""
    sources = work / "security.list"
    sources.write_text("deb http://deb.debian.org/debian-security bookworm-security main\n")
    for path in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
        (root / path).mkdir(parents=True, exist_ok=True)
    options = ["-o", f"Dir={root}", "-o", f"Dir::State::status={root}/var/lib/dpkg/status",
               "-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/nonexistent",
               "-o", "APT::Sandbox::User=root"]
    ib.run(["apt-get", "-qq", *options, "update"])
    listed = subprocess.run(["apt", "list", "--upgradable", *options], capture_output=True,
                            text=True, check=True).stdout
    return {line.split("/", 1)[0] for line in listed.splitlines() if "/" in line}


def test_the_current_root_is_judged_as_apt_judges_it(roots: tuple[Path, Path, str, str, str],
                                                      tmp_path: Path) -> None:
    current = roots[0]
    cache = {"VMIMAGE_CACHE": str(tmp_path / "cache")}
    code, finding = _check(current, "--security-data", "auto", env=cache)
    oracle = _apt_upgradable(current, tmp_path)
    named = {e["seen"].split()[0] for e in finding["evidence"]} if finding["status"] == "fail" \
        else set()
    assert named == oracle
    if not oracle:
        assert code == 0 and finding["status"] == "pass", finding
        assert "none has a security update" in finding["message"]
        assert "bookworm-security" in finding["message"] and "signed by" in finding["message"]


def test_an_older_package_is_named_with_its_fixed_version(
        roots: tuple[Path, Path, str, str, str], tmp_path: Path) -> None:
    _, older, name, installed, fixed = roots
    cache = {"VMIMAGE_CACHE": str(tmp_path / "cache")}
    code, finding = _check(older, "--security-data", "auto", env=cache)
    assert code == 1 and finding["status"] == "fail", finding
    mine = [e for e in finding["evidence"] if e["seen"] == f"{name} {installed}"]
    assert len(mine) == 1 and mine[0]["required"].startswith(f">= {fixed}")
    assert mine[0]["path"] == "/var/lib/dpkg/status" and mine[0]["line"]
    assert f"{name} {installed} -> {fixed}" in finding["message"]
    assert {e["seen"].split()[0] for e in finding["evidence"]} == \
        _apt_upgradable(older, tmp_path)
    # The tracker (pointed at a closed port here) cannot be read: advisories are not named.
    assert "advisories not named" in finding["message"]
    # Today's rules make it a warning (exit 0), as Microsoft's tool does.
    code, finding = _check(older, "--security-data", "auto", env=cache, profile="azure-current")
    assert code == 0 and finding["status"] == "warning"


def test_prepared_data_replays_without_network(roots: tuple[Path, Path, str, str, str],
                                               tmp_path: Path) -> None:
    _, older, name, installed, fixed = roots
    prepared = tmp_path / "data"
    fetched = run_cli("security-data", "fetch", older, prepared,
                      env={"VMIMAGE_CACHE": str(tmp_path / "cache")})
    assert fetched.code == 0, fetched.stderr
    assert f"{name} {installed} -> {fixed}" in fetched.stdout
    assert (prepared / "manifest.json").is_file()
    # The network cut: every request goes to a dead proxy.
    code, finding = _check(older, "--security-data", str(prepared), env=DEAD_PROXY)
    assert code == 1 and f"{name} {installed} -> {fixed}" in finding["message"]
    # auto, cut off, with an empty cache: a skip with the reason, never a crash.
    code, finding = _check(older, "--security-data", "auto",
                           env={**DEAD_PROXY, "VMIMAGE_CACHE": str(tmp_path / "empty")})
    assert code == 0 and finding["status"] == "skip"
    assert "cannot be reached" in finding["message"] and "InRelease" in finding["message"]
    # off says so.
    code, finding = _check(older, "--security-data", "off")
    assert finding["status"] == "skip" and "--security-data off" in finding["message"]
    # A file of DIR changed after the fetch: one line naming it.
    kept = next((prepared / "files").iterdir())
    kept.write_bytes(b"not what was fetched")
    code, finding = _check(older, "--security-data", str(prepared), env=DEAD_PROXY)
    assert finding["status"] == "skip" and "was changed since it was fetched" in \
        finding["message"] and "\n" not in finding["message"]
    # A directory that was never prepared: exit 2, one line.
    res = run_cli("check", older, "--security-data", str(tmp_path))
    assert res.code == 2 and "security-data fetch" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_tracker_list_names_the_advisory(roots: tuple[Path, Path, str, str, str],
                                           tmp_path: Path) -> None:
    """The tracker's DSA list maps the fix to its advisory. A prepared directory whose list
    (in the tracker's format, written here: the tracker is unreachable from this machine)
    names the real fixed version of the package."""
    from vmimage.secdata.debian import tracker

    _, older, name, installed, fixed = roots
    prepared = tmp_path / "data"
    assert run_cli("security-data", "fetch", older, prepared,
                   env={"VMIMAGE_CACHE": str(tmp_path / "cache")}).code == 0
    source = _source_of(older, name)
    dsa = (f"[29 Nov 2026] DSA-9999-1 {source} - security update\n"
           f"\t{{CVE-2026-0001}}\n\t[bookworm] - {source} {fixed}\n"
           f"[01 Jan 2020] DSA-1000-1 {source} - security update\n"
           f"\t[bookworm] - {source} 0.1-1\n")
    dla = "[01 Dec 2026] DLA-1-1 other - security update\n\t[bookworm] - other 1.0-1\n"
    manifest = json.loads((prepared / "manifest.json").read_text())
    for kind, text in (("DSA", dsa), ("DLA", dla)):
        digest = hashlib.sha256(text.encode()).hexdigest()
        (prepared / "files" / digest).write_text(text)
        manifest["files"][f"{tracker()}/{kind}/list"] = {"sha256": digest, "fetched": ""}
    (prepared / "manifest.json").write_text(json.dumps(manifest))
    code, finding = _check(older, "--security-data", str(prepared), env=DEAD_PROXY)
    assert code == 1
    mine = next(e for e in finding["evidence"] if e["seen"] == f"{name} {installed}")
    # The old advisory (fixed below the installed version) is not named.
    assert mine["required"] == f">= {fixed} (DSA-9999-1)"


def _source_of(root: Path, name: str) -> str:
    status = (root / "var/lib/dpkg/status").read_text()
    block = next(b for b in status.split("\n\n") if f"Package: {name}\n" in b + "\n")
    found = re.search(r"^Source: (\S+)", block, re.M)
    return found.group(1) if found else name


def test_packages_without_security_support_are_named(roots: tuple[Path, Path, str, str, str],
                                                     tmp_path: Path) -> None:
    """debian-security-support's lists in the image (as its package installs them) name a
    package whose support ended: it is named, with why; a current image then warns."""
    current, _, name, _, _ = roots
    lists = current / "usr/share/debian-security-support"
    assert not lists.exists()  # the package is not in the test root
    lists.mkdir(parents=True)
    source = _source_of(current, name)
    ended = lists / "security-support-ended.deb12"
    limited = lists / "security-support-limited.deb12"
    ended.write_text("# Format: package last-version end-of-support [details]\n"
                     f"{source}  0.1-1  2026-06-10  https://www.debian.org/releases/\n")
    limited.write_text("# Format: source-package free-form details\n"
                       "nosuchpackage  Only the newest upstream release is supported\n")
    try:
        cache = {"VMIMAGE_CACHE": str(tmp_path / "cache")}
        code, finding = _check(current, "--security-data", "auto", env=cache)
        without = [e for e in finding["evidence"] if "security support ended" in
                   (e["required"] or "")]
        assert [e["seen"].split()[0] for e in without] == [name]
        assert "on 2026-06-10" in without[0]["required"]
        assert f"without full security support: {name}" in finding["message"]
        if finding["status"] != "fail":  # no update either: a warning, not a pass
            assert finding["status"] == "warning" and code == 0
    finally:
        shutil.rmtree(lists)
