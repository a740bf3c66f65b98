"""Federated SQL aggregate jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, status
from pydantic import Discriminator, Tag

from gateway.domain import JobState
from gateway.http.deps import Caller, Paging, Svc, deprecated_for
from gateway.service.catalogue.schemas import FederatedAssetIn, FederatedAssetOut
from gateway.service.core.schemas import PageOut
from gateway.service.governance.schemas import DecisionOut, JobDescriptionIn
from gateway.service.jobs.completion import MAX_WAIT_SECONDS
from gateway.service.jobs.schemas import ApprovalIn, JobOut, JobResultOut, JobSubmitIn

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
DRY_RUN = "/v1/jobs/dry-run"


def _dry_run_shape(value: Any) -> str:
    """A SQL job carries ``sql``; a structural description does not (both forbid extras)."""
    if isinstance(value, dict):
        return "sql_job" if "sql" in value else "job_description"
    return "sql_job" if isinstance(value, JobSubmitIn) else "job_description"


DryRunIn = Annotated[
    Annotated[JobSubmitIn, Tag("sql_job")] | Annotated[JobDescriptionIn, Tag("job_description")],
    Discriminator(_dry_run_shape),
    Body(
        title="DryRunIn",
        description="A SQL job, as for POST /v1/jobs, or a structural job description",
    ),
]


@router.post("", status_code=status.HTTP_201_CREATED)
def submit(body: JobSubmitIn, svc: Svc, actor: Caller) -> JobOut:
    """Submit a SQL aggregate job: analysed and decided at once; denied jobs say why."""
    return svc.jobs.submit(actor, body)


@router.post("/dry-run")
def dry_run(body: DryRunIn, svc: Svc, actor: Caller) -> DecisionOut:
    """The policy decision for a job, every reason with its fix; nothing is stored, run or
    charged. The body is a SQL job (as for ``POST /v1/jobs``: its SQL is analysed) or a
    structural description (kind, purpose, ε, assets and every column with its usage)."""
    if isinstance(body, JobSubmitIn):
        return svc.jobs.check(actor, body)
    return svc.decisions.dry_run(actor, body)


@router.post("/check", deprecated=True, dependencies=[deprecated_for(DRY_RUN)])
def check(body: JobSubmitIn, svc: Svc, actor: Caller) -> DecisionOut:
    """Deprecated: use ``POST /v1/jobs/dry-run``, which takes the same SQL job."""
    return svc.jobs.check(actor, body)


@router.get("")
def list_jobs(
    svc: Svc, actor: Caller, page: Paging, state: JobState | None = None
) -> PageOut[JobOut]:
    return svc.jobs.list(actor, page, state)


@router.get("/{job_id}")
async def get_job(
    job_id: str,
    svc: Svc,
    actor: Caller,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
) -> JobOut:
    """The job; with ``wait=S`` (seconds, at most 30) the answer comes as soon as the job
    is finished, or after ``S`` seconds with the job as it then is (a long poll)."""
    return await svc.jobs.wait(actor, job_id, wait)


@router.get("/{job_id}/result")
def job_result(job_id: str, svc: Svc, actor: Caller) -> JobResultOut:
    """The released, noised result with, per cell, the mechanism, scale and epsilon, and
    the trace receipt of its release."""
    return svc.jobs.result(actor, job_id)


@router.post("/{job_id}/approve")
def approve(job_id: str, body: ApprovalIn, svc: Svc, actor: Caller) -> JobOut:
    return svc.jobs.approve(actor, job_id, body, approve=True)


@router.post("/{job_id}/reject")
def reject(job_id: str, body: ApprovalIn, svc: Svc, actor: Caller) -> JobOut:
    return svc.jobs.approve(actor, job_id, body, approve=False)


@router.post("/{job_id}/cancel")
def cancel(job_id: str, svc: Svc, actor: Caller) -> JobOut:
    return svc.jobs.cancel(actor, job_id)


federated = APIRouter(prefix="/v1/federated-assets", tags=["assets"])


@federated.post("", status_code=status.HTTP_201_CREATED)
def register_federated(body: FederatedAssetIn, svc: Svc, actor: Caller) -> FederatedAssetOut:
    """Register partitions with one schema as one federated asset (admins)."""
    return svc.federated.register(actor, body)


@federated.get("")
def list_federated(svc: Svc, actor: Caller, page: Paging) -> PageOut[FederatedAssetOut]:
    return svc.federated.list(actor, page)


@federated.get("/{fed_id}")
def get_federated(fed_id: str, svc: Svc, actor: Caller) -> FederatedAssetOut:
    return svc.federated.get(actor, fed_id)
