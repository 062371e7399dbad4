"""The case data's generation: one counter raised by every transaction that changes case data.

Revision ID: 0007_case_data_generation
Revises: 0006_watch
Create Date: 2026-12-07

Additive: one new table of one row (see ``fundtrail.cases.generation``); nothing existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_case_data_generation"
down_revision: str | Sequence[str] | None = "0006_watch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``case_data_generation`` with its one row at 0."""
    table = op.create_table(
        "case_data_generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_data_generation")),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    """Drop ``case_data_generation``."""
    op.drop_table("case_data_generation")
