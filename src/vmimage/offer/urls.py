"""The public URLs each SKU will have (OFR-URL): why identifiers must be chosen with care.

The guide gives two patterns (2015): the azure.com marketplace page
``http://azure.microsoft.com/marketplace/partners/{PartnerNamespace}/{OfferIdentifier}-{SKUidentifier}``
and the preview portal's gallery item
``https://portal.azure.com/#gallery/{PublisherNamespace}.{OfferIdentifier}{SKUidentifier}``.
Both are what the guide states, kept verbatim (including ``http``); today's storefront page of
an offer is ``https://azuremarketplace.microsoft.com/marketplace/apps/{publisher}.{offer}``.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from vmimage.offer.model import Manifest

MARKETPLACE_2015 = "http://azure.microsoft.com/marketplace/partners/{publisher}/{offer}-{sku}"
PORTAL_2015 = "https://portal.azure.com/#gallery/{publisher}.{offer}{sku}"
STOREFRONT = "https://azuremarketplace.microsoft.com/marketplace/apps/{publisher}.{offer}"


@dataclass(frozen=True)
class SkuUrls:
    """The public URLs of one SKU."""

    sku: str
    marketplace: str
    portal: str
    storefront: str

    def to_dict(self) -> dict[str, str]:
        """Plain data for ``--json``."""
        return {"sku": self.sku, "marketplace": self.marketplace, "portal": self.portal,
                "storefront": self.storefront}


def _q(part: str) -> str:
    """Percent-encode what is not URL-safe, so a bad ID shows as what the URL would be."""
    return urllib.parse.quote(part, safe="")


def sku_urls(manifest: Manifest) -> list[SkuUrls]:
    """Each SKU's URLs, in manifest order."""
    publisher, offer = _q(manifest.publisher), _q(manifest.offer.id)
    return [SkuUrls(sku.id,
                    MARKETPLACE_2015.format(publisher=publisher, offer=offer, sku=_q(sku.id)),
                    PORTAL_2015.format(publisher=publisher, offer=offer, sku=_q(sku.id)),
                    STOREFRONT.format(publisher=publisher, offer=offer))
            for sku in manifest.skus]
