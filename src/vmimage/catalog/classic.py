"""The tables of the guide's classic Create VM Image API (REG-CREATE, REG-ASYNC): the
management certificates that authenticate it, and the VM images registered through it.

A management certificate is kept as its PEM and fingerprints (the public certificate only:
the service never sees a private key). A VM image keeps the request's fields as sent, the
MediaLinks without their query, and the SAS tokens a request carried, sealed
(:mod:`vmimage.catalog.sealing`) and bound to the image's row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vmimage.catalog.models import ID_LENGTH, Base, now

REGISTERING, REGISTERED, FAILED = "registering", "registered", "failed"


class ManagementCertificate(Base):
    """A publisher's management certificate: a client certificate that authenticates the
    classic API as the guide's certificates did (the public part only)."""

    __tablename__ = "management_certificates"

    id: Mapped[int] = mapped_column(primary_key=True)
    publisher_fk: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"),
                                              index=True)
    #: SHA-256 of the DER certificate, hex: how a TLS peer is matched.
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: SHA-1 of the DER certificate, upper-case hex: the thumbprint Azure's portal showed.
    thumbprint: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(Text)
    not_after: Mapped[datetime]
    pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)


class VmImage(Base):
    """A VM image registered (or being registered) by the Create VM Image API."""

    __tablename__ = "vm_images"
    __table_args__ = (UniqueConstraint("publisher_fk", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    publisher_fk: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"),
                                              index=True)
    name: Mapped[str] = mapped_column(String(ID_LENGTH))
    label: Mapped[str] = mapped_column(Text)
    os: Mapped[str] = mapped_column(String(16))
    #: ``registering``, ``registered`` or ``failed``.
    state: Mapped[str] = mapped_column(String(16))
    #: The operation ID (``x-ms-request-id``): 32 hex digits.
    operation_id: Mapped[str] = mapped_column(String(32), unique=True)
    #: The request's fields (disks with their MediaLinks without a query), and what the
    #: registration found (each disk's size).
    document: Mapped[dict[str, Any]]
    #: The SAS tokens the request's MediaLinks carried, sealed: ``{"blob URL": "query"}``.
    tokens_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
    finished_at: Mapped[datetime | None]
