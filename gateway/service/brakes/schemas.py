"""Request and response bodies of emergency suspensions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, StringConstraints

from gateway.domain import Suspension, SuspensionKind
from gateway.service.core.schemas import Strict

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
TargetId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class SuspensionIn(Strict):
    kind: SuspensionKind
    target_id: TargetId
    reason: Reason


class LiftIn(Strict):
    reason: Reason


class SuspensionOut(BaseModel):
    id: str
    kind: SuspensionKind
    target_id: str
    operator_org_id: str | None
    reason: str
    created_by: str
    created_at: datetime
    active: bool
    lifted_by: str | None
    lifted_at: datetime | None
    lift_reason: str | None
    cancelled_jobs: list[str] = []


def suspension_out(s: Suspension, cancelled: list[str] | None = None) -> SuspensionOut:
    return SuspensionOut(
        id=s.id,
        kind=s.kind,
        target_id=s.target_id,
        operator_org_id=s.operator_org_id,
        reason=s.reason,
        created_by=s.created_by,
        created_at=s.created_at,
        active=s.active,
        lifted_by=s.lifted_by,
        lifted_at=s.lifted_at,
        lift_reason=s.lift_reason,
        cancelled_jobs=cancelled or [],
    )
