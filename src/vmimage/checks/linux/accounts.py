"""Accounts: root locked, no default accounts or keys, no shell history, no `Defaults targetpw`."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from vmimage.checks.context import CheckContext
from vmimage.facts.accounts import HISTORY_NAMES, User
from vmimage.findings import Evidence, Outcome, Severity, passed, violated
from vmimage.rules import rule
from vmimage.targets.base import UnreadableError, live

#: The stub cloud images put in root's authorized_keys to refuse root logins (LISA allows it).
_ROOT_REFUSAL_STUB = "Please login as the user"



def _root(ctx: CheckContext) -> User | None:
    return next((u for u in ctx.system.users if u.name == "root"), None)


@rule(id="LINUX-ROOT-PASSWORD-LOCKED", title="root has no password", severity=Severity.FAIL,
       covers=("LNX-ROOT-PASSWORD", "LISA-verify_no_pre_exist_users"),
       remediation="Lock root: `passwd -l root` or set its /etc/shadow field to `*` "
                   "(waagent -deprovision does with Provisioning.DeleteRootPassword=y).",
       needs=("filesystem",))
def root_password_locked(ctx: CheckContext) -> Outcome:
    """A root password in the image is the same on every customer's VM."""
    root = _root(ctx)
    if root is None:
        return violated("no root account in /etc/passwd", Evidence(path="/etc/passwd"))
    where = Evidence(path="/etc/shadow" if root.shadow_line else "/etc/passwd",
                     line=root.shadow_line or root.passwd_line,
                     seen=_masked(root.password), required="* or ! (locked)")
    if root.empty_password:
        return violated("root has an EMPTY password: anyone can log in as root", where)
    if root.has_usable_password:
        return violated("root has a usable password hash", where)
    return passed("root's password is locked", where)


def _masked(field: str) -> str:
    """Evidence never shows a hash, only its kind: hashes are secrets."""
    if field in ("", "*", "!", "!!", "x") or (field.startswith(("!", "*")) and len(field) < 3):
        return field or "(empty)"
    if field.startswith(("!", "*")):
        return f"{field[0]}<locked hash>"
    kind = field.split("$")[1] if field.startswith("$") and field.count("$") > 2 else "?"
    return f"<password hash, type {kind}>"


@rule(id="LINUX-NO-DEFAULT-ACCOUNTS", title="No account has a password or SSH keys baked in",
       severity=Severity.FAIL,
       covers=("LNX-DEFAULT-ACCOUNTS", "LISA-verify_no_pre_exist_users"),
       remediation="Delete the build user (waagent -deprovision+user, or userdel -r), lock every "
                   "other account's password, and remove every authorized_keys file.",
       needs=("filesystem",))
def no_default_accounts(ctx: CheckContext) -> Iterator[Outcome]:
    """An account that is the same on every VM is a back door (LISA, certification policy)."""
    assert ctx.target is not None
    found = False
    running = live(ctx.target)
    # on a running VM, the account it was deployed with is the customer's, not baked in
    deployed = running.login_user if running is not None else None
    for user in ctx.system.users:
        if user.name == deployed:
            continue
        if user.name != "root" and (user.has_usable_password or user.empty_password):
            found = True
            kind = "an empty password" if user.empty_password else "a usable password"
            yield violated(f"user {user.name} has {kind}",
                           Evidence(path="/etc/shadow" if user.shadow_line else "/etc/passwd",
                                    line=user.shadow_line or user.passwd_line,
                                    seen=_masked(user.password), required="locked"))
        if user.is_login_shell or user.name == "root":
            for keys in _authorized_keys(ctx, user):
                found = True
                yield violated(f"user {user.name} has SSH keys in {keys}",
                               Evidence(path=keys, seen="authorized key(s)", required="none"))
    if not found:
        but = f" (but {deployed}, the account the VM was deployed with)" if deployed else ""
        yield passed(f"no account has a password or authorized_keys{but}")


def _authorized_keys(ctx: CheckContext, user: User) -> list[str]:
    assert ctx.target is not None
    out = []
    for name in ("authorized_keys", "authorized_keys2"):
        path = posixpath.join(user.home, ".ssh", name)
        try:
            text = ctx.target.read_text(path)
        except UnreadableError:
            raise  # there but unreadable (a loop, a FIFO, damage): skip, never "absent"
        except OSError:
            continue
        keys = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if keys and not all(_ROOT_REFUSAL_STUB in k for k in keys):
            out.append(path)
    return out


@rule(id="LINUX-SHELL-HISTORY-EMPTY", title="No user has shell history",
       severity=Severity.FAIL,
       covers=("LNX-HISTORY", "MS-48", "LISA-verify_bash_history_is_empty", "MS-200.5.1"),
       remediation="Delete every user's history files as the very last step (e.g. "
                   "`rm -f /root/.bash_history /home/*/.*_history; export HISTSIZE=0`), then "
                   "generalize without starting a new shell that writes one.",
       needs=("filesystem",))
def shell_history_empty(ctx: CheckContext) -> Iterator[Outcome]:
    """Microsoft's tool allows 1 KB, LISA nothing; the profile says which (rulings)."""
    assert ctx.target is not None
    limit = ctx.profile.number("shell_history_max_bytes")
    homes = {"/root"} | {u.home for u in ctx.system.users
                          if u.is_login_shell and u.home not in ("", "/")}
    found = False
    for home in sorted(homes):
        for name in HISTORY_NAMES:
            path = posixpath.join(home, name)
            try:
                size = ctx.target.stat(path).size
            except OSError:
                continue
            if size > limit:
                found = True
                yield violated(f"{path} holds {size} bytes",
                               Evidence(path=path, seen=f"{size} bytes",
                                        required=f"at most {limit} bytes"))
    if not found:
        yield passed(f"no history file over {limit} bytes in {len(homes)} home directories",
                     Evidence(seen="No file Exist", required=f"<= {limit} bytes"))


@rule(id="LINUX-SUDO-NO-TARGETPW", title="sudo does not ask for the target user's password",
       severity=Severity.FAIL, covers=("LNX-DEFAULT-ACCOUNTS", "LISA-verify_default_targetpw"),
       remediation="Remove `Defaults targetpw` (and `ALL ALL=(ALL) ALL` that goes with it) from "
                   "/etc/sudoers: with root locked, nobody could use sudo.",
       needs=("filesystem",))
def sudo_no_targetpw(ctx: CheckContext) -> Outcome:
    """SUSE ships `Defaults targetpw`; with root's password deleted, sudo becomes unusable."""
    for entry in ctx.system.sudoers:
        words = entry.text.replace(",", " ").split()
        if words[:1] == ["Defaults"] and "targetpw" in words:
            return violated("Defaults targetpw is enabled",
                            Evidence(path=entry.path, line=entry.line, seen=entry.text,
                                     required="absent"))
    return passed("no Defaults targetpw in sudoers", Evidence(path="/etc/sudoers"))
