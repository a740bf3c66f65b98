"""A PostgreSQL asset served through the agent from an exported snapshot."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from gateway.siteclient.client import SiteClient
from sandbox.agent.config import PostgresSource
from sandbox.agent.postgres import ExportFailed, PostgresExports, SandboxOwner
from sandbox.agent.server import AgentServer
from tests.agent.conftest import EXACT, ROWS
from tests.agent.test_fragments import released, sql
from tests.pg import PgCluster


@pytest.fixture
def billing_dsn(postgres: PgCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    dsn = postgres.create_database().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE billing (patient_id text, district text, los integer, diagnosis text)"
        )
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO billing VALUES (%s, %s, %s, %s)", ROWS)
    monkeypatch.setenv("BILLING_DSN", dsn)
    return dsn


def test_a_postgres_table_is_exported_once_and_aggregated(
    client: SiteClient, agent: AgentServer, billing_dsn: str
) -> None:
    assert {a.id: a.ready for a in client.health().assets}["billing"]
    outcome = client.run_fragment(sql(asset="billing"))
    groups = released(outcome)
    assert set(groups) == set(EXACT)
    assert all(abs(int(groups[d][0]) - people) <= 3 for d, (people, _) in EXACT.items())
    snapshots = list((agent.config.cache_dir / "exports" / "billing").iterdir())
    assert len(snapshots) == 1
    info = snapshots[0].stat()
    if agent.runner.isolation_report().layers["separate_uid"]:
        assert (info.st_uid, info.st_mode & 0o777) == (agent.runner.config.sandbox_uid, 0o400)
    else:
        assert (info.st_uid, info.st_mode & 0o777) == (os.getuid(), 0o600)
    with psycopg.connect(billing_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO billing VALUES ('p9', 'north', 4, 'flu')")
        conn.execute("INSERT INTO billing VALUES ('p10', 'north', 2, 'flu')")
        conn.execute("INSERT INTO billing VALUES ('p11', 'north', 6, 'flu')")
    again = client.run_fragment(sql(asset="billing", epsilon=50.0))
    assert abs(int(released(again)["north"][0]) - EXACT["north"][0]) <= 1
    assert list((agent.config.cache_dir / "exports" / "billing").iterdir()) == snapshots


def test_snapshots_refresh_and_keep_the_previous_one(tmp_path: Path, billing_dsn: str) -> None:
    now = [0.0]
    exports = PostgresExports(
        tmp_path / "exports", SandboxOwner(), environ={"DSN": billing_dsn}, clock=lambda: now[0]
    )
    source = PostgresSource(dsn_env="DSN", table="public.billing", refresh_seconds=10)
    first = exports.snapshot("b", source)
    assert first.read_text().splitlines()[0] == "patient_id,district,los,diagnosis"
    assert exports.snapshot("b", source) == first
    now[0] = 11
    second = exports.snapshot("b", source)
    assert second != first and first.exists()
    now[0] = 22
    third = exports.snapshot("b", source)
    assert not first.exists() and second.exists() and third.exists()
    exports.clear()
    assert not (tmp_path / "exports").exists()


@pytest.mark.parametrize(
    ("environ", "table", "max_bytes"),
    [({}, "billing", 4096), (None, "no_such_table", 4096), (None, "billing", 1024)],
    ids=["no-dsn", "no-table", "too-large"],
)
def test_failed_exports_leave_nothing(
    tmp_path: Path,
    billing_dsn: str,
    environ: dict[str, str] | None,
    table: str,
    max_bytes: int,
) -> None:
    if max_bytes == 1024:
        with psycopg.connect(billing_dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO billing SELECT 'x' || g, 'north', g, 'flu' "
                "FROM generate_series(1, 500) g"
            )
    exports = PostgresExports(
        tmp_path / "exports",
        SandboxOwner(),
        environ={"DSN": billing_dsn} if environ is None else environ,
    )
    source = PostgresSource(dsn_env="DSN", table=table, max_bytes=max_bytes)
    with pytest.raises(ExportFailed):
        exports.snapshot("b", source)
    leftovers = list((tmp_path / "exports").rglob("*")) if (tmp_path / "exports").exists() else []
    assert [p for p in leftovers if p.is_file()] == []
