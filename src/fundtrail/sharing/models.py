"""Tables of the cooperation layer, in the case database next to the cases they serve.

* ``sharing_agreements``: one row per agreement with a partner agency (the pseudonymisation key is
  not here: it is a file under ``HOME/keys/agreements/``).
* ``shared_packages``: every package sent or received, with its terms; received packages carry their
  provenance (partner, package id, received at) and the date they must be deleted.
* ``shared_objects``: what a received package holds (wallets, transactions, indicators, entities,
  tags, evidence), searchable by chain and value, deleted with its package.
* ``partner_requests``: legal requests received from partners (the inbox), with their deadline,
  state and answer.
* ``outbound_requests``: this agency's legal requests sent to a partner's FundTrail (the partner and
  its inbox number, when it acknowledged and answered).

Created by the migrations ``0003_sharing`` and ``0004_outbound_requests`` of the case database.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fundtrail.db_base import Base, UTCDateTime, utcnow


class SharingAgreement(Base):
    """A sharing agreement with one partner agency."""

    __tablename__ = "sharing_agreements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    partner_name: Mapped[str] = mapped_column(String(200))
    partner_country: Mapped[str] = mapped_column(String(2))
    partner_key_id: Mapped[str] = mapped_column(String(16), index=True)
    partner_public_key: Mapped[str] = mapped_column(String(100))
    partner_endpoint: Mapped[str | None] = mapped_column(String(300))
    legal_basis: Mapped[str] = mapped_column(Text)
    categories: Mapped[str] = mapped_column(String(300))
    tlp: Mapped[str] = mapped_column(String(20))
    pap: Mapped[str] = mapped_column(String(20))
    pseudonymise: Mapped[bool] = mapped_column(Boolean)
    retention_days: Mapped[int] = mapped_column(Integer)
    onward_sharing: Mapped[bool] = mapped_column(Boolean)
    valid_until: Mapped[date | None] = mapped_column(Date)
    deadlines: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SharedPackage(Base):
    """A package sent to or received from a partner, with its terms and provenance."""

    __tablename__ = "shared_packages"
    __table_args__ = (
        UniqueConstraint("package_id", "direction", name="uq_shared_packages_package_direction"),
        Index("ix_shared_packages_retain", "direction", "deleted_at", "retain_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(10))
    agreement_id: Mapped[int] = mapped_column(ForeignKey("sharing_agreements.id"))
    format: Mapped[str] = mapped_column(String(10))
    transport: Mapped[str] = mapped_column(String(20))
    case_number: Mapped[str | None] = mapped_column(String(32))
    sender_key_id: Mapped[str] = mapped_column(String(16))
    recipient_key_id: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    tlp: Mapped[str] = mapped_column(String(20))
    pap: Mapped[str] = mapped_column(String(20))
    categories: Mapped[str] = mapped_column(String(300))
    retention_days: Mapped[int] = mapped_column(Integer)
    onward_sharing: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retain_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stored_path: Mapped[str | None] = mapped_column(String(300))
    tag_uri: Mapped[str | None] = mapped_column(String(300))
    summary: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))

    agreement: Mapped[SharingAgreement] = relationship()
    objects: Mapped[list[SharedObject]] = relationship(
        back_populates="package", cascade="all, delete-orphan", passive_deletes=True
    )


class SharedObject(Base):
    """One item of a received package: a wallet, transaction, indicator, entity, tag or evidence bag."""

    __tablename__ = "shared_objects"
    __table_args__ = (Index("ix_shared_objects_lookup", "kind", "chain", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("shared_packages.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    ref: Mapped[str | None] = mapped_column(String(200))
    chain: Mapped[str | None] = mapped_column(String(20))
    value: Mapped[str | None] = mapped_column(String(300))
    label: Mapped[str | None] = mapped_column(String(300))
    content: Mapped[str] = mapped_column(Text)

    package: Mapped[SharedPackage] = relationship(back_populates="objects")


class PartnerRequest(Base):
    """A legal request received from a partner agency: the inbox."""

    __tablename__ = "partner_requests"
    __table_args__ = (UniqueConstraint("agreement_id", "remote_number", name="uq_partner_requests_remote"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("sharing_agreements.id"))
    remote_number: Mapped[str] = mapped_column(String(40))
    remote_case: Mapped[str | None] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    requesting_agency: Mapped[str] = mapped_column(String(300))
    requesting_contact: Mapped[str | None] = mapped_column(Text)
    subject_matter: Mapped[str] = mapped_column(Text)
    facts: Mapped[str] = mapped_column(Text)
    measures: Mapped[str] = mapped_column(Text)
    subjects: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answer_due: Mapped[date | None] = mapped_column(Date)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answer: Mapped[str | None] = mapped_column(Text)
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}

    agreement: Mapped[SharingAgreement] = relationship()


class OutboundRequest(Base):
    """A legal request of this agency sent to a partner's FundTrail: where it went, what came back."""

    __tablename__ = "outbound_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("legal_requests.id", ondelete="CASCADE"), unique=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("sharing_agreements.id"))
    remote_number: Mapped[str | None] = mapped_column(String(40))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answer: Mapped[str | None] = mapped_column(Text)

    agreement: Mapped[SharingAgreement] = relationship()
