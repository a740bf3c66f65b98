"""Fragments pushed down to the holder's PostgreSQL give the sandbox's answer; anything
but a fragment's shape is refused before it reaches the database."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from policies.jobs import analyse, combine, partial_plan
from sandbox.agent.config import PostgresSource
from sandbox.agent.postgres import PushdownFailed, pushdown_is_safe, run_pushdown
from tests.agent.conftest import Pki
from tests.jobs.world import SCHEMA, generate_rows, params, run_fragment, write_table
from tests.pg import PgCluster

QUERIES = [
    "SELECT district, COUNT(*) AS n, SUM(los) AS s, AVG(los) AS m FROM admissions "
    "GROUP BY district",
    "SELECT COUNT(*) AS n, VARIANCE(los) AS v FROM admissions WHERE age >= 65",
]


@pytest.fixture
def admissions(postgres: PgCluster, tmp_path: Path) -> tuple[str, Path]:
    rows = generate_rows(300, 1, seed=5)
    dsn = postgres.create_database().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE admissions (patient_id bigint, district text, age integer, "
            "los double precision, cost numeric(12,2), diagnosis text, admitted date, "
            "readmitted boolean)"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO admissions VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows
            )
    return dsn, write_table(tmp_path / "admissions.parquet", rows)


@pytest.mark.parametrize("query", QUERIES)
def test_pushdown_matches_the_sandbox(admissions: tuple[str, Path], query: str) -> None:
    dsn, parquet = admissions
    plan = partial_plan(analyse(query, SCHEMA), params(c=1))
    program = plan.pushdown_sql("asset")
    assert pushdown_is_safe(program)
    source = PostgresSource(dsn_env="DSN", table="public.admissions", pushdown=True)
    columns, _types, rows = run_pushdown(source, {"DSN": dsn}, program, 30)
    pushed = [dict(zip(columns, row, strict=True)) for row in rows]
    local = run_fragment(plan.sql, parquet)
    exact_pushed = {g.key: g.values for g in combine(plan, [pushed])}
    exact_local = {g.key: g.values for g in combine(plan, [local])}
    assert exact_pushed.keys() == exact_local.keys()
    for key, values in exact_local.items():
        for name, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert exact_pushed[key][name] == pytest.approx(value, rel=1e-9, abs=1e-9)
            else:
                assert exact_pushed[key][name] == value


@pytest.mark.parametrize(
    "program",
    [
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT * FROM pg_shadow",
        "SELECT COUNT(*) FROM asset; DROP TABLE admissions",
        "SELECT COUNT(*) FROM asset, pg_user",
        "DELETE FROM asset",
    ],
)
def test_anything_else_is_refused_before_the_database(
    admissions: tuple[str, Path], program: str
) -> None:
    dsn, _ = admissions
    source = PostgresSource(dsn_env="DSN", table="public.admissions", pushdown=True)
    assert not pushdown_is_safe(program)
    with pytest.raises(PushdownFailed) as failed:
        run_pushdown(source, {"DSN": dsn}, program, 30)
    assert failed.value.code == "bad_input"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT COUNT(*) FROM admissions").fetchone() == (300,)


def test_statement_timeout(admissions: tuple[str, Path]) -> None:
    dsn, _ = admissions
    source = PostgresSource(dsn_env="DSN", table="public.admissions", pushdown=True)
    slow = "SELECT COUNT(*) AS n FROM asset a1, asset a2, asset a3"
    with pytest.raises(PushdownFailed):
        run_pushdown(source, {"DSN": dsn}, slow, 0.2)


PUSHDOWN_POLICY = """\
version: 1
asset: admissions
columns:
  patient_id: {control: join_key}
  district:
    control: group_by
    keys: {values: [north, south, east, west]}
  los:
    control: aggregate
    clip: {lower: 0, upper: 30}
jobs:
  kinds: [sql_aggregate]
  aggregates: [count, sum, avg]
  purposes: [research]
  min_group_size: 5
  max_rows_per_unit: 1
  approval: {mode: auto}
privacy:
  epsilon_per_job_max: 50
  budget: {epsilon: 1000, delta: 0, period_days: 30}
"""


def test_the_agent_pushes_down_when_its_holder_says_so(
    admissions: tuple[str, Path], certs: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real agent over mutual TLS: a push-down asset runs the PostgreSQL form
    the agent derives itself from the operator's job, and exports nothing."""
    from prometheus_client import CollectorRegistry

    from gateway.siteclient.client import SiteClient, SiteMetrics
    from sandbox.agent.config import parse_config
    from sandbox.agent.server import AgentServer
    from tests.agent.conftest import agent_document
    from tests.agent.tickets import Minter, release_of, request

    dsn, _ = admissions
    monkeypatch.setenv("PUSHDOWN_DSN", dsn)
    cache = tmp_path / "cache"
    document = agent_document(
        certs, {"csv": tmp_path / "x.csv", "parquet": tmp_path / "x.pq"}, cache
    )
    document["assets"] = {
        "admissions": {
            "postgres": {"dsn_env": "PUSHDOWN_DSN", "table": "public.admissions", "pushdown": True}
        }
    }
    document["unsafe_enable_test_executor"] = False
    agent = AgentServer(parse_config(document, certs.root / "agent"))
    port = agent.start()
    minter = Minter(
        policy=PUSHDOWN_POLICY,
        columns=[(c.name, c.type, str(c.tag)) for c in SCHEMA.columns],
    )
    try:
        with SiteClient(
            f"127.0.0.1:{port}",
            certs.ca,
            certs.gateway.cert,
            certs.gateway.key,
            certs.site.fingerprint,
            metrics=SiteMetrics(CollectorRegistry()),
            timeout=15.0,
        ) as client:
            ticket = minter.ticket(local_ref="admissions", sql=QUERIES[0], epsilon=10)
            outcome = client.run_fragment(request(ticket))
            assert outcome.ok, outcome
            assert outcome.table is not None
            assert {row[0] for row in outcome.table.rows} == {"north", "south", "east", "west"}
            assert release_of(outcome)["key_release"] == "declared_keys"
    finally:
        agent.stop(grace=0.2)
    exported = [p for p in (cache / "exports").rglob("*") if p.is_file()]
    assert exported == []
