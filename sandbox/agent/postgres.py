"""PostgreSQL assets, served from CSV snapshots exported into the agent's cache.

The sandbox reads files only, so an asset kept in the holder's PostgreSQL is
exported with ``COPY (SELECT * FROM table) TO STDOUT (FORMAT csv, HEADER)`` in a
read-only transaction (the connection string comes from the environment variable
the configuration names, never from the file itself) and fragments run on the
snapshot.  A snapshot is reused for ``refresh_seconds``; the previous one is kept
until the next refresh so that a fragment that started on it can finish.  An
export is capped at ``max_bytes`` and ``timeout_seconds``.

Column types come back through DuckDB's CSV type detection, not from the
PostgreSQL catalogue, and every refresh copies the whole table. For large tables a
holder can set ``pushdown: true``: :func:`run_pushdown` then runs the gateway's
PostgreSQL form of the fragment inside the database (checked first by
:func:`pushdown_is_safe`, read-only, with a statement timeout and a row cap).

Snapshots hold raw rows: they are written with mode 0600 (readable through the
namespace sandbox, whose user maps to the agent's), or, when the sandbox runs
under a separate uid without namespaces, owned by that uid with mode 0400.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sandbox.agent.config import PostgresSource

log = logging.getLogger(__name__)


class ExportFailed(Exception):
    """The table could not be exported (connection, permission, size or time)."""


@dataclass(frozen=True)
class Snapshot:
    """One exported copy of a table."""

    path: Path
    taken: float


@dataclass(frozen=True)
class SandboxOwner:
    """Who must be able to read snapshots: ``None`` for the agent's own uid."""

    uid: int | None = None
    gid: int | None = None


class PostgresExports:
    """Exports PostgreSQL assets to snapshot files on demand; thread-safe."""

    def __init__(
        self,
        root: Path,
        owner: SandboxOwner,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        shutil.rmtree(root, ignore_errors=True)
        self._owner = owner
        self._environ = environ
        self._clock = clock
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._current: dict[str, Snapshot] = {}
        self._previous: dict[str, Snapshot] = {}

    def configured(self, source: PostgresSource) -> bool:
        """Whether the connection string's environment variable is set."""
        return bool(self._environ.get(source.dsn_env))

    def snapshot(self, asset_id: str, source: PostgresSource) -> Path:
        """A snapshot of the asset's table no older than ``refresh_seconds``."""
        with self._guard:
            lock = self._locks.setdefault(asset_id, threading.Lock())
        with lock:
            current = self._current.get(asset_id)
            if current is not None and self._clock() - current.taken < source.refresh_seconds:
                return current.path
            fresh = Snapshot(self._export(asset_id, source), self._clock())
            stale = self._previous.get(asset_id)
            if current is not None:
                self._previous[asset_id] = current
            self._current[asset_id] = fresh
        if stale is not None:
            stale.path.unlink(missing_ok=True)
        return fresh.path

    def _export(self, asset_id: str, source: PostgresSource) -> Path:
        import psycopg
        from psycopg import sql

        dsn = self._environ.get(source.dsn_env)
        if not dsn:
            raise ExportFailed(f"environment variable {source.dsn_env} is not set")
        directory = self.root / asset_id
        directory.mkdir(mode=0o711, parents=True, exist_ok=True)
        self.root.chmod(0o711)
        directory.chmod(0o711)
        handle, name = tempfile.mkstemp(prefix=".export-", suffix=".csv", dir=directory)
        partial = Path(name)
        query = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT (FORMAT csv, HEADER)").format(
            sql.Identifier(*source.table.split("."))
        )
        timeout = sql.SQL("SET LOCAL statement_timeout = {}").format(
            sql.Literal(int(source.timeout_seconds * 1000))
        )
        written = 0
        try:
            with (
                os.fdopen(handle, "wb") as out,
                psycopg.connect(dsn, connect_timeout=10) as conn,
            ):
                conn.read_only = True
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.execute(timeout)
                    with cursor.copy(query) as copy:
                        for block in copy:
                            written += len(block)
                            if written > source.max_bytes:
                                raise ExportFailed("the table is larger than max_bytes")
                            out.write(block)
                out.flush()
                os.fsync(out.fileno())
            self._protect(partial)
            target = directory / f"{time.time_ns()}.csv"
            partial.rename(target)
        except psycopg.Error as exc:
            partial.unlink(missing_ok=True)
            raise ExportFailed(f"export failed: {type(exc).__name__}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        log.info("exported asset %s (%d bytes)", asset_id, written)
        return target

    def _protect(self, path: Path) -> None:
        if self._owner.uid is None:
            path.chmod(0o600)
            return
        os.chown(path, self._owner.uid, self._owner.gid if self._owner.gid is not None else -1)
        path.chmod(0o400)

    def clear(self) -> None:
        """Remove every snapshot (at shutdown)."""
        with self._guard:
            self._current.clear()
            self._previous.clear()
        shutil.rmtree(self.root, ignore_errors=True)


class PushdownFailed(Exception):
    """A pushed-down fragment failed; ``code`` is the failure reason to report."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _scalar(value: object) -> object:
    """A PostgreSQL value as a JSON scalar (what a sandboxed fragment would return)."""
    import datetime
    import decimal

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    raise PushdownFailed("internal")


_SAFE_FUNCTIONS = frozenset(
    {
        "Count",
        "Sum",
        "Min",
        "Max",
        "Avg",
        "RowNumber",
        "Case",
        "If",
        "Rand",
        "And",
        "Or",
        "Not",
        "Least",
        "Greatest",
        "Cast",
        "Coalesce",
        "Abs",
        "Round",
        "Floor",
        "Ceil",
        "Lower",
        "Upper",
        "DateTrunc",
        "TimestampTrunc",
        "Extract",
        "Length",
        "Nullif",
        "Year",
        "Month",
        "Day",
    }
)


def pushdown_is_safe(statement: str) -> bool:
    """Defence in depth before SQL reaches the holder's database: one SELECT that reads only
    the relation ``asset`` (and its own subqueries) and calls only functions fragments use."""
    import sqlglot
    from sqlglot import exp

    try:
        trees = sqlglot.parse(statement, read="postgres")
    except sqlglot.errors.SqlglotError:
        return False
    if len(trees) != 1 or not isinstance(trees[0], exp.Select):
        return False
    tree = trees[0]
    if any(
        not isinstance(t, exp.Table) or t.name != "asset" or t.args.get("db")
        for t in tree.find_all(exp.Table)
    ):
        return False
    return all(type(func).__name__ in _SAFE_FUNCTIONS for func in tree.find_all(exp.Func))


def run_pushdown(
    source: PostgresSource, environ: Mapping[str, str], program: str, timeout_seconds: float
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[object, ...], ...]]:
    """Run ``program`` (one SELECT over a relation named ``asset``) inside PostgreSQL.

    The asset's table is bound as ``asset`` with a CTE; the transaction is read-only and
    has a statement timeout; at most ``source.max_rows`` rows come back. Returns
    ``(columns, types, rows)``; raises :class:`PushdownFailed` with a reason code.
    """
    import psycopg
    from psycopg import sql

    dsn = environ.get(source.dsn_env)
    if not dsn:
        raise PushdownFailed("internal")
    statement = program.strip().rstrip(";")
    if not pushdown_is_safe(statement):
        raise PushdownFailed("bad_input")
    query = sql.SQL("WITH asset AS (SELECT * FROM {}) ").format(
        sql.Identifier(*source.table.split("."))
    ) + sql.SQL(statement)
    timeout = sql.SQL("SET LOCAL statement_timeout = {}").format(
        sql.Literal(max(1, int(min(timeout_seconds, source.timeout_seconds) * 1000)))
    )
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            conn.read_only = True
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute(timeout)
                cursor.execute(query)
                columns = tuple(d.name for d in cursor.description or ())
                types = tuple(
                    "BIGINT"
                    if d.type_code in (20, 21, 23)
                    else "DOUBLE"
                    if d.type_code in (700, 701, 1700)
                    else "VARCHAR"
                    for d in cursor.description or ()
                )
                rows = cursor.fetchmany(source.max_rows + 1)
    except psycopg.errors.QueryCanceled:
        raise PushdownFailed("timeout") from None
    except psycopg.errors.ProgrammingError:
        raise PushdownFailed("bad_input") from None
    except psycopg.Error as exc:
        log.warning("push-down failed: %s", type(exc).__name__)
        raise PushdownFailed("internal") from None
    if len(rows) > source.max_rows:
        raise PushdownFailed("output_too_large")
    return columns, types, tuple(tuple(_scalar(v) for v in row) for row in rows)
