"""Installed packages from databases the real tools wrote: dpkg, rpm (sqlite), Berkeley DB."""

from __future__ import annotations

import shutil
import sqlite3
import struct
import subprocess
from pathlib import Path

import pytest

from vmimage.facts import rpmdb
from vmimage.facts.packages import read_packages
from vmimage.targets.rootdir import RootDirTarget

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb missing")
needs_rpm = pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpm not installed")
needs_db_load = pytest.mark.skipif(shutil.which("db5.3_load") is None,
                                   reason="db5.3-util not installed")


# --- dpkg -------------------------------------------------------------------------------------


def _deb(work: Path, name: str, version: str, arch: str) -> Path:
    src = work / "src" / name
    (src / "DEBIAN").mkdir(parents=True)
    (src / "etc" / name).mkdir(parents=True)
    (src / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n"
        "Maintainer: Test <test@example.org>\nDescription: a test package\n"
        " with a long description\n .\n over several lines\n")
    (src / "etc" / name / f"{name}.conf").write_text("setting=1\n")
    (src / "DEBIAN" / "conffiles").write_text(f"/etc/{name}/{name}.conf\n")
    deb = work / f"{name}.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "--root-owner-group", "-b", str(src), str(deb)],
                   check=True, capture_output=True)
    return deb


def _dpkg(root: Path, *args: str) -> None:
    subprocess.run(["dpkg", f"--root={root}", f"--log={root}/dpkg.log",
                    "--force-script-chrootless", "--force-bad-path", *args],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def dpkg_root(tmp_path_factory):
    """A root whose dpkg database dpkg itself wrote: installed, held, removed (config-files)."""
    work = tmp_path_factory.mktemp("debs")
    root = tmp_path_factory.mktemp("dpkgroot")
    admin = root / "var/lib/dpkg"
    for sub in ("updates", "info", "triggers"):
        (admin / sub).mkdir(parents=True)
    (admin / "status").write_text("")
    debs = [_deb(work, "waagent", "2.7.3.0-1", "all"),
            _deb(work, "openssl", "3.0.11-1~deb12u2", "amd64"),
            _deb(work, "libc6", "2.36-9+deb12u4", "amd64"),
            _deb(work, "network-manager", "1.42.4-1", "amd64")]
    _dpkg(root, "-i", *map(str, debs))
    _dpkg(root, "-r", "network-manager")
    subprocess.run(["dpkg", f"--root={root}", f"--log={root}/dpkg.log", "--set-selections"],
                   input="openssl hold\n",
                   text=True, check=True, capture_output=True)
    return root


def _dpkg_query(root: Path) -> dict[str, str]:
    """dpkg's own answer: packages whose db:Status-Abbrev says the files are installed."""
    out = subprocess.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f",
                          "${Package} ${Version} ${db:Status-Abbrev}\n"],
                         capture_output=True, text=True, check=True).stdout
    return {name: version for name, version, abbrev in
            (line.split() for line in out.splitlines()) if abbrev[1] == "i"}


@needs_dpkg
def test_dpkg_status_as_dpkg_query_reads_it(dpkg_root):
    db = read_packages(RootDirTarget(dpkg_root))
    assert db.manager == "dpkg"
    assert db.path == "/var/lib/dpkg/status"
    assert {n: p.version for n, p in db.packages.items()} == _dpkg_query(dpkg_root)
    assert db.get("network-manager") is None  # removed, only its conffiles remain
    held = db.get("openssl")
    assert held is not None and held.version == "3.0.11-1~deb12u2"  # "hold ok installed"
    agent = db.first("walinuxagent", "WALinuxAgent", "waagent")
    assert agent is not None and agent.name == "waagent" and agent.arch == "all"
    status = (dpkg_root / "var/lib/dpkg/status").read_text().splitlines()
    assert status[agent.line - 1] == "Package: waagent"


@needs_dpkg
def test_dpkg_update_journal_is_applied_like_dpkg(dpkg_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(dpkg_root, root, symlinks=True)
    # an interrupted dpkg run leaves its journal; dpkg replays it over the status file
    (root / "var/lib/dpkg/updates/0000").write_text(
        "Package: waagent\nStatus: install ok half-configured\nArchitecture: all\n"
        "Version: 2.9.1.1-1\nMaintainer: Test <test@example.org>\nDescription: agent\n")
    (root / "var/lib/dpkg/updates/0001").write_text(
        "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 2.36-9+deb12u7\nMaintainer: Test <test@example.org>\nDescription: libc\n")
    db = read_packages(RootDirTarget(root))
    assert {n: p.version for n, p in db.packages.items()} == _dpkg_query(root)
    assert db.get("waagent") is None
    libc = db.get("libc6")
    assert libc is not None and libc.source == "/var/lib/dpkg/updates/0001"


def test_dpkg_stanzas_by_hand_edge_cases(tmp_path):
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text(
        "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\n"
        "Multi-Arch: same\nVersion: 3.0.11-1~deb12u2\n\n"
        "Package: libssl3\nStatus: install ok installed\nArchitecture: i386\n"
        "Multi-Arch: same\nVersion: 3.0.11-1~deb12u2\n\n"
        "Package: half\nStatus: install reinstreq half-installed\nVersion: 1\n\n"
        "Package: unpacked\nStatus: install ok unpacked\nVersion: 1\n\n"
        "Package: purged\nStatus: purge ok not-installed\n\n\n\n"
        "Package: leaving\nStatus: deinstall ok installed\nVersion: 2\nArchitecture: all\n")
    db = read_packages(RootDirTarget(tmp_path))
    assert sorted(db.packages) == ["leaving", "libssl3"]
    ssl = db.get("libssl3")
    assert ssl is not None and ssl.arch == "amd64"  # the first architecture listed


def test_no_package_database(tmp_path):
    db = read_packages(RootDirTarget(tmp_path))
    assert (db.manager, db.path, db.packages) == ("none", None, {})
    assert db.first("waagent") is None


# --- rpm --------------------------------------------------------------------------------------

RPMS = [("WALinuxAgent", "", "2.2.53.1", "1.el8", "noarch"),
        ("openssl-libs", "1", "1.1.1k", "9.el8_7", "x86_64"),
        ("python3", "", "3.6.8", "51.el8", "x86_64"),
        ("omi", "0", "1.6.8", "1", "x86_64")]


@pytest.fixture(scope="module")
def rpm_files(tmp_path_factory):
    """Real .rpm packages built by rpmbuild."""
    top = tmp_path_factory.mktemp("rpmbuild")
    built = []
    for name, epoch, version, release, arch in RPMS:
        spec = top / f"{name}.spec"
        spec.write_text(f"Name: {name}\n" + (f"Epoch: {epoch}\n" if epoch else "")
                        + f"Version: {version}\nRelease: {release}\nSummary: test\n"
                        f"License: MIT\nBuildArch: {arch}\n%description\ntest\n%files\n")
        subprocess.run(["rpmbuild", "--quiet", "-bb", "--nodeps", "--define", f"_topdir {top}",
                        "--define", "_build_id_links none", str(spec)],
                       check=True, capture_output=True)
        built += list((top / "RPMS" / arch).glob(f"{name}-*.rpm"))
    return built


def _rpm_db(dbpath: Path, rpms: list[Path]) -> None:
    dbpath.mkdir(parents=True, exist_ok=True)
    subprocess.run(["rpm", "--dbpath", str(dbpath), "--initdb"], check=True)
    subprocess.run(["rpm", "--dbpath", str(dbpath), "-i", "--justdb", "--nodeps",
                    "--ignorearch", *map(str, rpms)], check=True, capture_output=True)


def _rpm_qa(dbpath: Path, backend: str = "sqlite") -> dict[str, str]:
    out = subprocess.run(["rpm", "--dbpath", str(dbpath), "--define", f"_db_backend {backend}",
                          "-qa", "--qf", "%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}"
                          " %{ARCH}\\n"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines()
            if not line.startswith("gpg-pubkey")}


@needs_rpm
@pytest.mark.parametrize("dbdir", ["var/lib/rpm", "usr/lib/sysimage/rpm"])
def test_rpm_sqlite_database_as_rpm_reads_it(rpm_files, tmp_path, dbdir):
    _rpm_db(tmp_path / dbdir, rpm_files)
    db = read_packages(RootDirTarget(tmp_path))
    assert db.manager == "rpm" and db.path == f"/{dbdir}/rpmdb.sqlite"
    assert {n: p.version for n, p in db.packages.items()} == _rpm_qa(tmp_path / dbdir)
    assert db.packages["openssl-libs"].version == "1:1.1.1k-9.el8_7"
    assert db.packages["WALinuxAgent"].arch == "noarch"
    assert db.first("waagent", "walinuxagent", "WALinuxAgent") == db.packages["WALinuxAgent"]
    assert db.problem is None


@needs_rpm
def test_rpm_sqlite_write_ahead_log_is_applied(rpm_files, tmp_path):
    """A database copied while its WAL still held a committed removal, as after a crash."""
    live = tmp_path / "live"
    _rpm_db(live, rpm_files)
    con = sqlite3.connect(live / "rpmdb.sqlite")
    try:
        con.execute("PRAGMA wal_autocheckpoint=0")
        hnum = next(h for h, blob in con.execute("SELECT hnum, blob FROM Packages")
                    if rpmdb.parse_header(blob).name == "python3")
        con.execute("DELETE FROM Packages WHERE hnum = ?", (hnum,))
        con.commit()
        image = tmp_path / "image/var/lib/rpm"
        image.mkdir(parents=True)
        for name in ("rpmdb.sqlite", "rpmdb.sqlite-wal"):
            shutil.copy(live / name, image / name)
    finally:
        con.close()
    assert (image / "rpmdb.sqlite-wal").stat().st_size > 0
    db = read_packages(RootDirTarget(tmp_path / "image"))
    assert "python3" not in db.packages
    assert {n: p.version for n, p in db.packages.items()} == _rpm_qa(image)


def _bdb_packages(path: Path, blobs: list[bytes], kind: str, pagesize: int) -> None:
    """A Berkeley DB Packages file written by Berkeley DB itself (db5.3_load), rpm's layout:
    4-byte native-endian header numbers as keys, header blobs as values, record 0 the counter.
    """
    lines = ["VERSION=3", "format=bytevalue", f"type={kind}", f"db_pagesize={pagesize}",
             "HEADER=END", " " + struct.pack("<I", 0).hex(),
             " " + struct.pack("<I", len(blobs)).hex()]
    for number, blob in enumerate(blobs, start=1):
        lines += [" " + struct.pack("<I", number).hex(), " " + blob.hex()]
    lines.append("DATA=END")
    subprocess.run(["db5.3_load", "-f", "/dev/stdin", str(path)], input="\n".join(lines) + "\n",
                   text=True, check=True)


@needs_rpm
@needs_db_load
@pytest.mark.parametrize(("kind", "pagesize"), [("hash", 4096), ("hash", 512), ("hash", 65536),
                                                ("btree", 1024)])
def test_rpm_berkeley_db_as_rpm_reads_it(rpm_files, tmp_path, kind, pagesize):
    """Small pages force overflow chains; 64 KiB pages keep headers on the page."""
    sqlite_db = tmp_path / "sqlite"
    _rpm_db(sqlite_db, rpm_files)
    con = sqlite3.connect(sqlite_db / "rpmdb.sqlite")
    blobs = [bytes(b) for (b,) in con.execute("SELECT blob FROM Packages ORDER BY hnum")]
    con.close()
    dbdir = tmp_path / "image/var/lib/rpm"
    dbdir.mkdir(parents=True)
    _bdb_packages(dbdir / "Packages", blobs, kind, pagesize)
    db = read_packages(RootDirTarget(tmp_path / "image"))
    assert db.manager == "rpm" and db.path == "/var/lib/rpm/Packages"
    expected = {name: (f"{epoch}:" if epoch else "") + f"{version}-{release}"
                for name, epoch, version, release, _ in RPMS}
    assert {n: p.version for n, p in db.packages.items()} == expected
    # rpm's own read-only Berkeley DB backend agrees
    assert _rpm_qa(dbdir, "bdb_ro") == expected


def test_corrupt_databases_are_reported_not_raised(tmp_path):
    (tmp_path / "var/lib/rpm").mkdir(parents=True)
    (tmp_path / "var/lib/rpm/Packages").write_bytes(b"\0" * 8192)
    db = read_packages(RootDirTarget(tmp_path))
    assert db.manager == "rpm" and db.packages == {}
    assert db.problem is not None and "Berkeley DB" in db.problem
    (tmp_path / "var/lib/rpm/rpmdb.sqlite").write_bytes(b"not a database" * 100)
    db = read_packages(RootDirTarget(tmp_path))
    assert db.path == "/var/lib/rpm/rpmdb.sqlite" and db.problem is not None


def test_header_parser_rejects_garbage():
    with pytest.raises(rpmdb.RpmDbError):
        rpmdb.parse_header(b"\0\0\0\1")
    with pytest.raises(rpmdb.RpmDbError):
        rpmdb.parse_header(struct.pack(">II", 100000, 10) + b"\0" * 32)


def test_ndb_database_is_named_not_read(tmp_path):
    (tmp_path / "usr/lib/sysimage/rpm").mkdir(parents=True)
    (tmp_path / "usr/lib/sysimage/rpm/Packages.db").write_bytes(b"RpmP" + b"\0" * 4092)
    db = read_packages(RootDirTarget(tmp_path))
    assert (db.manager, db.path, db.packages) == ("rpm", "/usr/lib/sysimage/rpm/Packages.db", {})
    assert db.problem is not None and "ndb" in db.problem
