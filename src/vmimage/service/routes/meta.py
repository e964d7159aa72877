"""Whether the service runs (no token needed: for load balancers and start-up scripts)."""

from __future__ import annotations

from fastapi import APIRouter

from vmimage.app.publishing.documents import Health
from vmimage.service.auth import StoreDep

router = APIRouter(tags=["service"])


@router.get("/health", summary="Whether the service runs, and on what database")
def health(store: StoreDep) -> Health:
    """The database kind, the schema revision and the profile rules are judged by."""
    return Health(status="ok", database=store.backend, schema_revision=store.revision,
                  profile=store.profile.name)
