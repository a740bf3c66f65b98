"""Fixtures for the sandbox suite: real sandboxes, real assets, real secrets to protect."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from sandbox.config import IsolationLevel, RunnerConfig
from sandbox.runner import Runner
from sandbox.spec import MIB, FragmentResult, FragmentSpec, Limits

ASSET_ROWS = [("north", 3), ("south", 5), ("north", 7), ("east", 1), ("south", 9)]
EXPECTED_GROUPS = (("east", 1, 1), ("north", 2, 10), ("south", 2, 14))
GROUP_BY = "SELECT district, COUNT(*) AS n, SUM(los) AS total FROM asset GROUP BY 1 ORDER BY 1"

FAST_LIMITS = Limits(cpu_seconds=1, wall_seconds=4.0, memory_bytes=512 * MIB, pids=64)


@dataclass(frozen=True)
class Files:
    """Files laid out for the suite: the asset, things the job must never reach."""

    root: Path
    asset_csv: Path
    asset_parquet: Path
    other_asset: Path
    key_file: Path
    input_dir: Path
    key_secret: str
    other_secret: str
    asset_bytes: bytes
    asset_mode: int


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("sandbox")
    os.chmod(root, 0o755)
    assets = root / "assets"
    assets.mkdir()
    asset_csv = assets / "admissions.csv"
    asset_csv.write_text(
        "district,los\n" + "".join(f"{d},{n}\n" for d, n in ASSET_ROWS), encoding="utf-8"
    )
    asset_parquet = assets / "admissions.parquet"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_csv('{asset_csv}')) TO '{asset_parquet}' (FORMAT parquet)"
    )
    con.close()
    other_secret = "OTHER-ASSET-" + secrets.token_hex(8)
    other_asset = assets / "other.csv"
    other_asset.write_text(f"secret\n{other_secret}\n", encoding="utf-8")
    agent = root / "agent"
    agent.mkdir(mode=0o700)
    key_secret = "AGENT-KEY-" + secrets.token_hex(16)
    key_file = agent / "agent.key"
    key_file.write_text(key_secret, encoding="utf-8")
    key_file.chmod(0o600)
    input_dir = root / "input"
    input_dir.mkdir()
    (input_dir / "params.json").write_text("{}", encoding="utf-8")
    return Files(
        root=root,
        asset_csv=asset_csv,
        asset_parquet=asset_parquet,
        other_asset=other_asset,
        key_file=key_file,
        input_dir=input_dir,
        key_secret=key_secret,
        other_secret=other_secret,
        asset_bytes=asset_csv.read_bytes(),
        asset_mode=asset_csv.stat().st_mode & 0o777,
    )


def backends() -> list[str]:
    """Ways of running fragments exercised by the hostile suite: forked children of a fork
    server under namespaces, a sandbox of their own under namespaces, and Landlock."""
    return ["bwrap-forked", "bwrap", "landlock"]


@pytest.fixture(scope="session", params=backends())
def runner(request: pytest.FixtureRequest, files: Files) -> Iterator[Runner]:
    backend, _, mode = str(request.param).partition("-")
    config = RunnerConfig(
        backend=backend,  # type: ignore[arg-type]
        minimum_isolation=IsolationLevel.STRONG if backend == "bwrap" else IsolationLevel.MEDIUM,
        unsafe_enable_test_executor=True,
        default_limits=FAST_LIMITS,
        pool_size=1,
        fork_servers=1 if mode == "forked" else 0,
    )
    with Runner(config) as instance:
        assert instance.isolation_report().backend == backend
        assert (instance.fork_servers is not None) == (mode == "forked")
        instance.warm("duckdb_sql", files.asset_csv, limits=FAST_LIMITS)
        yield instance


def run_python(runner: Runner, files: Files, code: str, **limits: object) -> FragmentResult:
    """Run a hostile snippet with the ``python_test`` executor against the CSV asset."""
    spec_limits = dataclasses.replace(FAST_LIMITS, **limits)
    spec = FragmentSpec("python_test", code, files.asset_csv, files.input_dir, spec_limits)
    return runner.run(spec)


def run_group_by(runner: Runner, asset: Path) -> FragmentResult:
    return runner.run(FragmentSpec("duckdb_sql", GROUP_BY, asset, limits=FAST_LIMITS))
