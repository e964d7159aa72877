"""Publishers and their API tokens.

A token is ``vmi_`` and 43 random URL-safe characters (256 bits); the service keeps its SHA-256
only, so a copy of the database lets no one in, and shows the token once, when it is made.
The first token of a publisher is made on the server's machine (``vmimage serve token create
--publisher NS``, which also makes the publisher); with it, the publisher makes and revokes
its own (``/api/v1/tokens``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from vmimage.app.publishing.documents import Me, TokenIssued, TokenOut
from vmimage.app.publishing.errors import Conflict, NotFound
from vmimage.app.publishing.store import Store
from vmimage.catalog.models import ApiToken, Publisher, now
from vmimage.errors import InputError
from vmimage.offer import ids

PREFIX = "vmi_"
#: How much of a token listings show: the prefix and 4 random characters.
SHOWN = len(PREFIX) + 4
#: A token longer than this is not one of ours; it is refused before it is hashed.
MAX_TOKEN = 200


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: the publisher of its API token, or of its management
    certificate (the classic API's client certificate: then ``token_id`` is None)."""

    publisher_id: int
    namespace: str
    token_id: int | None
    #: The SHA-256 of the client certificate, when that authenticated the request.
    certificate: str | None = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _out(row: ApiToken) -> TokenOut:
    return TokenOut(id=row.id, label=row.label, prefix=row.prefix, created=row.created_at,
                    revoked=row.revoked_at is not None)


def _issue(publisher: Publisher, label: str) -> tuple[ApiToken, str]:
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(publisher=publisher, token_sha256=_digest(token), prefix=token[:SHOWN],
                   label=label)
    return row, token


def create_publisher_token(store: Store, namespace: str, label: str = "") -> TokenIssued:
    """A new token for ``namespace``, the publisher made first if it is new (the server
    administrator's command).

    Raises:
        InputError: the namespace breaks the publisher ID rule (OFFER-PUBLISHER-ID).
    """
    problems = ids.external_id_problems(namespace, "the publisher namespace")
    if problems:
        raise InputError("--publisher", "; ".join(problems))
    with store.write() as session:
        publisher = session.scalar(select(Publisher).where(Publisher.namespace == namespace))
        if publisher is None:
            publisher = Publisher(namespace=namespace)
            session.add(publisher)
        row, token = _issue(publisher, label)
        session.add(row)
        session.flush()
        return TokenIssued(token=token, **_out(row).model_dump())


def authenticate(store: Store, token: str) -> Caller | None:
    """The caller a token belongs to; None for an unknown, malformed or revoked token."""
    if not token.startswith(PREFIX) or len(token) > MAX_TOKEN:
        return None
    with store.read() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _digest(token)))
        if row is None or row.revoked_at is not None:
            return None
        return Caller(row.publisher_fk, row.publisher.namespace, row.id)


def me(store: Store, caller: Caller) -> Me:
    """The caller's publisher, its subscription ID (the classic API's) and the token."""
    with store.read() as session:
        row = session.get(ApiToken, caller.token_id)
        assert row is not None
        return Me(publisher=caller.namespace, subscription=row.publisher.subscription_id or "",
                  token=_out(row))


def list_tokens(store: Store, caller: Caller) -> list[TokenOut]:
    """The publisher's tokens, revoked ones included (never the tokens themselves)."""
    with store.read() as session:
        rows = session.scalars(select(ApiToken).where(ApiToken.publisher_fk == caller.publisher_id)
                               .order_by(ApiToken.id))
        return [_out(r) for r in rows]


def create_token(store: Store, caller: Caller, label: str) -> TokenIssued:
    """Another token for the caller's publisher (shown once)."""
    with store.write() as session:
        publisher = session.get(Publisher, caller.publisher_id)
        assert publisher is not None
        row, token = _issue(publisher, label)
        session.add(row)
        session.flush()
        return TokenIssued(token=token, **_out(row).model_dump())


def revoke_token(store: Store, caller: Caller, token_id: int) -> TokenOut:
    """Revoke one of the publisher's tokens (the one in use too: the next request is 401).

    Raises:
        NotFound: no such token of this publisher.
        Conflict: it is revoked already.
    """
    with store.write() as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.publisher_fk != caller.publisher_id:
            raise NotFound(f"no token {token_id}")
        if row.revoked_at is not None:
            raise Conflict(f"token {token_id} is revoked already")
        row.revoked_at = now()
        return _out(row)

