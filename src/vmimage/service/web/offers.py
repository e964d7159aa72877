"""The portal's offer pages: an offer with its SKUs (push to staging, publish), a SKU with its
listing and the VM Images tab of the guide's §5.3 (add a version by its VHD URLs, paste the
SAS URIs, request certification), a certification's progress and its report. Every change
goes through the use cases of the JSON API, so the rules are the same; a refusal is shown on
the page with the rules that failed and what to do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from vmimage.app.publishing import jobs, offers, release, reports, versions
from vmimage.app.publishing.accounts import Visitor, csrf_ok
from vmimage.app.publishing.errors import PublishingError, Refused
from vmimage.app.publishing.store import Store
from vmimage.offer.model import ImageVersion as VersionModel
from vmimage.service.auth import store as store_of
from vmimage.service.web.pages import BASE, HEADERS, page, redirect, visitor

router = APIRouter(prefix=BASE, include_in_schema=False)
OFFER = "/offers/{offer}"
SKU = OFFER + "/skus/{sku}"
VERSION = SKU + "/versions/{version}"
Csrf = Annotated[str, Form(max_length=100)]


def _problem(exc: PublishingError) -> dict[str, Any]:
    """A refusal as a page shows it: the line, and each failing rule with its fix."""
    failing = []
    if isinstance(exc, Refused):
        failing = [{"id": f.check_id, "message": f.message, "fix": f.remediation}
                   for f in exc.report.findings if f.failing]
    return {"message": str(exc), "failing": failing}


def _signed(request: Request) -> Visitor | Response:
    who = visitor(request)
    return who if who is not None else redirect(f"{BASE}/sign-in")


def _sku_page(store: Store, who: Visitor, offer: str, sku: str, status: int = 200,
              problem: dict[str, Any] | None = None) -> Response:
    found = offers.get_sku(store, who.caller, offer, sku)
    rows = versions.list_versions(store, who.caller, offer, sku)
    return page("sku.html", status, visitor=who, offer=offer, sku=found, versions=rows,
                problem=problem)


def _change(request: Request, csrf: str, work: Callable[[Store, Visitor], object],
            back: Callable[[Store, Visitor, dict[str, Any]], Response], done: str) -> Response:
    """A form's change: signed in, its CSRF token, the use case; the next page, or the form's
    page again with the refusal (422)."""
    who = _signed(request)
    if not isinstance(who, Visitor):
        return who
    if not csrf_ok(who, csrf):
        return page("error.html", 403, visitor=who, title="Refused",
                    message="The form was not sent from this site: open the page again.")
    store = store_of(request)
    try:
        work(store, who)
    except PublishingError as exc:
        return back(store, who, _problem(exc))
    return redirect(done)


def _dashboard_again(store: Store, who: Visitor, problem: dict[str, Any]) -> Response:
    from vmimage.app.publishing import dashboard

    found = dashboard.dashboard(store, who.caller)
    return page("dashboard.html", 422, visitor=who, found=found, rows=found.rows, q="",
                state="", states=(), problem=problem)


def _model(kind: type[Any], data: dict[str, Any]) -> Any:  # noqa: ANN401 - a pydantic model
    """A body model from a form, or the fields it lacks as one refusal."""
    from pydantic import ValidationError

    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                          for e in exc.errors()[:5])
        raise PublishingError(f"the form is not complete: {where}") from None


@router.post("/offers")
def create_offer(request: Request, csrf: Csrf = "",
                 offer_id: Annotated[str, Form(alias="id", max_length=100)] = "",
                 title: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """A new offer (OFR-URL: its ID is in public addresses and never changes)."""
    from vmimage.app.publishing.documents import OfferCreate

    return _change(request, csrf,
                   lambda s, w: offers.create_offer(s, w.caller, _model(
                       OfferCreate, {"id": offer_id.strip(), "title": title.strip()})),
                   _dashboard_again, f"{BASE}/offers/{offer_id.strip()}")


@router.post(OFFER + "/skus")
def create_sku(request: Request, offer: str, csrf: Csrf = "",
               sku_id: Annotated[str, Form(alias="id", max_length=100)] = "",
               plan: Annotated[str, Form(max_length=100)] = "",
               title: Annotated[str, Form(max_length=1000)] = "",
               summary: Annotated[str, Form(max_length=4000)] = "",
               family: Annotated[str, Form(max_length=20)] = "linux",
               os_type: Annotated[str, Form(max_length=64)] = "",
               friendly_name: Annotated[str, Form(max_length=200)] = "",
               image_type: Annotated[str, Form(max_length=8)] = "gen1",
               sizes: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """A new SKU with its listing and technical configuration (§1.2, §5.3), judged by the
    offer rules as the API's."""
    from vmimage.app.publishing.documents import SkuCreate

    data = {"id": sku_id.strip(), "plan": plan.strip() or None, "title": title.strip(),
            "summary": summary.strip(),
            "os": {"family": family, "type": os_type.strip(), "friendly_name":
                   friendly_name.strip()},
            "image_type": image_type,
            "recommended_sizes": [x.strip() for x in sizes.replace(",", "\n").splitlines()
                                  if x.strip()]}
    return _change(request, csrf,
                   lambda s, w: offers.create_sku(s, w.caller, offer, _model(SkuCreate, data)),
                   _offer_again(offer), f"{BASE}/offers/{offer}/skus/{sku_id.strip()}")


@router.get(OFFER, response_class=HTMLResponse)
def offer_page(request: Request, offer: str) -> Response:
    """An offer, its SKUs and their versions' states; staging and publishing."""
    who = _signed(request)
    if not isinstance(who, Visitor):
        return who
    store = store_of(request)
    try:
        found = offers.get_offer(store, who.caller, offer)
    except PublishingError as exc:
        return page("error.html", exc.status, visitor=who, title="Not found", message=str(exc))
    return page("offer.html", visitor=who, offer=found,
                skus=offers.list_skus(store, who.caller, offer), problem=None)


def _offer_again(offer: str) -> Callable[[Store, Visitor, dict[str, Any]], Response]:
    def back(store: Store, who: Visitor, problem: dict[str, Any]) -> Response:
        return page("offer.html", 422, visitor=who, offer=offers.get_offer(store, who.caller,
                                                                            offer),
                    skus=offers.list_skus(store, who.caller, offer), problem=problem)
    return back


@router.post(OFFER + "/staging")
def stage(request: Request, offer: str, csrf: Csrf = "") -> Response:
    """Push the offer to staging (OFR-PARENT: every SKU needs a certified version)."""
    return _change(request, csrf, lambda s, w: release.stage_offer(s, w.caller, offer),
                   _offer_again(offer), f"{BASE}/offers/{offer}")


@router.post(OFFER + "/publish")
def publish(request: Request, offer: str, csrf: Csrf = "") -> Response:
    """Publish what is in staging."""
    return _change(request, csrf, lambda s, w: release.publish_offer(s, w.caller, offer),
                   _offer_again(offer), f"{BASE}/offers/{offer}")


@router.get(SKU, response_class=HTMLResponse)
def sku_page(request: Request, offer: str, sku: str) -> Response:
    """A SKU: its listing and the VM Images tab."""
    who = _signed(request)
    if not isinstance(who, Visitor):
        return who
    try:
        return _sku_page(store_of(request), who, offer, sku)
    except PublishingError as exc:
        return page("error.html", exc.status, visitor=who, title="Not found", message=str(exc))


def _sku_again(offer: str, sku: str) -> Callable[[Store, Visitor, dict[str, Any]], Response]:
    return lambda store, who, problem: _sku_page(store, who, offer, sku, 422, problem)


def _disks(data_disks: str) -> list[dict[str, object]]:
    """``LUN URL`` lines (``0 https://...``) as data disks."""
    disks: list[dict[str, object]] = []
    for number, line in enumerate(data_disks.splitlines(), 1):
        if not line.strip():
            continue
        lun, _, url = line.strip().partition(" ")
        if not lun.isdigit() or not url.strip():
            raise PublishingError(f"data disks, line {number}: write 'LUN URL' "
                                  "(0 https://account.blob.core.windows.net/vhds/d0.vhd)")
        disks.append({"lun": int(lun), "url": url.strip()})
    return disks


@router.post(SKU + "/versions")
def add_version(request: Request, offer: str, sku: str, csrf: Csrf = "",
                version: Annotated[str, Form(max_length=100)] = "",
                os_disk: Annotated[str, Form(max_length=2048)] = "",
                data_disks: Annotated[str, Form(max_length=65536)] = "") -> Response:
    """A new draft version: its number, the OS VHD's URL, the data disks' ``LUN URL`` lines
    (§5.3's fields), judged by the same rules as the API's."""
    def work(store: Store, who: Visitor) -> None:
        try:
            body = VersionModel.model_validate({"version": version.strip(),
                                                "os_disk": {"url": os_disk.strip()},
                                                "data_disks": _disks(data_disks)})
        except ValueError as exc:
            raise PublishingError(f"the version is not complete: {exc}") from None
        versions.create_version(store, who.caller, offer, sku, body)

    return _change(request, csrf, work, _sku_again(offer, sku), f"{BASE}/offers/{offer}/skus/{sku}")


@router.post(VERSION + "/sas")
def give_sas(request: Request, offer: str, sku: str, version: str, csrf: Csrf = "",
             sas: Annotated[str, Form(max_length=65536)] = "") -> Response:
    """The SAS URIs of the version's VHDs, one per line (§5.2): checked by the SAS rules,
    sealed, shown masked from then on."""
    lines = [line.strip() for line in sas.splitlines() if line.strip()]
    return _change(request, csrf,
                   lambda s, w: versions.set_sas(s, w.caller, offer, sku, version, lines),
                   _sku_again(offer, sku), f"{BASE}/offers/{offer}/skus/{sku}")


@router.post(VERSION + "/certification")
def request_certification(request: Request, offer: str, sku: str, version: str,
                          csrf: Csrf = "") -> Response:
    """Request certification (PUB-CERT), then the progress page."""
    return _change(request, csrf,
                   lambda s, w: jobs.request_certification(s, w.caller, offer, sku, version,
                                                           None),
                   _sku_again(offer, sku),
                   f"{BASE}/offers/{offer}/skus/{sku}/versions/{version}/certification")


@router.get(VERSION + "/certification", response_class=HTMLResponse)
def certification_page(request: Request, offer: str, sku: str, version: str) -> Response:
    """Where the latest request stands; the page reloads itself while the job runs (no script:
    a refresh header), then shows the verdict and the report."""
    who = _signed(request)
    if not isinstance(who, Visitor):
        return who
    store = store_of(request)
    try:
        found = versions.get_version(store, who.caller, offer, sku, version)
        kept = reports.list_reports(store, who.caller, offer, sku, version)
    except PublishingError as exc:
        return page("error.html", exc.status, visitor=who, title="Not found", message=str(exc))
    latest = found.certification
    running = latest is not None and latest.state == "requested"
    response = page("certification.html", visitor=who, offer=offer, sku=sku, version=found,
                    request=latest, running=running,
                    reports=[r for r in kept if latest is not None and
                             r.certification == latest.id])
    if running:
        response.headers["Refresh"] = "3"
    return response


@router.get(VERSION + "/reports/{report}")
def report(request: Request, offer: str, sku: str, version: str, report: int) -> Response:
    """A stored report as it was kept (HTML sandboxed: it runs nothing, it can open nothing)."""
    who = _signed(request)
    if not isinstance(who, Visitor):
        return who
    try:
        content, media_type, name = reports.get_report(store_of(request), who.caller, offer,
                                                       sku, version, report)
    except PublishingError as exc:
        return page("error.html", exc.status, visitor=who, title="Not found", message=str(exc))
    headers = {**HEADERS, "Content-Security-Policy": "sandbox; default-src 'none'; "
                                                     "style-src 'unsafe-inline'; img-src data:",
               "Content-Disposition": f'inline; filename="{name}"'}
    return Response(content, media_type=media_type, headers=headers)
