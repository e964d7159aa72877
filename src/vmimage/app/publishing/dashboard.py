"""The portal's dashboard (issue 15): for a team with many SKUs, every SKU's latest version,
where it stands and since when, filterable by text and by state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.models import Offer, now


@dataclass(frozen=True)
class Row:
    """One SKU and its latest version."""

    offer: str
    offer_title: str
    sku: str
    sku_title: str
    plan: str
    image_type: str
    version: str | None
    state: str | None
    since: datetime | None

    @property
    def age(self) -> str:
        """How long the latest version has been in its state: ``3 d``, ``5 h``, ``12 min``."""
        if self.since is None:
            return ""
        seconds = (now() - self.since).total_seconds()
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if seconds >= size:
                return f"{int(seconds // size)} {unit}"
        return "now"


def _number(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (-1,)


def dashboard(store: Store, caller: Caller, text: str = "", state: str = "") -> list[Row]:
    """The caller's SKUs in offer and manifest order, filtered: ``text`` in an offer's or
    SKU's ID or title (any case), ``state`` the latest version's state (``none``: no
    version)."""
    needle = text.strip().lower()
    rows: list[Row] = []
    with store.read() as session:
        offers = session.scalars(select(Offer).where(Offer.publisher_fk == caller.publisher_id)
                                 .order_by(Offer.offer_id))
        for offer in offers:
            for sku in offer.skus:
                latest = max(sku.versions, key=lambda v: _number(v.version), default=None)
                row = Row(offer.offer_id, offer.title, sku.sku_id, sku.title, sku.plan.plan_id,
                          sku.image_type, latest.version if latest else None,
                          latest.state if latest else None,
                          latest.state_changed_at if latest else None)
                haystack = " ".join((row.offer, row.offer_title, row.sku, row.sku_title)).lower()
                if needle and needle not in haystack:
                    continue
                if state and (row.state or "none") != state:
                    continue
                rows.append(row)
    return rows
