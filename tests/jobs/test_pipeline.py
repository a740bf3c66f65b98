"""The whole job: analysis → policy decision → fragments at three sites → combine → release."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from policies import evaluate
from policies.jobs import AssetSchema, analyse, combine, partial_plan, release
from tests.jobs.world import run_fragment
from tests.policies.builders import build, request_dict

SCHEMA = AssetSchema.build(
    "admissions",
    "admissions",
    [
        ("patient_id", "bigint", "identifier"),
        ("district", "text", "quasi_identifier"),
        ("age", "integer", "quasi_identifier"),
        ("los_days", "double", "attribute"),
        ("cost", "decimal(10,2)", "sensitive"),
        ("diagnosis", "text", "sensitive"),
        ("ward", "text", "attribute"),
    ],
    "patient_id",
)


def decide(sql: str, delta: float = 1e-7) -> Any:
    """The decision on ``sql`` under a policy that lets a job spend δ on choosing keys."""
    data = request_dict()
    data["delta"] = delta
    data["assets"][0]["policy"]["privacy"]["delta_per_job_max"] = 1e-7
    data["usage"]["delta_spent"] = {"admissions": 0.0}
    analysis = analyse(sql, SCHEMA)
    data["column_uses"] = [u.model_dump() for u in analysis.column_uses]
    data["group_keys"] = [list(key.columns) for key in analysis.group_by]
    return evaluate(build(data))


def site_file(path: Path, units: range, seed: int) -> Path:
    rng = random.Random(seed)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t (patient_id BIGINT, district VARCHAR, age INTEGER, los_days DOUBLE, "
        "cost DECIMAL(10,2), diagnosis VARCHAR, ward VARCHAR)"
    )
    rows = [
        (
            u,
            rng.choice(["north", "south"]),
            rng.randint(20, 90),
            rng.uniform(0, 80),
            10.0,
            "A",
            "w1",
        )
        for u in units
        for _ in range(rng.randint(1, 4))
    ]
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    con.close()
    return path


def test_an_allowed_job_runs_end_to_end(tmp_path: Path) -> None:
    sql = (
        "SELECT district, COUNT(*) AS stays, AVG(los_days) AS mean_los, "
        "COUNT(DISTINCT patient_id) AS patients FROM admissions WHERE age > 30 GROUP BY district"
    )
    decision = decide(sql)
    assert decision.allow, decision.reasons
    params = decision.parameters
    assert params is not None and params.max_rows_per_unit == 2
    plan = partial_plan(analyse(sql, SCHEMA), params)
    files = [
        site_file(tmp_path / f"s{i}.parquet", range(i * 300, (i + 1) * 300), i) for i in range(3)
    ]
    groups = combine(plan, [run_fragment(plan.sql, f) for f in files])
    assert {g.key for g in groups} == {("north",), ("south",)}
    result = release(plan, groups, params)
    assert result.key_release == "stability_histogram"
    assert result.epsilon_spent <= params.epsilon
    assert result.delta_spent <= params.delta
    assert {row["district"].value for row in result.rows} == {"north", "south"}
    for row in result.rows:
        assert 0 <= row["mean_los"].value <= 60
        assert row["patients"].value >= result.threshold


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELECT COUNT(*) FROM admissions WHERE diagnosis = 'A'", "column_never"),
        (
            "SELECT district, COUNT(*) FROM admissions GROUP BY district ORDER BY district",
            None,
        ),
        ("SELECT SUM(cost) FROM admissions", None),
        ("SELECT COUNT(*) FROM admissions WHERE los_days > 3", "column_not_allowed_in_filter"),
        ("SELECT age, COUNT(*) FROM admissions GROUP BY age", "column_not_allowed_in_group_by"),
        ("SELECT AVG(los_days) FROM admissions WHERE patient_id > 3", "identifier_exposed"),
        ("SELECT STDDEV(los_days) FROM admissions", "aggregate_not_allowed"),
    ],
)
def test_column_uses_are_what_the_policy_decides_on(sql: str, code: str | None) -> None:
    decision = decide(sql)
    if code is None:
        assert decision.allow
    else:
        assert code in decision.codes
