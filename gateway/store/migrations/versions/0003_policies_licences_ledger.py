"""policies licences ledger

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "licence",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("holder_org_id", sa.String(length=40), nullable=False),
        sa.Column("operator_org_id", sa.String(length=40), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("holder_signature", sa.String(length=200), nullable=False),
        sa.Column("operator_signature", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["holder_org_id"],
            ["organisation.id"],
        ),
        sa.ForeignKeyConstraint(
            ["operator_org_id"],
            ["organisation.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_licence_holder_org_id"), ["holder_org_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_licence_operator_org_id"), ["operator_org_id"], unique=False
        )

    op.create_table(
        "budget_charge",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("licence_id", sa.String(length=200), nullable=False),
        sa.Column("asset_id", sa.String(length=40), nullable=False),
        sa.Column("job_ref", sa.String(length=200), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released", sa.Boolean(), nullable=False),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
        ),
        sa.ForeignKeyConstraint(
            ["licence_id"],
            ["licence.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("budget_charge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_budget_charge_job_ref"), ["job_ref"], unique=False)
        batch_op.create_index(
            "ix_budget_charge_licence_asset_at", ["licence_id", "asset_id", "at"], unique=False
        )

    op.create_table(
        "licence_asset",
        sa.Column("licence_id", sa.String(length=200), nullable=False),
        sa.Column("asset_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
        ),
        sa.ForeignKeyConstraint(
            ["licence_id"],
            ["licence.id"],
        ),
        sa.PrimaryKeyConstraint("licence_id", "asset_id"),
    )
    with op.batch_alter_table("licence_asset", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licence_asset_asset_id"), ["asset_id"], unique=False)

    op.create_table(
        "policy_version",
        sa.Column("asset_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
        ),
        sa.PrimaryKeyConstraint("asset_id", "version"),
    )


def downgrade() -> None:
    op.drop_table("policy_version")
    with op.batch_alter_table("licence_asset", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_asset_asset_id"))

    op.drop_table("licence_asset")
    with op.batch_alter_table("budget_charge", schema=None) as batch_op:
        batch_op.drop_index("ix_budget_charge_licence_asset_at")
        batch_op.drop_index(batch_op.f("ix_budget_charge_job_ref"))

    op.drop_table("budget_charge")
    with op.batch_alter_table("licence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_operator_org_id"))
        batch_op.drop_index(batch_op.f("ix_licence_holder_org_id"))

    op.drop_table("licence")
