"""Turn what the user typed as TARGET into a :class:`~vmimage.targets.base.Target`.

One function, so every command accepts the same targets and refuses the same bad ones with
the same one-line message. ``ssh://`` opens a live VM (:mod:`vmimage.targets.ssh`);
``https://`` (and ``http://`` for an endpoint allowed explicitly) opens a VHD in blob storage,
read by range requests (:mod:`vmimage.targets.remote`); ``winrm://`` is not supported yet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from vmimage.errors import InputError, UnsupportedError
from vmimage.targets.base import Target

if TYPE_CHECKING:
    from vmimage.fetchpolicy import FetchPolicy
    from vmimage.targets.sshconnect import SshOptions

_LIVE_SCHEMES = ("ssh://", "winrm://")
_BLOB_SCHEMES = ("https://", "http://")


def is_blob_url(spec: str) -> bool:
    """Whether a TARGET names a blob by URL (``https://``, or ``http://`` for an emulator)."""
    return spec[:8].lower().startswith(_BLOB_SCHEMES)


def open_target(spec: str | os.PathLike[str], ssh: SshOptions | None = None,
                fetch: FetchPolicy | None = None) -> Target:
    """A directory -> a root-directory target; a file -> a disk image target; a blob URL -> a
    disk image target read by range requests.

    Raises:
        InputError: the spec names nothing usable (the message names it and says why).
        UnsupportedError: a live target of a kind not supported yet (``winrm://``), or an
            image vmimage cannot read.

    ``ssh`` holds the options of an ``ssh://`` target (credentials, sudo, host keys);
    ``fetch`` the endpoints a blob URL may name (default: Azure's blob endpoints only).
    """
    text = os.fspath(spec)
    if text.startswith(_LIVE_SCHEMES):
        return _open_live(text, ssh)
    if is_blob_url(text):
        from vmimage.targets.remote import open_blob

        return open_blob(text, fetch)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise InputError(f"{scheme}://...", "unknown kind of target: give a disk image file, "
                                            "a directory holding a root filesystem, a blob "
                                            "URL (https://), or ssh://user@host")
    path = Path(text)
    if path.is_dir():
        from vmimage.targets.rootdir import RootDirTarget

        return RootDirTarget(path)
    if path.is_file():
        from vmimage.targets.image import ImageTarget

        return ImageTarget(path)
    if not path.exists() and not path.is_symlink():
        raise InputError(text, "no such file or directory")
    raise InputError(text, "is neither a disk image file nor a directory")


def _open_live(spec: str, ssh: SshOptions | None) -> Target:
    """``ssh://`` opens (and tests) the connection; asyncssh is imported only here."""
    if spec.startswith("ssh://"):
        from vmimage.targets.ssh import SshTarget
        from vmimage.targets.sshconnect import SshOptions, parse_address

        return SshTarget(parse_address(spec), ssh or SshOptions())
    scheme = spec.split("://", 1)[0]
    raise UnsupportedError(spec, f"{scheme} targets are not supported yet: check a disk "
                                 "image or a mounted root directory")
