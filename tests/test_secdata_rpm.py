"""The RPM side of "all security patches are installed", on real parts: a Rocky 9 root whose
RPM database ``rpm --root`` wrote, packages built by ``rpmbuild``, repositories made by
``createrepo_c`` with an ``updateinfo.xml`` (in the form AlmaLinux and Red Hat publish) added
by ``modifyrepo_c``, served over HTTP from 127.0.0.1, read through the real cache, recording
and prepared-directory sources.
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests import distro_roots as dr
from tests import imagebuild as ib
from vmimage.facts import Facts
from vmimage.facts.security import SecurityDataUnavailable, SecurityVerdict, Update
from vmimage.secdata.fetch import CachedWeb, Prepared, Recording, Source
from vmimage.secdata.rpm import verdict
from vmimage.targets.rootdir import RootDirTarget

LIB = "/usr/lib64/libssl.so.3"
OLD_SSL = dr.Rpm("openssl-libs", "3.0.7", "24.el9", {LIB: ("libssl 3.0.7-24\n", 0o755)}, epoch=1)
NEW_SSL = dr.Rpm("openssl-libs", "3.0.7", "25.el9", {LIB: ("libssl 3.0.7-25\n", 0o755)}, epoch=1)
CURL = dr.Rpm("curl", "7.76.1", "29.el9", {"/usr/bin/curl": ("curl\n", 0o755)})
FIXED = Update("openssl-libs", "1:3.0.7-24.el9", "1:3.0.7-25.el9", ("ALSA-2024:2447",),
               "test-baseos")
ISSUED = "2024-04-30 00:00:00"


def _package(name: str, evr: str, arch: str) -> str:
    epoch, _, rest = evr.rpartition(":")
    version, release = rest.rsplit("-", 1)
    return (f'        <package name="{name}" version="{version}" release="{release}" '
            f'epoch="{epoch or 0}" arch="{arch}" src="{name}-{rest}.src.rpm">\n'
            f"          <filename>{name}-{rest}.{arch}.rpm</filename>\n"
            f'          <sum type="sha256">{"0" * 64}</sum>\n'
            "        </package>\n")


def _update(advisory: str, kind: str, issued: str, packages: list[tuple[str, str, str]],
            module: str = "") -> str:
    """One ``<update>`` as AlmaLinux 9's updateinfo writes it (the RHSA as a reference)."""
    severity = "Moderate" if kind == "security" else "None"
    rhsa = advisory.replace("ALSA", "RHSA").replace("ALBA", "RHBA")
    listed = "".join(_package(*p) for p in packages)
    return f"""\
  <update from="packager@almalinux.org" status="final" type="{kind}" version="2">
    <id>{advisory}</id>
    <title>{severity}: {packages[0][0]} update</title>
    <issued date="{issued}"/>
    <updated date="{issued}"/>
    <rights>Copyright 2024 AlmaLinux OS</rights>
    <release>AlmaLinux 9</release>
    <pushcount>1</pushcount>
    <severity>{severity}</severity>
    <summary>{severity}: {packages[0][0]} update</summary>
    <description>An update for {packages[0][0]} is now available.</description>
    <solution>For details on how to apply this update, see the AlmaLinux wiki.</solution>
    <references>
      <reference href="https://errata.almalinux.org/9/{advisory.replace(':', '-')}.html"
                 id="{advisory}" title="{advisory}" type="self"/>
      <reference href="https://access.redhat.com/errata/{rhsa}" id="{rhsa}" title="{rhsa}"
                 type="rhsa"/>
    </references>
    <pkglist>
      <collection short="almalinux-9-for-x86_64-baseos-rpms__9_4_default">
        <name>almalinux-9-for-x86_64-baseos-rpms__9_4_default</name>
{module}{listed}      </collection>
    </pkglist>
  </update>
"""


UPDATEINFO = ('<?xml version="1.0" encoding="UTF-8"?>\n<updates>\n' + "".join([
    # the fix: openssl-libs 1:3.0.7-25 (its source package and aarch64 build listed too)
    _update("ALSA-2024:2447", "security", ISSUED, [
        ("openssl", "1:3.0.7-25.el9", "src"), ("openssl-libs", "1:3.0.7-25.el9", "x86_64"),
        ("openssl-libs", "1:3.0.7-25.el9", "aarch64")]),
    # an older fix the image already has
    _update("ALSA-2023:3722", "security", "2023-06-20 00:00:00",
            [("openssl-libs", "1:3.0.7-16.el9_2", "x86_64")]),
    # a newer build for another architecture only
    _update("ALSA-2024:2500", "security", "2024-04-01 00:00:00",
            [("openssl-libs", "1:3.0.7-27.el9", "aarch64")]),
    # a bug fix, newer than everything: never a security patch, nor the data's date
    _update("ALBA-2024:5555", "bugfix", "2024-06-01 00:00:00",
            [("openssl-libs", "1:3.0.7-26.el9", "x86_64")]),
    # a package the image does not have
    _update("ALSA-2024:3000", "security", "2024-03-01 00:00:00",
            [("libssh", "0.10.4-13.el9", "x86_64")]),
    # exactly the installed curl: up to date
    _update("ALSA-2024:1111", "security", "2024-02-01 00:00:00",
            [("curl", "7.76.1-29.el9", "x86_64")]),
    # a module stream's build: only for an image that enables walinuxagent:2.10
    _update("ALSA-2024:7777", "security", "2024-01-01 00:00:00",
            [("WALinuxAgent", "2.10.0.8-1.el9", "noarch")],
            module='        <module name="walinuxagent" stream="2.10" version="9040020240101" '
                   'context="9" arch="x86_64"/>\n'),
]) + "</updates>\n")


@dataclass
class World:
    root: Path
    www: Path


def _repo(www: Path, name: str, rpms: list[Path], *modify: str, updateinfo: Path | None,
          ) -> Path:
    """``www/NAME/9/x86_64``: the RPMs, ``createrepo_c``, then ``modifyrepo_c`` when given
    an updateinfo."""
    where = www / name / "9" / "x86_64"
    where.mkdir(parents=True)
    for rpm in rpms:
        shutil.copy(rpm, where / rpm.name)
    ib.run(["createrepo_c", "--quiet", where])
    if updateinfo is not None:
        ib.run(["modifyrepo_c", *modify, updateinfo, where / "repodata"])
    return where


@pytest.fixture(scope="module")
def world(rpms: dr.RpmBuilder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = dr.rhel_root(rpms, dr.ROCKY_9)
    dr.rpm_install(root, [rpms.build(OLD_SSL), rpms.build(CURL)])
    www = tmp_path_factory.mktemp("www")
    built = [rpms.build(NEW_SSL), rpms.build(CURL)]
    (www / "updateinfo.xml").write_text(UPDATEINFO)
    (www / "bad").mkdir()
    (www / "bad" / "updateinfo.xml").write_bytes(b"\x00garbage, not XML\xff")
    _repo(www, "repo", built, updateinfo=www / "updateinfo.xml")  # gz, as modifyrepo_c does
    for kind in ("xz", "bz2"):
        _repo(www, kind, built, f"--compress-type={kind}", updateinfo=www / "updateinfo.xml")
    _repo(www, "plain", built, updateinfo=None)
    _repo(www, "notxml", built, updateinfo=www / "bad" / "updateinfo.xml")
    _repo(www, "notgz", built, "--mdtype=updateinfo", "--no-compress",
          "--new-name=updateinfo.xml.gz", updateinfo=www / "bad" / "updateinfo.xml")
    yield World(root, www)
    dr.discard(root)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


class _Server:
    """``www`` served on 127.0.0.1 from a thread, until :meth:`stop`."""

    def __init__(self, www: Path) -> None:
        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                         functools.partial(Quiet, directory=str(www)))
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join()
        self.httpd.server_close()


@pytest.fixture
def server(world: World) -> Iterator[_Server]:
    running = _Server(world.www)
    yield running
    running.stop()


def _repos(root: Path, text: str) -> None:
    """The image's only repository file."""
    shutil.rmtree(root / "etc/yum.repos.d", ignore_errors=True)
    dr.put(root, "/etc/yum.repos.d/test.repo", text)


def _baseos(port: int, path: str = "repo") -> str:
    return f"""\
[test-baseos]
name=Test $releasever - BaseOS
baseurl=http://127.0.0.1:{port}/{path}/$releasever/$basearch/
gpgcheck=1
enabled=1

[test-disabled]
name=Never read
baseurl=http://127.0.0.1:9/nothing/
enabled=0

[rocky-baseos]
name=Rocky Linux $releasever - BaseOS
#mirrorlist=https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo=BaseOS-$releasever
baseurl=http://dl.rockylinux.org/$contentdir/$releasever/BaseOS/$basearch/os/
enabled=1
"""


def _verdict(world: World, source: Source) -> SecurityVerdict:
    return verdict(Facts(RootDirTarget(world.root)), source)


def _unavailable(world: World, source: Source) -> str:
    with pytest.raises(SecurityDataUnavailable) as caught:
        _verdict(world, source)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_the_security_fix_is_named_then_read_from_the_cache(world: World, server: _Server,
                                                            tmp_path: Path) -> None:
    _repos(world.root, _baseos(server.port))
    found = _verdict(world, CachedWeb(tmp_path / "cache"))
    assert found.updates == (FIXED,)  # not the bug fix, the aarch64 build, libssh, curl
    assert found.date == ISSUED
    assert found.compared == len(dr.rpm_query(world.root)) == 4
    assert f"http://127.0.0.1:{server.port}/repo/9/x86_64/ (6 security advisories)" in found.data
    assert any("rocky-baseos" in n and "$contentdir" in n for n in found.notes)
    assert not any("test-disabled" in n for n in found.notes)

    server.stop()  # repomd.xml: the copy kept; updateinfo: by its digest
    again = _verdict(world, CachedWeb(tmp_path / "cache"))
    assert (again.updates, again.date, again.compared) == (found.updates, ISSUED, 4)
    assert "repomd.xml (cached copy" in again.data
    assert "updateinfo.xml.gz (cache)" in again.data


def test_a_recorded_directory_replays_the_same_verdict(world: World, server: _Server,
                                                       tmp_path: Path) -> None:
    _repos(world.root, _baseos(server.port))
    recording = Recording(tmp_path / "prepared")
    found = _verdict(world, recording)
    recording.save()
    server.stop()
    replayed = _verdict(world, Prepared.open(tmp_path / "prepared"))
    assert (replayed.updates, replayed.date) == (found.updates, ISSUED) == ((FIXED,), ISSUED)
    assert str(tmp_path / "prepared") in replayed.data


@pytest.mark.parametrize("kind", ["xz", "bz2"])
def test_other_compressions_and_mirror_lists(world: World, server: _Server, tmp_path: Path,
                                             kind: str) -> None:
    """The xz repository through a mirrorlist, the bz2 one through a metalink (Fedora's
    form); each lists a dead mirror first."""
    dead, live = "http://127.0.0.1:1/dead/9/x86_64", f"http://127.0.0.1:{server.port}/{kind}/9/x86_64"
    if kind == "xz":
        (world.www / "mirrorlist-9-x86_64").write_text(f"# mirrors\n{dead}/\n{live}/\n")
        line = f"mirrorlist=http://127.0.0.1:{server.port}/mirrorlist-$releasever-$basearch"
    else:
        urls = "".join(f'<url protocol="http" type="http" location="US" preference="{p}">'
                       f"{u}/repodata/repomd.xml</url>\n" for u, p in ((live, 90), (dead, 100)))
        (world.www / "metalink-9-x86_64").write_text(
            '<?xml version="1.0" encoding="utf-8"?>\n<metalink version="3.0" '
            'xmlns="http://www.metalinker.org/"><files><file name="repomd.xml"><resources '
            f'maxconnections="1">\n{urls}</resources></file></files></metalink>\n')
        line = f"metalink=http://127.0.0.1:{server.port}/metalink-$releasever-$basearch"
    _repos(world.root, f"[test-baseos]\nname=Test\n{line}\nenabled=1\n")
    found = _verdict(world, CachedWeb(tmp_path / "cache"))
    assert (found.updates, found.date) == ((FIXED,), ISSUED)
    assert f"{live}/repodata/" in found.data and f"updateinfo.xml.{kind}" in found.data


def test_zypper_repositories_are_read(world: World, server: _Server, tmp_path: Path) -> None:
    shutil.rmtree(world.root / "etc/yum.repos.d", ignore_errors=True)
    dr.put(world.root, "/etc/zypp/repos.d/test-baseos.repo",
           f"[test-baseos]\nname=Test\nenabled=1\nautorefresh=1\ntype=rpm-md\n"
           f"baseurl=http://127.0.0.1:{server.port}/repo/$releasever/$basearch/\n")
    try:
        found = _verdict(world, CachedWeb(tmp_path / "cache"))
    finally:
        shutil.rmtree(world.root / "etc/zypp")
    assert (found.updates, found.date) == ((FIXED,), ISSUED)


def test_a_module_fix_counts_only_for_an_enabled_stream(world: World, server: _Server,
                                                        tmp_path: Path) -> None:
    _repos(world.root, _baseos(server.port))
    dr.put(world.root, "/etc/dnf/modules.d/walinuxagent.module",
           "[walinuxagent]\nname=walinuxagent\nstream=2.10\nprofiles=\nstate=enabled\n")
    try:
        found = _verdict(world, CachedWeb(tmp_path / "cache"))
    finally:
        (world.root / "etc/dnf/modules.d/walinuxagent.module").unlink()
    agent = Update("WALinuxAgent", "2.9.1.1-1.el9", "2.10.0.8-1.el9", ("ALSA-2024:7777",),
                   "test-baseos")
    assert found.updates == (agent, FIXED)


def test_no_enabled_repository(world: World, tmp_path: Path) -> None:
    _repos(world.root, "[baseos]\nbaseurl=http://127.0.0.1:9/x/\nenabled=0\n")
    message = _unavailable(world, CachedWeb(tmp_path / "cache"))
    assert message.startswith("no enabled repository in /etc/yum.repos.d")


def test_no_repository_with_updateinfo(world: World, server: _Server, tmp_path: Path) -> None:
    _repos(world.root, _baseos(server.port, "plain"))
    message = _unavailable(world, CachedWeb(tmp_path / "cache"))
    assert message.startswith("no enabled repository has security data (updateinfo): ")
    assert f"test-baseos (/etc/yum.repos.d/test.repo): http://127.0.0.1:{server.port}/plain/9/" \
           "x86_64/repodata/repomd.xml lists no updateinfo" in message
    assert "rocky-baseos" in message and "$contentdir" in message


@pytest.mark.parametrize(("path", "problem"), [
    ("notxml", "-updateinfo.xml.gz: not a readable updateinfo (XML: "),
    ("notgz", "-updateinfo.xml.gz: cannot be decompressed ("),
])
def test_a_corrupt_updateinfo_is_one_line_naming_it(world: World, server: _Server,
                                                    tmp_path: Path, path: str,
                                                    problem: str) -> None:
    _repos(world.root, _baseos(server.port, path))
    message = _unavailable(world, CachedWeb(tmp_path / "cache"))
    assert message.startswith(f"http://127.0.0.1:{server.port}/{path}/9/x86_64/repodata/")
    assert problem in message
