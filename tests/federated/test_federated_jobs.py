"""Federated SQL aggregate jobs end to end: three real site agents, real sandboxes,
OpenDP noise, the ledger and the trace (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from gateway.audit.receipt import verify_receipt
from gateway.domain import JobState
from gateway.errors import InvalidState, ValidationFailed
from gateway.service.jobs.schemas import ApprovalIn, JobSubmitIn
from tests.federated.conftest import Federation

SQL = "SELECT district, COUNT(*) AS n, AVG(los_days) AS mean_los FROM admissions GROUP BY district"


def submit(fed: Federation, sql: str = SQL, epsilon: float = 4.0, **over: object):
    body = JobSubmitIn(sql=sql, assets=fed.asset_ids, epsilon=epsilon, purpose="research")
    body = body.model_copy(update=over)
    return fed.services.jobs.submit(fed.operator, body)


def test_federated_query_is_noised_charged_traced_and_receipted(federation: Federation) -> None:
    fed = federation
    job = submit(fed)
    assert job.state == "queued", job.decision
    assert fed.runner.run_once()
    done = fed.services.jobs.get(fed.operator, job.id)
    assert done.state == "succeeded", done.error_code
    result = fed.services.jobs.result(fed.operator, job.id)
    truth = fed.truth()
    rows = {r[0].value: r for r in result.rows}
    assert set(rows) == set(truth)
    for district, (count, mean) in truth.items():
        n_cell, mean_cell = rows[district][1], rows[district][2]
        assert n_cell.mechanism == "laplace"
        scale = n_cell.scales["count"]
        assert abs(n_cell.value - count) < 40 * scale  # far beyond any plausible draw
        assert 0 <= mean_cell.value <= 30  # clamped to the clip bounds
        assert abs(mean_cell.value - mean) < 3
    assert result.epsilon_spent <= 4.0 + 1e-9
    checkpoint = verify_receipt(result.receipt, fed.services.audit.log.verifier_key)
    assert checkpoint.size > result.receipt["leaf_index"]
    # every licence was charged once, the charge is released, the assets show the use
    for licence in fed.licences:
        usage = fed.services.ledger.usage(fed.operator, licence)
        assert usage.jobs == 1
        assert usage.epsilon_spent == pytest.approx(4.0)
        assert usage.compute_seconds > 0
    for hospital in fed.hospitals:
        card = fed.services.assets.get(hospital.actor, hospital.asset_id)
        assert card.usage.jobs_run == 1
        assert card.usage.operators == 1
    actions = [
        e.entry["action"]
        for e in fed.services.audit.entries(fed.auditor, limit=1000, cursor=None).items
    ]
    assert actions.count("job.submit") == 1
    assert actions.count("job.release") == 1
    assert actions.count("budget.charge") == 0  # charged inside the release transaction


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELECT * FROM admissions", "select_star"),
        ("SELECT patient_id FROM admissions", "non_aggregate_select"),
        ("SELECT COUNT(*) FROM read_csv('/etc/passwd')", "table_function"),
        ("SELECT COUNT(*) FROM admissions; DROP TABLE admissions", "multiple_statements"),
        ("SELECT COUNT(*) FROM admissions LIMIT 5", "limit_not_allowed"),
    ],
)
def test_refused_queries_are_denied_with_reasons(
    federation: Federation, sql: str, code: str
) -> None:
    job = submit(federation, sql)
    assert job.state == "denied"
    assert code in {r["code"] for r in job.decision["reasons"]}


def test_policy_rules_deny_at_submission(federation: Federation) -> None:
    fed = federation
    never = submit(fed, "SELECT district, COUNT(*) FROM admissions GROUP BY patient_id")
    assert never.state == "denied"
    too_much = submit(fed, epsilon=9.0)
    assert "epsilon_over_job_max" in {r["code"] for r in too_much.decision["reasons"]}


def test_a_queued_job_is_decided_again_when_it_starts(federation: Federation) -> None:
    """An asset frozen after submission stops the job before anything runs or is charged."""
    from gateway.service.catalogue.schemas import FreezeIn

    fed = federation
    job = submit(fed)
    holder = fed.hospitals[0]
    fed.services.assets.freeze(holder.actor, holder.asset_id, FreezeIn(reason="incident"))
    assert fed.runner.run_once()
    failed = fed.services.jobs.get(fed.operator, job.id)
    assert failed.state == "failed"
    assert failed.error_code == "policy_denied"
    with pytest.raises(InvalidState):
        fed.services.jobs.result(fed.operator, job.id)
    for licence in fed.licences:
        assert fed.services.ledger.usage(fed.operator, licence).jobs == 0


def test_cancelled_job_is_never_released(federation: Federation) -> None:
    fed = federation
    job = submit(fed)
    fed.services.jobs.cancel(fed.operator, job.id)
    assert fed.runner.run_once() is False  # nothing queued
    assert fed.services.jobs.get(fed.operator, job.id).state == "cancelled"


def test_idempotency_key_returns_the_same_job(federation: Federation) -> None:
    first = submit(federation, idempotency_key="nightly-2026-11-27")
    again = submit(federation, idempotency_key="nightly-2026-11-27")
    assert first.id == again.id


def test_a_crashed_runner_leaves_nothing_charged_and_the_job_is_resumed(
    federation: Federation,
) -> None:
    fed = federation
    job = submit(fed)
    now = fed.services.ctx.clock.now()
    from datetime import timedelta

    claimed = fed.services.ctx.store.transact(
        lambda tx: tx.claim_next_job(
            "dead-runner", now - timedelta(hours=1), now - timedelta(minutes=1)
        )
    )
    assert claimed is not None
    assert claimed.state == JobState.RUNNING
    assert fed.services.ledger.usage(fed.operator, fed.licences[0]).jobs == 0
    assert fed.runner.recover() == 1
    assert fed.runner.run_once()
    assert fed.services.jobs.get(fed.operator, job.id).state == "succeeded"


def test_manual_approval(tmp_path, store_url) -> None:
    from gateway.store import open_store
    from tests.federated.conftest import build_federation

    store = open_store(store_url)
    fed, agents = build_federation(tmp_path, store, mode="manual")
    try:
        job = submit(fed)
        assert job.state == "pending_approval"
        assert fed.runner.run_once() is False
        # Each holder decides under its own policy: one holder's approval never stands for
        # another's, and an approval is signed with the holder organisation's key.
        unsigned = fed.services.jobs.approve
        with pytest.raises(ValidationFailed):
            unsigned(fed.hospitals[1].actor, job.id, ApprovalIn(reason="ok"), approve=True)
        assert fed.approve(1, job.id).state == "pending_approval"
        assert fed.approve(0, job.id).state == "pending_approval"
        assert fed.runner.run_once() is False
        approved = fed.approve(2, job.id)
        assert approved.state == "queued"
        assert fed.runner.run_once()
        assert fed.services.jobs.get(fed.operator, job.id).state == "succeeded"
        other = submit(fed)
        rejected = fed.services.jobs.approve(
            fed.hospitals[0].actor, other.id, ApprovalIn(reason="purpose unclear"), approve=False
        )
        assert rejected.state == "denied"
    finally:
        for agent in agents:
            agent.stop(grace=0.2)
        fed.services.site_pool.close()
        store.close()


def test_revocation_cancels_jobs_not_yet_released(federation: Federation) -> None:
    fed = federation
    queued = submit(fed)
    fed.services.licences.revoke(fed.hospitals[1].actor, fed.licences[1], "breach")
    after = fed.services.jobs.get(fed.operator, queued.id)
    assert after.state == "cancelled"
    assert after.error_code == "licence_revoked"
    assert fed.runner.run_once() is False


def test_frozen_asset_spent_budget_and_missing_licence(federation: Federation) -> None:
    fed = federation
    holder = fed.hospitals[2]
    from gateway.service.catalogue.schemas import FreezeIn

    fed.services.assets.freeze(holder.actor, holder.asset_id, FreezeIn(reason="incident"))
    frozen = submit(fed)
    assert frozen.state == "denied"
    assert "asset_frozen" in {r["code"] for r in frozen.decision["reasons"]}
    fed.services.assets.unfreeze(holder.actor, holder.asset_id)
    for _ in range(4):  # the budget is epsilon 20 per asset: four jobs of 5
        job = submit(fed, epsilon=5.0)
        assert job.state == "queued"
        assert fed.runner.run_once()
        assert fed.services.jobs.get(fed.operator, job.id).state == "succeeded"
    spent = submit(fed, epsilon=5.0)
    assert spent.state == "denied"
    assert "budget_exhausted" in {r["code"] for r in spent.decision["reasons"]}
    unlicensed = submit(fed, licence_ids=fed.licences[:2])  # no licence for the third site
    assert unlicensed.state == "denied"
    assert "licence_asset_not_covered" in {r["code"] for r in unlicensed.decision["reasons"]}


def test_jobs_over_grpc(federation: Federation) -> None:
    import grpc

    from blindgate_proto.v1 import gateway_pb2, gateway_pb2_grpc
    from gateway.grpc.server import start_grpc

    fed = federation
    server, port = start_grpc(fed.services, address="127.0.0.1:0", workers=4)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = gateway_pb2_grpc.GatewayStub(channel)
    auth = [("authorization", f"Bearer {fed.operator_key}")]
    try:
        job = stub.SubmitJob(
            gateway_pb2.SubmitJobRequest(
                sql=SQL, assets=fed.asset_ids, epsilon=2.0, purpose="research"
            ),
            metadata=auth,
        )
        assert job.state == "queued"
        assert fed.runner.run_once()
        assert stub.GetJob(gateway_pb2.GetJobRequest(job_id=job.id), metadata=auth).state == (
            "succeeded"
        )
        result = stub.GetJobResult(gateway_pb2.GetJobRequest(job_id=job.id), metadata=auth)
        assert result.result["columns"] == ["district", "n", "mean_los"]
        denied = stub.SubmitJob(
            gateway_pb2.SubmitJobRequest(
                sql="SELECT * FROM admissions",
                assets=fed.asset_ids,
                epsilon=1.0,
                purpose="research",
            ),
            metadata=auth,
        )
        assert denied.state == "denied"
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitJob(
                gateway_pb2.SubmitJobRequest(
                    sql=SQL, assets=fed.asset_ids, epsilon=-1, purpose="research"
                ),
                metadata=auth,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        channel.close()
        server.stop(grace=None)


def test_federated_asset_names_its_partitions(federation: Federation) -> None:
    from gateway.errors import Forbidden, ValidationFailed
    from gateway.service.catalogue.schemas import FederatedAssetIn

    fed = federation
    admin = fed.services.identities  # the federation's admin is the bootstrap principal
    with fed.services.ctx.store.read() as tx:
        admin_principal = next(
            p for p in tx.list_principals(org_id=None, after=None, limit=100) if p.role == "admin"
        )
    from gateway.domain import Actor, Role

    root = Actor(admin_principal.id, admin_principal.org_id, Role.ADMIN)
    assert admin is not None
    body = FederatedAssetIn(name="admissions", partitions=fed.asset_ids)
    registered = fed.services.federated.register(root, body)
    with pytest.raises(Forbidden):
        fed.services.federated.register(fed.operator, body.model_copy(update={"name": "x"}))
    with pytest.raises(ValidationFailed):
        fed.services.federated.register(
            root, FederatedAssetIn(name="one", partitions=fed.asset_ids[:1] * 2)
        )
    job = submit(fed, assets=[registered.id])
    assert job.state == "queued"
    assert job.assets == fed.asset_ids
    assert fed.runner.run_once()
    assert fed.services.jobs.get(fed.operator, job.id).state == "succeeded"


def test_count_star_alone_is_a_valid_job(federation: Federation) -> None:
    fed = federation
    job = submit(fed, "SELECT COUNT(*) AS n FROM admissions")
    assert job.state == "queued", job.decision
    assert fed.runner.run_once()
    result = fed.services.jobs.result(fed.operator, job.id)
    total = sum(len(h.rows) for h in fed.hospitals)
    assert abs(result.rows[0][0].value - total) < 40 * result.rows[0][0].scales["count"]


def test_max_groups_denies_declared_keys_and_fails_selected_keys_charged(
    federation: Federation,
) -> None:
    """Declared keys are counted at check time; keys a private mechanism selects can be
    counted only after the release's noise, so that failure is charged like a release."""
    from tests.federated.conftest import POLICY

    fed = federation
    capped = POLICY.replace("MODE", "auto").replace(
        "  max_rows_per_unit: 1\n", "  max_rows_per_unit: 1\n  max_groups: 2\n"
    )
    fed.set_policy(capped)
    job = submit(fed)  # three declared districts
    assert job.state == "denied"
    assert "too_many_groups" in [r["code"] for r in job.decision["reasons"]]
    selected = capped.replace("    keys: {values: [north, south, east]}\n", "").replace(
        "  budget: {epsilon: 20, delta: 1.0e-6, period_days: 30}",
        "  delta_per_job_max: 1.0e-7\n  budget: {epsilon: 20, delta: 1.0e-6, period_days: 30}",
    )
    fed.set_policy(selected)
    job = submit(fed, delta=1e-8)
    assert job.state == "queued", job.decision
    assert fed.runner.run_once()
    failed = fed.services.jobs.get(fed.operator, job.id)
    assert failed.state == "failed"
    assert failed.error_code == "too_many_groups"
    assert fed.services.ledger.usage(fed.operator, fed.licences[0]).epsilon_spent == 4.0


def test_concurrent_workers_run_every_job_once(federation: Federation) -> None:
    import time

    fed = federation
    ids = [submit(fed, epsilon=0.5).id for _ in range(6)]
    fed.runner.start()
    try:
        deadline = time.monotonic() + 60
        while any(fed.services.jobs.get(fed.operator, i).state != "succeeded" for i in ids):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        fed.runner.stop()
    releases = fed.services.audit.entries(
        fed.auditor, limit=1000, cursor=None, action="job.release"
    ).items
    assert sorted(e.entry["target"]["job"] for e in releases) == sorted(ids)
