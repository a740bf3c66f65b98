"""``blindgate audit``: export, verify (offline and live), checkpoints, receipts."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from gateway.audit.checkpoint import join_notes, parse_and_verify_checkpoint
from gateway.audit.errors import TraceError
from gateway.audit.export import CHECKPOINTS_FILE, ENTRIES_FILE, PUBLIC_KEY_FILE, entry_line
from gateway.audit.pinpoint import LEAF_HASHES_FILE, pinpoint
from gateway.audit.receipt import verify_receipt
from gateway.audit.verify import verify_export, verify_live_state
from gateway.cli.admin import KEY_OPTION, URL_OPTION
from gateway.client import ApiError, Client


def _default_state() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "blindgate" / "trace-state.json"


def export_trace(client: Client, out: Path, *, progress: bool = True) -> tuple[int, int]:
    """Write the export directory from a live gateway (auditor key); return (entries, notes)."""
    out.mkdir(parents=True, exist_ok=True)
    client.post("/v1/audit/checkpoint")  # cover every entry written so far
    info = client.get("/v1/audit/log")
    checkpoints = client.get("/v1/audit/checkpoints", limit=1000)
    while len(checkpoints) % 1000 == 0 and checkpoints:
        more = client.get("/v1/audit/checkpoints", after_size=checkpoints[-1]["size"], limit=1000)
        if not more:
            break
        checkpoints += more
    total = info["size"]
    count = 0
    with (
        (out / ENTRIES_FILE).open("wb") as entries,
        (out / LEAF_HASHES_FILE).open("w") as hashes,
        click.progressbar(
            length=total, label="exporting entries", file=sys.stderr, hidden=not progress
        ) as bar,
    ):
        cursor = None
        while True:
            page = client.get("/v1/audit/entries", limit=1000, cursor=cursor)
            for item in page["items"]:
                entries.write(entry_line(item["index"], item["entry"]))
                hashes.write(item["leaf_hash"] + "\n")
                count += 1
            bar.update(len(page["items"]))
            cursor = page.get("next_cursor")
            if not cursor:
                break
    notes = [c["checkpoint"] for c in checkpoints]
    (out / CHECKPOINTS_FILE).write_text(join_notes(notes), encoding="utf-8")
    (out / PUBLIC_KEY_FILE).write_text(info["verifier_key"] + "\n", encoding="utf-8")
    return count, len(notes)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(click.style("FAIL ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


def _verify_dir(directory: Path) -> None:
    report = pinpoint(directory, verify_export(directory))
    if report.failure is not None:
        f = report.failure
        where = ""
        if f.first_bad_index is not None:
            where = f" (first bad position: {f.first_bad_index})"
        _fail(f"{f.kind}: {f.message}{where}")
    unchecked = report.entries - report.verified_size
    click.echo(
        f"OK: {report.entries} entries, {report.checkpoints} signed checkpoints, "
        f"tree verified up to size {report.verified_size}"
        + (f"; {unchecked} newer entries not yet covered by a checkpoint" if unchecked else "")
    )


def _verify_live(url: str, api_key: str, state_file: Path, public_key: str | None) -> None:
    state: dict[str, Any] = {}
    if state_file.exists():
        state = json.loads(state_file.read_text())
    with Client(url, api_key) as client:
        info = client.get("/v1/audit/log")
        known = state.get(url, {})
        key = public_key or known.get("verifier_key")
        if key is None:
            key = info["verifier_key"]
            click.echo(f"pinning the log's verifier key on first use: {key}", err=True)
        elif info["verifier_key"] != key:
            _fail("the gateway presents a different checkpoint key than the pinned one")
        latest_note = client.get("/v1/audit/checkpoint")["checkpoint"]
        latest = parse_and_verify_checkpoint(latest_note, key)
        previous_note = known.get("checkpoint")
        if previous_note:
            previous = parse_and_verify_checkpoint(previous_note, key)
            proof: list[bytes] = []
            if latest.size >= previous.size:
                answer = client.get(
                    "/v1/audit/proofs/consistency", **{"from": previous.size, "to": latest.size}
                )
                proof = [base64.b64decode(p) for p in answer["proof"]]
            verify_live_state(previous, latest, proof)
            click.echo(f"OK: size {previous.size} -> {latest.size} is append-only")
        else:
            click.echo(f"OK: first checkpoint seen at size {latest.size}; remembered")
    state[url] = {"verifier_key": key, "checkpoint": latest_note}
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state, indent=2))


def audit_commands(cli: click.Group) -> None:
    """Attach ``blindgate audit`` to ``cli``."""

    @cli.group()
    def audit() -> None:
        """The tamper-evident trace: export, verify, checkpoints, receipts."""

    @audit.command("export")
    @click.option("--out", type=click.Path(path_type=Path), required=True)
    @URL_OPTION
    @KEY_OPTION
    def export_cmd(out: Path, url: str, api_key: str) -> None:
        """Write entries, checkpoints and the public key to OUT (auditor key)."""
        try:
            with Client(url, api_key) as client:
                entries, notes = export_trace(client, out)
        except ApiError as exc:
            _fail(str(exc), 2)
        click.echo(f"exported {entries} entries and {notes} checkpoints to {out}")

    @audit.command("verify")
    @click.argument("directory", type=click.Path(path_type=Path), required=False)
    @click.option("--url", default=None, help="Check a live gateway instead of a directory.")
    @click.option("--api-key", envvar="BLINDGATE_API_KEY", default=None)
    @click.option(
        "--state",
        "state_file",
        type=click.Path(path_type=Path),
        default=None,
        help="Where the last seen checkpoint is kept (live mode).",
    )
    @click.option("--public-key", default=None, help="Expected verifier key (live mode).")
    def verify_cmd(
        directory: Path | None,
        url: str | None,
        api_key: str | None,
        state_file: Path | None,
        public_key: str | None,
    ) -> None:
        """Verify an export DIRECTORY offline, or a live gateway with --url."""
        try:
            if url is not None:
                if not api_key:
                    _fail("--api-key (or BLINDGATE_API_KEY) is needed with --url", 2)
                _verify_live(url, str(api_key), state_file or _default_state(), public_key)
            elif directory is not None:
                _verify_dir(directory)
            else:
                _fail("give an export DIRECTORY or --url", 2)
        except TraceError as exc:
            _fail(f"{exc.code}: {exc}")
        except ApiError as exc:
            _fail(str(exc), 2)

    @audit.command("checkpoint")
    @URL_OPTION
    @KEY_OPTION
    def checkpoint_cmd(url: str, api_key: str) -> None:
        """Sign a checkpoint now (auditor or admin key) and print it."""
        try:
            with Client(url, api_key) as client:
                click.echo(client.post("/v1/audit/checkpoint")["checkpoint"], nl=False)
        except ApiError as exc:
            _fail(str(exc), 2)

    @audit.command("receipt")
    @click.argument("file", type=click.File("r"))
    @click.option("--public-key", default=None, help="The log's verifier key.")
    @URL_OPTION
    @click.option("--api-key", envvar="BLINDGATE_API_KEY", default=None)
    def receipt_cmd(file: Any, public_key: str | None, url: str, api_key: str | None) -> None:
        """Verify a receipt (or an answer that carries one) read from FILE ('-' for stdin)."""
        data = json.load(file)
        receipt = data.get("receipt", data) if isinstance(data, dict) else data
        if public_key is None:
            if not api_key:
                _fail("give --public-key, or --api-key to fetch it from the gateway", 2)
            with Client(url, api_key) as client:
                public_key = client.get("/v1/audit/log")["verifier_key"]
        try:
            checkpoint = verify_receipt(receipt, str(public_key))
        except TraceError as exc:
            _fail(f"{exc.code}: {exc}")
        click.echo(
            f"OK: entry {receipt['leaf_index']} is in the log {checkpoint.origin} "
            f"at size {checkpoint.size}"
        )
