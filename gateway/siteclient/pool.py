"""The gateway's connections to site agents: one pinned mTLS client per registered site,
with per-site metrics, and a monitor that records each site's health and isolation."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge

from gateway.domain import Site
from gateway.errors import Unavailable
from gateway.siteclient.client import SiteClient, SiteMetrics
from sandbox.wire import AgentProof, HealthReport

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GatewayTls:
    """The gateway's client identity towards site agents, and the CA that issued theirs."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def from_files(cls, ca: Path, cert: Path, key: Path) -> GatewayTls:
        return cls(ca.read_bytes(), cert.read_bytes(), key.read_bytes())


class SitePool:
    """Pinned clients by site; a site re-registered with a new address or certificate
    gets a new client."""

    def __init__(self, tls: GatewayTls | None, registry: CollectorRegistry) -> None:
        self.tls = tls
        self.metrics = SiteMetrics(registry)
        self.up = Gauge(
            "blindgate_site_up",
            "Whether the site agent answered its last health check with its registered certificate",
            ["site"],
            registry=registry,
        )
        self.isolation = Gauge(
            "blindgate_site_isolation_layer",
            "Isolation layers the site agent reports as active (1) or absent (0)",
            ["site", "layer"],
            registry=registry,
        )
        self.level = Gauge(
            "blindgate_site_isolation_level",
            "The site agent's isolation level (the label set to 1)",
            ["site", "level"],
            registry=registry,
        )
        self._clients: dict[str, tuple[tuple[str, str], SiteClient]] = {}
        self._lock = threading.Lock()
        self.reports: dict[str, tuple[float, HealthReport | None]] = {}
        """The last health check of each site by id: (Unix time, report or None if it
        failed), for the security console."""

    def client(self, site: Site) -> SiteClient:
        if self.tls is None:
            raise Unavailable("the gateway has no client certificate for site agents configured")
        key = (site.grpc_address, site.tls_fingerprint)
        with self._lock:
            known = self._clients.get(site.id)
            if known is not None and known[0] == key:
                return known[1]
            client = SiteClient(
                site.grpc_address,
                self.tls.ca_pem,
                self.tls.cert_pem,
                self.tls.key_pem,
                site.tls_fingerprint,
                site=site.name,
                metrics=self.metrics,
                timeout=10.0,
                attempts=2,
            )
            self._clients[site.id] = (key, client)
        if known is not None:
            known[1].close()
        return client

    def prove(self, address: str, fingerprint: str, challenge: bytes) -> AgentProof:
        """Ask the agent at ``address``, pinned to certificate ``fingerprint``, to prove who
        it is over ``challenge`` (a site being registered: no client is kept, and nothing is
        counted under a site label until the site exists)."""
        if self.tls is None:
            raise Unavailable("the gateway has no client certificate for site agents configured")
        with SiteClient(
            address,
            self.tls.ca_pem,
            self.tls.cert_pem,
            self.tls.key_pem,
            fingerprint,
            site=address,
            timeout=10.0,
            attempts=2,
        ) as client:
            return client.prove(challenge)

    def check(self, site: Site) -> HealthReport:
        """Health of one site, recorded in the gauges; raises if it is unreachable."""
        try:
            report = self.client(site).health(timeout=5.0)
        except Exception:
            self.up.labels(site.name).set(0)
            self.reports[site.id] = (time.time(), None)
            raise
        self.up.labels(site.name).set(1)
        self.reports[site.id] = (time.time(), report)
        for layer, active in report.layers.items():
            self.isolation.labels(site.name, layer).set(1 if active else 0)
        for level in ("strong", "medium", "weak"):
            self.level.labels(site.name, level).set(1 if report.isolation_level == level else 0)
        return report

    def close(self) -> None:
        with self._lock:
            clients = [c for _, c in self._clients.values()]
            self._clients.clear()
        for client in clients:
            client.close()


class SiteMonitor:
    """Checks every registered site's health every ``interval`` seconds."""

    def __init__(
        self, pool: SitePool, sites: Callable[[], Iterable[Site]], interval: float = 30.0
    ) -> None:
        self.pool = pool
        self.sites = sites
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="site-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def check_all(self) -> dict[str, bool]:
        """Check every site now; return reachability by site id."""
        result = {}
        for site in self.sites():
            try:
                self.pool.check(site)
                result[site.id] = True
            except Exception as exc:  # an unreachable site must not stop the others
                log.warning("site %s is unreachable: %s", site.name, type(exc).__name__)
                result[site.id] = False
        return result

    def _run(self) -> None:
        while True:
            self.check_all()
            if self._stop.wait(self.interval):
                return
