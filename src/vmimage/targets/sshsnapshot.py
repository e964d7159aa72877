"""The files a live check reads, fetched in one stream instead of hundreds of round trips.

Under TCG each SFTP round trip costs about 10 ms and the checks make about 300 (stats,
listings, small reads under /etc and the unit directories). One command on the VM prints the
metadata of every entry under a few roots (``find -printf``) and then a tar of the small
regular files among them; this module builds that command and reads its output into what
:class:`~vmimage.targets.ssh.SshTarget` caches (lstats, complete listings, link targets,
contents). Anything not in the snapshot is still asked over SFTP.

A listing is complete only where ``find`` descended: a directory on another filesystem than
its parent (``-xdev`` stops there) keeps no listing, so it is asked for.
"""

from __future__ import annotations

import io
import posixpath
import shlex
import stat as stat_module
import tarfile
from dataclasses import dataclass, field

from vmimage.targets.base import FileStat

#: Regular files up to this size come with their content.
FILE_MAX = 1024 * 1024
#: The whole stream is cut here (a tar cut short loses its last members, nothing else).
STREAM_MAX = 48 * 1024 * 1024
_KIND = {"f": stat_module.S_IFREG, "d": stat_module.S_IFDIR, "l": stat_module.S_IFLNK,
         "p": stat_module.S_IFIFO, "s": stat_module.S_IFSOCK, "c": stat_module.S_IFCHR,
         "b": stat_module.S_IFBLK}
_MARK = b"\0--vmimage-tar--\0"


@dataclass
class Snapshot:
    """What one stream said: lstats, complete listings, link targets, small files' bytes."""

    stats: dict[str, FileStat] = field(default_factory=dict)
    dirs: dict[str, list[str]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


def command(roots: list[str]) -> list[str]:
    """The ``sh -c`` argv that prints the metadata records, the mark, then the tar."""
    script = (
        'find "$@" -xdev -printf "%y\\t%m\\t%U\\t%G\\t%s\\t%T@\\t%D\\t%p\\t%l\\0" 2>/dev/null; '
        f"printf '\\000--vmimage-tar--\\000'; "
        f'find "$@" -xdev -type f -size -{FILE_MAX // 1024 + 1}k -print0 2>/dev/null '
        "| tar --null --no-recursion -T - -cf - 2>/dev/null "
        f"| head -c {STREAM_MAX}")
    return ["sh", "-c", script, "sh", *roots]


def parse(data: bytes) -> Snapshot:
    """The snapshot in ``data`` (the command's stdout); damaged records are left out."""
    meta, _, archive = data.partition(_MARK)
    snap = Snapshot()
    devices: dict[str, str] = {}
    for record in meta.split(b"\0"):
        fields = record.decode("utf-8", "surrogateescape").split("\t")
        if len(fields) != 9 or fields[0] not in _KIND:
            continue
        kind, perm, uid, gid, size, mtime, device, path, link = fields
        try:
            st = FileStat(_KIND[kind] | int(perm, 8), int(size), int(uid), int(gid),
                          float(mtime))
        except ValueError:
            continue
        path = posixpath.normpath(path)
        snap.stats[path] = st
        devices[path] = device
        if kind == "l":
            snap.links[path] = link
        if kind == "d":
            snap.dirs.setdefault(path, [])
    for path in list(snap.stats):
        parent = posixpath.dirname(path)
        if parent in snap.dirs and parent != path:
            snap.dirs[parent].append(posixpath.basename(path))
    for path in list(snap.dirs):  # not descended (another filesystem): no listing
        parent = posixpath.dirname(path)
        if parent in devices and devices[parent] != devices[path]:
            del snap.dirs[path]
    for names in snap.dirs.values():
        names.sort()
    snap.files = _contents(archive, snap.stats)
    return snap


def _contents(archive: bytes, stats: dict[str, FileStat]) -> dict[str, bytes]:
    """The regular files of the tar whose size is the one ``find`` saw (a file that changed
    in between is asked again)."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                path = posixpath.normpath("/" + member.name)
                st = stats.get(path)
                handle = tar.extractfile(member)
                if st is None or handle is None or st.size != member.size:
                    continue
                out[path] = handle.read()
    except (tarfile.TarError, EOFError, OSError):
        pass  # cut short or damaged: what was read is kept
    return out


def describe(roots: list[str]) -> str:
    """The command as it is shown in logs."""
    return shlex.join(command(roots))
