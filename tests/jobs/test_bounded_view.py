"""The contribution-bounded view a site computes once per asset version, and the fragment
that runs over it.

The view keeps at most ``c`` rows per privacy unit, chosen by a keyed hash of each row
under the site's seed: a fixed function of each person's own rows. A fragment over the
view must then count and sum exactly what the per-job fragment counts over an asset that
is already bounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from policies.jobs import analyse, combine, partial_plan
from sandbox.executors.duckdb_sql import bounded_source
from tests.jobs.world import SCHEMA, generate_rows, params, run_fragment, write_table

QUERIES = [
    "SELECT district, COUNT(*) AS n, COUNT(DISTINCT patient_id) AS people, SUM(los) AS days, "
    "AVG(cost) AS mean FROM admissions WHERE age > 30 GROUP BY district",
    "SELECT COUNT(*) AS n, SUM(CASE WHEN readmitted THEN los ELSE 0 END) AS s FROM admissions",
]


def bounded_rows(path: Path, unit: str, c: int, seed: str) -> list[tuple[Any, ...]]:
    select, parameters = bounded_source(
        f"read_parquet('{path}')", {"unit": unit, "rows": c, "seed": seed}
    )
    with duckdb.connect() as con:
        return sorted(con.execute(select, parameters).fetchall(), key=repr)


def run_over_bounded(sql: str, path: Path, c: int, seed: str) -> list[dict[str, Any]]:
    """A fragment as a site's sandbox runs it: ``asset`` is the bounded view."""
    select, parameters = bounded_source(
        f"read_parquet('{path}')", {"unit": "patient_id", "rows": c, "seed": seed}
    )
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE asset AS {select}", parameters)
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.parametrize("c", [1, 2])
def test_each_unit_keeps_at_most_c_rows_chosen_by_the_seed(tmp_path: Path, c: int) -> None:
    rows = generate_rows(units=200, rows_per_unit=4, seed=3)
    orphans = [(None, *r[1:]) for r in rows[:5]]
    path = write_table(tmp_path / "asset.parquet", rows + orphans)
    kept = bounded_rows(path, "patient_id", c, "a1" * 16)
    per_unit: dict[Any, int] = {}
    for row in kept:
        per_unit[row[0]] = per_unit.get(row[0], 0) + 1
    assert None not in per_unit
    assert set(per_unit) == set(range(1, 201))
    assert set(per_unit.values()) == {c}
    with duckdb.connect() as con:
        stored = set(con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall())
    assert set(kept) <= stored
    # The same seed keeps the same rows; another seed keeps other rows.
    assert bounded_rows(path, "patient_id", c, "a1" * 16) == kept
    assert bounded_rows(path, "patient_id", c, "b2" * 16) != kept


def test_the_choice_depends_only_on_each_persons_own_rows(tmp_path: Path) -> None:
    rows = generate_rows(units=100, rows_per_unit=3, seed=8)
    others = generate_rows(units=300, rows_per_unit=2, seed=9)[100 * 2 :]
    alone = write_table(tmp_path / "alone.parquet", rows)
    mixed = write_table(tmp_path / "mixed.parquet", list(reversed(others + rows)))
    seed = "c3" * 16
    kept_alone = bounded_rows(alone, "patient_id", 1, seed)
    kept_mixed = [r for r in bounded_rows(mixed, "patient_id", 1, seed) if r[0] <= 100]
    assert kept_alone == kept_mixed


@pytest.mark.parametrize("sql", QUERIES)
def test_the_fragment_over_the_bounded_view_matches_the_per_job_fragment(
    tmp_path: Path, sql: str
) -> None:
    # Every unit has one row: bounding keeps all of them, whichever way it is done.
    rows = generate_rows(units=300, rows_per_unit=1, seed=21)
    path = write_table(tmp_path / "asset.parquet", rows)
    plan = partial_plan(analyse(sql, SCHEMA), params(c=1))
    assert "ROW_NUMBER" not in plan.bounded_sql.upper()
    per_job = combine(plan, [run_fragment(plan.sql, path)])
    over_view = combine(plan, [run_over_bounded(plan.bounded_sql, path, 1, "d4" * 16)])
    assert [(g.key, g.values) for g in per_job] == [(g.key, g.values) for g in over_view]


def test_the_filter_applies_to_the_rows_the_view_kept(tmp_path: Path) -> None:
    # Unit 1 has an old and a young row; with c = 1 the view keeps one of them, so a
    # filter on age counts unit 1 only if the kept row passes it, never both rows.
    base = generate_rows(units=1, rows_per_unit=1, seed=2)[0]
    young = (1, "north", 20, *base[3:])
    old = (1, "north", 80, *base[3:])
    path = write_table(tmp_path / "asset.parquet", [young, old])
    seed = "e5" * 16
    (kept,) = bounded_rows(path, "patient_id", 1, seed)
    plan = partial_plan(
        analyse("SELECT COUNT(*) AS n FROM admissions WHERE age > 60", SCHEMA), params(c=1)
    )
    groups = combine(plan, [run_over_bounded(plan.bounded_sql, path, 1, seed)])
    counted = sum(g.values["n"] for g in groups)
    assert counted == (1 if kept[2] > 60 else 0)
