"""SQL persistence of jobs: the job table is the queue shared by every gateway process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from gateway.domain import FederatedAsset, Job, JobState
from gateway.store.models import FederatedAssetRow, JobAssetRow, JobRow

_job = JobRow.__table__  # type: ignore[attr-defined]
_job_asset = JobAssetRow.__table__  # type: ignore[attr-defined]


def _from(row: Mapping[Any, Any]) -> Job:
    values = dict(row)
    values["state"] = JobState(values["state"])
    return Job(**values)


def add_job(session: Session, job: Job, holders: Mapping[str, str]) -> None:
    """Store ``job``; ``holders`` maps each asset id to its holder organisation."""
    values = asdict(job)
    values["state"] = str(job.state)
    session.execute(insert(JobRow).values(**values))
    session.execute(
        insert(JobAssetRow),
        [{"job_id": job.id, "asset_id": a, "holder_org_id": o} for a, o in holders.items()],
    )


def get_job(session: Session, job_id: str) -> Job | None:
    row = session.execute(select(_job).where(_job.c.id == job_id)).mappings().first()
    return _from(row) if row else None


def job_holders(session: Session, job_id: str) -> dict[str, str]:
    q = select(_job_asset.c.asset_id, _job_asset.c.holder_org_id).where(
        _job_asset.c.job_id == job_id
    )
    return {str(a): str(o) for a, o in session.execute(q)}


def find_job(session: Session, operator_org_id: str, idempotency_key: str) -> Job | None:
    q = select(_job).where(
        _job.c.operator_org_id == operator_org_id, _job.c.idempotency_key == idempotency_key
    )
    row = session.execute(q).mappings().first()
    return _from(row) if row else None


def list_jobs(
    session: Session,
    *,
    operator_org_id: str | None,
    holder_org_id: str | None,
    states: Sequence[JobState] | None,
    after: str | None,
    limit: int,
) -> list[Job]:
    q = select(_job).order_by(_job.c.id).limit(limit)
    if operator_org_id is not None:
        q = q.where(_job.c.operator_org_id == operator_org_id)
    if holder_org_id is not None:
        q = q.where(
            _job.c.id.in_(
                select(_job_asset.c.job_id).where(_job_asset.c.holder_org_id == holder_org_id)
            )
        )
    if states:
        q = q.where(_job.c.state.in_([str(s) for s in states]))
    if after is not None:
        q = q.where(_job.c.id > after)
    return [_from(r) for r in session.execute(q).mappings()]


def update_job(
    session: Session,
    job_id: str,
    expected: Sequence[JobState],
    *,
    lease_owner: str | None = None,
    **values: Any,
) -> bool:
    """Change a job only if it is in one of the ``expected`` states (and, with
    ``lease_owner``, still leased to that owner); return whether it was changed."""
    if "state" in values:
        values["state"] = str(values["state"])
    q = update(_job).where(_job.c.id == job_id, _job.c.state.in_([str(s) for s in expected]))
    if lease_owner is not None:
        q = q.where(_job.c.lease_owner == lease_owner)
    result = session.execute(q.values(**values))
    return bool(getattr(result, "rowcount", 0))


def claim_next(session: Session, owner: str, now: datetime, until: datetime) -> Job | None:
    """Take the oldest queued job: lease it to ``owner`` and mark it running."""
    q = (
        select(_job.c.id)
        .where(_job.c.state == str(JobState.QUEUED))
        .order_by(_job.c.created_at, _job.c.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    job_id = session.execute(q).scalar_one_or_none()
    if job_id is None:
        return None
    session.execute(
        update(_job)
        .where(_job.c.id == job_id)
        .values(
            state=str(JobState.RUNNING),
            lease_owner=owner,
            lease_until=until,
            attempts=_job.c.attempts + 1,
            updated_at=now,
        )
    )
    return get_job(session, str(job_id))


def expired_running(session: Session, now: datetime) -> list[Job]:
    q = select(_job).where(_job.c.state == str(JobState.RUNNING), _job.c.lease_until < now)
    return [_from(r) for r in session.execute(q).mappings()]


def expired_approvals(session: Session, now: datetime) -> list[Job]:
    """Jobs still pending approval whose approval window has passed."""
    q = select(_job).where(
        _job.c.state == str(JobState.PENDING_APPROVAL), _job.c.approval_expires_at <= now
    )
    return [_from(r) for r in session.execute(q).mappings()]


_federated = FederatedAssetRow.__table__  # type: ignore[attr-defined]


def add_federated(session: Session, fed: FederatedAsset) -> None:
    session.execute(insert(FederatedAssetRow).values(**asdict(fed)))


def get_federated(session: Session, fed_id: str) -> FederatedAsset | None:
    row = session.execute(select(_federated).where(_federated.c.id == fed_id)).mappings().first()
    return FederatedAsset(**row) if row else None


def list_federated(session: Session, *, after: str | None, limit: int) -> list[FederatedAsset]:
    q = select(_federated).order_by(_federated.c.id).limit(limit)
    if after is not None:
        q = q.where(_federated.c.id > after)
    return [FederatedAsset(**row) for row in session.execute(q).mappings()]
