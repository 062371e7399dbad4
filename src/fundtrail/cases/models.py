"""The case database: SQLAlchemy 2 models (SQLite embedded, PostgreSQL in production).

Created and changed only by the Alembic migrations in ``fundtrail/cases/migrations``; never by
``create_all``. Amounts are exact integers stored as decimal text (:class:`Amount`), because SQLite
has no exact type wider than 64 bits and wei amounts do not fit in one. Times are UTC
(:class:`UTCDateTime`); both types and the declarative :class:`Base` are in
:mod:`fundtrail.db_base`, shared with the other layers' tables (the audit tables, signing keys among
them, are in :mod:`fundtrail.audit.models`). A case carries a ``version`` column: concurrent edits of
one case fail with a ConflictError instead of overwriting each other (optimistic locking).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fundtrail.audit.models import SigningKey
from fundtrail.db_base import Amount, Base, UTCDateTime, utcnow
from fundtrail.errors import InputError


class Agency(Base):
    """The agency this instance serves (one row): the requesting authority on letters."""

    __tablename__ = "agency"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    jurisdiction: Mapped[str] = mapped_column(String(2))
    address: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(60))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    """A person who works with the case database; their role decides what they may do."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    unit: Mapped[str] = mapped_column(String(200))
    jurisdiction: Mapped[str] = mapped_column(String(2))
    email: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseCounter(Base):
    """The last sequence number given per jurisdiction and year."""

    __tablename__ = "case_counters"

    jurisdiction: Mapped[str] = mapped_column(String(2), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class Case(Base):
    """A case: its number, status, lead agency, people, subjects, evidence, requests and ledger."""

    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("jurisdiction", "year", "sequence", name="uq_cases_number_parts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    jurisdiction: Mapped[str] = mapped_column(String(2))
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(20))
    lead_agency: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(200))
    offence: Mapped[str | None] = mapped_column(String(300))
    summary: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    hold_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    hold_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}

    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    assignments: Mapped[list[Assignment]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="Assignment.id"
    )
    tasks: Mapped[list[Task]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="Task.id"
    )
    subjects: Mapped[list[Subject]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="Subject.id"
    )


class Assignment(Base):
    """A user assigned to a case (``lead`` or ``member``)."""

    __tablename__ = "case_assignments"
    __table_args__ = (UniqueConstraint("case_id", "user_id", name="uq_case_assignments_case_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(20))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assigned_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    case: Mapped[Case] = relationship(back_populates="assignments")
    user: Mapped[User] = relationship(foreign_keys=[user_id])


class Task(Base):
    """Something to do on a case, with a due date."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(300))
    due_date: Mapped[date | None] = mapped_column(Date)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    case: Mapped[Case] = relationship(back_populates="tasks")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])


class Subject(Base):
    """An address, transaction, person, company or exchange account of a case, with what found it."""

    __tablename__ = "subjects"
    __table_args__ = (Index("ix_subjects_lookup", "kind", "chain", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    chain: Mapped[str | None] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(300))
    label: Mapped[str | None] = mapped_column(String(300))
    role: Mapped[str | None] = mapped_column(String(40))
    asset: Mapped[str | None] = mapped_column(String(100))
    amount: Mapped[int | None] = mapped_column(Amount)
    details: Mapped[str | None] = mapped_column(Text)
    evidence_id: Mapped[str | None] = mapped_column(ForeignKey("evidence_items.id"))
    source: Mapped[str | None] = mapped_column(String(300))
    added_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="subjects")


class EvidenceItem(Base):
    """A preserved, signed BagIt package. Immutable: a change is a new version (``supersedes``)."""

    __tablename__ = "evidence_items"
    __table_args__ = (UniqueConstraint("case_id", "item", "version", name="uq_evidence_items_item_version"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    item: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    supersedes_id: Mapped[str | None] = mapped_column(ForeignKey("evidence_items.id"))
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    chain: Mapped[str | None] = mapped_column(String(20))
    bag_path: Mapped[str] = mapped_column(String(300))
    manifest: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    tagmanifest_sha256: Mapped[str] = mapped_column(String(64))
    trace_sha256: Mapped[str | None] = mapped_column(String(64))
    parameters: Mapped[str | None] = mapped_column(Text)
    software_version: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(ForeignKey("signing_keys.key_id"))
    signature: Mapped[str] = mapped_column(String(200))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case: Mapped[Case] = relationship()
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    key: Mapped[SigningKey] = relationship()
    custody: Mapped[list[CustodyEvent]] = relationship(
        back_populates="evidence", cascade="all, delete-orphan", order_by="CustodyEvent.id"
    )


class CustodyEvent(Base):
    """Who did what to an evidence item, when and why."""

    __tablename__ = "custody_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence_items.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)

    evidence: Mapped[EvidenceItem] = relationship(back_populates="custody")
    actor: Mapped[User] = relationship()


class LegalRequest(Base):
    """A preservation, freeze, disclosure or MLA request and where it stands."""

    __tablename__ = "legal_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    instrument: Mapped[str] = mapped_column(String(64))
    agreement: Mapped[str | None] = mapped_column(String(100))
    recipient: Mapped[str] = mapped_column(String(300))
    recipient_jurisdiction: Mapped[str | None] = mapped_column(String(2))
    recipient_contact: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(10))
    subject_matter: Mapped[str] = mapped_column(Text)
    facts: Mapped[str] = mapped_column(Text)
    measures: Mapped[str] = mapped_column(Text)
    evidence_id: Mapped[str | None] = mapped_column(ForeignKey("evidence_items.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answer_due: Mapped[date | None] = mapped_column(Date)
    hold_until: Mapped[date | None] = mapped_column(Date)
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}

    case: Mapped[Case] = relationship()
    author: Mapped[User] = relationship(foreign_keys=[author_id])
    approved_by: Mapped[User | None] = relationship(foreign_keys=[approved_by_id])
    evidence: Mapped[EvidenceItem | None] = relationship()
    subjects: Mapped[list[Subject]] = relationship(secondary="request_subjects", order_by="Subject.id")
    transitions: Mapped[list[RequestTransition]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="RequestTransition.id"
    )


class RequestSubject(Base):
    """The subjects (assets, accounts) a request is about."""

    __tablename__ = "request_subjects"

    request_id: Mapped[int] = mapped_column(
        ForeignKey("legal_requests.id", ondelete="CASCADE"), primary_key=True
    )
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True)


class RequestTransition(Base):
    """One step of a request's state machine: from, to, who, when, why."""

    __tablename__ = "request_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("legal_requests.id", ondelete="CASCADE"))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)

    request: Mapped[LegalRequest] = relationship(back_populates="transitions")
    actor: Mapped[User] = relationship()


class LedgerEntry(Base):
    """An amount frozen, seized, forfeited or returned, with the request or court order behind it."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    chain: Mapped[str] = mapped_column(String(20))
    asset: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(Amount)
    jurisdiction: Mapped[str] = mapped_column(String(2))
    holder: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("legal_requests.id"))
    court_order: Mapped[str | None] = mapped_column(String(300))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case: Mapped[Case] = relationship()
    request: Mapped[LegalRequest | None] = relationship()


@event.listens_for(EvidenceItem, "before_update")
def _evidence_is_immutable(mapper: Any, connection: Any, target: EvidenceItem) -> None:
    raise InputError(f"evidence {target.id} is immutable; record a change as a new version")
