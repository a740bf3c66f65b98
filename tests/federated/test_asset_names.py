"""Jobs on an asset whose name is not a plain SQL identifier: the query names the table as
a quoted identifier, as SQL does, and the job runs end to end on real sites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.service.jobs.schemas import JobSubmitIn
from gateway.store import open_store
from tests.federated.conftest import Federation, build_federation


@pytest.fixture
def beds(tmp_path: Path, sqlite_url: str) -> Iterator[Federation]:
    store = open_store(sqlite_url)
    fed, agents = build_federation(tmp_path, store, table_name="bed-occupancy")
    try:
        yield fed
    finally:
        for agent in agents:
            agent.stop()
        fed.services.site_pool.close()
        store.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _submit(fed: Federation, sql: str):
    body = JobSubmitIn(sql=sql, assets=fed.asset_ids, epsilon=2.0, purpose="research")
    return fed.services.jobs.submit(fed.operator, body)


def test_a_job_on_a_hyphenated_asset_name_runs(beds: Federation) -> None:
    sql = (
        'SELECT district, COUNT(*) AS n, AVG("bed-occupancy".los_days) AS stay '
        'FROM "bed-occupancy" GROUP BY district'
    )
    job = _submit(beds, sql)
    assert job.state == "queued", job.decision
    assert beds.runner.run_once()
    done = beds.services.jobs.get(beds.operator, job.id)
    assert done.state == "succeeded", done.error_code
    result = beds.services.jobs.result(beds.operator, job.id)
    assert {r[0].value for r in result.rows} == set(beds.truth())


def test_the_unquoted_name_is_refused_with_the_quoted_fix(beds: Federation) -> None:
    job = _submit(beds, "SELECT COUNT(*) FROM bed_occupancy")
    assert job.state == "denied"
    text = str(job.decision)
    assert '"bed-occupancy"' in text


@pytest.mark.parametrize("table", ["bed-occupancy", "Bed Occupancy", "beds.parquet", "azimuths"])
def test_the_asset_table_is_matched_by_its_own_name_before_any_path_check(table: str) -> None:
    from policies.jobs import AnalysisError, AssetSchema, analyse
    from policies.jobs.schema import sql_identifier

    schema = AssetSchema.build(
        "a1",
        table,
        [("patient_id", "text", "identifier"), ("ward", "text", "quasi_identifier")],
        "patient_id",
    )
    quoted = sql_identifier(table)
    assert quoted == table if table == "azimuths" else quoted == f'"{table}"'
    analysis = analyse(f"SELECT ward, COUNT(*) FROM {quoted} GROUP BY ward", schema)
    assert [(u.column, u.usage) for u in analysis.column_uses] == [("ward", "group_by")]
    with pytest.raises(AnalysisError) as refused:
        analyse("SELECT COUNT(*) FROM 'other.csv'", schema)
    assert refused.value.reasons[0].code == "table_function"


def test_a_table_name_with_control_characters_is_unusable() -> None:
    from policies.jobs import AssetSchema

    with pytest.raises(ValueError, match="not a usable SQL name"):
        AssetSchema.build("a1", "beds\nx", [("p", "text", "identifier")], "p")
