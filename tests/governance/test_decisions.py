"""Dry runs: one explainable decision, traced and counted, nothing charged."""

from __future__ import annotations

import httpx

from tests.governance.conftest import Gov
from tests.world import client


def job(gov: Gov, **over: object) -> dict[str, object]:
    a = gov.world.asset_a
    body: dict[str, object] = {
        "kind": "sql_aggregate",
        "purpose": "public-health-research",
        "epsilon": 0.5,
        "assets": [a],
        "columns": [
            {"asset": a, "column": "age", "usage": "filter"},
            {"asset": a, "column": "los_days", "usage": "aggregate", "function": "avg"},
        ],
    }
    body.update(over)
    return body


def test_allowed_job_names_its_parameters(gov: Gov, gov_url: str) -> None:
    r = client(gov_url, gov.world.operator_key).post("/v1/jobs/dry-run", json=job(gov))
    assert r.status_code == 200
    d = r.json()
    assert d["allow"] is True
    assert d["reasons"] == []
    assert d["policy_versions"] == {gov.world.asset_a: 1}
    assert d["parameters"]["min_group_size"] == 10
    assert d["parameters"]["max_rows_per_unit"] == 3


def test_two_broken_rules_give_two_reasons_with_fixes(gov: Gov, gov_url: str) -> None:
    a = gov.world.asset_a
    bad = job(gov, purpose="marketing", epsilon=2.0)
    r = client(gov_url, gov.world.operator_key).post("/v1/jobs/dry-run", json=bad)
    d = r.json()
    assert d["allow"] is False
    codes = {x["code"] for x in d["reasons"]}
    assert {"purpose_not_allowed", "epsilon_over_job_max"} <= codes
    for reason in d["reasons"]:
        assert reason["fix"]
        assert reason["clause"]
    assert any(x["asset"] == a for x in d["reasons"])


def test_never_column_and_plain_identifier(gov: Gov, gov_url: str) -> None:
    a = gov.world.asset_a
    cols = [{"asset": a, "column": "patient_id", "usage": "select_plain"}]
    d = (
        client(gov_url, gov.world.operator_key)
        .post("/v1/jobs/dry-run", json=job(gov, columns=cols))
        .json()
    )
    assert d["allow"] is False
    assert any(
        r["code"]
        in {"identifier_exposed", "column_not_allowed_in_select_plain", "plain_on_sensitive"}
        for r in d["reasons"]
    )


def test_frozen_asset_and_missing_policy(gov: Gov, gov_url: str) -> None:
    w = gov.world
    client(gov_url, w.auditor_key).post(
        f"/v1/assets/{w.asset_a}/freeze", json={"reason": "incident"}
    )
    d = client(gov_url, w.operator_key).post("/v1/jobs/dry-run", json=job(gov)).json()
    assert "asset_frozen" in {r["code"] for r in d["reasons"]}
    b = w.asset_b
    d = (
        client(gov_url, w.operator_key)
        .post(
            "/v1/jobs/dry-run",
            json=job(gov, assets=[b], columns=[{"asset": b, "column": "age", "usage": "filter"}]),
        )
        .json()
    )
    assert d["allow"] is False
    assert [r["code"] for r in d["reasons"]] == ["empty_policy"]


def test_malformed_job_is_refused_not_allowed(gov: Gov, gov_url: str) -> None:
    c = client(gov_url, gov.world.operator_key)
    d = c.post("/v1/jobs/dry-run", json=job(gov, kind="exfiltrate")).json()
    assert d["allow"] is False
    bad_usage = job(
        gov,
        columns=[
            {
                "asset": gov.world.asset_a,
                "column": "age",
                "usage": "aggregate",
                "function": "median",
            }
        ],
    )
    assert c.post("/v1/jobs/dry-run", json=bad_usage).json()["allow"] is False
    assert c.post("/v1/jobs/dry-run", json={"kind": "sql_aggregate"}).status_code == 422


def test_only_operators_dry_run_and_unseen_assets_are_404(gov: Gov, gov_url: str) -> None:
    w = gov.world
    assert (
        client(gov_url, w.holder_a_key).post("/v1/jobs/dry-run", json=job(gov)).status_code == 403
    )
    ghost = job(gov, assets=["ast_00000000000000000000000000"])
    assert client(gov_url, w.operator_key).post("/v1/jobs/dry-run", json=ghost).status_code == 404


def test_decisions_are_traced_counted_and_not_charged(gov: Gov, gov_url: str) -> None:
    w = gov.world
    c = client(gov_url, w.operator_key)
    c.post("/v1/jobs/dry-run", json=job(gov))
    c.post("/v1/jobs/dry-run", json=job(gov, purpose="marketing"))
    entries = w.services.audit.entries(w.auditor, limit=1000, cursor=None, action="job.dry_run")
    decisions = [
        (e.entry["decision"], [r["code"] for r in e.entry["reasons"]]) for e in entries.items
    ]
    assert decisions[0] == ("allow", [])
    assert decisions[1][0] == "deny"
    assert "purpose_not_allowed" in decisions[1][1]
    holder_view = w.services.audit.entries(
        w.holder_a, limit=1000, cursor=None, action="job.dry_run"
    )
    assert len(holder_view.items) == 2  # the holder sees decisions on its asset
    metrics = httpx.get(f"{gov_url}/metrics").text
    assert 'blindgate_policy_decisions_total{outcome="allow"} 1.0' in metrics
    assert 'blindgate_policy_decision_reasons_total{code="purpose_not_allowed"} 1.0' in metrics
    budget = c.get(f"/v1/licences/{gov.licence_id}/budget").json()
    assert budget["licence_epsilon_used"] == 0.0
