"""``blindgate job submit|show|result|list|approve|reject|cancel``: SQL aggregate jobs."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, NoReturn

import click

from gateway.audit.errors import TraceError
from gateway.cli.admin import KEY_OPTION, URL_OPTION
from gateway.cli.governance import _print_decision
from gateway.client import ApiError, Client

TERMINAL = {"denied", "succeeded", "failed", "cancelled"}


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _table(result: dict[str, Any]) -> str:
    columns = result["columns"]
    rows = [[_fmt(cell["value"]) for cell in row] for row in result["rows"]]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def print_result(client: Client, result: dict[str, Any], verifier_key: str | None) -> None:
    """The released table, how it was noised, and the verified receipt."""
    click.echo(_table(result))
    click.echo(
        f"\nepsilon spent {result['epsilon_spent']:.3f}; groups with fewer than "
        f"{result['threshold']} people (noisy count) are not released; keys: "
        f"{result['key_release']}"
    )
    if result["rows"]:
        noisy = [
            (c, cell)
            for c, cell in zip(result["columns"], result["rows"][0], strict=True)
            if cell["mechanism"]
        ]
        for column, cell in noisy:
            scales = ", ".join(f"{k} {v:.3g}" for k, v in cell["scales"].items())
            click.echo(
                f"  {column}: {cell['mechanism']} noise (scale {scales}), "
                f"epsilon {cell['epsilon']:.3f}"
            )
    receipt = result.get("receipt")
    if receipt:
        try:
            checkpoint = client.verify_receipt(receipt, verifier_key)
        except TraceError as exc:
            _fail(f"the receipt does not verify: {exc}", 1)
        click.echo(
            f"receipt verified: trace entry {receipt['leaf_index']} is in log "
            f"{checkpoint.origin} at size {checkpoint.size}"
        )


def job_commands(cli: click.Group) -> None:
    """Add the SQL job commands to the ``job`` group."""
    job = cli.commands["job"]
    assert isinstance(job, click.Group)

    @job.command("submit")
    @click.option("--sql", required=True, help="One SELECT with aggregates over the asset.")
    @click.option(
        "--asset",
        "assets",
        multiple=True,
        required=True,
        help="The asset, or each partition of a federated asset.",
    )
    @click.option("--epsilon", type=float, required=True)
    @click.option("--delta", type=float, default=0.0, show_default=True)
    @click.option("--purpose", required=True)
    @click.option("--licence", "licences", multiple=True, help="Licences to use (default: all).")
    @click.option("--idempotency-key", default=None)
    @click.option("--dry-run", is_flag=True, help="Only decide: nothing is stored, run or charged.")
    @click.option(
        "--wait/--no-wait",
        default=True,
        show_default=True,
        help="Wait for the result and verify its receipt.",
    )
    @click.option("--timeout", type=float, default=600, show_default=True)
    @URL_OPTION
    @KEY_OPTION
    def submit(
        sql: str,
        assets: tuple[str, ...],
        epsilon: float,
        delta: float,
        purpose: str,
        licences: tuple[str, ...],
        idempotency_key: str | None,
        dry_run: bool,
        wait: bool,
        timeout: float,
        url: str,
        api_key: str,
    ) -> None:
        """Submit a SQL aggregate job (operator key)."""
        body: dict[str, Any] = {
            "sql": sql,
            "assets": list(assets),
            "epsilon": epsilon,
            "delta": delta,
            "purpose": purpose,
        }
        if licences:
            body["licence_ids"] = list(licences)
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        try:
            with Client(url, api_key) as client:
                if dry_run:
                    decision = client.post("/v1/jobs/check", body)
                    _print_decision(decision)
                    sys.exit(0 if decision["allow"] else 1)
                created = client.post("/v1/jobs", body)
                click.echo(f"job {created['id']}: {created['state']}", err=True)
                if created["state"] == "denied":
                    _print_decision(created["decision"])
                    sys.exit(1)
                if not wait:
                    click.echo(created["id"])
                    return
                state = created["state"]
                deadline = time.monotonic() + timeout
                while state not in TERMINAL:
                    if time.monotonic() > deadline:
                        _fail(f"job {created['id']} is still {state}; try `job show`", 3)
                    time.sleep(0.5)
                    current = client.get(f"/v1/jobs/{created['id']}")
                    if current["state"] != state:
                        state = current["state"]
                        click.echo(f"job {created['id']}: {state}", err=True)
                if state != "succeeded":
                    _fail(f"job {created['id']} ended {state}: {current.get('error_code')}", 1)
                print_result(client, client.get(f"/v1/jobs/{created['id']}/result"), None)
        except ApiError as exc:
            _fail(str(exc))

    @job.command("show")
    @click.argument("job_id")
    @URL_OPTION
    @KEY_OPTION
    def show(job_id: str, url: str, api_key: str) -> None:
        try:
            with Client(url, api_key) as client:
                click.echo(json.dumps(client.get(f"/v1/jobs/{job_id}"), indent=2))
        except ApiError as exc:
            _fail(str(exc))

    @job.command("result")
    @click.argument("job_id")
    @click.option("--public-key", default=None, help="Trace verifier key (default: ask).")
    @click.option("--json", "as_json", is_flag=True)
    @click.option(
        "--timeout",
        type=float,
        default=120,
        show_default=True,
        help="How long to wait for a queued or running job.",
    )
    @URL_OPTION
    @KEY_OPTION
    def result(
        job_id: str, public_key: str | None, as_json: bool, timeout: float, url: str, api_key: str
    ) -> None:
        """Print a job's released result and verify its receipt (waits while it runs)."""
        try:
            with Client(url, api_key) as client:
                deadline = time.monotonic() + timeout
                state = client.get(f"/v1/jobs/{job_id}")["state"]
                while state not in TERMINAL and time.monotonic() < deadline:
                    time.sleep(0.5)
                    state = client.get(f"/v1/jobs/{job_id}")["state"]
                released = client.get(f"/v1/jobs/{job_id}/result")
                if as_json:
                    click.echo(json.dumps(released, indent=2))
                else:
                    print_result(client, released, public_key)
        except ApiError as exc:
            _fail(str(exc))

    @job.command("list")
    @click.option("--state", default=None)
    @URL_OPTION
    @KEY_OPTION
    def list_jobs(state: str | None, url: str, api_key: str) -> None:
        with Client(url, api_key) as client:
            for item in client.paginate("/v1/jobs", state=state):
                click.echo(f"{item['id']}  {item['state']:<16} {item['sql'][:60]}")

    for action in ("approve", "reject"):

        @job.command(action)
        @click.argument("job_id")
        @click.option("--reason", default="")
        @URL_OPTION
        @KEY_OPTION
        def decide(job_id: str, reason: str, url: str, api_key: str, action: str = action) -> None:
            """Approve or reject a pending job (holder key)."""
            try:
                with Client(url, api_key) as client:
                    done = client.post(f"/v1/jobs/{job_id}/{action}", {"reason": reason})
                    click.echo(f"job {done['id']}: {done['state']}")
            except ApiError as exc:
                _fail(str(exc))

    @job.command("cancel")
    @click.argument("job_id")
    @URL_OPTION
    @KEY_OPTION
    def cancel(job_id: str, url: str, api_key: str) -> None:
        try:
            with Client(url, api_key) as client:
                click.echo(f"job {job_id}: {client.post(f'/v1/jobs/{job_id}/cancel')['state']}")
        except ApiError as exc:
            _fail(str(exc))


def federated_commands(cli: click.Group) -> None:
    """``blindgate federated register|list``."""

    @cli.group()
    def federated() -> None:
        """Federated assets: partitions of one dataset held by several holders."""

    @federated.command("register")
    @click.argument("name")
    @click.option("--partition", "partitions", multiple=True, required=True)
    @click.option("--description", default="")
    @URL_OPTION
    @KEY_OPTION
    def register(
        name: str, partitions: tuple[str, ...], description: str, url: str, api_key: str
    ) -> None:
        """Register partitions with one schema as a federated asset (admin key)."""
        try:
            with Client(url, api_key) as client:
                body = {"name": name, "partitions": list(partitions), "description": description}
                click.echo(json.dumps(client.post("/v1/federated-assets", body), indent=2))
        except ApiError as exc:
            _fail(str(exc))

    @federated.command("list")
    @URL_OPTION
    @KEY_OPTION
    def list_federated(url: str, api_key: str) -> None:
        with Client(url, api_key) as client:
            click.echo(json.dumps(client.paginate("/v1/federated-assets"), indent=2))
