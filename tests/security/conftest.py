"""A gateway to watch: the three-hospital federation (real site agents, real sandboxes)
behind a running gateway (REST, runner, site monitor) on port 0."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.app import Gateway
from gateway.store import open_store
from tests.federated.conftest import Federation, build_federation

SQL = "SELECT district, COUNT(*) AS n, AVG(los_days) AS mean_los FROM admissions GROUP BY district"
PROBE = "SELECT diagnosis, COUNT(*) AS n FROM admissions GROUP BY diagnosis"
"""A query the policy refuses (no such column to group by): what a probing run sends."""


@dataclass
class Watched:
    fed: Federation
    gateway: Gateway
    url: str
    operator_key: str
    auditor_key: str
    holder_key: str
    admin_key: str

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def submit(self, sql: str = SQL, epsilon: float = 0.5) -> dict:
        with self.client(self.operator_key) as c:
            r = c.post(
                "/v1/jobs",
                json={
                    "sql": sql,
                    "assets": self.fed.asset_ids,
                    "epsilon": epsilon,
                    "purpose": "research",
                },
            )
        assert r.status_code in (200, 201, 202), r.text
        return dict(r.json())

    def wait(self, job_id: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        with self.client(self.operator_key) as c:
            while True:
                job = c.get(f"/v1/jobs/{job_id}").json()
                if job["state"] in ("succeeded", "failed", "cancelled", "denied"):
                    return dict(job)
                if time.monotonic() > deadline:
                    raise AssertionError(f"job {job_id} still {job['state']}")
                time.sleep(0.1)


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    tmp: Path = tmp_path_factory.mktemp("watched")
    store = open_store(f"sqlite:///{tmp / 'store.db'}")
    fed, agents = build_federation(tmp, store)
    fed.services.watch.collector.ttl = 0  # every scrape reads the store afresh
    gateway = Gateway(fed.services, http_port=0, grpc_port=0, owner="watched").start()
    try:
        yield Watched(
            fed,
            gateway,
            gateway.url,
            fed.operator_key,
            fed.built.auditor_key,
            fed.built.holders[0].api_key,
            fed.built.admin_key,
        )
    finally:
        gateway.stop()
        for agent in agents:
            agent.stop()
        store.close()
