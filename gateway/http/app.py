"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.errors import Unavailable
from gateway.http import console
from gateway.http.errors import InternalErrors, install_error_handlers
from gateway.http.middleware import BodyLimit, HttpMetrics, MetricsMiddleware
from gateway.http.routes import (
    audit,
    catalogue,
    governance,
    he,
    identities,
    jobs,
    python,
    security,
)
from gateway.service import Services


def create_app(services: Services) -> FastAPI:
    """Build the REST application over ``services``; metrics go to their registry."""
    registry = services.metrics.registry
    # The API docs (/docs, /redoc) load Swagger UI and ReDoc from the gateway itself,
    # never from a CDN.
    app: FastAPI = FastAPIOffline(
        title="Blindgate",
        version="0.1.0",
        description="Privacy-preserving data-exchange gateway: data usable, never visible.",
        static_url="/static/docs",
    )
    app.state.services = services
    app.state.registry = registry
    install_error_handlers(app)
    app.include_router(identities.router)
    app.include_router(catalogue.router)
    app.include_router(audit.router)
    app.include_router(governance.router)
    app.include_router(jobs.router)
    app.include_router(jobs.federated)
    app.include_router(he.router)
    app.include_router(python.router)
    app.include_router(python.mocks)
    app.include_router(security.router)
    app.include_router(console.router)
    app.mount("/console/static", StaticFiles(directory=console.STATIC), name="console-static")

    @app.get("/healthz", tags=["system"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["system"])
    def readyz(request: Request) -> JSONResponse:
        svc: Services = request.app.state.services
        try:
            svc.ctx.store.ping()
        except Exception:
            raise Unavailable("the store is not reachable") from None
        return JSONResponse({"status": "ready", "store": svc.ctx.store.kind})

    @app.get("/metrics", tags=["system"], include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(registry))
    app.add_middleware(
        BodyLimit,
        max_bytes=services.ctx.settings.max_body_bytes,
        larger={he.JOBS: 16 << 20, he.JOBS + "/dry-run": 16 << 20, he.JOBS + "/check": 16 << 20},
        streamed=frozenset({he.CONTEXTS}),
    )
    app.add_middleware(InternalErrors)
    return app
