"""os-release: real distributions' files, the lookup order, and a shell as the quoting oracle."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from vmimage.facts.osrelease import parse_os_release, read_os_release
from vmimage.targets.rootdir import RootDirTarget

DEBIAN12 = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

RHEL8 = """\
NAME="Red Hat Enterprise Linux"
VERSION="8.9 (Ootpa)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="8.9"
PLATFORM_ID="platform:el8"
PRETTY_NAME="Red Hat Enterprise Linux 8.9 (Ootpa)"
ANSI_COLOR="0;31"
"""

SLES = """\
NAME="SLES"
VERSION="15-SP5"
VERSION_ID="15.5"
PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"
ID="sles"
ID_LIKE="suse"
"""


def put(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_debian_through_the_usr_lib_symlink(tmp_path):
    """Debian's /etc/os-release is a relative link to ../usr/lib/os-release."""
    put(tmp_path, "/usr/lib/os-release", DEBIAN12)
    (tmp_path / "etc").mkdir()
    os.symlink("../usr/lib/os-release", tmp_path / "etc/os-release")
    osr = read_os_release(RootDirTarget(tmp_path))
    assert osr is not None
    assert (osr.id, osr.id_like, osr.version_id, osr.version_codename, osr.path) == (
        "debian", (), "12", "bookworm", "/etc/os-release")
    assert osr.pretty_name == "Debian GNU/Linux 12 (bookworm)"
    assert osr.line("VERSION_ID") == 3 and osr.fields["HOME_URL"] == "https://www.debian.org/"


def test_rhel_and_sles_families(tmp_path):
    osr = parse_os_release(RHEL8, "/etc/os-release")
    assert (osr.id, osr.id_like, osr.version_id) == ("rhel", ("fedora",), "8.9")
    assert osr.family == ("rhel", "fedora")
    sles = parse_os_release(SLES, "/etc/os-release")
    assert (sles.id, sles.id_like, sles.version_id) == ("sles", ("suse",), "15.5")


def test_lookup_order_and_absence(tmp_path):
    assert read_os_release(RootDirTarget(tmp_path)) is None
    put(tmp_path, "/usr/lib/os-release", RHEL8)
    assert read_os_release(RootDirTarget(tmp_path)).path == "/usr/lib/os-release"
    put(tmp_path, "/etc/os-release", SLES)
    assert read_os_release(RootDirTarget(tmp_path)).id == "sles"


def test_defaults_when_fields_are_missing():
    osr = parse_os_release("NAME=Foo\n", "/etc/os-release")
    assert (osr.id, osr.pretty_name, osr.version_id) == ("linux", "Foo", "")


_value = st.text(alphabet="abc 12.$`\\'\"()#=", max_size=10)
_quoting = st.sampled_from(["single", "double", "bare"])


def _quote(value: str, how: str) -> str:
    if how == "single":
        return "'" + value.replace("'", "'\\''") + "'"
    if how == "double":
        return '"' + "".join("\\" + c if c in '\\"$`' else c for c in value) + '"'
    return "".join("\\" + c if not c.isalnum() and c != "." else c for c in value)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ID", "VERSION_ID", "PRETTY_NAME", "ID_LIKE"]),
                          _value, _quoting), min_size=1, max_size=4))
def test_quoting_agrees_with_sh(assignments):
    text = "".join(f"{key}={_quote(value, how)}\n" for key, value, how in assignments)
    script = text + 'printf "%s\\0%s\\0%s\\0%s" "$ID" "$VERSION_ID" "$PRETTY_NAME" "$ID_LIKE"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    expected = dict(zip(["ID", "VERSION_ID", "PRETTY_NAME", "ID_LIKE"],
                        out.stdout.split("\0"), strict=True))
    osr = parse_os_release(text, "/etc/os-release")
    assert {k: osr.fields.get(k, "") for k in expected} == expected


def test_pre_systemd_release_files(tmp_path):
    put(tmp_path, "/etc/redhat-release", "CentOS release 6.10 (Final)\n")
    put(tmp_path, "/etc/centos-release", "CentOS release 6.10 (Final)\n")
    osr = read_os_release(RootDirTarget(tmp_path))
    assert osr is not None
    assert (osr.id, osr.version_id, osr.path, osr.id_like) == (
        "centos", "6.10", "/etc/centos-release", ("fedora",))
    put(tmp_path / "sles", "/etc/SuSE-release",
        "SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n")
    sles = read_os_release(RootDirTarget(tmp_path / "sles"))
    assert sles is not None and (sles.id, sles.version_id) == ("sles", "11.4")
