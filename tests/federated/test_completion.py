"""Job completion is pushed to waiting clients: a long poll answers when the job finishes."""

from __future__ import annotations

import threading
import time

import pytest

from gateway.client import ApiError, Client
from gateway.domain import Actor, Role
from gateway.errors import NotFound
from gateway.http import create_app
from gateway.service.jobs.schemas import JobSubmitIn
from tests.federated.conftest import Federation
from tests.server import running

SQL = "SELECT district, COUNT(*) AS n FROM admissions GROUP BY district"


def submit(fed: Federation) -> str:
    body = JobSubmitIn(sql=SQL, assets=fed.asset_ids, epsilon=1.0, purpose="research")
    job = fed.services.jobs.submit(fed.operator, body)
    assert job.state == "queued", job.decision
    return job.id


def test_a_long_poll_answers_when_the_runner_releases_the_job(federation: Federation) -> None:
    fed = federation
    job_id = submit(fed)
    fed.runner.poll = 60.0  # the runner starts only when woken below
    with running(create_app(fed.services)) as url, Client(url, fed.operator_key) as client:
        queued = client.get(f"/v1/jobs/{job_id}", wait=0.2)
        assert queued["state"] == "queued"  # nothing ran: the poll came back at its time
        later = threading.Timer(0.5, fed.runner.run_once)
        later.start()
        try:
            begin = time.monotonic()
            done = client.get(f"/v1/jobs/{job_id}", wait=25)
            waited = time.monotonic() - begin
        finally:
            later.join()
        assert done["state"] == "succeeded", done
        assert waited < 20  # answered by the release, not by the end of the wait
        assert client.result(job_id)["receipt"]["leaf_index"] >= 0
        assert fed.services.jobs.completions.waiting() == 0


def test_the_client_waits_with_long_polls(federation: Federation) -> None:
    fed = federation
    job_id = submit(fed)
    fed.runner.start()
    try:
        with running(create_app(fed.services)) as url, Client(url, fed.operator_key) as client:
            states: list[str] = []
            job = client.wait(job_id, poll=30.0, progress=lambda j, _s: states.append(j["state"]))
            assert job["state"] == "succeeded"
            # with a 30 s poll, only a long poll answered by the release gets here this soon
            assert states[-1] == "succeeded"
    finally:
        fed.runner.stop()


def test_a_long_poll_is_refused_like_a_read(federation: Federation) -> None:
    fed = federation
    job_id = submit(fed)
    other = fed.built.holders[0]
    with running(create_app(fed.services)) as url, Client(url, fed.operator_key) as client:
        with pytest.raises(ApiError) as unknown:
            client.get("/v1/jobs/job_01ZZZZZZZZZZZZZZZZZZZZZZZZ", wait=0.1)
        assert unknown.value.status == 404
        with pytest.raises(ApiError) as too_long:
            client.get(f"/v1/jobs/{job_id}", wait=31)
        assert too_long.value.status == 422
    with pytest.raises(NotFound):
        fed.services.jobs.get(Actor("prn_x", "org_x", Role.OPERATOR), job_id)
    assert other.actor.org_id != fed.operator.org_id
