"""The guide's classic Service Management API for VM images (REG-CREATE, REG-ASYNC), at the
paths Azure had (``/{subscription}/services/vmimages``, ``/{subscription}/operations/{id}``)
and in its XML, so that a classic client pointed at this host works unchanged.

Authentication: the management certificate of the TLS connection (``vmimage serve
--tls-cert``), as the guide's, or an API token (``Authorization: Bearer``). Every answer has
an ``x-ms-request-id``; refusals are ``<Error><Code/><Message/></Error>``, with Azure's codes
(BadRequest, ForbiddenError, ResourceNotFound, ConflictError).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from vmimage.app.publishing import certificates, classicxml, tokens, vmimages
from vmimage.app.publishing.errors import Forbidden, PublishingError
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.service import errors
from vmimage.service.auth import store as store_of
from vmimage.service.tls import STATE_KEY

router = APIRouter(tags=["classic Create VM Image API"])
XML = "application/xml; charset=utf-8"
_CODES = {400: "BadRequest", 401: "ForbiddenError", 403: "ForbiddenError",
          404: "ResourceNotFound", 409: "ConflictError", 422: "BadRequest",
          503: "ServiceUnavailable"}
_XML_RESPONSE: dict[str, object] = {"content": {"application/xml": {}}}
_REFUSALS: dict[int | str, dict[str, object]] = {
    400: {"description": "BadRequest: the body or x-ms-version is not usable.", **_XML_RESPONSE},
    403: {"description": "ForbiddenError: no credentials, or not this subscription's.",
          **_XML_RESPONSE},
}


def _headers(request_id: str | None = None) -> dict[str, str]:
    return {"x-ms-request-id": request_id or uuid.uuid4().hex, "Cache-Control": "no-cache"}


def _refusal(exc: PublishingError) -> Response:
    status = 400 if exc.status == 422 else exc.status
    message = errors.line(exc)
    return Response(classicxml.error_xml(_CODES.get(status, "BadRequest"), message),
                    status_code=status, media_type=XML, headers=_headers())


def caller(request: Request) -> Caller:
    """The management certificate's publisher, else the API token's.

    Raises:
        Forbidden: neither (Azure answered 403 ForbiddenError).
    """
    store = store_of(request)
    der = getattr(request.state, STATE_KEY, None)
    if isinstance(der, bytes) and der:
        found = certificates.authenticate_certificate(store, der)
        if found is not None:
            return found
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        found = tokens.authenticate(store, token.strip())
        if found is not None:
            return found
    raise Forbidden("The server failed to authenticate the request. Verify that the "
                    "certificate is valid and is associated with this subscription.")


def _answer(request: Request, work: Callable[[Store, Caller], Response]) -> Response:
    try:
        return work(store_of(request), caller(request))
    except PublishingError as exc:
        return _refusal(exc)


Version = Annotated[str | None, Header(alias="x-ms-version")]


async def _threaded(request: Request, work: Callable[[Store, Caller], Response]) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_answer, request, work)


@router.post("/{subscription}/services/vmimages", status_code=202, responses=_REFUSALS,
             summary="Create VM Image (classic)")
async def create_vm_image(request: Request, subscription: str,
                          x_ms_version: Version = None) -> Response:
    """The guide's §4.1 request: a ``VMImage`` XML body (``x-ms-version`` 2014-06-01 or
    later). Answered ``202 Accepted``, empty, with the operation ID in ``x-ms-request-id``;
    the image is registered in the background, after every MediaLink is read (a specialized
    OS disk is refused: REG-GENERALIZED)."""
    body = await request.body()

    def work(store: Store, who: Caller) -> Response:
        classicxml.check_version(x_ms_version)
        operation = vmimages.create_vm_image(store, who, subscription, body)
        return Response(status_code=202, headers=_headers(operation))

    return await _threaded(request, work)


@router.get("/{subscription}/services/vmimages", responses=_REFUSALS,
            summary="List VM Images (classic)")
def list_vm_images(request: Request, subscription: str,
                   x_ms_version: Version = None) -> Response:
    """``<VMImages>``: the subscription's images, registered (``VMImageState`` Ready) or
    being registered (Pending)."""
    def work(store: Store, who: Caller) -> Response:
        classicxml.check_version(x_ms_version)
        images = vmimages.list_vm_images(store, who, subscription)
        return Response(classicxml.images_xml(images), media_type=XML, headers=_headers())

    return _answer(request, work)


@router.delete("/{subscription}/services/vmimages/{name}", responses=_REFUSALS,
               summary="Delete VM Image (classic)")
def delete_vm_image(request: Request, subscription: str, name: str,
                    x_ms_version: Version = None) -> Response:
    """Forget a registered image (never its blobs: ``comp=media`` is not honoured). Done at
    once: answered 200 with an ``x-ms-request-id`` whose operation is not kept."""
    def work(store: Store, who: Caller) -> Response:
        classicxml.check_version(x_ms_version)
        vmimages.forget_vm_image(store, who, subscription, name)
        return Response(status_code=200, headers=_headers())

    return _answer(request, work)


@router.get("/{subscription}/operations/{operation}", responses=_REFUSALS,
            summary="Get Operation Status (classic)")
def get_operation(request: Request, subscription: str, operation: str,
                  x_ms_version: Version = None) -> Response:
    """``<Operation>``: InProgress, Succeeded (``HttpStatusCode`` 200) or Failed (with
    ``<Error>``: the reason the image was refused)."""
    def work(store: Store, who: Caller) -> Response:
        classicxml.check_version(x_ms_version)
        found = vmimages.operation_status(store, who, subscription, operation)
        body = classicxml.operation_xml(found.operation_id, found.status, found.http_status,
                                        found.error)
        return Response(body, media_type=XML, headers=_headers())

    return _answer(request, work)


