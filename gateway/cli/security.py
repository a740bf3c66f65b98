"""``blindgate suspension``: emergency brakes; ``blindgate audit tail`` and ``audit
check-copy``: the trace as a feed, and a SIEM's copy of it checked against the log."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import click

from contracts.tlog.checkpoint import parse_and_verify_checkpoint
from contracts.tlog.errors import TraceError
from contracts.tlog.merkle import leaf_hash, verify_inclusion
from gateway.audit.export import entry_line, parse_entry_line
from gateway.cli.audit import audit
from gateway.cli.connect import Session, gateway_command
from gateway.cli.output import fail, note, print_json, table, when

KINDS = click.Choice(["org", "principal", "licence"])


@click.group()
def suspension() -> None:
    """Emergency brakes (auditors): suspend an operator organisation, a principal or a
    licence at once; its live jobs are cancelled and new ones refused until lifted."""


@suspension.command("create")
@click.argument("kind", type=KINDS)
@click.argument("target_id")
@click.option("--reason", required=True, help="Why (an incident number, what was seen).")
@gateway_command
def create_cmd(s: Session, kind: str, target_id: str, reason: str) -> None:
    """Suspend KIND (org, principal or licence) TARGET_ID now."""
    out = s.client.suspend(kind, target_id, reason)
    s.show(
        out,
        lambda o: click.echo(
            f"suspended {o['kind']} {o['target_id']}: {o['id']} "
            f"({len(o['cancelled_jobs'])} live job(s) cancelled)"
        ),
    )


@suspension.command("list")
@click.option("--all", "everything", is_flag=True, help="Include lifted suspensions.")
@gateway_command
def list_cmd(s: Session, everything: bool) -> None:
    """Suspensions in force (or all of them)."""
    found = s.client.suspensions(active=None if everything else True)
    s.show(
        found,
        lambda rows: table(
            ["id", "kind", "target", "operator org", "since", "lifted", "reason"],
            [
                [
                    r["id"],
                    r["kind"],
                    r["target_id"],
                    r["operator_org_id"] or "",
                    when(r["created_at"]),
                    when(r["lifted_at"]) if r["lifted_at"] else "",
                    r["reason"],
                ]
                for r in rows
            ],
            empty="no suspension in force",
        ),
    )


@suspension.command("lift")
@click.argument("suspension_id")
@click.option("--reason", required=True, help="Why it is lifted.")
@gateway_command
def lift_cmd(s: Session, suspension_id: str, reason: str) -> None:
    """Lift a suspension (auditors only)."""
    out = s.client.lift_suspension(suspension_id, reason)
    s.show(out, lambda o: click.echo(f"lifted {o['id']} ({o['kind']} {o['target_id']})"))


def _line(item: dict[str, Any]) -> str:
    entry = item["entry"]
    actor = entry.get("actor") or {}
    who = f"{actor.get('principal', '-')}@{actor.get('org', '-')}" if actor else "-"
    target = " ".join(
        f"{k}={','.join(v) if isinstance(v, list) else v}"
        for k, v in (entry.get("target") or {}).items()
    )
    reasons = ",".join(r.get("code", "") for r in entry.get("reasons") or [])
    decision = entry.get("decision", "")
    colour = "red" if decision == "deny" else "green"
    return (
        f"#{item['index']} {entry.get('time', '')} {click.style(decision, fg=colour)} "
        f"{entry.get('action', '')} {who} {target}" + (f" [{reasons}]" if reasons else "")
    )


@audit.command("tail")
@click.option("-n", "--lines", default=20, show_default=True, help="How many to show first.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing entries as they are written.")
@click.option("--poll", default=2.0, show_default=True, help="Seconds between polls (--follow).")
@click.option("--principal", default=None, help="Only this acting principal's entries.")
@click.option("--org", default=None, help="Only entries by or about this organisation.")
@click.option("--asset", "asset_id", default=None, help="Only entries on this asset.")
@click.option("--action", default=None, help="Only this action (job.submit, job.release…).")
@click.option(
    "--decision", type=click.Choice(["allow", "deny"]), default=None, help="Only this decision."
)
@gateway_command
def tail_cmd(s: Session, lines: int, follow: bool, poll: float, **filters: str | None) -> None:
    """The newest trace entries (auditors: all; others: those their role may read), then
    with --follow each new one as it is written. --json prints one JSON line per entry,
    {"index": N, "entry": {...}}, the format a SIEM can ingest and `audit check-copy`
    verifies."""
    chosen: dict[str, Any] = {k: v for k, v in filters.items() if v}
    last = None
    for item in s.client.newest_entries(max(1, lines), **chosen) if lines > 0 else []:
        _emit(s, item)
        last = item["index"]
    if not follow:
        return
    if last is None:
        size = s.client.log_info()["size"]
        last = size - 1 if size else None
    try:
        for item in s.client.follow(after=last, poll=poll, **chosen):
            _emit(s, item)
    except KeyboardInterrupt:
        return


def _emit(s: Session, item: dict[str, Any]) -> None:
    if s.as_json:
        sys.stdout.buffer.write(entry_line(item["index"], item["entry"]))
        sys.stdout.flush()
    else:
        click.echo(_line(item))


@audit.command("check-copy")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public-key", default=None, help="The log's verifier key (default: ask).")
@gateway_command
def check_copy_cmd(s: Session, file: Path, public_key: str | None) -> None:
    """Check a copy of trace entries (JSON lines {"index", "entry"}, as `audit tail
    --json` and `audit export` write them) against the live log: a fresh signed
    checkpoint, then an inclusion proof for every line. Exit 1 naming the first line
    that the log does not contain as it stands."""
    key = public_key or s.client.verifier_key()
    signed = s.client.sign_checkpoint()
    try:
        checkpoint = parse_and_verify_checkpoint(signed["checkpoint"], key)
    except TraceError as exc:
        fail(f"the gateway's checkpoint does not verify: {exc}")
    checked = 0
    problems: list[dict[str, Any]] = []
    with file.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                index, leaf = parse_entry_line(raw)
            except TraceError as exc:
                problems.append({"line": number, "problem": f"not an entry line: {exc}"})
                break
            if index >= checkpoint.size:
                problems.append({"line": number, "index": index, "problem": "beyond the log"})
                break
            proof = s.client.inclusion_proof(index, checkpoint.size)
            hashes = [_b64(p) for p in proof["proof"]]
            if not verify_inclusion(
                leaf_hash(leaf), index, checkpoint.size, hashes, checkpoint.root
            ):
                problems.append(
                    {"line": number, "index": index, "problem": "differs from the log's entry"}
                )
                break
            checked += 1
    report: dict[str, Any] = {"ok": not problems, "checked": checked, "size": checkpoint.size}
    if problems:
        report["failure"] = problems[0]
    if s.as_json:
        print_json(report)
    elif problems:
        p = problems[0]
        click.echo(
            click.style("FAIL", fg="red", bold=True)
            + f": line {p['line']}"
            + (f" (index {p['index']})" if "index" in p else "")
            + f": {p['problem']}"
        )
    else:
        click.echo(
            click.style("OK", fg="green", bold=True)
            + f": {checked} entries are in the log of {checkpoint.size} (checkpoint verified)"
        )
    if problems:
        sys.exit(1)
    if checked == 0:
        note("the file held no entries")


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


COMMANDS = (suspension,)
