"""Audit log as a Merkle transparency log: signed tree heads, witness cosignatures, witnessed heads.

Revision ID: 0005_audit_transparency_log
Revises: 0004_outbound_requests
Create Date: 2026-12-06

The audit records stay as they are (they become the leaves of an RFC 9162 Merkle tree). The old
checkpoints signed a hash chain head with a key looked up in the database; they are replaced by signed
tree heads checked against keys pinned in the home. Records written before this revision are marked
(``audit_head.signed_seq = -1``) and covered by the first signed tree head written after it. The
frontier (roots of the tree's perfect subtrees) is computed here from the stored records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0005_audit_transparency_log"
down_revision: str | Sequence[str] | None = "0004_outbound_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "case_number",
    "reason",
    "details",
    "prev_hash",
)


def _frontier(connection: sa.Connection) -> tuple[int, str]:
    nodes: list[bytes] = []
    size = 0
    rows = connection.execute(sa.text(f"SELECT {', '.join(_FIELDS)} FROM audit_records ORDER BY seq"))
    for row in rows:
        leaf = json.dumps(
            dict(zip(_FIELDS, row, strict=True)), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        node = hashlib.sha256(b"\x00" + leaf).digest()
        n = size
        while n & 1:
            node = hashlib.sha256(b"\x01" + nodes.pop() + node).digest()
            n >>= 1
        nodes.append(node)
        size += 1
    return size, ",".join(n.hex() for n in nodes)


def upgrade() -> None:
    """Create the head tables, add the frontier, drop the old checkpoints."""
    op.create_table(
        "audit_tree_heads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("timestamp", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_tree_heads")),
    )
    op.create_index(op.f("ix_audit_tree_heads_tree_size"), "audit_tree_heads", ["tree_size"])
    op.create_table(
        "audit_cosignatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("witness", sa.String(length=100), nullable=False),
        sa.Column("witness_key_id", sa.String(length=64), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("timestamp", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("cosignature", sa.String(length=200), nullable=False),
        sa.Column("witnessed_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_cosignatures")),
    )
    op.create_table(
        "audit_witnessed_heads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner", sa.String(length=100), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("timestamp", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("cosignature", sa.String(length=200), nullable=False),
        sa.Column("witnessed_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_witnessed_heads")),
    )
    op.create_index(op.f("ix_audit_witnessed_heads_partner"), "audit_witnessed_heads", ["partner"])
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("frontier", sa.Text(), nullable=False, server_default=""))
    if context.is_offline_mode():  # a SQL script for an empty database: no records, nothing to cover
        op.drop_table("audit_checkpoints")
        return
    connection = op.get_bind()
    size, frontier = _frontier(connection)
    connection.execute(
        sa.text("UPDATE audit_head SET frontier = :f, signed_seq = :s WHERE id = 1"),
        {"f": frontier, "s": -1 if size else 0},
    )
    op.drop_table("audit_checkpoints")


def downgrade() -> None:
    """Back to hash-chain checkpoints (signed heads are dropped)."""
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["signing_keys.key_id"], name=op.f("fk_audit_checkpoints_key_id_signing_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    connection = op.get_bind()
    connection.execute(sa.text("UPDATE audit_head SET signed_seq = 0 WHERE id = 1"))
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("frontier")
    op.drop_index(op.f("ix_audit_witnessed_heads_partner"), table_name="audit_witnessed_heads")
    op.drop_table("audit_witnessed_heads")
    op.drop_table("audit_cosignatures")
    op.drop_index(op.f("ix_audit_tree_heads_tree_size"), table_name="audit_tree_heads")
    op.drop_table("audit_tree_heads")
