"""Let a user log in to a disk image's system with an SSH key: ``vm boot --key``'s injection.

Azure hands a VM its user and key at provisioning; a local VM booted from an image has no one
to do that (until the provisioning emulation), so ``vm boot --key`` writes the key into a
private copy of the image before booting it, never into the image itself. The copy's
filesystems are mounted by :func:`vmimage.generalize.worker.mounted`, in a mount namespace of
this worker's own, and every path is resolved inside the image's root by
:class:`WritableRoot`, as generalize does: a ``/home/u/.ssh`` that is a link to the host's
``/root/.ssh`` changes nothing on the host.

A generalized image has no SSH host keys (the agent makes them at provisioning, and sshd
does not start without them): the ones missing among ed25519, ecdsa and rsa are generated
here by the host's ``ssh-keygen`` and written into the copy, as provisioning would.

A user the image lacks is created the way the Azure agent creates one: lines in passwd,
shadow (no password: ``*``), group (and the ``sudo`` group when there is one), a home, and
``/etc/sudoers.d/vmimage-USER`` with NOPASSWD, since the user has no password to give sudo.

Run as ``unshare --mount --propagation private python -m vmimage.generalize.authorize`` with
a JSON request on stdin; the answer is JSON on stdout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from typing import Any

from vmimage.errors import InputError, VmimageError
from vmimage.generalize.image import Extent
from vmimage.generalize.rootfs import WritableRoot

USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
KEY_LINE = re.compile(r"(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\n\r]*)?")
FIRST_UID, LAST_UID = 1000, 59999


def command() -> list[str]:
    """How the application layer starts this worker."""
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    return [unshare, "--mount", "--propagation", "private", sys.executable, "-m",
            "vmimage.generalize.authorize"]


def request(image: str, extents: tuple[Extent, ...], user: str | None, key: str | None,
            files: dict[str, str] | None = None) -> str:
    """The JSON the worker reads on stdin: a user and key to authorize (both or neither),
    and files to write (``vm boot --provision``'s overrides, such as a systemd drop-in)."""
    return json.dumps({"image": image, "extents": [e.to_dict() for e in extents],
                       "user": user, "key": key, "files": files or {}})


#: Where override files may go: systemd's own configuration directory only.
OVERRIDE_DIR = "/etc/systemd/system/"


def write_files(root: WritableRoot, files: dict[str, str]) -> list[str]:
    """Write each override (0644, root's), creating its drop-in directory; the paths."""
    written = []
    for path, text in sorted(files.items()):
        if not path.startswith(OVERRIDE_DIR) or ".." in path.split("/"):
            raise InputError(path, f"overrides go under {OVERRIDE_DIR} only")
        parent = path.rsplit("/", 1)[0]
        _mkdir(root, parent, 0o755, 0, 0)
        root.replace(path, text, 0o644)
        written.append(path)
    return written


def _rows(root: WritableRoot, path: str) -> list[list[str]]:
    text = root.read_text(path) or ""
    return [line.split(":") for line in text.splitlines() if line.strip()]


def _append(root: WritableRoot, path: str, row: str) -> None:
    text = root.read_text(path)
    if text is None:
        return
    root.replace(path, text + ("" if text.endswith("\n") or not text else "\n") + row + "\n")


def _chown(root: WritableRoot, path: str, uid: int, gid: int) -> None:
    with root.parent(path) as where:
        assert where is not None
        os.chown(where[1], uid, gid, dir_fd=where[0], follow_symlinks=False)


def _mkdir(root: WritableRoot, path: str, mode: int, uid: int, gid: int) -> None:
    """A directory owned by the user; an existing one is kept, anything else refused."""
    with root.parent(path) as where:
        if where is None:
            raise InputError(path, "cannot be created: its parent directory is missing")
        fd, name = where
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            os.mkdir(name, mode, dir_fd=fd)
            os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
            os.chmod(name, mode, dir_fd=fd)
            return
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(path, "exists and is not a directory: no key written")


def _is_dir(root: WritableRoot, path: str) -> bool:
    fd = root.directory(path)
    if fd is None:
        return False
    os.close(fd)
    return True


def _create_user(root: WritableRoot, user: str) -> tuple[int, int, str]:
    passwd, group = _rows(root, "/etc/passwd"), _rows(root, "/etc/group")
    used_uids = {int(r[2]) for r in passwd if len(r) > 2 and r[2].isdigit()}
    used_gids = {int(r[2]) for r in group if len(r) > 2 and r[2].isdigit()}
    uid = next(u for u in range(FIRST_UID, LAST_UID) if u not in used_uids)
    gid = uid if uid not in used_gids else next(
        g for g in range(FIRST_UID, LAST_UID) if g not in used_gids)
    shell = "/bin/bash" if root.entry("/bin/bash") is not None else "/bin/sh"
    home = f"/home/{user}"
    _append(root, "/etc/passwd", f"{user}:x:{uid}:{gid}::{home}:{shell}")
    _append(root, "/etc/shadow", f"{user}:*:19000:0:99999:7:::")
    _append(root, "/etc/group", f"{user}:x:{gid}:")
    if root.read_text("/etc/gshadow") is not None:
        _append(root, "/etc/gshadow", f"{user}:!::")
    for path in ("/etc/group", "/etc/gshadow"):
        rows = _rows(root, path)
        if any(r[0] == "sudo" for r in rows):
            out = []
            for r in rows:
                if r[0] == "sudo":
                    members = [m for m in r[-1].split(",") if m]
                    r[-1] = ",".join([*members, user])
                out.append(":".join(r))
            root.replace(path, "\n".join(out) + "\n")
    if _is_dir(root, "/etc/sudoers.d"):
        root.replace(f"/etc/sudoers.d/vmimage-{user}", f"{user} ALL=(ALL) NOPASSWD:ALL\n", 0o440)
    _mkdir(root, "/home", 0o755, 0, 0)
    _mkdir(root, home, 0o750, uid, gid)
    return uid, gid, home


HOST_KEY_TYPES = ("ed25519", "ecdsa", "rsa")


def host_keys(root: WritableRoot) -> list[str]:
    """Generate the host keys ``/etc/ssh`` lacks, as provisioning does; the types made."""
    if not _is_dir(root, "/etc/ssh"):
        return []
    made = []
    for kind in HOST_KEY_TYPES:
        path = f"/etc/ssh/ssh_host_{kind}_key"
        if root.entry(path) is not None:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "key")
            subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@vmimage-vm",
                            "-f", local], check=True, capture_output=True)
            with open(local, "rb") as fh:
                private = fh.read()
            with open(local + ".pub", "rb") as fh:
                public = fh.read()
        root.replace(path, private, 0o600)
        root.replace(path + ".pub", public, 0o644)
        made.append(kind)
    return made


def authorize(root: WritableRoot, user: str, key: str) -> dict[str, Any]:
    """Add ``key`` to ``user``'s authorized_keys in ``root`` (creating the user if needed).

    Raises:
        InputError: a bad user name or key line, or a home that cannot hold the key.
    """
    if not USER_NAME.fullmatch(user):
        raise InputError(user, "is not a usable user name")
    if not KEY_LINE.fullmatch(key):
        raise InputError("--key", "is not one OpenSSH public key line")
    found = next((r for r in _rows(root, "/etc/passwd") if r[0] == user and len(r) >= 7), None)
    created = found is None
    if found is None:
        uid, gid, home = _create_user(root, user)
    else:
        uid, gid, home = int(found[2]), int(found[3]), found[5]
        if not _is_dir(root, home):
            _mkdir(root, home, 0o750, uid, gid)
    ssh = f"{home.rstrip('/')}/.ssh"
    _mkdir(root, ssh, 0o700, uid, gid)
    path = f"{ssh}/authorized_keys"
    old = root.read_text(path) or ""
    if key not in old.splitlines():
        root.replace(path, old + ("" if old.endswith("\n") or not old else "\n") + key + "\n",
                     0o600)
        _chown(root, path, uid, gid)
    return {"user": user, "uid": uid, "home": home, "created": created, "path": path}


def main() -> int:
    """Read the request, mount, write, unmount; answer on stdout (``{"error": [...]}``)."""
    from vmimage.generalize.worker import mounted

    raw = json.load(sys.stdin)
    notes: list[str] = []
    try:
        extents = [Extent(**e) for e in raw["extents"]]
        with mounted(raw["image"], extents, True, notes) as top, WritableRoot(top) as root:
            answer: dict[str, Any] = {"created": False}
            if raw.get("user") and raw.get("key"):
                answer = authorize(root, raw["user"], raw["key"])
                answer["host_keys"] = host_keys(root)
            answer["written"] = write_files(root, raw.get("files") or {})
    except VmimageError as exc:
        answer = {"error": [str(getattr(exc, "source", "--key")),
                            getattr(exc, "problem", str(exc))]}
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
