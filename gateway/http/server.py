"""Running the REST application with uvicorn, in the foreground or on a thread."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from gateway.http.app import create_app
from gateway.http.protocol import BoundedHeadProtocol
from gateway.service import Services

log = logging.getLogger("blindgate")


class HttpServer:
    """The REST API on ``host:port`` (port 0: any free port, known once started)."""

    def __init__(self, services: Services, *, port: int | None = None) -> None:
        settings = services.ctx.settings
        self.services = services
        self.host = settings.host
        self.port = settings.http_port if port is None else port
        self._server = uvicorn.Server(
            uvicorn.Config(
                create_app(services),
                host=self.host,
                port=self.port,
                log_level=settings.log_level,
                access_log=False,
                server_header=False,
                lifespan="off",
                http=BoundedHeadProtocol.bounded(
                    settings.max_header_bytes, settings.header_timeout_seconds
                ),
                ws="none",
                timeout_keep_alive=max(1, round(settings.keep_alive_seconds)),
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C or SIGTERM)."""
        log.info("REST API on %s (store: %s)", self.url, self.services.ctx.store.kind)
        self._server.run()

    def start(self, timeout: float = 20.0) -> int:
        """Serve on a thread; return the bound port once it accepts connections."""
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise OSError(f"the REST API could not listen on {self.host}:{self.port}")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        log.info("REST API on %s (store: %s)", self.url, self.services.ctx.store.kind)
        return self.port

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
