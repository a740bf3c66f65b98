"""sites carry their agent's proven key; trace entries name their job

Revision ID: 0007_site_claims
Revises: 0006

``site.agent_key`` is the agent identity key the holder endorsed (null for sites registered
before agents proved their holder).  ``trace_entry.job_id`` (from the entry's
``target.job``) lets every holder of a job's assets read the job's entries; existing
entries are filled in from their leaves.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007_site_claims"
down_revision = "0006"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_key", sa.String(length=64), nullable=True))
    with op.batch_alter_table("trace_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f("ix_trace_entry_job_id"), ["job_id"], unique=False)
    _fill_job_ids()


def _fill_job_ids() -> None:
    bind = op.get_bind()
    entry = sa.table(
        "trace_entry",
        sa.column("idx", sa.BigInteger()),
        sa.column("leaf", sa.LargeBinary()),
        sa.column("job_id", sa.String()),
    )
    after = -1
    while True:
        rows = bind.execute(
            sa.select(entry.c.idx, entry.c.leaf)
            .where(entry.c.idx > after)
            .order_by(entry.c.idx)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        for idx, leaf in rows:
            target = json.loads(bytes(leaf)).get("target") or {}
            job = target.get("job") if isinstance(target, dict) else None
            if isinstance(job, str):
                bind.execute(sa.update(entry).where(entry.c.idx == idx).values(job_id=job))
        after = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("trace_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_entry_job_id"))
        batch_op.drop_column("job_id")
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.drop_column("agent_key")
