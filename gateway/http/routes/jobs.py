"""Federated SQL aggregate jobs."""

from __future__ import annotations

from fastapi import APIRouter, status

from gateway.domain import JobState
from gateway.http.deps import Caller, Paging, Svc
from gateway.service.catalogue.schemas import FederatedAssetIn, FederatedAssetOut
from gateway.service.core.schemas import PageOut
from gateway.service.governance.schemas import DecisionOut
from gateway.service.jobs.schemas import ApprovalIn, JobOut, JobResultOut, JobSubmitIn

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=status.HTTP_201_CREATED)
def submit(body: JobSubmitIn, svc: Svc, actor: Caller) -> JobOut:
    """Submit a SQL aggregate job: analysed and decided at once; denied jobs say why."""
    return svc.jobs.submit(actor, body)


@router.post("/check")
def check(body: JobSubmitIn, svc: Svc, actor: Caller) -> DecisionOut:
    """The decision on a SQL job — every reason with its fix — without running or charging."""
    return svc.jobs.check(actor, body)


@router.get("")
def list_jobs(
    svc: Svc, actor: Caller, page: Paging, state: JobState | None = None
) -> PageOut[JobOut]:
    return svc.jobs.list(actor, page, state)


@router.get("/{job_id}")
def get_job(job_id: str, svc: Svc, actor: Caller) -> JobOut:
    return svc.jobs.get(actor, job_id)


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
