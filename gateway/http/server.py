"""Running the REST application with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from gateway.http.app import create_app
from gateway.service import Services


def serve_http(services: Services) -> None:
    """Serve the REST API until interrupted (Ctrl-C or SIGTERM)."""
    settings = services.ctx.settings
    app = create_app(services)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.http_port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        loop="auto",
        http="auto",
    )
    logging.getLogger("blindgate").info(
        "REST API on http://%s:%d (store: %s)",
        settings.host,
        settings.http_port,
        services.ctx.store.kind,
    )
    uvicorn.Server(config).run()
