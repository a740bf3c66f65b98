"""sites carry their agent's proven key; trace entries name their job

Revision ID: 0008_site_claims
Revises: 0007

``site.agent_key`` is the agent identity key the holder endorsed (null for sites registered
before agents proved their holder).  ``trace_entry.job_id`` (from the entry's
``target.job``) lets every holder of a job's assets read the job's entries; existing
entries of jobs are filled in from their leaves.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_site_claims"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_key", sa.String(length=64), nullable=True))
    with op.batch_alter_table("trace_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f("ix_trace_entry_job_id"), ["job_id"], unique=False)
    # Entries written before this revision carry their job only in the leaf.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE trace_entry SET job_id = "
            "convert_from(leaf, 'UTF8')::jsonb->'target'->>'job' WHERE action LIKE 'job.%'"
        )
    else:
        op.execute(
            "UPDATE trace_entry SET job_id = json_extract(CAST(leaf AS TEXT), '$.target.job') "
            "WHERE action LIKE 'job.%'"
        )


def downgrade() -> None:
    with op.batch_alter_table("trace_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_entry_job_id"))
        batch_op.drop_column("job_id")
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.drop_column("agent_key")
