"""Credentials of the service's users, in the case database next to the users they belong to.

* ``api_credentials``: one argon2id password hash per user (users signing in only through OpenID
  Connect have none).
* ``api_tokens``: API and session tokens, stored as the SHA-256 hex digest of the token (the token
  itself is shown once and never stored), with a short prefix to recognise them, an expiry, and the
  time they were revoked.

Created by the migration ``0002_api_credentials`` in the case database's migrations.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fundtrail.cases.models import User
from fundtrail.db_base import Base, UTCDateTime, utcnow


class ApiCredential(Base):
    """A user's password, as an argon2id hash."""

    __tablename__ = "api_credentials"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()


class ApiToken(Base):
    """An API token (``kind`` api) or a dashboard session (``kind`` session) of a user."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user", "user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
