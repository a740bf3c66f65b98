"""The trace: entries, checkpoints and proofs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from gateway.errors import BadRequest
from gateway.http.deps import Caller, Svc
from gateway.service.trace.schemas import (
    CheckpointOut,
    ConsistencyProofOut,
    FrontierOut,
    InclusionProofOut,
    LogInfo,
    TracePage,
)

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Size = Annotated[int, Query(ge=0, le=2**62)]
ENTRY_FILTERS = (
    "limit",
    "cursor",
    "action",
    "asset_id",
    "actor_org",
    "org",
    "principal",
    "decision",
    "since",
    "until",
    "order",
)


@router.get("/log")
def log_info(svc: Svc, actor: Caller) -> LogInfo:
    """The log's origin, its checkpoint verifier key and its current size."""
    return svc.audit.info(actor)


@router.get("/entries")
def entries(
    request: Request,
    svc: Svc,
    actor: Caller,
    limit: int | None = None,
    cursor: str | None = None,
    action: str | None = None,
    asset_id: str | None = None,
    actor_org: str | None = None,
    org: Annotated[str | None, Query(description="Actor's or subject's organisation")] = None,
    principal: Annotated[str | None, Query(description="The acting principal")] = None,
    decision: Annotated[str | None, Query(pattern="^(allow|deny)$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    order: Annotated[str, Query(pattern="^(log|newest)$")] = "log",
) -> TracePage:
    """Entries in log order (``order=newest``: newest first, ``cursor`` then pages back).
    Auditors see all; holders, entries on their organisation's objects; operators and
    admins, their organisation's own actions. An unknown parameter is refused (400)."""
    unknown = sorted(set(request.query_params) - set(ENTRY_FILTERS))
    if unknown:
        named = ", ".join(u[:40] for u in unknown[:5])
        raise BadRequest(f"unknown filter {named}; filters are {', '.join(ENTRY_FILTERS)}")
    return svc.audit.entries(
        actor,
        limit=limit,
        cursor=cursor,
        action=action,
        asset_id=asset_id,
        actor_org=actor_org,
        since=since,
        until=until,
        principal=principal,
        org=org,
        decision=decision,
        newest=order == "newest",
    )


@router.get("/checkpoint")
def latest_checkpoint(svc: Svc, actor: Caller) -> CheckpointOut:
    return svc.audit.checkpoint(actor, fresh=False)


@router.post("/checkpoint")
def new_checkpoint(svc: Svc, actor: Caller) -> CheckpointOut:
    """Sign a checkpoint at the current size now (auditors and admins)."""
    return svc.audit.checkpoint(actor, fresh=True)


@router.get("/checkpoints")
def checkpoints(
    svc: Svc,
    actor: Caller,
    after_size: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> list[CheckpointOut]:
    """Every stored checkpoint in order of size (auditors)."""
    return svc.audit.checkpoints(actor, after_size=after_size, limit=limit)


@router.get("/proofs/inclusion")
def inclusion(svc: Svc, actor: Caller, index: Size, size: Size) -> InclusionProofOut:
    return svc.audit.inclusion(actor, index, size)


@router.get("/proofs/consistency")
def consistency(
    svc: Svc,
    actor: Caller,
    from_size: Annotated[int, Query(alias="from", ge=0, le=2**62)],
    to_size: Annotated[int, Query(alias="to", ge=0, le=2**62)],
) -> ConsistencyProofOut:
    return svc.audit.consistency(actor, from_size, to_size)


@router.get("/proofs/frontier")
def frontier(svc: Svc, actor: Caller, size: Size) -> FrontierOut:
    """The roots of the perfect subtrees covering the first ``size`` entries: with a
    checkpoint of that size, a verifier re-hashes only the entries after it."""
    return svc.audit.frontier(actor, size)
