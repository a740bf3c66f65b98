"""holders' signed statements: policies and licence revocations

Revision ID: 0009
Revises: 0008_site_claims
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008_site_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("policy_version", sa.Column("statement", sa.Text(), nullable=True))
    op.add_column("policy_version", sa.Column("signature", sa.String(length=200), nullable=True))
    op.add_column("licence", sa.Column("revocation", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("licence", "revocation")
    op.drop_column("policy_version", "signature")
    op.drop_column("policy_version", "statement")
