"""Short leases renewed by a heartbeat: a job whose runner died is taken over within
seconds, and a long job whose runner is alive is never taken over."""

from __future__ import annotations

import threading
import time
from typing import Any

from gateway.service.jobs.runner import JobRunner
from gateway.service.jobs.schemas import JobSubmitIn
from tests.federated.conftest import Federation

SQL = "SELECT district, COUNT(*) AS n FROM admissions GROUP BY district"
LEASE = 1.5


def _runner(fed: Federation, owner: str) -> JobRunner:
    svc = fed.services
    return JobRunner(
        svc.ctx,
        svc.tracer,
        svc.jobs,
        svc.ledger,
        svc.audit,
        svc.site_pool,
        owner=owner,
        lease_seconds=LEASE,
        heartbeat_seconds=LEASE / 5,
        poll_seconds=0.1,
        concurrency=1,
    )


def _hold_fragments(runner: JobRunner, gate: threading.Event, entered: threading.Event) -> None:
    """Make ``runner`` wait at its fragments until ``gate`` opens."""
    original = runner._run_steps

    def held(*args: Any) -> Any:
        entered.set()
        assert gate.wait(60)
        return original(*args)

    runner._run_steps = held  # type: ignore[method-assign]


def _submit(fed: Federation) -> str:
    body = JobSubmitIn(sql=SQL, assets=fed.asset_ids, epsilon=0.5, purpose="research")
    job = fed.services.jobs.submit(fed.operator, body)
    assert job.state == "queued", job.decision
    return job.id


def _wait(fed: Federation, job_id: str, state: str, timeout: float) -> float:
    began = time.monotonic()
    while fed.services.jobs.get(fed.operator, job_id).state != state:
        assert time.monotonic() - began < timeout, fed.services.jobs.get(fed.operator, job_id)
        time.sleep(0.05)
    return time.monotonic() - began


def _releases(fed: Federation, job_id: str) -> int:
    entries = fed.services.audit.entries(
        fed.auditor, limit=1000, cursor=None, action="job.release"
    ).items
    return sum(
        1 for e in entries if e.entry["target"]["job"] == job_id and e.entry["decision"] == "allow"
    )


def test_a_job_whose_runner_died_is_taken_over_within_seconds(federation: Federation) -> None:
    fed = federation
    dead, alive = _runner(fed, "dead-gateway"), _runner(fed, "live-gateway")
    gate, entered = threading.Event(), threading.Event()
    _hold_fragments(dead, gate, entered)
    job_id = _submit(fed)
    dead.start()
    try:
        assert entered.wait(30)
        dead.leases.stop()  # the process died: its heartbeat stops, its job stays running
        alive.start()
        took = _wait(fed, job_id, "succeeded", 30)
        assert took < LEASE + 5
        job = fed.services.jobs.get(fed.operator, job_id)
        assert job.attempts == 2
    finally:
        gate.set()
        alive.stop()
        dead.stop()
    assert _releases(fed, job_id) == 1  # the dead runner's late answer releases nothing
    assert fed.services.ledger.usage(fed.operator, fed.licences[0]).jobs == 1


def test_a_long_job_keeps_its_lease_while_its_heartbeat_runs(federation: Federation) -> None:
    fed = federation
    slow, other = _runner(fed, "slow-gateway"), _runner(fed, "other-gateway")
    gate, entered = threading.Event(), threading.Event()
    _hold_fragments(slow, gate, entered)
    job_id = _submit(fed)
    slow.start()
    try:
        assert entered.wait(30)
        other.start()
        time.sleep(4 * LEASE)  # several leases long: only the heartbeat keeps it
        job = fed.services.jobs.get(fed.operator, job_id)
        assert job.state == "running"
        assert job.attempts == 1
        gate.set()
        _wait(fed, job_id, "succeeded", 30)
    finally:
        gate.set()
        other.stop()
        slow.stop()
    assert fed.services.jobs.get(fed.operator, job_id).attempts == 1
    assert _releases(fed, job_id) == 1
