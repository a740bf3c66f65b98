"""``blindgate audit``: export, verify (offline and live), checkpoints, receipts."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from contracts.tlog.checkpoint import join_notes, parse_and_verify_checkpoint
from contracts.tlog.errors import TraceError
from gateway.audit.export import CHECKPOINTS_FILE, ENTRIES_FILE, PUBLIC_KEY_FILE, entry_line
from gateway.audit.pinpoint import LEAF_HASHES_FILE, pinpoint
from gateway.audit.receipt import verify_receipt
from gateway.audit.verify import verify_export, verify_live_state
from gateway.cli.connect import (
    Session,
    gateway_command,
    json_option,
    key_option,
    open_client,
    url_option,
)
from gateway.cli.output import fail, failures, note, print_json
from gateway.client import Client


def _default_state() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "blindgate" / "trace-state.json"


def export_trace(client: Client, out: Path, *, progress: bool = True) -> tuple[int, int]:
    """Write the export directory from a live gateway (auditor key); return (entries, notes)."""
    out.mkdir(parents=True, exist_ok=True)
    client.sign_checkpoint()  # cover every entry written so far
    info = client.log_info()
    checkpoints = client.all_checkpoints()
    count = 0
    with (
        (out / ENTRIES_FILE).open("wb") as entries,
        (out / LEAF_HASHES_FILE).open("w") as hashes,
        click.progressbar(
            length=info["size"], label="exporting entries", file=sys.stderr, hidden=not progress
        ) as bar,
    ):
        for item in client.entries():
            entries.write(entry_line(item["index"], item["entry"]))
            hashes.write(item["leaf_hash"] + "\n")
            count += 1
            bar.update(1)
    notes = [c["checkpoint"] for c in checkpoints]
    (out / CHECKPOINTS_FILE).write_text(join_notes(notes), encoding="utf-8")
    (out / PUBLIC_KEY_FILE).write_text(info["verifier_key"] + "\n", encoding="utf-8")
    return count, len(notes)


def _verdict(as_json: bool, report: dict[str, Any], line: str) -> NoReturn:
    """The verification's one line (or its JSON); exit 0 when it holds, 1 when not."""
    if as_json:
        print_json(report)
    elif report["ok"]:
        click.echo(click.style("OK", fg="green", bold=True) + f": {line}")
    else:
        click.echo(click.style("FAIL", fg="red", bold=True) + f": {line}")
    sys.exit(0 if report["ok"] else 1)


def _refused(as_json: bool, exc: TraceError) -> NoReturn:
    _verdict(as_json, {"ok": False, "kind": exc.code, "message": str(exc)}, f"{exc.code}: {exc}")


def _verify_dir(directory: Path, as_json: bool) -> NoReturn:
    report = pinpoint(directory, verify_export(directory))
    if report.failure is not None:
        f = report.failure
        where = "" if f.first_bad_index is None else f" (first bad position: {f.first_bad_index})"
        found = {
            "ok": False,
            "kind": f.kind,
            "message": f.message,
            "first_bad_index": f.first_bad_index,
            "last_bad_index": f.last_bad_index,
        }
        _verdict(as_json, found, f"{f.kind}: {f.message}{where}")
    unchecked = report.entries - report.verified_size
    found = {
        "ok": True,
        "entries": report.entries,
        "checkpoints": report.checkpoints,
        "verified_size": report.verified_size,
        "uncovered_entries": unchecked,
    }
    _verdict(
        as_json,
        found,
        f"{report.entries} entries, {report.checkpoints} signed checkpoints, tree verified up "
        f"to size {report.verified_size}"
        + (f"; {unchecked} newer entries not yet covered by a checkpoint" if unchecked else ""),
    )


def _verify_live(
    client: Client, url: str, state_file: Path, public_key: str | None, as_json: bool
) -> NoReturn:
    state: dict[str, Any] = json.loads(state_file.read_text()) if state_file.exists() else {}
    info = client.log_info()
    known = state.get(url, {})
    key = public_key or known.get("verifier_key")
    if key is None:
        key = info["verifier_key"]
        note(f"pinning the log's verifier key on first use: {key}")
    elif info["verifier_key"] != key:
        found = {"ok": False, "kind": "key_changed", "message": "different checkpoint key"}
        _verdict(
            as_json, found, "the gateway presents a different checkpoint key than the pinned one"
        )
    latest_note = client.checkpoint()["checkpoint"]
    try:
        latest = parse_and_verify_checkpoint(latest_note, key)
        previous_note = known.get("checkpoint")
        previous = parse_and_verify_checkpoint(previous_note, key) if previous_note else None
        if previous is not None:
            proof: list[bytes] = []
            if latest.size >= previous.size:
                answer = client.consistency_proof(previous.size, latest.size)
                proof = [base64.b64decode(p) for p in answer["proof"]]
            verify_live_state(previous, latest, proof)
    except TraceError as exc:
        _refused(as_json, exc)
    state[url] = {"verifier_key": key, "checkpoint": latest_note}
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state, indent=2))
    found = {"ok": True, "from_size": previous.size if previous else None, "to_size": latest.size}
    if previous is None:
        _verdict(as_json, found, f"first checkpoint seen at size {latest.size}; remembered")
    _verdict(as_json, found, f"size {previous.size} -> {latest.size} is append-only")


@click.group()
def audit() -> None:
    """The tamper-evident trace: export, verify, checkpoints, receipts."""


@audit.command("export")
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Directory to write to."
)
@gateway_command
def export_cmd(s: Session, out: Path) -> None:
    """Write entries, checkpoints and the public key to OUT (auditor key)."""
    entries, notes = export_trace(s.client, out, progress=not s.as_json)
    s.show(
        {"directory": str(out), "entries": entries, "checkpoints": notes},
        lambda r: click.echo(f"exported {entries} entries and {notes} checkpoints to {out}"),
    )


@audit.command("verify")
@click.argument("directory", type=click.Path(path_type=Path), required=False)
@url_option
@key_option(required=False)
@click.option(
    "--state",
    "state_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the last seen checkpoint is kept (live mode).",
)
@click.option("--public-key", default=None, help="Expected verifier key (live mode).")
@json_option
def verify_cmd(
    directory: Path | None,
    url: str,
    api_key: str | None,
    state_file: Path | None,
    public_key: str | None,
    as_json: bool,
) -> None:
    """Verify an export DIRECTORY offline, or else the live gateway at --url against the
    last checkpoint this machine saw. Prints one verdict; exits 1 when it fails."""
    try:
        if directory is not None:
            _verify_dir(directory, as_json)
        if not api_key:
            fail(
                "give an export DIRECTORY, or --api-key (env BLINDGATE_API_KEY) to check the "
                f"gateway at {url}",
                2,
            )
        with open_client(url, api_key) as client, failures():
            _verify_live(client, url, state_file or _default_state(), public_key, as_json)
    except TraceError as exc:
        _refused(as_json, exc)


@audit.command("checkpoint")
@gateway_command
def checkpoint_cmd(s: Session) -> None:
    """Sign a checkpoint now (auditor or admin key) and print it."""
    s.show(s.client.sign_checkpoint(), lambda c: click.echo(c["checkpoint"], nl=False))


@audit.command("receipt")
@click.argument("file", type=click.File("r"))
@click.option("--public-key", default=None, help="The log's verifier key (default: ask).")
@url_option
@key_option(required=False)
@json_option
def receipt_cmd(
    file: Any, public_key: str | None, url: str, api_key: str | None, as_json: bool
) -> None:
    """Verify a receipt (or an answer that carries one) read from FILE ('-' for stdin)."""
    try:
        data = json.load(file)
    except ValueError as exc:
        fail(f"{file.name} is not JSON: {exc}", 2)
    receipt = data.get("receipt", data) if isinstance(data, dict) else data
    if public_key is None:
        if not api_key:
            fail("give --public-key, or --api-key (or BLINDGATE_API_KEY) to ask the gateway", 2)
        with open_client(url, api_key) as client, failures():
            public_key = client.verifier_key()
    try:
        checkpoint = verify_receipt(receipt, public_key)
    except TraceError as exc:
        _refused(as_json, exc)
    found = {
        "ok": True,
        "leaf_index": receipt["leaf_index"],
        "origin": checkpoint.origin,
        "size": checkpoint.size,
    }
    _verdict(
        as_json,
        found,
        f"entry {receipt['leaf_index']} is in the log {checkpoint.origin} at size "
        f"{checkpoint.size}",
    )


COMMANDS = (audit,)
