"""Cooperation: sharing agreements, packages sent and received with their objects, partner requests.

Revision ID: 0003_sharing
Revises: 0002_api_credentials
Create Date: 2026-11-23

Additive: four new tables; nothing existing changes. Written by the cooperation layer
(``fundtrail.sharing.models``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_sharing"
down_revision: str | Sequence[str] | None = "0002_api_credentials"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``sharing_agreements``, ``shared_packages``, ``shared_objects`` and ``partner_requests``."""
    op.create_table(
        "sharing_agreements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("partner_name", sa.String(length=200), nullable=False),
        sa.Column("partner_country", sa.String(length=2), nullable=False),
        sa.Column("partner_key_id", sa.String(length=16), nullable=False),
        sa.Column("partner_public_key", sa.String(length=100), nullable=False),
        sa.Column("partner_endpoint", sa.String(length=300), nullable=True),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("categories", sa.String(length=300), nullable=False),
        sa.Column("tlp", sa.String(length=20), nullable=False),
        sa.Column("pap", sa.String(length=20), nullable=False),
        sa.Column("pseudonymise", sa.Boolean(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("onward_sharing", sa.Boolean(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("deadlines", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_agreements")),
        sa.UniqueConstraint("name", name=op.f("uq_sharing_agreements_name")),
    )
    op.create_index(
        op.f("ix_sharing_agreements_partner_key_id"), "sharing_agreements", ["partner_key_id"], unique=False
    )
    op.create_table(
        "shared_packages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("package_id", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=False),
        sa.Column("transport", sa.String(length=20), nullable=False),
        sa.Column("case_number", sa.String(length=32), nullable=True),
        sa.Column("sender_key_id", sa.String(length=16), nullable=False),
        sa.Column("recipient_key_id", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("tlp", sa.String(length=20), nullable=False),
        sa.Column("pap", sa.String(length=20), nullable=False),
        sa.Column("categories", sa.String(length=300), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("onward_sharing", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stored_path", sa.String(length=300), nullable=True),
        sa.Column("tag_uri", sa.String(length=300), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["sharing_agreements.id"],
            name=op.f("fk_shared_packages_agreement_id_sharing_agreements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shared_packages")),
        sa.UniqueConstraint("package_id", "direction", name="uq_shared_packages_package_direction"),
    )
    op.create_index(
        "ix_shared_packages_retain",
        "shared_packages",
        ["direction", "deleted_at", "retain_until"],
        unique=False,
    )
    op.create_table(
        "shared_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=True),
        sa.Column("chain", sa.String(length=20), nullable=True),
        sa.Column("value", sa.String(length=300), nullable=True),
        sa.Column("label", sa.String(length=300), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["shared_packages.id"],
            name=op.f("fk_shared_objects_package_id_shared_packages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shared_objects")),
    )
    op.create_index("ix_shared_objects_lookup", "shared_objects", ["kind", "chain", "value"], unique=False)
    op.create_table(
        "partner_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("remote_number", sa.String(length=40), nullable=False),
        sa.Column("remote_case", sa.String(length=32), nullable=True),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("requesting_agency", sa.String(length=300), nullable=False),
        sa.Column("requesting_contact", sa.Text(), nullable=True),
        sa.Column("subject_matter", sa.Text(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("measures", sa.Text(), nullable=False),
        sa.Column("subjects", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer_due", sa.Date(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["sharing_agreements.id"],
            name=op.f("fk_partner_requests_agreement_id_sharing_agreements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_requests")),
        sa.UniqueConstraint("number", name=op.f("uq_partner_requests_number")),
        sa.UniqueConstraint("agreement_id", "remote_number", name="uq_partner_requests_remote"),
    )


def downgrade() -> None:
    """Drop the four tables."""
    op.drop_table("partner_requests")
    op.drop_index("ix_shared_objects_lookup", table_name="shared_objects")
    op.drop_table("shared_objects")
    op.drop_index("ix_shared_packages_retain", table_name="shared_packages")
    op.drop_table("shared_packages")
    op.drop_index(op.f("ix_sharing_agreements_partner_key_id"), table_name="sharing_agreements")
    op.drop_table("sharing_agreements")
