"""vmimage: Azure Marketplace VM images, checked before Microsoft checks them."""

__version__ = "0.1.0"
