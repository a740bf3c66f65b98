"""Concurrent heavy fragments on one large asset succeed, or fail with the right code.

A contribution-bounded GROUP BY (the shape of every federated SQL fragment) over a
large Parquet asset runs for several seconds once fragments share the CPU. DuckDB
then started printing its progress bar on the worker's standard output, which
corrupted the result document and turned every such fragment into ``internal``
while one fragment alone, finishing sooner, succeeded.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from sandbox.config import RunnerConfig
from sandbox.runner import Runner
from sandbox.spec import MIB, FailureReason, FragmentResult, FragmentSpec, Limits
from tests.sandbox.conftest import FAST_LIMITS, Files, run_python

ROWS = 2_000_000
BOUNDED = """
SELECT district, COUNT(DISTINCT patient_id) AS units, COUNT(*) AS n, SUM(los) AS total
FROM (
    SELECT patient_id, district, los,
           ROW_NUMBER() OVER (PARTITION BY patient_id ORDER BY r) AS row_in_unit
    FROM (SELECT patient_id, district, los, RANDOM() AS r FROM asset) AS rows
) AS bounded
WHERE row_in_unit <= 4
GROUP BY district ORDER BY district
"""


@pytest.fixture(scope="module")
def large_asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("large")
    os.chmod(root, 0o755)
    asset = root / "admissions.parquet"
    duckdb.connect().execute(
        f"""COPY (SELECT 'P' || (i % {ROWS // 4}) AS patient_id,
                         ['north', 'south', 'east', 'west', 'centre'][1 + (i % {ROWS // 4}) % 5]
                             AS district,
                         1 + (i * 31) % 20 AS los
                  FROM range({ROWS}) AS t(i)) TO '{asset}' (FORMAT parquet)"""
    )
    os.chmod(asset, 0o644)
    return asset


def _expected(asset: Path) -> tuple[tuple[object, ...], ...]:
    sql = BOUNDED.replace("FROM asset", f"FROM read_parquet('{asset}')")
    return tuple(tuple(row) for row in duckdb.connect().execute(sql).fetchall())


def _concurrently(runner: Runner, spec: FragmentSpec, count: int) -> list[FragmentResult]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: runner.run(spec), range(count)))


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 4])
def test_concurrent_bounded_group_by_succeeds(large_asset: Path, count: int) -> None:
    limits = Limits(memory_bytes=2048 * MIB, cpu_seconds=60, wall_seconds=120.0)
    expected = _expected(large_asset)
    with Runner(RunnerConfig(default_limits=limits)) as runner:
        results = _concurrently(
            runner, FragmentSpec("duckdb_sql", BOUNDED, large_asset, limits=limits), count
        )
    for result in results:
        assert result.ok, result
        assert result.table is not None
        assert result.table.rows == expected


@pytest.mark.slow
def test_concurrent_fragments_out_of_memory_say_memory(large_asset: Path) -> None:
    limits = Limits(memory_bytes=96 * MIB, cpu_seconds=60, wall_seconds=120.0)
    with Runner(RunnerConfig(default_limits=limits)) as runner:
        results = _concurrently(
            runner, FragmentSpec("duckdb_sql", BOUNDED, large_asset, limits=limits), 4
        )
    assert [result.failure for result in results] == [FailureReason.MEMORY] * 4


def test_progress_bar_is_off(runner: Runner, files: Files) -> None:
    sql = "SELECT current_setting('enable_progress_bar') AS bar"
    result = runner.run(FragmentSpec("duckdb_sql", sql, files.asset_csv, limits=FAST_LIMITS))
    assert result.ok, result
    assert result.table is not None
    assert result.table.rows == ((False,),)


def test_what_a_library_prints_does_not_corrupt_the_result(runner: Runner, files: Files) -> None:
    code = "import os, sys\nprint('progress 42%')\nos.write(1, b'[====>   ]')\nresult = 7\n"
    result = run_python(runner, files, code)
    assert result.ok, result
    assert result.table is not None
    assert result.table.rows == ((7,),)
