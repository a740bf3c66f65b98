"""emergency suspensions; trace entries filterable by decision

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suspension",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("target_id", sa.String(length=40), nullable=False),
        sa.Column("operator_org_id", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.String(length=4000), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_by", sa.String(length=40), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lift_reason", sa.String(length=4000), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_suspension_target", "suspension", ["kind", "target_id"])
    op.add_column("trace_entry", sa.Column("decision", sa.String(length=10), nullable=True))
    op.create_index("ix_trace_entry_decision", "trace_entry", ["decision"])
    # Entries written before this revision carry their decision only in the leaf.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE trace_entry SET decision = convert_from(leaf, 'UTF8')::jsonb->>'decision'"
        )
    else:
        op.execute(
            "UPDATE trace_entry SET decision = json_extract(CAST(leaf AS TEXT), '$.decision')"
        )


def downgrade() -> None:
    op.drop_index("ix_trace_entry_decision", table_name="trace_entry")
    op.drop_column("trace_entry", "decision")
    op.drop_index("ix_suspension_target", table_name="suspension")
    op.drop_table("suspension")
