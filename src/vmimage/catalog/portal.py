"""The web portal's tables (issue 15): a publisher's people, who sign in with an e-mail
address and a password, and their browser sessions.

A password is kept as its scrypt hash only; a session as the SHA-256 of its cookie, with
the CSRF token its forms carry and its expiry. Deleting a publisher deletes both.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from vmimage.catalog.models import Base, now

EMAIL_LENGTH = 254


class PortalUser(Base):
    """A person who signs in to the portal for one publisher."""

    __tablename__ = "portal_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    publisher_fk: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"),
                                              index=True)
    #: Lower-cased: one account per address.
    email: Mapped[str] = mapped_column(String(EMAIL_LENGTH), unique=True)
    #: ``scrypt$N$r$p$salt$hash`` (base64): never the password.
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=now)
    disabled_at: Mapped[datetime | None]


class PortalSession(Base):
    """A signed-in browser: the SHA-256 of its cookie, its CSRF token, its expiry."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_fk: Mapped[int] = mapped_column(ForeignKey("portal_users.id", ondelete="CASCADE"),
                                         index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime]
