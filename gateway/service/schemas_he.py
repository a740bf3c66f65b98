"""Request and response bodies of HE jobs."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from gateway.service.schemas import Strict

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


class HeContextOut(BaseModel):
    sha256: str
    size: int
    stored: bool = Field(description="False if the gateway had the bundle already")
    schemes: dict[str, dict[str, Any]]
