"""One name for a dry run: ``POST /v1/jobs/dry-run`` takes a SQL job or a structural
description; the former ``/check`` paths answer the same, marked deprecated."""

from __future__ import annotations

import pytest

from gateway.client import ApiError, Client
from gateway.http import create_app
from tests.governance.conftest import Gov
from tests.governance.test_decisions import job
from tests.world import client

SQL = "SELECT COUNT(*) AS n, AVG(los_days) AS stay FROM admissions WHERE age > 60"


def sql_job(gov: Gov, **over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "sql": SQL,
        "assets": [gov.world.asset_a],
        "epsilon": 0.5,
        "purpose": "public-health-research",
    }
    body.update(over)
    return body


def he_job(gov: Gov) -> dict[str, object]:
    return {
        "kind": "he_aggregate",
        "assets": [gov.world.asset_a],
        "context_sha256": "ab" * 32,
        "purpose": "public-health-research",
        "epsilon": 0.5,
        "columns": ["los_days"],
    }


def test_dry_run_takes_a_sql_job_or_a_description(gov: Gov, gov_url: str) -> None:
    c = client(gov_url, gov.world.operator_key)
    allowed = c.post("/v1/jobs/dry-run", json=sql_job(gov))
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["allow"] is True
    assert "deprecation" not in allowed.headers
    denied = c.post("/v1/jobs/dry-run", json=sql_job(gov, sql="SELECT * FROM admissions")).json()
    assert denied["allow"] is False
    assert "select_star" in {r["code"] for r in denied["reasons"]}
    described = c.post("/v1/jobs/dry-run", json=job(gov, purpose="marketing")).json()
    assert described["allow"] is False
    assert "purpose_not_allowed" in {r["code"] for r in described["reasons"]}
    # neither shape with the other's fields: refused field by field, not guessed
    mixed = c.post("/v1/jobs/dry-run", json={**sql_job(gov), "columns": []})
    assert mixed.status_code == 422
    assert [f["loc"] for f in mixed.json()["error"]["fields"]] == [["body", "sql_job", "columns"]]


@pytest.mark.parametrize(
    ("old", "new"),
    [("/v1/jobs/check", "/v1/jobs/dry-run"), ("/v1/he/jobs/check", "/v1/he/jobs/dry-run")],
)
def test_check_paths_are_deprecated_aliases(gov: Gov, gov_url: str, old: str, new: str) -> None:
    c = client(gov_url, gov.world.operator_key)
    payload = he_job(gov) if "/he/" in new else sql_job(gov)
    current = c.post(new, json=payload)
    former = c.post(old, json=payload)
    assert current.status_code == former.status_code == 200, former.text
    assert former.json()["allow"] == current.json()["allow"]
    assert [r["code"] for r in former.json()["reasons"]] == [
        r["code"] for r in current.json()["reasons"]
    ]
    assert former.headers["deprecation"] == "true"
    assert former.headers["link"] == f'<{new}>; rel="successor-version"'
    assert "deprecation" not in current.headers


def test_openapi_names_the_dry_run_and_marks_the_aliases(gov: Gov) -> None:
    paths = create_app(gov.world.services).openapi()["paths"]
    dry_run = paths["/v1/jobs/dry-run"]["post"]
    schema = dry_run["requestBody"]["content"]["application/json"]["schema"]
    assert {s["$ref"] for s in schema["oneOf"]} == {
        "#/components/schemas/JobSubmitIn",
        "#/components/schemas/JobDescriptionIn",
    }
    assert not dry_run.get("deprecated")
    assert not paths["/v1/he/jobs/dry-run"]["post"].get("deprecated")
    assert paths["/v1/jobs/check"]["post"]["deprecated"] is True
    assert paths["/v1/he/jobs/check"]["post"]["deprecated"] is True


def test_client_dry_runs_and_the_deprecated_he_check(gov: Gov, gov_url: str) -> None:
    with Client(gov_url, gov.world.operator_key) as bg:
        assert bg.dry_run(sql_job(gov))["allow"] is True
        assert bg.dry_run(job(gov))["allow"] is True
        decided = bg.he_dry_run(he_job(gov))
        assert decided["allow"] is False
        with pytest.deprecated_call(match="he_dry_run"):
            former = bg.he_check(he_job(gov))
        assert former == decided
        with pytest.raises(ApiError) as refused:
            bg.dry_run(sql_job(gov, epsilon=-1))
    assert refused.value.status == 422
    assert [(f.field, f.message) for f in refused.value.fields] == [
        ("sql_job.epsilon", "Input should be greater than 0")
    ]
