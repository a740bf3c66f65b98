"""Python jobs (syft-rds job folders) and mock data."""

from __future__ import annotations

from fastapi import APIRouter, status

from gateway.http.deps import Caller, Svc
from gateway.service.governance.schemas import DecisionOut
from gateway.service.jobs.mocks import MockIn, MockOut
from gateway.service.jobs.schemas import JobOut, PythonJobIn

router = APIRouter(prefix="/v1/python", tags=["python"])
mocks = APIRouter(prefix="/v1/assets", tags=["python"])


@mocks.get("/{asset_id}/mock")
def get_mock(asset_id: str, svc: Svc, actor: Caller) -> MockOut:
    """The asset's mock data (CSV): the holder's upload, or generated from the asset's
    schema, its policy's bounds and declared keys (no data is read)."""
    return svc.mocks.get(actor, asset_id)


@mocks.put("/{asset_id}/mock")
def put_mock(asset_id: str, body: MockIn, svc: Svc, actor: Caller) -> MockOut:
    """The holder sets the mock operators get (its header is the asset's columns)."""
    return svc.mocks.put(actor, asset_id, body)


@router.post("/jobs", status_code=status.HTTP_201_CREATED)
def submit(body: PythonJobIn, svc: Svc, actor: Caller) -> JobOut:
    """Submit a Python job: a syft-rds job folder as a base64 tar.gz. It is decided at once
    (the policy's python rules; approval by code hash), runs at each site's sandbox, and
    its outputs wait at the sites for the holders' review; read it and its result under
    /v1/jobs."""
    return svc.jobs.submit(actor, body)


@router.post("/jobs/dry-run")
def dry_run(body: PythonJobIn, svc: Svc, actor: Caller) -> DecisionOut:
    """The decision on a Python job, every reason with its fix, without running it."""
    return svc.jobs.check(actor, body)
