"""The audit layer's tables in the case database: records, the log's head, signed tree heads, partners'
cosignatures, the heads we witnessed, and the agency's signing keys (for reference only).

They live on the case database's shared :class:`fundtrail.db_base.Base` and are created by its
migrations; the audit layer never imports the case layer for them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from fundtrail.db_base import Base, UTCDateTime, utcnow
from fundtrail.errors import InputError


class SigningKey(Base):
    """A public key the agency has signed with (evidence, audit tree heads), by key id: for reference only."""

    __tablename__ = "signing_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(20))
    public_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditRecord(Base):
    """One record of the append-only audit log, hash-chained to the one before (see fundtrail.audit)."""

    __tablename__ = "audit_records"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(100))
    case_number: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The log's current state (one row): appends lock it, so that concurrent appends are serialised.

    ``frontier`` holds the roots of the tree's perfect subtrees (derived data: every signed head and
    ``fundtrail audit verify`` recompute it from the records). ``signed_seq`` is the size of the newest
    signed tree head; -1 marks records written before the log had signed heads, to be covered by the
    first head.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    signed_seq: Mapped[int] = mapped_column(Integer)
    frontier: Mapped[str] = mapped_column(Text, default="")


class AuditTreeHead(Base):
    """A signed tree head: the agency key's Ed25519 signature over (size, root, time, key id)."""

    __tablename__ = "audit_tree_heads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_size: Mapped[int] = mapped_column(Integer, index=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))


class _CosignedHead:
    """A signed tree head and a witness's countersignature of it (columns shared by two tables)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_size: Mapped[int] = mapped_column(Integer)
    root_hash: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))
    cosignature: Mapped[str] = mapped_column(String(200))
    witnessed_at: Mapped[str] = mapped_column(String(40))


class AuditCosignature(_CosignedHead, Base):
    """A partner's countersignature of one of this agency's signed tree heads (the partner witnessed it)."""

    __tablename__ = "audit_cosignatures"

    witness: Mapped[str] = mapped_column(String(100))
    witness_key_id: Mapped[str] = mapped_column(String(64))


class WitnessedHead(_CosignedHead, Base):
    """A partner's signed tree head that this agency countersigned (what it will hold the partner to)."""

    __tablename__ = "audit_witnessed_heads"

    partner: Mapped[str] = mapped_column(String(100), index=True)


@event.listens_for(AuditRecord, "before_update")
def _audit_is_append_only(mapper: Any, connection: Any, target: AuditRecord) -> None:
    raise InputError(f"audit record {target.seq} is append-only")
