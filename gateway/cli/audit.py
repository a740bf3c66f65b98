"""``blindgate audit``: export, verify (offline and live), checkpoints, receipts."""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from gateway.audit.checkpoint import join_notes, parse_and_verify_checkpoint
from gateway.audit.errors import TraceError
from gateway.audit.export import CHECKPOINTS_FILE, ENTRIES_FILE, PUBLIC_KEY_FILE, entry_line
from gateway.audit.live import LiveEntry, verify_entries
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


def _live_entries(client: Client, start: int) -> Iterator[LiveEntry]:
    """The log's entries from index ``start`` on, as the gateway serves them."""
    cursor = str(start - 1) if start > 0 else None
    while True:
        page = client.get("/v1/audit/entries", limit=1000, cursor=cursor)
        for item in page["items"]:
            committed = base64.b64decode(item["leaf_hash"]) if item["leaf_hash"] else None
            yield item["index"], item["entry"], committed
        cursor = page.get("next_cursor")
        if not cursor:
            return


def _verify_live(
    url: str, api_key: str, state_file: Path, public_key: str | None, full: bool = False
) -> None:
    state: dict[str, Any] = {}
    if state_file.exists():
        state = json.loads(state_file.read_text())
    with Client(url, api_key) as client:
        if client.get("/v1/me")["principal"]["role"] != "auditor":
            _fail("verify --url re-hashes every entry it checks: use an auditor's key", 2)
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
        previous = parse_and_verify_checkpoint(previous_note, key) if previous_note else None
        if previous is not None:
            proof: list[bytes] = []
            if latest.size >= previous.size:
                answer = client.get(
                    "/v1/audit/proofs/consistency", **{"from": previous.size, "to": latest.size}
                )
                proof = [base64.b64decode(p) for p in answer["proof"]]
            verify_live_state(previous, latest, proof)
        # The proofs come from the stored tree: re-hash the entries themselves too.
        start = None if full or previous is None else previous
        frontier: list[bytes] = []
        if start is not None and start.size:
            answer = client.get("/v1/audit/proofs/frontier", size=start.size)
            frontier = [base64.b64decode(h) for h in answer["hashes"]]
        also = [previous] if previous is not None and start is None else []
        first = start.size if start is not None else 0
        checked = verify_entries(
            latest, _live_entries(client, first), start=start, frontier=frontier, also=also
        )
        hashed = f"entries {first}..{latest.size - 1} re-hashed" if checked else "no new entry"
        if previous is not None:
            click.echo(f"OK: size {previous.size} -> {latest.size} is append-only; {hashed}")
        else:
            click.echo(f"OK: first checkpoint seen at size {latest.size}; {hashed}; remembered")
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
    @click.option(
        "--full",
        is_flag=True,
        help="Live mode: re-hash every entry, not only those after the checkpoint held.",
    )
    def verify_cmd(
        directory: Path | None,
        url: str | None,
        api_key: str | None,
        state_file: Path | None,
        public_key: str | None,
        full: bool,
    ) -> None:
        """Verify an export DIRECTORY offline, or a live gateway with --url."""
        try:
            if url is not None:
                if not api_key:
                    _fail("--api-key (or BLINDGATE_API_KEY) is needed with --url", 2)
                state = state_file or _default_state()
                _verify_live(url, str(api_key), state, public_key, full)
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
