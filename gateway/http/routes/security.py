"""Emergency suspensions (auditors)."""

from __future__ import annotations

from fastapi import APIRouter, status

from gateway.http.deps import Caller, Svc
from gateway.service.brakes.schemas import LiftIn, SuspensionIn, SuspensionOut

router = APIRouter(prefix="/v1/suspensions", tags=["security"])


@router.post("", status_code=status.HTTP_201_CREATED)
def suspend(svc: Svc, actor: Caller, body: SuspensionIn) -> SuspensionOut:
    """Suspend an operator organisation, a principal or a licence now (auditors): its live
    jobs are cancelled (at the sites too) and new ones are refused until an auditor lifts
    the suspension."""
    return svc.brakes.suspend(actor, body)


@router.get("")
def suspensions(svc: Svc, actor: Caller, active: bool | None = None) -> list[SuspensionOut]:
    """Suspensions, oldest first; ``active=true`` for those in force (auditors, admins)."""
    return svc.brakes.list(actor, active=active)


@router.post("/{suspension_id}/lift")
def lift(svc: Svc, actor: Caller, suspension_id: str, body: LiftIn) -> SuspensionOut:
    """Lift a suspension (auditors only)."""
    return svc.brakes.lift(actor, suspension_id, body)
