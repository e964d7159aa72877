"""Find a publisher's records by the identifiers in a request's path.

Every lookup starts from the caller's publisher, so another publisher's offer is simply not
found (404): the service does not tell whether it exists.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from vmimage.app.publishing.errors import NotFound
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.models import ImageVersion, Offer, Plan, Sku, StoredReport


def offer(session: Session, caller: Caller, offer_id: str) -> Offer:
    """The caller's offer ``offer_id``.

    Raises:
        NotFound: the caller has no such offer.
    """
    row = session.scalar(select(Offer).where(Offer.publisher_fk == caller.publisher_id,
                                             Offer.offer_id == offer_id))
    if row is None:
        raise NotFound(f"no offer {offer_id!r}")
    return row


def sku(session: Session, caller: Caller, offer_id: str, sku_id: str) -> Sku:
    """The SKU ``sku_id`` of the caller's offer.

    Raises:
        NotFound: no such offer or SKU.
    """
    parent = offer(session, caller, offer_id)
    row = next((s for s in parent.skus if s.sku_id == sku_id), None)
    if row is None:
        raise NotFound(f"offer {offer_id!r} has no SKU {sku_id!r}")
    return row


def version(session: Session, caller: Caller, offer_id: str, sku_id: str,
            number: str) -> ImageVersion:
    """Version ``number`` of a SKU of the caller's offer.

    Raises:
        NotFound: no such offer, SKU or version.
    """
    parent = sku(session, caller, offer_id, sku_id)
    row = next((v for v in parent.versions if v.version == number), None)
    if row is None:
        raise NotFound(f"SKU {sku_id!r} has no version {number!r}")
    return row


def locked_version(session: Session, caller: Caller, offer_id: str, sku_id: str,
                   number: str) -> ImageVersion:
    """:func:`version`, its row locked for the transaction (``SELECT ... FOR UPDATE`` on
    PostgreSQL; SQLite's write transactions are serial already) and read again: two requests
    that change its state at once take turns, and the second sees the first's state.

    Raises:
        NotFound: no such offer, SKU or version.
    """
    row = version(session, caller, offer_id, sku_id, number)
    session.refresh(row, with_for_update=True)
    return row


def plan(session: Session, caller: Caller, offer_id: str, plan_id: str) -> Plan:
    """A plan of the caller's offer.

    Raises:
        NotFound: no such offer or plan.
    """
    parent = offer(session, caller, offer_id)
    row = next((p for p in parent.plans if p.plan_id == plan_id), None)
    if row is None:
        raise NotFound(f"offer {offer_id!r} has no plan {plan_id!r}")
    return row


def report(session: Session, caller: Caller, offer_id: str, sku_id: str, number: str,
           report_id: int) -> StoredReport:
    """A stored report of a version.

    Raises:
        NotFound: no such offer, SKU, version or report.
    """
    parent = version(session, caller, offer_id, sku_id, number)
    row = next((r for r in parent.reports if r.id == report_id), None)
    if row is None:
        raise NotFound(f"version {number!r} has no report {report_id}")
    return row
