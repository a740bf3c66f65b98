"""Request and response bodies of jobs (SQL and HE) and HE context bundles."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from gateway.service.core.schemas import Strict


class JobSubmitIn(Strict):
    """A federated SQL aggregate job over one asset or partitions of a federated asset."""

    sql: str = Field(min_length=1, max_length=20_000)
    assets: list[str] = Field(
        min_length=1, max_length=50, description="The asset, or every partition (same schema)"
    )
    epsilon: float = Field(gt=0, le=100)
    delta: float = Field(default=0.0, ge=0, lt=1)
    purpose: str = Field(min_length=1, max_length=200)
    licence_ids: list[str] | None = Field(default=None, max_length=50)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class ApprovalIn(Strict):
    reason: str = Field(default="", max_length=1000)
    signature: str | None = Field(
        default=None,
        max_length=200,
        description="Approve: the holder organisation's Ed25519 signature (base64) of the "
        "approval statement (job id, the job's SHA-256, the principal), at signed_at",
    )
    signed_at: datetime | None = None


class JobOut(BaseModel):
    id: str
    state: str
    kind: str
    sql: str
    purpose: str
    epsilon: float
    delta: float
    assets: list[str]
    operator_org_id: str
    decision: dict[str, Any]
    approvals: list[dict[str, Any]]
    approvals_required: int
    approval_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    error_code: str | None
    attempts: int
    has_result: bool
    spec: dict[str, Any] | None = Field(
        default=None, description="HE jobs: what is computed (columns, groups, filters, context)"
    )
    licence_ids: list[str] = Field(default_factory=list)
    job_sha256: str = Field(
        default="",
        description="SHA-256 of the job as submitted (what a holder's approval signs; a "
        "holder's client computes it again from the fields shown)",
    )
    failure_reasons: list[dict[str, Any]] | None = Field(
        default=None,
        description="Why a failed job failed, when there is more to say than its code (a "
        "holder's reason for rejecting a Python job's outputs)",
    )


class ReleasedCell(BaseModel):
    value: Any
    mechanism: str | None
    scales: dict[str, float]
    epsilon: float


class JobResultOut(BaseModel):
    job_id: str
    columns: list[str]
    rows: list[list[ReleasedCell]]
    epsilon_spent: float
    delta_spent: float
    threshold: int = Field(
        description="Groups whose noisy count of people is below this are not released"
    )
    key_release: str
    receipt: dict[str, Any] | None
    he: dict[str, Any] | None = Field(
        default=None,
        description="HE jobs: the ciphertexts under the operator's key, their layout and "
        "the noise each quantity carries",
    )
    mechanism: str | None = Field(
        default=None,
        description="How the result was released when it is not noised: holder_review "
        "(Python jobs: each holder reviewed the outputs at its site)",
    )
    python: dict[str, Any] | None = Field(
        default=None,
        description="Python jobs: the code hash, and per site the reviewer, the signed "
        "review and the released files (base64) with their SHA-256",
    )


HeKind = Literal["he_aggregate", "he_linear"]


Scalar = str | int | float | bool


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


MAX_CIPHERTEXT_TEXT = 6 * 1024 * 1024


class HeGroupIn(Strict):
    """A group-by column and its public keys: rows with another value are left out."""

    column: str = Field(min_length=1, max_length=128)
    values: list[Scalar] = Field(min_length=1, max_length=4096)


class HeConditionIn(Strict):
    """A row filter on a column the policy allows as a filter."""

    column: str = Field(min_length=1, max_length=128)
    op: Literal["=", "!=", "<", "<=", ">", ">=", "in"]
    value: Scalar | list[Scalar]


class HeJobIn(Strict):
    """An HE job: ``he_aggregate`` (secure aggregation) or ``he_linear`` (encrypted model)."""

    kind: HeKind
    assets: list[str] = Field(min_length=1, max_length=50)
    context_sha256: str = Field(description="SHA-256 of a bundle uploaded to /v1/he/contexts")
    purpose: str = Field(min_length=1, max_length=200)
    epsilon: float = Field(gt=0, le=100)
    licence_ids: list[str] | None = Field(default=None, max_length=50)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    where: list[HeConditionIn] = Field(default_factory=list, max_length=32)
    columns: list[str] = Field(
        default_factory=list, max_length=64, description="he_aggregate: columns to sum"
    )
    groups: list[HeGroupIn] = Field(default_factory=list, max_length=4)
    features: list[str] = Field(default_factory=list, max_length=32)
    label: str | None = Field(default=None, max_length=128)
    weights: str | None = Field(
        default=None, max_length=MAX_CIPHERTEXT_TEXT, description="base64 CKKS Enc(w)"
    )
    weights_outer: str | None = Field(
        default=None, max_length=MAX_CIPHERTEXT_TEXT, description="base64 CKKS Enc(vec(w wᵀ))"
    )

    @model_validator(mode="after")
    def _shape(self) -> HeJobIn:
        if not _SHA256.match(self.context_sha256):
            raise ValueError("context_sha256 must be 64 lowercase hex digits")
        if self.kind == "he_aggregate":
            if self.features or self.label or self.weights or self.weights_outer:
                raise ValueError("he_aggregate takes columns and groups, not a model")
        else:
            if not self.features or not self.label or not self.weights or not self.weights_outer:
                raise ValueError("he_linear needs features, label, weights and weights_outer")
            if self.columns or self.groups:
                raise ValueError("he_linear takes features and a label, not columns or groups")
        return self

    def spec(self) -> dict[str, Any]:
        """What is stored with the job (the weights by reference only)."""
        body = self.model_dump(
            include={"context_sha256", "where", "columns", "groups", "features", "label"}
        )
        return body


MAX_ARCHIVE_TEXT = 12 * 1024 * 1024


class PythonJobIn(Strict):
    """A Python job: a syft-rds job folder (``config.yaml``, ``run.sh``, ``code/``) as a
    tar.gz archive in base64.  It spends no ε: its outputs are held at each site until the
    holder reviews them."""

    kind: Literal["python"] = "python"
    assets: list[str] = Field(min_length=1, max_length=50)
    archive: str = Field(
        min_length=4, max_length=MAX_ARCHIVE_TEXT, description="base64 tar.gz of the job folder"
    )
    purpose: str = Field(min_length=1, max_length=200)
    dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The dataset name the code resolves (default: the asset's name)",
    )
    licence_ids: list[str] | None = Field(default=None, max_length=50)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)

    @property
    def epsilon(self) -> float:
        return 0.0


class HeContextOut(BaseModel):
    sha256: str
    size: int
    stored: bool = Field(description="False if the gateway had the bundle already")
    schemes: dict[str, dict[str, Any]]
