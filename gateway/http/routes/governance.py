"""Policies, licences, budgets and settlements."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from starlette.concurrency import run_in_threadpool

from gateway.errors import ValidationFailed
from gateway.http.deps import Caller, Paging, Svc, source
from gateway.service.core.context import utc_instant
from gateway.service.core.schemas import PageOut
from gateway.service.governance.schemas import (
    BudgetOut,
    LicenceAcceptIn,
    LicenceOfferIn,
    LicenceOut,
    LicenceRevokeIn,
    PolicySetIn,
    PolicyVersionOut,
    PolicyVersionSummary,
    SettlementOut,
    UsageOut,
)

router = APIRouter(prefix="/v1")
_YAML = {"application/yaml", "application/x-yaml", "text/yaml"}


@router.get("/policy-schema", tags=["policies"])
def policy_schema(svc: Svc, actor: Caller) -> dict[str, Any]:
    """The JSON Schema every policy document is validated against."""
    return svc.policies.schema()


@router.put(
    "/assets/{asset_id}/policy",
    tags=["policies"],
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/yaml": {"schema": {"type": "string"}},
                "application/json": {"schema": PolicySetIn.model_json_schema()},
            }
        }
    },
)
async def set_policy(asset_id: str, request: Request, svc: Svc) -> PolicyVersionOut:
    """Store a new version of the asset's policy: the YAML document as the body
    (``application/yaml``) or ``{"document": "..."}`` as JSON."""
    actor = await run_in_threadpool(
        svc.identities.authenticate, request.headers.get("authorization"), source(request)
    )
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type in _YAML:
            body = PolicySetIn(document=raw.decode("utf-8"))
        else:
            body = PolicySetIn.model_validate_json(raw)
    except (UnicodeDecodeError, ValueError):
        raise ValidationFailed(
            'the body must be a UTF-8 YAML document or {"document": ...}'
        ) from None
    return await run_in_threadpool(
        lambda: svc.policies.set(
            actor, asset_id, body.document, signature=body.signature, signed_at=body.signed_at
        )
    )


@router.get("/assets/{asset_id}/policy", tags=["policies"])
def get_policy(asset_id: str, svc: Svc, actor: Caller) -> PolicyVersionOut:
    return svc.policies.get(actor, asset_id)


@router.get("/assets/{asset_id}/policy/versions", tags=["policies"])
def policy_versions(asset_id: str, svc: Svc, actor: Caller) -> list[PolicyVersionSummary]:
    return svc.policies.versions(actor, asset_id)


@router.get("/assets/{asset_id}/policy/versions/{version}", tags=["policies"])
def policy_version(
    asset_id: str, version: Annotated[int, Path(ge=1, le=2**31 - 1)], svc: Svc, actor: Caller
) -> PolicyVersionOut:
    return svc.policies.get(actor, asset_id, version)


@router.post("/licences", tags=["licences"], status_code=status.HTTP_201_CREATED)
def offer_licence(body: LicenceOfferIn, svc: Svc, actor: Caller) -> LicenceOut:
    """A holder offers signed licence terms to an operator organisation."""
    return svc.licences.offer(actor, body.terms, body.holder_signature)


@router.get("/licences", tags=["licences"])
def list_licences(svc: Svc, actor: Caller, page: Paging) -> PageOut[LicenceOut]:
    return svc.licences.list(actor, page)


@router.get("/licences/{licence_id}", tags=["licences"])
def get_licence(licence_id: str, svc: Svc, actor: Caller) -> LicenceOut:
    return svc.licences.get(actor, licence_id)


@router.post("/licences/{licence_id}/accept", tags=["licences"])
def accept_licence(licence_id: str, body: LicenceAcceptIn, svc: Svc, actor: Caller) -> LicenceOut:
    """The operator countersigns the offered terms."""
    return svc.licences.accept(actor, licence_id, body.operator_signature)


@router.post("/licences/{licence_id}/revoke", tags=["licences"])
def revoke_licence(licence_id: str, body: LicenceRevokeIn, svc: Svc, actor: Caller) -> LicenceOut:
    return svc.licences.revoke(
        actor, licence_id, body.reason, signature=body.signature, signed_at=body.signed_at
    )


@router.get("/licences/{licence_id}/budget", tags=["licences"])
def licence_budget(
    licence_id: str,
    svc: Svc,
    actor: Caller,
    epsilon_per_job: Annotated[float | None, Query(gt=0, le=100)] = None,
) -> BudgetOut:
    """Remaining privacy budget per asset, and how many jobs of ``epsilon_per_job`` fit."""
    return svc.ledger.budget(actor, licence_id, epsilon_per_job)


@router.get("/licences/{licence_id}/usage", tags=["licences"])
def licence_usage(licence_id: str, svc: Svc, actor: Caller) -> UsageOut:
    return svc.ledger.usage(actor, licence_id)


@router.get("/settlements", tags=["licences"])
def settlement(
    svc: Svc, actor: Caller, period_start: datetime, period_end: datetime
) -> SettlementOut:
    """A holder's statement for revenue sharing over [period_start, period_end)."""
    start = utc_instant(period_start, "period_start")
    return svc.ledger.settlement(actor, start, utc_instant(period_end, "period_end"))
