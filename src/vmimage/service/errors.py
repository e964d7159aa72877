"""Every refusal as ``{"error": "one line"}`` with its status; never a traceback, never a
secret (each message passes the redactor), never a 500 for a bad request.

The body a client sent is not echoed back: pydantic's messages would repeat the offending
value (a SAS URI, say), so only each problem's location and message are returned.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from vmimage.app.publishing.errors import PublishingError, Refused, Unauthorized
from vmimage.app.publishing.views import report_document
from vmimage.errors import VmimageError
from vmimage.secrets import redact
from vmimage.textsafe import printable

_log = logging.getLogger("vmimage.service")


def line(text: object) -> str:
    """A message as every refusal shows it: one line, printable, redacted, bounded."""
    return printable(redact(" ".join(str(text).split())))[:1000]


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _publishing(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PublishingError)
    content: dict[str, Any] = {"error": line(str(exc))}
    if isinstance(exc, Refused):
        content["report"] = report_document(exc.report)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSONResponse(content, status_code=exc.status, headers=headers)


def _vmimage(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": line(str(exc))}, status_code=400)


def _portal(request: Request) -> bool:
    """A page of the portal: a person reads the answer, as a page."""
    from vmimage.service.web.pages import BASE

    return request.url.path == BASE or request.url.path.startswith(BASE + "/")


def _page(status: int, title: str, message: str) -> Response:
    from vmimage.service.web.pages import page

    return page("error.html", status, title=title, message=message)


def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [{"loc": _where(tuple(e.get("loc", ()))), "message": line(e.get("msg", ""))}
               for e in exc.errors()]
    if _portal(request):
        first = details[0] if details else {"loc": "", "message": "invalid"}
        return _page(422, "Not done", f"The form was not taken: {first['loc']}: "
                                      f"{first['message']}. Go back and correct it.")
    kinds = {e.get("type") for e in exc.errors()}
    if "json_invalid" in kinds:
        return JSONResponse({"error": "malformed JSON"}, status_code=400)
    if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",)
           for e in exc.errors()):
        return JSONResponse({"error": "this request needs a JSON body"}, status_code=400)
    first = details[0] if details else {"loc": "", "message": "invalid request"}
    return JSONResponse({"error": f"{first['loc']}: {first['message']}", "details": details},
                        status_code=422)


def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _portal(request) and exc.status_code in (404, 405):
        return _page(exc.status_code, "Not found", "There is no such page.")
    return JSONResponse({"error": line(str(exc.detail))}, status_code=exc.status_code,
                        headers=exc.headers)


def _internal(request: Request, exc: Exception) -> JSONResponse:
    _log.error("internal error on %s %s: %s: %s", request.method, request.url.path,
               type(exc).__name__, redact(str(exc)))
    return JSONResponse({"error": "internal error (the server's log says more)"},
                        status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers."""
    app.add_exception_handler(PublishingError, _publishing)
    app.add_exception_handler(VmimageError, _vmimage)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _internal)
