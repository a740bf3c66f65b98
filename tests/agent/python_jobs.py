"""Python job folders and tickets for the agent suite: a syft-rds job folder packed as
the client packs it, its specification as the gateway stores it, and a minter whose
policy lets Python jobs read the projection of a test asset."""

from __future__ import annotations

import io
import tarfile
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from contracts.tickets import ApprovalStatement, SignedApproval, Ticket, sign_statement
from policies.jobs.jobfolder import read_folder
from sandbox.agent.held import HeldOutputs
from sandbox.agent.reviews import review_statement, sign_review
from tests.agent.tickets import HOLDER, Minter

PY_COLUMNS = [
    ("patient_id", "text", "identifier"),
    ("district", "text", "quasi_identifier"),
    ("age", "integer", "quasi_identifier"),
    ("los", "integer", "attribute"),
    ("diagnosis", "text", "sensitive"),
]
PY_ROWS = [
    (f"PAT{n:05d}", ("north", "south", "east")[n % 3], 20 + (n * 7) % 60, n % 9, "flu")
    for n in range(40)
]


def policy(release: str = "review", hashes: tuple[str, ...] = (), approval: str = "auto") -> str:
    approved = f"\n  approved_code: {{code_hashes: [{', '.join(hashes)}]}}" if hashes else ""
    return (
        textwrap.dedent(
            f"""\
        version: 1
        asset: admissions
        columns:
          patient_id: {{control: join_key}}
          district: {{control: group_by}}
          age: {{control: filter}}
          los:
            control: aggregate
            clip: {{lower: 0, upper: 10}}
          diagnosis: {{control: never}}
        jobs:
          kinds: [sql_aggregate, python]
          aggregates: [count, sum]
          purposes: [research]
          approval: {{mode: {approval}}}
        privacy:
          epsilon_per_job_max: 50
          budget: {{epsilon: 1000000, delta: 1.0e-6, period_days: 30}}
        python:
          columns: [district, age, los]
          outputs: {{types: [csv, json, txt], max_files: 4, max_file_bytes: 65536,
                    max_total_bytes: 131072}}
          limits: {{wall_seconds: 20, cpu_seconds: 5, memory_bytes: 268435456}}
          release: {release}"""
        )
        + approved
        + "\n"
    )


def folder(
    main: str, *, extra: dict[str, str] | None = None, deps: list[str] | None = None
) -> bytes:
    """A syft-rds job folder as a tar.gz: config.yaml, run.sh and code/."""
    code = {"main.py": textwrap.dedent(main), **(extra or {})}
    config = {
        "name": "analysis",
        "type": "python",
        "entrypoint": "main.py",
        "dependencies": deps if deps is not None else ["syft==0.10.0"],
        "files": sorted(code),
        "submitted_at": "2026-01-01T00:00:00Z",
    }
    files = {
        "config.yaml": yaml.safe_dump(config).encode(),
        "run.sh": b"#!/bin/bash\ncd code\nuv venv\nuv pip install syft\npython main.py\n",
        **{f"code/{path}": text.encode() for path, text in code.items()},
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(f"analysis/{path}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def spec_of(archive: bytes, dataset: str = "admissions") -> dict[str, Any]:
    import hashlib

    described = read_folder(archive).describe(hashlib.sha256(archive).hexdigest())
    return {**described, "dataset": dataset}


@dataclass
class PyMinter(Minter):
    """The suite's minter with a policy that allows Python jobs."""

    local_ref: str = "people-csv"

    def __post_init__(self) -> None:
        self.policy = policy()
        self.columns = list(PY_COLUMNS)

    def licence(self, asset: str, **over: Any) -> Any:
        over.setdefault("job_kinds", ["python", "sql_aggregate"])
        return super().licence(asset, **over)

    def python_ticket(self, archive: bytes, **fields: Any) -> Ticket:
        return self.ticket(kind="python", sql="", spec=spec_of(archive), epsilon=0.0, **fields)

    def approve(self, ticket: Ticket) -> Ticket:
        statement = ApprovalStatement(
            holder_org_id=self.organisation,
            principal_id="steward",
            job_id=ticket.job.id,
            job_sha256=ticket.job.digest,
            signed_at=datetime.now(UTC),
        )
        approval = SignedApproval(
            statement=statement, signature=sign_statement(statement, self.key)
        )
        return ticket.model_copy(update={"approvals": (approval,)})


def review(
    state_dir: Path,
    fragment_id: str,
    *,
    release: bool,
    key: Any = HOLDER,
    organisation: str = "org_riverside",
    reason: str = "",
) -> bool:
    """The holder's local review command, as ``blindgate site outputs`` runs it."""
    store = HeldOutputs(state_dir)
    try:
        held = store.get(fragment_id)
        assert held is not None
        statement = review_statement(
            held,
            organisation=organisation,
            reviewer="dr-review",
            release=release,
            reason=reason,
            signed_at=datetime.now(UTC),
        )
        return sign_review(store, statement, key)
    finally:
        store.close()
