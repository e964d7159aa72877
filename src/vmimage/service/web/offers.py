"""The portal's offer pages (§1.1–1.2): create an offer, its page with its SKUs, edit its title
until staging, a new SKU with its listing and technical configuration, push to staging,
publish. Every change goes through the use cases of the JSON API, so the rules are the same."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from vmimage.app.publishing import offers, release
from vmimage.app.publishing.accounts import Visitor
from vmimage.app.publishing.errors import PublishingError
from vmimage.app.publishing.store import Store
from vmimage.service.auth import store as store_of
from vmimage.service.web.forms import Back, Csrf, change, model, not_found, signed, with_values
from vmimage.service.web.pages import BASE, page

router = APIRouter(prefix=BASE, include_in_schema=False)
OFFER = "/offers/{offer}"
#: The fields of the new-SKU form, in the order their mistakes are matched.
SKU_FIELDS = ("id", "plan", "title", "summary", "os", "image_type", "recommended_sizes")


def _dashboard_again(store: Store, who: Visitor, problem: dict[str, Any],
                     values: dict[str, str]) -> Response:
    from vmimage.app.publishing import dashboard

    found = dashboard.dashboard(store, who.caller)
    return page("dashboard.html", 422, visitor=who, found=found, rows=found.rows, q="",
                state="", states=(), problem=problem, values=values)


@router.post("/offers")
def create_offer(request: Request, csrf: Csrf = "",
                 offer_id: Annotated[str, Form(alias="id", max_length=100)] = "",
                 title: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """A new offer (OFR-URL: its ID is in public addresses and never changes)."""
    from vmimage.app.publishing.documents import OfferCreate

    values = {"id": offer_id.strip(), "title": title.strip()}
    return change(request, csrf,
                  lambda s, w: offers.create_offer(s, w.caller,
                                                   model(OfferCreate, values, ("id", "title"))),
                  with_values(_dashboard_again, values), f"{BASE}/offers/{values['id']}",
                  ("id", "title"))


def _offer_page(store: Store, who: Visitor, offer: str, status: int = 200,
                problem: dict[str, Any] | None = None,
                values: dict[str, str] | None = None) -> Response:
    found = offers.offer_view(store, who.caller, offer)
    return page("offer.html", status, visitor=who, offer=found.offer, skus=found.skus,
                problem=problem, values=values or {}, rules=found.findings)


def _offer_again(offer: str) -> Back:
    return lambda store, who, problem: _offer_page(store, who, offer, 422, problem)


def _offer_values_again(offer: str, values: dict[str, str]) -> Back:
    return lambda store, who, problem: _offer_page(store, who, offer, 422, problem, values)


@router.get(OFFER, response_class=HTMLResponse)
def offer_page(request: Request, offer: str) -> Response:
    """An offer, its SKUs and their versions' states; staging and publishing."""
    who = signed(request)
    if not isinstance(who, Visitor):
        return who
    try:
        return _offer_page(store_of(request), who, offer)
    except PublishingError as exc:
        return not_found(who, exc)


@router.post(OFFER + "/edit")
def edit_offer(request: Request, offer: str, csrf: Csrf = "",
               title: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """The offer's title, until it is pushed to staging (then it is frozen)."""
    from vmimage.app.publishing.documents import OfferUpdate

    values = {"offer_title": title.strip()}
    return change(request, csrf,
                  lambda s, w: offers.update_offer(s, w.caller, offer, model(
                      OfferUpdate, {"title": values["offer_title"]}, ("title",))),
                  _offer_values_again(offer, values), f"{BASE}/offers/{offer}", ("title",))


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

    values = {"id": sku_id.strip(), "plan": plan.strip(), "title": title.strip(),
              "summary": summary.strip(), "family": family, "os_type": os_type.strip(),
              "friendly_name": friendly_name.strip(), "image_type": image_type, "sizes": sizes}
    data = {"id": values["id"], "plan": values["plan"] or None, "title": values["title"],
            "summary": values["summary"],
            "os": {"family": family, "type": values["os_type"],
                   "friendly_name": values["friendly_name"]},
            "image_type": image_type, "recommended_sizes": split_lines(sizes)}
    return change(request, csrf,
                  lambda s, w: offers.create_sku(s, w.caller, offer,
                                                 model(SkuCreate, data, SKU_FIELDS)),
                  _offer_values_again(offer, values),
                  f"{BASE}/offers/{offer}/skus/{values['id']}", SKU_FIELDS)


def split_lines(text: str) -> list[str]:
    """Values given one per line (or separated by commas), blanks dropped."""
    return [x.strip() for x in text.replace(",", "\n").splitlines() if x.strip()]


@router.post(OFFER + "/staging")
def stage(request: Request, offer: str, csrf: Csrf = "") -> Response:
    """Push the offer to staging (OFR-PARENT: every SKU needs a certified version)."""
    return change(request, csrf, lambda s, w: release.stage_offer(s, w.caller, offer),
                  _offer_again(offer), f"{BASE}/offers/{offer}")


@router.post(OFFER + "/publish")
def publish(request: Request, offer: str, csrf: Csrf = "") -> Response:
    """Publish what is in staging."""
    return change(request, csrf, lambda s, w: release.publish_offer(s, w.caller, offer),
                  _offer_again(offer), f"{BASE}/offers/{offer}")
