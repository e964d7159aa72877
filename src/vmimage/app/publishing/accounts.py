"""The portal's people and sessions (issue 15): sign in with an e-mail address and a
password, get a session cookie whose forms carry a CSRF token.

- Passwords: scrypt (N=2^14, r=8, p=1, 16-byte salt), compared in constant time; a sign-in
  with an unknown address costs the same hash, so timing does not tell which addresses exist.
- Sessions: 256 random bits in an HttpOnly cookie; the service keeps their SHA-256, the CSRF
  token (another 256 bits) and the expiry (12 hours, not extended: sign in again).
- Accounts are made on the server's machine (`vmimage serve user create --publisher NS
  --email E --password-env VAR`), as a publisher's first API token is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select

from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.models import Publisher, now
from vmimage.catalog.portal import EMAIL_LENGTH, PortalSession, PortalUser
from vmimage.errors import InputError

SESSION_HOURS = 12
MIN_PASSWORD = 12
_N, _R, _P = 2**14, 8, 1
#: What an unknown address is checked against, so that it costs a real hash.
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()])


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (constant time)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        made = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                              r=int(r), p=int(p), dklen=32)
        return hmac.compare_digest(made, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def _email(value: str) -> str:
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > EMAIL_LENGTH or \
            any(c.isspace() for c in email):
        raise InputError("--email", f"{value[:80]!r} is not an e-mail address")
    return email


def create_user(store: Store, namespace: str, email: str, password: str) -> str:
    """An account for ``namespace`` (the administrator's command); its address.

    Raises:
        InputError: no such publisher, an address that is not one or is taken, a password
            shorter than 12 characters.
    """
    address = _email(email)
    if len(password) < MIN_PASSWORD:
        raise InputError("--password-env", f"the password has fewer than {MIN_PASSWORD} "
                                           "characters")
    with store.write() as session:
        publisher = session.scalar(select(Publisher).where(Publisher.namespace == namespace))
        if publisher is None:
            raise InputError("--publisher", f"no publisher {namespace!r} (vmimage serve token "
                                            "create --publisher NS makes one)")
        if session.scalar(select(PortalUser.id).where(PortalUser.email == address)):
            raise InputError("--email", f"{address} has an account already")
        session.add(PortalUser(publisher_fk=publisher.id, email=address,
                               password_hash=hash_password(password)))
    return address


@dataclass(frozen=True)
class SignedIn:
    """A new session: the cookie's value (shown to the browser only) and its CSRF token."""

    token: str
    csrf: str


@dataclass(frozen=True)
class Visitor:
    """Who a session belongs to: the caller the use cases take, the address, the CSRF token
    the session's forms must carry."""

    caller: Caller
    email: str
    csrf: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in(store: Store, email: str, password: str) -> SignedIn | None:
    """A session for the account, or None (unknown address, wrong password, disabled)."""
    address = email.strip().lower()[:EMAIL_LENGTH]
    with store.read() as session:
        user = session.scalar(select(PortalUser).where(PortalUser.email == address))
        stored = user.password_hash if user is not None else _DUMMY
        user_id = user.id if user is not None and user.disabled_at is None else None
    if not verify_password(password, stored) or user_id is None:
        return None
    made = SignedIn(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    with store.write() as session:
        session.execute(delete(PortalSession).where(PortalSession.expires_at < now()))
        session.add(PortalSession(user_fk=user_id, token_sha256=_digest(made.token),
                                  csrf=made.csrf,
                                  expires_at=now() + timedelta(hours=SESSION_HOURS)))
    return made


def visitor(store: Store, token: str | None) -> Visitor | None:
    """The session's visitor; None for no cookie, an unknown or expired session, a disabled
    account."""
    if not token or len(token) > 200:
        return None
    with store.read() as session:
        row = session.scalar(select(PortalSession)
                             .where(PortalSession.token_sha256 == _digest(token)))
        if row is None or row.expires_at < now():
            return None
        user = session.get(PortalUser, row.user_fk)
        if user is None or user.disabled_at is not None:
            return None
        publisher = session.get(Publisher, user.publisher_fk)
        assert publisher is not None
        return Visitor(Caller(publisher.id, publisher.namespace, None), user.email, row.csrf)


def sign_out(store: Store, token: str | None) -> None:
    """End the session (nothing happens for an unknown one)."""
    if token:
        with store.write() as session:
            session.execute(delete(PortalSession)
                            .where(PortalSession.token_sha256 == _digest(token)))


def csrf_ok(visitor: Visitor, sent: str | None) -> bool:
    """Whether a form carries its session's CSRF token."""
    return bool(sent) and hmac.compare_digest(visitor.csrf, str(sent))
