"""Accounts from files shadow-utils itself wrote (useradd, usermod, passwd), and sudoers includes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vmimage.facts._includes import IncludeError
from vmimage.facts.accounts import read_sudoers, read_users
from vmimage.targets.rootdir import RootDirTarget

BASE_PASSWD = Path("/usr/share/base-passwd")
needs_shadow_utils = pytest.mark.skipif(
    shutil.which("useradd") is None or not (BASE_PASSWD / "passwd.master").exists(),
    reason="shadow-utils or base-passwd missing")


def put(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def accounts_root(tmp_path):
    """Debian's base accounts (base-passwd), then users made the way image builders make them."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (tmp_path / "home").mkdir()
    shutil.copy(BASE_PASSWD / "passwd.master", etc / "passwd")
    shutil.copy(BASE_PASSWD / "group.master", etc / "group")
    names = [line.split(":")[0] for line in (etc / "passwd").read_text().splitlines()]
    (etc / "shadow").write_text("".join(f"{n}:*:19000:0:99999:7:::\n" for n in names))
    (etc / "gshadow").write_text("")
    hashed = run("openssl", "passwd", "-6", "-salt", "vmimage0", "S3cret!").strip()
    run("useradd", "--prefix", str(tmp_path), "-m", "-s", "/bin/bash", "azureuser")
    run("usermod", "--prefix", str(tmp_path), "-p", hashed, "azureuser")
    run("useradd", "--prefix", str(tmp_path), "-s", "/bin/bash", "locked")
    run("usermod", "--prefix", str(tmp_path), "-p", hashed, "locked")
    run("usermod", "--prefix", str(tmp_path), "-L", "locked")
    run("useradd", "--prefix", str(tmp_path), "-s", "/bin/sh", "nopass")
    run("passwd", "--root", str(tmp_path), "-d", "nopass")
    run("useradd", "--prefix", str(tmp_path), "-r", "-s", "/usr/sbin/nologin", "svc")
    return tmp_path


def passwd_status(root: Path) -> dict[str, str]:
    """``passwd -S -a``: P usable password, L locked, NP no password."""
    out = run("passwd", "--root", str(root), "-S", "-a")
    return {line.split()[0]: line.split()[1] for line in out.splitlines()}


@needs_shadow_utils
def test_users_as_passwd_reports_them(accounts_root):
    users = {u.name: u for u in read_users(RootDirTarget(accounts_root))}
    status = passwd_status(accounts_root)
    assert set(users) == set(status)
    for name, user in users.items():
        assert user.has_usable_password == (status[name] == "P"), name
        assert user.empty_password == (status[name] == "NP"), name
    azure = users["azureuser"]
    assert azure.password.startswith("$6$vmimage0$") and azure.uid == 1000
    assert azure.home == "/home/azureuser" and azure.is_login_shell
    shadow = (accounts_root / "etc/shadow").read_text().splitlines()
    assert shadow[azure.shadow_line - 1].startswith("azureuser:$6$")
    passwd = (accounts_root / "etc/passwd").read_text().splitlines()
    assert passwd[azure.passwd_line - 1].startswith("azureuser:x:1000:")
    assert users["locked"].password.startswith("!$6$")
    assert not users["svc"].is_login_shell and users["svc"].is_system
    assert not users["sync"].is_login_shell  # /bin/sync
    assert users["root"].uid == 0 and not users["root"].has_usable_password


def test_password_field_rules(tmp_path):
    put(tmp_path, "/etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\n"
        "+nisuser::0:0:::\n"
        "old:$1$abc$def:1001:1001::/home/old:/bin/bash\n"
        "emptied::1002:1002::/home/emptied:/bin/bash\n"
        "noshadow:x:1003:1003::/home/noshadow:\n"
        "broken:x:notanumber:0::/:/bin/sh\n"
        "short:x:1\n")
    # waagent -deprovision writes root:*LOCK*:14600::::::
    put(tmp_path, "/etc/shadow",
        "root:*LOCK*:14600::::::\nold:!:19000::::::\nemptied:$6$salt$hash:19000::::::\n")
    users = {u.name: u for u in read_users(RootDirTarget(tmp_path))}
    assert sorted(users) == ["emptied", "noshadow", "old", "root"]
    assert not users["root"].has_usable_password and users["root"].password == "*LOCK*"
    # pam_unix reads shadow only when passwd says "x": these passwd fields win
    assert users["old"].password == "$1$abc$def" and users["old"].has_usable_password
    assert users["emptied"].empty_password and not users["emptied"].has_usable_password
    assert users["noshadow"].password == "x" and users["noshadow"].shadow_line is None
    assert not users["noshadow"].has_usable_password
    assert users["noshadow"].is_login_shell  # an empty shell field is /bin/sh


def test_no_account_files(tmp_path):
    assert read_users(RootDirTarget(tmp_path)) == []


# /etc/sudoers as Debian 12's sudo package installs it.
DEBIAN_SUDOERS = """\
#
# This file MUST be edited with the 'visudo' command as root.
#
# Please consider adding local content in /etc/sudoers.d/ instead of
# directly modifying this file.
#
# See the man page for details on how to write a sudoers file.
#
Defaults\tenv_reset
Defaults\tmail_badpass
Defaults\tsecure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# This fixes CVE-2005-4890 and possibly breaks some versions of kdesu
# (#1011624, https://bugzilla.sudo.ws/show_bug.cgi?id=1011624)
Defaults\tuse_pty

# This preserves proxy settings from user environments of root
# equivalent users (group sudo)
#Defaults:%sudo env_keep += "http_proxy https_proxy ftp_proxy all_proxy no_proxy"

# Host alias specification

# User alias specification

# Cmnd alias specification

# User privilege specification
root\tALL=(ALL:ALL) ALL

# Allow members of group sudo to execute any command
%sudo\tALL=(ALL:ALL) ALL

# See sudoers(5) for more information on "@include" directives:

@includedir /etc/sudoers.d
"""


def test_debian_sudoers_with_includedir(tmp_path):
    put(tmp_path, "/etc/sudoers", DEBIAN_SUDOERS)
    put(tmp_path, "/etc/sudoers.d/README", "# As of Debian version 1.7.2p1-1...\n")
    put(tmp_path, "/etc/sudoers.d/waagent", "azureuser ALL=(ALL) ALL\n")
    put(tmp_path, "/etc/sudoers.d/90-cloud-init-users",
        "# Created by cloud-init v. 22.4.2\n\n# User rules for azureuser\n"
        "azureuser ALL=(ALL) NOPASSWD:ALL\n")
    put(tmp_path, "/etc/sudoers.d/targetpw~", "Defaults targetpw\n")  # editor backup: skipped
    put(tmp_path, "/etc/sudoers.d/old.conf", "Defaults targetpw\n")  # has a dot: skipped
    put(tmp_path, "/etc/sudoers.d/50-targetpw",
        "Defaults targetpw # ask for the target's password\n"
        "Cmnd_Alias SHUTDOWN = /sbin/halt, \\\n    /sbin/reboot\n"
        "#1000 ALL=(ALL) ALL\n")
    lines = read_sudoers(RootDirTarget(tmp_path))
    assert [(line.path.rsplit("/", 1)[-1], line.text) for line in lines] == [
        ("sudoers", "Defaults\tenv_reset"),
        ("sudoers", "Defaults\tmail_badpass"),
        ("sudoers", 'Defaults\tsecure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:'
                    '/sbin:/bin"'),
        ("sudoers", "Defaults\tuse_pty"),
        ("sudoers", "root\tALL=(ALL:ALL) ALL"),
        ("sudoers", "%sudo\tALL=(ALL:ALL) ALL"),
        ("50-targetpw", "Defaults targetpw"),
        ("50-targetpw", "Cmnd_Alias SHUTDOWN = /sbin/halt,      /sbin/reboot"),
        ("50-targetpw", "#1000 ALL=(ALL) ALL"),
        ("90-cloud-init-users", "azureuser ALL=(ALL) NOPASSWD:ALL"),
        ("waagent", "azureuser ALL=(ALL) ALL"),
    ]
    target = next(line for line in lines if "targetpw" in line.text)
    assert (target.path, target.line) == ("/etc/sudoers.d/50-targetpw", 1)
    continued = next(line for line in lines if line.text.startswith("Cmnd_Alias"))
    assert continued.line == 2


def test_old_style_and_relative_includes(tmp_path):
    put(tmp_path, "/etc/sudoers", "#include sudoers.local\n#includedir /etc/sudoers.d\n"
                                  "# include /etc/not-an-include\n")
    put(tmp_path, "/etc/sudoers.local", "Defaults:alice targetpw\n")
    (tmp_path / "etc/sudoers.d").mkdir()
    os.symlink("/etc/sudoers.local", tmp_path / "etc/sudoers.d/linked")
    lines = read_sudoers(RootDirTarget(tmp_path))
    assert {(line.path, line.line, line.text) for line in lines} == {
        ("/etc/sudoers.local", 1, "Defaults:alice targetpw"),
        ("/etc/sudoers.d/linked", 1, "Defaults:alice targetpw")}
    # a self-include: sudo stops at its depth limit with a parse error and does not run
    put(tmp_path, "/etc/sudoers.local", "Defaults:alice targetpw\n@include /etc/sudoers.local\n")
    with pytest.raises(IncludeError, match=r"cycle: /etc/sudoers\.local -> /etc/sudoers\.local"):
        read_sudoers(RootDirTarget(tmp_path))
