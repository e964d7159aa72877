"""``vmimage offer push``'s server side: judge a whole ``offer.yaml`` as ``vmimage offer
validate`` does, and store it when no rule fails.

The text is read by the manifest loader and judged by the registry with the offer's published
state as ``--previous``; the report is the CLI's, named as the client named its file, so its
findings are the CLI's findings (``offer validate --no-disks``: the disk files stay on the
publisher's machine, see :mod:`.views`).

Storing follows the states: drafts (and failed versions) are replaced by what the manifest
says, new versions become drafts, and a version that was submitted, certified, staged or
published must be sent unchanged (or left out: it is kept, never deleted by a push).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vmimage.app.publishing import records, views
from vmimage.app.publishing.errors import Conflict, Forbidden
from vmimage.app.publishing.lifecycle import IN_FLIGHT, LOCKED, STAGED, State
from vmimage.app.publishing.offers import check_offer_change, set_container
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.models import ImageVersion, Offer, Publisher, Sku
from vmimage.offer.model import Manifest
from vmimage.offer.model import Sku as SkuModel
from vmimage.report.model import Report


@dataclass(frozen=True)
class Pushed:
    """The findings, and whether the manifest was stored (as which offer)."""

    report: Report
    stored: bool
    offer: str | None


def _existing(session: Session, caller: Caller, offer_id: str) -> Offer | None:
    return session.scalar(select(Offer).where(Offer.publisher_fk == caller.publisher_id,
                                              Offer.offer_id == offer_id))


def _judge(store: Store, session: Session, caller: Caller, name: str,
           text: str) -> tuple[views.RemoteManifest, Report, Offer | None]:
    timer = views.Timer()
    loaded = views.read_manifest(text, name)
    offer = None
    if loaded.manifest is not None:
        if loaded.manifest.publisher != caller.namespace:
            raise Forbidden(f"the manifest is publisher {loaded.manifest.publisher!r}'s; this "
                            f"token is publisher {caller.namespace!r}'s")
        offer = _existing(session, caller, loaded.manifest.offer.id)
    previous = records.previous_of(offer) if offer is not None else None
    findings = views.judge(loaded, store.profile, previous)
    return loaded, timer.report(findings, name, store.profile), offer


def validate_manifest(store: Store, caller: Caller, name: str, text: str) -> Report:
    """The report ``vmimage offer validate --no-disks NAME`` gives (nothing is stored).

    Raises:
        Forbidden: the manifest names another publisher.
    """
    with store.read() as session:
        return _judge(store, session, caller, name, text)[1]


def push_manifest(store: Store, caller: Caller, name: str, text: str) -> Pushed:
    """Judge the manifest and, when no rule fails, store it as the offer's drafts.

    Raises:
        Forbidden: the manifest names another publisher.
        Conflict: it changes what the states keep fixed (a staged SKU's listing, a submitted
            or published version, a SKU with such versions left out).
    """
    with store.write() as session:
        loaded, report, offer = _judge(store, session, caller, name, text)
        if report.exit_code or loaded.manifest is None:
            return Pushed(report, False, None)
        _store(session, caller, loaded.manifest, offer)
        return Pushed(report, True, loaded.manifest.offer.id)


def _store(session: Session, caller: Caller, manifest: Manifest, offer: Offer | None) -> None:
    if offer is None:
        publisher = session.get(Publisher, caller.publisher_id)
        assert publisher is not None
        offer = Offer(publisher=publisher, offer_id=manifest.offer.id, title=manifest.offer.title,
                      container_url=manifest.storage.container_url)
        session.add(offer)
    check_offer_change(offer, manifest.offer.title, manifest.storage.container_url)
    offer.title = manifest.offer.title
    set_container(offer, manifest.storage.container_url)
    sent = {s.id for s in manifest.skus}
    for row in list(offer.skus):
        if row.sku_id not in sent:
            _drop_sku(session, offer, row)
    for position, model in enumerate(manifest.skus):
        found = next((s for s in offer.skus if s.sku_id == model.id), None)
        if found is None:
            row = Sku(sku_id=model.id, position=position, **records.sku_values(model))
            offer.skus.append(row)
        else:
            row = found
            dumped = model.model_dump(mode="json")
            records.check_sku_change(row, {**dumped, "plan": model.plan_id})
            for key, value in records.sku_values(model).items():
                setattr(row, key, value)
            row.position = position
        records.fill_sku(session, offer, row, {}, model.plan_id)
        _store_versions(offer, row, model)
    records.prune_plans(session, offer)


def _drop_sku(session: Session, offer: Offer, row: Sku) -> None:
    busy = [v for v in row.versions if State(v.state) in STAGED | IN_FLIGHT]
    if busy:
        raise Conflict(f"SKU {row.sku_id!r} is not in the manifest but has version "
                       f"{busy[0].version} {busy[0].state}: keep it in the manifest")
    offer.skus.remove(row)  # delete-orphan: removed from the offer is deleted


def _store_versions(offer: Offer, row: Sku, model: SkuModel) -> None:
    existing = {v.version: v for v in row.versions}
    sent = {v.version for v in model.versions}
    for version in list(row.versions):
        if version.version not in sent and State(version.state) not in LOCKED:
            row.versions.remove(version)
    base = len(model.versions)
    for position, version_model in enumerate(model.versions):
        found_version = existing.get(version_model.version)
        if found_version is None:
            version = ImageVersion(version=version_model.version, state=State.DRAFT.value)
            row.versions.append(version)
            records.fill_version(offer, version, version_model)
        elif State(found_version.state) in LOCKED:
            version = found_version
            if not records.same_image(version, version_model):
                raise Conflict(f"version {version.version} of SKU {row.sku_id!r} is "
                               f"{version.state}: it cannot change; add a new patch version "
                               "(PUB-VERSION)")
        else:
            version = found_version
            records.fill_version(offer, version, version_model)
        version.position = position
    for extra, version in enumerate(v for v in row.versions if v.version not in sent):
        version.position = base + extra
