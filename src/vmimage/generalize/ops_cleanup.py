"""The build user and what a build leaves behind: its account, keys, logs, temporary files and
package caches (research §4.1 action 9 and §4.2's user-account, ssh-userdir, passwd-backups,
logfiles, tmp-files and package-manager-cache).

Like the operations in :mod:`vmimage.generalize.ops`, each plans from what it finds, so a
second run plans nothing, and every path is resolved inside the root by
:class:`~vmimage.generalize.rootfs.WritableRoot` (a link is removed, never followed out).
Account databases are edited line by line: the lines an operation does not change keep every
byte, and the user's ``/etc/passwd`` line goes last, so a run killed half-way is finished by
the next one, which still finds the user.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Callable, Iterator

from vmimage.errors import InputError
from vmimage.facts.accounts import PASSWD, SHADOW, User, read_users
from vmimage.generalize.ops import remove_existing
from vmimage.generalize.plan import Action, Note, Options, operation
from vmimage.generalize.rootfs import WritableRoot
from vmimage.targets.paths import normalize

GROUP = "/etc/group"
GSHADOW = "/etc/gshadow"
SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
SUDOERS = "/etc/sudoers"
SUDOERS_D = "/etc/sudoers.d"
FIRST_USER_UID = 1000  # below it, a system account (Debian, Fedora, SUSE: UID_MIN)
NOBODY_UID = 65534
DB_MAX = 16 << 20  # an account database larger than this is refused, never half-rewritten
_USER_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?")

#: Directories never removed as a home directory, whatever /etc/passwd says.
KEPT_HOMES = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt",
    "/nonexistent", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr",
    "/usr/local", "/var", "/var/lib", "/var/spool", "/var/tmp"})


# --- helpers ----------------------------------------------------------------------------------


def _contents(root: WritableRoot, directory: str) -> list[str]:
    return [f"{directory}/{n}" for n in root.listdir(directory)]


def _users(root: WritableRoot) -> list[User]:
    """The accounts, parsed as the checks parse them (so an operation and the rule that
    proves it agree on who has a password and where each home is)."""
    return read_users(root.target())


def _read_db(root: WritableRoot, path: str) -> str | None:
    """A configuration file's whole text to rewrite (None when absent or not a regular
    file: a link is never edited through)."""
    entry = root.entry(path)
    if entry is None or entry.kind != "file":
        return None
    if entry.size > DB_MAX:
        raise InputError(path, f"is over {DB_MAX >> 20} MiB: not rewritten")
    return root.read_text(path, DB_MAX + 1)


Edit = Callable[[list[str]], list[str] | None]


def _edit_db(root: WritableRoot, op: str, path: str, edit: Edit, reason: str
             ) -> Iterator[Action]:
    """Rewrite a colon-separated database: every line's fields through ``edit`` (None drops
    the line); a line it leaves alone keeps every byte."""
    text = _read_db(root, path)
    if text is None:
        return
    lines = text.split("\n")
    out = []
    for line in lines:
        fields = line.split(":")
        new = edit(fields) if line and not line.startswith(("#", "+", "-")) else fields
        if new is not None:
            out.append(line if new == fields else ":".join(new))
    if out != lines:
        yield Action(op, "write", path, reason, "\n".join(out))


def _without(members: str, name: str) -> str:
    return ",".join(m for m in members.split(",") if m != name)


# --- user-account -----------------------------------------------------------------------------


def _build_user(root: WritableRoot, name: str | None) -> tuple[User | None, list[User]]:
    """The ``--user`` account and every account; refuses a name that is no user name."""
    if name is None:
        return None, []
    if not _USER_NAME.fullmatch(name):
        raise InputError(f"--user {name}", "is not a user name")
    users = _users(root)
    return next((u for u in users if u.name == name), None), users


def _refuse_system(user: User) -> None:
    if user.name == "root" or user.uid < FIRST_USER_UID or user.uid == NOBODY_UID:
        raise InputError(f"--user {user.name}",
                         f"is a system account (uid {user.uid}): refused; --user deletes "
                         f"the build user (uid {FIRST_USER_UID} or above)")


def _doomed_home(root: WritableRoot, user: User, users: list[User]) -> str | Note:
    """The home directory to delete, or why it is kept: never a system directory, never one
    another account lives in, never one another user owns (as ``userdel -r``)."""
    home = normalize(user.home)
    if home in KEPT_HOMES:
        return Note("user-account", f"{user.name}'s home {home} is a system directory: kept")
    for other in users:
        theirs = normalize(other.home)
        if other.name != user.name and (theirs + "/").startswith(home + "/"):
            return Note("user-account", f"{user.name}'s home {home} is also {other.name}'s: "
                                        "kept")
    entry, st = root.entry(home), root.lstat(home)
    if entry is not None and entry.kind == "dir" and st is not None and st.st_uid != user.uid:
        return Note("user-account", f"{user.name}'s home {home} is owned by uid {st.st_uid}, "
                                    f"not {user.uid}: kept")
    return home


def _own_group(root: WritableRoot, user: User, users: list[User]) -> bool | Note:
    """Whether the group named after the user is its own, to delete with it (as ``userdel``:
    the user's primary group, not a system group, nobody else's primary group or member); a
    note when such a group is kept."""
    for line in (_read_db(root, GROUP) or "").split("\n"):
        fields = line.split(":")
        if fields[0] != user.name or len(fields) < 3:
            continue
        others = [m for m in (fields[3] if len(fields) > 3 else "").split(",")
                  if m and m != user.name]
        others += [u.name for u in users if u.gid == user.gid and u.name != user.name]
        if fields[2] != str(user.gid) or user.gid < FIRST_USER_UID:
            return Note("user-account", f"group {user.name} (gid {fields[2]}) is not "
                                        f"{user.name}'s own: kept")
        if others:
            return Note("user-account", f"group {user.name} kept: {', '.join(others)} "
                                        "still in it")
        return True
    return False


_SUDO_CONTINUED = "\\"


def _sudo_rules(lines: list[str]) -> Iterator[tuple[range, str]]:
    """Logical sudoers lines (backslash continuations joined) and the physical lines each
    spans."""
    start = 0
    joined = ""
    for i, line in enumerate(lines):
        if line.endswith(_SUDO_CONTINUED):
            joined += line[:-1] + " "
            continue
        yield range(start, i + 1), (joined + line).strip()
        start, joined = i + 1, ""
    if joined:
        yield range(start, len(lines)), joined.strip()


def _is_sudo_comment(text: str) -> bool:
    """``#`` starts a comment, except ``#123`` (a uid) and ``#include``/``#includedir``."""
    return text.startswith("#") and not re.match(r"#(-?\d|include)", text)


def _sudoers(root: WritableRoot, user: User, group_too: bool) -> Iterator[Action | Note]:
    """Rules and Defaults for the user alone (waagent's ``NAME ALL=(ALL) ...`` in
    /etc/sudoers.d/waagent); a drop-in left with no rule goes. A line naming the user among
    others is kept, with a note."""
    heads = {user.name, f"#{user.uid}", f"Defaults:{user.name}"}
    if group_too:
        heads |= {f"%{user.name}", f"%#{user.gid}"}
    mention = re.compile(rf"(?<![\w.%#-]){re.escape(user.name)}(?![\w.-])")
    for path in [SUDOERS, *_contents(root, SUDOERS_D)]:
        text = _read_db(root, path)
        if text is None:
            continue
        lines = text.split("\n")
        drop: set[int] = set()
        for span, rule in _sudo_rules(lines):
            if not rule or _is_sudo_comment(rule):
                continue
            if rule.split()[0] in heads:
                drop.update(span)
            elif mention.search(rule):
                yield Note("user-account", f"{path}:{span[0] + 1} names {user.name} with "
                                           "others: kept")
        if not drop:
            continue
        kept = [line for i, line in enumerate(lines) if i not in drop]
        reason = f"sudo rules for {user.name}"
        if path != SUDOERS and all(not r or _is_sudo_comment(r) for _, r in _sudo_rules(kept)):
            yield Action("user-account", "remove", path, reason)
        else:
            yield Action("user-account", "write", path, reason, "\n".join(kept))


@operation("user-account", "Delete the build user (--user NAME) and all it leaves",
           fixes=("LINUX-NO-DEFAULT-ACCOUNTS",),
           waagent="+user: userdel -f -r NAME; its lines out of /etc/sudoers.d/waagent")
def user_account(root: WritableRoot, options: Options) -> Iterator[Action | Note]:
    """``--user NAME`` only (nothing without it), so it is on by default: the account that
    built the image has a password or keys every VM would share. As ``userdel -r`` does, and
    more: its lines in passwd, shadow, group, gshadow, subuid and subgid, its own group, its
    name in other groups, its home, mail spool and crontab, and its sudoers rules (waagent
    removes every line of /etc/sudoers.d/waagent that merely contains the name). A system
    account (uid below 1000, root, nobody) is refused: deleting one breaks the image."""
    user, users = _build_user(root, options.user)
    if user is None:
        if options.user is not None:
            yield Note("user-account", f"no user {options.user} in {PASSWD}: nothing deleted")
        return
    for same in users:
        if same.name == user.name:
            _refuse_system(same)
    name, op = user.name, "user-account"
    home = _doomed_home(root, user, users)
    if isinstance(home, Note):
        yield home
    else:
        entry = root.entry(home)
        if entry is not None and entry.kind == "link":
            yield Note(op, f"{user.name}'s home {home} is a symbolic link: the link removed, "
                           "not what it points to")
        yield from remove_existing(root, op, [home], f"{name}'s home directory")
    yield from remove_existing(root, op, [f"/var/mail/{name}", f"/var/spool/mail/{name}"],
                       f"{name}'s mail", ("file", "link"))
    yield from remove_existing(root, op, [f"/var/spool/cron/crontabs/{name}", f"/var/spool/cron/{name}",
                                  f"/var/spool/cron/tabs/{name}"],
                       f"{name}'s crontab", ("file", "link"))
    own = _own_group(root, user, users)
    if isinstance(own, Note):
        yield own
    group_too = own is True
    yield from _sudoers(root, user, group_too)
    for path in (SUBUID, SUBGID):
        yield from _edit_db(root, op, path,
                            lambda f: None if f[0] in (name, str(user.uid)) else f,
                            f"{name}'s subordinate ids")

    def group_edit(first_member_field: int) -> Edit:
        def edit(fields: list[str]) -> list[str] | None:
            if fields[0] == name and group_too:
                return None
            return [_without(f, name) if i >= first_member_field else f
                    for i, f in enumerate(fields)]
        return edit

    yield from _edit_db(root, op, GSHADOW, group_edit(2), f"{name}'s group and memberships")
    yield from _edit_db(root, op, GROUP, group_edit(3), f"{name}'s group and memberships")
    yield from _edit_db(root, op, SHADOW, lambda f: None if f[0] == name else f,
                        f"{name}'s password")
    yield from _edit_db(root, op, PASSWD, lambda f: None if f[0] == name else f,
                        f"the build user {name}")


# --- ssh-userdir ------------------------------------------------------------------------------


AUTHORIZED_KEYS = ("authorized_keys", "authorized_keys2")


@operation("ssh-userdir", "Remove every user's SSH authorized_keys",
           fixes=("LINUX-NO-DEFAULT-ACCOUNTS",), waagent="only the +user account's, with its home")
def ssh_userdir(root: WritableRoot, options: Options) -> Iterator[Action | Note]:
    """authorized_keys and authorized_keys2 of root, of every account's home and of every
    /home/* (virt-sysprep removes whole ~/.ssh directories; a known_hosts or ssh config the
    publisher put there is kept). On by default: a key baked into the image lets its owner
    into every customer's VM, and provisioning installs the customer's own key."""
    users = _users(root)
    owners: dict[str, list[str]] = {"/root": ["root"]}
    for user in users:
        if user.home:
            owners.setdefault(normalize(user.home), []).append(user.name)
    for home in root.glob("/home/*"):
        owners.setdefault(home, [])
    doomed = _doomed_by_user_account(root, options.user, users)
    candidates = {posixpath.join(home, ".ssh", n): home for home in owners for n in AUTHORIZED_KEYS
                  if doomed is None or not (home + "/").startswith(doomed + "/")}
    emptied: dict[str, None] = {}
    for action in remove_existing(root, "ssh-userdir", candidates, "keys that log in to every VM",
                          ("file", "link", "other")):
        emptied[candidates[action.path]] = None
        yield action
    for home in emptied:
        who = [n for n in owners[home] if n != "root"] or (
            [] if "root" in owners[home] else [home])
        if who:
            yield Note("ssh-userdir", f"{', '.join(who)}: authorized_keys removed (a key baked "
                                      "in lets its owner into every VM)")


def _doomed_by_user_account(root: WritableRoot, name: str | None, users: list[User]
                            ) -> str | None:
    """The home user-account deletes whole (its keys go with it), if any."""
    build = next((u for u in users if u.name == name), None)
    if build is None or build.name == "root" or build.uid < FIRST_USER_UID:
        return None
    home = _doomed_home(root, build, users)
    return home if isinstance(home, str) else None


# --- lock-passwords ---------------------------------------------------------------------------


@operation("lock-passwords", "Lock the password of every account but root's (off by default)",
           fixes=("LINUX-NO-DEFAULT-ACCOUNTS",), default=False)
def lock_passwords(root: WritableRoot, options: Options) -> Iterator[Action | Note]:
    """``!`` before every password LINUX-NO-DEFAULT-ACCOUNTS finds (a usable hash or an empty
    field), as ``passwd -l`` (the hash is kept, so ``passwd -u`` undoes it). Off by default:
    an account with a password is one the publisher made on purpose, and whether to delete
    it or lock it is theirs to decide; the check names each one. The ``--user`` account is
    left to user-account. root is root-password's."""
    found = [u.name for u in _users(root) if u.name not in ("root", options.user)
             and (u.has_usable_password or u.empty_password)]
    if not found:
        return
    # The field pam_unix checks: passwd's own when it is not "x" (then shadow's is unused).
    in_passwd = {f[0] for f in (line.split(":") for line in
                                (_read_db(root, PASSWD) or "").split("\n"))
                 if f[0] in found and len(f) > 1 and f[1] != "x"}

    def lock(names: set[str]) -> Edit:
        def edit(fields: list[str]) -> list[str]:
            if fields[0] in names and len(fields) > 1 and not fields[1].startswith("!"):
                return [fields[0], "!" + fields[1], *fields[2:]]
            return fields
        return edit

    for path, names in ((SHADOW, set(found) - in_passwd), (PASSWD, in_passwd)):
        if names:
            yield from _edit_db(root, "lock-passwords", path, lock(names),
                                f"password of {', '.join(sorted(names))}")
    for name in found:
        yield Note("lock-passwords", f"{name}'s password locked: a password in the image is "
                                     "the same on every VM")


# --- passwd-backups ---------------------------------------------------------------------------


PASSWD_BACKUPS = tuple(f"/etc/{n}-" for n in ("passwd", "shadow", "group", "gshadow", "subuid",
                                               "subgid"))


@operation("passwd-backups", "Remove /etc/passwd- and the other account backups")
def passwd_backups(root: WritableRoot, options: Options) -> Iterator[Action]:
    """The backups shadow's tools leave keep the deleted build user and root's old hash."""
    yield from remove_existing(root, "passwd-backups", PASSWD_BACKUPS,
                       "a copy of the accounts before they were cleaned", ("file", "link"))


# --- logfiles ---------------------------------------------------------------------------------


LOG_DIR = "/var/log"
#: Login records: emptied, not removed (login, last and lastlog write into them).
LOG_RECORDS = ("wtmp", "btmp", "lastlog", "faillog", "tallylog")
#: The agent's own logs: waagent-state removes them.
AGENT_LOGS = ("/var/log/waagent.log", "/var/log/azure")
#: Installer leftovers outside /var/log (virt-sysprep's logfiles list).
INSTALLER_FILES = ("/root/anaconda-ks.cfg", "/root/anaconda-post.log", "/root/install.log",
                   "/root/install.log.syslog", "/root/initial-setup-ks.cfg",
                   "/root/original-ks.cfg", "/var/lib/logrotate.status",
                   "/var/lib/logrotate/status")


def _log_entries(root: WritableRoot) -> Iterator[tuple[str, str]]:
    """Every (path, kind) under /var/log; directories are walked (without recursion: a
    hostile tree may be deep), never yielded: they stay. The journal's directories are
    yielded whole, as ``journal``."""
    todo = [LOG_DIR]
    while todo:
        directory = todo.pop()
        for path in _contents(root, directory):
            entry = root.entry(path)
            if path in AGENT_LOGS or entry is None:
                continue
            if entry.kind == "dir" and directory == f"{LOG_DIR}/journal":
                yield path, "journal"
            elif entry.kind == "dir":
                todo.append(path)
            else:
                yield path, entry.kind


def _packaged_link(root: WritableRoot, path: str) -> bool:
    """A link into /usr (Debian's and Fedora's /var/log/README): a package's file."""
    with root.parent(path) as where:
        if where is None:
            return False
        fd, name = where
        target = os.readlink(name, dir_fd=fd)
    full = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return full.startswith("/usr/")


@operation("logfiles", "Remove the log files (directories kept, login records emptied)",
           waagent="only /var/log/waagent.log and /var/log/azure (waagent-state)")
def logfiles(root: WritableRoot, options: Options) -> Iterator[Action]:
    """Every file under /var/log: the build's syslog, journal, apt and audit logs tell the
    customer (and anyone) about the build machine. The directories stay, packages expect
    them; wtmp, btmp, lastlog, faillog and tallylog are emptied; a journal directory goes
    whole (it is named by the build VM's machine ID). The agent's logs are waagent-state's.
    """
    for path, kind in _log_entries(root):
        name = posixpath.basename(path)
        if posixpath.dirname(path) == LOG_DIR and name in LOG_RECORDS and kind == "file":
            entry = root.entry(path)
            if entry is not None and entry.size > 0:
                yield Action("logfiles", "write", path, "the build's login records", "")
        elif kind == "journal":
            yield Action("logfiles", "remove", path, "the build VM's journal")
        elif kind == "file" or (kind == "link" and not _packaged_link(root, path)):
            yield Action("logfiles", "remove", path, "a log of the build")
    yield from remove_existing(root, "logfiles", INSTALLER_FILES, "an installer's leftover",
                       ("file", "link"))


# --- tmp-files --------------------------------------------------------------------------------


@operation("tmp-files", "Remove the contents of /tmp and /var/tmp")
def tmp_files(root: WritableRoot, options: Options) -> Iterator[Action]:
    """What the build left in the temporary directories (downloads, installers, sockets);
    the directories themselves stay with their mode."""
    paths = [p for d in ("/tmp", "/var/tmp") for p in _contents(root, d)
             if not p.endswith("/lost+found")]
    yield from remove_existing(root, "tmp-files", paths, "a temporary file of the build")


# --- package-manager-cache --------------------------------------------------------------------


@operation("package-manager-cache", "Remove downloaded packages and package-manager caches")
def package_manager_cache(root: WritableRoot, options: Options) -> Iterator[Action]:
    """Downloaded .deb and .rpm files and the caches apt, yum, dnf and zypper rebuild; they
    only make the image larger (and date it). The cache directories stay, with apt's lock."""
    apt = "/var/cache/apt"
    paths = [*[p for p in _contents(root, f"{apt}/archives") if fnmatch.fnmatch(p, "*.deb")],
             *_contents(root, f"{apt}/archives/partial"),
             *[p for p in _contents(root, apt) if fnmatch.fnmatch(p, "*.bin")],
             *_contents(root, "/var/cache/yum"), *_contents(root, "/var/cache/dnf"),
             *_contents(root, "/var/cache/zypp/packages")]
    yield from remove_existing(root, "package-manager-cache", paths, "a package-manager cache")
