"""Request and response bodies of sites, asset cards and federated assets."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from gateway.domain import (
    AssetStatus,
    Classification,
    ColumnTag,
    ColumnType,
    Role,
    UpdateFrequency,
)
from gateway.service.core.schemas import Identifier, Name, Sha256Hex, Strict, Text
from gateway.service.trace.schemas import Receipt

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


_ADDRESS = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):[0-9]{1,5}$")


class SiteCreate(Strict):
    name: Name
    grpc_address: str = Field(max_length=300, description="host:port of the site agent")
    tls_fingerprint: str = Field(
        description="SHA-256 of the site certificate (DER), hex, colons allowed"
    )

    @field_validator("grpc_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _ADDRESS.match(value) or not 0 < int(value.rsplit(":", 1)[1]) < 65536:
            raise ValueError("must be host:port")
        return value

    @field_validator("tls_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str) -> str:
        normal = value.replace(":", "").lower()
        if not _FINGERPRINT.match(normal):
            raise ValueError("must be a SHA-256 fingerprint: 64 hex digits")
        return normal


class SiteOut(BaseModel):
    id: str
    org_id: str
    name: str
    grpc_address: str
    tls_fingerprint: str
    agent_key: str | None = Field(
        description="The agent's Ed25519 identity key its holder endorsed (base64); null for "
        "a site registered before agents proved their holder"
    )
    created_at: datetime


class SiteAssetOut(BaseModel):
    asset: str = Field(description="The site's own name for the asset (its local_ref)")
    ready: bool


class SiteHealthOut(BaseModel):
    site_id: str
    reachable: bool
    checked_at: datetime
    error: str | None = None
    agent_version: str | None = None
    isolation_level: str | None = None
    isolation_backend: str | None = None
    layers: dict[str, bool] = Field(default_factory=dict)
    assets: list[SiteAssetOut] = Field(default_factory=list)
    executors: list[str] = Field(default_factory=list)


class ColumnIn(Strict):
    name: Identifier
    type: ColumnType
    tag: ColumnTag
    description: Text = ""


class RightsIn(Strict):
    holding: Name = Field(description="Who holds the data-holding right")
    processing_use: Name = Field(description="Who holds the processing-and-use right")
    product_operation: Name = Field(description="Who holds the product-operation right")


class AssetCreate(Strict):
    name: Name
    description: Text = ""
    domain: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    site_id: str
    local_ref: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="The site's own name for the data (never shown to operators)"
    )
    columns: list[ColumnIn] = Field(min_length=1, max_length=500)
    privacy_unit: Identifier
    row_count: int = Field(ge=0)
    update_frequency: UpdateFrequency
    classification: Classification
    rights: RightsIn
    content_digest: Sha256Hex


class AssetUpdate(Strict):
    description: Text | None = None
    domain: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    row_count: int | None = Field(default=None, ge=0)
    update_frequency: UpdateFrequency | None = None
    classification: Classification | None = None
    rights: RightsIn | None = None
    content_digest: Sha256Hex | None = None


class FreezeIn(Strict):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class DisposeIn(Strict):
    method: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="How the data was destroyed, e.g. 'NIST 800-88 purge'"
    )
    destroyed_digest: Sha256Hex = Field(description="SHA-256 of what was destroyed")
    note: Text = ""


class ColumnOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    type: ColumnType
    tag: ColumnTag
    description: str


class BasicSection(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    domain: str
    columns: list[ColumnOut]
    privacy_unit: str
    row_count: int
    update_frequency: UpdateFrequency
    classification: Classification


class RightsSection(BaseModel):
    model_config = ConfigDict(frozen=True)

    holder_org_id: str
    holding: str
    processing_use: str
    product_operation: str


class UsageSection(BaseModel):
    model_config = ConfigDict(frozen=True)

    jobs_run: int
    operators: int
    last_access: datetime | None


class FreezeOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    frozen_by: str
    frozen_role: Role
    frozen_at: datetime
    reason: str


class DisposalOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    disposed_by: str
    disposed_at: datetime
    method: str
    destroyed_digest: str
    note: str


class ManagementSection(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: AssetStatus
    registration_number: str
    version: int
    content_digest: str
    registered_at: datetime
    updated_at: datetime
    freeze: FreezeOut | None = None
    disposal: DisposalOut | None = None


class LocationSection(BaseModel):
    model_config = ConfigDict(frozen=True)

    """Where the data lives: only for the holder and auditors, never for operators."""

    site_id: str
    local_ref: str


class AssetCard(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    basic: BasicSection
    rights: RightsSection
    usage: UsageSection
    management: ManagementSection
    location: LocationSection | None = None


class AssetRegistered(BaseModel):
    asset: AssetCard
    receipt: Receipt


class FederatedAssetIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    partitions: list[str] = Field(min_length=2, max_length=50)


class FederatedAssetOut(BaseModel):
    id: str
    name: str
    description: str
    partitions: list[str]
    created_by: str
    created_at: datetime
