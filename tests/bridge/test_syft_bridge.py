"""The PySyft bridge, offline: an unmodified syft-rds data scientist submits a job folder
through syft-rds's in-memory mock drive; the bridge submits it to Blindgate, the three
hospitals approve its code hash and review its outputs at their sites, and the data
scientist receives the released outputs (or the holder's reason) through syft-rds.

Runs in the second virtualenv that ``make test`` makes with ``blindgate[pysyft]``."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.client import Client
from gateway.http import create_app
from gateway.store import open_store
from tests.federated.conftest import Federation, build_federation
from tests.federated.test_python_jobs import MAIN, PYTHON_POLICY, review
from tests.server import running

pytestmark = [pytest.mark.pysyft, pytest.mark.slow]

if os.environ.get("BLINDGATE_REQUIRE_PYSYFT") == "1":
    import syft_rds
else:
    syft_rds = pytest.importorskip("syft_rds")

DO_EMAIL = "steward@riverside.example"
DS_EMAIL = "analyst@civic-analytics.example"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Federation, str]]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    fed, agents = build_federation(
        tmp_path, store, mode="manual", policy=PYTHON_POLICY, kinds=("sql_aggregate", "python")
    )
    try:
        with running(create_app(fed.services)) as url:
            yield fed, url
    finally:
        for agent in agents:
            agent.stop()
        fed.services.site_pool.close()
        store.close()


@pytest.fixture
def syft_pair() -> tuple[Any, Any]:
    return syft_rds.SyftRDSClient.pair_with_mock_drive_service_connection(
        email1=DO_EMAIL, email2=DS_EMAIL, use_in_memory_cache=False
    )


def submit(ds: Any, tmp: Path, name: str) -> None:
    """What a syft-rds data scientist writes and calls, unchanged."""
    code = tmp / name
    code.mkdir()
    (code / "main.py").write_text(textwrap.dedent(MAIN), encoding="utf-8")
    ds.submit_python_job(user=DO_EMAIL, code_path=str(code), job_name=name)


def bridge_for(fed: Federation, url: str, do: Any, tmp: Path) -> Any:
    from gateway.syftbridge.bridge import BridgeSettings, SyftBridge

    operator = Client(url, fed.operator_key)
    settings = BridgeSettings(
        assets=fed.asset_ids,
        purpose="research",
        operators={DS_EMAIL: operator},
        dataset="admissions",
        state_file=tmp / "bridge-state.json",
    )
    return SyftBridge(do, settings)


def approve_all(fed: Federation, job_id: str) -> None:
    for index in range(3):
        fed.approve(index, job_id)


def test_a_syft_rds_job_comes_back_released_through_syft_rds(
    world: tuple[Federation, str], syft_pair: tuple[Any, Any], tmp_path: Path
) -> None:
    fed, url = world
    ds, do = syft_pair
    submit(ds, tmp_path, "mean-stay")
    bridge = bridge_for(fed, url, do, tmp_path)
    assert bridge.step() == 1
    (tracked,) = bridge.tracked.values()
    approve_all(fed, tracked.job_id)
    assert fed.runner.run_once()
    for index in range(3):
        review(fed, tracked.job_id, index, release=True, tmp=tmp_path)
    assert fed.runner.review_held() == 1
    assert bridge.step() == 1
    ds.sync()
    (job,) = [j for j in ds.jobs if j.name == "mean-stay"]
    assert job.status == "done"
    (folder,) = job.output_paths  # the deposited folder: one per site, and the receipt
    receipt = json.loads((folder / "receipt.json").read_text())
    assert Client(url, fed.operator_key).verify_receipt(receipt)
    summaries = sorted(folder.rglob("summary.json"))
    assert {p.parent.parent.name for p in summaries} == set(fed.asset_ids)
    for path in summaries:
        assert json.loads(path.read_text())["columns"] == ["age", "district", "los_days"]


def test_a_holders_rejection_reaches_the_data_scientist_with_its_reason(
    world: tuple[Federation, str], syft_pair: tuple[Any, Any], tmp_path: Path
) -> None:
    fed, url = world
    ds, do = syft_pair
    submit(ds, tmp_path, "too-detailed")
    bridge = bridge_for(fed, url, do, tmp_path)
    bridge.step()
    (tracked,) = bridge.tracked.values()
    approve_all(fed, tracked.job_id)
    assert fed.runner.run_once()
    review(fed, tracked.job_id, 0, release=True, tmp=tmp_path)
    review(fed, tracked.job_id, 2, release=False, tmp=tmp_path)
    assert fed.runner.review_held() == 1
    assert bridge.step() == 1
    ds.sync()
    (job,) = [j for j in ds.jobs if j.name == "too-detailed"]
    assert job.status == "rejected"
    assert "review_rejected" in job.review_reason
    assert "the mean reveals too much" in job.review_reason


def test_a_data_scientist_without_a_licensed_operator_is_turned_away(
    world: tuple[Federation, str], syft_pair: tuple[Any, Any], tmp_path: Path
) -> None:
    fed, url = world
    ds, do = syft_pair
    submit(ds, tmp_path, "unlicensed")
    bridge = bridge_for(fed, url, do, tmp_path)
    bridge.settings.operators.clear()
    assert bridge.step() == 1
    ds.sync()
    (job,) = [j for j in ds.jobs if j.name == "unlicensed"]
    assert job.status == "rejected"
    assert "no licensed operator" in job.review_reason
