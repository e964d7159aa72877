"""What a use case of the service refuses, and the HTTP status each refusal is.

Each error is one line that names what is wrong and, where there is one, what to do; the
routers send it as ``{"error": message}`` with :attr:`PublishingError.status`, and the CLI
prints it (exit 2) like every other :class:`~vmimage.errors.VmimageError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmimage.errors import VmimageError

if TYPE_CHECKING:
    from vmimage.report.model import Report


class PublishingError(VmimageError):
    """A request the service cannot carry out."""

    status = 400


class Unauthorized(PublishingError):
    """No API token, or one the service does not know (or that was revoked)."""

    status = 401


class Forbidden(PublishingError):
    """The request names another publisher than the token's."""

    status = 403


class NotFound(PublishingError):
    """No such resource *of this publisher*: another publisher's offer is not found either."""

    status = 404


class Conflict(PublishingError):
    """The resource exists already, or its state does not allow the change (a summary after
    staging, a certified version's disks, a transition from the wrong state)."""

    status = 409


class Refused(PublishingError):
    """A rule of the one registry fails: the report says which, exactly as ``vmimage offer
    validate`` (or ``sas verify``) would."""

    status = 422

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


class Invalid(PublishingError):
    """A body the service cannot use (not a vmimage JSON report, SAS lines that are not SAS
    URIs): 422 without findings."""

    status = 422
