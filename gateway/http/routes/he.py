"""HE jobs: public context bundles and job submission."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, status

from gateway.errors import BlindgateError, ValidationFailed
from gateway.http.deps import Caller, Svc, deprecated_for
from gateway.service.governance.schemas import DecisionOut
from gateway.service.jobs.schemas import HeContextOut, HeJobIn, JobOut
from sandbox.he_format import MAX_BUNDLE_BYTES

router = APIRouter(prefix="/v1/he", tags=["he"])
CONTEXTS = "/v1/he/contexts"
JOBS = "/v1/he/jobs"


@router.post("/contexts", status_code=status.HTTP_201_CREATED)
async def upload_context(request: Request, svc: Svc, actor: Caller) -> HeContextOut:
    """Upload a public context bundle (``application/octet-stream``), streamed.

    Send ``Content-Length`` and ``X-Content-SHA256`` (the bundle's SHA-256, lowercase
    hex). The bundle is stored once and checked in a sandbox: a context carrying a
    secret key, or with parameters off the allow-list, is refused.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/octet-stream":
        raise BlindgateError(code="unsupported_media_type")
    try:
        size = int(request.headers["content-length"])
    except (KeyError, ValueError):
        raise ValidationFailed("Content-Length is required") from None
    if not 0 < size <= MAX_BUNDLE_BYTES:
        raise BlindgateError(code="body_too_large")
    sha256 = request.headers.get("x-content-sha256", "").strip().lower()

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            if chunk:
                yield chunk

    return await svc.he.upload(actor, chunks(), size, sha256)


@router.get("/contexts/{sha256}")
def get_context(sha256: str, svc: Svc, actor: Caller) -> HeContextOut:
    """A stored bundle's schemes and parameters."""
    return svc.he.context(actor, sha256)


@router.post("/jobs", status_code=status.HTTP_201_CREATED)
def submit(body: HeJobIn, svc: Svc, actor: Caller) -> JobOut:
    """Submit an ``he_aggregate`` or ``he_linear`` job; read it and its result under /v1/jobs."""
    return svc.jobs.submit(actor, body)


@router.post("/jobs/dry-run")
def dry_run(body: HeJobIn, svc: Svc, actor: Caller) -> DecisionOut:
    """The decision on an HE job, every reason with its fix, without running or charging."""
    return svc.jobs.check(actor, body)


@router.post("/jobs/check", deprecated=True, dependencies=[deprecated_for(JOBS + "/dry-run")])
def check(body: HeJobIn, svc: Svc, actor: Caller) -> DecisionOut:
    """Deprecated: use ``POST /v1/he/jobs/dry-run``, which takes the same HE job."""
    return svc.jobs.check(actor, body)
