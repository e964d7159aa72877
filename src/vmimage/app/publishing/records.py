"""Write the manifest's models into records: one way for the API's writes and for a pushed
manifest, so both store the same thing and render back the same manifest."""

from __future__ import annotations

from sqlalchemy.orm import Session

from vmimage.app.publishing import views
from vmimage.app.publishing.errors import Conflict, Refused
from vmimage.app.publishing.lifecycle import IN_FLIGHT, STAGED, State
from vmimage.app.publishing.out import blob_of, listing_locked
from vmimage.app.publishing.store import Store
from vmimage.catalog.models import Disk, ImageVersion, Offer, Plan, Sku, now
from vmimage.offer.keys import Key
from vmimage.offer.model import ImageVersion as VersionModel
from vmimage.offer.model import Sku as SkuModel

#: A SKU's listing: frozen once the SKU is pushed to staging (OFR-SUMMARY).
LISTING = ("plan", "title", "summary", "os", "image_type", "recommended_sizes", "properties",
           "open_ports")
#: What a certification run reads of the SKU: not changed while one is in progress.
TECHNICAL = ("plan", "os", "image_type", "properties", "open_ports")


def plan_for(session: Session, offer: Offer, plan_id: str) -> Plan:
    """The offer's plan ``plan_id``, made when new."""
    row = next((p for p in offer.plans if p.plan_id == plan_id), None)
    if row is None:
        row = Plan(plan_id=plan_id)
        offer.plans.append(row)
    return row


def prune_plans(session: Session, offer: Offer) -> None:
    """Remove the plans no SKU is in any more."""
    session.flush()
    for row in list(offer.plans):
        session.refresh(row, ["skus"])
        if not row.skus:
            offer.plans.remove(row)
            session.delete(row)


def sku_values(model: SkuModel | dict[str, object]) -> dict[str, object]:
    """A SKU's listing as the record stores it (JSON columns as plain data)."""
    data = model.model_dump(mode="json") if isinstance(model, SkuModel) else model
    os_info = data["os"]
    assert isinstance(os_info, dict)
    return {"title": data["title"], "summary": data["summary"], "os_family": os_info["family"],
            "os_type": os_info["type"], "os_name": os_info["friendly_name"],
            "image_type": data["image_type"], "recommended_sizes": data["recommended_sizes"],
            "properties": data["properties"], "open_ports": data["open_ports"],
            "questionnaire": data["questionnaire"]}


def listing_of(row: Sku) -> dict[str, object]:
    """The SKU's listing as the manifest model dumps it, to compare a change against."""
    return {"plan": row.plan.plan_id, "title": row.title, "summary": row.summary,
            "os": {"family": row.os_family, "type": row.os_type, "friendly_name": row.os_name},
            "image_type": row.image_type, "recommended_sizes": list(row.recommended_sizes),
            "properties": dict(row.properties), "open_ports": list(row.open_ports)}


def check_sku_change(row: Sku, changes: dict[str, object]) -> None:
    """Refuse a change of a staged SKU's listing, or of its technical configuration while a
    version is being certified.

    Raises:
        Conflict: naming the keys that cannot change and why.
    """
    current = listing_of(row)
    changed = [k for k in LISTING if k in changes and changes[k] != current[k]]
    if listing_locked(row) and changed:
        raise Conflict(f"SKU {row.sku_id!r} was pushed to staging: its {', '.join(changed)} "
                       "can no longer change (OFR-SUMMARY)")
    busy = [v.version for v in row.versions if State(v.state) in IN_FLIGHT]
    technical = [k for k in changed if k in TECHNICAL]
    if busy and technical:
        raise Conflict(f"SKU {row.sku_id!r}: version {busy[0]} is being certified; its "
                       f"{', '.join(technical)} cannot change until the run ends or the "
                       "request is withdrawn")


def fill_sku(session: Session, offer: Offer, row: Sku, values: dict[str, object],
             plan_id: str) -> None:
    """Set a SKU record's listing and plan (without flushing a new SKU before it has one)."""
    with session.no_autoflush:
        for name, value in values.items():
            setattr(row, name, value)
        current: Plan | None = row.plan
        if current is None or current.plan_id != plan_id:
            row.plan = plan_for(session, offer, plan_id)


def fill_version(offer: Offer, row: ImageVersion, model: VersionModel) -> None:
    """Replace a version record's disks and gallery image with ``model``'s; a disk that names
    the same blob as before keeps its sealed SAS token (sealed for that blob)."""
    kept = {blob: (d.sas_sealed, d.sas_fields) for d in row.disks
            if d.sas_sealed is not None and (blob := blob_of(offer, d)) is not None}
    row.disks.clear()
    disks = []
    if model.os_disk is not None:
        d = model.os_disk
        disks.append(Disk(lun=None, file=d.file, url=d.url, host_caching=d.host_caching))
    disks += [Disk(lun=d.lun, file=d.file, url=d.url, host_caching=d.host_caching,
                   empty_size=d.empty_size) for d in model.data_disks]
    for position, disk in enumerate(disks):
        disk.position = position
        blob = blob_of(offer, disk)
        if blob is not None and blob in kept:
            disk.sas_sealed, disk.sas_fields = kept[blob]
        row.disks.append(disk)
    gallery = model.gallery_image
    row.gallery_tenant_id = gallery.tenant_id if gallery is not None else None
    row.gallery_resource_id = gallery.resource_id if gallery is not None else None
    if row.state == State.FAILED:
        set_state(row, State.DRAFT)


def set_state(row: ImageVersion, state: State) -> None:
    """Move a version to ``state`` and stamp it."""
    row.state = state.value
    row.state_changed_at = now()


def same_image(row: ImageVersion, model: VersionModel) -> bool:
    """Whether ``model`` describes exactly the image the record holds."""
    return VersionModel.model_validate(views.version_document(row)) == model


def version_key(loaded: views.RemoteManifest, sku_id: str, number: str) -> Key | None:
    """Where a version sits in a rendered manifest."""
    if loaded.manifest is None:
        return None
    for i, sku in enumerate(loaded.manifest.skus):
        if sku.id == sku_id:
            for j, version in enumerate(sku.versions):
                if version.version == number:
                    return ("skus", i, "versions", j)
    return None


def published(version: ImageVersion) -> bool:
    """Kept in the ``--previous`` manifest: what customers can deploy."""
    return version.state == State.PUBLISHED


def previous_of(offer: Offer) -> views.RemoteManifest | None:
    """What is published of the offer, as the manifest every change is compared with."""
    return views.render(offer, published)


def check_versions(session: Session, store: Store, offer: Offer,
                   written: list[ImageVersion]) -> None:
    """Refuse writing versions that a rule fails on: the offer with every version is judged,
    and a failing finding whose evidence points into a written version refuses the write.

    Raises:
        Refused: with the whole report; the message names the rules that failed there.
    """
    session.flush()
    timer = views.Timer()
    loaded = views.render(offer, lambda v: True)
    if loaded is None:
        return
    findings = views.judge(loaded, store.profile, previous_of(offer))
    bad = []
    for row in written:
        key = version_key(loaded, row.sku.sku_id, row.version)
        if key is not None:
            bad += [(row, f) for f in views.blamed(findings, loaded, key)]
    if bad:
        row, first = bad[0]
        ids = ", ".join(sorted({f.check_id for _, f in bad}))
        raise Refused(f"version {row.version} of SKU {row.sku.sku_id!r} breaks {ids}: "
                      f"{first.message}", timer.report(findings, str(loaded.path), store.profile))


def staged(row: ImageVersion) -> bool:
    """Pushed to staging or published."""
    return State(row.state) in STAGED
