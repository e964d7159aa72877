"""Management certificates: the client certificates that authenticate the classic Create VM
Image API, as the guide's were (REG-CREATE: "client-certificate auth").

A publisher uploads the public certificate (``POST /api/v1/certificates`` with its token, or
``vmimage serve certificate add`` on the server's machine), as Azure's portal took a ``.cer``
file; the service keeps it and its fingerprints. The TLS layer trusts exactly the registered
certificates (each one is its own trust anchor, self-signed or not), so a client presenting
any other certificate fails the handshake; one that passes is mapped to its publisher by the
SHA-256 of the certificate it presented. A private key is refused: it never leaves the
publisher's machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from sqlalchemy import select
from sqlalchemy.orm import Session

from vmimage.app.publishing.documents import CertificateOut
from vmimage.app.publishing.errors import Conflict, Invalid, NotFound
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.classic import ManagementCertificate
from vmimage.catalog.models import Publisher
from vmimage.errors import InputError

#: Called after a certificate is registered in this process: the TLS layer trusts it at once
#: (:class:`vmimage.app.publishing.tlsserver.TrustRefresher`; other processes within seconds).
ADDED_HOOKS: list[Callable[[], object]] = []
#: A certificate file larger than this is not one certificate.
MAX_CERTIFICATE = 64 * 1024
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class Parsed:
    """A certificate as the service keeps it."""

    pem: str
    sha256: str
    thumbprint: str
    subject: str
    not_after_iso: str


def parse_certificate(data: bytes) -> Parsed:
    """One X.509 certificate, PEM or DER (a ``.cer`` file).

    Raises:
        Invalid: a private key, no certificate, more than one, or not a certificate at all.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if len(data) > MAX_CERTIFICATE:
        raise Invalid(f"a certificate is at most {MAX_CERTIFICATE // 1024} KiB")
    if b"PRIVATE KEY-----" in data:
        raise Invalid("this holds a private key: send the certificate only (the key stays "
                      "on your machine)")
    try:
        if data.lstrip().startswith(b"-----"):
            if data.count(_PEM_BEGIN) != 1:
                raise Invalid("send exactly one certificate (one BEGIN CERTIFICATE block)")
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
    except ValueError:
        raise Invalid("not an X.509 certificate (PEM or DER)") from None
    der = cert.public_bytes(Encoding.DER)
    return Parsed(pem=cert.public_bytes(Encoding.PEM).decode("ascii"),
                  sha256=hashlib.sha256(der).hexdigest(),
                  thumbprint=hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
                  subject=cert.subject.rfc4514_string()[:1000],
                  not_after_iso=cert.not_valid_after_utc.astimezone(UTC).isoformat())


def _out(session: Session, row: ManagementCertificate) -> CertificateOut:
    publisher = session.get(Publisher, row.publisher_fk)
    assert publisher is not None
    return CertificateOut(id=row.id, sha256=row.sha256, thumbprint=row.thumbprint,
                          subject=row.subject, not_after=row.not_after, created=row.created_at,
                          subscription=publisher.subscription_id or "")


def _add(store: Store, publisher_id: int, data: bytes) -> CertificateOut:
    from datetime import datetime

    parsed = parse_certificate(data)
    with store.write() as session:
        if session.scalar(select(ManagementCertificate.id).where(
                ManagementCertificate.sha256 == parsed.sha256)) is not None:
            raise Conflict("this certificate is registered already")
        row = ManagementCertificate(publisher_fk=publisher_id, sha256=parsed.sha256,
                                    thumbprint=parsed.thumbprint, subject=parsed.subject,
                                    not_after=datetime.fromisoformat(parsed.not_after_iso),
                                    pem=parsed.pem)
        session.add(row)
        session.flush()
        made = _out(session, row)
    for hook in ADDED_HOOKS:
        hook()
    return made


def certificate_bytes(text: str) -> bytes:
    """A certificate as sent in JSON: PEM text, or base64 DER.

    Raises:
        Invalid: neither.
    """
    import base64
    import binascii

    if text.lstrip().startswith("-----"):
        return text.encode("utf-8", "replace")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("certificate: give PEM text or base64 DER") from None


def add_certificate(store: Store, caller: Caller, text: str) -> CertificateOut:
    """Register a management certificate (PEM, or base64 DER) for the caller's publisher.

    Raises:
        Invalid: not one certificate, or a private key.
        Conflict: the certificate is registered already (to this publisher or another).
    """
    return _add(store, caller.publisher_id, certificate_bytes(text))


def add_publisher_certificate(store: Store, namespace: str, data: bytes) -> CertificateOut:
    """The server administrator's command: register a certificate for ``namespace``.

    Raises:
        InputError: no such publisher (make one with ``vmimage serve token create``).
        Invalid, Conflict: as :func:`add_certificate`.
    """
    with store.read() as session:
        publisher_id = session.scalar(select(Publisher.id)
                                      .where(Publisher.namespace == namespace))
    if publisher_id is None:
        raise InputError("--publisher", f"no publisher {namespace!r} (vmimage serve token "
                                        "create --publisher NS makes one)")
    return _add(store, publisher_id, data)


def list_certificates(store: Store, caller: Caller) -> list[CertificateOut]:
    """The publisher's management certificates."""
    with store.read() as session:
        rows = session.scalars(select(ManagementCertificate)
                               .where(ManagementCertificate.publisher_fk == caller.publisher_id)
                               .order_by(ManagementCertificate.id))
        return [_out(session, r) for r in rows]


def delete_certificate(store: Store, caller: Caller, certificate_id: int) -> None:
    """Forget a certificate: requests with it are refused from the next connection on.

    Raises:
        NotFound: no such certificate of this publisher.
    """
    with store.write() as session:
        row = session.get(ManagementCertificate, certificate_id)
        if row is None or row.publisher_fk != caller.publisher_id:
            raise NotFound(f"no certificate {certificate_id}")
        session.delete(row)


def authenticate_certificate(store: Store, der: bytes) -> Caller | None:
    """The publisher of the client certificate a TLS peer presented (None: not registered,
    or deleted since the handshake)."""
    digest = hashlib.sha256(der).hexdigest()
    with store.read() as session:
        row = session.scalar(select(ManagementCertificate)
                             .where(ManagementCertificate.sha256 == digest))
        if row is None:
            return None
        publisher = session.get(Publisher, row.publisher_fk)
        assert publisher is not None
        return Caller(publisher.id, publisher.namespace, None, digest)


def trusted_certificates(store: Store) -> list[str]:
    """Every registered certificate, PEM: what the TLS layer trusts."""
    with store.read() as session:
        return list(session.scalars(select(ManagementCertificate.pem)
                                    .order_by(ManagementCertificate.id)))
