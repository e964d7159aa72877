"""Storage failures as one redacted line, the way the CLI prints every error."""

from __future__ import annotations

from vmimage.errors import InputError
from vmimage.secrets import one_line, redact


class StorageError(InputError):
    """The service refused or failed an operation on a blob (exit 2, one line, no secrets)."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(redact(source), one_line(problem))


def describe(exc: BaseException) -> str:
    """``403 AuthorizationFailure: Server failed to authenticate...`` from an SDK exception."""
    from azure.core.exceptions import HttpResponseError

    text = one_line(str(exc) or type(exc).__name__)
    if isinstance(exc, HttpResponseError):
        code = error_code(exc)
        status = exc.status_code
        prefix = " ".join(str(p) for p in (status, code) if p)
        if prefix:
            return f"{prefix}: {text}"
    return f"{type(exc).__name__}: {text}"


def error_code(exc: BaseException) -> str | None:
    """The service's ``x-ms-error-code`` (``BlobNotFound``...), when the error carries one."""
    from azure.core.exceptions import HttpResponseError

    if not isinstance(exc, HttpResponseError):
        return None
    code = getattr(exc, "error_code", None)
    if code:
        return str(getattr(code, "value", code))
    headers = getattr(exc.response, "headers", None) or {}
    found = headers.get("x-ms-error-code")
    return str(found) if found else None
