"""Partner Center's product-ingestion "configure" API (``/rp/product-ingestion``), so that one
client (``vmimage submit push``, or any client of Partner Center's API given this base URL)
works against Partner Center and against this service.

Authenticated by an API token as a bearer token (Partner Center takes a Microsoft Entra ID
token there); ``$version`` is accepted as Partner Center's query parameter. Refusals are
Partner Center's shape, ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from vmimage.app.publishing import ingestion, tokens
from vmimage.app.publishing.errors import PublishingError, Unauthorized
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.service import errors
from vmimage.service.auth import store as store_of

PREFIX = "/rp/product-ingestion"
router = APIRouter(prefix=PREFIX, tags=["Partner Center configure API"])
_CODES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "notFound",
          409: "conflict", 413: "requestEntityTooLarge", 422: "badRequest",
          503: "serviceUnavailable"}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "badRequest: not a configure document, or invalid resources."},
    401: {"description": "unauthorized: no bearer token, or an unknown one."},
    404: {"description": "notFound: no such job of this publisher."},
}
Version = Annotated[str | None, Query(alias="$version", max_length=40)]


def _refusal(exc: PublishingError) -> JSONResponse:
    message = errors.line(exc)
    if isinstance(exc, ingestion.IngestionError):
        code, details = exc.code, exc.details
    else:
        code, details = _CODES.get(exc.status, "badRequest"), []
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": {"code": code, "message": message, "details": details}},
                        status_code=exc.status, headers=headers)


def _caller(request: Request) -> Caller:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    found = tokens.authenticate(store_of(request), token.strip()) \
        if scheme.lower() == "bearer" else None
    if found is None:
        raise Unauthorized("send Authorization: Bearer TOKEN (an API token of this service)")
    return found


def _answer(request: Request, work: Callable[[Store, Caller], tuple[int, Any]]) -> JSONResponse:
    try:
        status, body = work(store_of(request), _caller(request))
    except PublishingError as exc:
        return _refusal(exc)
    return JSONResponse(body, status_code=status)


@router.post("/configure", status_code=202, responses=_REFUSALS,
             summary="Configure resources (Partner Center)")
async def configure(request: Request, version: Version = None) -> JSONResponse:
    """A configure document (``$schema`` configure; ``resources``: technical
    configurations and submissions, as `vmimage submit render --format partner-center`
    renders them). Answered 202 with the job (notStarted); the job applies them."""
    try:
        body = await request.json()
    except ValueError:
        body = None

    def work(store: Store, who: Caller) -> tuple[int, Any]:
        return 202, ingestion.configure(store, who, body)

    result: JSONResponse = await run_in_threadpool(_answer, request, work)
    return result


@router.get("/configure/{job_id}/status", responses=_REFUSALS,
            summary="A configure job's status (Partner Center)")
def status(request: Request, job_id: str, version: Version = None) -> JSONResponse:
    """``jobStatus`` notStarted, running or completed; ``jobResult`` pending, succeeded or
    failed, with ``errors`` (each with ``code``, ``message`` and ``details``)."""
    return _answer(request, lambda store, who: (200, ingestion.job_status(store, who, job_id)))


@router.get("/configure/{job_id}", responses=_REFUSALS,
            summary="A configure job's details (Partner Center)")
def details(request: Request, job_id: str, version: Version = None) -> JSONResponse:
    """The status, and the resources the job changed (durable IDs)."""
    return _answer(request, lambda store, who: (200, ingestion.job_details(store, who, job_id)))
