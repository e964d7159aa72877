"""``vmimage generalize``'s cleanup operations (issue 10): the build user deleted as
``waagent -deprovision+user`` and ``userdel -r`` would, proved by the root's own ``getent``,
``pwck``, ``grpck`` and ``visudo`` in a chroot; authorized_keys, passwords, account backups,
logs, temporary files and package caches; and links out of the root never followed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import imagebuild as ib
from tests.test_generalize import put, tree_hash, vmimage

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="chroot and useradd need root")]

CLEANUP_OPS = {"user-account": True, "ssh-userdir": True, "lock-passwords": False,
               "passwd-backups": True, "logfiles": True, "tmp-files": True,
               "package-manager-cache": True}
ACCOUNT_DBS = ("passwd", "shadow", "group", "gshadow", "subuid", "subgid")


def chroot(root: Path, *cmd: str, stdin: str | None = None, check: bool = True
           ) -> subprocess.CompletedProcess[str]:
    """A command of the root's own, run inside it."""
    return subprocess.run(["chroot", str(root), *cmd], input=stdin, capture_output=True,
                          text=True, check=check)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = ib.clone_tree(tmp_path / "root")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def add_builder(root: Path) -> None:
    """A build user as a Packer build leaves it: in sudo and another group, with a password,
    waagent's sudoers drop-in, a crontab, mail, keys and history; and a colleague, alice, who
    stays."""
    chroot(root, "groupadd", "devs")
    chroot(root, "useradd", "-m", "-s", "/bin/bash", "-G", "devs", "alice")
    chroot(root, "useradd", "-m", "-s", "/bin/bash", "-G", "sudo,devs", "builder")
    chroot(root, "chpasswd", stdin="builder:build-time-secret\n")
    put(root, "/etc/sudoers.d/waagent", "builder ALL=(ALL) NOPASSWD: ALL\n", 0o440)
    put(root, "/etc/sudoers.d/90-team", "# the team\nalice ALL=(ALL) ALL\nbuilder ALL=(ALL) \\\n"
                                        "  NOPASSWD: ALL\nDefaults:builder !requiretty\n", 0o440)
    put(root, "/var/spool/cron/crontabs/builder", "@reboot /home/builder/setup.sh\n", 0o600)
    put(root, "/var/mail/builder", "From cron@builder Thu Jan  1 00:00:00 2026\n\nhi\n", 0o600)
    put(root, "/home/builder/.ssh/authorized_keys", "ssh-ed25519 AAAAC3Nz builder@laptop\n",
        0o600)
    put(root, "/home/builder/setup.sh", "#!/bin/sh\n", 0o755)
    chroot(root, "chown", "-R", "builder:builder", "/home/builder")
    chroot(root, "chown", "builder:builder", "/var/spool/cron/crontabs/builder",
           "/var/mail/builder")
    assert chroot(root, "visudo", "-c").returncode == 0


def databases(root: Path) -> dict[str, list[str]]:
    return {db: (root / "etc" / db).read_text().splitlines(keepends=True) for db in ACCOUNT_DBS}


def check_ids(root: Path, *ids: str) -> dict[str, str]:
    """Status of each rule on ``root`` (worst of its findings)."""
    proc = vmimage("check", root, "--format", "json", *[a for i in ids for a in ("--check", i)])
    found: dict[str, set[str]] = {}
    for f in json.loads(proc.stdout)["findings"]:
        found.setdefault(f["check_id"], set()).add(f["status"])
    return {i: "fail" if "fail" in s else "pass" if s == {"pass"} else ",".join(sorted(s))
            for i, s in found.items()}


def plan_of(root: Path, *args: str) -> dict[str, object]:
    dry = vmimage("generalize", root, "--dry-run", "--format", "json", *args)
    assert dry.returncode == 0, dry.stderr
    return json.loads(dry.stdout)


# --- user-account -----------------------------------------------------------------------------


def test_build_user_deleted_without_a_trace(tree: Path) -> None:
    add_builder(tree)
    pwck_before = chroot(tree, "pwck", "-r", check=False)
    before_dbs = databases(tree)
    assert check_ids(tree, "LINUX-NO-DEFAULT-ACCOUNTS") == {"LINUX-NO-DEFAULT-ACCOUNTS": "fail"}

    before = tree_hash(tree)
    planned = plan_of(tree, "--user", "builder")
    assert tree_hash(tree) == before  # a dry run changes no byte, mode or timestamp
    paths = [a["path"] for a in planned["plan"] if a["operation"] == "user-account"]
    assert paths[-1] == "/etc/passwd"  # last: a killed run still finds the user
    assert paths.count("/var/mail/builder") == 1 and "/var/spool/mail/builder" not in paths
    assert "LINUX-NO-DEFAULT-ACCOUNTS" in planned["checks"]

    done = vmimage("generalize", tree, "--yes", "--user", "builder")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSES" in done.stdout and "LINUX-NO-DEFAULT-ACCOUNTS" in done.stdout

    # The oracle: the root's own tools find no trace and consistent databases.
    for db in ("passwd", "shadow", "group", "gshadow"):
        assert chroot(tree, "getent", db, "builder", check=False).returncode == 2, db
    assert chroot(tree, "id", "builder", check=False).returncode != 0
    assert chroot(tree, "getent", "group", "sudo").stdout.strip() == "sudo:x:27:"
    assert chroot(tree, "getent", "group", "devs").stdout.strip().endswith(":alice")
    assert chroot(tree, "getent", "gshadow", "devs").stdout.strip().endswith(":alice")
    assert chroot(tree, "getent", "passwd", "alice").returncode == 0
    assert chroot(tree, "pwck", "-q", "-r").returncode == 0
    pwck = chroot(tree, "pwck", "-r", check=False)
    assert (pwck.returncode, pwck.stdout, pwck.stderr) == (
        pwck_before.returncode, pwck_before.stdout, pwck_before.stderr)  # only Debian's own
    assert chroot(tree, "grpck", "-r").returncode == 0
    assert chroot(tree, "visudo", "-c").returncode == 0
    for db, lines in databases(tree).items():  # every other line byte for byte
        expected = [ln for ln in before_dbs[db] if not ln.startswith("builder:")]
        if db in ("group", "gshadow"):  # out of sudo's and devs' member lists
            expected = [ln.replace(",builder", "").replace(":builder", ":") for ln in expected]
        assert lines == expected, db
    for gone in ("home/builder", "var/mail/builder", "var/spool/cron/crontabs/builder",
                 "etc/sudoers.d/waagent", "etc/passwd-", "etc/shadow-"):
        assert not (tree / gone).exists() and not (tree / gone).is_symlink(), gone
    team = tree / "etc/sudoers.d/90-team"
    assert team.read_text() == "# the team\nalice ALL=(ALL) ALL\n"
    assert team.stat().st_mode & 0o777 == 0o440
    assert (tree / "home/alice").is_dir() and (tree / "var/spool/cron/crontabs").is_dir()
    assert check_ids(tree, "LINUX-NO-DEFAULT-ACCOUNTS", "LINUX-SHELL-HISTORY-EMPTY") == {
        "LINUX-NO-DEFAULT-ACCOUNTS": "pass", "LINUX-SHELL-HISTORY-EMPTY": "pass"}

    after = tree_hash(tree)
    again = vmimage("generalize", tree, "--yes", "--user", "builder")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert "no user builder" in again.stdout  # the note says why
    assert tree_hash(tree) == after


def test_system_accounts_are_refused(tree: Path) -> None:
    """root, a system account (uid below 1000) and nobody: exit 2, one line, nothing
    changed, whether applying or not."""
    before = {d: tree_hash(tree / d) for d in ("etc", "home", "root", "var")}
    for name, problem in (("root", "system account (uid 0)"), ("daemon", "system account"),
                          ("nobody", "system account"), ("bad:name", "not a user name")):
        for args in (["--dry-run"], ["--yes"]):
            proc = vmimage("generalize", tree, "--user", name, *args)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert len(proc.stderr.splitlines()) == 1, proc.stderr
            assert f"--user {name}: " in proc.stderr and problem in proc.stderr
    assert {d: tree_hash(tree / d) for d in before} == before


def test_home_another_user_owns_is_kept(tree: Path) -> None:
    """A home that is not the user's own (``useradd -d /opt/app`` over a directory a
    package made) is kept with a note, as ``userdel -r`` keeps it."""
    (tree / "opt/app").mkdir(parents=True)
    put(tree, "/opt/app/app.conf", "port=80\n")
    chroot(tree, "useradd", "-M", "-d", "/opt/app", "-s", "/bin/bash", "builder")
    done = vmimage("generalize", tree, "--yes", "--user", "builder")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "home /opt/app is owned by uid 0" in done.stdout
    assert (tree / "opt/app/app.conf").read_text() == "port=80\n"
    assert chroot(tree, "getent", "passwd", "builder", check=False).returncode == 2


def test_build_user_and_root_password_in_one_run(tree: Path) -> None:
    chroot(tree, "useradd", "-m", "builder")
    chroot(tree, "chpasswd", stdin="root:root-secret\nbuilder:secret\n")
    done = vmimage("generalize", tree, "--yes", "--user", "builder")
    assert done.returncode == 0, done.stdout
    assert chroot(tree, "getent", "shadow", "root").stdout.startswith("root:*LOCK*:")


# --- ssh-userdir and lock-passwords -----------------------------------------------------------


def test_authorized_keys_of_every_user_removed(tree: Path) -> None:
    chroot(tree, "useradd", "-m", "-s", "/bin/bash", "alice")
    chroot(tree, "useradd", "-m", "-d", "/srv/svc", "-s", "/bin/bash", "svc")
    key = "ssh-ed25519 AAAAC3Nz someone@somewhere\n"
    for home in ("root", "home/alice", "srv/svc"):
        put(tree, f"/{home}/.ssh/authorized_keys", key, 0o600)
    put(tree, "/home/alice/.ssh/authorized_keys2", key, 0o600)
    put(tree, "/home/alice/.ssh/known_hosts", "github.com ssh-ed25519 AAAA\n", 0o600)
    put(tree, "/home/olduser/.ssh/authorized_keys", key, 0o600)  # no account any more
    assert check_ids(tree, "LINUX-NO-DEFAULT-ACCOUNTS") == {"LINUX-NO-DEFAULT-ACCOUNTS": "fail"}

    done = vmimage("generalize", tree, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    notes = [ln for ln in done.stdout.splitlines() if ln.startswith("warning: ssh-userdir")]
    assert len(notes) == 3 and all("lets its owner into every VM" in n for n in notes)
    assert {n.split(": ")[2] for n in notes} == {"alice", "svc", "/home/olduser"}  # not root
    left = [*tree.glob("*/.ssh/authorized_keys*"), *tree.glob("*/*/.ssh/authorized_keys*")]
    assert left == []
    assert (tree / "home/alice/.ssh/known_hosts").exists()
    assert (tree / "root/.ssh").is_dir() and (tree / "srv/svc/.ssh").is_dir()
    assert "PASS     LINUX-NO-DEFAULT-ACCOUNTS" in done.stdout
    assert vmimage("generalize", tree, "--yes").stdout.startswith("nothing to do")


def test_other_passwords_locked_only_when_asked(tree: Path) -> None:
    chroot(tree, "useradd", "-m", "-s", "/bin/bash", "alice")
    chroot(tree, "useradd", "-m", "-s", "/bin/bash", "bob")
    chroot(tree, "chpasswd", stdin="alice:alice-secret\n")
    chroot(tree, "passwd", "-d", "bob")  # an empty password: logs in with none
    hashed = chroot(tree, "getent", "shadow", "alice").stdout.split(":")[1]

    done = vmimage("generalize", tree, "--yes")  # ssh-userdir claims the rule: it proves
    assert done.returncode == 1, done.stdout + done.stderr
    assert "user alice has a usable password" in done.stdout
    assert "user bob has an empty password" in done.stdout

    locked = vmimage("generalize", tree, "--yes", "--enable", "lock-passwords")
    assert locked.returncode == 0, locked.stdout + locked.stderr
    assert "warning: lock-passwords: alice's password locked" in locked.stdout
    assert chroot(tree, "getent", "shadow", "alice").stdout.split(":")[1] == "!" + hashed
    assert chroot(tree, "getent", "shadow", "bob").stdout.split(":")[1] == "!"
    assert chroot(tree, "passwd", "-S", "alice").stdout.split()[1] == "L"
    assert chroot(tree, "pwck", "-q", "-r").returncode == 0
    again = vmimage("generalize", tree, "--yes", "--enable", "lock-passwords")
    assert again.stdout.startswith("nothing to do")


# --- passwd-backups, logfiles, tmp-files, package-manager-cache -------------------------------


def test_passwd_backups_removed(tree: Path) -> None:
    put(tree, "/etc/subuid-", "builder:100000:65536\n")
    put(tree, "/etc/subgid-", "builder:100000:65536\n")
    dbs = databases(tree)
    assert all((tree / f"etc/{db}-").exists() for db in ACCOUNT_DBS)
    done = vmimage("generalize", tree, "--yes", "--operations", "passwd-backups")
    assert done.returncode == 0 and "6 changes done" in done.stdout, done.stdout
    assert not [db for db in ACCOUNT_DBS if (tree / f"etc/{db}-").exists()]
    assert databases(tree) == dbs


def dirty_logs(root: Path) -> None:
    put(root, "/var/log/syslog", "Jan 1 builder sshd: Accepted publickey\n")
    put(root, "/var/log/syslog.2.gz", "\x1f\x8b")
    put(root, "/var/log/cloud-init.log", "build\n")
    put(root, "/var/log/apt/history.log", "Commandline: apt-get install nginx\n")
    put(root, "/var/log/apt/term.log.1.gz", "\x1f\x8b")
    put(root, "/var/log/journal/0123456789abcdef0123456789abcdef/system.journal", "LPKSHHRH")
    put(root, "/var/log/audit/audit.log", "type=USER_LOGIN\n", 0o600)
    put(root, "/var/log/installer/cdebconf/questions.dat", "Name: passwd/user-password\n")
    put(root, "/var/log/private/app.log", "x\n")
    put(root, "/var/log/wtmp.1", "old records")
    put(root, "/root/anaconda-ks.cfg", "rootpw --iscrypted $6$x$y\n", 0o600)
    put(root, "/var/log/waagent.log", "agent\n")
    put(root, "/var/log/azure/ext/CommandExecution.log", "ext\n")
    for name in ("wtmp", "btmp", "lastlog"):
        with (root / "var/log" / name).open("a") as fh:
            fh.write("\0" * 384)


def test_logfiles_removed_directories_and_records_kept(tree: Path) -> None:
    dirty_logs(tree)
    modes = {n: (tree / "var/log" / n).stat() for n in ("wtmp", "btmp", "lastlog")}
    planned = plan_of(tree, "--operations", "logfiles")
    paths = {a["path"] for a in planned["plan"]}
    assert "/var/log/waagent.log" not in paths and not [p for p in paths if "azure" in p]
    assert "/var/log/README" not in paths  # Debian's link to systemd's documentation

    done = vmimage("generalize", tree, "--yes", "--operations", "logfiles")
    assert done.returncode == 0, done.stdout + done.stderr
    left = sorted(str(p.relative_to(tree / "var/log")) for p in (tree / "var/log").rglob("*")
                  if not p.is_dir())
    assert left == ["README", "azure/ext/CommandExecution.log", "btmp", "faillog", "lastlog",
                    "waagent.log", "wtmp"]
    for name, st in modes.items():
        now = (tree / "var/log" / name).stat()
        assert (now.st_size, now.st_mode, now.st_gid) == (0, st.st_mode, st.st_gid), name
    for kept in ("apt", "audit", "journal", "installer/cdebconf", "private", "runit/ssh"):
        assert (tree / "var/log" / kept).is_dir(), kept
    assert not (tree / "root/anaconda-ks.cfg").exists()
    assert (tree / "var/log/README").is_symlink()

    everything = vmimage("generalize", tree, "--yes", "--format", "json")  # waagent-state
    done_paths = [a["path"] for a in json.loads(everything.stdout)["done"]]
    assert done_paths.count("/var/log/waagent.log") == 1
    assert not (tree / "var/log/waagent.log").exists() and not (tree / "var/log/azure").exists()
    assert vmimage("generalize", tree, "--yes").stdout.startswith("nothing to do")


def test_tmp_contents_removed_directories_kept(tree: Path) -> None:
    put(tree, "/tmp/build.sh", "#!/bin/sh\n")
    put(tree, "/tmp/.X11-unix/X0", "")
    put(tree, "/var/tmp/packer/cache/file", "x")
    (tree / "var/tmp/empty-dir").mkdir()
    modes = {d: (tree / d).stat().st_mode for d in ("tmp", "var/tmp")}
    done = vmimage("generalize", tree, "--yes", "--operations", "tmp-files")
    assert done.returncode == 0, done.stdout + done.stderr
    for directory, mode in modes.items():
        assert list((tree / directory).iterdir()) == []
        assert (tree / directory).stat().st_mode == mode  # 1777 kept


def test_package_caches_removed_directories_kept(tree: Path) -> None:
    archives = tree / "var/cache/apt/archives"
    put(tree, "/var/cache/apt/archives/nginx_1.22_amd64.deb", "!<arch>\n")
    put(tree, "/var/cache/apt/archives/partial/curl_8.0_amd64.deb", "!<ar")
    put(tree, "/var/cache/apt/pkgcache.bin", "cache")
    put(tree, "/var/cache/apt/srcpkgcache.bin", "cache")
    put(tree, "/var/cache/yum/x86_64/7/base/packages/bash.rpm", "rpm")
    put(tree, "/var/cache/dnf/fedora-0123/repodata/repomd.xml", "<repomd/>")
    put(tree, "/var/cache/zypp/packages/repo-oss/x86_64/vim.rpm", "rpm")
    put(tree, "/var/cache/zypp/raw/repo-oss/repodata.xml", "kept: zypper's metadata")
    done = vmimage("generalize", tree, "--yes", "--operations", "package-manager-cache")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in archives.iterdir()) == ["lock", "partial"]
    assert list((archives / "partial").iterdir()) == []
    assert (archives / "partial").stat().st_mode & 0o777 == 0o700
    assert not list((tree / "var/cache/apt").glob("*.bin"))
    for cache in ("yum", "dnf", "zypp/packages"):
        assert list((tree / "var/cache" / cache).iterdir()) == [], cache
    assert (tree / "var/cache/zypp/raw/repo-oss/repodata.xml").exists()


# --- links out of the root --------------------------------------------------------------------


def _link(root: Path, inside: str, target: Path, climb: bool = False) -> None:
    p = root / inside.lstrip("/")
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.symlink_to("../" * 12 + str(target)[1:] if climb else str(target))


def _links_for(op: str, root: Path, host: Path) -> list[str]:
    """Plant links from ``root`` to the host's canaries for ``op``; the paths that must be
    gone (the links themselves) afterwards."""
    if op == "user-account":
        chroot(root, "useradd", "-m", "-s", "/bin/bash", "builder")
        _link(root, "/home/builder", host / "dir")
        _link(root, "/var/mail/builder", host / "file", climb=True)
        _link(root, "/var/spool/cron/crontabs/builder", host / "file")
        _link(root, "/etc/sudoers.d/waagent", host / "sudoers")  # never edited through
        return ["/home/builder", "/var/mail/builder", "/var/spool/cron/crontabs/builder"]
    if op == "ssh-userdir":
        _link(root, "/root/.ssh/authorized_keys", host / "file")
        _link(root, "/home/alice/.ssh", host / "dir")  # its authorized_keys is the host's
        _link(root, "/home/bob", host / "dir", climb=True)
        return ["/root/.ssh/authorized_keys"]
    if op == "passwd-backups":
        _link(root, "/etc/passwd-", host / "file")
        _link(root, "/etc/shadow-", host / "file", climb=True)
        return ["/etc/passwd-", "/etc/shadow-"]
    if op == "logfiles":
        _link(root, "/var/log/syslog", host / "file")
        _link(root, "/var/log/apt/history.log", host / "file", climb=True)
        _link(root, "/var/log/wtmp", host / "file")  # a record: never emptied through
        _link(root, "/var/log/journal/0123456789abcdef0123456789abcdef", host / "dir")
        _link(root, "/var/log/installer", host / "dir")
        return ["/var/log/syslog", "/var/log/apt/history.log", "/var/log/wtmp",
                "/var/log/journal/0123456789abcdef0123456789abcdef", "/var/log/installer"]
    if op == "tmp-files":
        _link(root, "/tmp/file", host / "file")
        _link(root, "/tmp/dir", host / "dir", climb=True)
        _link(root, "/var/tmp", host / "dir")  # the directory itself: resolved inside
        return ["/tmp/file", "/tmp/dir"]
    assert op == "package-manager-cache"
    _link(root, "/var/cache/apt/archives/nginx.deb", host / "file")
    _link(root, "/var/cache/apt/archives/partial", host / "dir")
    _link(root, "/var/cache/dnf/fedora", host / "dir", climb=True)
    _link(root, "/var/cache/yum", host / "dir")
    return ["/var/cache/apt/archives/nginx.deb", "/var/cache/dnf/fedora"]


@pytest.mark.parametrize("op", [op for op in CLEANUP_OPS if op != "lock-passwords"])
def test_links_out_of_the_root_never_touch_the_host(tree: Path, tmp_path: Path,
                                                     op: str) -> None:
    host = tmp_path / "host"
    canaries = {host / "file": "host file\n", host / "sudoers": "builder ALL=(ALL) ALL\n",
                host / "dir/authorized_keys": "ssh-ed25519 AAAA host\n",
                host / "dir/.bash_history": "host history\n", host / "dir/nginx.deb": "deb",
                host / "dir/sub/keep": "keep\n"}
    for path, text in canaries.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    gone = _links_for(op, tree, host)
    done = vmimage("generalize", tree, "--yes", "--operations", op,
                   *(["--user", "builder"] if op == "user-account" else []))
    assert done.returncode in (0, 1), done.stdout + done.stderr
    for path, text in canaries.items():
        assert path.read_text() == text, path
    assert sorted(p.name for p in (host / "dir").iterdir()) == [
        ".bash_history", "authorized_keys", "nginx.deb", "sub"]
    for path in gone:
        assert not (tree / path.lstrip("/")).is_symlink(), path  # the link itself went
    assert vmimage("generalize", tree, "--yes", "--operations", op).stdout.startswith(
        "nothing to do")


# --- the registry -----------------------------------------------------------------------------


def test_operations_listed_with_defaults_and_checks() -> None:
    ops = {op["name"]: op for op in json.loads(
        vmimage("generalize", "--list-operations", "-f", "json").stdout)}
    assert {name: ops[name]["default"] for name in CLEANUP_OPS} == CLEANUP_OPS
    claims = {name for name in CLEANUP_OPS if ops[name]["fixes"]}
    assert claims == {"user-account", "ssh-userdir", "lock-passwords"}
    assert all(ops[name]["fixes"] == ["LINUX-NO-DEFAULT-ACCOUNTS"] for name in claims)
    shown = json.loads(vmimage("checks", "show", "LINUX-NO-DEFAULT-ACCOUNTS", "-f",
                               "json").stdout)
    assert claims <= set(shown["fixed_by"])
