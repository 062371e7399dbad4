"""Watch lists and alerts: watches, their points, alerts (each raised once) and the watcher's cursors.

Revision ID: 0006_watch
Revises: 0005_audit_transparency_log
Create Date: 2026-12-20

Additive: four new tables, linked to ``cases`` and ``legal_requests``; nothing existing changes.
Written by the watch layer (``fundtrail.watch.models``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_watch"
down_revision: str | Sequence[str] | None = "0005_audit_transparency_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``watches``, ``watch_points``, ``watch_alerts`` and ``watch_cursors``."""
    op.create_table(
        "watches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=20), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=300), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("evaluated", sa.Boolean(), nullable=False),
        sa.Column("agreement", sa.String(length=100), nullable=True),
        sa.Column("remote_ref", sa.String(length=100), nullable=True),
        sa.Column("case_ref", sa.String(length=100), nullable=True),
        sa.Column("marking", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_watches_case_id_cases"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watches")),
    )
    op.create_index(op.f("ix_watches_case_id"), "watches", ["case_id"], unique=False)
    op.create_table(
        "watch_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("watch_id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=120), nullable=False),
        sa.Column("txid", sa.String(length=80), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["watch_id"], ["watches.id"], name=op.f("fk_watch_points_watch_id_watches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watch_points")),
        sa.UniqueConstraint("watch_id", "address", "txid", "n", name="uq_watch_points_point"),
    )
    op.create_index("ix_watch_points_chain_address", "watch_points", ["chain", "address"], unique=False)
    op.create_table(
        "watch_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("watch_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("chain", sa.String(length=20), nullable=False),
        sa.Column("txid", sa.String(length=80), nullable=True),
        sa.Column("address", sa.String(length=120), nullable=True),
        sa.Column("entity", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=60), nullable=True),
        sa.Column("jurisdiction", sa.String(length=2), nullable=True),
        sa.Column("value", sa.String(length=80), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("webhook_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("partner_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["watch_id"], ["watches.id"], name=op.f("fk_watch_alerts_watch_id_watches"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["legal_requests.id"],
            name=op.f("fk_watch_alerts_request_id_legal_requests"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watch_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_watch_alerts_key")),
    )
    op.create_index(op.f("ix_watch_alerts_watch_id"), "watch_alerts", ["watch_id"], unique=False)
    op.create_table(
        "watch_cursors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("chain", sa.String(length=20), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.String(length=80), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watch_cursors")),
        sa.UniqueConstraint("source", "chain", name="uq_watch_cursors_source_chain"),
    )


def downgrade() -> None:
    """Drop the watch tables."""
    op.drop_table("watch_cursors")
    op.drop_index(op.f("ix_watch_alerts_watch_id"), table_name="watch_alerts")
    op.drop_table("watch_alerts")
    op.drop_index("ix_watch_points_chain_address", table_name="watch_points")
    op.drop_table("watch_points")
    op.drop_index(op.f("ix_watches_case_id"), table_name="watches")
    op.drop_table("watches")
