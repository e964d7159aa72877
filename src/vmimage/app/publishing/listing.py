"""The public listing page's data (issue 15; OFR-URL): what a customer sees of a published SKU
at ``/marketplace/partners/{namespace}/{offer}-{sku}``, with no sign-in. Only what is
published is shown: a draft, a SKU in staging, another publisher's lookalike are not found.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from vmimage.app.publishing.errors import NotFound
from vmimage.app.publishing.store import Store
from vmimage.catalog.models import Offer, Publisher
from vmimage.offer.ids import version_order


@dataclass(frozen=True)
class Listing:
    """A published SKU as customers see it."""

    publisher: str
    offer: str
    offer_title: str
    sku: str
    title: str
    summary: str
    os: str
    image_type: str
    sizes: list[str]
    ports: list[str]
    versions: list[str]


def public_listing(store: Store, namespace: str, offer_and_sku: str) -> Listing:
    """The published SKU named ``{offer}-{sku}`` (both may hold '-': every split is tried).

    Raises:
        NotFound: no such published SKU.
    """
    with store.read() as session:
        publisher = session.scalar(select(Publisher).where(Publisher.namespace == namespace))
        if publisher is not None:
            for at in range(1, len(offer_and_sku) - 1):
                if offer_and_sku[at] != "-":
                    continue
                offer_id, sku_id = offer_and_sku[:at], offer_and_sku[at + 1:]
                offer = session.scalar(select(Offer).where(Offer.publisher_fk == publisher.id,
                                                           Offer.offer_id == offer_id))
                sku = next((s for s in offer.skus if s.sku_id == sku_id), None) \
                    if offer is not None else None
                if offer is None or sku is None:
                    continue
                published = sorted((v.version for v in sku.versions if v.state == "published"),
                                   key=version_order, reverse=True)
                if not published:
                    break
                return Listing(namespace, offer.offer_id, offer.title, sku.sku_id, sku.title,
                               sku.summary, sku.os_name,
                               sku.image_type, [str(s) for s in sku.recommended_sizes],
                               [f"{p.get('label')} {p.get('ports')}/{p.get('protocol')}"
                                for p in sku.open_ports], published)
    raise NotFound(f"no published SKU {offer_and_sku[:200]!r} of {namespace[:100]!r}")
