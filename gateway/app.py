"""The gateway's running parts, started and stopped in one place.

:class:`Gateway` owns, over one set of services: the checkpoint ticker (signed
checkpoints of the trace), the site monitor (health and isolation of every site), the job
runner, the gRPC API and the REST API.  ``blindgate serve``, the demo, the tests and the
benchmarks all start a gateway this way::

    with Gateway(services, http_port=0, grpc_port=0) as gateway:   # REST in the background
        client = Client(gateway.url, key)

    Gateway(services).serve_forever()                             # REST in the foreground

Stopping reverses the start: the APIs stop taking calls, the runner finishes its jobs'
current step, the monitor and ticker stop, the failed-authentication summaries are traced,
the site connections close, and a last checkpoint is signed.
"""

from __future__ import annotations

import logging
import os
import socket
from types import TracebackType
from typing import Any

from gateway.domain import Site
from gateway.grpc.server import start_grpc
from gateway.http.server import HttpServer
from gateway.service import Services
from gateway.service.jobs.runner import JobRunner, StageObserver, make_runner
from gateway.service.trace.log import CheckpointTicker
from gateway.siteclient.pool import SiteMonitor
from sandbox.logs import install_safe_records

log = logging.getLogger("blindgate")


class Gateway:
    """REST, gRPC, the job runner, the checkpoint ticker and the site monitor."""

    def __init__(
        self,
        services: Services,
        *,
        http_port: int | None = None,
        grpc_port: int | None = None,
        runner: bool = True,
        owner: str | None = None,
        observe: StageObserver | None = None,
    ) -> None:
        install_safe_records()  # no caller-supplied text can forge a log line
        settings = services.ctx.settings
        self.services = services
        self.http_port = settings.http_port if http_port is None else http_port
        self.grpc_port = settings.grpc_port if grpc_port is None else grpc_port
        self.runner: JobRunner | None = None
        if runner:
            owner = owner or f"{socket.gethostname()}:{os.getpid()}"
            self.runner = make_runner(services, owner=owner, observe=observe)
        self._ticker = CheckpointTicker(
            services.audit.log,
            settings.checkpoint_interval_seconds,
            failed=services.metrics.checkpoint_failures.inc,
        )
        self._monitor = SiteMonitor(
            services.site_pool, self._sites, settings.site_check_interval_seconds
        )
        self._grpc: Any = None
        self._http: HttpServer | None = None
        self._started: list[str] = []

    @property
    def url(self) -> str:
        """The REST API's base URL (once started)."""
        if self._http is None:
            raise RuntimeError("the REST API is not running")
        return self._http.url

    def _sites(self) -> list[Site]:
        with self.services.ctx.store.read() as tx:
            found: list[Site] = tx.list_sites(org_id=None, after=None, limit=10_000)
        return found

    def start(self, *, http: bool = True) -> Gateway:
        """Start every part; the REST API runs in the background when ``http``."""
        try:
            self._ticker.start()
            self._started.append("ticker")
            self.services.watch.history.start()
            self._started.append("history")
            self.services.identities.failures.start()
            self._started.append("auth-failures")
            if self.services.site_pool.tls is not None:
                self._monitor.start()
                self._started.append("monitor")
            if self.runner is not None:
                self.runner.start()
                self._started.append("runner")
            address = f"{self.services.ctx.settings.host}:{self.grpc_port}"
            self._grpc, self.grpc_port = start_grpc(self.services, address=address)
            self._started.append("grpc")
            if http:
                self._http = HttpServer(self.services, port=self.http_port)
                self.http_port = self._http.start()
                self._started.append("http")
        except BaseException:
            self.stop()
            raise
        return self

    def serve_forever(self) -> None:
        """Start every part and serve REST in the foreground until interrupted."""
        self.start(http=False)
        try:
            self._http = HttpServer(self.services, port=self.http_port)
            self._http.run()
        finally:
            self._http = None
            self.stop()

    def stop(self) -> None:
        """Stop whatever was started, last first, then sign a final checkpoint."""
        started, self._started = self._started, []
        if "http" in started and self._http is not None:
            self._http.stop()
        if "grpc" in started:
            self._grpc.stop(grace=2)
        if "runner" in started and self.runner is not None:
            self.runner.stop()
        if "monitor" in started:
            self._monitor.stop()
        if "ticker" in started:
            self._ticker.stop()
        if "history" in started:
            self.services.watch.history.stop()
        if "auth-failures" in started:
            self.services.identities.failures.stop()  # traces every open group
        if started:
            self.services.site_pool.close()
            self.services.he.workspace.close()
            self.services.audit.log.checkpoint()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
