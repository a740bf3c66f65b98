"""The gateway's view of its sites: health and isolation over pinned mutual TLS, metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from gateway.config import Settings
from gateway.domain import Site
from gateway.http import create_app
from gateway.metrics import GatewayMetrics
from gateway.service import build_services
from gateway.service.catalogue.schemas import SiteCreate
from gateway.siteclient.pool import GatewayTls, SiteMonitor, SitePool
from gateway.store import SqlStore
from tests.agent.conftest import Pki, agent_identity, running_agent
from tests.conftest import SeededRandom
from tests.server import running
from tests.world import StandInAgents, client, seed_world


def test_site_health_and_isolation_reach_metrics(
    sqlite_store: SqlStore,
    settings: Settings,
    certs: Pki,
    assets: dict[str, Path],
    tmp_path: Path,
) -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    pool = SitePool(GatewayTls(certs.ca, certs.gateway.cert, certs.gateway.key), metrics.registry)
    services = build_services(
        sqlite_store,
        settings,
        random=SeededRandom(3),
        metrics=metrics,
        site_pool=pool,
        prover=StandInAgents(fallback=pool),
    )
    world = seed_world(services)
    identity = agent_identity(tmp_path, world.holder_a.org_id, world.holder_a_signing)
    with running_agent(certs, assets, tmp_path, identity) as agent:
        address = f"127.0.0.1:{agent.port}"
        good = services.sites.register(
            world.holder_a,
            SiteCreate(name="live", grpc_address=address, tls_fingerprint=certs.site.fingerprint),
        )
        # A site whose agent now presents another certificate than the one registered.
        wrong = Site(
            "site_impostor",
            world.holder_a.org_id,
            "impostor",
            address,
            certs.impostor.fingerprint,
            datetime.now(UTC),
        )
        with sqlite_store.write() as tx:
            tx.add_site(wrong)
        with running(create_app(services)) as url:
            holder = client(url, world.holder_a_key)
            health = holder.get(f"/v1/sites/{good.id}/health").json()
            assert health["reachable"] is True
            assert health["isolation_level"] == "strong"
            assert health["layers"]["namespaces"] is True
            assert health["assets"]
            refused = holder.get(f"/v1/sites/{wrong.id}/health").json()
            assert refused["reachable"] is False
            assert refused["error"] == "unavailable"
            operator = client(url, world.operator_key)
            assert operator.get(f"/v1/sites/{good.id}/health").status_code == 403
            other = client(url, world.holder_b_key)
            assert other.get(f"/v1/sites/{good.id}/health").status_code == 404
            text = httpx.get(f"{url}/metrics").text
        assert 'blindgate_site_up{site="live"} 1.0' in text
        assert 'blindgate_site_up{site="impostor"} 0.0' in text
        assert 'blindgate_site_isolation_layer{layer="seccomp",site="live"} 1.0' in text
        assert 'blindgate_site_isolation_level{level="strong",site="live"} 1.0' in text
        assert 'blindgate_site_calls_total{method="Health",site="live"}' in text
        with sqlite_store.read() as tx:
            sites = tx.list_sites(org_id=None, after=None, limit=100)
        monitor = SiteMonitor(pool, lambda: sites, interval=60)
        reachable = monitor.check_all()
        assert reachable[good.id] is True
        assert reachable[wrong.id] is False
    pool.close()
