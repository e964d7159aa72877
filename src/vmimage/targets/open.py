"""Turn what the user typed as TARGET into a :class:`~vmimage.targets.base.Target`.

One function, so every command accepts the same targets and refuses the same bad ones with
the same one-line message. ``ssh://`` opens a live VM (:mod:`vmimage.targets.ssh`);
``winrm://`` is not supported yet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from vmimage.errors import InputError, UnsupportedError
from vmimage.targets.base import Target

if TYPE_CHECKING:
    from vmimage.targets.sshconnect import SshOptions

_LIVE_SCHEMES = ("ssh://", "winrm://")


def open_target(spec: str | os.PathLike[str], ssh: SshOptions | None = None) -> Target:
    """A directory -> a root-directory target; a file -> a disk image target.

    Raises:
        InputError: the spec names nothing usable (the message names it and says why).
        UnsupportedError: a live target of a kind not supported yet (``winrm://``), or an
            image vmimage cannot read.

    ``ssh`` holds the options of an ``ssh://`` target (credentials, sudo, host keys).
    """
    text = os.fspath(spec)
    if text.startswith(_LIVE_SCHEMES):
        return _open_live(text, ssh)
    if "://" in text:
        raise InputError(text, "unknown kind of target: give a disk image file, a directory "
                               "holding a root filesystem, or ssh://user@host")
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
