"""A syft-rds job folder across the three hospitals, on both stores: submitted, approved
by its code hash, run at every site, reviewed there and released with a receipt."""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from gateway.cli.main import cli
from gateway.client import Client
from gateway.client.python_jobs import job_folder
from gateway.http import create_app
from gateway.service.jobs.schemas import PythonJobIn
from gateway.store import open_store
from policies.jobs.jobfolder import pack_folder, read_folder
from tests.federated.conftest import POLICY, Federation, build_federation
from tests.server import running

pytestmark = pytest.mark.slow

PYTHON_POLICY = POLICY.replace("kinds: [sql_aggregate]", "kinds: [sql_aggregate, python]") + (
    "python:\n"
    "  columns: [district, age, los_days]\n"
    "  outputs: {types: [csv, json, txt]}\n"
    "  limits: {wall_seconds: 30, cpu_seconds: 10}\n"
)
MAIN = """\
import csv, json, os
import syft as sy
rows = list(csv.DictReader(open(sy.resolve_dataset_file_path("admissions"))))
stays = [int(r["los_days"]) for r in rows]
os.makedirs("outputs", exist_ok=True)
with open("outputs/summary.json", "w") as out:
    json.dump({"columns": sorted(rows[0]), "mean_stay": round(sum(stays) / len(stays), 1)}, out)
print("summarised", len(rows) > 0)
"""


@pytest.fixture
def python_federation(tmp_path: Path, store_url: str) -> Iterator[Federation]:
    store = open_store(store_url)
    fed, agents = build_federation(
        tmp_path, store, mode="manual", policy=PYTHON_POLICY, kinds=("sql_aggregate", "python")
    )
    try:
        yield fed
    finally:
        for agent in agents:
            agent.stop()
        fed.services.site_pool.close()
        store.close()


def archive(tmp: Path) -> bytes:
    code = tmp / "analysis"
    code.mkdir()
    (code / "main.py").write_text(textwrap.dedent(MAIN), encoding="utf-8")
    return pack_folder(job_folder(code, tmp / "folders", dependencies=["syft==0.10.0"]))


def review(fed: Federation, job_id: str, index: int, *, release: bool, tmp: Path) -> None:
    """Hospital ``index`` reviews its site's outputs with ``blindgate site outputs``."""
    holder = fed.built.holders[index]
    key = tmp / f"holder-{index}.pem"
    key.write_bytes(
        holder.signing_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    config = str(holder.site_dir / "site.yaml")
    runner = CliRunner()
    listed = runner.invoke(cli, ["site", "outputs", "list", "--config", config])
    assert listed.exit_code == 0, listed.output
    fragment = next(line.split()[0] for line in listed.output.splitlines() if job_id in line)
    shown = runner.invoke(cli, ["site", "outputs", "show", "--config", config, fragment])
    assert "summary.json" in shown.output and "held" in shown.output
    verb = ["release"] if release else ["reject", "--reason", "the mean reveals too much"]
    done = runner.invoke(
        cli,
        [
            "site",
            "outputs",
            *verb,
            "--config",
            config,
            fragment,
            "--key",
            str(key),
            "--reviewer",
            f"steward-{index}",
        ],
    )
    assert done.exit_code == 0, done.output


def test_a_job_folder_runs_at_every_site_and_is_released_after_each_review(
    python_federation: Federation, tmp_path: Path
) -> None:
    fed = python_federation
    services = fed.services
    raw = archive(tmp_path)
    body = PythonJobIn(
        assets=fed.asset_ids,
        archive=base64.b64encode(raw).decode(),
        purpose="research",
    )
    job = services.jobs.submit(fed.operator, body)
    assert job.state == "pending_approval", job.decision
    assert job.epsilon == 0.0
    assert job.spec is not None and job.spec["code_hash"] == read_folder(raw).code_hash
    for index in range(3):
        job = fed.approve(index, job.id)
    assert job.state == "queued"
    assert fed.runner.run_once()
    assert services.jobs.get(fed.operator, job.id).state == "in_review"
    assert fed.runner.review_held() == 0  # nobody has reviewed yet
    for index in range(3):
        review(fed, job.id, index, release=True, tmp=tmp_path)
    assert fed.runner.review_held() == 1
    done = services.jobs.get(fed.operator, job.id)
    assert done.state == "succeeded"
    result = services.jobs.result(fed.operator, job.id)
    assert result.mechanism == "holder_review"
    assert result.epsilon_spent == 0.0
    assert result.python is not None
    sites = result.python["sites"]
    assert {s["asset"] for s in sites} == set(fed.asset_ids)
    for site in sites:
        files = {f["path"]: base64.b64decode(f["content"]) for f in site["outputs"]}
        summary = json.loads(files["summary.json"])
        assert summary["columns"] == ["age", "district", "los_days"]  # no patient_id
        assert site["reviewer"].startswith("steward-")
        assert site["review_signature"]
    assert result.receipt is not None
    with services.ctx.store.read() as tx:
        entries = [json.loads(row.leaf) for row in tx.trace_entries(after=None, limit=10_000)]
    mine = [e for e in entries if e.get("target", {}).get("job") == job.id]
    actions = [e["action"] for e in mine]
    for action in ("job.submit", "job.approve", "job.run", "job.review", "job.release"):
        assert action in actions
    run_entry = next(e for e in mine if e["action"] == "job.run")
    assert run_entry["detail"]["code_hash"] == job.spec["code_hash"]
    release = next(e for e in mine if e["action"] == "job.release")
    digests = release["detail"]["digests"]
    assert digests["code_hash"] == job.spec["code_hash"]
    assert all("summary.json" in site["outputs"] for site in digests["sites"].values())
    assert all(len(site["asset_sha256"]) == 64 for site in digests["sites"].values())


def test_a_holders_rejection_fails_the_job_with_its_reason(
    python_federation: Federation, tmp_path: Path
) -> None:
    fed = python_federation
    body = PythonJobIn(
        assets=fed.asset_ids,
        archive=base64.b64encode(archive(tmp_path)).decode(),
        purpose="research",
    )
    job = fed.services.jobs.submit(fed.operator, body)
    for index in range(3):
        job = fed.approve(index, job.id)
    assert fed.runner.run_once()
    review(fed, job.id, 0, release=True, tmp=tmp_path)
    review(fed, job.id, 1, release=False, tmp=tmp_path)
    assert fed.runner.review_held() == 1
    failed = fed.services.jobs.get(fed.operator, job.id)
    assert (failed.state, failed.error_code) == ("failed", "review_rejected")
    assert failed.failure_reasons is not None
    assert failed.failure_reasons[0]["reason"] == "the mean reveals too much"
    assert failed.failure_reasons[0]["reviewer"] == "steward-1"


def test_a_pysyft_user_tests_on_the_mock_submits_and_fetches_the_released_outputs(
    python_federation: Federation, tmp_path: Path
) -> None:
    """The walkthrough of the README's "Coming from PySyft", through REST and the CLI."""
    fed = python_federation
    runner = CliRunner()
    code = tmp_path / "analysis"
    code.mkdir()
    (code / "main.py").write_text(textwrap.dedent(MAIN), encoding="utf-8")
    asset = fed.asset_ids[0]
    with running(create_app(fed.services)) as url:
        base = ["--url", url, "--api-key", fed.operator_key]
        mock = tmp_path / "mock.csv"
        got = runner.invoke(cli, ["python", "mock", asset, "--out", str(mock), *base])
        assert got.exit_code == 0, got.output
        header = mock.read_text().splitlines()[0]
        assert header == "patient_id,district,age,los_days"
        generated = mock.read_text().splitlines()[1:]
        assert all(line.split(",")[1] in ("north", "south", "east") for line in generated)
        assert all(0 <= int(line.split(",")[3]) <= 30 for line in generated)  # clip bounds
        holder = fed.built.holders[0]
        own = tmp_path / "own-mock.csv"
        own.write_text(header + "\nMOCK1,north,40,3\nMOCK2,south,50,4\n")
        bad = tmp_path / "bad-mock.csv"
        bad.write_text("patient_id,diagnosis\nx,y\n")
        holder_base = ["--url", url, "--api-key", holder.api_key]
        refused = runner.invoke(cli, ["python", "mock-set", asset, str(bad), *holder_base])
        assert refused.exit_code == 1 and "header" in refused.output
        set_by_holder = runner.invoke(cli, ["python", "mock-set", asset, str(own), *holder_base])
        assert set_by_holder.exit_code == 0, set_by_holder.output
        assert runner.invoke(cli, ["python", "mock", asset, *base]).output == own.read_text()
        tested = runner.invoke(
            cli, ["python", "test", str(code), "--mock", str(mock), "--dataset", "admissions"]
        )
        assert tested.exit_code == 0, tested.output
        assert "summarised True" in tested.output
        code_hash = tested.output.split("code hash ")[1].split()[0]
        with Client(url, fed.operator_key) as operator:
            job = operator.submit_python_job(code, fed.asset_ids, "research")
            assert job["spec"]["code_hash"] == code_hash  # what was tested is what runs
            for holder in fed.built.holders:
                with Client(url, holder.api_key) as steward:
                    steward.approve(job["id"], "code reviewed", key=holder.signing_key)
            assert fed.runner.run_once()
            for index in range(3):
                review(fed, job["id"], index, release=True, tmp=tmp_path)
            assert fed.runner.review_held() == 1
            result = operator.result(job["id"])
            assert operator.verify_receipt(result["receipt"])
        out = tmp_path / "released"
        fetched = runner.invoke(cli, ["python", "outputs", job["id"], "--out", str(out), *base])
        assert fetched.exit_code == 0, fetched.output
        for asset_id in fed.asset_ids:
            summary = json.loads((out / asset_id / "outputs" / "summary.json").read_text())
            assert summary["columns"] == ["age", "district", "los_days"]
