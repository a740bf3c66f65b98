"""trace tables

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trace_checkpoint",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )
    op.create_table(
        "trace_entry",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("actor_principal", sa.String(length=40), nullable=True),
        sa.Column("actor_org", sa.String(length=40), nullable=True),
        sa.Column("subject_org", sa.String(length=40), nullable=True),
        sa.Column("asset_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("idx"),
    )
    with op.batch_alter_table("trace_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_entry_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_trace_entry_actor_org"), ["actor_org"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_trace_entry_actor_principal"), ["actor_principal"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trace_entry_asset_id"), ["asset_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_trace_entry_subject_org"), ["subject_org"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trace_entry_time"), ["time"], unique=False)

    head = op.create_table(
        "trace_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(head, [{"id": 1, "size": 0}])
    op.create_table(
        "trace_node",
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("trace_node")
    op.drop_table("trace_head")
    with op.batch_alter_table("trace_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_entry_time"))
        batch_op.drop_index(batch_op.f("ix_trace_entry_subject_org"))
        batch_op.drop_index(batch_op.f("ix_trace_entry_asset_id"))
        batch_op.drop_index(batch_op.f("ix_trace_entry_actor_principal"))
        batch_op.drop_index(batch_op.f("ix_trace_entry_actor_org"))
        batch_op.drop_index(batch_op.f("ix_trace_entry_action"))

    op.drop_table("trace_entry")
    op.drop_table("trace_checkpoint")
