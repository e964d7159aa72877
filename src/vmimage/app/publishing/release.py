"""Push an offer to staging, and publish it (PUB-NEXT, OFR-PARENT).

Pushing the offer pushes all its SKUs: every SKU needs a certified (or already staged or
published) version, and the offer made of those versions must meet every manifest rule, with
what is published as ``--previous``. Publishing moves what is in staging.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from vmimage.app.publishing import lookup, out, records, views
from vmimage.app.publishing.documents import Moved, TransitionOut
from vmimage.app.publishing.errors import Conflict, Refused
from vmimage.app.publishing.lifecycle import READY, STAGED, State, transition
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.models import ImageVersion, Offer


def _moved(rows: list[ImageVersion]) -> list[Moved]:
    return [Moved(sku=r.sku.sku_id, version=r.version, state=r.state) for r in rows]


def _judge(store: Store, offer: Offer, keep: frozenset[State]) -> None:
    timer = views.Timer()
    loaded = views.render(offer, lambda v: State(v.state) in keep)
    assert loaded is not None
    findings = views.judge(loaded, store.profile, records.previous_of(offer))
    bad = views.failing(findings)
    if bad:
        raise Refused(f"offer {offer.offer_id!r}: {', '.join(f.check_id for f in bad)} failed: "
                      f"{bad[0].message}", timer.report(findings, str(loaded.path),
                                                         store.profile))


def stage_offer(store: Store, caller: Caller, offer_id: str) -> TransitionOut:
    """Push every certified version of every SKU to staging.

    Raises:
        Conflict: a SKU has no certified, staged or published version, or nothing is
            certified.
        Refused: a manifest rule fails on what would be staged.
    """
    with store.write() as session:
        offer = lookup.offer(session, caller, offer_id)
        if not offer.skus:
            raise Conflict(f"offer {offer_id!r} has no SKU")
        unready = [s.sku_id for s in offer.skus
                   if not any(State(v.state) in READY for v in s.versions)]
        if unready:
            raise Conflict(f"SKU {', '.join(map(repr, unready))} has no certified version: "
                           "pushing the offer to staging pushes all its SKUs (OFR-PARENT)")
        rows = [v for s in offer.skus for v in s.versions if v.state == State.CERTIFIED]
        if not rows:
            raise Conflict(f"offer {offer_id!r} has no certified version to push to staging")
        return _move(store, session, offer, rows, "stage", READY)


def publish_offer(store: Store, caller: Caller, offer_id: str) -> TransitionOut:
    """Publish what is in staging.

    Raises:
        Conflict: nothing is in staging.
        Refused: a manifest rule fails on what would be published.
    """
    with store.write() as session:
        offer = lookup.offer(session, caller, offer_id)
        rows = [v for s in offer.skus for v in s.versions if v.state == State.STAGING]
        if not rows:
            raise Conflict(f"offer {offer_id!r} has nothing in staging to publish")
        return _move(store, session, offer, rows, "publish", STAGED)


def _move(store: Store, session: Session, offer: Offer, rows: list[ImageVersion], event: str,
          judged: frozenset[State]) -> TransitionOut:
    """Judge the offer as it will stand (its versions in ``judged`` states), then move
    ``rows`` by ``event``: one path for staging and publishing."""
    _judge(store, offer, judged)
    for row in rows:
        records.set_state(row, transition(event, row.state, f"version {row.version}"))
    session.flush()
    return TransitionOut(offer=offer.offer_id, state=out.offer_state(offer), moved=_moved(rows))
