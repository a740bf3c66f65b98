"""The privacy rules as an operator and a holder meet them, on both stores and real sites:
declared keys released in full, undeclared keys refused at δ = 0 with a fix, one budget
per asset that a second licence does not reset, and policies that say what holders mean."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from contracts import LicenceTerms, countersign, sign_offer
from gateway.errors import PolicyInvalid
from gateway.service.jobs.schemas import JobSubmitIn
from tests.federated.conftest import POLICY, Federation

GROUPED = "SELECT district, COUNT(*) AS n, AVG(los_days) AS stay FROM admissions GROUP BY district"


def submit(fed: Federation, sql: str = GROUPED, epsilon: float = 5.0, **over: object):
    body = JobSubmitIn(sql=sql, assets=fed.asset_ids, epsilon=epsilon, purpose="research")
    return fed.services.jobs.submit(fed.operator, body.model_copy(update=over))


def set_policy(fed: Federation, text: str) -> None:
    fed.set_policy(text)


def test_declared_keys_are_released_in_full_empty_ones_included(federation: Federation) -> None:
    fed = federation
    set_policy(
        fed,
        POLICY.replace("MODE", "auto").replace(
            "keys: {values: [north, south, east]}", "keys: {values: [north, south, east, atlantis]}"
        ),
    )
    job = submit(fed)
    assert job.state == "queued", job.decision
    assert fed.runner.run_once()
    result = fed.services.jobs.result(fed.operator, job.id)
    assert result.key_release == "declared_keys"
    keys = [row[0].value for row in result.rows]
    assert keys == ["north", "south", "east", "atlantis"]
    atlantis = result.rows[3]
    assert atlantis[1].value is None and atlantis[1].mechanism == "suppressed"
    truth = fed.truth()
    for row in result.rows[:3]:
        assert row[1].value is not None
        assert abs(row[1].value - truth[row[0].value][0]) < 25 * row[1].scales["count"]


def test_undeclared_keys_at_delta_zero_are_refused_with_a_fix(federation: Federation) -> None:
    fed = federation
    set_policy(
        fed,
        POLICY.replace("MODE", "auto").replace("    keys: {values: [north, south, east]}\n", ""),
    )
    decision = fed.services.jobs.check(
        fed.operator,
        JobSubmitIn(sql=GROUPED, assets=fed.asset_ids, epsilon=1.0, purpose="research"),
    )
    assert not decision.allow
    (reason,) = [r for r in decision.reasons if r["code"] == "undeclared_group_keys"]
    assert "columns.district.keys" in reason["fix"]
    assert submit(fed).state == "denied"
    # A holder that allows δ lets a private mechanism choose the keys instead.
    set_policy(
        fed,
        POLICY.replace("MODE", "auto")
        .replace("    keys: {values: [north, south, east]}\n", "")
        .replace("  budget:", "  delta_per_job_max: 1.0e-7\n  budget:"),
    )
    job = submit(fed, delta=1e-8)
    assert job.state == "queued", job.decision
    assert fed.runner.run_once()
    result = fed.services.jobs.result(fed.operator, job.id)
    assert result.key_release == "stability_histogram"
    assert 0 < result.delta_spent <= 1e-8


def test_a_second_licence_does_not_reset_the_assets_budget(federation: Federation) -> None:
    """Budget 20 per asset, 5 per job: four jobs, then every licence is refused."""
    fed = federation
    for _ in range(4):
        job = submit(fed)
        assert job.state == "queued", job.decision
        assert fed.runner.run_once()
        assert fed.services.jobs.get(fed.operator, job.id).state == "succeeded"
    second = _second_licence(fed)
    refused = submit(fed, licence_ids=[second])
    assert refused.state == "denied"
    reasons = [r for r in refused.decision["reasons"] if r["code"] == "budget_exhausted"]
    assert reasons, refused.decision
    assert "0 or less" not in reasons[0]["fix"]
    assert "shared by every licence" in reasons[0]["message"]
    budget = fed.services.ledger.budget(fed.operator, second, 1.0)
    first_asset = budget.assets[0]
    assert first_asset.epsilon_spent == 20.0
    assert first_asset.epsilon_spent_by_licence == 0.0
    assert first_asset.epsilon_remaining == 0.0
    assert first_asset.renews_at is not None
    assert budget.jobs_that_fit == 0


def _second_licence(fed: Federation) -> str:
    """The first hospital offers the operator a second licence on its partition; the
    operator countersigns.  Keys are those the builder made."""
    built = fed.built
    holder = built.holders[0]
    now = fed.services.ctx.clock.now().replace(microsecond=0)
    terms = LicenceTerms.model_validate(
        {
            "licence_id": "lic-second",
            "holder_org_id": holder.actor.org_id,
            "operator_org_id": fed.operator.org_id,
            "asset_ids": [holder.assets["admissions"]],
            "purposes": ["research"],
            "job_kinds": ["sql_aggregate"],
            "valid_from": now - timedelta(minutes=1),
            "valid_until": now + timedelta(days=30),
            "fee": {"amount": "0", "currency": "CNY"},
        }
    )
    offer = sign_offer(terms, holder.signing_key)
    fed.services.licences.offer(
        holder.actor, json.loads(terms.model_dump_json()), base64.b64encode(offer).decode()
    )
    accept = countersign(terms, offer, built.operator_signing_key)
    fed.services.licences.accept(fed.operator, "lic-second", base64.b64encode(accept).decode())
    return "lic-second"


def test_a_unit_the_operator_may_never_use_still_bounds_and_counts(
    federation: Federation,
) -> None:
    fed = federation
    set_policy(
        fed,
        POLICY.replace("MODE", "auto").replace(
            "patient_id: {control: join_key}", "patient_id: {control: never}"
        ),
    )
    counted = submit(fed, sql="SELECT COUNT(*) AS n FROM admissions")
    assert counted.state == "queued", counted.decision
    assert fed.runner.run_once()
    assert fed.services.jobs.get(fed.operator, counted.id).state == "succeeded"
    distinct = submit(fed, sql="SELECT COUNT(DISTINCT patient_id) AS people FROM admissions")
    assert distinct.state == "denied"
    assert "column_never" in [r["code"] for r in distinct.decision["reasons"]]


@pytest.mark.parametrize(
    ("line", "replacement", "message"),
    [
        ("  patient_id: {control: join_key}", "  patient_id: {control: group_by}", "identifier"),
        ("  patient_id: {control: join_key}", "  patient_id: {control: plain}", "identifier"),
        (
            "  age: {control: filter}",
            "  age: {control: filter}\n  los_days_plain: {control: never}",
            "no such column",
        ),
    ],
)
def test_policies_are_checked_against_the_asset_with_line_and_column(
    federation: Federation, line: str, replacement: str, message: str
) -> None:
    fed = federation
    text = POLICY.replace("MODE", "auto").replace(line, replacement)
    hospital = fed.hospitals[0]
    with pytest.raises(PolicyInvalid) as info:
        fed.services.policies.set(hospital.actor, hospital.asset_id, text)
    (issue,) = info.value.fields["issues"]
    assert message in issue["message"]
    named = replacement.rsplit("\n", maxsplit=1)[-1].split(":", maxsplit=1)[0].strip()
    assert text.splitlines()[issue["line"] - 1].strip().startswith(named)
    assert issue["column"] >= 1


@pytest.mark.parametrize(
    ("code", "charged"), [("fragment_memory", True), ("fragment_bad_input", False)]
)
def test_a_failure_that_may_depend_on_the_data_is_charged_like_a_release(
    federation: Federation, monkeypatch: pytest.MonkeyPatch, code: str, charged: bool
) -> None:
    """Whether a job fails must not reveal what no release may: a failure that can depend
    on the data (memory, time, output size …) costs the job's ε; one that cannot (an
    operator's malformed input) costs nothing."""
    from gateway.service.jobs.kind import FailureCode, JobFailed

    fed = federation
    kind = fed.services.jobs.decider.kinds["sql_aggregate"]

    def failing(*args: object) -> None:
        raise JobFailed(FailureCode(code))

    monkeypatch.setattr(kind, "combine", failing)
    job = submit(fed, epsilon=2.0)
    assert fed.runner.run_once()
    failed = fed.services.jobs.get(fed.operator, job.id)
    assert (failed.state, failed.error_code) == ("failed", code)
    spent = fed.services.ledger.usage(fed.operator, fed.licences[0]).epsilon_spent
    assert spent == (2.0 if charged else 0.0)
