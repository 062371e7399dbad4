"""Tables of the watch layer, in the case database next to the cases they serve.

* ``watches``: one row per watch (what to follow, for which case, by whom); a watch shared by a
  partner agency names the agreement it came under and the partner's own reference.
* ``watch_points``: the addresses and outputs (``txid:n``) a watch follows. ``origin`` is ``target``
  for what the investigator named and ``reached`` for where the funds went since (the frontier of the
  last trace): a new block spending any point re-evaluates the watch, and only that watch.
* ``watch_alerts``: the alerts, each raised once (``key`` is unique), with the freeze request drafted for
  it and when it was delivered (webhook, email, the partner that shared the watch).
* ``watch_cursors``: how far ``watch run`` got, per source and chain (last evaluated block and its hash),
  written in the same transaction as the alerts of those blocks: a restart neither loses nor repeats one.

Created by the migration ``0006_watch`` of the case database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fundtrail.cases.models import Case, LegalRequest
from fundtrail.db_base import Amount, Base, UTCDateTime, utcnow


class Watch(Base):
    """A watch list entry: the funds of some addresses or outputs, followed for a case."""

    __tablename__ = "watches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain: Mapped[str] = mapped_column(String(20))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), index=True)
    label: Mapped[str | None] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(20))  # addresses, trace, evidence, cluster, partner
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    evaluated: Mapped[bool] = mapped_column(Boolean, default=False)
    """False until the first evaluation (a full trace); afterwards only new blocks re-evaluate it."""
    agreement: Mapped[str | None] = mapped_column(String(100))
    """Received watches: our agreement with the partner that shared it. Sent watches: the agreement used."""
    remote_ref: Mapped[str | None] = mapped_column(String(100))
    """Received watches: the partner's watch id; sent watches: the partner's id for our shared watch."""
    case_ref: Mapped[str | None] = mapped_column(String(100))
    """Received watches: the partner's pseudonymised case reference."""
    marking: Mapped[str | None] = mapped_column(String(40))

    case: Mapped[Case | None] = relationship()
    points: Mapped[list[WatchPoint]] = relationship(
        back_populates="watch", cascade="all, delete-orphan", order_by="WatchPoint.id"
    )


class WatchPoint(Base):
    """An address or an output a watch follows."""

    __tablename__ = "watch_points"
    __table_args__ = (
        UniqueConstraint("watch_id", "address", "txid", "n", name="uq_watch_points_point"),
        Index("ix_watch_points_chain_address", "chain", "address"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watches.id", ondelete="CASCADE"))
    chain: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(120), default="")
    txid: Mapped[str] = mapped_column(String(80), default="")
    n: Mapped[int] = mapped_column(Integer, default=-1)
    origin: Mapped[str] = mapped_column(String(10), default="target")  # target or reached

    watch: Mapped[Watch] = relationship(back_populates="points")


class WatchAlert(Base):
    """An alert: watched funds moved, reached a service, a sanctioned address, a mixer or a bridge."""

    __tablename__ = "watch_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watches.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    chain: Mapped[str] = mapped_column(String(20))
    txid: Mapped[str | None] = mapped_column(String(80))
    address: Mapped[str | None] = mapped_column(String(120))
    entity: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(60))
    jurisdiction: Mapped[str | None] = mapped_column(String(2))
    value: Mapped[int | None] = mapped_column(Amount)
    height: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("legal_requests.id", ondelete="SET NULL"))
    details: Mapped[str | None] = mapped_column(Text)
    webhook_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    partner_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    watch: Mapped[Watch] = relationship()
    request: Mapped[LegalRequest | None] = relationship()


class WatchCursor(Base):
    """How far ``watch run`` got for one source and chain."""

    __tablename__ = "watch_cursors"
    __table_args__ = (UniqueConstraint("source", "chain", name="uq_watch_cursors_source_chain"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(500))
    chain: Mapped[str] = mapped_column(String(20))
    height: Mapped[int] = mapped_column(Integer)
    block_hash: Mapped[str | None] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
