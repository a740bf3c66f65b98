"""Jobs under concurrency and failure: two runners on one database, cancellation of a
running job at the sites, approval expiry."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from gateway.domain import JobState
from gateway.service import build_services
from gateway.service.jobs.runner import make_runner
from gateway.service.jobs.schemas import JobSubmitIn
from gateway.store import open_store
from tests.federated.conftest import Federation

SQL = "SELECT district, COUNT(*) AS n FROM admissions GROUP BY district"


def submit(fed: Federation, epsilon: float = 1.0) -> str:
    body = JobSubmitIn(sql=SQL, assets=fed.asset_ids, epsilon=epsilon, purpose="research")
    return fed.services.jobs.submit(fed.operator, body).id


def test_two_runners_share_one_queue(federation: Federation, store_url: str) -> None:
    fed = federation
    jobs = [submit(fed) for _ in range(4)]
    other_store = open_store(store_url)
    other = build_services(other_store, fed.services.ctx.settings, site_pool=fed.services.site_pool)
    runners = [fed.runner, make_runner(other, owner="second-gateway")]

    def drain(runner: Any) -> None:
        while runner.run_once():
            pass

    threads = [threading.Thread(target=drain, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    other_store.close()
    states = [fed.services.jobs.get(fed.operator, j).state for j in jobs]
    assert states == ["succeeded"] * 4
    releases = fed.services.audit.entries(
        fed.auditor, limit=1000, cursor=None, action="job.release"
    ).items
    assert sorted(e.entry["target"]["job"] for e in releases) == sorted(jobs)  # once each
    usage = fed.services.ledger.usage(fed.operator, fed.licences[0])
    assert usage.jobs == 4


class SlowClient:
    """Wraps a site client: fragments take 5 s; cancellations are recorded."""

    def __init__(self, inner: Any, cancelled: list[str]) -> None:
        self.inner = inner
        self.cancelled = cancelled

    def run_fragment(self, request: Any, timeout: float | None = None) -> Any:
        time.sleep(5)
        return self.inner.run_fragment(request, timeout)

    def cancel(self, fragment_id: str, timeout: float | None = None) -> Any:
        self.cancelled.append(fragment_id)
        return self.inner.cancel(fragment_id, timeout)


def test_cancelling_a_running_job_cancels_its_fragments(federation: Federation) -> None:
    fed = federation
    job_id = submit(fed)
    cancelled: list[str] = []
    pool = fed.runner.pool
    real = pool.client
    pool.client = lambda site: SlowClient(real(site), cancelled)  # type: ignore[method-assign]
    try:
        worker = threading.Thread(target=fed.runner.run_once)
        worker.start()
        deadline = time.monotonic() + 10
        while fed.services.jobs.get(fed.operator, job_id).state != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        fed.services.jobs.cancel(fed.operator, job_id)
        worker.join(timeout=30)
    finally:
        pool.client = real  # type: ignore[method-assign]
    assert fed.services.jobs.get(fed.operator, job_id).state == "cancelled"
    assert len(cancelled) == 3  # one fragment per site
    assert fed.services.ledger.usage(fed.operator, fed.licences[0]).jobs == 0


def test_expired_approval_denies_the_job(federation: Federation) -> None:
    fed = federation
    job_id = submit(fed)
    past = fed.services.ctx.clock.now() - timedelta(minutes=1)
    fed.services.ctx.store.transact(
        lambda tx: tx.update_job(
            job_id,
            [JobState.QUEUED],
            state=JobState.PENDING_APPROVAL,
            approvals_required=1,
            approval_expires_at=past,
        )
    )
    assert fed.runner.recover() == 1
    job = fed.services.jobs.get(fed.operator, job_id)
    assert job.state == "denied"
    assert job.error_code == "approval_expired"
