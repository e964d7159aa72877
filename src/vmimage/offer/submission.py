"""What rendering a submission shares: blob URLs of disks, and the rendered documents.

A disk is named by its blob URL (``url``) or by a local file that ``vmimage upload`` put into
``storage.container_url`` under its own file name; this is the one place that decides which
URL a document names, so the classic request, the Partner Center resource and the
certification package always agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmimage.bloburl import join_blob

if TYPE_CHECKING:
    from vmimage.offer.model import Disk, Manifest


def blob_url(manifest: Manifest, disk: Disk) -> str | None:
    """The disk's blob URL (without a token), or None when the manifest does not tell it."""
    if disk.url is not None:
        return disk.url
    container = manifest.storage.container_url
    if disk.file is None or container is None:
        return None
    return join_blob(container, os.path.basename(disk.file))


@dataclass
class Rendered:
    """Documents by file name, and what kept them from being complete.

    ``problems`` make the submission unusable (nothing is written); ``warnings`` leave it
    usable but not yet submittable (a disk without a SAS token, say).
    """

    documents: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
