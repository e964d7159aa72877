"""Upload a disk (``vmimage upload``): judge the file by the format rules, then send it."""

from __future__ import annotations

import os
from collections.abc import Callable

from vmimage.app.disk import check_uploadable
from vmimage.storage.retry import RetryPolicy
from vmimage.storage.upload import Progress, UploadOptions, UploadResult, upload_file

__all__ = ["Progress", "RetryPolicy", "UploadOptions", "UploadResult", "upload"]


def upload(path: str | os.PathLike[str], url_text: str, options: UploadOptions,
           on_progress: Callable[[Progress], None] | None = None) -> UploadResult:
    """Upload ``path`` to the page blob at ``url_text``, or resume an earlier upload.

    Raises:
        InputError: the file is not uploadable (the rule that refuses it is named), the URL
            or the credentials cannot be used, or the service keeps refusing.
    """
    size = check_uploadable(path, options.allow_any)
    return upload_file(path, url_text, options, size, on_progress)
