"""Outputs of Python jobs, held at the site until their holder reviews them.

Each fragment that ran a Python job leaves one record (SQLite in the site's state
directory, ``outputs.db``) and its files (``outputs/<fragment>/``, readable by the agent
only).  A record is ``held`` until a review decides it: ``released`` (the holder signed a
release, or the signed policy releases outputs of code it approved in advance) or
``rejected`` (the holder signed a rejection with a reason, or an automatic check refused
the outputs).  Nothing of a held record's files leaves the site: the gateway is told
its state, and the files only once released.

Reviews are written here by the holder's local command (``blindgate site outputs``) as
signed statements; the agent verifies each against its pinned keys before it acts on it
(:meth:`HeldOutputs.decide`), so a review written by anyone without the holder's key
decides nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from policies.jobs.jobfolder import manifest, manifest_hash
from sandbox.agent.durable import DurableSqlite

HELD = "held"
RELEASED = "released"
REJECTED = "rejected"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS held (
    fragment_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    job_sha256 TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    operator TEXT NOT NULL,
    detail TEXT NOT NULL,
    files TEXT NOT NULL,
    outputs_sha256 TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL DEFAULT '',
    review_statement TEXT NOT NULL DEFAULT '',
    review_signature TEXT NOT NULL DEFAULT '',
    proposed_statement TEXT NOT NULL DEFAULT '',
    proposed_signature TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    decided_at TEXT NOT NULL DEFAULT ''
)
"""


@dataclass(frozen=True)
class OutputFile:
    """One held file: what the job wrote (``output``) or its logs (``stdout``/``stderr``)."""

    kind: str
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Held:
    """One fragment's held outputs and their review."""

    fragment_id: str
    job_id: str
    job_sha256: str
    asset_id: str
    operator: str
    detail: dict[str, Any]
    """Code hash, files manifest hash, asset digest, exit status, check results."""
    files: tuple[OutputFile, ...]
    outputs_sha256: str
    state: str
    reason: str = ""
    reviewer: str = ""
    review_statement: str = ""
    review_signature: str = ""
    proposed_statement: str = ""
    proposed_signature: str = ""
    created_at: str = ""
    decided_at: str = ""

    @property
    def manifest(self) -> str:
        """The ``sha256sum``-style manifest a review signs (via its hash)."""
        return manifest({f.path: f.sha256 for f in self.files})


def outputs_hash(files: list[OutputFile]) -> str:
    """The SHA-256 of the held files' manifest (what a review signs)."""
    return manifest_hash({f.path: f.sha256 for f in files})


class HeldOutputs:
    """The site's held outputs; thread-safe."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root = state_dir / "outputs"
        self.root.mkdir(mode=0o700, exist_ok=True)
        self._db = DurableSqlite(state_dir / "outputs.db", _SCHEMA)

    def close(self) -> None:
        self._db.close()

    def directory(self, fragment_id: str) -> Path:
        return self.root / fragment_id

    def add(
        self,
        held: Held,
        contents: dict[str, bytes],
        now: datetime,
    ) -> None:
        """Keep a fragment's files and its record (``held``, or decided by the checks or
        the policy)."""
        directory = self.directory(held.fragment_id)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(mode=0o700)
        for index, item in enumerate(held.files):
            (directory / f"{index:04d}").write_bytes(contents[item.path])
        files = json.dumps([item.__dict__ for item in held.files])
        decided = now.isoformat() if held.state != HELD else ""
        with self._db.write() as con:
            con.execute(
                "INSERT OR REPLACE INTO held (fragment_id, job_id, job_sha256, asset_id, "
                "operator, detail, files, outputs_sha256, state, reason, reviewer, "
                "created_at, decided_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    held.fragment_id,
                    held.job_id,
                    held.job_sha256,
                    held.asset_id,
                    held.operator,
                    json.dumps(held.detail, sort_keys=True),
                    files,
                    held.outputs_sha256,
                    held.state,
                    held.reason,
                    held.reviewer,
                    now.isoformat(),
                    decided,
                ),
            )

    def get(self, fragment_id: str) -> Held | None:
        rows = self._db.read(
            lambda c: _rows(c.execute("SELECT * FROM held WHERE fragment_id = ?", (fragment_id,)))
        )
        return rows[0] if rows else None

    def list(self, state: str | None = None) -> list[Held]:
        return self._db.read(
            lambda c: _rows(
                c.execute(
                    "SELECT * FROM held WHERE (? IS NULL OR state = ?) ORDER BY created_at",
                    (state, state),
                )
            )
        )

    def read(self, held: Held, path: str) -> bytes:
        """One held file's bytes, checked against its recorded SHA-256."""
        for index, item in enumerate(held.files):
            if item.path == path:
                data = (self.directory(held.fragment_id) / f"{index:04d}").read_bytes()
                if hashlib.sha256(data).hexdigest() != item.sha256:
                    raise ValueError("a held file changed on disk")
                return data
        raise KeyError(path)

    def propose(self, fragment_id: str, statement: str, signature: str) -> bool:
        """Record a signed review for the agent to verify (the local review command)."""
        with self._db.write() as con:
            done = con.execute(
                "UPDATE held SET proposed_statement = ?, proposed_signature = ? "
                "WHERE fragment_id = ? AND state = ?",
                (statement, signature, fragment_id, HELD),
            )
            return done.rowcount == 1

    def decide(
        self, fragment_id: str, state: str, reason: str, reviewer: str, now: datetime
    ) -> None:
        """Settle a held record (the agent, after verifying its review)."""
        with self._db.write() as con:
            con.execute(
                "UPDATE held SET state = ?, reason = ?, reviewer = ?, "
                "review_statement = proposed_statement, review_signature = proposed_signature,"
                " decided_at = ? WHERE fragment_id = ? AND state = ?",
                (state, reason, reviewer, now.isoformat(), fragment_id, HELD),
            )

    def drop_proposal(self, fragment_id: str) -> None:
        with self._db.write() as con:
            con.execute(
                "UPDATE held SET proposed_statement = '', proposed_signature = '' "
                "WHERE fragment_id = ?",
                (fragment_id,),
            )


def _held(row: dict[str, Any]) -> Held:
    files = tuple(OutputFile(**item) for item in json.loads(row.pop("files")))
    detail = json.loads(row.pop("detail"))
    return Held(files=files, detail=detail, **row)


def _rows(cursor: sqlite3.Cursor) -> list[Held]:
    names = [d[0] for d in cursor.description]
    return [_held(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]
