"""Organisations, principals, API keys."""

from __future__ import annotations

from fastapi import APIRouter, status

from gateway.http.deps import Caller, Paging, Svc
from gateway.service.core.schemas import PageOut
from gateway.service.identity.schemas import (
    ApiKeyOut,
    IssuedKey,
    KeyRotate,
    OrganisationCreate,
    OrganisationOut,
    PrincipalCreate,
    PrincipalCreated,
    PrincipalOut,
    PrincipalState,
    PublicKeySet,
    WhoAmI,
)

router = APIRouter(prefix="/v1", tags=["identities"])


@router.get("/me")
def whoami(svc: Svc, actor: Caller) -> WhoAmI:
    return svc.identities.whoami(actor)


@router.post("/organisations", status_code=status.HTTP_201_CREATED)
def create_org(body: OrganisationCreate, svc: Svc, actor: Caller) -> OrganisationOut:
    return svc.identities.create_org(actor, body)


@router.get("/organisations")
def list_orgs(svc: Svc, actor: Caller, page: Paging) -> PageOut[OrganisationOut]:
    return svc.identities.list_orgs(actor, page)


@router.get("/organisations/{org_id}")
def get_org(org_id: str, svc: Svc, actor: Caller) -> OrganisationOut:
    return svc.identities.get_org(actor, org_id)


@router.put("/organisations/{org_id}/public-key")
def set_public_key(org_id: str, body: PublicKeySet, svc: Svc, actor: Caller) -> OrganisationOut:
    return svc.identities.set_public_key(actor, org_id, body.public_key)


@router.post("/principals", status_code=status.HTTP_201_CREATED)
def create_principal(body: PrincipalCreate, svc: Svc, actor: Caller) -> PrincipalCreated:
    return svc.identities.create_principal(actor, body)


@router.get("/principals")
def list_principals(
    svc: Svc, actor: Caller, page: Paging, org_id: str | None = None
) -> PageOut[PrincipalOut]:
    return svc.identities.list_principals(actor, org_id, page)


@router.get("/principals/{principal_id}")
def get_principal(principal_id: str, svc: Svc, actor: Caller) -> PrincipalOut:
    return svc.identities.get_principal(actor, principal_id)


@router.patch("/principals/{principal_id}")
def set_principal_state(
    principal_id: str, body: PrincipalState, svc: Svc, actor: Caller
) -> PrincipalOut:
    return svc.identities.set_disabled(actor, principal_id, body.disabled)


@router.get("/principals/{principal_id}/keys")
def list_keys(principal_id: str, svc: Svc, actor: Caller) -> list[ApiKeyOut]:
    return svc.identities.list_keys(actor, principal_id)


@router.post("/principals/{principal_id}/keys", status_code=status.HTTP_201_CREATED)
def rotate_key(principal_id: str, body: KeyRotate, svc: Svc, actor: Caller) -> IssuedKey:
    return svc.identities.rotate_key(actor, principal_id, body.revoke_existing)


@router.delete("/principals/{principal_id}/keys/{key_id}")
def revoke_key(principal_id: str, key_id: str, svc: Svc, actor: Caller) -> ApiKeyOut:
    return svc.identities.revoke_key(actor, principal_id, key_id)
