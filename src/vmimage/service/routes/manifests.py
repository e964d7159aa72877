"""``vmimage offer push``: a whole ``offer.yaml`` judged as ``vmimage offer validate`` judges
it, and stored when no rule fails."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from vmimage.app.publishing import manifests
from vmimage.app.publishing.documents import ManifestBody, PushOut
from vmimage.app.publishing.views import report_document
from vmimage.service.auth import CallerDep, StoreDep
from vmimage.service.routes import BODY, errors

router = APIRouter(tags=["manifests"])


@router.post("/manifests/validate", summary="Judge a manifest (nothing is stored)",
             responses=errors(*BODY, 403))
def validate(store: StoreDep, caller: CallerDep, body: ManifestBody) -> dict[str, Any]:
    """The JSON report `vmimage offer validate --no-disks --format json NAME` prints: the
    same rules, findings and lines, with what is published of the offer as `--previous`."""
    return report_document(manifests.validate_manifest(store, caller, body.name, body.text))


@router.post("/manifests", summary="Judge a manifest and store it as the offer's drafts",
             response_model=PushOut, responses={**errors(400, 401, 403, 409, 413, 415),
                        422: {"model": PushOut, "description": "A rule fails: nothing is "
                                                               "stored; the report says why."}})
def push(store: StoreDep, caller: CallerDep, body: ManifestBody) -> JSONResponse:
    """Stored (200) when no rule fails; refused (422) with the report otherwise. Versions
    already submitted, certified, staged or published must be sent unchanged."""
    pushed = manifests.push_manifest(store, caller, body.name, body.text)
    document = PushOut(stored=pushed.stored, offer=pushed.offer,
                       report=report_document(pushed.report))
    return JSONResponse(document.model_dump(mode="json"),
                        status_code=200 if pushed.stored else 422)
