"""``duckdb_sql``: one SQL SELECT over the asset, exposed as the view ``asset``.

DuckDB runs with external access disabled (only the asset file is an allowed
path), extension loading and installation off, and its configuration locked, so
that SQL cannot reach other files even before the sandbox's own layers apply.
Its progress bar is off: DuckDB prints it on standard output once a query runs
longer than two seconds (as a heavy query does when fragments share the CPU).

With a ``bound`` in its context, ``asset`` is the asset's *contribution-bounded view*:
each privacy unit keeps at most ``rows`` of its rows, those that rank first by a keyed
hash of the whole row under the site's secret ``seed`` for this asset version.  The
choice is therefore a fixed function of each person's own rows: the same rows count in
every job on this version of the asset, whatever the job's filter (see
:func:`bounded_source`).  In a fork server (``forks``) the view is computed once,
in memory, and every forked child shares it copy-on-write; the engine starts no
threads until the child asks for them in :meth:`Executor.after_fork`.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb

from sandbox.executors.base import FragmentError, WorkerContext, table_document

_READERS = {"csv": "read_csv", "parquet": "read_parquet"}

_BAD_INPUT = (
    "ParserException",
    "SyntaxException",
    "BinderException",
    "CatalogException",
    "ConversionException",
    "InvalidInputException",
    "TypeMismatchException",
    "OutOfRangeException",
    "NotImplementedException",
    "InvalidTypeException",
    "ConstraintException",
)
_REASONS = dict.fromkeys(_BAD_INPUT, "bad_input") | {
    "OutOfMemoryException": "memory",
    "PermissionException": "sandbox_violation",
    "InterruptException": "timeout",
}

_FETCH_ROWS = 2048


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def bounded_source(source: str, bound: dict[str, object]) -> tuple[str, list[object]]:
    """The SELECT (and its parameters) of the contribution-bounded view of ``source``.

    Each unit keeps its ``rows`` rows that rank lowest by ``hash(seed, every column)``;
    rows without a unit are dropped (no fragment counts them).
    """
    unit, rows, seed = bound["unit"], bound["rows"], bound["seed"]
    if not isinstance(unit, str) or not isinstance(rows, int) or not isinstance(seed, str):
        raise FragmentError("internal", "BadBound")
    if rows < 1:
        raise FragmentError("internal", "BadBound")
    column = _quote_name(unit)
    sql = (
        f"WITH __bg_ranked AS (SELECT *, hash(?, *COLUMNS(*)) AS __bg_rank FROM {source} "  # noqa: S608
        f"WHERE {column} IS NOT NULL) SELECT * EXCLUDE (__bg_rank) FROM __bg_ranked "
        f"QUALIFY row_number() OVER (PARTITION BY {column} ORDER BY __bg_rank) <= {rows}"
    )
    return sql, [seed]


def open_asset(context: WorkerContext) -> duckdb.DuckDBPyConnection:
    """A locked-down in-memory DuckDB connection with the asset as the view ``asset``.

    In a fork server the connection starts no threads and its configuration stays open
    until :func:`finish_in_child` (the asset is then a table held in memory).
    """
    if context.asset_format not in _READERS:
        raise FragmentError("bad_input", "UnsupportedAssetFormat")
    memory_limit = max(24 * 1024 * 1024, int(context.memory_bytes * 0.6))
    con = duckdb.connect(
        ":memory:",
        config={
            "threads": 1 if context.forks else context.threads,
            "async_threads": 0,
            "memory_limit": f"{memory_limit}B",
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "temp_directory": context.tmp_dir + "/duckdb",
            # A fork server never spills: its children would share (and could change)
            # the spilled blocks. Each child may, into the server's /tmp, which is
            # emptied before the next child starts.
            "max_temp_directory_size": "0B" if context.forks else f"{context.tmpfs_bytes // 2}B",
        },
    )
    path = _quote(context.asset_path)
    source = f"{_READERS[context.asset_format]}({path})"
    con.execute("SET enable_progress_bar = false")
    if context.bound is not None or context.forks:
        select, parameters = f"SELECT * FROM {source}", list[object]()  # noqa: S608
        if context.bound is not None:
            select, parameters = bounded_source(source, context.bound)
        con.execute(f"CREATE TABLE asset AS {select}", parameters)
        con.execute("SET enable_external_access = false")
    else:
        try:
            con.execute(f"SET allowed_paths = [{path}]")
            con.execute("SET enable_external_access = false")
            con.execute(f"CREATE VIEW asset AS SELECT * FROM {source}")  # noqa: S608
        except duckdb.InvalidInputException:
            con.execute(f"CREATE TABLE asset AS SELECT * FROM {source}")  # noqa: S608
            con.execute("SET enable_external_access = false")
    if not context.forks:
        con.execute("SET lock_configuration = true")
    return con


def finish_in_child(con: duckdb.DuckDBPyConnection, context: WorkerContext) -> None:
    """In a forked child: the engine's threads, then the configuration locked."""
    con.execute(f"SET threads = {int(context.threads)}")
    con.execute(f"SET max_temp_directory_size = '{context.tmpfs_bytes // 2}B'")
    con.execute("SET lock_configuration = true")


def error_reason(exc: duckdb.Error) -> FragmentError:
    """The fragment failure a DuckDB error stands for."""
    kind = type(exc).__name__
    return FragmentError(_REASONS.get(kind, "internal"), kind)


class Executor:
    """A DuckDB connection with the asset view created, waiting for one query."""

    def __init__(self, context: WorkerContext) -> None:
        self._context = context
        self._con = open_asset(context)

    def after_fork(self) -> None:
        """Start the engine's threads and lock its configuration (in the forked child)."""
        finish_in_child(self._con, self._context)

    def run(self, program: str) -> str:
        """Check that ``program`` is exactly one SELECT, run it and serialise the rows."""
        try:
            statements = self._con.extract_statements(program)
            if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
                raise FragmentError("bad_input", "NotASingleSelect")
            cursor = self._con.execute(program)
            description = cursor.description or []
            columns = [str(item[0]) for item in description]
            types = [str(item[1]) for item in description]
            return table_document(columns, types, _rows(cursor), self._context.output_bytes)
        except duckdb.Error as exc:
            raise error_reason(exc) from None


def _rows(cursor: duckdb.DuckDBPyConnection) -> Iterator[tuple[object, ...]]:
    while chunk := cursor.fetchmany(_FETCH_ROWS):
        yield from chunk
