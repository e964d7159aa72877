"""Offers, their plans and SKUs, the offer as a manifest, and its transitions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from vmimage.app.publishing import offers, release
from vmimage.app.publishing.documents import (
    OfferCreate,
    OfferOut,
    OfferUpdate,
    PlanOut,
    SkuCreate,
    SkuOut,
    SkuUpdate,
    TransitionOut,
)
from vmimage.app.publishing.views import report_document
from vmimage.service.auth import CallerDep, StoreDep
from vmimage.service.routes import AUTH, BODY, errors

router = APIRouter(tags=["offers"])
OFFER = "/offers/{offer}"
SKU = OFFER + "/skus/{sku}"


@router.get("/offers", summary="The publisher's offers", responses=errors(*AUTH))
def list_offers(store: StoreDep, caller: CallerDep) -> list[OfferOut]:
    """Every offer of the token's publisher, and where each stands."""
    return offers.list_offers(store, caller)


@router.post("/offers", status_code=201, summary="Create an offer",
             responses=errors(*BODY, 409))
def create_offer(store: StoreDep, caller: CallerDep, body: OfferCreate) -> OfferOut:
    """A new offer without SKUs (OFR-PARENT): add SKUs, or push a whole manifest."""
    return offers.create_offer(store, caller, body)


@router.get(OFFER, summary="An offer", responses=errors(401, 404))
def get_offer(store: StoreDep, caller: CallerDep, offer: str) -> OfferOut:
    """The offer, its SKUs and plans, and how many versions are in each state."""
    return offers.get_offer(store, caller, offer)


@router.patch(OFFER, summary="Change an offer's title or container",
              responses=errors(*BODY, 404, 409))
def update_offer(store: StoreDep, caller: CallerDep, offer: str, body: OfferUpdate) -> OfferOut:
    """Until the offer is pushed to staging."""
    return offers.update_offer(store, caller, offer, body)


@router.delete(OFFER, status_code=204, summary="Delete an offer", responses=errors(401, 404, 409))
def delete_offer(store: StoreDep, caller: CallerDep, offer: str) -> Response:
    """Only while nothing of it is being certified, in staging or published."""
    offers.delete_offer(store, caller, offer)
    return Response(status_code=204)


@router.get(OFFER + "/manifest", summary="The offer as a manifest",
            response_class=Response, responses={
                200: {"content": {"application/json": {}},
                      "description": "The manifest (JSON, which is YAML: save it as "
                                     "offer.yaml); findings point at its lines."},
                **errors(401, 404)})
def manifest(store: StoreDep, caller: CallerDep, offer: str) -> Response:
    """Every SKU and version as `offer.yaml` writes them (no SAS token: manifests hold none)."""
    return Response(offers.manifest_text(store, caller, offer), media_type="application/json")


@router.get(OFFER + "/validation", summary="Every manifest rule on the offer",
            responses=errors(401, 404))
def validation(store: StoreDep, caller: CallerDep, offer: str) -> dict[str, Any]:
    """The JSON report of `vmimage offer validate` on the offer's manifest, with what is
    published as `--previous`."""
    return report_document(offers.validate(store, caller, offer))


@router.post(OFFER + "/staging", summary="Push the offer to staging",
             responses=errors(401, 404, 409, 422))
def stage(store: StoreDep, caller: CallerDep, offer: str) -> TransitionOut:
    """Every SKU's certified versions go to staging (OFR-PARENT, PUB-NEXT); every SKU needs
    one, and the offer they make must meet every manifest rule."""
    return release.stage_offer(store, caller, offer)


@router.post(OFFER + "/publish", summary="Publish what is in staging",
             responses=errors(401, 404, 409, 422))
def publish(store: StoreDep, caller: CallerDep, offer: str) -> TransitionOut:
    """Every version in staging is published (PUB-NEXT)."""
    return release.publish_offer(store, caller, offer)


@router.get(OFFER + "/plans", summary="The offer's plans", responses=errors(401, 404))
def list_plans(store: StoreDep, caller: CallerDep, offer: str) -> list[PlanOut]:
    """Each Partner Center plan and its SKUs (one gen1, one gen2 at most: OFFER-PLAN)."""
    return offers.list_plans(store, caller, offer)


@router.get(OFFER + "/plans/{plan}", summary="A plan", responses=errors(401, 404))
def get_plan(store: StoreDep, caller: CallerDep, offer: str, plan: str) -> PlanOut:
    """One plan and its SKUs."""
    return offers.get_plan(store, caller, offer, plan)


@router.get(OFFER + "/skus", summary="The offer's SKUs", responses=errors(401, 404))
def list_skus(store: StoreDep, caller: CallerDep, offer: str) -> list[SkuOut]:
    """Every SKU, in manifest order."""
    return offers.list_skus(store, caller, offer)


@router.post(OFFER + "/skus", status_code=201, summary="Create a SKU",
             responses=errors(*BODY, 404, 409))
def create_sku(store: StoreDep, caller: CallerDep, offer: str, body: SkuCreate) -> SkuOut:
    """A SKU as `offer.yaml` writes it; versions may come with it (each judged by the
    rules, as a version write is)."""
    return offers.create_sku(store, caller, offer, body)


@router.get(SKU, summary="A SKU", responses=errors(401, 404))
def get_sku(store: StoreDep, caller: CallerDep, offer: str, sku: str) -> SkuOut:
    """The SKU's listing, technical configuration and versions' states."""
    return offers.get_sku(store, caller, offer, sku)


@router.patch(SKU, summary="Change a SKU", responses=errors(*BODY, 404, 409))
def update_sku(store: StoreDep, caller: CallerDep, offer: str, sku: str,
               body: SkuUpdate) -> SkuOut:
    """The listing until the SKU is pushed to staging (OFR-SUMMARY); the technical
    configuration not while a version is being certified."""
    return offers.update_sku(store, caller, offer, sku, body)


@router.delete(SKU, status_code=204, summary="Delete a SKU", responses=errors(401, 404, 409))
def delete_sku(store: StoreDep, caller: CallerDep, offer: str, sku: str) -> Response:
    """Only while nothing of it is being certified, in staging or published."""
    offers.delete_sku(store, caller, offer, sku)
    return Response(status_code=204)
