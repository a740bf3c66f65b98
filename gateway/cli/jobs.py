"""``blindgate job`` and ``blindgate federated``: dry runs, SQL aggregate jobs, approvals,
results with verified receipts, and federated assets."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from contracts import LicenceError, private_key_from_pem
from contracts.tlog.errors import TraceError
from gateway.cli import render
from gateway.cli.connect import Session, gateway_command
from gateway.cli.output import fail, note, table, when
from gateway.client import TERMINAL, Client
from gateway.domain import JobState

R = TypeVar("R")
STATES = click.Choice([s.value for s in JobState])


def _sql_job(
    sql: str,
    assets: tuple[str, ...],
    epsilon: float,
    delta: float,
    purpose: str,
    licences: tuple[str, ...],
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sql": sql,
        "assets": list(assets),
        "epsilon": epsilon,
        "delta": delta,
        "purpose": purpose,
    }
    if licences:
        body["licence_ids"] = list(licences)
    return body


def _sql_options(required: bool) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """The options that describe a SQL job, shared by ``submit`` and ``dry-run``."""

    def attach(fn: Callable[..., R]) -> Callable[..., R]:
        for option in reversed(
            [
                click.option(
                    "--sql", required=required, help="One SELECT with aggregates over the asset."
                ),
                click.option(
                    "--asset",
                    "assets",
                    multiple=True,
                    required=required,
                    help="The asset, or each partition of a federated asset (repeat).",
                ),
                click.option("--epsilon", type=float, required=required, help="Epsilon to spend."),
                click.option(
                    "--delta", type=float, default=0.0, show_default=True, help="Delta to spend."
                ),
                click.option("--purpose", required=required, help="The licensed purpose."),
                click.option(
                    "--licence",
                    "licences",
                    multiple=True,
                    help="Licences to use (repeat; default: all of yours).",
                ),
            ]
        ):
            fn = option(fn)
        return fn

    return attach


def _decide(s: Session, body: dict[str, Any]) -> NoReturn:
    """Print the dry-run decision on ``body``; exit 1 when it would be denied."""
    found = s.client.dry_run(body)
    s.show(found, render.decision)
    sys.exit(0 if found["allow"] else 1)


def _read_job_file(file: Any) -> dict[str, Any]:
    try:
        found = json.load(file)
    except ValueError as exc:
        fail(f"{file.name} is not JSON: {exc}", 2)
    if not isinstance(found, dict):
        fail(f"{file.name} must hold one JSON object (a job or a job description)", 2)
    return found


def print_result(client: Client, result: dict[str, Any], verifier_key: str | None) -> None:
    """The released table, how it was noised, and the verified receipt."""
    render.released(result)
    receipt = result.get("receipt")
    if receipt:
        try:
            checkpoint = client.verify_receipt(receipt, verifier_key)
        except TraceError as exc:
            fail(f"the receipt does not verify: {exc}")
        click.echo(
            f"receipt verified: trace entry {receipt['leaf_index']} is in log "
            f"{checkpoint.origin} at size {checkpoint.size}"
        )


def _finish(s: Session, job: dict[str, Any], timeout: float, key: str | None) -> None:
    """Wait for the job, then print (and verify) its result; fail if it did not succeed."""
    if job["state"] not in TERMINAL:
        seen = [job["state"]]

        def progress(current: dict[str, Any], _waited: float) -> None:
            if current["state"] != seen[-1]:
                seen.append(current["state"])
                note(f"job {current['id']}: {current['state']}")

        try:
            job = s.client.wait(job["id"], timeout=timeout, poll=0.5, progress=progress)
        except TimeoutError:
            fail(f"job {job['id']} is not finished yet; see `blindgate job show {job['id']}`", 3)
    if job["state"] != "succeeded":
        error = job.get("error_code")
        fail(f"job {job['id']} ended {job['state']}" + (f": {error}" if error else ""))
    result = s.client.result(job["id"])
    if s.as_json:
        s.show(result, render.released)
    else:
        print_result(s.client, result, key)


@click.group()
def job() -> None:
    """Jobs: dry run, submit, follow, approve and read results."""


@job.command("dry-run")
@click.argument("file", type=click.File("r"), required=False)
@_sql_options(required=False)
@gateway_command
def dry_run(
    s: Session,
    file: Any,
    sql: str | None,
    assets: tuple[str, ...],
    epsilon: float | None,
    delta: float,
    purpose: str | None,
    licences: tuple[str, ...],
) -> None:
    """The decision on a job, every reason with its clause and fix; nothing is stored, run or
    charged. Describe the job with --sql, --asset, --epsilon and --purpose, or give FILE: a
    JSON SQL job or structural job description ('-' for stdin). Exits 1 when it would be
    denied."""
    if file is not None:
        if sql or assets:
            fail("give either FILE or --sql/--asset, not both", 2)
        _decide(s, _read_job_file(file))
    missing = [
        name
        for name, value in (
            ("--sql", sql),
            ("--asset", assets),
            ("--epsilon", epsilon),
            ("--purpose", purpose),
        )
        if not value
    ]
    if missing:
        fail(f"give a job FILE, or {', '.join(missing)}", 2)
    _decide(s, _sql_job(str(sql), assets, float(epsilon or 0), delta, str(purpose), licences))


@job.command("check", hidden=True)
@click.argument("file", type=click.File("r"))
@gateway_command
def check(s: Session, file: Any) -> None:
    """Deprecated name of `job dry-run FILE`."""
    note("note: `blindgate job check` is deprecated; use `blindgate job dry-run`")
    _decide(s, _read_job_file(file))


@job.command("submit")
@_sql_options(required=True)
@click.option("--idempotency-key", default=None, help="Submitting twice returns the first job.")
@click.option(
    "--dry-run", is_flag=True, help="Only decide, as `job dry-run`: nothing is stored or run."
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for the result and verify its receipt (--no-wait prints the job id).",
)
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait.")
@gateway_command
def submit(
    s: Session,
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
) -> None:
    """Submit a SQL aggregate job (operator key), wait, and print its verified result."""
    body = _sql_job(sql, assets, epsilon, delta, purpose, licences)
    if dry_run:
        _decide(s, body)
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    created = s.client.submit(body)
    note(f"job {created['id']}: {created['state']}")
    if created["state"] == "denied":
        s.show(created, lambda j: render.decision(j["decision"]))
        sys.exit(1)
    if not wait:
        s.show(created, lambda j: click.echo(j["id"]))
        return
    _finish(s, created, timeout, None)


@job.command("show")
@click.argument("job_id")
@gateway_command
def show(s: Session, job_id: str) -> None:
    """Show a job: what it computes, its state, approvals and decision."""
    s.show(s.client.job(job_id), render.job)


@job.command("result")
@click.argument("job_id")
@click.option("--public-key", default=None, help="Trace verifier key (default: ask the gateway).")
@click.option(
    "--timeout",
    type=float,
    default=120,
    show_default=True,
    help="How long to wait for a queued or running job.",
)
@gateway_command
def result(s: Session, job_id: str, public_key: str | None, timeout: float) -> None:
    """Print a job's released result and verify its receipt (waits while it runs)."""
    _finish(s, s.client.job(job_id), timeout, public_key)


@job.command("list")
@click.option("--state", type=STATES, default=None, help="Only jobs in this state.")
@gateway_command
def list_jobs(s: Session, state: str | None) -> None:
    """List jobs, one line each: id, state, kind, assets, epsilon, created."""
    s.show(s.client.jobs(state), render.jobs)


@job.command("approve")
@click.argument("job_id")
@click.option("--reason", default="", help="Why (kept with the approval and in the trace).")
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The holder organisation's signing key (PEM): your site checks the approval's "
    "signature over the job as shown to you.",
)
@gateway_command
def approve(s: Session, job_id: str, reason: str, key_path: Path) -> None:
    """Approve a job pending approval (holder key), signed with the organisation's key."""
    try:
        key = private_key_from_pem(key_path.read_bytes())
    except (OSError, LicenceError) as exc:
        fail(f"cannot read the private key {key_path}: {exc}")
    s.show(
        s.client.approve(job_id, reason, key=key),
        lambda j: click.echo(f"job {j['id']}: {j['state']}"),
    )


@job.command("reject")
@click.argument("job_id")
@click.option("--reason", default="", help="Why (the operator sees it).")
@gateway_command
def reject(s: Session, job_id: str, reason: str) -> None:
    """Reject a job pending approval (holder key)."""
    s.show(s.client.reject(job_id, reason), lambda j: click.echo(f"job {j['id']}: {j['state']}"))


@job.command("cancel")
@click.argument("job_id")
@gateway_command
def cancel(s: Session, job_id: str) -> None:
    """Cancel a job that has not finished (its operator)."""
    s.show(s.client.cancel(job_id), lambda j: click.echo(f"job {j['id']}: {j['state']}"))


@click.group()
def federated() -> None:
    """Federated assets: partitions of one dataset held by several holders."""


@federated.command("register")
@click.argument("name")
@click.option(
    "--partition", "partitions", multiple=True, required=True, help="A partition's asset id."
)
@click.option("--description", default="", help="What the federated asset is.")
@gateway_command
def register(s: Session, name: str, partitions: tuple[str, ...], description: str) -> None:
    """Register partitions with one schema as a federated asset (admin key)."""
    s.show(
        s.client.register_federated(name, list(partitions), description),
        lambda f: click.echo(
            f"federated asset registered: {f['id']} ({f['name']}, "
            f"{len(f['partitions'])} partitions)"
        ),
    )


@federated.command("list")
@gateway_command
def list_federated(s: Session) -> None:
    """List federated assets and their partitions."""

    def human(found: list[Any]) -> None:
        rows = [
            [f["id"], f["name"], ", ".join(f["partitions"]), when(f["created_at"])] for f in found
        ]
        table(["ID", "NAME", "PARTITIONS", "CREATED"], rows, empty="no federated assets")

    s.show(s.client.federated_assets(), human)


COMMANDS = (job, federated)
