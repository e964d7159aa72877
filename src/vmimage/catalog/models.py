"""The service's tables, as SQLAlchemy 2 typed models.

The shapes follow the offer manifest (``offer.yaml``) key for key, so that an offer stored here
renders back into a manifest that the one rule registry judges (``vmimage.app.publishing``):
a SKU's plan, OS, sizes, properties, ports and questionnaire, a version's disks with their
LUNs, in the order the publisher gave them (``position``). Free text is ``Text`` (a title that
breaks a rule is stored and reported, never cut by a column width); identifiers that are
looked up or unique are bounded, and the application layer refuses longer ones first.

Secrets: an API token is stored as its SHA-256 only; a disk's SAS token is sealed
(:mod:`vmimage.catalog.sealing`) and only its non-secret fields (``sp``, ``se``...) are kept
in clear for display.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Bounded identifier columns; the application layer refuses longer values with a message.
ID_LENGTH = 100
#: Constraint names fixed by convention, so that migrations name them the same on every
#: database and a later migration can drop them by name.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC (SQLite returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC."""
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back as aware UTC."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def now() -> datetime:
    """The time every record is stamped with."""
    return datetime.now(UTC)


def new_subscription_id() -> str:
    """A new publisher's subscription ID (a random GUID)."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """The declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON,
                                                     list[Any]: JSON}


class Publisher(Base):
    """A publisher namespace (OFR-URL): the owner of offers and API tokens."""

    __tablename__ = "publishers"

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    #: The subscription ID of the classic Create VM Image API's paths (``/{subscription}/
    #: services/vmimages``): a GUID, as Azure's. Nullable in the table only because rows made
    #: before migration 0003 get theirs from it; every publisher has one.
    subscription_id: Mapped[str | None] = mapped_column(String(36), index=True, unique=True,
                                                        default=new_subscription_id)
    created_at: Mapped[datetime] = mapped_column(default=now)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="publisher",
                                                  cascade="all, delete-orphan")
    offers: Mapped[list[Offer]] = relationship(back_populates="publisher",
                                               cascade="all, delete-orphan")


class ApiToken(Base):
    """An API token of a publisher, stored as the SHA-256 of the token only."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    publisher_fk: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"),
                                              index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: The token's first characters, shown in listings so a publisher can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None]

    publisher: Mapped[Publisher] = relationship(back_populates="tokens")


class Offer(Base):
    """An offer: the parent of its SKUs (OFR-PARENT)."""

    __tablename__ = "offers"
    __table_args__ = (UniqueConstraint("publisher_fk", "offer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    publisher_fk: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"),
                                              index=True)
    offer_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    title: Mapped[str] = mapped_column(Text)
    container_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)

    publisher: Mapped[Publisher] = relationship(back_populates="offers")
    # selectin: an offer is read whole (its plans, SKUs, versions, disks): one query per level,
    # not one per row (40 lazy loads made GET .../skus of 20 SKUs 31 ms).
    plans: Mapped[list[Plan]] = relationship(lazy="selectin", back_populates="offer",
                                             cascade="all, delete-orphan",
                                             order_by="Plan.plan_id")
    skus: Mapped[list[Sku]] = relationship(lazy="selectin", back_populates="offer",
                                           cascade="all, delete-orphan", order_by="Sku.position")


class Plan(Base):
    """A Partner Center plan: at most one gen1 and one gen2 SKU (OFFER-PLAN judges that)."""

    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("offer_fk", "plan_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_fk: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[str] = mapped_column(String(ID_LENGTH))

    offer: Mapped[Offer] = relationship(back_populates="plans")
    skus: Mapped[list[Sku]] = relationship(back_populates="plan", order_by="Sku.position")


class Sku(Base):
    """A SKU: the commercial name of one VM image, its listing and technical configuration."""

    __tablename__ = "skus"
    __table_args__ = (UniqueConstraint("offer_fk", "sku_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_fk: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    plan_fk: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"), index=True)
    sku_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    os_family: Mapped[str] = mapped_column(String(16))
    os_type: Mapped[str] = mapped_column(String(64))
    os_name: Mapped[str] = mapped_column(Text)
    image_type: Mapped[str] = mapped_column(String(8))
    recommended_sizes: Mapped[list[Any]]
    properties: Mapped[dict[str, Any]]
    open_ports: Mapped[list[Any]]
    questionnaire: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)

    offer: Mapped[Offer] = relationship(back_populates="skus")
    plan: Mapped[Plan] = relationship(lazy="selectin", back_populates="skus")
    versions: Mapped[list[ImageVersion]] = relationship(lazy="selectin", back_populates="sku",
                                                        cascade="all, delete-orphan",
                                                        order_by="ImageVersion.position")


class ImageVersion(Base):
    """One version X.Y.Z of a SKU's image, and where it stands in the publishing states."""

    __tablename__ = "image_versions"
    __table_args__ = (UniqueConstraint("sku_fk", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sku_fk: Mapped[int] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(ID_LENGTH))
    position: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    gallery_tenant_id: Mapped[str | None] = mapped_column(Text)
    gallery_resource_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
    state_changed_at: Mapped[datetime] = mapped_column(default=now)

    sku: Mapped[Sku] = relationship(back_populates="versions")
    disks: Mapped[list[Disk]] = relationship(lazy="selectin", back_populates="version",
                                             cascade="all, delete-orphan",
                                             order_by="Disk.position")
    certifications: Mapped[list[CertificationRequest]] = relationship(lazy="selectin",
        back_populates="version", cascade="all, delete-orphan", order_by="CertificationRequest.id")
    reports: Mapped[list[StoredReport]] = relationship(back_populates="version",
                                                       cascade="all, delete-orphan",
                                                       order_by="StoredReport.id")


class Disk(Base):
    """An OS disk (``lun`` is None) or a data disk of an image version, as the manifest names
    it (file, blob URL, host caching, empty size), with its sealed SAS token."""

    __tablename__ = "disks"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_fk: Mapped[int] = mapped_column(ForeignKey("image_versions.id", ondelete="CASCADE"),
                                            index=True)
    position: Mapped[int] = mapped_column(Integer)
    lun: Mapped[int | None] = mapped_column(Integer)
    file: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    host_caching: Mapped[str | None] = mapped_column(String(16))
    empty_size: Mapped[str | None] = mapped_column(Text)
    #: The SAS token (the query after ``?``), sealed; bound to the blob URL it was given for.
    sas_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The token's fields that are not secret (``sv``, ``sr``, ``sp``, ``st``, ``se``,
    #: ``spr``), for listings.
    sas_fields: Mapped[dict[str, Any] | None]

    version: Mapped[ImageVersion] = relationship(back_populates="disks")


class CertificationRequest(Base):
    """A request to certify one image version (PUB-CERT), with the publisher's questionnaire
    answers (CRT-QUESTIONNAIRE); the job engine records its outcome."""

    __tablename__ = "certification_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_fk: Mapped[int] = mapped_column(ForeignKey("image_versions.id", ondelete="CASCADE"),
                                            index=True)
    state: Mapped[str] = mapped_column(String(16))
    questionnaire: Mapped[dict[str, Any]]
    requested_at: Mapped[datetime] = mapped_column(default=now)
    finished_at: Mapped[datetime | None]
    #: The job engine's own ID for the run, when one has taken the request.
    job_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    message: Mapped[str | None] = mapped_column(Text)

    version: Mapped[ImageVersion] = relationship(back_populates="certifications")


class StoredReport(Base):
    """A certification report (JSON or HTML), uploaded by the publisher or written by the
    service's own run, downloadable as it was stored (CRT-ARTIFACTS)."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_fk: Mapped[int] = mapped_column(ForeignKey("image_versions.id", ondelete="CASCADE"),
                                            index=True)
    request_fk: Mapped[int | None] = mapped_column(
        ForeignKey("certification_requests.id", ondelete="SET NULL"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=now)

    version: Mapped[ImageVersion] = relationship(back_populates="reports")


# The job table and the classic API's tables live in their own modules on the same Base (its
# metadata is this schema's): imported here so that whoever loads the models loads them too,
# and the migrations match all of them.
from vmimage.catalog import classic as _classic  # noqa: E402, F401
from vmimage.catalog import jobs as _jobs  # noqa: E402, F401
from vmimage.catalog import portal as _portal  # noqa: E402, F401
