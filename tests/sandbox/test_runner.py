"""Ordinary fragments, input validation, the pool and isolation-level enforcement."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from sandbox.config import IsolationLevel, RunnerConfig
from sandbox.runner import MAX_PROGRAM_BYTES, IsolationError, Runner
from sandbox.spec import FailureReason, FragmentSpec
from tests.sandbox.conftest import (
    EXPECTED_GROUPS,
    FAST_LIMITS,
    GROUP_BY,
    Files,
    run_group_by,
    run_python,
)


def test_group_by_over_csv(runner: Runner, files: Files) -> None:
    result = run_group_by(runner, files.asset_csv)
    assert result.ok
    assert result.failure is None
    assert result.table is not None
    assert result.table.columns == ("district", "n", "total")
    assert result.table.rows == EXPECTED_GROUPS


def test_group_by_over_parquet(runner: Runner, files: Files) -> None:
    result = run_group_by(runner, files.asset_parquet)
    assert result.ok
    assert result.table is not None
    assert result.table.rows == EXPECTED_GROUPS
    assert result.table.types[1] == "BIGINT"


def test_values_are_json_scalars(runner: Runner, files: Files) -> None:
    sql = (
        "SELECT AVG(los) AS mean, SUM(los)::DECIMAL(18, 2) AS exact, DATE '2024-05-01' AS day,"
        " 'nan'::DOUBLE AS nan, NULL AS missing FROM asset"
    )
    result = runner.run(FragmentSpec("duckdb_sql", sql, files.asset_csv, limits=FAST_LIMITS))
    assert result.ok, result
    assert result.table is not None
    assert result.table.rows == ((5.0, "25.00", "2024-05-01", "nan", None),)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT nope FROM asset",
        "SELEC 1",
        "SELECT 1; SELECT 2",
        "COPY (SELECT 1) TO '/tmp/out.csv'",
        "CREATE TABLE t AS SELECT 1",
        "SET enable_external_access = true",
        "SELECT [1, 2] AS nested",
    ],
)
def test_bad_sql_is_bad_input(runner: Runner, files: Files, sql: str) -> None:
    result = runner.run(FragmentSpec("duckdb_sql", sql, files.asset_csv, limits=FAST_LIMITS))
    assert result.failure is FailureReason.BAD_INPUT
    assert result.table is None


def test_invalid_fragments_are_rejected_before_start(runner: Runner, files: Files) -> None:
    for spec in (
        FragmentSpec("no_such_executor", "SELECT 1", files.asset_csv),
        FragmentSpec("duckdb_sql", "SELECT 1", files.root / "missing.csv"),
        FragmentSpec("duckdb_sql", "SELECT 1", files.key_file),
        FragmentSpec("duckdb_sql", "SELECT 1", files.asset_csv, files.asset_csv),
        FragmentSpec("duckdb_sql", "SELECT 1" + " " * MAX_PROGRAM_BYTES, files.asset_csv),
    ):
        assert runner.run(spec).failure is FailureReason.BAD_INPUT


def test_input_dir_is_read_only(runner: Runner, files: Files) -> None:
    code = """
import os
base = context.input_dir
with open(os.path.join(base, "params.json")) as handle:
    content = handle.read()
try:
    open(os.path.join(base, "new.txt"), "w").close()
    wrote = "wrote"
except OSError as exc:
    wrote = type(exc).__name__
rows = [[content, wrote]]
"""
    result = run_python(runner, files, code)
    assert result.ok, result
    assert result.table is not None
    content, wrote = result.table.rows[0]
    assert content == "{}"
    assert wrote in ("OSError", "PermissionError")
    assert not (files.input_dir / "new.txt").exists()


def test_failure_carries_no_detail(runner: Runner, files: Files) -> None:
    code = f"raise ValueError('row value {files.other_secret}')"
    result = run_python(runner, files, code)
    assert result.failure is FailureReason.INTERNAL
    assert files.other_secret not in repr(result)


def test_pool_serves_fragments_and_notices_a_replaced_asset(
    runner: Runner, files: Files, tmp_path: Path
) -> None:
    os.chmod(tmp_path, 0o755)
    asset = tmp_path / "pooled.csv"
    shutil.copyfile(files.asset_csv, asset)
    runner.warm("duckdb_sql", asset, limits=FAST_LIMITS)
    for _ in range(3):
        result = run_group_by(runner, asset)
        assert result.table is not None
        assert result.table.rows == EXPECTED_GROUPS
    asset.write_text("district,los\nwest,4\n", encoding="utf-8")
    result = run_group_by(runner, asset)
    assert result.table is not None
    assert result.table.rows == (("west", 1, 4),)


def test_test_executor_is_off_by_default(files: Files) -> None:
    with Runner(RunnerConfig(default_limits=FAST_LIMITS)) as plain:
        assert plain.executors() == frozenset({"duckdb_sql", "python", "tenseal_he"})
        result = plain.run(FragmentSpec("python_test", "result = 1", files.asset_csv))
        assert result.failure is FailureReason.BAD_INPUT


def test_this_host_reaches_strong_isolation() -> None:
    with Runner(RunnerConfig()) as auto:
        report = auto.isolation_report()
    assert os.geteuid() == 0
    assert report.backend == "bwrap"
    assert report.level is IsolationLevel.STRONG
    assert all(report.layers[name] for name in ("namespaces", "seccomp", "cgroup", "rlimits"))
    assert report.as_dict()["level"] == "strong"


def test_minimum_level_is_enforced(files: Files, caplog: pytest.LogCaptureFixture) -> None:
    weak = RunnerConfig(backend="none", default_limits=FAST_LIMITS)
    with pytest.raises(IsolationError):
        Runner(weak)
    unsafe = RunnerConfig(
        backend="none", default_limits=FAST_LIMITS, unsafe_allow_weak_isolation=True
    )
    with Runner(unsafe) as runner, caplog.at_level(logging.WARNING, logger="sandbox.runner"):
        assert runner.isolation_report().level is IsolationLevel.WEAK
        for _ in range(2):
            result = runner.run(FragmentSpec("duckdb_sql", GROUP_BY, files.asset_csv))
            assert result.table is not None
            assert result.table.rows == EXPECTED_GROUPS
    warnings = [r for r in caplog.records if "UNSAFE" in r.getMessage()]
    assert len(warnings) == 2
