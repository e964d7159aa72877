"""Seal the SAS tokens the service keeps: AES-256-GCM under a key that lives apart from the
database.

A SAS token grants read access to a publisher's VHDs (rulings: SAS URIs are secrets). A copy
of the database (a backup, a PostgreSQL replica, a support dump) must not grant it, so the
token is encrypted with a key kept in a file beside the service's state (mode 0600), never in
the database. Each sealed token is bound to the blob URL it was given for (the GCM associated
data), so a sealed value copied onto another disk's row does not open.

The key file holds 32 random bytes, base64; it is made on first start. Several service
processes that share one PostgreSQL database must be given the same file (``--key-file``).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vmimage.errors import InputError, VmimageError
from vmimage.privatefile import write_private

KEY_BYTES = 32
_VERSION = b"\x01"
_NONCE = 12


class SealError(VmimageError):
    """A sealed value does not open with this key (another key file, or altered data)."""


class Sealer:
    """Seal and open short secrets with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("the sealing key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, secret: str, context: str) -> bytes:
        """``secret`` encrypted and bound to ``context`` (the blob URL)."""
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, secret.encode(), context.encode())

    def open(self, sealed: bytes, context: str) -> str:
        """The secret of a sealed value.

        Raises:
            SealError: another key sealed it, the data was altered, or ``context`` differs.
        """
        if sealed[:1] != _VERSION or len(sealed) < 1 + _NONCE + 16:
            raise SealError("a sealed SAS token is not in a format this version reads")
        nonce, data = sealed[1:1 + _NONCE], sealed[1 + _NONCE:]
        try:
            return self._aead.decrypt(nonce, data, context.encode()).decode()
        except InvalidTag:
            raise SealError("a sealed SAS token does not open with this key file (was the "
                            "service started with another --key-file?)") from None


def load_key(path: Path) -> bytes:
    """The key in ``path``, made (32 random bytes, mode 0600) when the file does not exist.

    Raises:
        InputError: the file cannot be read or written, is readable by others, or does not
            hold a key.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = os.urandom(KEY_BYTES)
        write_private(path, base64.b64encode(key).decode() + "\n")
        return key
    except OSError as exc:
        raise InputError(path, f"cannot read the key file: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(path, "the key file is readable by others: chmod 600 it")
    try:
        key = base64.b64decode(path.read_text("ascii").strip(), validate=True)
    except (OSError, UnicodeDecodeError, binascii.Error):
        raise InputError(path, "does not hold a key (32 bytes, base64)") from None
    if len(key) != KEY_BYTES:
        raise InputError(path, "does not hold a key (32 bytes, base64)")
    return key
