"""SQL for the security team's views: emergency suspensions, and the cheap aggregate
reads that metrics are collected from at scrape time (job counts, the queue's oldest
entry, charges per asset, the last checkpoint's time)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlmodel import Session

from gateway.domain import JobState, Suspension, SuspensionKind
from gateway.store.models import BudgetChargeRow, JobRow, SuspensionRow, TraceCheckpointRow

_suspension = SuspensionRow.__table__  # type: ignore[attr-defined]
_job = JobRow.__table__  # type: ignore[attr-defined]
_charge = BudgetChargeRow.__table__  # type: ignore[attr-defined]
_checkpoint = TraceCheckpointRow.__table__  # type: ignore[attr-defined]


def _from(row: Mapping[Any, Any]) -> Suspension:
    values = dict(row)
    values["kind"] = SuspensionKind(values["kind"])
    return Suspension(**values)


class SecurityTx:
    """Mixed into :class:`gateway.store.sql.SqlTx`, which provides the session."""

    session: Session

    def add_suspension(self, suspension: Suspension) -> None:
        values = asdict(suspension)
        values["kind"] = str(suspension.kind)
        self.session.execute(insert(_suspension).values(**values))

    def get_suspension(self, suspension_id: str) -> Suspension | None:
        row = self.session.execute(
            select(_suspension).where(_suspension.c.id == suspension_id)
        ).mappings()
        found = row.first()
        return _from(found) if found is not None else None

    def list_suspensions(
        self,
        *,
        active: bool | None = None,
        kind: SuspensionKind | None = None,
        target_id: str | None = None,
        limit: int = 1000,
    ) -> list[Suspension]:
        q = select(_suspension).order_by(_suspension.c.created_at, _suspension.c.id).limit(limit)
        if active is True:
            q = q.where(_suspension.c.lifted_at.is_(None))
        elif active is False:
            q = q.where(_suspension.c.lifted_at.is_not(None))
        if kind is not None:
            q = q.where(_suspension.c.kind == str(kind))
        if target_id is not None:
            q = q.where(_suspension.c.target_id == target_id)
        return [_from(r) for r in self.session.execute(q).mappings()]

    def lift_suspension(self, suspension_id: str, *, by: str, at: datetime, reason: str) -> bool:
        """Lift an active suspension; whether it was active."""
        result = self.session.execute(
            update(_suspension)
            .where(_suspension.c.id == suspension_id, _suspension.c.lifted_at.is_(None))
            .values(lifted_by=by, lifted_at=at, lift_reason=reason)
        )
        return bool(getattr(result, "rowcount", 0))

    # aggregates for metrics ----------------------------------------------------------------
    def job_counts(self) -> list[tuple[str, str, int]]:
        """``(kind, state, count)`` over every stored job (one indexed GROUP BY)."""
        q = select(_job.c.kind, _job.c.state, func.count()).group_by(_job.c.kind, _job.c.state)
        return [(str(k), str(s), int(n)) for k, s, n in self.session.execute(q)]

    def oldest_queued_at(self) -> datetime | None:
        """When the oldest job still waiting in the queue was submitted."""
        q = select(func.min(_job.c.created_at)).where(_job.c.state == str(JobState.QUEUED))
        found: datetime | None = self.session.execute(q).scalar_one_or_none()
        return found

    def charge_totals(self, since: datetime) -> list[tuple[str, float, float]]:
        """``(asset_id, epsilon, delta)`` charged since ``since`` (refunds excluded)."""
        q = (
            select(_charge.c.asset_id, func.sum(_charge.c.epsilon), func.sum(_charge.c.delta))
            .where(_charge.c.at >= since, _charge.c.refunded_at.is_(None))
            .group_by(_charge.c.asset_id)
        )
        return [(str(a), float(e or 0), float(d or 0)) for a, e, d in self.session.execute(q)]

    def last_checkpoint_at(self) -> datetime | None:
        """When the newest stored checkpoint was signed."""
        q = select(_checkpoint.c.created_at).order_by(_checkpoint.c.size.desc()).limit(1)
        found: datetime | None = self.session.execute(q).scalar_one_or_none()
        return found
