"""Offers, their SKUs and plans: create, read, change and delete, within what the states
allow (:mod:`.lifecycle`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from vmimage.app.publishing import lookup, out, records, views
from vmimage.app.publishing.documents import (
    OfferCreate,
    OfferOut,
    OfferUpdate,
    PlanOut,
    SkuCreate,
    SkuOut,
    SkuUpdate,
    VersionOut,
)
from vmimage.app.publishing.errors import Conflict
from vmimage.app.publishing.lifecycle import IN_FLIGHT, LOCKED, STAGED, State
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.models import ImageVersion, Offer, Publisher, Sku
from vmimage.findings import Finding, Status
from vmimage.offer.manifest import LoadedManifest
from vmimage.report.model import Report


def list_offers(store: Store, caller: Caller) -> list[OfferOut]:
    """The caller's offers."""
    with store.read() as session:
        rows = session.scalars(select(Offer).where(Offer.publisher_fk == caller.publisher_id)
                               .order_by(Offer.offer_id))
        return [out.offer(r) for r in rows]


def create_offer(store: Store, caller: Caller, body: OfferCreate) -> OfferOut:
    """A new, empty offer.

    Raises:
        Conflict: the publisher has an offer with that ID.
    """
    with store.write() as session:
        exists = session.scalar(select(Offer.id).where(Offer.publisher_fk == caller.publisher_id,
                                                       Offer.offer_id == body.id))
        if exists is not None:
            raise Conflict(f"offer {body.id!r} exists already")
        publisher = session.get(Publisher, caller.publisher_id)
        assert publisher is not None
        row = Offer(publisher=publisher, offer_id=body.id, title=body.title,
                    container_url=body.container_url)
        session.add(row)
        session.flush()
        return out.offer(row)


def get_offer(store: Store, caller: Caller, offer_id: str) -> OfferOut:
    """One offer."""
    with store.read() as session:
        return out.offer(lookup.offer(session, caller, offer_id))


def check_offer_change(row: Offer, title: str | None, container_url: str | None) -> None:
    """Refuse changing a staged offer's title or container, or the container that gives a
    submitted version's disks their blob URLs.

    Raises:
        Conflict: the offer was pushed to staging, or a version whose disks are named by file
            in the container is submitted or certified.
    """
    changed = (title is not None and title != row.title) or container_url != row.container_url
    if changed and out.offer_state(row) != "draft":
        raise Conflict(f"offer {row.offer_id!r} was pushed to staging: its title and container "
                       "can no longer change")
    if container_url == row.container_url:
        return
    for sku in row.skus:
        for version in sku.versions:
            if State(version.state) in LOCKED and any(d.url is None and d.file is not None
                                                      for d in version.disks):
                raise Conflict(f"version {version.version} of SKU {sku.sku_id!r} is "
                               f"{version.state} and its disks are files in the container: the "
                               "container cannot change")


def set_container(row: Offer, container_url: str | None) -> None:
    """Change the container; a SAS token of a disk whose blob moved with it is forgotten (it
    was given for the old blob)."""
    before = {id(d): out.blob_of(row, d) for s in row.skus for v in s.versions
              for d in v.disks if d.sas_sealed is not None}
    row.container_url = container_url
    for sku in row.skus:
        for version in sku.versions:
            for disk in version.disks:
                if id(disk) in before and out.blob_of(row, disk) != before[id(disk)]:
                    disk.sas_sealed, disk.sas_fields = None, None


def update_offer(store: Store, caller: Caller, offer_id: str, body: OfferUpdate) -> OfferOut:
    """Change the title or the container URL (until the offer is pushed to staging)."""
    with store.write() as session:
        row = lookup.offer(session, caller, offer_id)
        given = body.model_fields_set
        title = body.title if "title" in given else None
        container = body.container_url if "container_url" in given else row.container_url
        check_offer_change(row, title, container)
        if title is not None:
            row.title = title
        set_container(row, container)
        session.flush()
        return out.offer(row)


def _busy(versions: list[ImageVersion]) -> list[ImageVersion]:
    return [v for v in versions if State(v.state) in STAGED | IN_FLIGHT]


def delete_offer(store: Store, caller: Caller, offer_id: str) -> None:
    """Delete an offer that nothing was staged, published or submitted of.

    Raises:
        Conflict: a version is being certified, in staging or published.
    """
    with store.write() as session:
        row = lookup.offer(session, caller, offer_id)
        busy = _busy([v for s in row.skus for v in s.versions])
        if busy:
            raise Conflict(f"offer {offer_id!r} has version {busy[0].version} "
                           f"{busy[0].state}: it cannot be deleted")
        session.delete(row)


def manifest_text(store: Store, caller: Caller, offer_id: str) -> str:
    """The offer as a manifest (every version), the text findings point into."""
    with store.read() as session:
        row = lookup.offer(session, caller, offer_id)
        return views.text_of(views.offer_document(row, lambda v: True))


def _judged(row: Offer, store: Store) -> tuple[LoadedManifest, list[Finding]]:
    loaded = views.render(row, lambda v: True)
    if loaded is None:  # no SKU with a version yet: the manifest as it is, with its problems
        loaded = views.read_manifest(views.text_of(views.offer_document(row, lambda v: True)),
                                     views.manifest_address(row.offer_id))
    return loaded, views.judge(loaded, store.profile, records.previous_of(row))


def validate(store: Store, caller: Caller, offer_id: str) -> Report:
    """Every manifest rule on the offer as it stands, with what is published as
    ``--previous`` (the report of ``vmimage offer validate``)."""
    timer = views.Timer()
    with store.read() as session:
        row = lookup.offer(session, caller, offer_id)
        _, findings = _judged(row, store)
    return timer.report(findings, views.manifest_address(offer_id), store.profile)


def _open(loaded: LoadedManifest, findings: list[Finding],
          sku_id: str | None) -> list[Finding]:
    shown = [f for f in findings if f.status in (Status.FAIL, Status.WARNING)]
    if sku_id is None or loaded.manifest is None:
        return shown
    index = next((i for i, s in enumerate(loaded.manifest.skus) if s.id == sku_id), None)
    lines = views.lines_under(loaded, ("skus", index)) if index is not None else set()
    where = str(loaded.path)
    return [f for f in shown if repr(sku_id) in f.message or f" {sku_id} " in f" {f.message} "
            or any(e.path == where and e.line in lines for e in f.evidence)]


@dataclass(frozen=True)
class OfferView:
    """An offer's page: the offer, its SKUs, and the failures and warnings ``vmimage offer
    validate`` reports on it now (shown beside the forms, so a publisher sees a rule before
    staging refuses)."""

    offer: OfferOut
    skus: list[SkuOut]
    findings: list[Finding]


@dataclass(frozen=True)
class SkuView:
    """A SKU's page: the SKU, its versions, and the findings whose evidence lies under it (or
    that name it)."""

    sku: SkuOut
    versions: list[VersionOut]
    findings: list[Finding]


def offer_view(store: Store, caller: Caller, offer_id: str) -> OfferView:
    """Everything the offer's page shows, read at once."""
    with store.read() as session:
        row = lookup.offer(session, caller, offer_id)
        loaded, findings = _judged(row, store)
        return OfferView(out.offer(row), [out.sku(s) for s in row.skus],
                         _open(loaded, findings, None))


def sku_view(store: Store, caller: Caller, offer_id: str, sku_id: str) -> SkuView:
    """Everything a SKU's page shows, read at once."""
    with store.read() as session:
        row = lookup.sku(session, caller, offer_id, sku_id)
        loaded, findings = _judged(row.offer, store)
        return SkuView(out.sku(row), [out.version(v) for v in row.versions],
                       _open(loaded, findings, sku_id))


# ---------------------------------------------------------------------------------------------
# SKUs and plans


def list_skus(store: Store, caller: Caller, offer_id: str) -> list[SkuOut]:
    """The offer's SKUs in manifest order."""
    with store.read() as session:
        return [out.sku(s) for s in lookup.offer(session, caller, offer_id).skus]


def get_sku(store: Store, caller: Caller, offer_id: str, sku_id: str) -> SkuOut:
    """One SKU."""
    with store.read() as session:
        return out.sku(lookup.sku(session, caller, offer_id, sku_id))


def create_sku(store: Store, caller: Caller, offer_id: str, body: SkuCreate) -> SkuOut:
    """A new SKU, with the versions it was sent with (each judged as a version write is).

    Raises:
        Conflict: the offer has a SKU with that ID.
        Refused: a rule fails on one of its versions.
    """
    with store.write() as session:
        offer = lookup.offer(session, caller, offer_id)
        if any(s.sku_id == body.id for s in offer.skus):
            raise Conflict(f"offer {offer_id!r} has a SKU {body.id!r} already")
        row = Sku(sku_id=body.id, position=max((s.position for s in offer.skus), default=-1) + 1,
                  **records.sku_values(body))
        offer.skus.append(row)
        records.fill_sku(session, offer, row, {}, body.plan_id)
        written = []
        for position, model in enumerate(body.versions):
            if any(v.version == model.version for v in row.versions):
                raise Conflict(f"version {model.version} is given twice")
            version = ImageVersion(version=model.version, position=position,
                                   state=State.DRAFT.value)
            row.versions.append(version)
            records.fill_version(offer, version, model)
            written.append(version)
        records.check_versions(session, store, offer, written)
        return out.sku(row)


def update_sku(store: Store, caller: Caller, offer_id: str, sku_id: str,
               body: SkuUpdate) -> SkuOut:
    """Change what of a SKU the states allow (every key given replaces its value).

    Raises:
        Conflict: the listing is frozen (staged), or a certification is in progress.
    """
    with store.write() as session:
        row = lookup.sku(session, caller, offer_id, sku_id)
        changes = body.model_dump(mode="json", exclude_unset=True)
        changes = {k: v for k, v in changes.items() if v is not None}
        records.check_sku_change(row, changes)
        current = records.listing_of(row) | {"questionnaire": dict(row.questionnaire)}
        merged = {**current, **changes}
        records.fill_sku(session, row.offer, row, records.sku_values(merged),
                         str(merged["plan"]))
        records.prune_plans(session, row.offer)
        return out.sku(row)


def delete_sku(store: Store, caller: Caller, offer_id: str, sku_id: str) -> None:
    """Delete a SKU nothing was staged, published or submitted of.

    Raises:
        Conflict: a version is being certified, in staging or published.
    """
    with store.write() as session:
        row = lookup.sku(session, caller, offer_id, sku_id)
        busy = _busy(list(row.versions))
        if busy:
            raise Conflict(f"SKU {sku_id!r} has version {busy[0].version} {busy[0].state}: it "
                           "cannot be deleted")
        offer = row.offer
        offer.skus.remove(row)  # delete-orphan: removed from the offer is deleted
        records.prune_plans(session, offer)


def list_plans(store: Store, caller: Caller, offer_id: str) -> list[PlanOut]:
    """The offer's plans and the SKUs each holds."""
    with store.read() as session:
        return [out.plan(p) for p in lookup.offer(session, caller, offer_id).plans]


def get_plan(store: Store, caller: Caller, offer_id: str, plan_id: str) -> PlanOut:
    """One plan."""
    with store.read() as session:
        return out.plan(lookup.plan(session, caller, offer_id, plan_id))
