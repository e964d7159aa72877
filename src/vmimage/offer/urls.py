"""The public addresses each SKU will have (OFR-URL): why identifiers must be chosen with care.

Today (``azure-current``) a published VM offer is found at three addresses, each built from
the publisher, offer and SKU identifiers, which can never change once live:

- the marketplace listing ``https://azuremarketplace.microsoft.com/marketplace/apps/{publisher}.{offer}``
  (one page per offer; ``?tab=PlansAndPrice`` lists its plans);
- the Azure portal's create page ``https://portal.azure.com/#create/{publisher}.{offer}{sku}``;
- the image URN ``{publisher}:{offer}:{sku}:{version}`` that ``az vm create --image`` and ARM
  templates take (``latest`` or an exact version).

The 2015 guide gave two other patterns, shown only under ``azure-2015`` and kept verbatim
(including ``http``): the azure.com marketplace page
``http://azure.microsoft.com/marketplace/partners/{PartnerNamespace}/{OfferIdentifier}-{SKUidentifier}``
and the preview portal's gallery item
``https://portal.azure.com/#gallery/{PublisherNamespace}.{OfferIdentifier}{SKUidentifier}``.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from vmimage.offer.model import Manifest

MARKETPLACE_2015 = "http://azure.microsoft.com/marketplace/partners/{publisher}/{offer}-{sku}"
PORTAL_2015 = "https://portal.azure.com/#gallery/{publisher}.{offer}{sku}"
LISTING = "https://azuremarketplace.microsoft.com/marketplace/apps/{publisher}.{offer}"
PORTAL_CREATE = "https://portal.azure.com/#create/{publisher}.{offer}{sku}"


@dataclass(frozen=True)
class SkuUrls:
    """The public addresses of one SKU: today's, and the guide's 2015 ones when asked for."""

    sku: str
    listing: str
    portal: str
    urn: str
    urns: tuple[str, ...]
    marketplace_2015: str | None = None
    portal_2015: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``--format json`` (2015 keys only when shown)."""
        out: dict[str, object] = {"sku": self.sku, "listing": self.listing,
                                  "portal": self.portal, "urn": self.urn,
                                  "version_urns": list(self.urns)}
        if self.marketplace_2015 is not None:
            out |= {"marketplace_2015": self.marketplace_2015, "portal_2015": self.portal_2015}
        return out

    def lines(self) -> list[tuple[str, str]]:
        """``(label, address)`` pairs in the order people read them."""
        rows = [("marketplace listing", self.listing), ("portal create page", self.portal),
                ("image URN (az vm create --image)", self.urn)]
        rows += [("image URN, this version", u) for u in self.urns]
        if self.marketplace_2015 is not None and self.portal_2015 is not None:
            rows += [("marketplace (2015 guide)", self.marketplace_2015),
                     ("portal (2015 guide)", self.portal_2015)]
        return rows


def _q(part: str) -> str:
    """Percent-encode what is not URL-safe, so a bad ID shows as what the URL would be."""
    return urllib.parse.quote(part, safe="")


def sku_urls(manifest: Manifest, guide_2015: bool = False) -> list[SkuUrls]:
    """Each SKU's addresses, in manifest order; the 2015 guide's too with ``guide_2015``."""
    publisher, offer = _q(manifest.publisher), _q(manifest.offer.id)
    found = []
    for sku in manifest.skus:
        ids = {"publisher": publisher, "offer": offer, "sku": _q(sku.id)}
        urn = f"{manifest.publisher}:{manifest.offer.id}:{sku.id}"
        found.append(SkuUrls(
            sku.id, LISTING.format(**ids), PORTAL_CREATE.format(**ids), f"{urn}:latest",
            tuple(f"{urn}:{v.version}" for v in sku.versions),
            MARKETPLACE_2015.format(**ids) if guide_2015 else None,
            PORTAL_2015.format(**ids) if guide_2015 else None))
    return found
