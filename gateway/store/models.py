"""SQLModel tables. Only the store package sees these; everything above sees domain objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, LargeBinary, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class OrganisationRow(SQLModel, table=True):
    __tablename__ = "organisation"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200, unique=True)
    description: str = Field(default="", max_length=2000)
    public_key: str | None = Field(default=None, max_length=100)
    created_at: datetime = _ts()


class PrincipalRow(SQLModel, table=True):
    __tablename__ = "principal"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_principal_org_name"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organisation.id", index=True, max_length=40)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20)
    disabled: bool = False
    created_at: datetime = _ts()


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=40)
    principal_id: str = Field(foreign_key="principal.id", index=True, max_length=40)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)


class SiteRow(SQLModel, table=True):
    __tablename__ = "site"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_site_org_name"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organisation.id", index=True, max_length=40)
    name: str = Field(max_length=200)
    grpc_address: str = Field(max_length=300)
    tls_fingerprint: str = Field(max_length=64)
    created_at: datetime = _ts()
    agent_key: str | None = Field(default=None, max_length=64)


class AssetRow(SQLModel, table=True):
    __tablename__ = "asset"
    __table_args__ = (
        UniqueConstraint("org_id", "name", name="uq_asset_org_name"),
        Index("ix_asset_status_id", "status", "id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organisation.id", index=True, max_length=40)
    site_id: str = Field(foreign_key="site.id", max_length=40)
    local_ref: str = Field(max_length=200)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=4000)
    domain: str = Field(max_length=100)
    columns: list[dict[str, Any]] = Field(sa_type=JSON)
    privacy_unit: str = Field(max_length=100)
    row_count: int
    update_frequency: str = Field(max_length=20)
    classification: str = Field(max_length=20)
    rights: dict[str, Any] = Field(sa_type=JSON)
    status: str = Field(max_length=20)
    registration_number: str = Field(max_length=40, unique=True)
    version: int
    revision: int = Field(default=1, description="Moves on every change of the row (caches)")
    content_digest: str = Field(max_length=64)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    jobs_run: int = 0
    operators: list[str] = Field(default_factory=list, sa_type=JSON)
    last_access: datetime | None = _ts(nullable=True)
    freeze: dict[str, Any] | None = Field(default=None, sa_type=JSON, nullable=True)
    disposal: dict[str, Any] | None = Field(default=None, sa_type=JSON, nullable=True)


class CounterRow(SQLModel, table=True):
    """Named monotonic counters (registration serials and the like)."""

    __tablename__ = "counter"

    name: str = Field(primary_key=True, max_length=60)
    value: int = 0


class TraceEntryRow(SQLModel, table=True):
    """One leaf of the trace: its canonical bytes plus columns for filtering."""

    __tablename__ = "trace_entry"

    idx: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    leaf: bytes = Field(sa_type=LargeBinary)
    time: datetime = _ts(index=True)
    action: str = Field(max_length=60, index=True)
    actor_principal: str | None = Field(default=None, max_length=40, index=True)
    actor_org: str | None = Field(default=None, max_length=40, index=True)
    subject_org: str | None = Field(default=None, max_length=40, index=True)
    asset_id: str | None = Field(default=None, max_length=40, index=True)
    job_id: str | None = Field(default=None, max_length=40, index=True)
    decision: str | None = Field(default=None, max_length=10, index=True)


class TraceNodeRow(SQLModel, table=True):
    """A complete Merkle subtree hash, written once: key = level << 56 | index."""

    __tablename__ = "trace_node"

    key: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    hash: bytes = Field(sa_type=LargeBinary)


class TraceHeadRow(SQLModel, table=True):
    """The single row that serialises writers and records the tree size."""

    __tablename__ = "trace_head"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    size: int = Field(sa_type=BigInteger)


class TraceCheckpointRow(SQLModel, table=True):
    """A signed checkpoint (C2SP signed note) of the trace at ``size``."""

    __tablename__ = "trace_checkpoint"

    size: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    note: str = Field(sa_type=Text)
    created_at: datetime = _ts()


class PolicyVersionRow(SQLModel, table=True):
    """Every version of every asset's policy document, kept for ever."""

    __tablename__ = "policy_version"

    asset_id: str = Field(foreign_key="asset.id", primary_key=True, max_length=40)
    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    document: str = Field(sa_type=Text)
    created_by: str = Field(max_length=40)
    created_at: datetime = _ts()
    statement: str | None = Field(default=None, sa_type=Text)
    signature: str | None = Field(default=None, max_length=200)


class LicenceRow(SQLModel, table=True):
    """A licence: canonical terms, the holder's signature and the operator's countersignature."""

    __tablename__ = "licence"

    id: str = Field(primary_key=True, max_length=200)
    holder_org_id: str = Field(foreign_key="organisation.id", index=True, max_length=40)
    operator_org_id: str = Field(foreign_key="organisation.id", index=True, max_length=40)
    terms: str = Field(sa_type=Text, description="canonical JSON of the terms")
    holder_signature: str = Field(max_length=200)
    operator_signature: str | None = Field(default=None, max_length=200)
    status: str = Field(max_length=20)
    created_at: datetime = _ts()
    accepted_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)
    revoke_reason: str | None = Field(default=None, max_length=1000)
    revocation: str | None = Field(default=None, sa_type=Text)


class LicenceAssetRow(SQLModel, table=True):
    """Which assets a licence covers (for lookups by asset)."""

    __tablename__ = "licence_asset"

    licence_id: str = Field(foreign_key="licence.id", primary_key=True, max_length=200)
    asset_id: str = Field(foreign_key="asset.id", primary_key=True, max_length=40, index=True)


class BudgetChargeRow(SQLModel, table=True):
    """One charge of privacy budget against a licence and an asset."""

    __tablename__ = "budget_charge"
    __table_args__ = (Index("ix_budget_charge_licence_asset_at", "licence_id", "asset_id", "at"),)

    id: str = Field(primary_key=True, max_length=40)
    licence_id: str = Field(foreign_key="licence.id", max_length=200)
    asset_id: str = Field(foreign_key="asset.id", max_length=40)
    job_ref: str = Field(max_length=200, index=True)
    epsilon: float
    delta: float = 0.0
    at: datetime = _ts()
    released: bool = False
    refunded_at: datetime | None = _ts(nullable=True)


class JobRow(SQLModel, table=True):
    """A job and its life: submitted → denied | pending_approval → queued → running →
    succeeded | failed | cancelled. The queue is this table, so several gateways can share it."""

    __tablename__ = "job"
    __table_args__ = (
        UniqueConstraint("operator_org_id", "idempotency_key", name="uq_job_idempotency"),
        Index("ix_job_state_created", "state", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    operator_org_id: str = Field(foreign_key="organisation.id", index=True, max_length=40)
    principal_id: str = Field(max_length=40)
    kind: str = Field(max_length=40)
    sql: str = Field(sa_type=Text)
    purpose: str = Field(max_length=200)
    epsilon: float
    delta: float = 0.0
    asset_ids: list[str] = Field(sa_type=JSON)
    licence_ids: list[str] = Field(sa_type=JSON)
    idempotency_key: str | None = Field(default=None, max_length=200)
    state: str = Field(max_length=20)
    decision: dict[str, Any] = Field(sa_type=JSON)
    approvals: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    approvals_required: int = 0
    approval_expires_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_until: datetime | None = _ts(nullable=True)
    attempts: int = 0
    error_code: str | None = Field(default=None, max_length=40)
    result: dict[str, Any] | None = Field(default=None, sa_type=JSON, nullable=True)
    receipt: dict[str, Any] | None = Field(default=None, sa_type=JSON, nullable=True)
    compute_seconds: float = 0.0
    spec: dict[str, Any] | None = Field(default=None, sa_type=JSON, nullable=True)


class JobAssetRow(SQLModel, table=True):
    """Which holders' assets a job touches (for holders' views and approvals)."""

    __tablename__ = "job_asset"

    job_id: str = Field(foreign_key="job.id", primary_key=True, max_length=40)
    asset_id: str = Field(foreign_key="asset.id", primary_key=True, max_length=40)
    holder_org_id: str = Field(max_length=40, index=True)


class FederatedAssetRow(SQLModel, table=True):
    """A federated asset: partitions with one schema, held by several holders at their sites."""

    __tablename__ = "federated_asset"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200, unique=True)
    description: str = Field(default="", max_length=4000)
    partitions: list[str] = Field(sa_type=JSON)
    created_by: str = Field(max_length=40)
    created_at: datetime = _ts()


class SuspensionRow(SQLModel, table=True):
    """An auditor's emergency suspension of an operator organisation, a principal or a
    licence; active until lifted (by an auditor)."""

    __tablename__ = "suspension"
    __table_args__ = (Index("ix_suspension_target", "kind", "target_id"),)

    id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=20)
    target_id: str = Field(max_length=40)
    operator_org_id: str | None = Field(default=None, max_length=40)
    reason: str = Field(max_length=4000)
    created_by: str = Field(max_length=40)
    created_at: datetime = _ts()
    lifted_by: str | None = Field(default=None, max_length=40)
    lifted_at: datetime | None = _ts(nullable=True)
    lift_reason: str | None = Field(default=None, max_length=4000)
