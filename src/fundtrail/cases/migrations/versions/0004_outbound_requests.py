"""Cooperation: legal requests sent to a partner's FundTrail (partner, inbox number, acknowledgement, answer).

Revision ID: 0004_outbound_requests
Revises: 0003_sharing
Create Date: 2026-11-23

Additive: one new table, linked to ``legal_requests`` and ``sharing_agreements``; nothing existing
changes. Written by the cooperation layer (``fundtrail.sharing.models``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_outbound_requests"
down_revision: str | Sequence[str] | None = "0003_sharing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``outbound_requests``."""
    op.create_table(
        "outbound_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("remote_number", sa.String(length=40), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["legal_requests.id"],
            name=op.f("fk_outbound_requests_request_id_legal_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["sharing_agreements.id"],
            name=op.f("fk_outbound_requests_agreement_id_sharing_agreements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_requests")),
        sa.UniqueConstraint("request_id", name=op.f("uq_outbound_requests_request_id")),
    )


def downgrade() -> None:
    """Drop ``outbound_requests``."""
    op.drop_table("outbound_requests")
