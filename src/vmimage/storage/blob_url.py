"""Blob URLs as storage commands use them: parsed by :mod:`vmimage.bloburl` (strictly for
``upload``, ``sas create`` and ``certify --upload``, leniently for ``sas verify``), with the SAS
registered as a secret the moment it is read, and a display form without the signature.

The parsing itself (host- and path-style URLs, sovereign clouds, emulators) is
:mod:`vmimage.bloburl`'s; this module adds what needs :mod:`vmimage.secrets`, which that leaf
cannot import, and ``@FILE`` arguments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vmimage.bloburl import BlobAddress, Kind, parse_lenient, parse_strict
from vmimage.secrets import redact, register_sas

__all__ = ["BlobUrl", "parse_blob_url", "parse_sas_url"]

@dataclass(frozen=True)
class BlobUrl(BlobAddress):
    """A blob (or container) URL whose query is its SAS (a strict parse refuses any other
    query; a lenient one keeps it, for ``sas verify`` to judge)."""

    @property
    def sas(self) -> str:
        """The SAS token (the query), ``""`` when there is none. A secret: never print it."""
        return self.query

    @property
    def display(self) -> str:
        """The URL as we print it: the signature removed."""
        return redact(self.url)

    def with_sas(self, sas: str) -> BlobUrl:
        """The same blob with another SAS (registered as a secret)."""
        register_sas(sas)
        return dataclasses.replace(self, query=sas.lstrip("?"))


def parse_blob_url(text: str, source: str = "BLOB_URL", kind: Kind = "blob") -> BlobUrl:
    """Parse ``text`` strictly (:func:`vmimage.bloburl.parse_strict`); a SAS in its query is
    registered as a secret first, so that no message can show it.

    Raises:
        InputError: not an http(s) URL naming an account, a container and (for a blob) a blob.
    """
    register_sas(text.partition("?")[2])
    return BlobUrl(**dataclasses.asdict(parse_strict(text, source, kind)))


def parse_sas_url(text: str, source: str = "SAS_URI") -> BlobUrl:
    """Parse ``text`` leniently (:func:`vmimage.bloburl.parse_lenient`: missing parts empty,
    any query kept), for ``sas verify``, which reports what is wrong rather than refusing; its
    signature is registered as a secret first.

    Raises:
        InputError: not a URL at all, or it carries a user name or password.
    """
    register_sas(text.partition("?")[2])
    return BlobUrl(**dataclasses.asdict(parse_lenient(text, source)))
