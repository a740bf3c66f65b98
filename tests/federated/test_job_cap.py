"""A licence's job cap holds at release, under parallel submissions and with two gateways
(two runners over two store connections) on one database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from blindgate_demo.federation import gateway_tls
from gateway.config import Settings
from gateway.domain import TERMINAL_STATES
from gateway.metrics import GatewayMetrics
from gateway.service import build_services
from gateway.service.jobs.runner import JobRunner, make_runner
from gateway.service.jobs.schemas import JobSubmitIn
from gateway.siteclient.pool import SitePool
from gateway.store import open_store
from tests.federated.conftest import Federation, build_federation

CAP = 3
SQL = "SELECT district, COUNT(*) AS n FROM admissions GROUP BY district"


@dataclass
class Capped:
    fed: Federation
    runners: list[JobRunner]


@pytest.fixture
def capped(tmp_path: Path, store_url: str) -> Iterator[Capped]:
    store = open_store(store_url)
    fed, agents = build_federation(tmp_path, store, job_cap=CAP)
    runners = [fed.runner]
    extra: list[Any] = []
    if store_url.startswith("postgresql"):
        # A second gateway process on the same database: its own store, pool and runner.
        second = open_store(store_url)
        metrics = GatewayMetrics(CollectorRegistry())
        services = build_services(
            second,
            Settings(data_dir=tmp_path / "data", dev_mode=True),
            metrics=metrics,
            site_pool=SitePool(gateway_tls(tmp_path), metrics.registry),
        )
        runners.append(make_runner(services, owner="second-gateway"))
        extra = [second, services.site_pool]
    try:
        yield Capped(fed, runners)
    finally:
        for agent in agents:
            agent.stop()
        for item in extra:
            item.close()
        fed.services.site_pool.close()
        store.close()


def test_the_job_cap_holds_under_parallel_submissions(capped: Capped) -> None:
    fed = capped.fed
    body = JobSubmitIn(sql=SQL, assets=fed.asset_ids, epsilon=0.1, purpose="research")
    with ThreadPoolExecutor(16) as pool:
        jobs = list(pool.map(lambda _: fed.services.jobs.submit(fed.operator, body), range(50)))
    assert all(j.state == "queued" for j in jobs)  # no job was released yet: all pass
    ids = [j.id for j in jobs]
    for runner in capped.runners:
        runner.start()
    try:
        deadline = time.monotonic() + 240
        while True:
            states = [fed.services.jobs.get(fed.operator, i) for i in ids]
            if all(s.state in {str(t) for t in TERMINAL_STATES} for s in states):
                break
            assert time.monotonic() < deadline, [s.state for s in states]
            time.sleep(0.2)
    finally:
        for runner in capped.runners:
            runner.stop()
    succeeded = [s for s in states if s.state == "succeeded"]
    # Never more than the cap. Fewer is possible: each site keeps its own ledger and may
    # spend its share of the cap on a job another site refused.
    assert 1 <= len(succeeded) <= CAP
    # refused at the charge, by the decision at start, or by a site's own ledger
    assert {s.error_code for s in states if s.state != "succeeded"} <= {
        "budget_exhausted",
        "policy_denied",
        "site_refused",
    }
    for licence in fed.licences:
        assert fed.services.ledger.usage(fed.operator, licence).jobs == len(succeeded)
    releases = fed.services.audit.entries(
        fed.auditor, limit=1000, cursor=None, action="job.release"
    ).items
    assert len([e for e in releases if e.entry["decision"] == "allow"]) == len(succeeded)
