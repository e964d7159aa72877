"""The API's routers, by resource, all under ``/api/v1``; :data:`ERRORS` documents the
refusals each route may answer with, in the one error shape."""

from __future__ import annotations

from typing import Any

from vmimage.app.publishing.documents import Error

_WHY = {
    400: "Malformed JSON (a syntax error, a key given twice, NaN), or a body that is missing.",
    401: "No API token, or one the service does not know.",
    403: "The manifest is another publisher's.",
    404: "No such resource of this publisher (another publisher's is not found either).",
    409: "The resource exists already, or its state does not allow this (OFR-SUMMARY, "
         "PUB-VERSION, the publishing states).",
    413: "The request body is larger than the service's limit.",
    415: "The body is not JSON.",
    422: "The body does not fit its model, or a rule of the one registry fails (the report "
         "says which).",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of these refusals."""
    return {code: {"model": Error, "description": _WHY[code]} for code in codes}


#: What every authenticated route may refuse with.
AUTH = (401,)
#: ... and every route that takes a JSON body.
BODY = (400, 401, 413, 415, 422)
