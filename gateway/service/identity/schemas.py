"""Request and response bodies of organisations, principals and keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from gateway.domain import Role
from gateway.service.core.schemas import Name, Strict, Text


class OrganisationCreate(Strict):
    name: Name
    description: Text = ""


class PublicKeySet(Strict):
    public_key: str | None = Field(
        description="Ed25519 public key, 32 raw bytes in standard base64; null removes it."
    )


class OrganisationOut(BaseModel):
    id: str
    name: str
    description: str
    public_key: str | None
    created_at: datetime


class PrincipalCreate(Strict):
    org_id: str
    name: Name
    role: Role


class PrincipalOut(BaseModel):
    id: str
    org_id: str
    name: str
    role: Role
    disabled: bool
    created_at: datetime


class ApiKeyOut(BaseModel):
    id: str
    principal_id: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedKey(BaseModel):
    """A new API key. ``api_key`` is shown this once and stored only as a hash."""

    key: ApiKeyOut
    api_key: str


class PrincipalCreated(BaseModel):
    principal: PrincipalOut
    key: ApiKeyOut
    api_key: str


class KeyRotate(Strict):
    revoke_existing: bool = Field(
        default=True, description="Revoke every other active key of the principal."
    )


class PrincipalState(Strict):
    disabled: bool


class WhoAmI(BaseModel):
    principal: PrincipalOut
    organisation: OrganisationOut
    key_id: str | None
