"""Domain objects shared by the service layer, the store and the transports.

These are plain frozen dataclasses: the store maps its tables to them, so nothing above
the store depends on the ORM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Role(StrEnum):
    ADMIN = "admin"
    HOLDER = "holder"
    OPERATOR = "operator"
    AUDITOR = "auditor"


class ColumnTag(StrEnum):
    IDENTIFIER = "identifier"
    QUASI_IDENTIFIER = "quasi_identifier"
    SENSITIVE = "sensitive"
    ATTRIBUTE = "attribute"


class ColumnType(StrEnum):
    INTEGER = "integer"
    BIGINT = "bigint"
    DOUBLE = "double"
    DECIMAL = "decimal"
    TEXT = "text"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"


class Classification(StrEnum):
    GENERAL = "general"
    IMPORTANT = "important"
    CORE = "core"


class UpdateFrequency(StrEnum):
    REALTIME = "realtime"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"
    STATIC = "static"
    AD_HOC = "ad_hoc"


class AssetStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    DISPOSED = "disposed"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling: the authenticated principal, its organisation and role."""

    principal_id: str
    org_id: str
    role: Role
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class Organisation:
    id: str
    name: str
    description: str
    public_key: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    org_id: str
    name: str
    role: Role
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    principal_id: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    org_id: str
    name: str
    grpc_address: str
    tls_fingerprint: str
    created_at: datetime
    agent_key: str | None = None
    """The agent's identity key, proven and endorsed by the holder at registration."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    tag: ColumnTag
    description: str = ""


@dataclass(frozen=True, slots=True)
class Rights:
    """The three rights of a public-data asset (data holding, processing-and-use, operation)."""

    holding: str
    processing_use: str
    product_operation: str


@dataclass(frozen=True, slots=True)
class Disposal:
    disposed_by: str
    disposed_at: datetime
    method: str
    destroyed_digest: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Freeze:
    frozen_by: str
    frozen_role: Role
    frozen_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Asset:
    """An asset and its card: basic, rights, usage and management sections."""

    id: str
    org_id: str
    site_id: str
    local_ref: str
    name: str
    description: str
    domain: str
    columns: tuple[Column, ...]
    privacy_unit: str
    row_count: int
    update_frequency: UpdateFrequency
    classification: Classification
    rights: Rights
    status: AssetStatus
    registration_number: str
    version: int
    content_digest: str
    created_at: datetime
    updated_at: datetime
    jobs_run: int = 0
    operators: tuple[str, ...] = ()
    last_access: datetime | None = None
    freeze: Freeze | None = None
    disposal: Disposal | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated listing."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """A trace entry to append: the JSON object whose canonical bytes become the leaf,
    plus the columns the store indexes for filtering (all derived from ``entry``)."""

    entry: dict[str, Any]
    time: datetime
    action: str
    actor_principal: str | None = None
    actor_org: str | None = None
    subject_org: str | None = None
    asset_id: str | None = None
    job_id: str | None = None
    decision: str | None = None


@dataclass(slots=True)
class PendingTrace:
    """Handle on an appended entry: its position is known once the transaction commits."""

    leaf: bytes
    leaf_hash: bytes
    index: int | None = None


@dataclass(frozen=True, slots=True)
class StoredTrace:
    """A trace entry as stored: its position, canonical leaf bytes, and the leaf hash the
    tree committed to when it was appended (level 0 of the node table)."""

    index: int
    leaf: bytes
    committed_hash: bytes | None = None


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    asset_id: str
    version: int
    document: str
    created_by: str
    created_at: datetime
    statement: str | None = None
    """The holder's signed statement of this version (canonical JSON), when signed."""
    signature: str | None = None
    """The holder organisation's signature of ``statement`` (base64), when signed."""


class LicenceStatus(StrEnum):
    OFFERED = "offered"
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Licence:
    """A stored licence; ``terms`` is the canonical JSON both parties signed."""

    id: str
    holder_org_id: str
    operator_org_id: str
    terms: str
    holder_signature: str
    operator_signature: str | None
    status: LicenceStatus
    created_at: datetime
    accepted_at: datetime | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None
    revocation: str | None = None
    """The holder's signed revocation ({"statement", "signature"} JSON), when signed."""


@dataclass(frozen=True, slots=True)
class BudgetCharge:
    id: str
    licence_id: str
    asset_id: str
    job_ref: str
    epsilon: float
    delta: float
    at: datetime
    released: bool = False
    refunded_at: datetime | None = None


class JobState(StrEnum):
    SUBMITTED = "submitted"
    DENIED = "denied"
    PENDING_APPROVAL = "pending_approval"
    QUEUED = "queued"
    RUNNING = "running"
    IN_REVIEW = "in_review"
    """Ran at the sites; the outputs are held there until their holders review them."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset(
    {JobState.DENIED, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
)


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored. ``decision`` holds the policy decision (outcome, reasons,
    parameters, policy versions); ``result`` the released, noised answer."""

    id: str
    operator_org_id: str
    principal_id: str
    kind: str
    sql: str
    purpose: str
    epsilon: float
    delta: float
    asset_ids: list[str]
    licence_ids: list[str]
    idempotency_key: str | None
    state: JobState
    decision: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    approvals: list[dict[str, Any]] = field(default_factory=list)
    approvals_required: int = 0
    approval_expires_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    attempts: int = 0
    error_code: str | None = None
    result: dict[str, Any] | None = None
    receipt: dict[str, Any] | None = None
    compute_seconds: float = 0.0
    spec: dict[str, Any] | None = None
    """What an HE job computes (columns, groups, context digest, weights); SQL jobs: ``None``."""


@dataclass(frozen=True, slots=True)
class FederatedAsset:
    """Partitions of one dataset, with one schema, held by several holders."""

    id: str
    name: str
    description: str
    partitions: list[str]
    created_by: str
    created_at: datetime


class SuspensionKind(StrEnum):
    """What an emergency suspension stops: an operator organisation, a principal or a
    licence."""

    ORG = "org"
    PRINCIPAL = "principal"
    LICENCE = "licence"


@dataclass(frozen=True, slots=True)
class Suspension:
    """An auditor's emergency brake: while active (not lifted), the target's jobs are
    refused and its running jobs were cancelled when it was applied."""

    id: str
    kind: SuspensionKind
    target_id: str
    operator_org_id: str | None
    reason: str
    created_by: str
    created_at: datetime
    lifted_by: str | None = None
    lifted_at: datetime | None = None
    lift_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.lifted_at is None
