"""The public pages, no sign-in: the listing page (OFR-URL,
``/marketplace/partners/{namespace}/{offer}-{sku}``), what a customer sees of a published SKU;
and a rule's page (``/portal/checks/{ID}``), what ``vmimage checks show ID`` says, where the
certification page's failed checks link."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from vmimage.app.catalog import describe_rule
from vmimage.app.publishing.errors import NotFound
from vmimage.app.publishing.listing import public_listing
from vmimage.errors import InputError
from vmimage.service.auth import store as store_of
from vmimage.service.web.pages import BASE, page

router = APIRouter(include_in_schema=False)


@router.get("/marketplace/partners/{namespace}/{offer_sku}", response_class=HTMLResponse)
def listing(request: Request, namespace: str, offer_sku: str) -> Response:
    """A published SKU's page, or 404."""
    try:
        found = public_listing(store_of(request), namespace, offer_sku)
    except NotFound as exc:
        return page("error.html", 404, title="Not found", message=str(exc))
    return page("listing.html", listing=found)


@router.get(BASE + "/checks/{rule_id}", response_class=HTMLResponse)
def rule(rule_id: str) -> Response:
    """One rule: its title, severity under each profile, the requirements it covers, why,
    and how to fix a failure."""
    try:
        found = describe_rule(rule_id[:100])
    except InputError as exc:
        return page("error.html", 404, title="No such check", message=str(exc))
    return page("check.html", rule=found)
