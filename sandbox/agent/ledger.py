"""The site's own privacy-budget ledger and ticket register, in SQLite at the site.

A site does not take the gateway's word for how much of its holder's budget is left: it
charges every fragment it runs to its own ledger, per asset and per licence, and refuses a
ticket whose job would go beyond the holder's budget (ε and δ over the policy's rolling
period), a licence's ε cap or job cap, or its rate limit — so a compromised gateway can
never spend more than the holder allowed.  The same database remembers every ticket it
admitted (a replayed ticket is refused), the newest policy it has seen per asset (an older
one is stale) and every licence revocation it has seen (permanent).

Writes run in ``BEGIN IMMEDIATE`` transactions with ``synchronous=FULL``: a charge is
durable before the fragment runs, and two fragments can never spend the same budget.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sandbox.agent.durable import DurableSqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    fragment_id TEXT PRIMARY KEY,
    ticket_sha256 TEXT NOT NULL,
    job_id TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS charges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fragment_id TEXT NOT NULL REFERENCES tickets(fragment_id),
    job_id TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    licence_id TEXT NOT NULL,
    epsilon TEXT NOT NULL,
    delta TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_asset ON charges (asset_id, at);
CREATE INDEX IF NOT EXISTS charges_licence ON charges (licence_id, at);
CREATE TABLE IF NOT EXISTS policies_seen (
    asset_id TEXT PRIMARY KEY,
    signed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked (
    licence_id TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bounding_seeds (
    version TEXT PRIMARY KEY,
    seed TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bounds_seen (
    asset_id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    max_rows INTEGER NOT NULL
);
"""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))


class LedgerRefused(Exception):
    """A ticket the ledger will not admit; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Spent:
    """What an asset's (or a licence's) charges add up to in a period."""

    epsilon: float
    delta: float
    jobs: int
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class Charge:
    """One charge to make when a ticket is admitted."""

    asset_id: str
    licence_id: str
    epsilon: float
    delta: float


class SiteLedger:
    """The site's ledger; thread-safe, one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = DurableSqlite(path, _SCHEMA)

    def close(self) -> None:
        self._db.close()

    # what has been seen ---------------------------------------------------------------
    def admitted(self, fragment_id: str) -> bool:
        """Whether a ticket with this fragment id was admitted before."""
        row = self._db.read(
            lambda c: c.execute(
                "SELECT 1 FROM tickets WHERE fragment_id = ?", (fragment_id,)
            ).fetchone()
        )
        return row is not None

    def newest_policy(self, asset_id: str) -> datetime | None:
        row = self._db.read(
            lambda c: c.execute(
                "SELECT signed_at FROM policies_seen WHERE asset_id = ?", (asset_id,)
            ).fetchone()
        )
        return datetime.fromisoformat(row[0]) if row else None

    def note_policy(self, asset_id: str, signed_at: datetime) -> None:
        """Remember ``signed_at`` as the newest policy seen for the asset (never older)."""
        with self._db.write() as con:
            con.execute(
                "INSERT INTO policies_seen (asset_id, signed_at) VALUES (?, ?) ON CONFLICT "
                "(asset_id) DO UPDATE SET signed_at = MAX(signed_at, excluded.signed_at)",
                (asset_id, _iso(signed_at)),
            )

    def revoke(self, licence_id: str, at: datetime) -> None:
        with self._db.write() as con:
            con.execute(
                "INSERT OR IGNORE INTO revoked (licence_id, at) VALUES (?, ?)",
                (licence_id, _iso(at)),
            )

    def revoked(self, licence_ids: list[str]) -> set[str]:
        if not licence_ids:
            return set()
        marks = ",".join("?" for _ in licence_ids)
        rows = self._db.read(
            lambda c: c.execute(
                f"SELECT licence_id FROM revoked WHERE licence_id IN ({marks})",  # noqa: S608
                licence_ids,
            ).fetchall()
        )
        return {r[0] for r in rows}

    # contribution bounding ----------------------------------------------------------------
    def bounding_seed(self, version: str) -> str:
        """The secret seed of one asset version's bounded view: made on first use, then
        kept, so that the rows each person keeps stay the same for that version."""
        with self._db.write() as con:
            con.execute(
                "INSERT OR IGNORE INTO bounding_seeds (version, seed) VALUES (?, ?)",
                (version, secrets.token_hex(16)),
            )
            row = con.execute(
                "SELECT seed FROM bounding_seeds WHERE version = ?", (version,)
            ).fetchone()
        return str(row[0])

    def note_bound(self, asset_id: str, unit: str, max_rows: int) -> None:
        """Remember the bound the asset's policy asks for (to prepare it at start-up)."""
        with self._db.write() as con:
            con.execute(
                "INSERT INTO bounds_seen (asset_id, unit, max_rows) VALUES (?, ?, ?) ON CONFLICT "
                "(asset_id) DO UPDATE SET unit = excluded.unit, max_rows = excluded.max_rows",
                (asset_id, unit, max_rows),
            )

    def bounds(self) -> dict[str, tuple[str, int]]:
        """The last bound seen per asset: ``{asset_id: (unit, max_rows)}``."""
        rows = self._db.read(
            lambda c: c.execute("SELECT asset_id, unit, max_rows FROM bounds_seen").fetchall()
        )
        return {str(r[0]): (str(r[1]), int(r[2])) for r in rows}

    # what has been spent ----------------------------------------------------------------
    def asset_spent(self, asset_id: str, since: datetime) -> Spent:
        return self._db.read(lambda c: _spent(c, "asset_id", asset_id, since))

    def licence_spent(self, licence_id: str, since: datetime | None = None) -> Spent:
        return self._db.read(lambda c: _spent(c, "licence_id", licence_id, since))

    def admit(
        self,
        fragment_id: str,
        ticket_sha256: str,
        job_id: str,
        asset_id: str,
        charges: list[Charge],
        *,
        now: datetime,
        budget: tuple[float, float, int],
    ) -> None:
        """Record the ticket and charge it, all or nothing.

        ``budget`` is the asset's (ε, δ, period in days) from the holder's policy; the
        asset's charges in the period plus these must fit it, checked inside the same
        transaction that writes them.
        """
        epsilon, delta, days = budget
        with self._db.write() as con:
            if con.execute(
                "SELECT 1 FROM tickets WHERE fragment_id = ?", (fragment_id,)
            ).fetchone():
                raise LedgerRefused("replayed", "this ticket was admitted before")
            spent = _spent(con, "asset_id", asset_id, now - timedelta(days=days))
            wanted_e = sum((_dec(c.epsilon) for c in charges), Decimal(0))
            wanted_d = sum((_dec(c.delta) for c in charges), Decimal(0))
            if _dec(spent.epsilon) + wanted_e > _dec(epsilon) or (
                wanted_d and _dec(spent.delta) + wanted_d > _dec(delta)
            ):
                raise LedgerRefused(
                    "site_budget_exhausted",
                    f"the site's ledger has {epsilon - spent.epsilon:g} epsilon left for the asset",
                )
            at = _iso(now)
            con.execute(
                "INSERT INTO tickets (fragment_id, ticket_sha256, job_id, asset_id, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (fragment_id, ticket_sha256, job_id, asset_id, at),
            )
            con.executemany(
                "INSERT INTO charges (fragment_id, job_id, asset_id, licence_id, epsilon, delta, "
                "at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        fragment_id,
                        job_id,
                        c.asset_id,
                        c.licence_id,
                        str(_dec(c.epsilon)),
                        str(_dec(c.delta)),
                        at,
                    )
                    for c in charges
                ],
            )


def _spent(con: sqlite3.Connection, column: str, value: str, since: datetime | None) -> Spent:
    query = f"SELECT epsilon, delta, job_id, at FROM charges WHERE {column} = ?"  # noqa: S608
    args: list[str] = [value]
    if since is not None:
        query += " AND at > ?"
        args.append(_iso(since))
    rows = con.execute(query, args).fetchall()
    epsilon = sum((Decimal(r[0]) for r in rows), Decimal(0))
    delta = sum((Decimal(r[1]) for r in rows), Decimal(0))
    oldest = min((datetime.fromisoformat(r[3]) for r in rows), default=None)
    return Spent(float(epsilon), float(delta), len({r[2] for r in rows}), oldest)
