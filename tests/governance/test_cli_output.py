"""What a person sees from the everyday commands: tables, short confirmations, decisions
as reasons with their clause and fix, a readable budget and one verdict line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from gateway.cli.main import cli
from tests.governance.conftest import Gov

SQL = "SELECT COUNT(*) AS n, AVG(los_days) AS stay FROM admissions WHERE age > 60"


def _run(url: str, key: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--url", url, "--api-key", key])


def test_jobs_read_as_tables_cards_and_reasons(gov: Gov, gov_url: str) -> None:
    w = gov.world
    job = ["--sql", SQL, "--asset", w.asset_a, "--epsilon", "0.5"]
    allowed = _run(
        gov_url, w.operator_key, "job", "dry-run", *job, "--purpose", "public-health-research"
    )
    assert allowed.exit_code == 0, allowed.output
    assert allowed.stdout.splitlines()[0] == "ALLOW"
    assert "  min_group_size" in allowed.stdout
    denied = _run(gov_url, w.operator_key, "job", "dry-run", *job, "--purpose", "marketing")
    assert denied.exit_code == 1
    lines = denied.stdout.splitlines()
    assert lines[0].startswith("DENY: ")
    assert any(line.startswith(" 1. purpose_not_allowed") for line in lines)
    assert any(line.strip().startswith("clause: ") for line in lines)
    assert any(line.strip().startswith("fix: ") for line in lines)
    as_json = _run(
        gov_url, w.operator_key, "job", "dry-run", *job, "--purpose", "marketing", "--json"
    )
    assert json.loads(as_json.stdout)["allow"] is False
    neither = _run(gov_url, w.operator_key, "job", "dry-run", "--sql", SQL)
    assert neither.exit_code == 2
    assert neither.stderr == "error: give a job FILE, or --asset, --epsilon, --purpose\n"

    submitted = _run(
        gov_url,
        w.operator_key,
        "job",
        "submit",
        *job,
        "--purpose",
        "public-health-research",
        "--no-wait",
    )
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip()
    assert job_id.startswith("job_")
    assert submitted.stderr == f"job {job_id}: queued\n"

    listed = _run(gov_url, w.operator_key, "job", "list")
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "KIND", "ASSETS", "EPSILON", "CREATED"]
    assert len(rows) == 1
    assert rows[0].split()[:5] == [job_id, "queued", "sql_aggregate", w.asset_a, "0.5"]
    empty = _run(gov_url, w.operator_key, "job", "list", "--state", "succeeded")
    assert empty.stdout == "no jobs\n"

    shown = _run(gov_url, w.holder_a_key, "job", "show", job_id)
    assert shown.exit_code == 0, shown.output
    assert f"job       {job_id}" in shown.stdout
    assert f"sql       {SQL}" in shown.stdout
    assert "decision:\nALLOW" in shown.stdout
    cancelled = _run(gov_url, w.operator_key, "job", "cancel", job_id)
    assert cancelled.stdout == f"job {job_id}: cancelled\n"


def test_assets_licences_and_budget_read_as_lines(gov: Gov, gov_url: str) -> None:
    w = gov.world
    assets = _run(gov_url, w.operator_key, "asset", "list")
    header, *rows = assets.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "DOMAIN", "STATUS", "ROWS", "HOLDER"]
    assert {row.split()[0] for row in rows} == {w.asset_a, w.asset_b}
    card = _run(gov_url, w.holder_a_key, "asset", "show", w.asset_a)
    assert card.exit_code == 0, card.output
    assert "privacy unit  patient_id" in card.stdout
    assert "location" in card.stdout  # the holder sees where its data lives
    assert "patient_id  text" in card.stdout
    frozen = _run(gov_url, w.auditor_key, "asset", "freeze", w.asset_a, "--reason", "incident 7")
    assert frozen.stdout == f"asset frozen: {w.asset_a} (reason: incident 7)\n"
    thawed = _run(gov_url, w.auditor_key, "asset", "unfreeze", w.asset_a)
    assert thawed.stdout == f"asset unfrozen: {w.asset_a} (status active)\n"

    licences = _run(gov_url, w.operator_key, "licence", "list")
    assert licences.stdout.splitlines()[1].split()[:2] == [gov.licence_id, "active"]
    budget = _run(
        gov_url, w.operator_key, "licence", "budget", gov.licence_id, "--epsilon-per-job", "0.5"
    )
    assert budget.exit_code == 0, budget.output
    lines = budget.stdout.splitlines()
    assert lines[0] == f"licence {gov.licence_id}: epsilon used 0 of 10, 10 left"
    assert lines[1].split() == [
        "ASSET",
        "SPENT",
        "THIS-LICENCE",
        "BUDGET",
        "LEFT",
        "PERIOD",
        "MAX",
        "PER",
        "JOB",
        "RENEWS",
    ]
    assert lines[2].split()[:5] == [w.asset_a, "0", "0", "3", "3"]
    assert lines[-1] == "jobs of epsilon 0.5 that still fit: 6"


def test_audit_export_and_verify_give_one_verdict(gov: Gov, gov_url: str, tmp_path: Path) -> None:
    w = gov.world
    out = tmp_path / "trace"
    exported = _run(gov_url, w.auditor_key, "audit", "export", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.startswith("exported ")
    verified = CliRunner().invoke(cli, ["audit", "verify", str(out)])
    assert verified.exit_code == 0
    assert len(verified.stdout.splitlines()) == 1
    assert verified.stdout.startswith("OK: ") and "entries" in verified.stdout
    lines = (out / "entries.jsonl").read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"allow"', '"alloW"', 1)
    (out / "entries.jsonl").write_text("".join(lines))
    broken = CliRunner().invoke(cli, ["audit", "verify", str(out)])
    assert broken.exit_code == 1
    assert len(broken.stdout.splitlines()) == 1
    assert broken.stdout.startswith("FAIL: ") and "(first bad position: 2)" in broken.stdout
    as_json = CliRunner().invoke(cli, ["audit", "verify", str(out), "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["first_bad_index"] == 2
