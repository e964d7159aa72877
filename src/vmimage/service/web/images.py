"""The portal's SKU page: its listing (editable until staging) and the VM Images tab of the
guide's §5.3: add a version by its number and VHD URLs (each mistake beside its field), paste
the SAS URIs (§5.2; each opened live before it is saved: the SAS rules and the VHD footer by
one range request; shown masked from then on), request certification."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from vmimage.app.publishing import jobs, offers, versions
from vmimage.app.publishing.accounts import Visitor
from vmimage.app.publishing.documents import ImageVersion as VersionModel
from vmimage.app.publishing.errors import PublishingError
from vmimage.app.publishing.store import Store
from vmimage.service.auth import store as store_of
from vmimage.service.web.forms import (
    Back,
    Csrf,
    FormInvalid,
    change,
    invalid,
    model,
    not_found,
    signed,
)
from vmimage.service.web.offers import OFFER, split_lines
from vmimage.service.web.pages import BASE, page

router = APIRouter(prefix=BASE, include_in_schema=False)
SKU = OFFER + "/skus/{sku}"
VERSION = SKU + "/versions/{version}"
#: The add-a-version form's fields, matched in reverse against a rule's evidence path.
VERSION_FIELDS = ("version", "os_disk", "data_disks")
LISTING_FIELDS = ("title", "summary", "os", "recommended_sizes")


def _sku_page(store: Store, who: Visitor, offer: str, sku: str, status: int = 200,
              problem: dict[str, Any] | None = None, values: dict[str, str] | None = None,
              form: str = "") -> Response:
    found = offers.sku_view(store, who.caller, offer, sku)
    return page("sku.html", status, visitor=who, offer=offer, sku=found.sku,
                versions=found.versions, problem=problem, values=values or {}, form=form,
                rules=found.findings)


def _again(offer: str, sku: str, values: dict[str, str] | None = None, form: str = "") -> Back:
    return lambda store, who, problem: _sku_page(store, who, offer, sku, 422, problem, values,
                                                 form)


@router.get(SKU, response_class=HTMLResponse)
def sku_page(request: Request, offer: str, sku: str) -> Response:
    """A SKU: its listing and the VM Images tab."""
    who = signed(request)
    if not isinstance(who, Visitor):
        return who
    try:
        return _sku_page(store_of(request), who, offer, sku)
    except PublishingError as exc:
        return not_found(who, exc)


@router.post(SKU + "/edit")
def edit_sku(request: Request, offer: str, sku: str, csrf: Csrf = "",
             title: Annotated[str, Form(max_length=1000)] = "",
             summary: Annotated[str, Form(max_length=4000)] = "",
             friendly_name: Annotated[str, Form(max_length=200)] = "",
             sizes: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """The SKU's listing: title, summary, the OS name customers read, the recommended sizes
    (PUB-SIZES); frozen once staged (the use case refuses)."""
    from vmimage.app.publishing.documents import SkuUpdate

    values = {"title": title.strip(), "summary": summary.strip(),
              "friendly_name": friendly_name.strip(), "sizes": sizes}

    def work(store: Store, who: Visitor) -> None:
        current = offers.get_sku(store, who.caller, offer, sku).os
        body = model(SkuUpdate, {
            "title": values["title"], "summary": values["summary"],
            "os": {**current, "friendly_name": values["friendly_name"]},
            "recommended_sizes": split_lines(sizes)}, LISTING_FIELDS)
        offers.update_sku(store, who.caller, offer, sku, body)

    return change(request, csrf, work, _again(offer, sku, values, "listing"),
                  f"{BASE}/offers/{offer}/skus/{sku}", LISTING_FIELDS)


def _disks(data_disks: str) -> list[dict[str, object]]:
    """``LUN URL`` lines (``0 https://...``) as data disks.

    Raises:
        FormInvalid: a line is not ``LUN URL``.
    """
    disks: list[dict[str, object]] = []
    for number, line in enumerate(data_disks.splitlines(), 1):
        if not line.strip():
            continue
        lun, _, url = line.strip().partition(" ")
        if not lun.isdigit() or not url.strip():
            raise FormInvalid({"data_disks": [
                f"line {number}: write 'LUN URL' "
                "(0 https://account.blob.core.windows.net/vhds/d0.vhd)"]})
        disks.append({"lun": int(lun), "url": url.strip()})
    return disks


@router.post(SKU + "/versions")
def add_version(request: Request, offer: str, sku: str, csrf: Csrf = "",
                version: Annotated[str, Form(max_length=100)] = "",
                os_disk: Annotated[str, Form(max_length=2048)] = "",
                data_disks: Annotated[str, Form(max_length=65536)] = "") -> Response:
    """A new draft version: its number, the OS VHD's URL, the data disks' ``LUN URL`` lines
    (§5.3's fields), judged by the same rules as the API's."""
    values = {"version": version.strip(), "os_disk": os_disk.strip(), "data_disks": data_disks}

    def work(store: Store, who: Visitor) -> None:
        try:
            body = VersionModel.model_validate({"version": values["version"],
                                                "os_disk": {"url": values["os_disk"]},
                                                "data_disks": _disks(data_disks)})
        except ValueError as exc:
            raise invalid(exc, VERSION_FIELDS) from None
        versions.create_version(store, who.caller, offer, sku, body)

    return change(request, csrf, work, _again(offer, sku, values, "version"),
                  f"{BASE}/offers/{offer}/skus/{sku}", VERSION_FIELDS)


@router.post(VERSION + "/sas")
def give_sas(request: Request, offer: str, sku: str, version: str, csrf: Csrf = "",
             sas: Annotated[str, Form(max_length=65536)] = "") -> Response:
    """The SAS URIs of the version's VHDs, one per line (§5.2): each opened live (the SAS
    rules online: readable, a page blob, not leased, its length, its fixed VHD footer by one
    range request), then sealed and shown masked from then on."""
    lines = [line.strip() for line in sas.splitlines() if line.strip()]
    allowed: tuple[str, ...] = getattr(request.app.state, "allow_endpoints", ())

    def work(store: Store, who: Visitor) -> None:
        versions.check_sas_live(store, who.caller, offer, sku, version, lines, allowed)
        versions.set_sas(store, who.caller, offer, sku, version, lines)

    return change(request, csrf, work, _again(offer, sku),
                  f"{BASE}/offers/{offer}/skus/{sku}")


@router.post(VERSION + "/certification")
def request_certification(request: Request, offer: str, sku: str, version: str,
                          csrf: Csrf = "") -> Response:
    """Request certification (PUB-CERT), then the progress page."""
    return change(request, csrf,
                  lambda s, w: jobs.request_certification(s, w.caller, offer, sku, version,
                                                          None),
                  _again(offer, sku),
                  f"{BASE}/offers/{offer}/skus/{sku}/versions/{version}/certification")
