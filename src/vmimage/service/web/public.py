"""The public listing page (OFR-URL): ``/marketplace/partners/{namespace}/{offer}-{sku}``,
what a customer sees of a published SKU; no sign-in."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from vmimage.app.publishing.errors import NotFound
from vmimage.app.publishing.listing import public_listing
from vmimage.service.auth import store as store_of
from vmimage.service.web.pages import page

router = APIRouter(include_in_schema=False)


@router.get("/marketplace/partners/{namespace}/{offer_sku}", response_class=HTMLResponse)
def listing(request: Request, namespace: str, offer_sku: str) -> Response:
    """A published SKU's page, or 404."""
    try:
        found = public_listing(store_of(request), namespace, offer_sku)
    except NotFound as exc:
        return page("error.html", 404, title="Not found", message=str(exc))
    return page("listing.html", listing=found)
