"""The privacy-budget ledger on SQLite and PostgreSQL: atomic charges, no double spend."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from gateway.clock import FixedClock
from gateway.errors import BudgetExhausted, ValidationFailed
from gateway.service import build_services
from gateway.store import open_store
from tests.conftest import SeededRandom
from tests.governance.conftest import Gov
from tests.world import client


def test_fifty_parallel_charges_never_overspend(gov: Gov, store_url: str) -> None:
    """Two gateway processes' worth of stores (two writers) on one database."""
    w = gov.world
    other_store = open_store(store_url)
    other = build_services(
        other_store, w.services.ctx.settings, clock=w.services.ctx.clock, random=SeededRandom(99)
    )
    outcomes: list[str] = []
    lock = threading.Lock()

    def submit(n: int) -> None:
        svc = w.services if n % 2 else other
        try:
            svc.ledger.charge(w.operator, gov.licence_id, [w.asset_a], 0.1, 0.0, f"job-{n}")
            result = "charged"
        except BudgetExhausted:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other_store.close()
    assert outcomes.count("charged") == 30  # the asset's budget is epsilon 3 per 30 days
    assert outcomes.count("refused") == 20
    with w.services.ctx.store.read() as tx:
        charges = tx.charges(licence_id=gov.licence_id)
    assert len(charges) == 30
    assert abs(sum(c.epsilon for c in charges) - 3.0) < 1e-9


def test_budget_endpoint_reports_what_remains(gov: Gov, gov_url: str) -> None:
    w = gov.world
    for n in range(3):
        w.services.ledger.charge(w.operator, gov.licence_id, [w.asset_a], 0.5, 0.0, f"j{n}")
    b = (
        client(gov_url, w.operator_key)
        .get(f"/v1/licences/{gov.licence_id}/budget", params={"epsilon_per_job": 0.4})
        .json()
    )
    asset = b["assets"][0]
    assert asset["epsilon_spent"] == pytest.approx(1.5)
    assert asset["epsilon_remaining"] == pytest.approx(1.5)
    assert asset["jobs_that_fit"] == 3
    assert b["licence_epsilon_remaining"] == pytest.approx(8.5)
    assert b["jobs_that_fit"] == 3
    too_big = (
        client(gov_url, w.operator_key)
        .get(f"/v1/licences/{gov.licence_id}/budget", params={"epsilon_per_job": 1.5})
        .json()
    )
    assert too_big["jobs_that_fit"] == 0  # above the per-job maximum of the policy
    assert (
        client(gov_url, w.holder_b_key).get(f"/v1/licences/{gov.licence_id}/budget").status_code
        == 404
    )


def test_budget_renews_after_the_period(gov: Gov) -> None:
    w = gov.world
    svc = w.services
    for n in range(6):
        svc.ledger.charge(w.operator, gov.licence_id, [w.asset_a], 0.5, 0.0, f"a{n}")
    with pytest.raises(BudgetExhausted):
        svc.ledger.charge(w.operator, gov.licence_id, [w.asset_a], 0.5, 0.0, "a7")
    clock = svc.ctx.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(days=31))
    svc.ledger.charge(w.operator, gov.licence_id, [w.asset_a], 0.5, 0.0, "a8")


def test_refund_only_when_nothing_was_released(gov: Gov) -> None:
    w = gov.world
    ledger = w.services.ledger
    ledger.charge(w.operator, gov.licence_id, [w.asset_a], 1.0, 0.0, "failed-job")
    assert ledger.refund(w.operator, "failed-job") == 1
    ledger.charge(w.operator, gov.licence_id, [w.asset_a], 1.0, 0.0, "released-job")
    assert ledger.release(w.operator, "released-job") == 1
    with pytest.raises(ValidationFailed):
        ledger.refund(w.operator, "released-job")
    usage = ledger.usage(w.operator, gov.licence_id)
    assert usage.jobs == 1
    assert usage.epsilon_spent == pytest.approx(1.0)
    assert usage.charges_refunded == 1


def test_revoked_licence_cannot_be_charged(gov: Gov) -> None:
    w = gov.world
    w.services.licences.revoke(w.holder_a, gov.licence_id, "ended")
    with pytest.raises(BudgetExhausted):
        w.services.ledger.charge(w.operator, gov.licence_id, [w.asset_a], 0.1, 0.0, "x")


def test_settlement_statement(gov: Gov, gov_url: str) -> None:
    w = gov.world
    w.services.ledger.charge(w.operator, gov.licence_id, [w.asset_a], 0.5, 0.0, "s1")
    now = w.services.ctx.clock.now()
    params = {
        "period_start": (now - timedelta(days=1)).isoformat(),
        "period_end": (now + timedelta(days=1)).isoformat(),
    }
    statement = client(gov_url, w.holder_a_key).get("/v1/settlements", params=params).json()
    line = statement["lines"][0]
    assert line["licence_id"] == gov.licence_id
    assert line["fixed_fee"] == "5000"
    assert line["revenue_share_percent"] == "12.5"
    assert line["jobs"] == 1
    assert (
        client(gov_url, w.holder_b_key).get("/v1/settlements", params=params).json()["lines"] == []
    )
