"""The operator's walkthrough through the CLI: dry run, submit, wait, result, receipt."""

from __future__ import annotations

from click.testing import CliRunner

from gateway.cli.main import cli
from gateway.http import create_app
from tests.federated.conftest import Federation
from tests.server import running

SQL = "SELECT district, COUNT(*) AS n FROM admissions GROUP BY district"


def test_dry_run_submit_and_result(federation: Federation) -> None:
    fed = federation
    runner = CliRunner()
    assets = [arg for a in fed.asset_ids for arg in ("--asset", a)]
    fed.runner.start()
    try:
        with running(create_app(fed.services)) as url:
            base = ["--url", url, "--api-key", fed.operator_key]
            denied = runner.invoke(
                cli,
                [
                    "job",
                    "submit",
                    "--dry-run",
                    "--sql",
                    "SELECT * FROM admissions",
                    *assets,
                    "--epsilon",
                    "1",
                    "--purpose",
                    "research",
                    *base,
                ],
            )
            assert denied.exit_code == 1
            assert "select_star" in denied.stdout
            allowed = runner.invoke(
                cli,
                [
                    "job",
                    "submit",
                    "--dry-run",
                    "--sql",
                    SQL,
                    *assets,
                    "--epsilon",
                    "1",
                    "--purpose",
                    "research",
                    *base,
                ],
            )
            assert allowed.exit_code == 0, allowed.output
            assert allowed.stdout.startswith("ALLOW")
            done = runner.invoke(
                cli,
                [
                    "job",
                    "submit",
                    "--sql",
                    SQL,
                    *assets,
                    "--epsilon",
                    "1",
                    "--purpose",
                    "research",
                    "--timeout",
                    "120",
                    *base,
                ],
            )
            assert done.exit_code == 0, done.output
            assert "receipt verified" in done.stdout
            for district in ("north", "south", "east"):
                assert district in done.stdout
            listed = runner.invoke(cli, ["job", "list", *base])
            assert "succeeded" in listed.stdout
    finally:
        fed.runner.stop()
