"""A job queued before its holder replaced its signing key is stopped when it starts."""

from __future__ import annotations

from contracts import encode_public_key, generate_keypair
from gateway.service.jobs.schemas import JobSubmitIn
from tests.federated.conftest import Federation


def test_a_queued_job_stops_at_start_after_a_key_rotation(federation: Federation) -> None:
    fed = federation
    body = JobSubmitIn(
        sql="SELECT district, COUNT(*) AS n FROM admissions GROUP BY district",
        assets=fed.asset_ids,
        epsilon=0.5,
        purpose="research",
    )
    job = fed.services.jobs.submit(fed.operator, body)
    assert job.state == "queued", job.decision
    hospital = fed.hospitals[1]
    fresh = encode_public_key(generate_keypair().public_key)
    fed.services.identities.set_public_key(hospital.actor, hospital.actor.org_id, fresh)
    assert fed.runner.run_once()
    done = fed.services.jobs.get(fed.operator, job.id)
    assert done.state == "failed"
    assert done.error_code == "policy_denied"
    for licence in fed.licences:
        assert fed.services.ledger.usage(fed.operator, licence).jobs == 0
    fail = fed.services.audit.entries(fed.auditor, limit=1000, cursor=None, action="job.fail")
    codes = [r["code"] for r in fail.items[-1].entry["reasons"]]
    assert "licence_key_rotated" in codes
