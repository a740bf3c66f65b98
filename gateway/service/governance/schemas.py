"""Request and response bodies of policies, licences, decisions, budgets and settlements."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway.service.core.schemas import Strict


class PolicySetIn(Strict):
    document: str = Field(max_length=256 * 1024, description="The policy document (YAML)")
    signature: str | None = Field(
        default=None,
        max_length=200,
        description="The holder organisation's Ed25519 signature (base64) of the policy "
        "statement: the asset's schema and the document's SHA-256, at signed_at",
    )
    signed_at: datetime | None = None


class PolicyVersionOut(BaseModel):
    asset_id: str
    version: int
    signed: bool = Field(
        default=False,
        description="Signed by the holder organisation's key: only a signed policy reaches "
        "the asset's site, so only then do jobs run on the asset",
    )
    document: str
    created_by: str
    created_at: datetime


class PolicyVersionSummary(BaseModel):
    asset_id: str
    version: int
    created_by: str
    created_at: datetime


class LicenceOfferIn(Strict):
    terms: dict[str, Any] = Field(description="Licence terms (see contracts.LicenceTerms)")
    holder_signature: str = Field(max_length=200, description="base64 of the 96-byte signature")


class LicenceAcceptIn(Strict):
    operator_signature: str = Field(max_length=200, description="base64 of the 96-byte signature")


class LicenceRevokeIn(Strict):
    reason: str = Field(min_length=1, max_length=1000)
    signature: str | None = Field(
        default=None,
        max_length=200,
        description="The holder organisation's Ed25519 signature (base64) of the revocation "
        "statement, at signed_at: it then reaches the holder's sites too",
    )
    signed_at: datetime | None = None


class LicenceOut(BaseModel):
    id: str
    status: str = Field(
        description="offered, active, revoked, expired, or key_rotated (signed under a key "
        "its holder or operator has since replaced: no new job until signed again)"
    )
    holder_org_id: str
    operator_org_id: str
    terms: dict[str, Any]
    canonical_terms: str = Field(description="The exact bytes both parties sign")
    holder_signature: str
    operator_signature: str | None
    holder_public_key: str | None
    created_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    revoke_reason: str | None


ColumnUsageIn = Literal["select_plain", "filter", "group_by", "join_key", "aggregate"]


class ColumnUseIn(Strict):
    asset: str = Field(max_length=40)
    column: str = Field(min_length=1, max_length=128)
    usage: ColumnUsageIn
    function: str | None = Field(default=None, max_length=40)


class CodeIn(Strict):
    """Submitted code as the policy engine decides on it: its hash and its files."""

    code_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    files: dict[str, str] = Field(max_length=500, description="code/ path -> SHA-256")


class JobDescriptionIn(Strict):
    """A job described structurally: what the policy engine decides on."""

    kind: str = Field(max_length=40, description="sql_aggregate, he_aggregate, he_linear or python")
    purpose: str = Field(min_length=1, max_length=200)
    epsilon: float = Field(ge=0, le=100, description="0 for a Python job, else more")
    delta: float = Field(default=0.0, ge=0, lt=1)
    assets: list[str] = Field(min_length=1, max_length=50)
    columns: list[ColumnUseIn] = Field(max_length=500)
    licence_ids: list[str] | None = Field(
        default=None, max_length=50, description="Licences to use (default: all of yours)"
    )
    group_keys: list[list[str]] | None = Field(
        default=None,
        max_length=16,
        description="The columns each group key reads (default: one key per group_by column)",
    )
    code: CodeIn | None = Field(default=None, description="A Python job's code")

    def key_columns(self) -> list[list[str]]:
        """The columns each group key reads."""
        if self.group_keys is not None:
            return self.group_keys
        grouped = dict.fromkeys(c.column for c in self.columns if c.usage == "group_by")
        return [[column] for column in grouped]


class DecisionOut(BaseModel):
    allow: bool
    reasons: list[dict[str, Any]]
    policy_versions: dict[str, int]
    parameters: dict[str, Any] | None


class AssetBudget(BaseModel):
    """An asset's budget, shared by every licence and operator on it."""

    asset_id: str
    epsilon_budget: float
    delta_budget: float
    period_days: int
    epsilon_spent: float = Field(description="By every licence on the asset, in the period")
    epsilon_spent_by_licence: float = Field(description="By this licence, in the period")
    delta_spent: float
    epsilon_remaining: float
    epsilon_per_job_max: float
    epsilon_per_job_min: float
    renews_at: datetime | None = Field(
        description="When the oldest charge of the period leaves it (budget comes back)"
    )
    jobs_that_fit: int | None


class BudgetOut(BaseModel):
    licence_id: str
    at: datetime
    assets: list[AssetBudget]
    licence_epsilon_cap: float | None
    licence_epsilon_used: float
    licence_epsilon_remaining: float | None
    epsilon_per_job: float | None
    jobs_that_fit: int | None = Field(description="Jobs of epsilon_per_job that still fit")


class UsageOut(BaseModel):
    licence_id: str
    jobs: int
    jobs_last_hour: int
    epsilon_spent: float
    delta_spent: float
    charges_refunded: int
    compute_seconds: float = Field(description="Sandbox time of the licence's released jobs")


class SettlementLine(BaseModel):
    licence_id: str
    operator_org_id: str
    currency: str
    fixed_fee: str
    revenue_share_percent: str
    jobs: int
    epsilon_spent: float


class SettlementOut(BaseModel):
    holder_org_id: str
    period_start: datetime
    period_end: datetime
    lines: list[SettlementLine]
