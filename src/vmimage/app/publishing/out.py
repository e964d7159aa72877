"""Records as the API's documents: what a publisher sees, SAS signatures masked."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.orm import object_session

from vmimage.app.publishing import jobviews
from vmimage.app.publishing.documents import (
    CertificationOut,
    DiskOut,
    OfferOut,
    PlanOut,
    ReportOut,
    SasOut,
    SkuOut,
    VersionBrief,
    VersionOut,
)
from vmimage.app.publishing.lifecycle import LOCKED, STAGED, State
from vmimage.app.publishing.views import API
from vmimage.bloburl import join_blob
from vmimage.catalog.models import (
    CertificationRequest,
    Disk,
    ImageVersion,
    Offer,
    Plan,
    Sku,
    StoredReport,
)
from vmimage.secrets import REDACTED

#: The fields of a SAS token that are not secret, kept in clear for listings.
PUBLIC_FIELDS = ("sv", "ss", "srt", "sr", "sp", "st", "se", "spr", "sip")


def public_fields(query: str) -> dict[str, str]:
    """The non-secret fields of a SAS query (never ``sig``)."""
    return {k: v for k, v in parse_qsl(query, keep_blank_values=True) if k in PUBLIC_FIELDS}


def blob_of(offer: Offer, disk: Disk) -> str | None:
    """The blob a disk names: its URL, or its file's name in the offer's container, as
    :func:`vmimage.offer.submission.blob_url` decides it for a manifest."""
    if disk.url is not None:
        return disk.url
    if disk.file is None or offer.container_url is None:
        return None
    return join_blob(offer.container_url, os.path.basename(disk.file))


def _sas(disk: Disk, blob: str | None) -> SasOut | None:
    if disk.sas_sealed is None or blob is None:
        return None
    fields = {str(k): str(v) for k, v in (disk.sas_fields or {}).items()}
    query = "&".join(f"{k}={v}" for k, v in fields.items())
    return SasOut(uri=f"{blob}?{query}&sig={REDACTED}", fields=fields)


def disk(offer: Offer, row: Disk) -> DiskOut:
    """A disk, its SAS masked."""
    blob = blob_of(offer, row)
    return DiskOut(lun=row.lun, file=row.file, url=row.url, host_caching=row.host_caching,
                   empty_size=row.empty_size, blob_url=blob, sas=_sas(row, blob))


def certification(row: CertificationRequest) -> CertificationOut:
    """A certification request, the job running it and that run's reports."""
    session = object_session(row)
    job = jobviews.certification_job(session, row) if session is not None else None
    return CertificationOut(id=row.id, state=row.state, questionnaire=dict(row.questionnaire),
                            requested=row.requested_at, finished=row.finished_at,
                            job_id=row.job_id, message=row.message, job=job,
                            reports=jobviews.report_links(row))


def version(row: ImageVersion) -> VersionOut:
    """An image version with its disks and latest certification request."""
    offer = row.sku.offer
    os_disk = next((d for d in row.disks if d.lun is None), None)
    gallery = None
    if row.gallery_resource_id is not None or row.gallery_tenant_id is not None:
        gallery = {"tenant_id": row.gallery_tenant_id or "",
                   "resource_id": row.gallery_resource_id or ""}
    latest = row.certifications[-1] if row.certifications else None
    return VersionOut(sku=row.sku.sku_id, version=row.version, state=row.state,
                      editable=State(row.state) not in LOCKED, state_changed=row.state_changed_at,
                      os_disk=disk(offer, os_disk) if os_disk is not None else None,
                      data_disks=[disk(offer, d) for d in row.disks if d.lun is not None],
                      gallery_image=gallery,
                      certification=certification(latest) if latest is not None else None)


def listing_locked(row: Sku) -> bool:
    """Whether the SKU was pushed to staging (its listing is frozen, OFR-SUMMARY)."""
    return any(State(v.state) in STAGED for v in row.versions)


def sku(row: Sku) -> SkuOut:
    """A SKU as the manifest has it, with its versions' states."""
    data: dict[str, Any] = {
        "id": row.sku_id, "plan": row.plan.plan_id, "title": row.title, "summary": row.summary,
        "os": {"family": row.os_family, "type": row.os_type, "friendly_name": row.os_name},
        "image_type": row.image_type, "recommended_sizes": list(row.recommended_sizes),
        "properties": dict(row.properties), "open_ports": list(row.open_ports),
        "questionnaire": dict(row.questionnaire)}
    return SkuOut(**data, listing_locked=listing_locked(row),
                  versions=[VersionBrief(version=v.version, state=v.state) for v in row.versions])


def plan(row: Plan) -> PlanOut:
    """A plan and its SKUs."""
    return PlanOut(id=row.plan_id, skus=[{"id": s.sku_id, "image_type": s.image_type}
                                         for s in row.skus])


def offer_state(row: Offer) -> str:
    """``published`` when a version is, else ``staging`` when one is, else ``draft``."""
    states = {State(v.state) for s in row.skus for v in s.versions}
    if State.PUBLISHED in states:
        return "published"
    return "staging" if State.STAGING in states else "draft"


def offer(row: Offer) -> OfferOut:
    """An offer, where it stands, and what it holds."""
    counts = Counter(v.state for s in row.skus for v in s.versions)
    return OfferOut(id=row.offer_id, title=row.title, container_url=row.container_url,
                    state=offer_state(row), listing_locked=offer_state(row) != "draft",
                    skus=[s.sku_id for s in row.skus], plans=[p.plan_id for p in row.plans],
                    versions=dict(sorted(counts.items())), created=row.created_at,
                    updated=row.updated_at)


def version_path(row: ImageVersion) -> str:
    """The API address of a version."""
    sku_row = row.sku
    return f"{API}/offers/{sku_row.offer.offer_id}/skus/{sku_row.sku_id}/versions/{row.version}"


def report(row: StoredReport) -> ReportOut:
    """A stored report's metadata and download address."""
    return ReportOut(id=row.id, format=row.format, source=row.source, size=row.size,
                     sha256=row.sha256, created=row.created_at, certification=row.request_fk,
                     download=f"{version_path(row.version)}/reports/{row.id}")
