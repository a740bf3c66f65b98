"""Fragments and combination: three disjoint sites add up to the query over the whole table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from policies.jobs import (
    AnalysisError,
    CombineError,
    PartialPlan,
    PlanError,
    analyse,
    combine,
    partial_plan,
)
from tests.jobs.world import SCHEMA, generate_rows, params, run_direct, run_fragment, write_table

QUERIES = [
    "SELECT district, COUNT(*), AVG(los) FROM admissions WHERE age > 60 GROUP BY district",
    "SELECT district, COUNT(*) AS n, COUNT(DISTINCT patient_id) AS people, SUM(los) AS days, "
    "AVG(cost), VAR_SAMP(los), VAR_POP(los), STDDEV_SAMP(cost), STDDEV_POP(cost), "
    "MIN(los), MAX(los), COUNT(diagnosis) FROM admissions GROUP BY district",
    "SELECT year(admitted) AS y, district, SUM(CASE WHEN readmitted THEN los ELSE 0 END), "
    "COUNT(CASE WHEN diagnosis LIKE 'A%' THEN 1 END) FROM admissions GROUP BY 1, 2",
    "SELECT floor(age / 10) * 10 AS band, AVG(los), VARIANCE(age) FROM admissions "
    "WHERE admitted >= DATE '2021-01-01' AND diagnosis IS NOT NULL GROUP BY band",
    "SELECT date_trunc('month', admitted) AS m, COUNT(*), SUM(cost) FROM admissions "
    "WHERE lower(district) IN ('north', 'east') GROUP BY m",
    "SELECT COUNT(*), SUM(los), AVG(age), STDDEV(los) FROM admissions",
    "SELECT COUNT(*), SUM(los) FROM admissions WHERE age > 1000",
]


def sites(tmp_path: Path, rows: list[tuple[Any, ...]], n: int = 3) -> list[Path]:
    """Split ``rows`` into ``n`` Parquet files, disjoint by privacy unit."""
    return [
        write_table(tmp_path / f"site{i}.parquet", [r for r in rows if r[0] % n == i])
        for i in range(n)
    ]


def run_plan(plan: PartialPlan, files: list[Path]) -> list[Any]:
    return combine(plan, [run_fragment(plan.sql, f) for f in files])


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("asset")
    rows = generate_rows(units=400, rows_per_unit=3, seed=7)
    return write_table(root / "whole.parquet", rows), sites(root, rows)


@pytest.mark.parametrize("sql", QUERIES)
def test_three_sites_combine_to_the_exact_whole_table_result(
    world: tuple[Path, list[Path]], sql: str
) -> None:
    whole, files = world
    analysis = analyse(sql, SCHEMA)
    plan = partial_plan(analysis, params(c=3))
    groups = run_plan(plan, files)
    expected = run_direct(sql, whole)
    keys = [i for i, o in enumerate(analysis.outputs) if o.kind == "group_key"]
    by_key = {tuple(row[i] for i in keys): row for row in expected}
    assert len(groups) == len(by_key)
    names = [o.name for o in analysis.outputs]
    for group in groups:
        got = [group.values[name] for name in names]
        want = by_key[tuple(got[i] for i in keys)]
        assert all(
            close(float(w) if hasattr(w, "as_tuple") else w, g)
            for w, g in zip(want, got, strict=True)
        ), (want, got)
    people = [o.name for o in analysis.outputs if o.function == "count_units"]
    for group in groups:
        for name in people:
            assert group.values[name] == group.units


def test_csv_assets_run_as_well(tmp_path: Path) -> None:
    rows = generate_rows(units=30, rows_per_unit=1, seed=3)
    path = write_table(tmp_path / "asset.csv", rows, fmt="csv")
    plan = partial_plan(analyse(QUERIES[0], SCHEMA), params())
    (site,) = [run_fragment(plan.sql, path)]
    assert sum(row["__units"] for row in site) == sum(1 for r in rows if r[2] > 60)


def test_contribution_bounding_caps_a_unit_with_many_rows(tmp_path: Path) -> None:
    rows = generate_rows(units=50, rows_per_unit=1, seed=11)
    heavy = [(7, "north", 70, 60.0, 1.0, "A10", r[6], False) for r in rows for _ in range(10)]
    path = write_table(tmp_path / "asset.parquet", rows + heavy)
    sql = (
        "SELECT COUNT(*) AS n, COUNT(DISTINCT patient_id) AS people, SUM(los) AS days "
        "FROM admissions"
    )
    plan = partial_plan(analyse(sql, SCHEMA), params(c=2))
    (group,) = combine(plan, [run_fragment(plan.sql, path)])
    assert group.values["n"] == 49 + 2
    assert group.values["people"] == 50
    others = sum(r[3] for r in rows if r[0] != 7)
    assert group.values["days"] <= others + 2 * 60.0 + 1e-9
    assert len(rows + heavy) == 550


def test_rows_without_a_privacy_unit_are_dropped(tmp_path: Path) -> None:
    rows = generate_rows(units=10, rows_per_unit=1, seed=5)
    orphans = [(None, *r[1:]) for r in rows]
    path = write_table(tmp_path / "asset.parquet", rows + orphans)
    plan = partial_plan(analyse("SELECT COUNT(*) FROM admissions", SCHEMA), params(c=5))
    (group,) = combine(plan, [run_fragment(plan.sql, path)])
    assert group.values["count"] == 10


def test_values_are_clipped_after_the_expression_is_evaluated(tmp_path: Path) -> None:
    rows = [
        (u, "north", 80, 1e9, 1e9, "A10", r[6], True)
        for u, r in enumerate(generate_rows(20, 1, seed=1), start=1)
    ]
    path = write_table(tmp_path / "asset.parquet", rows)
    sql = (
        "SELECT SUM(los) AS a, SUM(CASE WHEN age > 60 THEN los ELSE 30 END) AS b, "
        "MAX(los) AS top, AVG(los) AS mean, VAR_POP(los) AS spread FROM admissions"
    )
    plan = partial_plan(analyse(sql, SCHEMA), params())
    (group,) = combine(plan, [run_fragment(plan.sql, path)])
    assert group.values["a"] == 20 * 60.0
    assert group.values["b"] == 20 * 60.0
    assert group.values["top"] == 60.0
    assert group.values["mean"] == 60.0
    assert group.values["spread"] == 0.0


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT SUM(los * 1e6) FROM admissions",
        "SELECT SUM(CASE WHEN age > 60 THEN 1e6 END) FROM admissions",
        "SELECT SUM(1e6) FROM admissions",
        "SELECT SUM(los + 1e6) FROM admissions",
    ],
)
def test_escaping_the_bounds_is_refused_by_the_analysis(sql: str) -> None:
    with pytest.raises(AnalysisError) as info:
        analyse(sql, SCHEMA)
    assert info.value.codes == ("unbounded_expression",)


def test_literals_outside_the_clip_bounds_are_refused_by_the_plan() -> None:
    sql = "SELECT SUM(CASE WHEN age > 60 THEN los ELSE 1e6 END) FROM admissions"
    with pytest.raises(PlanError) as info:
        partial_plan(analyse(sql, SCHEMA), params())
    assert info.value.codes == ("unbounded_expression",)


def test_missing_clip_bounds_and_wrong_parameters_are_refused() -> None:
    analysis = analyse("SELECT SUM(los) FROM admissions", SCHEMA)
    with pytest.raises(PlanError) as info:
        partial_plan(analysis, params(clip={"cost": (0, 1)}))
    assert info.value.codes == ("clip_bounds_missing",)
    wrong = params().model_copy(update={"privacy_units": {"admissions": "district"}})
    with pytest.raises(PlanError) as info:
        partial_plan(analysis, wrong)
    assert info.value.codes == ("privacy_unit_mismatch",)


def test_shared_partials_are_computed_once() -> None:
    sql = "SELECT SUM(los), AVG(los), VAR_POP(los), STDDEV_SAMP(los), COUNT(*) FROM admissions"
    plan = partial_plan(analyse(sql, SCHEMA), params())
    assert sorted(p.kind for p in plan.partials) == ["count", "count", "sum", "sum_squares"]
    assert len(plan.values) == 1


def test_the_fragment_is_one_select_over_the_asset_view() -> None:
    plan = partial_plan(analyse(QUERIES[1], SCHEMA), params(c=3))
    (statement,) = sqlglot.parse(plan.sql, read="duckdb")
    assert isinstance(statement, exp.Select)
    assert {t.name for t in statement.find_all(exp.Table)} == {"asset"}
    assert plan.columns[: len(plan.keys) + 1] == ("__g0", "__units")


def test_pushdown_sql_reads_the_holders_table() -> None:
    plan = partial_plan(analyse(QUERIES[2], SCHEMA), params(c=3))
    sql = plan.pushdown_sql("hospital.admissions_2024")
    assert '"hospital"."admissions_2024"' in sql
    assert "asset" not in sql.replace("admissions", "")
    assert "EXTRACT(YEAR FROM" in sql and "DOUBLE PRECISION" in sql
    with pytest.raises(ValueError, match="plain table name"):
        plan.pushdown_sql("x; DROP TABLE y")


def test_pushdown_refuses_arithmetic_that_postgresql_could_overflow() -> None:
    plan = partial_plan(analyse(QUERIES[3], SCHEMA), params(c=3))
    with pytest.raises(PlanError) as info:
        plan.pushdown_sql("admissions")
    assert info.value.codes == ("pushdown_unsafe",)
    safe = "SELECT COUNT(*) FROM admissions WHERE los / 2 > 3 AND -age < 0"
    assert "admissions" in partial_plan(analyse(safe, SCHEMA), params()).pushdown_sql("admissions")


def test_clip_bounds_must_keep_squares_finite() -> None:
    analysis = analyse("SELECT VAR_POP(los) FROM admissions", SCHEMA)
    with pytest.raises(PlanError) as info:
        partial_plan(analysis, params(clip={"los": (-1e200, 1e200)}))
    assert info.value.codes == ("clip_bounds_too_wide",)


@pytest.mark.postgres
def test_pushdown_sql_runs_on_postgresql_with_the_same_result(
    postgres: Any, world: tuple[Path, list[Path]]
) -> None:
    import psycopg

    whole, _ = world
    url = postgres.create_database().replace("postgresql+psycopg://", "postgresql://")
    rows = [tuple(r.values()) for r in run_fragment("SELECT * FROM asset", whole)]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE admissions (patient_id BIGINT, district TEXT, age INTEGER, "
            "los DOUBLE PRECISION, cost NUMERIC(12,2), diagnosis TEXT, admitted DATE, "
            "readmitted BOOLEAN)"
        )
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO admissions VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", rows)
        for sql in (QUERIES[1], QUERIES[2], QUERIES[4]):
            plan = partial_plan(analyse(sql, SCHEMA), params(c=3))
            cursor = conn.execute(plan.pushdown_sql("public.admissions"))
            names = [d.name for d in cursor.description or []]
            pg = combine(plan, [[dict(zip(names, r, strict=True)) for r in cursor.fetchall()]])
            duck = combine(plan, [run_fragment(plan.sql, whole)])
            assert len(pg) == len(duck)
            for a, b in zip(pg, duck, strict=True):
                assert all(close(a.values[k], b.values[k]) for k in a.values), (a, b)


def test_combine_rejects_rows_of_another_shape() -> None:
    plan = partial_plan(analyse("SELECT COUNT(*) FROM admissions", SCHEMA), params())
    with pytest.raises(CombineError):
        combine(plan, [[{"__units": 3}]])
    with pytest.raises(CombineError):
        combine(plan, [[{"__units": -1, "__p0": 3}]])
    row = {"__g0": "a", "__units": 1, "__p0": 1}
    grouped = partial_plan(
        analyse("SELECT district, COUNT(*) FROM admissions GROUP BY 1", SCHEMA), params()
    )
    with pytest.raises(CombineError):
        combine(grouped, [[row, row]])


def test_combine_merges_min_max_and_missing_sums() -> None:
    sql = (
        "SELECT district, MIN(los) AS lo, MAX(los) AS hi, SUM(los) AS s, AVG(los) AS m "
        "FROM admissions GROUP BY 1"
    )
    plan = partial_plan(analyse(sql, SCHEMA), params())
    names = {p.kind: p.name for p in plan.partials}
    a = {
        "__g0": "x",
        "__units": 2,
        names["min"]: 1.0,
        names["max"]: 5.0,
        names["sum"]: 6.0,
        names["count"]: 2,
    }
    b = {
        "__g0": "x",
        "__units": 1,
        names["min"]: None,
        names["max"]: None,
        names["sum"]: None,
        names["count"]: 0,
    }
    c = {
        "__g0": None,
        "__units": 1,
        names["min"]: 9.0,
        names["max"]: 9.0,
        names["sum"]: 9.0,
        names["count"]: 1,
    }
    groups = combine(plan, [[a], [b, c]])
    assert [g.key for g in groups] == [(None,), ("x",)]
    assert groups[1].units == 3
    assert groups[1].values == {"district": "x", "lo": 1.0, "hi": 5.0, "s": 6.0, "m": 3.0}
