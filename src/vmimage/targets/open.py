"""Turn what the user typed as TARGET into a :class:`~vmimage.targets.base.Target`.

One function, so every command accepts the same targets and refuses the same bad ones with
the same one-line message. Live targets (``ssh://``, ``winrm://``) plug in here later.
"""

from __future__ import annotations

import os
from pathlib import Path

from vmimage.errors import InputError, UnsupportedError
from vmimage.targets.base import Target

_LIVE_SCHEMES = ("ssh://", "winrm://")


def open_target(spec: str | os.PathLike[str]) -> Target:
    """A directory -> a root-directory target; a file -> a disk image target.

    Raises:
        InputError: the spec names nothing usable (the message names it and says why).
        UnsupportedError: a live target (not yet), or an image vmimage cannot read.
    """
    text = os.fspath(spec)
    if text.startswith(_LIVE_SCHEMES):
        return _open_live(text)
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


def _open_live(spec: str) -> Target:
    """The hook for live targets; none is implemented yet."""
    scheme = spec.split("://", 1)[0]
    raise UnsupportedError(spec, f"{scheme} targets are not supported yet: check a disk "
                                 "image or a mounted root directory")
