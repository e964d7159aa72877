"""The guide's Create VM Image API as use cases (REG-CREATE, REG-ASYNC, REG-GENERALIZED): a
request is read and recorded at once, answered with its operation ID, and the image is
registered by a background job that reads every MediaLink (:mod:`.regrun`).

The path's subscription must be the caller's publisher's (``GET /api/v1/me`` shows it): the
classic API named the subscription in every path and refused a certificate that was not
associated with it ("ForbiddenError"). An image's name is unique in its subscription; a
registration that failed frees the name.

MediaLinks: Azure read them with the storage account's own keys. A MediaLink may carry a SAS
token in its query (``vmimage register`` adds the one of each disk); the token is sealed,
bound to the image, and never shown. Without one, the job uses the SAS URI stored for the
same blob with one of the publisher's versions, else reads the blob as it is (a public
container).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from vmimage.app.publishing import out, versions
from vmimage.app.publishing.classicxml import DiskSpec, ImageSpec, Listed, parse_vm_image
from vmimage.app.publishing.errors import Conflict, Forbidden, NotFound
from vmimage.app.publishing.starters import Starter
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.classic import FAILED, REGISTERED, REGISTERING, VmImage
from vmimage.catalog.models import Offer, Publisher, now
from vmimage.secrets import register_sas

#: The kind of job that registers an image, and its key: one job per image row.
REGISTRATION = "registration"
#: Operation states of the classic API.
IN_PROGRESS, SUCCEEDED, OPERATION_FAILED = "InProgress", "Succeeded", "Failed"

_starter: Starter[int] = Starter("VM image registration")


def set_registration_starter(start: Callable[[int], object] | None) -> None:
    """Register the job engine's entry point, called with the image row's ID (None: wait)."""
    _starter.set(start)


def registration_key(image_id: int) -> str:
    """The idempotency key of the job that registers image row ``image_id``."""
    return f"{REGISTRATION}:{image_id}"


def _context(image: VmImage) -> str:
    return f"vm-image:{image.publisher_fk}:{image.name}"


def check_subscription(store: Store, caller: Caller, subscription: str) -> None:
    """The path's subscription is the caller's.

    Raises:
        Forbidden: it is another (or no) subscription.
    """
    with store.read() as session:
        publisher = session.get(Publisher, caller.publisher_id)
        assert publisher is not None
        if publisher.subscription_id != subscription:
            raise Forbidden("the credentials are not associated with subscription "
                            f"{subscription[:40]!r}")


def create_vm_image(store: Store, caller: Caller, subscription: str, body: bytes) -> str:
    """Read and record a Create VM Image request; its operation ID (32 hex digits).

    Raises:
        Forbidden: another subscription.
        Invalid: the body is not a usable ``VMImage`` document.
        Conflict: an image of that name is registered, or being registered.
    """
    check_subscription(store, caller, subscription)
    spec = parse_vm_image(body)
    operation = uuid.uuid4().hex
    with store.write() as session:
        known = session.scalar(select(VmImage).where(VmImage.publisher_fk == caller.publisher_id,
                                                     VmImage.name == spec.name))
        if known is not None and known.state != FAILED:
            raise Conflict(f"a VM image named {spec.name!r} is {known.state} already")
        if known is not None:  # a failed registration frees its name
            session.execute(delete(VmImage).where(VmImage.id == known.id))
        row = VmImage(publisher_fk=caller.publisher_id, name=spec.name, label=spec.label,
                      os=spec.os, state=REGISTERING, operation_id=operation,
                      document=_document(spec))
        tokens = {d.media_link: d.token for d in _disks(spec) if d.token and d.media_link}
        if tokens:
            row.tokens_sealed = store.sealer.seal(json.dumps(tokens), _context(row))
        session.add(row)
        session.flush()
        image_id = row.id
    _starter.start(image_id, spec.name)
    return operation


def _disks(spec: ImageSpec) -> list[DiskSpec]:
    return [spec.os_disk, *spec.data_disks]


def _document(spec: ImageSpec) -> dict[str, Any]:
    return {"os_disk": spec.os_disk.document(),
            "data_disks": [d.document() for d in spec.data_disks], "extra": spec.extra}


@dataclass(frozen=True)
class OperationStatus:
    """Where an operation stands, as ``<Operation>`` says it."""

    operation_id: str
    status: str
    http_status: int | None = None
    error: tuple[str, str] | None = None


def operation_status(store: Store, caller: Caller, subscription: str,
                     operation: str) -> OperationStatus:
    """The status of one of the caller's operations.

    Raises:
        Forbidden: another subscription.
        NotFound: no such operation in this subscription.
    """
    check_subscription(store, caller, subscription)
    key = operation.replace("-", "").lower()
    with store.read() as session:
        row = session.scalar(select(VmImage).where(VmImage.operation_id == key,
                                                   VmImage.publisher_fk == caller.publisher_id))
        if row is None:
            raise NotFound(f"no operation {operation[:40]!r} in this subscription")
        if row.state == REGISTERED:
            return OperationStatus(key, SUCCEEDED, 200)
        if row.state == FAILED:
            return OperationStatus(key, OPERATION_FAILED, 400,
                                   (row.error_code or "InternalError",
                                    row.error_message or "the registration failed"))
        return OperationStatus(key, IN_PROGRESS)


def list_vm_images(store: Store, caller: Caller, subscription: str) -> list[Listed]:
    """The subscription's images, registered or being registered (a failed registration
    is not an image).

    Raises:
        Forbidden: another subscription.
    """
    check_subscription(store, caller, subscription)
    with store.read() as session:
        rows = session.scalars(select(VmImage).where(VmImage.publisher_fk == caller.publisher_id,
                                                     VmImage.state != FAILED)
                               .order_by(VmImage.id))
        return [Listed(r.name, r.label, r.os, "Ready" if r.state == REGISTERED else "Pending",
                       r.document, r.created_at.isoformat(),
                       (r.finished_at or r.created_at).isoformat()) for r in rows]


def pending_registrations(store: Store) -> list[int]:
    """Every image still being registered (a server restarted submits their jobs again;
    a job already known is found by its key, not made twice)."""
    with store.read() as session:
        return list(session.scalars(select(VmImage.id).where(VmImage.state == REGISTERING)))


@dataclass(frozen=True)
class DiskToRead:
    """A disk the registration reads: the URL to open (with a SAS token: a secret) and the
    MediaLink as shown."""

    lun: int | None
    media_link: str
    url: str


@dataclass(frozen=True)
class RegistrationInputs:
    """What a registration job reads."""

    image_id: int
    name: str
    os: str
    disks: tuple[DiskToRead, ...]


def _stored_sas(session: Session, store: Store, publisher_id: int, blob: str) -> str | None:
    offers = session.scalars(select(Offer).where(Offer.publisher_fk == publisher_id))
    for offer in offers:
        for sku in offer.skus:
            for version in sku.versions:
                for disk in version.disks:
                    if out.blob_of(offer, disk) == blob and disk.sas_sealed is not None:
                        return versions.sas_uri(store, offer, disk)
    return None


def registration_inputs(store: Store, image_id: int) -> RegistrationInputs | None:
    """What the job registering ``image_id`` reads (None: the row is gone or decided)."""
    with store.read() as session:
        row = session.get(VmImage, image_id)
        if row is None or row.state != REGISTERING:
            return None
        tokens: dict[str, str] = {}
        if row.tokens_sealed is not None:
            tokens = json.loads(store.sealer.open(row.tokens_sealed, _context(row)))
        disks = []
        for disk in [row.document["os_disk"], *row.document["data_disks"]]:
            link = disk.get("media_link")
            if not link:
                continue
            token = tokens.get(link)
            if token:
                register_sas(token)
                url = f"{link}?{token}"
            else:
                url = _stored_sas(session, store, row.publisher_fk, link) or link
            disks.append(DiskToRead(disk.get("lun"), link, url))
        return RegistrationInputs(row.id, row.name, row.os, tuple(disks))


def apply_registration_outcome(session: Session, image_id: int, sizes: dict[str, int],
                               error: tuple[str, str] | None) -> bool:
    """Record a registration's end in the caller's transaction (the job's end): registered
    with each disk's size in GB, or failed with the error. False when the row is gone or
    decided already (nothing is written)."""
    row = session.get(VmImage, image_id, with_for_update=True)
    if row is None or row.state != REGISTERING:
        return False
    row.finished_at = now()
    if error is not None:
        row.state, (row.error_code, row.error_message) = FAILED, error
        return True
    document = dict(row.document)
    disks = [dict(document["os_disk"]), *(dict(d) for d in document["data_disks"])]
    for disk in disks:
        if disk.get("media_link") in sizes:
            disk["size_gb"] = sizes[disk["media_link"]]
    document["os_disk"], document["data_disks"] = disks[0], disks[1:]
    row.document, row.state = document, REGISTERED
    return True


def forget_vm_image(store: Store, caller: Caller, subscription: str, name: str) -> None:
    """Delete an image record (never its blobs).

    Raises:
        Forbidden: another subscription.
        NotFound: no such image.
        Conflict: it is being registered.
    """
    check_subscription(store, caller, subscription)
    with store.write() as session:
        row = session.scalar(select(VmImage).where(VmImage.publisher_fk == caller.publisher_id,
                                                   VmImage.name == name))
        if row is None or row.state == FAILED:
            raise NotFound(f"no VM image {name[:100]!r}")
        if row.state == REGISTERING:
            raise Conflict(f"VM image {name!r} is being registered: wait for its operation")
        session.delete(row)
